"""DuckDB has no exception handler in SQL: the hook checks the tables before it writes. A table
that differs from the package's shape is one warning, left untouched, and the run stays green."""

from __future__ import annotations

import pytest

from .consumer import consumer_project, hook_warnings


@pytest.fixture
def duckdb_consumer(tmp_path):
    project = consumer_project(tmp_path, "dev")
    project.run("seed")  # the results tables exist from here on
    return project


def counts(project) -> tuple[int, int]:
    (inv,) = project.query("select count(*) from main_qalita.qalita_invocations")
    (res,) = project.query("select count(*) from main_qalita.qalita_results")
    return inv[0], res[0]


def assert_skipped_with_one_warning(project, proc, finding: str) -> None:
    assert proc.returncode == 0, proc.stdout[-3000:]
    inv_id = project.artifact("run_results.json")["metadata"]["invocation_id"]
    (warning,) = hook_warnings(proc.stdout)
    assert f"qalita: could not record invocation {inv_id}" in warning
    assert finding in warning and "the table was left as it is" in warning
    assert counts(project) == (1, 1)  # the seed's invocation only


def test_a_table_of_another_shape_is_a_warning_and_is_not_written(duckdb_consumer):
    project = duckdb_consumer
    project.execute("alter table main_qalita.qalita_results alter failures type varchar")
    proc = project.run("build", check=False)
    assert_skipped_with_one_warning(project, proc,
                                    "main_qalita.qalita_results.failures is VARCHAR, not BIGINT")

    strict = project.run("build", check=False, vars={"qalita_strict": True})
    assert strict.returncode != 0
    assert len(hook_warnings(strict.stdout)) == 1, strict.stdout[-3000:]

    project.execute("alter table main_qalita.qalita_results alter failures type bigint")
    project.execute("alter table main_qalita.qalita_results alter column message set not null")
    proc = project.run("build", check=False)
    assert_skipped_with_one_warning(project, proc, "main_qalita.qalita_results.message is NOT NULL")

    # back to the package's shape: recorded again
    project.execute("alter table main_qalita.qalita_results alter column message drop not null")
    project.run("build")
    assert counts(project) == (2, 5)


def test_a_view_in_place_of_a_table_is_a_warning(duckdb_consumer):
    project = duckdb_consumer
    project.execute("alter table main_qalita.qalita_invocations rename to invocations_kept; "
                    "create view main_qalita.qalita_invocations as select * from "
                    "main_qalita.invocations_kept")
    proc = project.run("build", check=False)
    assert proc.returncode == 0, proc.stdout[-3000:]
    (warning,) = hook_warnings(proc.stdout)
    assert "main_qalita.qalita_invocations is a view, not a table" in warning
    (res,) = project.query("select count(*) from main_qalita.qalita_results")
    assert res == (1,)
