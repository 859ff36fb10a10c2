"""Read dbt's artifacts (manifest.json, run_results.json, sources.json) into small typed records.

msgspec decodes each file straight into the few fields the sidecar uses and skips the rest without
building it: a 50 MB manifest reads in about 0.3 s and 100 MB, where a full `orjson.loads` takes
several seconds and ~400 MB (see bench/ingest). Supported: manifest v9-v12 (dbt 1.5-1.11),
run_results v4-v6, sources v1-v3. Every problem is one `ArtifactError` naming the file.
"""

from __future__ import annotations

import gc
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import msgspec

MANIFEST_VERSIONS = range(9, 13)
RUN_RESULTS_VERSIONS = range(4, 7)
SOURCES_VERSIONS = range(1, 4)
_SCHEMA_URL = re.compile(r"/dbt/([a-z-]+)/v(\d+)\.json$")


class ArtifactError(Exception):
    """An artifact that cannot be used; the message is one line naming the file."""


# --- the records the rest of the sidecar sees ------------------------------------------------


# The records are frozen msgspec Structs (typed, immutable, compared by value, like frozen
# dataclasses) because a 100 k-result project builds 200 k of them: a Struct is built in C and,
# with gc=False, never scanned by the cycle collector, which made dataclasses 3x slower here.
class Node(msgspec.Struct, frozen=True, gc=False):
    """What the manifest says about one node (model, seed, snapshot, test, source, unit test)."""

    unique_id: str
    resource_type: str
    name: str
    package_name: str | None = None
    description: str | None = None
    tags: tuple[str, ...] = ()
    depends_on: tuple[str, ...] = ()
    severity: str | None = None  # tests: "error" / "warn" (lower case)
    test_name: str | None = None  # generic test name (not_null, ...) or the singular test's name
    test_namespace: str | None = None
    column_name: str | None = None
    attached_node: str | None = None  # the node a test is about
    source_name: str | None = None  # sources: the `sources:` block name


@dataclass(frozen=True)
class Manifest:
    path: Path
    schema_version: int
    project_name: str
    dbt_version: str | None
    invocation_id: str | None
    nodes: dict[str, Node]  # nodes, sources, unit tests and disabled nodes, by unique_id

    def get(self, unique_id: str) -> Node | None:
        return self.nodes.get(unique_id)


class Result(msgspec.Struct, frozen=True, gc=False):
    """One dbt result, from a run_results/sources file or from the qalita_results table."""

    unique_id: str
    status: str  # dbt's own status: pass, fail, warn, error, skipped, success, runtime error...
    resource_type: str
    name: str
    failures: int | None = None
    rows_affected: int | None = None
    message: str | None = None
    execution_time: float | None = None
    # tests (the table carries them; for artifacts they come from the manifest)
    severity: str | None = None
    test_name: str | None = None
    column_name: str | None = None
    attached_node: str | None = None
    # source freshness
    age: float | None = None  # seconds since max_loaded_at at snapshot time
    max_loaded_at: str | None = None


@dataclass(frozen=True)
class Invocation:
    """One dbt invocation and its results, whichever place it was read from."""

    invocation_id: str
    command: str | None
    started_at: datetime | None  # naive UTC
    finished_at: datetime | None  # naive UTC
    results: tuple[Result, ...]
    origin: str  # where it was read: "table <schema>.qalita_results" or an artifact path
    project_name: str | None = None
    environment: str | None = None
    target_name: str | None = None
    dbt_version: str | None = None
    git_sha: str | None = None
    git_branch: str | None = None


# --- decoding types: only the fields used; msgspec skips everything else ------------------------


class _Meta(msgspec.Struct, gc=False):
    dbt_schema_version: str = ""
    dbt_version: str | None = None
    invocation_id: str | None = None
    project_name: str | None = None
    generated_at: str | None = None
    invocation_started_at: str | None = None


class _TestMeta(msgspec.Struct, gc=False):
    name: str | None = None
    namespace: str | None = None


class _Config(msgspec.Struct, gc=False):
    severity: str | None = None


class _DependsOn(msgspec.Struct, gc=False):
    nodes: list[str] = []


class _Node(msgspec.Struct, gc=False):
    unique_id: str
    resource_type: str
    name: str
    package_name: str | None = None
    description: str | None = None
    tags: list[str] | str | None = None
    depends_on: _DependsOn | None = None
    config: _Config | None = None
    test_metadata: _TestMeta | None = None
    column_name: str | None = None
    attached_node: str | None = None
    source_name: str | None = None


class _Manifest(msgspec.Struct):
    metadata: _Meta
    nodes: dict[str, _Node] = {}
    sources: dict[str, _Node] = {}
    unit_tests: dict[str, _Node] = {}
    disabled: dict[str, list[_Node]] | None = None


class _Timing(msgspec.Struct, gc=False):
    name: str = ""
    started_at: str | None = None
    completed_at: str | None = None


class _AdapterResponse(msgspec.Struct, gc=False):
    rows_affected: int | None = None


class _RunResult(msgspec.Struct, gc=False):
    unique_id: str
    status: str
    execution_time: float | None = None
    failures: int | None = None
    message: str | None = None
    adapter_response: _AdapterResponse | None = None


class _RunResults(msgspec.Struct):
    metadata: _Meta
    results: list[_RunResult]
    elapsed_time: float | None = None
    args: dict[str, Any] | None = None


class _Freshness(msgspec.Struct, gc=False):
    unique_id: str
    status: str
    max_loaded_at: str | None = None
    max_loaded_at_time_ago_in_s: float | None = None
    execution_time: float | None = None
    error: str | None = None  # runtime errors carry only unique_id, status and error


class _Sources(msgspec.Struct):
    metadata: _Meta
    results: list[_Freshness]
    elapsed_time: float | None = None


# --- reading ------------------------------------------------------------------------------------


@contextmanager
def paused_gc() -> Iterator[None]:
    """Pause the cycle collector while building many acyclic records (it rescans them all)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _read(path: Path, kind: str, versions: range, schema: type[msgspec.Struct]) -> Any:
    """Decode `path` into `schema` after checking it is the expected kind and version."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ArtifactError(f"{path}: cannot read ({exc.strerror})") from exc
    try:
        head = msgspec.json.decode(data, type=_Header)
    except msgspec.ValidationError as exc:
        raise ArtifactError(f"{path}: not a dbt artifact ({exc})") from exc
    except msgspec.DecodeError as exc:
        reason = "truncated" if "truncated" in str(exc) else f"not valid JSON ({exc})"
        raise ArtifactError(f"{path}: {reason}") from exc
    found = _SCHEMA_URL.search(head.metadata.dbt_schema_version) if head.metadata else None
    if found is None:
        raise ArtifactError(f"{path}: not a dbt artifact (no metadata.dbt_schema_version)")
    got_kind, version = found.group(1), int(found.group(2))
    if got_kind != kind:
        raise ArtifactError(f"{path}: is a dbt {got_kind} file, expected {kind}")
    if version not in versions:
        raise ArtifactError(f"{path}: {kind} schema v{version} is not supported "
                            f"(v{versions.start} to v{versions.stop - 1})")
    try:
        return version, msgspec.json.decode(data, type=schema)
    except msgspec.ValidationError as exc:
        raise ArtifactError(f"{path}: unexpected content for a {kind} v{version} ({exc})") from exc


class _Header(msgspec.Struct):
    metadata: _Meta | None = None


def _tags(value: list[str] | str | None) -> tuple[str, ...]:
    if value is None:
        return ()
    return (value,) if isinstance(value, str) else tuple(value)


def _node(n: _Node) -> Node:
    meta = n.test_metadata
    severity = n.config.severity.lower() if n.config and n.config.severity else None
    return Node(
        unique_id=n.unique_id,
        resource_type=n.resource_type,
        name=n.name,
        package_name=n.package_name,
        description=n.description or None,
        tags=_tags(n.tags),
        depends_on=tuple(n.depends_on.nodes) if n.depends_on else (),
        severity=severity,
        test_name=(meta.name if meta else n.name) if n.resource_type == "test" else None,
        test_namespace=meta.namespace if meta else None,
        column_name=n.column_name,
        attached_node=n.attached_node,
        source_name=n.source_name,
    )


def read_manifest(path: Path) -> Manifest:
    with paused_gc():
        return _read_manifest(path)


def _read_manifest(path: Path) -> Manifest:
    version, raw = _read(path, "manifest", MANIFEST_VERSIONS, _Manifest)
    nodes: dict[str, Node] = {}
    # Disabled first: a node enabled in this manifest wins over a disabled variant of it. A run
    # with different vars (e.g. a failing test variant) can enable what this manifest disables.
    for variants in (raw.disabled or {}).values():
        for n in variants:
            nodes[n.unique_id] = _node(n)
    for group in (raw.unit_tests, raw.sources, raw.nodes):
        for uid, n in group.items():
            nodes[uid] = _node(n)
    project = raw.metadata.project_name
    if not project:
        raise ArtifactError(f"{path}: metadata.project_name is missing")
    return Manifest(Path(path), version, project, raw.metadata.dbt_version,
                    raw.metadata.invocation_id, nodes)


def parse_ts(value: str | None) -> datetime | None:
    """dbt's ISO timestamps (with Z or an offset) -> naive UTC."""
    if not value:
        return None
    try:
        ts = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if ts.tzinfo is not None:
        ts = ts.astimezone(timezone.utc).replace(tzinfo=None)
    return ts


def _resource_type(unique_id: str) -> str:
    return unique_id.split(".", 1)[0]


def _name_from_id(unique_id: str) -> str:
    """A node the manifest does not know: `model.pkg.name` -> name, `source.pkg.src.tbl` -> tbl."""
    parts = unique_id.split(".")
    return parts[-1] if parts[0] == "source" else (parts[2] if len(parts) > 2 else unique_id)


def _check_same_project(path: Path, result_ids: list[str], manifest: Manifest | None) -> None:
    """Results from another project than the manifest's: nothing in common, or another package."""
    if manifest is None or not result_ids:
        return
    if any(u in manifest.nodes for u in result_ids):
        return
    raise ArtifactError(f"{path}: none of its {len(result_ids)} results is in {manifest.path} "
                        f"(project '{manifest.project_name}'): the files come from different "
                        "projects or builds")


def _enrich(uid: str, status: str, manifest: Manifest | None, **fields: Any) -> Result:
    node = manifest.get(uid) if manifest else None
    if node is None:
        return Result(uid, status, _resource_type(uid), _name_from_id(uid), **fields)
    attached = node.attached_node
    if node.resource_type in ("test", "unit_test") and not attached and node.depends_on:
        attached = node.depends_on[0]  # source tests and singular tests name no attached node
    return Result(uid, status, node.resource_type, node.name, severity=node.severity,
                  test_name=node.test_name, column_name=node.column_name,
                  attached_node=attached, **fields)


def read_run_results(path: Path, manifest: Manifest | None = None) -> Invocation:
    """run_results.json -> one Invocation; test metadata comes from the manifest."""
    with paused_gc():
        return _read_run_results(path, manifest)


def _read_run_results(path: Path, manifest: Manifest | None) -> Invocation:
    _, raw = _read(path, "run-results", RUN_RESULTS_VERSIONS, _RunResults)
    meta = raw.metadata
    if not meta.invocation_id:
        raise ArtifactError(f"{path}: metadata.invocation_id is missing")
    _check_same_project(path, [r.unique_id for r in raw.results], manifest)
    results = tuple(
        _enrich(r.unique_id, r.status, manifest, failures=r.failures,
                rows_affected=r.adapter_response.rows_affected if r.adapter_response else None,
                message=r.message, execution_time=r.execution_time)
        for r in raw.results
    )
    finished = parse_ts(meta.generated_at)
    started = parse_ts(meta.invocation_started_at)  # v6 only
    if started is None and finished is not None and raw.elapsed_time is not None:
        started = finished - timedelta(seconds=raw.elapsed_time)
    command = (raw.args or {}).get("which")
    return Invocation(meta.invocation_id, command, started, finished, results, str(path),
                      project_name=manifest.project_name if manifest else None,
                      dbt_version=meta.dbt_version)


def read_sources(path: Path, manifest: Manifest | None = None) -> Invocation:
    """sources.json (dbt source freshness) -> one Invocation of command `freshness`."""
    with paused_gc():
        return _read_sources(path, manifest)


def _read_sources(path: Path, manifest: Manifest | None) -> Invocation:
    _, raw = _read(path, "sources", SOURCES_VERSIONS, _Sources)
    meta = raw.metadata
    if not meta.invocation_id:
        raise ArtifactError(f"{path}: metadata.invocation_id is missing")
    _check_same_project(path, [r.unique_id for r in raw.results], manifest)
    results = tuple(
        _enrich(r.unique_id, r.status, manifest, message=r.error,
                execution_time=r.execution_time, age=r.max_loaded_at_time_ago_in_s,
                max_loaded_at=r.max_loaded_at)
        for r in raw.results
    )
    finished = parse_ts(meta.generated_at)
    started = parse_ts(meta.invocation_started_at)
    if started is None and finished is not None and raw.elapsed_time is not None:
        started = finished - timedelta(seconds=raw.elapsed_time)
    return Invocation(meta.invocation_id, "freshness", started, finished, results, str(path),
                      project_name=manifest.project_name if manifest else None,
                      dbt_version=meta.dbt_version)
