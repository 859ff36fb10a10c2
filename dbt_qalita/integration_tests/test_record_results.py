"""The qalita package's on-run-end hook, through real dbt runs on DuckDB and PostgreSQL.

The runs select the air-quality part of the host project (Quality Compass needs a loaded run).
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest
from testkit import drop_database, make_project, require_postgres

AIRQUALITY = ("--select", "tag:airquality")
OPENAQ = ("--select", "source:openaq")
FAILING = {"airquality_failing_variant": True}


@pytest.fixture(scope="module", params=["dev", "prod"], ids=["duckdb", "postgres"])
def failing_build(request, tmp_path_factory):
    """The failing variant built once per adapter, as a GitHub Actions job would run it; read by
    the tests that only look at what that build recorded."""
    if request.param == "prod":
        require_postgres()
    project = make_project(tmp_path_factory.mktemp(f"failing-{request.param}"), request.param)
    try:
        project.build = project.run(
            "build", *AIRQUALITY, vars=FAILING, check=False,
            env={"GITHUB_ACTIONS": "true", "GITHUB_SHA": "abc123", "GITHUB_RUN_ID": "42",
                 "GITHUB_REPOSITORY": "acme/dq"})
        yield project
    finally:
        if request.param == "prod":
            drop_database(project.env["DBT_POSTGRES_DATABASE"])


def qschema(project) -> str:
    return "main_qalita" if project.target == "dev" else "public_qalita"


def node_results(artifact: dict) -> list[dict]:
    """run_results.json also lists the on-run-end hook itself; the table keeps node results only."""
    return [r for r in artifact["results"] if not r["unique_id"].startswith("operation.")]


def rows_for(project, invocation_id: str, cols: str = "unique_id, status") -> list[tuple]:
    return project.query(
        f"select {cols} from {qschema(project)}.qalita_results "
        f"where invocation_id = '{invocation_id}' order by unique_id")


def invocation(project, invocation_id: str) -> dict:
    cols = ("command, results_total, passed, warned, failed, errored, skipped, project_name, "
            "target_name, adapter_type, environment, dbt_version, schema_version, started_at, "
            "finished_at, git_sha, run_id")
    rows = project.query(f"select {cols} from {qschema(project)}.qalita_invocations "
                         f"where invocation_id = '{invocation_id}'")
    assert len(rows) == 1, rows
    return dict(zip([c.strip() for c in cols.split(",")], rows[0], strict=True))


def test_build_records_every_result_with_dbt_statuses(failing_build):
    """Failing / warning / erroring variant: one row per result; statuses and failures as dbt's."""
    dbt_project = failing_build
    proc = dbt_project.build
    assert proc.returncode == 1, proc.stdout[-3000:]  # the failing variant fails dbt, not the hook
    run_results = dbt_project.artifact("run_results.json")
    inv_id = run_results["metadata"]["invocation_id"]
    results = node_results(run_results)
    expected = sorted((r["unique_id"], r["status"]) for r in results)
    assert rows_for(dbt_project, inv_id) == expected

    failures = dict(rows_for(dbt_project, inv_id, "unique_id, failures"))
    for r in results:
        if r["status"] in ("fail", "warn"):
            assert failures[r["unique_id"]] == r["failures"] > 0

    statuses = {r["status"] for r in results}
    assert {"fail", "warn", "error", "pass", "success", "skipped"} <= statuses

    # Rows travel as positional lists: every column must land where run_results / the manifest say.
    manifest = dbt_project.artifact("manifest.json")
    nodes = {**manifest["nodes"], **manifest.get("unit_tests", {})}
    stored = {row[0]: row[1:] for row in rows_for(
        dbt_project, inv_id, "unique_id, execution_time, thread_id, rows_affected, tags, "
        "package_name, materialization, relation_name, completed_at")}
    for r in results:
        exec_time, thread, affected, tags, package, materialized, relation, completed = \
            stored[r["unique_id"]]
        node = nodes[r["unique_id"]]
        assert exec_time == pytest.approx(r["execution_time"]), r["unique_id"]
        assert thread == r["thread_id"]
        assert affected == (r["adapter_response"] or {}).get("rows_affected")
        assert json.loads(tags) == node["tags"]
        assert (package, materialized) == (node["package_name"], node["config"]["materialized"])
        assert relation == node.get("relation_name")
        execute = [t for t in r["timing"] if t["name"] == "execute"]
        if execute:
            assert completed == datetime.fromisoformat(execute[0]["completed_at"].rstrip("Z"))

    inv = invocation(dbt_project, inv_id)
    assert inv["command"] == "build"
    assert inv["results_total"] == len(results)
    for column, status in (("failed", "fail"), ("warned", "warn"), ("errored", "error"),
                           ("skipped", "skipped")):
        assert inv[column] == sum(r["status"] == status for r in results), column
    assert inv["adapter_type"] == ("duckdb" if dbt_project.target == "dev" else "postgres")
    assert inv["project_name"] == "quality_compass"
    assert inv["git_sha"] == "abc123" and inv["run_id"] == "42"
    assert inv["started_at"] <= inv["finished_at"]


def test_test_metadata_and_normalised_status(failing_build):
    dbt_project = failing_build
    inv_id = dbt_project.artifact("run_results.json")["metadata"]["invocation_id"]
    rows = rows_for(dbt_project, inv_id, "name, resource_type, status_normalised, severity, "
                    "test_name, test_type, column_name, attached_node, started_at, completed_at")
    by_name = {r[0]: r[1:] for r in rows}
    model = "model.quality_compass.stg_airquality"
    assert by_name["not_null_stg_airquality_city"] == (
        "test", "passed", "error", "not_null", "generic", "city", model,
        *by_name["not_null_stg_airquality_city"][7:])
    assert by_name["stg_airquality_failing_who_pm25_limit"][1:5] == (
        "failed", "error", "expect_column_values_to_be_between", "generic")
    assert by_name["stg_airquality_warning_it's_\"quiet\"_at_night"][1:5] == (
        "warned", "warn", "expression_is_true", "generic")
    assert by_name["stg_airquality_errors_by_design"][1:5] == (
        "errored", "error", "stg_airquality_errors_by_design", "singular")
    assert by_name["stg_airquality"][:2] == ("model", "passed")
    assert "skipped" in {r[1] for r in by_name.values()}  # downstream of the failing test
    for name, r in by_name.items():
        if r[1] == "skipped":  # never started: no times, not made-up ones
            assert (r[7], r[8]) == (None, None), name
        else:
            assert r[7] is not None and r[7] <= r[8], name  # started_at <= completed_at


def test_quotes_newlines_and_unicode_are_stored_intact(failing_build):
    dbt_project = failing_build
    rr = dbt_project.artifact("run_results.json")
    inv_id = rr["metadata"]["invocation_id"]
    stored = dict(rows_for(dbt_project, inv_id, "unique_id, message"))
    names = dict(rows_for(dbt_project, inv_id, "unique_id, name"))
    erroring = [r for r in node_results(rr) if r["status"] == "error"]
    assert erroring
    for r in node_results(rr):
        assert stored[r["unique_id"]] == r["message"]
    message = stored[erroring[0]["unique_id"]]
    assert "\n" in message and "'" in message and '"' in message and "$1" in message
    assert "\\ back" in message
    assert "stg_airquality_warning_it's_\"quiet\"_at_night" in names.values()


def test_freshness_is_recorded_and_goes_stale(dbt_project):
    dbt_project.run("seed", *AIRQUALITY)
    dbt_project.run("source", "freshness", *OPENAQ)
    rr = dbt_project.artifact("sources.json")
    inv_id = rr["metadata"]["invocation_id"]
    (row,) = rows_for(dbt_project, inv_id, "resource_type, status, status_normalised, "
                      "max_loaded_at, snapshotted_at, age, freshness_criteria")
    assert row[:3] == ("source", "pass", "passed")
    assert row[3] is not None and row[4] >= row[3] and row[5] >= 0
    assert json.loads(row[6])["warn_after"] == {"count": 24, "period": "hour"}
    assert invocation(dbt_project, inv_id)["command"] == "freshness"

    # The raw readings were last loaded 30 h ago: warn (24 h), then 80 h ago: error (72 h).
    for hours, status, normalised, code in ((30, "warn", "warned", 0), (80, "error", "failed", 1)):
        dbt_project.execute(
            f"update main.raw_load_log set loaded_at = loaded_at - interval '{hours} hours'"
            if dbt_project.target == "dev" else
            f"update public.raw_load_log set loaded_at = loaded_at - interval '{hours} hours'")
        proc = dbt_project.run("source", "freshness", *OPENAQ, check=False)
        assert proc.returncode == code, proc.stdout[-2000:]
        inv_id = dbt_project.artifact("sources.json")["metadata"]["invocation_id"]
        (row,) = rows_for(dbt_project, inv_id, "status, status_normalised, age")
        assert row[:2] == (status, normalised)
        assert row[2] > hours * 3600 - 60
        dbt_project.execute(
            f"update {'main' if dbt_project.target == 'dev' else 'public'}.raw_load_log "
            f"set loaded_at = loaded_at + interval '{hours} hours'")


def test_commands_without_outcomes_record_nothing(dbt_project):
    dbt_project.run("seed", *AIRQUALITY)
    count = f"select count(*) from {qschema(dbt_project)}.qalita_invocations"
    assert dbt_project.query(count) == [(1,)]
    for command in (["compile", *AIRQUALITY], ["ls"], ["parse"], ["docs", "generate", *AIRQUALITY]):
        dbt_project.run(*command)
    assert dbt_project.query(count) == [(1,)]


@pytest.mark.parametrize("batch", [{"qalita_batch_rows": 4}, {"qalita_batch_chars": 1500}],
                         ids=["by-rows", "by-size"])
def test_small_batches_split_the_insert_and_lose_nothing(dbt_project, batch):
    log = Path(dbt_project.env["DBT_LOG_PATH"]) / "dbt.log"
    inserts = '_qalita".qalita_results ('  # the results insert, as dbt logs each statement

    def insert_count() -> int:
        return log.read_text().count(inserts) if log.exists() else 0

    before = insert_count()
    dbt_project.run("build", *AIRQUALITY, vars={**FAILING, **batch},
                    check=False)
    rr = dbt_project.artifact("run_results.json")
    results = node_results(rr)
    inv_id = rr["metadata"]["invocation_id"]
    stored = rows_for(dbt_project, inv_id, "unique_id, status, message")
    assert stored == sorted((r["unique_id"], r["status"], r["message"]) for r in results)
    # several statements: ceil(results / 4) chunks of 4 rows, or more than one of 1,500 characters
    assert insert_count() - before >= (-(-len(results) // 4) if "qalita_batch_rows" in batch else 2)
