"""Reading dbt artifacts: every supported schema version, and every way a file can be wrong."""

from __future__ import annotations

import hashlib
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


DBT_OF_MANIFEST = {4: "1.0.9", 5: "1.1.6", 6: "1.2.7", 7: "1.3.8", 8: "1.4.10", 9: "1.5.9",
                   10: "1.6.18", 11: "1.7.19", 12: "1.11.0", 20: "2.0.0-preview.154"}


def manifest_doc(version: int, project: str = "shop") -> dict:
    """A small manifest with the top-level keys each version has (v4: dbt 1.0 ... v12: 1.8+,
    v20: Fusion); project_name from v10 (dbt 1.6), project_id (md5 of the name) in all."""
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
                     "dbt_version": DBT_OF_MANIFEST[version],
                     "generated_at": "2026-03-01T08:00:00.000000Z", "invocation_id": "m-1",
                     "project_id": hashlib.md5(project.encode()).hexdigest(),
                     "adapter_type": "duckdb", "env": {}},
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
        doc["metadata"]["project_name"] = project
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


@pytest.mark.parametrize("version", [*range(4, 13), 20])
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
    ("invalid UTF-8 in metadata", json.dumps(manifest_doc(12)).encode().replace(b'"m-1"',
                                                                               b'"m-\xff"'),
     "not valid UTF-8"),
    ("invalid UTF-8 in a node", json.dumps(manifest_doc(12)).encode().replace(
        b"One row per order.", b"One row per \xe9 order."), "not valid UTF-8"),
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
    with pytest.raises(ArtifactError, match=r"manifest schema v3 is not supported "
                                            r"\(v4 to v12, v20\)"):
        read_manifest(write(tmp_path, "old.json", {**manifest_doc(12), "metadata": {
            "dbt_schema_version": URL.format(kind="manifest", version=3), "project_name": "x"}}))
    with pytest.raises(ArtifactError, match=r"missing.json: cannot read"):
        read_manifest(tmp_path / "missing.json")
    bad_shape = run_results_doc(6)
    bad_shape["results"][0]["status"] = 3
    with pytest.raises(ArtifactError, match=r"bad.json: unexpected content for a run-results v6"):
        read_run_results(write(tmp_path, "bad.json", bad_shape))


def test_a_newer_compatible_version_is_read_with_one_warning_naming_it(tmp_path):
    doc = run_results_doc(6)
    doc["metadata"]["dbt_schema_version"] = URL.format(kind="run-results", version=7)
    doc["results"][0]["a_field_of_tomorrow"] = {"x": 1}
    path = write(tmp_path, "run_results.json", doc)
    inv = read_run_results(path)
    assert len(inv.results) == 2
    [warning] = inv.warnings
    assert warning.startswith(f"{path}: run-results schema v7 is newer") and "v1 to v6" in warning
    m = read_manifest(write(tmp_path, "manifest.json", manifest_doc(12) | {"metadata": {
        **manifest_doc(12)["metadata"], "dbt_schema_version": URL.format(kind="manifest",
                                                                          version=21)}}))
    assert m.project_name == "shop" and "manifest schema v21 is newer" in m.warnings[0]
    # newer and not compatible: one line naming the version
    doc["results"][0]["status"] = {"now": "an object"}
    with pytest.raises(ArtifactError, match=r"run_results.json: unexpected content for a "
                                            r"run-results v7 \(newer than the known versions"):
        read_run_results(write(tmp_path, "run_results.json", doc))


def test_a_manifest_without_project_name_takes_the_root_projects_package(tmp_path):
    """dbt < 1.6: the root project is the package whose md5 is metadata.project_id."""
    doc = manifest_doc(9, project="shop")
    dep = "model.dbt_project_evaluator.fct_x"
    for i in range(5):  # a package owning more nodes than the project does
        doc["nodes"][f"{dep}{i}"] = {"unique_id": f"{dep}{i}", "resource_type": "model",
                                     "name": f"fct_x{i}", "package_name": "dbt_project_evaluator"}
    assert read_manifest(write(tmp_path, "manifest.json", doc)).project_name == "shop"
    del doc["metadata"]["project_id"]  # without the id: the package owning most nodes
    assert read_manifest(write(tmp_path, "m2.json", doc)).project_name == "dbt_project_evaluator"
    empty = manifest_doc(9)
    empty["nodes"], empty["sources"] = {}, {}
    with pytest.raises(ArtifactError, match="metadata.project_name is missing"):
        read_manifest(write(tmp_path, "m3.json", empty))


def test_fusion_shapes_are_read(tmp_path):
    """Nanosecond timestamps, results without compiled/compiled_code/batch_results/message, args
    with only command, which and __other__."""
    doc = run_results_doc(6)
    doc["metadata"]["generated_at"] = "2026-03-01T08:00:10.745090400Z"
    doc["metadata"]["invocation_started_at"] = "2026-03-01T07:59:58.500000400Z"
    for r in doc["results"]:
        for key in ("compiled", "compiled_code", "batch_results", "message"):
            r.pop(key, None)
    doc["args"] = {"command": "build", "which": "build", "__other__": {}}
    inv = read_run_results(write(tmp_path, "run_results.json", doc))
    assert inv.finished_at == datetime(2026, 3, 1, 8, 0, 10, 745090)
    assert inv.started_at == datetime(2026, 3, 1, 7, 59, 58, 500000)
    assert inv.command == "build" and inv.results[1].message is None
    doc["args"] = {"command": "build", "__other__": {"target": "prod"}}
    assert read_run_results(write(tmp_path, "r2.json", doc)).command == "build"


def test_the_environment_follows_the_packages_rule(tmp_path):
    """var qalita_environment, else the target the command line named (vars as YAML text before
    dbt 1.5)."""
    doc = run_results_doc(4)
    doc["args"] = {"which": "build", "vars": "{qalita_environment: staging}", "target": "ci"}
    assert read_run_results(write(tmp_path, "a.json", doc)).environment == "staging"
    doc["args"] = {"which": "build", "vars": {}, "target": "ci"}
    assert read_run_results(write(tmp_path, "b.json", doc)).environment == "ci"
    doc["args"] = {"which": "build", "vars": "{not yaml: [", "target": None}
    assert read_run_results(write(tmp_path, "c.json", doc)).environment is None


def test_a_unique_id_listed_twice_is_one_result_and_one_warning(tmp_path):
    doc = run_results_doc(6)
    doc["results"].append(dict(doc["results"][1], status="pass", failures=0))
    path = write(tmp_path, "run_results.json", doc)
    inv = read_run_results(path)
    assert [(r.unique_id, r.status) for r in inv.results] == [(MODEL, "success"), (TEST, "pass")]
    assert inv.warnings == (f"{path}: 1 result(s) list a unique_id already listed: each node "
                            "counted once",)


def test_results_from_another_project_are_refused(tmp_path):
    m = read_manifest(write(tmp_path, "manifest.json", manifest_doc(12, project="shop")))
    other = run_results_doc(6, unique_ids=("model.crm.accounts", "test.crm.not_null_accounts_id.9"))
    path = write(tmp_path, "run_results.json", other)
    with pytest.raises(artifacts.ForeignResults, match=r"run_results.json: none of its 2 results "
                                                       r"is in .*manifest.json \(project 'shop'\)"):
        read_run_results(path, m)
    src = sources_doc(3)
    for r in src["results"]:
        r["unique_id"] = r["unique_id"].replace("shop", "crm")
    with pytest.raises(artifacts.ForeignResults, match=r"sources.json: none of its 2 results"):
        read_sources(write(tmp_path, "sources.json", src), m)


def test_a_run_operations_macro_result_is_not_from_another_project(tmp_path):
    m = read_manifest(write(tmp_path, "manifest.json", manifest_doc(12)))
    doc = run_results_doc(6, unique_ids=("macro.shop.grant_select",))
    doc["args"] = {"which": "run-operation"}
    inv = read_run_results(write(tmp_path, "run_results.json", doc), m)
    assert inv.command == "run-operation" and len(inv.results) == 1


def test_numbers_written_as_strings_and_odd_adapter_responses_are_read(tmp_path):
    doc = run_results_doc(6)
    model, test = doc["results"]
    model.update(execution_time="1.5", adapter_response={"_message": "OK", "rows_affected": "12"})
    test.update(failures="3", status="fail", adapter_response={"rows_affected": "n/a"})
    inv = read_run_results(write(tmp_path, "run_results.json", doc))
    by_id = {r.unique_id: r for r in inv.results}
    assert by_id[MODEL].execution_time == 1.5 and by_id[MODEL].rows_affected == 12
    assert by_id[TEST].failures == 3 and by_id[TEST].rows_affected is None
    # a field that cannot be read as its type is still one line naming the file and the field
    test["failures"] = "many"
    with pytest.raises(artifacts.ArtifactError, match=r"bad.json: .*results\[1\].failures"):
        read_run_results(write(tmp_path, "bad.json", doc))


def test_a_byte_order_mark_is_no_error(tmp_path):
    path = write(tmp_path, "manifest.json", b"\xef\xbb\xbf" + json.dumps(manifest_doc(12)).encode())
    assert read_manifest(path).project_name == "shop"


@pytest.mark.parametrize("damage", ["truncated", "invalid UTF-8"])
def test_cli_reports_a_damaged_manifest_in_one_line_without_traceback(tmp_path, damage):
    raw = json.dumps(manifest_doc(12)).encode()
    raw = raw[:-40] if damage == "truncated" else raw.replace(b"orders", b"ord\xffers")
    manifest = write(tmp_path, "manifest.json", raw)
    write(tmp_path, "run_results.json", run_results_doc(6))
    out = CliRunner().invoke(main, ["ingest", "dbt", "--no-tables", "--target-path", str(tmp_path),
                                    "--env", "ci", "--outbox", str(tmp_path / "outbox")],
                             env={"QALITA_WORKER_ENDPOINT": "", "QALITA_OUTBOX_DIR": ""})
    assert out.exit_code == 1 and "Traceback" not in out.output
    [line] = out.output.strip().splitlines()
    reason = "truncated" if damage == "truncated" else "not valid UTF-8"
    assert line.startswith(f"qalita-sidecar: error: {manifest}: {reason}")


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


def dry_run(project_dir: Path):
    return CliRunner().invoke(main, ["ingest", "dbt", "--no-tables", "--dry-run", "--project-dir",
                                     str(project_dir)],
                              env={"QALITA_WORKER_ENDPOINT": "", "QALITA_OUTBOX_DIR": "",
                                   "DBT_TARGET_PATH": ""})


def test_without_a_manifest_the_project_is_dbt_project_yml_else_the_node_ids(tmp_path):
    target = tmp_path / "target"
    target.mkdir()
    write(target, "run_results.json", run_results_doc(6))
    out = dry_run(tmp_path)
    assert out.exit_code == 0, out.output
    assert "would ship dbt build shop " in out.output  # `test.shop.…` names the project
    (tmp_path / "dbt_project.yml").write_text("name: 'named_in_yaml'\nprofile: x\n")
    out = dry_run(tmp_path)
    assert out.exit_code == 0 and "would ship dbt build named_in_yaml " in out.output, out.output


def test_a_results_file_without_results_is_not_shipped_and_says_why(tmp_path):
    target = tmp_path / "target"
    target.mkdir()
    empty = write(target, "run_results.json", {**run_results_doc(6), "results": []})
    out = dry_run(tmp_path)
    assert out.exit_code == 0, out.output
    assert f"{empty}: no result, nothing ran: not shipped" in out.output
    assert "would ship" not in out.output


def test_a_file_of_dbt_before_0_19_is_one_line_saying_so(tmp_path):
    target = tmp_path / "target"
    target.mkdir()
    old = write(target, "run_results.json", {
        "results": [{"node": {"unique_id": "test.x.t", "resource_type": "test"}, "status": None,
                     "fail": None, "warn": None, "skip": False}],
        "generated_at": "2021-06-06T10:00:00Z", "elapsed_time": 0.49})
    out = dry_run(tmp_path)
    assert out.exit_code == 1
    assert out.output.strip().splitlines()[-1] == (
        f"qalita-sidecar: error: {old}: written by dbt before 0.19 (no metadata block): not "
        "supported (run-results v1 to v6)")


def test_run_results_of_dbt_0_19_to_0_21_are_read(tmp_path):
    """run_results v1 to v3: the v4 fields, v1 without `failures`; test statuses as later."""
    for version in (1, 2, 3):
        doc = run_results_doc(6)
        doc["metadata"] = {"dbt_schema_version": URL.format(kind="run-results", version=version),
                           "dbt_version": f"0.{18 + version}.0", "invocation_id": f"inv-{version}",
                           "generated_at": "2021-06-28T13:26:34.369249Z", "env": {}}
        doc["args"] = {"which": "test", "rpc_method": "test"}
        for r in doc["results"]:
            r.pop("compiled_code", None)
            r.pop("relation_name", None)
            if version == 1:
                r.pop("failures", None)
        inv = read_run_results(write(tmp_path, f"v{version}.json", doc))
        assert inv.command == "test" and inv.warnings == ()
        assert [(r.unique_id, r.status) for r in inv.results] == [(MODEL, "success"),
                                                                  (TEST, "fail")]


def test_version_ranges_are_the_documented_ones():
    assert (artifacts.MANIFEST_VERSIONS, artifacts.RUN_RESULTS_VERSIONS,
            artifacts.SOURCES_VERSIONS) == ((4, 5, 6, 7, 8, 9, 10, 11, 12, 20),
                                            (1, 2, 3, 4, 5, 6), (1, 2, 3))
