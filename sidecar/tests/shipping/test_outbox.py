from __future__ import annotations

import json
import os

import pytest
from qalita_sidecar.outbox import Outbox, OutboxError
from shipping.shipments import make_shipment


def test_put_writes_a_readable_entry_and_is_idempotent_per_key(tmp_path):
    box = Outbox(tmp_path / "outbox")
    s = make_shipment()
    path = box.put(s)
    assert path == tmp_path / "outbox" / "pending" / f"{s.key}.json"
    box.note(s.key, job_id=123)
    assert box.put(s) == path  # a second put keeps the entry and its job id
    entry = box.entry(s.key)
    assert entry.shipment == s and entry.job_id == 123
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp file left behind


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


def test_a_corrupt_entry_is_named(tmp_path):
    box = Outbox(tmp_path)
    s = make_shipment()
    path = box.put(s)
    path.write_text(path.read_text()[:50])
    with pytest.raises(OutboxError, match=str(path)):
        box.pending()


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
