from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from support.shipments import make_shipment

from qalita_sidecar.shipment import encode_shipment
from qalita_sidecar.shipping.outbox import Outbox, OutboxError


def test_put_writes_a_readable_entry_and_is_idempotent_per_key(tmp_path):
    box = Outbox(tmp_path / "outbox")
    s = make_shipment()
    path = box.put(s)
    assert path == tmp_path / "outbox" / "pending" / f"{s.key}.json"
    box.note(s.key, job_id=123)
    assert box.put(s) == path  # a second put keeps the entry and its job id
    entry = box.entry(s.key)
    assert entry.shipment == s and entry.job_id == 123
    # no temp file left behind: the entry and its noted ids only
    assert sorted(p.name for p in path.parent.iterdir()) == [f"{s.key}.ids.json", path.name]


def test_replay_order_is_oldest_first_not_by_name(tmp_path):
    box = Outbox(tmp_path)
    shipments = [make_shipment(f"inv-{i}") for i in range(5)]
    for s in shipments:
        box.put(s)
    # rewriting an entry (a job id noted) must not change its place in the queue
    box.note(shipments[0].key, job_id=1)
    assert [s.key for s in box.pending()] == [s.key for s in shipments]


def test_move_to_dead_keeps_the_shipment_and_the_answer(tmp_path):
    box = Outbox(tmp_path)
    s = make_shipment()
    box.put(s)
    dead = box.move_to_dead(s.key, '422 {"detail": "metrics[0]: bad scope"}')
    assert box.pending() == [] and box.dead() == [dead]
    data = json.loads(dead.read_text())
    assert data["dead_reason"].startswith("422") and data["shipment"]["key"] == s.key


def test_size_cap_gives_a_clear_error_and_keeps_what_is_there(tmp_path):
    box = Outbox(tmp_path, max_bytes=4000)
    box.put(make_shipment("a"))
    with pytest.raises(OutboxError, match="full.*QALITA_OUTBOX_MAX_MB") as err:
        for i in range(10):
            box.put(make_shipment(f"b{i}"))
    assert "\n" not in str(err.value)
    assert len(box.pending()) >= 1


def test_size_cap_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("QALITA_OUTBOX_MAX_MB", "0.001")
    with pytest.raises(OutboxError, match="full"):
        Outbox(tmp_path).put(make_shipment())
    monkeypatch.setenv("QALITA_OUTBOX_MAX_MB", "lots")
    with pytest.raises(OutboxError, match="QALITA_OUTBOX_MAX_MB"):
        Outbox(tmp_path)


def test_a_corrupt_entry_is_set_aside_in_dead_with_the_reason_and_the_others_read(tmp_path):
    box = Outbox(tmp_path)
    bad, good = make_shipment("bad"), make_shipment("good")
    path = box.put(bad)
    box.note(bad.key, job_id=42)
    box.put(good)
    original = path.read_text()[:50]
    path.write_text(original)
    entries, aside = box.scan()
    assert [e.shipment for e in entries] == [good]
    (moved,) = aside
    assert moved.key == bad.key and moved.path == box.dead_dir / path.name
    assert str(path) in moved.reason and "unreadable" in moved.reason and "\n" not in moved.reason
    # its bytes untouched, its ids kept beside it, the reason in a file a user can read
    assert moved.path.read_text() == original
    assert json.loads((box.dead_dir / f"{bad.key}.ids.json").read_text()) == {"job_id": 42}
    assert (box.dead_dir / f"{bad.key}.reason.txt").read_text().strip() == moved.reason
    assert box.dead() == [moved.path] and box.pending() == [good]


@pytest.mark.parametrize("field, value", [("queued_at_ns", "soon"), ("job_id", "abc"),
                                          ("source_id", [1])])
def test_a_non_numeric_field_in_an_entry_is_one_line_naming_the_file_and_field(tmp_path, field, value):
    box = Outbox(tmp_path)
    s = make_shipment()
    path = box.put(s)
    data = json.loads(path.read_text())
    data[field] = value
    path.write_text(json.dumps(data))
    _, (moved,) = box.scan()
    assert f"'{field}' must be an integer" in moved.reason and str(path) in moved.reason


def test_a_non_numeric_noted_id_is_named_too(tmp_path):
    box = Outbox(tmp_path)
    s = make_shipment()
    box.put(s)
    box.ids_path(s.key).write_text('{"job_id": "x1"}')
    _, (moved,) = box.scan()
    assert f"{s.key}.ids.json" in moved.reason and "'job_id' must be an integer" in moved.reason


@pytest.mark.parametrize("raw", ["abc", "inf", "-1", "nan", "0"])
def test_outbox_max_mb_must_be_a_positive_finite_number(tmp_path, monkeypatch, raw):
    monkeypatch.setenv("QALITA_OUTBOX_MAX_MB", raw)
    with pytest.raises(OutboxError) as err:
        Outbox(tmp_path)
    assert str(err.value) == ("QALITA_OUTBOX_MAX_MB must be a positive number of megabytes, "
                              f"got {raw!r}")


def test_leftover_temp_files_of_dead_writers_are_removed_and_counted_in_the_cap(tmp_path):
    import subprocess
    import sys

    box = Outbox(tmp_path)
    box.put(make_shipment())
    dead_pid = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True, check=True).stdout.strip()
    left = box.pending_dir / f".x.json.{dead_pid}.tmp"
    left.write_bytes(b"x" * 5000)
    mine = box.pending_dir / f".y.json.{os.getpid()}.tmp"  # a live writer's: kept
    mine.write_bytes(b"y")
    before = box.size_bytes()
    assert before >= 5000 + 1  # a leftover counts against the cap until it is cleaned
    assert box.clean_tmp() == [left]
    assert not left.exists() and mine.exists() and box.size_bytes() == before - 5000


def test_a_read_only_outbox_at_removal_is_one_line(tmp_path, monkeypatch):
    box = Outbox(tmp_path)
    s = make_shipment()
    box.put(s)

    def refuse(self, missing_ok=False):  # what a read-only folder answers (even for root)
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "unlink", refuse)
    with pytest.raises(OutboxError, match="cannot remove .*Permission denied") as err:
        box.remove(s.key)
    assert "\n" not in str(err.value) and str(box.path(s.key)) in str(err.value)


def test_the_key_lock_excludes_other_processes_and_is_released_by_a_kill(tmp_path):
    import signal
    import subprocess
    import sys

    from qalita_sidecar.shipping.outbox import LockTimeout

    box = Outbox(tmp_path)
    s = make_shipment()
    code = ("import sys, time; from pathlib import Path; "
            "from qalita_sidecar.shipping.outbox import Outbox; "
            "b = Outbox(Path(sys.argv[1])); cm = b.lock(sys.argv[2], 5); cm.__enter__(); "
            "print('held', flush=True); time.sleep(60)")
    holder = subprocess.Popen([sys.executable, "-c", code, str(tmp_path), s.key],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(LockTimeout, match="another process is shipping it"), \
                box.lock(s.key, 0.3):
            pass
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        with box.lock(s.key, 2):  # the kernel released it with the process
            pass
    finally:
        holder.kill()
        holder.wait()


def test_a_crash_mid_write_leaves_no_half_entry(tmp_path, monkeypatch):
    box = Outbox(tmp_path)
    s = make_shipment()

    def boom(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OutboxError, match="No space left"):
        box.put(s)
    monkeypatch.undo()
    assert box.pending() == [] and list(box.pending_dir.iterdir()) == []
    box.put(s)
    assert box.pending() == [s]


def test_unsafe_keys_are_refused(tmp_path):
    with pytest.raises(OutboxError):
        Outbox(tmp_path).path("../../etc/passwd")


def test_write_discipline_is_fsync_then_rename_then_fsync_of_the_folder(tmp_path, monkeypatch):
    box = Outbox(tmp_path)
    box.put(make_shipment("first"))  # folders exist now
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append(("fsync", "dir" if os.path.isdir(f"/proc/self/fd/{fd}") else "file"))
        real_fsync(fd)

    def replace(src, dst):
        events.append(("rename", os.path.basename(str(src)).startswith(".")))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    box.put(make_shipment("second"))
    assert events == [("fsync", "file"), ("rename", True), ("fsync", "dir")]


def test_noting_ids_never_rewrites_the_payload(tmp_path):
    box = Outbox(tmp_path)
    s = make_shipment()
    path = box.put(s)
    before = (path.stat().st_ino, path.stat().st_mtime_ns, path.read_bytes())
    box.note(s.key, source_id=7)
    box.note(s.key, job_id=42)
    assert (path.stat().st_ino, path.stat().st_mtime_ns, path.read_bytes()) == before
    assert json.loads(box.ids_path(s.key).read_text()) == {"source_id": 7, "job_id": 42}
    (entry,) = box.entries()
    assert (entry.shipment, entry.source_id, entry.job_id) == (s, 7, 42)
    assert box.put_entry(s) == entry  # spooling the same run again keeps its job


def test_ids_go_with_the_entry_when_it_is_removed_or_dead(tmp_path):
    box = Outbox(tmp_path)
    done, bad = make_shipment("done"), make_shipment("bad")
    for s in (done, bad):
        box.put(s)
        box.note(s.key, source_id=3, job_id=9)
    box.remove(done.key)
    dead = box.move_to_dead(bad.key, "422 no")
    assert list(box.pending_dir.iterdir()) == [] and list(box.dead_dir.iterdir()) == [dead]
    data = json.loads(dead.read_text())
    assert (data["job_id"], data["source_id"], data["dead_reason"]) == (9, 3, "422 no")
    # moved back to pending/ by hand, it is retried with its job
    dead.rename(box.path(bad.key))
    assert box.entry(bad.key).job_id == 9 and box.pending() == [bad]


def test_ids_left_by_a_crash_during_remove_are_not_reused(tmp_path):
    box = Outbox(tmp_path)
    s = make_shipment()
    box.put(s)
    box.note(s.key, job_id=5)
    box.path(s.key).unlink()  # killed between dropping the entry and its ids
    assert box.entries() == []
    assert box.put_entry(s).job_id is None and box.entry(s.key).job_id is None


def test_an_entry_from_the_older_single_file_format_keeps_its_job(tmp_path):
    box = Outbox(tmp_path)
    s = make_shipment()
    box.pending_dir.mkdir(parents=True)
    box.path(s.key).write_text(json.dumps(
        {"queued_at_ns": 1, "source_id": 2, "job_id": 3,
         "shipment": json.loads(encode_shipment(s))}))
    (entry,) = box.entries()
    assert (entry.shipment, entry.source_id, entry.job_id) == (s, 2, 3)


def test_a_shipment_is_not_read_back_while_it_ships(qalita_server, tmp_path, monkeypatch):
    from qalita_sidecar.settings import load_settings
    from qalita_sidecar.shipping.deliver import ship
    from qalita_sidecar.shipping.ledger import FileLedger

    loads = []
    real_load = Outbox._load
    monkeypatch.setattr(Outbox, "_load", staticmethod(lambda p: loads.append(p) or real_load(p)))
    box, s = Outbox(tmp_path / "outbox"), make_shipment()
    outcomes = ship([s], load_settings(qalita_server.env()), box, FileLedger(tmp_path / "l.jsonl"))
    assert [o.status for o in outcomes] == ["delivered"] and qalita_server.received.rejected == []
    assert loads == [] and list(box.pending_dir.iterdir()) == []


def test_an_entry_set_aside_as_unreadable_is_no_refusal(tmp_path):
    box = Outbox(tmp_path)
    s = make_shipment()
    path = box.put(s)
    path.write_text("{")
    box.scan()
    assert box.dead_path(s.key).exists() and not box.refused(s.key)
    box.put(s)  # this run's readable copy is spooled again
    assert box.pending() == [s]
    box.move_to_dead(s.key, "422 refused")
    assert box.refused(s.key)


def test_an_int_beyond_64_bits_and_a_nan_go_through_the_outbox(tmp_path):
    import msgspec

    from qalita_sidecar.shipment import Metric

    box = Outbox(tmp_path)
    s = make_shipment()
    scope = s.metrics[0].scope
    s = msgspec.structs.replace(s, metrics=(Metric("rows", 2 ** 70, scope),
                                            Metric("ratio", float("nan"), scope)))
    box.put(s)
    (entry,) = box.entries()
    # JSON has no NaN: it is written (and read back) as null
    assert [m.value for m in entry.shipment.metrics] == [2 ** 70, None]
