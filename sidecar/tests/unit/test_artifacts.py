"""Reading dbt artifacts: every supported schema version, and every way a file can be wrong."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from qalita_sidecar.cli import main
from qalita_sidecar.readers.dbt import artifacts
from qalita_sidecar.readers.dbt.artifacts import (
    ArtifactError,
    read_manifest,
    read_run_results,
    read_sources,
)

URL = "https://schemas.getdbt.com/dbt/{kind}/v{version}.json"
MODEL = "model.shop.orders"
TEST = "test.shop.not_null_orders_id.1a2b3c"
SOURCE = "source.shop.raw.payments"


def manifest_doc(version: int, project: str = "shop") -> dict:
    """A small manifest with the top-level keys each version has (v9: dbt 1.5 ... v12: 1.8+)."""
    test = {"unique_id": TEST, "resource_type": "test", "name": "not_null_orders_id",
            "package_name": project, "column_name": "id", "description": "",
            "test_metadata": {"name": "not_null", "kwargs": {"column_name": "id"}, "namespace": None},
            "config": {"severity": "ERROR", "enabled": True}, "tags": [],
            "depends_on": {"macros": ["macro.dbt.test_not_null"], "nodes": [MODEL]},
            "raw_code": "{{ test_not_null(**_dbt_generic_test_kwargs) }}"}
    if version >= 10:  # attached_node is read when present, depends_on serves otherwise
        test["attached_node"] = MODEL
    doc = {
        "metadata": {"dbt_schema_version": URL.format(kind="manifest", version=version),
                     "dbt_version": {9: "1.5.9", 10: "1.6.18", 11: "1.7.19", 12: "1.11.0"}[version],
                     "generated_at": "2026-03-01T08:00:00.000000Z", "invocation_id": "m-1",
                     "project_name": project, "adapter_type": "duckdb", "env": {}},
        "nodes": {
            MODEL: {"unique_id": MODEL, "resource_type": "model", "name": "orders",
                    "package_name": project, "description": "One row per order.",
                    "tags": "daily", "config": {"materialized": "table"},
                    "depends_on": {"macros": [], "nodes": [SOURCE]},
                    "columns": {"id": {"name": "id", "description": ""}}},
            TEST: test,
        },
        "sources": {SOURCE: {"unique_id": SOURCE, "resource_type": "source", "name": "payments",
                             "source_name": "raw", "package_name": project,
                             "freshness": {"warn_after": {"count": 1, "period": "day"}}}},
        "macros": {}, "docs": {}, "exposures": {}, "metrics": {}, "groups": {}, "selectors": {},
        "disabled": {}, "parent_map": {}, "child_map": {},
    }
    if version >= 10:
        doc["semantic_models"] = {}
    if version >= 11:
        doc["saved_queries"] = {}
    if version >= 12:
        doc["unit_tests"] = {"unit_test.shop.orders.t1": {
            "unique_id": "unit_test.shop.orders.t1", "resource_type": "unit_test", "name": "t1",
            "package_name": project, "depends_on": {"nodes": [MODEL]}}}
    return doc


def run_results_doc(version: int, unique_ids=(MODEL, TEST)) -> dict:
    results = []
    for uid in unique_ids:
        r = {"status": "success" if uid.startswith("model") else "fail", "unique_id": uid,
             "timing": [{"name": "execute", "started_at": "2026-03-01T08:00:01Z",
                         "completed_at": "2026-03-01T08:00:02Z"}],
             "thread_id": "Thread-1", "execution_time": 1.5,
             "adapter_response": {"_message": "OK", "rows_affected": 10}
             if uid.startswith("model") else {},
             "message": None if uid.startswith("model") else "Got 3 results",
             "failures": None if uid.startswith("model") else 3}
        if version >= 5:
            r.update({"compiled": True, "compiled_code": "select 1", "relation_name": '"orders"'})
        if version >= 6:
            r["batch_results"] = None
        results.append(r)
    meta = {"dbt_schema_version": URL.format(kind="run-results", version=version),
            "dbt_version": "1.11.0", "generated_at": "2026-03-01T08:00:10.000000Z",
            "invocation_id": "inv-42", "env": {}}
    if version >= 6:
        meta["invocation_started_at"] = "2026-03-01T07:59:58.500000Z"
    return {"metadata": meta, "results": results, "elapsed_time": 10.0,
            "args": {"which": "build", "select": []}}


def sources_doc(version: int) -> dict:
    return {
        "metadata": {"dbt_schema_version": URL.format(kind="sources", version=version),
                     "dbt_version": "1.11.0", "generated_at": "2026-03-01T09:00:00Z",
                     "invocation_id": "fresh-1", "env": {}},
        "results": [
            {"unique_id": SOURCE, "max_loaded_at": "2026-02-28T09:00:00+00:00",
             "snapshotted_at": "2026-03-01T09:00:00+00:00", "max_loaded_at_time_ago_in_s": 86400.0,
             "status": "warn", "criteria": {"warn_after": {"count": 1, "period": "day"}},
             "adapter_response": {}, "timing": [], "thread_id": "Thread-1", "execution_time": 0.1},
            {"unique_id": "source.shop.raw.refunds", "status": "runtime error",
             "error": "Database Error: relation raw.refunds does not exist"},
        ],
        "elapsed_time": 2.0,
    }


def write(tmp_path: Path, name: str, doc: dict | str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(doc, dict):
        doc = json.dumps(doc)
    path.write_bytes(doc if isinstance(doc, bytes) else doc.encode())
    return path


@pytest.mark.parametrize("version", [9, 10, 11, 12])
def test_manifest_versions(tmp_path, version):
    m = read_manifest(write(tmp_path, "manifest.json", manifest_doc(version)))
    assert (m.schema_version, m.project_name) == (version, "shop")
    t = m.get(TEST)
    assert (t.test_name, t.column_name, t.severity) == ("not_null", "id", "error")
    assert m.get(MODEL).tags == ("daily",) and m.get(MODEL).depends_on == (SOURCE,)
    assert m.get(SOURCE).source_name == "raw"
    assert ("unit_test.shop.orders.t1" in m.nodes) == (version >= 12)


@pytest.mark.parametrize("version", [4, 5, 6])
def test_run_results_versions(tmp_path, version):
    m = read_manifest(write(tmp_path, "manifest.json", manifest_doc(12)))
    inv = read_run_results(write(tmp_path, "run_results.json", run_results_doc(version)), m)
    assert (inv.invocation_id, inv.command, inv.project_name) == ("inv-42", "build", "shop")
    assert inv.finished_at == datetime(2026, 3, 1, 8, 0, 10)
    # v6 records the start; older versions: generated_at minus elapsed_time
    expected_start = datetime(2026, 3, 1, 7, 59, 58, 500000) if version >= 6 \
        else datetime(2026, 3, 1, 8, 0, 0)
    assert inv.started_at == expected_start
    model, test = inv.results
    assert (model.resource_type, model.name, model.rows_affected) == ("model", "orders", 10)
    assert (test.status, test.failures, test.test_name, test.column_name, test.attached_node) == \
        ("fail", 3, "not_null", "id", MODEL)


def test_test_metadata_from_a_v9_manifest_without_attached_node(tmp_path):
    m = read_manifest(write(tmp_path, "manifest.json", manifest_doc(9)))
    inv = read_run_results(write(tmp_path, "run_results.json", run_results_doc(4)), m)
    assert inv.results[1].attached_node == MODEL  # from depends_on


@pytest.mark.parametrize("version", [1, 2, 3])
def test_sources_versions(tmp_path, version):
    m = read_manifest(write(tmp_path, "manifest.json", manifest_doc(12)))
    inv = read_sources(write(tmp_path, "sources.json", sources_doc(version)), m)
    assert (inv.invocation_id, inv.command) == ("fresh-1", "freshness")
    stale, broken = inv.results
    assert (stale.status, stale.age, stale.resource_type, stale.name) == \
        ("warn", 86400.0, "source", "payments")
    assert broken.status == "runtime error" and "does not exist" in broken.message


def test_results_without_a_manifest_take_names_from_unique_ids(tmp_path):
    inv = read_run_results(write(tmp_path, "run_results.json", run_results_doc(6)))
    assert [(r.resource_type, r.name) for r in inv.results] == \
        [("model", "orders"), ("test", "not_null_orders_id")]


def test_a_disabled_node_still_gives_its_metadata(tmp_path):
    """A run with other vars can enable a test the latest manifest has disabled."""
    doc = manifest_doc(12)
    test = doc["nodes"].pop(TEST)
    doc["disabled"] = {TEST: [test]}
    m = read_manifest(write(tmp_path, "manifest.json", doc))
    assert m.get(TEST).test_name == "not_null"


BAD = [
    ("not JSON", b"<html>502 Bad Gateway</html>", "not valid JSON"),
    ("truncated", json.dumps(manifest_doc(12)).encode()[:300], "truncated"),
    ("empty", b"", "truncated"),
    ("no metadata", b'{"nodes": {}}', "not a dbt artifact"),
    ("a list", b"[1, 2]", "not a dbt artifact"),
]


@pytest.mark.parametrize(("label", "content", "reason"), BAD, ids=[b[0] for b in BAD])
def test_bad_files_are_one_error_naming_the_file(tmp_path, label, content, reason):
    path = write(tmp_path, "manifest.json", content)
    with pytest.raises(ArtifactError) as err:
        read_manifest(path)
    message = str(err.value)
    assert message.startswith(f"{path}: ") and "\n" not in message
    assert reason in message


def test_wrong_kind_and_unsupported_versions(tmp_path):
    results = write(tmp_path, "run_results.json", run_results_doc(6))
    with pytest.raises(ArtifactError, match=r"run_results.json: is a dbt run-results file, "
                                            r"expected manifest"):
        read_manifest(results)
    with pytest.raises(ArtifactError, match="manifest.json: is a dbt manifest file, expected run-results"):
        read_run_results(write(tmp_path, "manifest.json", manifest_doc(12)))
    with pytest.raises(ArtifactError, match=r"manifest schema v8 is not supported \(v9 to v12\)"):
        read_manifest(write(tmp_path, "old.json", {**manifest_doc(12), "metadata": {
            "dbt_schema_version": URL.format(kind="manifest", version=8), "project_name": "x"}}))
    with pytest.raises(ArtifactError, match=r"run-results schema v7 is not supported"):
        read_run_results(write(tmp_path, "new.json", run_results_doc(6) | {"metadata": {
            "dbt_schema_version": URL.format(kind="run-results", version=7)}}))
    with pytest.raises(ArtifactError, match=r"missing.json: cannot read"):
        read_manifest(tmp_path / "missing.json")
    bad_shape = run_results_doc(6)
    bad_shape["results"][0]["status"] = 3
    with pytest.raises(ArtifactError, match=r"bad.json: unexpected content for a run-results v6"):
        read_run_results(write(tmp_path, "bad.json", bad_shape))


def test_results_from_another_project_are_refused(tmp_path):
    m = read_manifest(write(tmp_path, "manifest.json", manifest_doc(12, project="shop")))
    other = run_results_doc(6, unique_ids=("model.crm.accounts", "test.crm.not_null_accounts_id.9"))
    path = write(tmp_path, "run_results.json", other)
    with pytest.raises(ArtifactError, match=r"run_results.json: none of its 2 results is in "
                                            r".*manifest.json \(project 'shop'\)"):
        read_run_results(path, m)
    src = sources_doc(3)
    for r in src["results"]:
        r["unique_id"] = r["unique_id"].replace("shop", "crm")
    with pytest.raises(ArtifactError, match=r"sources.json: none of its 2 results"):
        read_sources(write(tmp_path, "sources.json", src), m)


def test_cli_reports_a_corrupt_file_in_one_line_and_exits_1(tmp_path):
    write(tmp_path, "manifest.json", manifest_doc(12))
    results = write(tmp_path, "run_results.json", json.dumps(run_results_doc(6))[:-40])
    out = CliRunner().invoke(main, ["ingest", "dbt", "--no-tables", "--target-path", str(tmp_path),
                                    "--env", "ci", "--outbox", str(tmp_path / "outbox")],
                             env={"QALITA_WORKER_ENDPOINT": "", "QALITA_OUTBOX_DIR": ""})
    assert out.exit_code == 1
    assert out.output.strip().splitlines()[-1] == \
        f"qalita-sidecar: error: {results}: truncated"
    assert not (tmp_path / "outbox" / "pending").exists() or \
        not list((tmp_path / "outbox" / "pending").iterdir())


def test_version_ranges_are_the_documented_ones():
    assert (list(artifacts.MANIFEST_VERSIONS), list(artifacts.RUN_RESULTS_VERSIONS)) == \
        ([9, 10, 11, 12], [4, 5, 6])
