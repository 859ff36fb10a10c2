"""dbt 1.8 .. 1.12 on DuckDB and PostgreSQL: the qalita package records what dbt reports, and the
sidecar reads the same from the package's tables as from dbt's artifacts alone.

`make test-compat`. The venvs are cached in ${QALITA_COMPAT_CACHE:-~/.cache/qalita-compat}.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

import design
import pytest
import runs
import tomllib
from suite import ADAPTERS, DOCS_RUN, get_run

pytestmark = pytest.mark.compat

REPO = runs.consumer.REPO
FIXTURES = REPO / "sidecar" / "tests" / "fixtures" / "dbt"
# "  would ship dbt build qalita_compat duckdb 3f34b816: job failed, 44 metrics, ... (key 0c7f)"
WOULD_SHIP = re.compile(r"would ship dbt (\S+) (\S+) (\S+) ([0-9a-f]{8}): (.*?)(?: \(key \w+\))?$")
ERRORING_SOURCE = "source.qalita_compat.compat_raw.raw_customers"


def node_results(run_results: dict) -> list[dict]:
    """run_results.json also lists the on-run-end hook; the table keeps node results only."""
    return [r for r in run_results["results"] if not r["unique_id"].startswith("operation.")]


def shipped_counts() -> dict[str, int]:
    """The project-level test counts the design gives: its unit test counts as a test."""
    built = design.design(with_unit_tests=True, with_hook=True)["build"]
    return {**built["tests"], "passed": built["tests"]["passed"] + built["unit_tests"]["passed"]}


def recorded_differences(minor: str) -> list[str]:
    """Where this minor's real dbt differs from the design, as its artifact fixture recorded."""
    expected = FIXTURES / minor / "expected.json"
    if not expected.exists():
        return []
    return json.loads(expected.read_text())["dbt_differs_from_design"]


def would_ship(proc: subprocess.CompletedProcess) -> dict[str, str]:
    """invocation id (8 characters) -> what the dry run says it would ship."""
    assert proc.returncode == 0, f"ingest dbt --dry-run exited {proc.returncode}:\n" \
        f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    found = {}
    for line in proc.stdout.splitlines():
        m = WOULD_SHIP.search(line.strip())
        if m:
            found[m.group(4)] = f"dbt {m.group(1)} {m.group(2)} {m.group(3)}: {m.group(5)}"
    return found


def test_dbt_gives_the_designed_outcomes(pair: runs.Run):
    """Every status the project is built for (pass, fail, warn, error, skipped, unit test,
    freshness pass / warn / error / runtime error) is what this dbt reports."""
    docs = pair.docs or {"results": []}
    got = design.observed(pair.manifest, pair.run_results, pair.sources, docs)
    want = design.design(with_unit_tests=True, with_hook=True)
    if pair.docs is None:  # docs generate runs once (conftest.DOCS_RUN)
        del got["docs_generate_statuses"], want["docs_generate_statuses"]
    assert design.differences(want, got) == recorded_differences(pair.minor)
    kinds = {r["unique_id"].split(".")[0] for r in pair.run_results["results"]}
    assert kinds >= {"seed", "snapshot", "model", "test", "unit_test"}


def test_results_table_equals_run_results(pair: runs.Run):
    """The package's rows of the build: one per node result, each with dbt's status."""
    rows = pair.run.query(
        f"select unique_id, status, failures, message from {pair.qalita_schema}.qalita_results "
        f"where invocation_id = '{pair.build_id}' order by unique_id")
    expected = sorted((r["unique_id"], r["status"], r["failures"], r["message"])
                      for r in node_results(pair.run_results))
    assert len(rows) == len(expected)
    assert rows == expected
    assert {s for _, s, _, _ in rows} >= {"pass", "fail", "warn", "error", "skipped", "success"}

    counts = pair.run.query(
        f"select results_total, passed, warned, failed, errored, skipped, command "
        f"from {pair.qalita_schema}.qalita_invocations where invocation_id = '{pair.build_id}'")
    statuses = [r["status"] for r in node_results(pair.run_results)]
    assert counts == [(len(statuses), statuses.count("pass") + statuses.count("success"),
                       statuses.count("warn"), statuses.count("fail"), statuses.count("error"),
                       statuses.count("skipped"), "build")]


def test_freshness_table_equals_sources_json(pair: runs.Run):
    """The freshness rows are sources.json's, plus the source whose freshness query errored:
    dbt leaves runtime errors out of sources.json, the hook sees them."""
    rows = dict(pair.run.query(
        f"select unique_id, status from {pair.qalita_schema}.qalita_results "
        f"where invocation_id = '{pair.freshness_id}'"))
    from_file = {r["unique_id"]: r["status"] for r in pair.sources["results"]}
    assert set(from_file.values()) >= {"pass", "warn", "error"}
    assert rows == {**from_file, ERRORING_SOURCE: "runtime error"}


def test_sidecar_counts_the_same_from_tables_and_artifacts(pair: runs.Run):
    """What the sidecar would ship for the build, read from the tables and from the artifacts
    alone: the same results by status, the same test counts (the designed ones), score and job
    status."""
    files, tables = pair.read["files"], pair.read["tables"]
    assert set(files) == {pair.build_id, pair.freshness_id}
    assert set(tables) == set(files), "the tables lack an invocation the files hold"
    build_files, build_tables = files[pair.build_id], tables[pair.build_id]
    assert build_files == build_tables
    assert build_files["tests"] == shipped_counts()
    assert build_files["results"] == len(node_results(pair.run_results))
    assert build_files["job"] == "failed" and build_files["score"] == "0.57"  # 4 of 7 passed

    fresh_files, fresh_tables = files[pair.freshness_id], tables[pair.freshness_id]
    assert fresh_files["statuses"] == {"error": 1, "pass": 1, "warn": 1}
    assert fresh_tables["statuses"] == {**fresh_files["statuses"], "runtime error": 1}


def test_sidecar_dry_run_ships_the_same_from_tables_and_artifacts(pair: runs.Run):
    build = pair.build_id[:8]
    from_tables, from_files = would_ship(pair.dry_run_tables), would_ship(pair.dry_run_files)
    assert f"invocation {pair.build_id} is in the table" in pair.dry_run_tables.stdout
    assert from_files[build] == from_tables[build]
    assert from_files[build].startswith(f"dbt build qalita_compat {pair.adapter}: job failed")
    assert " 0 metrics" not in from_files[build]


def test_docs_generate_ships_no_test_outcome(compat_session):
    """docs generate writes run_results.json too, every test `success`: no pass to count."""
    run = get_run(compat_session, *DOCS_RUN)
    assert run.docs is not None and {r["status"] for r in run.docs["results"]} == {"success"}
    proc = run.dry_run_docs
    assert proc is not None and proc.returncode == 0, proc and proc.stderr[-2000:]
    assert "tests nothing" in proc.stdout, proc.stdout


# The sidecar installed beside a user's dbt 1.9 (venvs.py builds that venv so: dbt first, then
# `pip install ./sidecar[duckdb,postgres]`); its own Python and CLI read the 1.9 runs above.


def test_sidecar_installs_beside_dbt_19_and_changes_nothing_of_it(compat_session):
    venv = get_run(compat_session, "1.9", "duckdb").venv
    assert venv.version.with_sidecar
    assert venv.dbt_version().startswith("1.9."), venv.dbt_version()
    version = subprocess.run([str(venv.bin / "dbt"), "--version"], capture_output=True, text=True)
    assert version.returncode == 0 and re.search(r"installed: 1\.9\.\d+", version.stdout), \
        version.stdout + version.stderr
    sidecar_version = tomllib.loads((REPO / "sidecar" / "pyproject.toml").read_text())[
        "project"]["version"]
    assert venv.distribution_version("qalita-sidecar") == sidecar_version
    before, after = venv.freeze("before-sidecar"), venv.freeze("after-sidecar")
    changed = {name: (v, after.get(name)) for name, v in before.items() if after.get(name) != v}
    assert changed == {}, "installing the sidecar changed dbt's environment"
    assert "qalita-sidecar" in after


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_sidecar_in_dbt_19_reads_the_tables_dbt_19_wrote(compat_session, adapter):
    run = get_run(compat_session, "1.9", adapter)
    assert run.sidecar_python.is_relative_to(run.venv.path)
    out = run.dry_run_tables.stdout
    assert f"table {run.qalita_schema}.qalita_invocations" in out, out
    assert f"invocation {run.build_id} is in the table" in out, out
    assert f"invocation {run.freshness_id} is in the table" in out, out
    shipped = would_ship(run.dry_run_tables)
    assert shipped[run.build_id[:8]].startswith("dbt build ")
    assert run.read["tables"][run.build_id]["tests"] == shipped_counts()
    assert run.venv.dbt_version().startswith("1.9.")  # running the sidecar changed nothing


def test_the_sidecar_alone_installs_no_dbt(tmp_path):
    """`pip install ./sidecar` in a fresh venv: what the sidecar imports, and nothing of dbt."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet", str(REPO / "sidecar")],
                         capture_output=True, text=True)
    assert pip.returncode == 0, pip.stdout[-2000:] + pip.stderr[-2000:]
    listed = subprocess.run([str(venv / "bin" / "pip"), "list", "--format=json"],
                            capture_output=True, text=True, check=True)
    names = {p["name"].lower() for p in json.loads(listed.stdout)}
    assert "qalita-sidecar" in names
    assert not {n for n in names if n.startswith("dbt")}, sorted(names)
    cli = subprocess.run([str(venv / "bin" / "qalita-sidecar"), "ingest", "dbt", "--help"],
                         capture_output=True, text=True)
    assert cli.returncode == 0 and "--no-tables" in cli.stdout, cli.stdout + cli.stderr
