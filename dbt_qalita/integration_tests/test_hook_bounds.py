"""PostgreSQL: the hook bounds its own wait and a timeout or a cancellation never fails the run.

The production cases: a `statement_timeout` set on the dbt role (managed PostgreSQL), the results
table locked by another session (a long read, `VACUUM FULL`, another tool), an administrator
cancelling the hook's query. Each must end in one `qalita:` warning, dbt's exit code untouched,
within the hook's bound; strict mode makes it an error.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg2
import pytest
from testkit import PG_HOST, PG_PORT, PG_USER, drop_database, postgres_execute, require_postgres

from .consumer import consumer_project, hook_warnings, node_results

RESULTS = "public_qalita.qalita_results"


@pytest.fixture
def pg_consumer(tmp_path):
    require_postgres()
    project = consumer_project(tmp_path, "prod")
    project.run("seed")  # the results tables exist from here on
    yield project
    drop_database(project.env["DBT_POSTGRES_DATABASE"])


@pytest.fixture
def timed_out_role_consumer(tmp_path):
    """The consumer run by a throwaway role whose sessions have `statement_timeout = 2s`."""
    require_postgres()
    role = f"qc_role_{uuid.uuid4().hex[:10]}"
    postgres_execute("postgres", f'create role "{role}" login')
    project = consumer_project(tmp_path, "prod")
    database = project.env["DBT_POSTGRES_DATABASE"]
    try:
        postgres_execute("postgres", f'alter database "{database}" owner to "{role}"')
        postgres_execute("postgres", f"alter role \"{role}\" set statement_timeout = '2s'")
        project.env["DBT_POSTGRES_USER"] = role
        project.run("seed")
        yield project
    finally:
        drop_database(database)
        postgres_execute("postgres", f'drop role if exists "{role}"')


@contextmanager
def locked(database: str, relation: str = RESULTS) -> Iterator[psycopg2.extensions.connection]:
    """Another session holding ACCESS EXCLUSIVE on `relation` until the block ends."""
    con = psycopg2.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname=database)
    try:
        with con.cursor() as cur:
            cur.execute(f"lock table {relation} in access exclusive mode")
        yield con
    finally:
        con.rollback()
        con.close()


def hook_seconds(project) -> float:
    """How long the on-run-end hook took, as dbt measured it (compile + execute)."""
    (hook,) = [r for r in project.artifact("run_results.json")["results"]
               if r["unique_id"].startswith("operation.")]
    return hook["execution_time"]


def assert_green_with_one_warning(project, proc) -> str:
    assert proc.returncode == 0, proc.stdout[-4000:]
    inv_id = project.artifact("run_results.json")["metadata"]["invocation_id"]
    warnings = hook_warnings(proc.stdout)
    assert len(warnings) == 1, warnings
    assert f"qalita: could not record invocation {inv_id}" in warnings[0]
    assert "Traceback" not in proc.stdout + proc.stderr
    # nothing half-written: only the seed's invocation is in the table
    (count,) = project.query("select count(*) from public_qalita.qalita_invocations")
    assert count == (1,)
    return warnings[0]


def test_a_held_lock_ends_in_one_warning_within_the_hook_bound(pg_consumer):
    """No timeout anywhere but the hook's own: it gives up after its lock_timeout (default 5 s,
    var qalita_lock_timeout); var qalita_statement_timeout bounds each of its statements."""
    database = pg_consumer.env["DBT_POSTGRES_DATABASE"]
    with locked(database):
        proc = pg_consumer.run("build", check=False)
    assert "lock timeout" in assert_green_with_one_warning(pg_consumer, proc)
    assert 4.5 <= hook_seconds(pg_consumer) < 8, hook_seconds(pg_consumer)
    assert {r["status"] for r in node_results(pg_consumer.artifact("run_results.json"))} <= {
        "success", "pass"}

    with locked(database):
        proc = pg_consumer.run("build", check=False, vars={"qalita_lock_timeout": "500ms"})
    assert "lock timeout" in assert_green_with_one_warning(pg_consumer, proc)
    assert hook_seconds(pg_consumer) < 3.5, hook_seconds(pg_consumer)

    with locked(database):
        proc = pg_consumer.run("build", check=False,
                               vars={"qalita_lock_timeout": "30s", "qalita_statement_timeout": "1s"})
    assert "statement timeout" in assert_green_with_one_warning(pg_consumer, proc)
    assert hook_seconds(pg_consumer) < 4, hook_seconds(pg_consumer)

    # a value that is not a duration is one line naming the var, and the run stays green
    proc = pg_consumer.run("build", check=False, vars={"qalita_lock_timeout": "soon"})
    assert "var qalita_lock_timeout is 'soon'" in assert_green_with_one_warning(pg_consumer, proc)


def test_the_role_statement_timeout_and_a_held_lock_keep_the_run_green(timed_out_role_consumer):
    """The role's 2 s is stricter than the hook's own bound: it is kept, and its cancellation
    (query_canceled, which a plain `WHEN OTHERS` does not catch) is a warning."""
    project = timed_out_role_consumer
    with locked(project.env["DBT_POSTGRES_DATABASE"]):
        proc = project.run("build", check=False)
    warning = assert_green_with_one_warning(project, proc)
    assert "statement timeout" in warning
    assert hook_seconds(project) < 5, hook_seconds(project)

    with locked(project.env["DBT_POSTGRES_DATABASE"]):
        strict = project.run("build", vars={"qalita_strict": True}, check=False)
    assert strict.returncode != 0
    assert len(hook_warnings(strict.stdout)) == 1, strict.stdout[-3000:]

    # and once the lock is gone the same role records normally
    project.run("build")
    (count,) = project.query("select count(*) from public_qalita.qalita_invocations")
    assert count == (2,)


def test_an_administrator_cancelling_the_hook_keeps_the_run_green(pg_consumer):
    """pg_cancel_backend on the hook's session while it waits for the lock."""
    database = pg_consumer.env["DBT_POSTGRES_DATABASE"]
    cancelled: list[int] = []

    def cancel_the_waiter(stop: threading.Event) -> None:
        while not stop.is_set() and not cancelled:
            con = psycopg2.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname=database)
            con.autocommit = True
            with con.cursor() as cur:
                cur.execute("select pid from pg_stat_activity where datname = %s "
                            "and wait_event_type = 'Lock' and pid <> pg_backend_pid()", (database,))
                for (pid,) in cur.fetchall():
                    cur.execute("select pg_cancel_backend(%s)", (pid,))
                    cancelled.append(pid)
            con.close()
            time.sleep(0.2)

    stop = threading.Event()
    with locked(database):
        admin = threading.Thread(target=cancel_the_waiter, args=(stop,))
        admin.start()
        try:
            proc = pg_consumer.run("build", check=False,
                                   vars={"qalita_lock_timeout": "60s",
                                         "qalita_statement_timeout": "60s"})
        finally:
            stop.set()
            admin.join()
    assert cancelled, "the hook never waited on the lock"
    warning = assert_green_with_one_warning(pg_consumer, proc)
    assert "canceling statement due to user request" in warning
    assert hook_seconds(pg_consumer) < 20
