from __future__ import annotations

import json
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
