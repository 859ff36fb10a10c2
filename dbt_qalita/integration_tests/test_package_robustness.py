"""The package from another project: idempotence, concurrency, migration, failure policy."""

from __future__ import annotations

import subprocess

import pytest
from testkit import BIN, REPO, require_postgres

from .consumer import consumer_project
from .consumer import results_schema as schema


def counts(project) -> tuple[int, int]:
    (inv,) = project.query(f"select count(*) from {schema(project)}.qalita_invocations")
    (res,) = project.query(f"select count(*) from {schema(project)}.qalita_results")
    return inv[0], res[0]


def test_another_project_records_and_a_second_hook_run_adds_nothing(tmp_path, adapter_target):
    """The hook listed twice runs twice for one invocation: the key makes it a no-op."""
    project = consumer_project(tmp_path, adapter_target, hooks=2)
    try:
        project.run("build")
        results = [r for r in project.artifact("run_results.json")["results"]
                   if not r["unique_id"].startswith("operation.")]
        assert len(results) == 4  # seed, model, two tests
        assert counts(project) == (1, 4)
        (row,) = project.query(
            f"select project_name, passed from {schema(project)}.qalita_invocations")
        assert row == ("consumer", 4)
    finally:
        if adapter_target == "prod":
            from testkit import drop_database
            drop_database(project.env["DBT_POSTGRES_DATABASE"])


def test_an_older_table_gains_the_new_columns_and_keeps_its_rows(tmp_path, adapter_target):
    project = consumer_project(tmp_path, adapter_target)
    try:
        project.run("seed")
        s = schema(project)
        # What an older package version left: fewer columns, one row.
        project.execute(f"alter table {s}.qalita_results drop column freshness_criteria")
        project.execute(f"alter table {s}.qalita_results drop column tags")
        project.run("build")
        assert counts(project) == (2, 5)
        cols = {r[0] for r in project.query(
            "select column_name from information_schema.columns "
            f"where table_schema = '{s}' and table_name = 'qalita_results'")}
        assert {"freshness_criteria", "tags"} <= cols
        (old,) = project.query(f"select count(*) from {s}.qalita_results where tags is null")
        assert old == (1,)  # the seed row from before the migration, intact
    finally:
        if adapter_target == "prod":
            from testkit import drop_database
            drop_database(project.env["DBT_POSTGRES_DATABASE"])


@pytest.fixture
def pg_consumer(tmp_path):
    require_postgres()
    project = consumer_project(tmp_path, "prod", models=3)
    yield project
    from testkit import drop_database
    drop_database(project.env["DBT_POSTGRES_DATABASE"])


def test_two_concurrent_invocations_on_postgres_lose_no_rows(pg_consumer):
    """Both invocations start on an empty schema: they race to create it and its tables."""
    pg_consumer.run("build", vars={"qalita_enabled": False})
    procs = []
    for i in range(2):
        cmd = [str(BIN / "dbt"), "test", "--project-dir", str(pg_consumer.project_dir),
               "--profiles-dir", str(REPO), "--target", "prod"]
        env = {**pg_consumer.env, "DBT_TARGET_PATH": str(pg_consumer.target_path) + f"-{i}",
               "DBT_LOG_PATH": str(pg_consumer.target_path) + f"-logs-{i}"}
        procs.append(subprocess.Popen(cmd, cwd=pg_consumer.project_dir, env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    outs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert all("could not record" not in out for out in outs), outs
    assert counts(pg_consumer) == (2, 12)
    per_inv = pg_consumer.query("select invocation_id, count(*) from public_qalita.qalita_results "
                                "group by invocation_id")
    assert sorted(n for _, n in per_inv) == [6, 6]


def test_a_failing_hook_warns_and_keeps_the_run_green_unless_strict(pg_consumer):
    """A database error inside the hook (here a constraint) is a warning naming the invocation."""
    pg_consumer.run("seed")
    pg_consumer.execute("alter table public_qalita.qalita_results "
                        "add constraint no_models check (resource_type <> 'model')")
    proc = pg_consumer.run("build")
    inv_id = pg_consumer.artifact("run_results.json")["metadata"]["invocation_id"]
    assert f"qalita: could not record invocation {inv_id}" in proc.stdout
    assert "no_models" in proc.stdout
    # nothing half-written: the failed invocation left no rows at all
    assert counts(pg_consumer) == (1, 1)

    strict = pg_consumer.run("build", vars={"qalita_strict": True}, check=False)
    assert strict.returncode != 0
    assert "could not record invocation" in strict.stdout
