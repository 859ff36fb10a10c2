"""The loader on a real DuckDB file and a real PostgreSQL scratch database, through its CLI."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from testkit import REPO

TABLES = ("raw_node_results", "raw_entity_results", "raw_contributions", "raw_classifications",
          "raw_modeling_runs", "raw_modeling_experiments")


def load(project, run: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "quality_compass", "load", str(run), "--profiles-dir", str(REPO),
         "--project-dir", str(REPO), "--target", project.target],
        cwd=REPO, env=project.env, capture_output=True, text=True)


def expected_rows(run: Path) -> dict[str, int]:
    """Counted from the files, the way a user would check the load."""
    def lines(path: Path) -> int:
        return sum(1 for x in path.read_bytes().splitlines() if x.strip())

    nodes = sorted((run / "results" / "nodes").glob("*.jsonl"))

    return {
        "raw_node_results": len(nodes),
        "raw_entity_results": sum(lines(p) - 1 for p in nodes),
        "raw_contributions": sum(lines(p) for p in (run / "analysis" / "contribution")
                                 .glob("*.jsonl")),
        "raw_classifications": lines(run / "analysis" / "classification"
                                     / "classifications.jsonl"),
        "raw_modeling_runs": 1,
        "raw_modeling_experiments": len(json.loads((run / "modeling" / "experiments.json")
                                                   .read_text())),
    }


def counts(project, run_id: str) -> dict[str, int]:
    return {t: project.query(f"select count(*) from raw.{t} where run_id = '{run_id}'")[0][0]
            for t in TABLES}


def raw_tables(project) -> set[str]:
    return {r[0] for r in project.query(
        "select table_name from information_schema.tables where table_schema = 'raw'")}


@pytest.fixture(scope="module")
def runs(tmp_path_factory, gen) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("runs")
    return (gen(base / "one", 600, 1, "20260105080000"), gen(base / "two", 700, 2, "20260106080000"))


def test_load_reload_and_history(dbt_project, runs):
    one, two = runs
    proc = load(dbt_project, one)
    assert proc.returncode == 0, proc.stderr
    assert f"loaded run {one.name}" in proc.stdout and "rows/s" in proc.stdout
    want_one = expected_rows(one)
    assert counts(dbt_project, one.name) == want_one
    (first_loaded_at,) = dbt_project.query(
        "select distinct loaded_at from raw.raw_entity_results")[0]
    # every table of one load carries the same loaded_at
    for t in TABLES:
        assert dbt_project.query(f"select distinct loaded_at from raw.{t}") == [(first_loaded_at,)]
    # the stored JSON is the file's line, byte for byte
    node_file = one / "results" / "nodes" / "losIndex__medicareId__aggregate_time_period.jsonl"
    first, second = node_file.read_text().splitlines()[:2]
    assert dbt_project.query(
        "select json_data from raw.raw_node_results where file_path = "
        "'results/nodes/losIndex__medicareId__aggregate_time_period.jsonl'") == [(first,)]
    assert (second,) in dbt_project.query(
        "select json_data from raw.raw_entity_results where canonical_node_id = "
        "'losIndex__medicareId__aggregate_time_period'")
    assert dbt_project.query("select status, groups, duration_seconds > 0 from "
                             "raw.raw_modeling_runs")[0][:2] == (
        "completed", '["losIndex","readmissionRate","mortalityIndex","pctAllReturnsToIcu",'
                     '"meanIcuDaysIcuFile","icuCasesFromIcuFile"]')

    # the same run again replaces it: no duplicate, a new loaded_at
    assert load(dbt_project, one).returncode == 0
    assert counts(dbt_project, one.name) == want_one
    (reloaded_at,) = dbt_project.query("select distinct loaded_at from raw.raw_entity_results")[0]
    assert reloaded_at > first_loaded_at

    # a second run is kept next to the first (the models pick the latest or var run_id);
    # the parent folder stands for its newest run
    assert load(dbt_project, two.parent).returncode == 0
    assert counts(dbt_project, one.name) == want_one
    assert counts(dbt_project, two.name) == expected_rows(two)
    assert dbt_project.query("select count(distinct run_id) from raw.raw_entity_results") == [(2,)]
    ids = dbt_project.query("select count(*), count(distinct id) from raw.raw_entity_results")
    assert ids[0][0] == ids[0][1]


def corrupt(run: Path, dest: Path, rel: str, lineno: int, text: bytes) -> Path:
    """A copy of the run with line `lineno` of file `rel` replaced."""
    copy = dest / run.name
    shutil.copytree(run, copy)
    path = copy / rel
    lines = path.read_bytes().splitlines(keepends=True)
    lines[lineno - 1] = text + b"\n"
    path.write_bytes(b"".join(lines))
    return copy


@pytest.mark.parametrize("rel,lineno,text,message", [
    ("results/nodes/readmissionRate__medicareId_vizientServiceLine__dischargeMonth.jsonl", 7,
     b'{"entity": [{"id": "medicareId", "value": "0100', "malformed JSON"),
    ("analysis/classification/classifications.jsonl", 3, b"[1, 2]", "expected a JSON object"),
    ("results/nodes/losIndex__medicareId__aggregate_time_period.jsonl", 1,
     b'{"entity": []}', "the first line must be the node metadata"),
    ("analysis/contribution/losIndex__weighted_mean.jsonl", 2,
     b'{"run_id": "19990101000000", "metric_id": "losIndex"}', "differs from the run"),
], ids=["truncated-line", "not-an-object", "no-node-metadata", "foreign-run-id"])
def test_bad_line_loads_nothing_of_the_run(dbt_project, runs, tmp_path, rel, lineno, text,
                                           message):
    one, two = runs
    assert load(dbt_project, one).returncode == 0
    before = counts(dbt_project, one.name)

    # a new run with a bad line: nothing of it lands, the run already there is untouched
    bad_two = corrupt(two, tmp_path / "new", rel, lineno, text)
    proc = load(dbt_project, bad_two)
    assert proc.returncode == 1
    err = proc.stderr.strip()
    assert err.startswith(f"error: {bad_two / rel}:{lineno}: "), err
    assert message in err and len(err.splitlines()) == 1, err
    assert counts(dbt_project, two.name) == dict.fromkeys(TABLES, 0)
    assert counts(dbt_project, one.name) == before

    # a reload of a loaded run with a bad line keeps the previous load whole
    proc = load(dbt_project, corrupt(one, tmp_path / "again", rel, lineno,
                                     text.replace(b"19990101000000", b"x")))
    assert proc.returncode == 1 and f"{rel}:{lineno}: " in proc.stderr
    assert counts(dbt_project, one.name) == before


def test_warehouse_error_rolls_back_every_table(dbt_project, runs):
    """The last table cannot take the rows: the five tables before it are rolled back too."""
    one, _ = runs
    dbt_project.execute("create schema raw")
    dbt_project.execute("create table raw.raw_modeling_experiments (id int, run_id varchar(255), "
                        "loaded_at timestamp, json_data integer)")
    proc = load(dbt_project, one)
    assert proc.returncode == 1
    err = proc.stderr.strip()
    assert f"loading run {one.name} failed, nothing loaded" in err and len(err.splitlines()) == 1
    assert raw_tables(dbt_project) == {"raw_modeling_experiments"}
    assert dbt_project.query("select count(*) from raw.raw_modeling_experiments") == [(0,)]


def test_not_a_run_folder(dbt_project, tmp_path):
    proc = load(dbt_project, tmp_path)
    assert proc.returncode == 1
    assert proc.stderr.strip() == f"error: {tmp_path}: not a run folder (no results/ inside, " \
                                  "nor any run folder)"


def test_text_survives_byte_for_byte(dbt_project, runs, tmp_path):
    """Quotes, commas, backslashes, non-ASCII text and a line ending in CRLF reach the warehouse
    exactly as the file has them (the bulk path goes through CSV)."""
    one, _ = runs
    rel = "analysis/classification/classifications.jsonl"
    line = json.loads((one / rel).read_text().splitlines()[0])
    line["classification_reasoning"] = 'a "quoted", comma; back\\slash \\n; é ✓ 中; ""'
    text = json.dumps(line, ensure_ascii=False)
    copy = corrupt(one, tmp_path, rel, 1, text.encode() + b"\r")
    node = copy / "results" / "nodes" / "losIndex__medicareId__dischargeMonth.jsonl"
    lines = node.read_bytes().splitlines()
    node.write_bytes(b"".join(x + b"\r\n" for x in lines))  # a file written on Windows
    assert load(dbt_project, copy).returncode == 0
    stored = dbt_project.query("select json_data from raw.raw_classifications "
                               "where json_data like '%back%slash%'")
    assert stored == [(text,)]
    assert counts(dbt_project, one.name) == expected_rows(one)
    assert sorted(dbt_project.query(
        "select json_data from raw.raw_entity_results where canonical_node_id = "
        "'losIndex__medicareId__dischargeMonth'")) == sorted((x.decode(),) for x in lines[1:])
