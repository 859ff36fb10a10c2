"""Real artifacts of dbt 1.0 to 1.12 and Fusion-shaped ones (sidecar/tests/fixtures/dbt, see its
README): each ships the outcomes its project was designed to give, and the right score.

The designed outcomes come from expected.json, written from the design and not from the files.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from qalita_sidecar.cli import main
from qalita_sidecar.readers.common import score_of
from qalita_sidecar.readers.dbt.artifacts import read_manifest, read_run_results, read_sources
from qalita_sidecar.readers.dbt.to_shipment import executes_nothing, to_shipment

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "dbt"
VERSIONS = sorted((p.name for p in FIXTURES.iterdir() if (p / "expected.json").exists()),
                  key=lambda v: (v == "fusion", [int(x) for x in v.split(".")] if v != "fusion"
                                 else []))
COUNTERS = ("passed", "failed", "warned", "errored", "skipped")


def test_every_dbt_minor_from_1_0_to_1_12_and_fusion_has_a_fixture():
    assert [f"1.{m}" for m in range(13)] + ["fusion"] == VERSIONS


def expected(version: str) -> dict:
    return json.loads((FIXTURES / version / "expected.json").read_text())


def designed_counts(design: dict) -> dict[str, int]:
    """Project level: data tests and unit tests both count as tests."""
    tests, units = design["build"]["tests"], design["build"]["unit_tests"] or {}
    return {c: tests.get(c, 0) + units.get(c, 0) for c in COUNTERS}


def project_metrics(shipment) -> dict:
    """The figures on the database scope, named after the QALITA source as QALITA's packs do."""
    return {m.key: m.value for m in shipment.metrics
            if m.scope.perimeter == "database" and m.scope.value == shipment.source_name}


@pytest.mark.parametrize("version", VERSIONS)
def test_a_build_ships_its_designed_outcomes_and_score(version):
    design, folder = expected(version), FIXTURES / version
    manifest = read_manifest(folder / "manifest.json")
    assert manifest.project_name == design["project_name"]  # dbt < 1.6 names it nowhere
    assert manifest.schema_version == int(design["schemas"]["manifest"].rsplit("/v", 1)[1][:-5])
    build = read_run_results(folder / "run_results.json", manifest)
    assert executes_nothing(build) is None
    assert manifest.warnings == () and build.warnings == ()

    shipment = to_shipment(build, project="compat", environment="ci", manifest=manifest)
    got = project_metrics(shipment)
    want = designed_counts(design)
    assert {c: got[f"tests_{c}"] for c in COUNTERS} == want
    assert got["tests_total"] == sum(want.values())
    ran = sum(want[c] for c in ("passed", "failed", "warned", "errored"))
    assert got["score"] == score_of(want["passed"], ran)
    # 3 of 6 data tests pass; dbt >= 1.8 adds a passing unit test: 4 of 7
    assert got["score"] == ("0.57" if design["build"]["unit_tests"] else "0.50")
    assert shipment.job.status == "failed"  # a model errors by design
    # each test's status, by name, as designed
    statuses = {r.name: r.status.lower() for r in build.results
                if r.resource_type in ("test", "unit_test")}
    assert statuses == {**design["build"]["test_status"], **design["build"]["unit_test_status"]}


@pytest.mark.parametrize("version", VERSIONS)
def test_freshness_ships_each_sources_status(version):
    design, folder = expected(version), FIXTURES / version
    manifest = read_manifest(folder / "manifest.json")
    freshness = read_sources(folder / "sources.json", manifest)
    shipment = to_shipment(freshness, project="compat", environment="ci", manifest=manifest)
    got = {m.scope.value.split(".")[-1]: m.value for m in shipment.metrics
           if m.key == "freshness_status"}
    # dbt 1.8 and later leave the source whose freshness query errors out of sources.json
    dropped = {d.split(":")[0].split(".")[1] for d in design["dbt_differs_from_design"]
               if d.startswith("freshness.")}
    assert got == {name: status for name, status in design["freshness"].items()
                   if name not in dropped}
    assert not [m for m in shipment.metrics if m.key.startswith("tests_")]


@pytest.mark.parametrize("version", VERSIONS)
def test_docs_generate_ships_no_test_outcome(version):
    folder = FIXTURES / version
    manifest = read_manifest(folder / "manifest.json")
    docs = read_run_results(folder / "run_results_docs.json", manifest)
    assert {r.status for r in docs.results} == set(expected(version)["docs_generate_statuses"])
    assert executes_nothing(docs) == "dbt docs generate compiles, it tests nothing"
    shipment = to_shipment(docs, project="compat", environment="ci", manifest=manifest)
    assert not [m for m in shipment.metrics if m.key.startswith("tests_") or m.key == "score"]


def ingest(target: Path, *extra: str) -> tuple[int, list[str]]:
    out = CliRunner().invoke(main, ["ingest", "dbt", "--no-tables", "--target-path", str(target),
                                    "--env", "ci", "--dry-run", *extra],
                             env={"QALITA_WORKER_ENDPOINT": "", "QALITA_OUTBOX_DIR": ""})
    assert "Traceback" not in out.output, out.output
    return out.exit_code, out.output.splitlines()


def target_with(tmp_path: Path, version: str, **files: str) -> Path:
    """A target/ folder holding the fixture's manifest and the named files."""
    target = tmp_path / "target"
    target.mkdir()
    shutil.copy(FIXTURES / version / "manifest.json", target / "manifest.json")
    for name, source in files.items():
        shutil.copy(FIXTURES / version / source, target / f"{name}.json")
    return target


@pytest.mark.parametrize("version", ["1.0", "1.5", "1.11", "fusion"])
def test_the_cli_says_a_docs_generate_run_results_is_not_shipped(tmp_path, version):
    target = target_with(tmp_path, version, run_results="run_results_docs.json")
    code, lines = ingest(target)
    assert code == 0
    assert (f"  {target / 'run_results.json'}: dbt docs generate compiles, it tests nothing: "
            "not shipped") in lines
    assert "mapped: nothing new" in lines


def test_a_sources_file_of_another_build_is_skipped_and_the_build_ships(tmp_path):
    target = target_with(tmp_path, "1.11", run_results="run_results.json")
    other = json.loads((FIXTURES / "1.11" / "sources.json").read_text())
    for r in other["results"]:
        r["unique_id"] = r["unique_id"].replace("qalita_compat", "another_project")
    (target / "sources.json").write_text(json.dumps(other))
    code, lines = ingest(target)
    assert code == 0
    [warning] = [line for line in lines if "warning" in line]
    assert warning.startswith(f"  warning: {target / 'sources.json'}: none of its 3 results is in")
    assert warning.endswith(": not shipped")
    assert any(line.startswith("mapped: 1 invocation(s)") for line in lines)
    assert any("would ship dbt build" in line for line in lines)


def test_a_run_operation_next_to_a_freshness_ships_the_freshness(tmp_path):
    target = target_with(tmp_path, "1.11", sources="sources.json")
    doc = json.loads((FIXTURES / "1.11" / "run_results.json").read_text())
    doc["args"]["which"] = "run-operation"
    doc["results"] = [dict(doc["results"][0], unique_id="macro.qalita_compat.grant_select")]
    (target / "run_results.json").write_text(json.dumps(doc))
    code, lines = ingest(target)
    assert code == 0
    assert (f"  {target / 'run_results.json'}: dbt run-operation runs a macro, it tests nothing: "
            "not shipped") in lines
    assert any("would ship dbt freshness" in line for line in lines)
    # artifacts alone cannot know what dbt left out of sources.json
    assert (f"  {target / 'sources.json'}: freshness runtime errors are only known from the "
            "results table (sources.json leaves them out since dbt 1.8)") in lines


def test_when_no_file_belongs_to_the_manifest_it_is_one_error_line(tmp_path):
    """Nothing at all to ship (no table, every file from another build): exit 1, naming it."""
    target = target_with(tmp_path, "1.11", run_results="run_results.json")
    doc = json.loads((target / "run_results.json").read_text())
    for r in doc["results"]:
        r["unique_id"] = r["unique_id"].replace("qalita_compat", "another_project")
    (target / "run_results.json").write_text(json.dumps(doc))
    code, lines = ingest(target)
    assert code == 1
    assert lines[-1].startswith(f"qalita-sidecar: error: {target / 'run_results.json'}: none of "
                                "its 16 results is in")  # the hook is no manifest node
