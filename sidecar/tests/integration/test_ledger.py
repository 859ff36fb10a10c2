from __future__ import annotations

import json
import time
import uuid

import pytest
from support.shipments import make_shipment
from testkit import PG_HOST, PG_PORT, PG_USER, create_database, drop_database, require_postgres

from qalita_sidecar.readers.dbt.profile import WarehouseTarget, connect
from qalita_sidecar.shipping.ledger import FileLedger, LedgerError, WarehouseLedger


@pytest.fixture(params=["duckdb", "postgres"])
def target(request, tmp_path):
    if request.param == "duckdb":
        yield WarehouseTarget("p", "dev", "duckdb", "main", {"path": str(tmp_path / "w.duckdb")})
        return
    require_postgres()
    db = f"qalita_ledger_{uuid.uuid4().hex[:8]}"
    create_database(db)
    yield WarehouseTarget("p", "prod", "postgres", "public",
                          {"host": PG_HOST, "port": PG_PORT, "user": PG_USER, "dbname": db})
    drop_database(db)


def _rows(target, schema):
    con = connect(target)
    try:
        cur = con.cursor()
        cur.execute(f'select shipment_key, origin, invocation_id, source_name, job_id, metrics_count, '
                    f'recommendations_count, schemas_count from "{schema}".qalita_shipments')
        return cur.fetchall()
    finally:
        con.close()


def test_warehouse_ledger_creates_its_table_and_records_once(target):
    schema = f"{target.schema}_qalita"
    ledger = WarehouseLedger(target, schema)
    s = make_shipment("inv-1", failed=2)
    assert ledger.shipped(s.key) is False
    ledger.record(s, 101)
    ledger.record(s, 101)  # a replay after a crash writes nothing twice
    assert ledger.shipped(s.key)
    # a fresh reader (the next run) sees it
    assert WarehouseLedger(target, schema).shipped(s.key)
    assert not WarehouseLedger(target, schema).shipped(make_shipment("inv-2").key)
    assert _rows(target, schema) == [(s.key, "dbt", "inv-1", "shop", 101, 4, 2, 2)]


def test_warehouse_ledger_error_names_the_table(tmp_path):
    target = WarehouseTarget("p", "dev", "duckdb", "main", {"path": str(tmp_path / "no" / "such" / "dir.duckdb")})
    with pytest.raises(LedgerError) as err:
        WarehouseLedger(target, "main_qalita").shipped("k")
    assert "qalita_shipments" in str(err.value) and "dir.duckdb" in str(err.value)
    assert "\n" not in str(err.value)


def test_warehouse_ledger_quotes_the_schema(target):
    schema = 'odd "schema"'
    ledger = WarehouseLedger(target, schema)
    ledger.record(make_shipment(), None)
    assert WarehouseLedger(target, schema).shipped(make_shipment().key)


def test_file_ledger_records_fsynced_lines_and_survives_a_torn_line(tmp_path):
    path = tmp_path / "state" / "ledger.jsonl"
    ledger = FileLedger(path)
    a, b = make_shipment("a"), make_shipment("b")
    ledger.record(a, 7)
    with open(path, "a") as fh:
        fh.write('{"key": "torn')  # a crash mid-append
    assert FileLedger(path).shipped(a.key) and not FileLedger(path).shipped(b.key)
    FileLedger(path).record(b, 8)
    lines = [json.loads(x) for x in path.read_text().splitlines() if x.startswith('{"key": "') and x.endswith("}")]
    assert [(x["key"], x["job_id"]) for x in lines] == [(a.key, 7), (b.key, 8)]
    assert FileLedger(path).shipped(b.key)


def test_file_ledger_unwritable_is_named(tmp_path):
    (tmp_path / "ro").write_text("a file, not a folder")
    with pytest.raises(LedgerError, match="ro/ledger.jsonl"):
        FileLedger(tmp_path / "ro" / "ledger.jsonl").record(make_shipment(), 1)


def test_a_duckdb_file_locked_by_a_running_dbt_gives_one_line(tmp_path):
    import subprocess
    import sys

    path = tmp_path / "w.duckdb"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); "
         "print('locked', flush=True); time.sleep(60)", str(path)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        target = WarehouseTarget("p", "dev", "duckdb", "main", {"path": str(path)})
        with pytest.raises(LedgerError) as err:
            WarehouseLedger(target, "main_qalita").record(make_shipment(), 1)
        assert "main_qalita.qalita_shipments" in str(err.value) and "\n" not in str(err.value)
    finally:
        holder.kill()
        holder.wait()


def test_an_edited_ledger_line_is_reported_with_its_number_not_skipped(tmp_path):
    path = tmp_path / "ledger.jsonl"
    ledger = FileLedger(path)
    a, b = make_shipment("a"), make_shipment("b")
    ledger.record(a, 1)
    ledger.record(b, 2)
    lines = path.read_text().splitlines()
    path.write_text(lines[0] + "\n" + lines[1].replace('"key"', '"kee"') + "\n")
    with pytest.raises(LedgerError) as err:
        FileLedger(path).shipped(b.key)
    assert str(err.value).startswith(f"ledger {path} line 2 does not parse")
    assert "\n" not in str(err.value)


def test_invalid_utf8_in_the_ledger_is_one_line_naming_the_file(tmp_path):
    path = tmp_path / "ledger.jsonl"
    path.write_bytes(b'{"key": "caf\xe9"}\n')
    with pytest.raises(LedgerError) as err:
        FileLedger(path).keys()
    assert str(err.value).startswith(f"ledger {path} line 1 is not UTF-8")


def test_a_torn_last_line_is_left_out_then_cut_off_by_the_next_record(tmp_path):
    path = tmp_path / "ledger.jsonl"
    a, b = make_shipment("a"), make_shipment("b")
    FileLedger(path).record(a, 1)
    with open(path, "ab") as fh:
        fh.write(b'{"key": "half')  # a kill mid-append: that shipment was never recorded
    assert FileLedger(path).keys() == {a.key}
    FileLedger(path).record(b, 2)
    assert [json.loads(x)["key"] for x in path.read_text().splitlines()] == [a.key, b.key]


def test_a_claim_sees_what_another_process_appended_since(tmp_path):
    path = tmp_path / "ledger.jsonl"
    mine, other = FileLedger(path), FileLedger(path)
    s = make_shipment()
    assert mine.shipped(s.key) is False  # read (and cached) before the other process shipped it
    other.record(s, 9)
    assert mine.claim(s).shipped is True


def test_warehouse_claims_exclude_a_live_holder_and_take_over_a_dead_one(target):
    from qalita_sidecar.shipping.ledger import CLAIMS, ClaimHeld

    schema = f"{target.schema}_qalita"
    s = make_shipment()
    here = WarehouseLedger(target, schema, local="/box/a")
    first = here.claim(s)
    assert (first.shipped, first.taken_over) == (False, False)
    # another machine, while the claim is fresh: held
    there = WarehouseLedger(target, schema, local="/box/a")
    there.local, there.me = "other-host:/box/a", "other-host:/box/a|1|x"
    with pytest.raises(ClaimHeld, match="being shipped from .*:/box/a since"):
        there.claim(s)
    # this machine and outbox again, a later process: its local lock says the holder is gone
    later = WarehouseLedger(target, schema, local="/box/a")
    later.me = later.me + "-later"
    assert later.claim(s).taken_over is True
    # a claim older than the stale bound is taken over from anywhere
    there.stale_s = 0
    time.sleep(1.1)
    assert there.claim(s).taken_over is True
    there.record(s, 5)
    assert _claims(target, schema, CLAIMS) == []  # the row ended the claim
    assert WarehouseLedger(target, schema).claim(s).shipped is True


def test_a_released_claim_is_free_again(target):
    from qalita_sidecar.shipping.ledger import CLAIMS

    schema = f"{target.schema}_qalita"
    s = make_shipment()
    ledger = WarehouseLedger(target, schema, local="/box/b")
    ledger.claim(s)
    ledger.release(s.key)
    assert _claims(target, schema, CLAIMS) == []
    other = WarehouseLedger(target, schema, local="/box/b")
    other.local, other.me = "elsewhere:/box/b", "elsewhere:/box/b|2|y"
    assert other.claim(s).taken_over is False


def _claims(target, schema, table):
    con = connect(target)
    try:
        cur = con.cursor()
        cur.execute(f'select shipment_key from "{schema}".{table}')
        return cur.fetchall()
    finally:
        con.close()
