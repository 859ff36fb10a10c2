"""Real dbt runs (air-quality project, failing variant) read back from the tables, then shipped by
`qalita-sidecar ingest dbt` (a subprocess) into the local contract server.

One build per adapter per module (dbt is the slow part); each test works on its own copy of the
DuckDB file and target folder, so ledgers and outboxes never leak between tests.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from testkit import BIN, REPO, drop_database, make_project

from qalita_sidecar.readers.dbt import artifacts, warehouse
from qalita_sidecar.readers.dbt.profile import load_target

FAILING = {"airquality_failing_variant": True}


def build(project) -> None:
    """`make all`, air-quality part: seed, build with the failing variant, source freshness."""
    project.run("seed")
    project.run("build", "--select", "tag:airquality", vars=FAILING, check=False)
    project.run("source", "freshness", "--select", "source:openaq", check=False)


@pytest.fixture(scope="module")
def duck(tmp_path_factory):
    project = make_project(tmp_path_factory.mktemp("ingest_duck"), "dev")
    build(project)
    return project


@pytest.fixture
def copy(duck, tmp_path):
    """This test's own warehouse file and target folder, and the env that points at them."""
    db = tmp_path / "warehouse.duckdb"
    shutil.copy(duck.env["DBT_DUCKDB_PATH"], db)
    shutil.copytree(duck.target_path, tmp_path / "target")
    env = {**duck.env, "DBT_DUCKDB_PATH": str(db), "DBT_TARGET_PATH": str(tmp_path / "target"),
           "QALITA_OUTBOX_DIR": str(tmp_path / "qalita" / "outbox")}
    return env


def ingest(env: dict, *args: str, server=None) -> subprocess.CompletedProcess[str]:
    run_env = {**env, **(server.env() if server is not None else {})}
    return subprocess.run([str(BIN / "qalita-sidecar"), "ingest", "dbt", "--project-dir", str(REPO),
                           "--profiles-dir", str(REPO), *args], env=run_env, cwd=REPO,
                          capture_output=True, text=True)


def flush(env: dict, server) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "qalita-sidecar"), "flush", "--project-dir", str(REPO),
                           "--profiles-dir", str(REPO)], env={**env, **server.env()}, cwd=REPO,
                          capture_output=True, text=True)


def recorded(env: dict, target: str = "dev") -> warehouse.WarehouseRead:
    saved = {k: v for k, v in env.items() if k.startswith("DBT_")}
    with pytest.MonkeyPatch.context() as mp:
        for k, v in saved.items():
            mp.setenv(k, v)
        t = load_target(REPO, target=target, project_dir=REPO)
        return warehouse.read_invocations(t, warehouse.default_schema(t), "quality_compass")


def check_tables_match_artifacts(read: warehouse.WarehouseRead, target_path: Path) -> None:
    assert read.problem is None
    commands = sorted(i.command for i in read.invocations)
    assert commands == ["build", "freshness", "seed"]
    manifest = artifacts.read_manifest(target_path / "manifest.json")
    from_file = artifacts.read_run_results(target_path / "run_results.json", manifest)
    [build_inv] = [i for i in read.invocations if i.command == "build"]
    assert build_inv.invocation_id == from_file.invocation_id
    table = {r.unique_id: r for r in build_inv.results}
    # run_results.json also lists the on-run-end hook (an operation); the package records nodes
    nodes = [r for r in from_file.results if r.resource_type != "operation"]
    assert set(table) == {r.unique_id for r in nodes}
    for r in nodes:
        t = table[r.unique_id]
        assert (t.status, t.failures, t.resource_type) == (r.status, r.failures, r.resource_type)
    statuses = {r.status for r in build_inv.results}
    assert {"pass", "fail", "warn", "error", "skipped", "success"} <= statuses
    failing = table["test.quality_compass.stg_airquality_failing_who_pm25_limit.af22403993"]
    assert (failing.severity, failing.test_name, failing.attached_node, failing.failures) == \
        ("error", "expect_column_values_to_be_between", "model.quality_compass.stg_airquality", 121)
    [fresh] = [i for i in read.invocations if i.command == "freshness"]
    [source] = fresh.results
    assert source.status == "pass" and source.age is not None and source.age >= 0


def test_tables_hold_what_the_artifacts_say_duckdb(copy):
    check_tables_match_artifacts(recorded(copy), Path(copy["DBT_TARGET_PATH"]))


def test_missing_tables_are_a_reason_not_a_crash(tmp_path, duck):
    import duckdb

    db = tmp_path / "empty.duckdb"
    duckdb.connect(str(db)).close()
    read = recorded({**duck.env, "DBT_DUCKDB_PATH": str(db)})
    assert read.invocations == () and "no table main_qalita.qalita_invocations" in read.problem


def test_ingest_ships_each_invocation_once(copy, qalita_server):
    first = ingest(copy, server=qalita_server)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "table main_qalita.qalita_invocations" in first.stdout
    assert "3 delivered" in first.stdout
    received = qalita_server.received
    assert received.rejected == []
    jobs = received.jobs
    assert len(jobs) == 3
    for kind in ("metrics", "schemas"):
        assert len(received.uploads[kind]) == 3
    # only the build has something to recommend: no empty file is uploaded for the other two
    assert len(received.uploads["recommendations"]) == 1
    assert all(u.items for kind in received.uploads for u in received.uploads[kind])
    # one job per invocation: the build had a runtime error, seed and freshness did not
    assert sorted(j.status for j in jobs.values()) == ["failed", "succeeded", "succeeded"]
    recs = [item for u in received.uploads["recommendations"] for item in u.items]
    by_type = {t: [r for r in recs if r["type"] == t] for t in {r["type"] for r in recs}}
    [pm25] = [r for r in by_type["Test failed"] if "who_pm25_limit" in r["content"]]
    assert pm25["level"] == "high" and "121 failing rows" in pm25["content"]
    [quiet] = by_type["Test warning"]
    assert quiet["level"] == "warning" and "quiet" in quiet["content"]
    [error] = by_type["Test error"]
    assert error["level"] == "high" and "no_such_column" in error["content"]
    [skipped] = by_type["Skipped"]
    assert skipped["level"] == "info" and skipped["scope"]["value"] == "airquality_metrics"
    assert "stg_airquality_" in skipped["content"]  # names the upstream failure
    metrics = [item for u in received.uploads["metrics"] for item in u.items]
    assert any(m["key"] == "freshness_status" and m["value"] == "pass"
               and m["scope"]["value"] == "openaq.opendata_airquality" for m in metrics)
    scores = [m for m in metrics if m["key"] == "score" and m["scope"]["perimeter"] == "database"]
    assert len(scores) == 1 and 0 < float(scores[0]["value"]) < 1

    second = ingest(copy, server=qalita_server)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "nothing new to ship" in second.stdout
    assert len(qalita_server.received.jobs) == 3


def test_server_down_waits_in_the_outbox_and_flush_delivers(copy, qalita_server):
    qalita_server.stop()
    # a short deadline: the sidecar's 60 s default would only make the test wait
    down = ingest({**copy, "QALITA_DEADLINE": "3"}, server=qalita_server)
    assert down.returncode == 75, down.stdout + down.stderr
    pending = list((Path(copy["QALITA_OUTBOX_DIR"]) / "pending").glob("*.json"))
    assert len(pending) == 3
    assert "qalita-sidecar flush" in down.stdout
    qalita_server.start()
    sent = flush(copy, qalita_server)
    assert sent.returncode == 0, sent.stdout + sent.stderr
    assert len(qalita_server.received.jobs) == 3 and qalita_server.received.rejected == []
    assert not list((Path(copy["QALITA_OUTBOX_DIR"]) / "pending").glob("*.json"))
    again = ingest(copy, server=qalita_server)
    assert again.returncode == 0 and "nothing new to ship" in again.stdout
    assert len(qalita_server.received.jobs) == 3


def test_without_settings_ingest_spools_and_says_how_to_send(copy):
    out = ingest(copy)
    assert out.returncode == 75, out.stdout + out.stderr
    assert "no QALITA endpoint configured" in out.stdout and "QALITA_WORKER_ENDPOINT" in out.stdout
    assert len(list((Path(copy["QALITA_OUTBOX_DIR"]) / "pending").glob("*.json"))) == 3


def test_artifacts_serve_when_the_tables_are_missing(copy, qalita_server):
    import duckdb

    con = duckdb.connect(copy["DBT_DUCKDB_PATH"])
    con.execute("drop schema main_qalita cascade")
    con.close()
    out = ingest(copy, server=qalita_server)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "tables not used: no table main_qalita.qalita_invocations" in out.stdout
    assert "run_results.json: invocation" in out.stdout and "sources.json: invocation" in out.stdout
    # the build (run_results.json) and the freshness check (sources.json); the seed left no file
    assert sorted(j.status for j in qalita_server.received.jobs.values()) == ["failed", "succeeded"]
    assert qalita_server.received.rejected == []
    again = ingest(copy, server=qalita_server)
    assert again.returncode == 0 and "already shipped" in again.stdout
    assert len(qalita_server.received.jobs) == 2


def test_dry_run_sends_and_writes_nothing(copy, qalita_server):
    out = ingest(copy, "--dry-run", server=qalita_server)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.count("would ship") == 3
    assert qalita_server.received.jobs == {}
    assert not (Path(copy["QALITA_OUTBOX_DIR"]) / "pending").exists() or \
        not list((Path(copy["QALITA_OUTBOX_DIR"]) / "pending").iterdir())


@pytest.mark.postgres
def test_postgres_tables_and_ingest(tmp_path, qalita_server):
    project = make_project(tmp_path, "prod")
    try:
        build(project)
        env = {**project.env, "QALITA_OUTBOX_DIR": str(tmp_path / "qalita" / "outbox")}
        check_tables_match_artifacts(recorded(env, "prod"), project.target_path)
        first = ingest(env, "--target", "prod", server=qalita_server)
        assert first.returncode == 0, first.stdout + first.stderr
        assert "table public_qalita.qalita_invocations (postgres://" in first.stdout
        assert len(qalita_server.received.jobs) == 3 and qalita_server.received.rejected == []
        second = ingest(env, "--target", "prod", server=qalita_server)
        assert second.returncode == 0 and "nothing new to ship" in second.stdout
        assert len(qalita_server.received.jobs) == 3
        shipped = project.query("select count(*) from public_qalita.qalita_shipments")
        assert shipped == [(3,)]
    finally:
        drop_database(project.env["DBT_POSTGRES_DATABASE"])


def test_the_recorded_environment_names_the_source_unless_env_is_given(copy, qalita_server):
    import duckdb

    con = duckdb.connect(copy["DBT_DUCKDB_PATH"])
    con.execute("update main_qalita.qalita_invocations set environment = 'staging' "
                "where command = 'seed'")
    con.close()
    out = ingest(copy, server=qalita_server)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "env dev, staging" in out.stdout
    published = sorted(s["name"] for s in qalita_server.received.sources_published)
    assert published == ["quality_compass (dev)", "quality_compass (staging)"]
    # --env overrides: the same invocations under another name are other shipments
    forced = ingest(copy, "--env", "qa", server=qalita_server)
    assert forced.returncode == 0 and "3 delivered" in forced.stdout
    again = ingest(copy, server=qalita_server)
    assert "nothing new to ship" in again.stdout
