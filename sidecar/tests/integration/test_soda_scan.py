"""A real Soda Core scan (PostgreSQL data source) of the sample retail data, shipped by
`qalita-sidecar ingest soda` to the local contract server: delivered once, kept when QALITA is
down, never shipped twice, bad files refused with nothing lost."""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid

import psycopg2
import pytest
from support.itkit import DATA, EXAMPLES, clean_env, items, ledger_keys, pending, sidecar
from testkit import BIN, PG_HOST, PG_PORT, PG_USER, create_database, drop_database, require_postgres

SODA = EXAMPLES / "soda"


@pytest.fixture(scope="module")
def scan_results(tmp_path_factory):
    """scan_results.json of `soda scan` on a fresh database holding the sample CSVs."""
    require_postgres()
    tmp = tmp_path_factory.mktemp("soda")
    db = f"qc_soda_{uuid.uuid4().hex[:10]}"
    create_database(db)
    try:
        con = psycopg2.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname=db)
        with con, con.cursor() as cur:
            cur.execute((SODA / "load.sql").read_text())
            for table in ("orders", "customers"):
                with open(DATA / f"{table}.csv") as fh:
                    cur.copy_expert(f"copy {table} from stdin with (format csv, header)", fh)
        con.close()
        (tmp / ".soda").mkdir()
        # Soda's anonymous usage stats would try to reach the internet: off.
        (tmp / ".soda" / "config.yml").write_text("send_anonymous_usage_stats: false\n")
        env = clean_env(tmp, SODA_PG_HOST=PG_HOST, SODA_PG_PORT=str(PG_PORT),
                        SODA_PG_USER=PG_USER, SODA_PG_PASSWORD="", SODA_PG_DATABASE=db)
        proc = subprocess.run([str(BIN / "soda"), "scan", "-d", "retail", "-c",
                               str(SODA / "configuration.yml"), str(SODA / "checks.yml"),
                               "-srf", "scan_results.json"], cwd=tmp, env=env,
                              capture_output=True, text=True, timeout=300)
        # 2: checks failed (by design); anything else means the scan itself did not work
        assert proc.returncode == 2, proc.stdout[-3000:] + proc.stderr[-3000:]
        yield tmp / "scan_results.json"
    finally:
        drop_database(db)


def test_the_scan_fails_by_design(scan_results):
    data = json.loads(scan_results.read_text())
    outcomes = {c["name"]: c["outcome"] for c in data["checks"]}
    assert outcomes["duplicate_count(order_id) = 0"] == "fail"
    assert outcomes["missing_count(email) warn when > 0 fail when > 5"] == "warn"
    assert outcomes["row_count > 0"] == "pass"
    assert sorted(outcomes.values()).count("fail") == 5


def test_ingest_delivers_the_scan_once(scan_results, tmp_path, qalita_server):
    env = clean_env(tmp_path, **qalita_server.env())
    proc = sidecar("ingest", "soda", "--file", str(scan_results), env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "11 check(s) on data source retail: 5 passed, 5 failed, 1 warned" in proc.stdout
    assert "1 delivered" in proc.stdout
    assert qalita_server.token not in proc.stdout + proc.stderr

    received = qalita_server.received
    assert [(j.base_name, j.statuses) for j in received.jobs.values()] == \
        [("soda scan Soda Core CLI (retail)", ["running", "succeeded"])]
    assert received.sources_published[0]["name"] == "retail"
    assert received.rejected == []
    metrics = {(m["scope"]["perimeter"], m["scope"]["value"], m["key"]): m["value"]
               for m in items(qalita_server, "metrics")}
    assert metrics[("database", "retail", "score")] == "0.45"  # 5 passed of 11
    assert metrics[("dataset", "orders", "score")] == "0.25"  # 2 of 8
    assert metrics[("dataset", "customers", "score")] == "1.00"
    assert metrics[("dataset", "orders", "check_failed")] == 5
    assert metrics[("column", "customer_id", "missing_count")] == 2
    assert metrics[("column", "amount", "min")] == -20.0
    recs = items(qalita_server, "recommendations")
    assert len(recs) == 6
    by_column = {r["scope"]["value"]: r for r in recs if r["scope"]["perimeter"] == "column"}
    assert set(by_column) == {"order_id", "customer_id", "status", "amount", "email"}
    assert by_column["email"]["level"] == "warning"
    assert by_column["order_id"]["level"] == "high"
    assert by_column["order_id"]["scope"]["parent_scope"]["value"] == "orders"
    assert by_column["customer_id"]["content"] == (
        "Soda check `missing_count(customer_id) = 0` failed on orders.customer_id "
        "(data source retail): measured 2.")
    schema_rec = [r for r in recs if r["scope"]["perimeter"] == "dataset"]
    assert len(schema_rec) == 1 and "missing column(s) currency" in schema_rec[0]["content"]
    schemas = {(s["key"], s["value"]) for s in items(qalita_server, "schemas")}
    assert {("database", "retail"), ("dataset", "orders"), ("dataset", "customers"),
            ("column", "order_date"), ("column", "email")} <= schemas
    assert pending(tmp_path) == [] and len(ledger_keys(tmp_path)) == 1

    again = sidecar("ingest", "soda", "--file", str(scan_results), env=env, cwd=tmp_path)
    assert again.returncode == 0 and "nothing new" in again.stdout
    assert len(received.jobs) == 1 and len(received.uploads["metrics"]) == 1


def test_qalita_down_keeps_the_scan_until_flush(scan_results, tmp_path, qalita_server):
    env = clean_env(tmp_path, **qalita_server.env(), QALITA_DEADLINE="2")
    qalita_server.stop()
    proc = sidecar("ingest", "soda", "--file", str(scan_results), env=env, cwd=tmp_path)
    assert proc.returncode == 75, proc.stdout + proc.stderr
    assert len(pending(tmp_path)) == 1 and ledger_keys(tmp_path) == []

    qalita_server.start()
    flushed = sidecar("flush", env=env, cwd=tmp_path)
    assert flushed.returncode == 0, flushed.stdout + flushed.stderr
    assert pending(tmp_path) == [] and len(ledger_keys(tmp_path)) == 1
    again = sidecar("ingest", "soda", "--file", str(scan_results), env=env, cwd=tmp_path)
    assert again.returncode == 0 and "nothing new" in again.stdout
    jobs = list(qalita_server.received.jobs.values())
    assert len(jobs) == 1 and jobs[0].status == "succeeded"
    assert len(qalita_server.received.uploads["recommendations"]) == 1


def test_a_truncated_results_file_is_refused_and_nothing_is_spooled(scan_results, tmp_path,
                                                                    qalita_server):
    broken = tmp_path / "scan_results.json"
    broken.write_bytes(scan_results.read_bytes()[:500])
    env = clean_env(tmp_path, **qalita_server.env())
    proc = sidecar("ingest", "soda", "--file", str(broken), env=env, cwd=tmp_path)
    assert proc.returncode == 1
    assert proc.stderr.strip().count("\n") == 0 and str(broken) in proc.stderr
    assert "not valid JSON" in proc.stderr
    assert pending(tmp_path) == [] and qalita_server.received.jobs == {}
    # the intact file still ships
    shutil.copy(scan_results, broken)
    assert sidecar("ingest", "soda", "--file", str(broken), env=env, cwd=tmp_path).returncode == 0
