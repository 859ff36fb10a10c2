"""Read dbt's artifacts (manifest.json, run_results.json, sources.json) into small typed records.

msgspec decodes each file straight into the few fields the sidecar uses and skips the rest without
building it: a 50 MB manifest reads in about 0.3 s and 100 MB, where a full `orjson.loads` takes
several seconds and ~400 MB (see bench/ingest). Known: manifest v4-v12 (dbt 1.0-1.12) and v20
(dbt Fusion), run_results v4-v6, sources v1-v3; every version is read into the same records, and a
field a version lacks is absent, not an error. A version newer than these is read when its fields
decode, with one warning naming it. Every problem is one `ArtifactError` naming the file.
"""

from __future__ import annotations

import gc
import hashlib
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import msgspec

MANIFEST_VERSIONS = (*range(4, 13), 20)  # 20: dbt Fusion
# v1 to v3 (dbt 0.19 to 0.21) hold the same fields as v4, in the same places
RUN_RESULTS_VERSIONS = (1, 2, 3, 4, 5, 6)
SOURCES_VERSIONS = (1, 2, 3)
_SCHEMA_URL = re.compile(r"/dbt/([a-z-]+)/v(\d+)\.json$")


class ArtifactError(Exception):
    """An artifact that cannot be used; the message is one line naming the file."""


class ForeignResults(ArtifactError):
    """A results file none of whose results is in the manifest: another project or build. The
    other files can still serve."""


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
    warnings: tuple[str, ...] = ()  # one line each, naming the file (a newer schema version)

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
    warnings: tuple[str, ...] = ()  # one line each, naming the file


# --- decoding types: only the fields used; msgspec skips everything else ------------------------


class _Meta(msgspec.Struct, gc=False):
    dbt_schema_version: str = ""
    dbt_version: str | None = None
    invocation_id: str | None = None
    project_name: str | None = None  # dbt >= 1.6 (manifest v10)
    project_id: str | None = None  # md5 of the root project's name
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
    unit_tests: dict[str, _Node] = {}  # dbt >= 1.8
    disabled: dict[str, list[_Node]] | list[_Node] | None = None  # a list before dbt 1.0


class _Timing(msgspec.Struct, gc=False):
    name: str = ""
    started_at: str | None = None
    completed_at: str | None = None


class _AdapterResponse(msgspec.Struct, gc=False):
    # each adapter writes its own response; this count is only shown, so an odd value is dropped
    # (see _count) rather than refusing the whole file
    rows_affected: Any = None


# Fusion leaves out compiled, compiled_code, batch_results and, on success, message; dbt 1.12 adds
# overload_results: none of them is read, so every shape decodes.
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
    args: dict[str, Any] | None = None


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


def _versions(known: tuple[int, ...]) -> str:
    """(4, 5, ..., 12, 20) -> 'v4 to v12, v20'."""
    runs: list[list[int]] = []
    for v in known:
        if runs and v == runs[-1][-1] + 1:
            runs[-1].append(v)
        else:
            runs.append([v])
    return ", ".join(f"v{r[0]}" if len(r) == 1 else f"v{r[0]} to v{r[-1]}" for r in runs)


_BOM = b"\xef\xbb\xbf"


def _read(path: Path, kind: str, versions: tuple[int, ...], schema: type[msgspec.Struct]
          ) -> tuple[int, Any, tuple[str, ...]]:
    """Decode `path` into `schema` after checking it is the expected kind and a readable version.

    Returns the version, the decoded file and its warnings (a version newer than the known ones).
    """
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ArtifactError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    if data.startswith(_BOM):  # written by some Windows editors and tools
        data = data[len(_BOM):]
    try:
        head = msgspec.json.decode(data, type=_Header)
    except msgspec.ValidationError as exc:
        raise ArtifactError(f"{path}: not a dbt artifact ({exc})") from exc
    except msgspec.DecodeError as exc:
        raise ArtifactError(f"{path}: {_decode_reason(exc)}") from exc
    found = _SCHEMA_URL.search(head.metadata.dbt_schema_version) if head.metadata else None
    if found is None:
        if head.metadata is None and head.generated_at and head.results is not None:
            raise ArtifactError(f"{path}: written by dbt before 0.19 (no metadata block): not "
                                f"supported ({kind} {_versions(versions)})")
        raise ArtifactError(f"{path}: not a dbt artifact (no metadata.dbt_schema_version)")
    got_kind, version = found.group(1), int(found.group(2))
    if got_kind != kind:
        raise ArtifactError(f"{path}: is a dbt {got_kind} file, expected {kind}")
    warnings: tuple[str, ...] = ()
    if version not in versions:
        if version < versions[0]:
            raise ArtifactError(f"{path}: {kind} schema v{version} is not supported "
                                f"({_versions(versions)})")
        warnings = (f"{path}: {kind} schema v{version} is newer than the ones this sidecar knows "
                    f"({_versions(versions)}): read with the fields they share",)
    try:
        # strict=False: a number written as a string ("12", as some adapters do) is read as one
        return version, msgspec.json.decode(data, type=schema, strict=False), warnings
    except msgspec.ValidationError as exc:
        newer = " (newer than the known versions, and not compatible)" if warnings else ""
        raise ArtifactError(f"{path}: unexpected content for a {kind} v{version}{newer} "
                            f"({exc})") from exc
    except msgspec.DecodeError as exc:  # invalid UTF-8 in a field the header skipped
        raise ArtifactError(f"{path}: {_decode_reason(exc)}") from exc


def _count(value: Any) -> int | None:
    """A whole number of rows, however the adapter wrote it; None when it is not one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    return None


def _decode_reason(exc: msgspec.DecodeError) -> str:
    text = str(exc)
    if "truncated" in text:
        return "truncated"
    if "UTF-8" in text:
        return f"not valid UTF-8 ({text})"
    return f"not valid JSON ({text})"


class _Header(msgspec.Struct):
    metadata: _Meta | None = None
    # what dbt before 0.19 wrote instead of a metadata block
    generated_at: Any = None
    results: Any = None


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
    version, raw, warnings = _read(path, "manifest", MANIFEST_VERSIONS, _Manifest)
    nodes: dict[str, Node] = {}
    # Disabled first: a node enabled in this manifest wins over a disabled variant of it. A run
    # with different vars (e.g. a failing test variant) can enable what this manifest disables.
    disabled = raw.disabled or {}
    groups = disabled.values() if isinstance(disabled, dict) else [disabled]
    for variants in groups:
        for n in variants:
            nodes[n.unique_id] = _node(n)
    for group in (raw.unit_tests, raw.sources, raw.nodes):
        for uid, n in group.items():
            nodes[uid] = _node(n)
    project = raw.metadata.project_name or _root_project(raw)
    if not project:
        raise ArtifactError(f"{path}: metadata.project_name is missing and no node names the "
                            "project (pass --project)")
    return Manifest(Path(path), version, project, raw.metadata.dbt_version,
                    raw.metadata.invocation_id, nodes, warnings)


def _root_project(raw: _Manifest) -> str | None:
    """The root project of a manifest without metadata.project_name (dbt < 1.6).

    The project's own nodes carry its name as package_name, and metadata.project_id is the md5 of
    that name; without a match, the package that owns most nodes.
    """
    owners = Counter(n.package_name for group in (raw.nodes, raw.sources)
                     for n in group.values() if n.package_name)
    wanted = raw.metadata.project_id
    if wanted:
        for name in owners:
            if hashlib.md5(name.encode()).hexdigest() == wanted:  # noqa: S324 - dbt's own id
                return name
    return owners.most_common(1)[0][0] if owners else None


# Fusion writes nanoseconds (9 digits): Python reads at most 6 before 3.11.
_FRACTION = re.compile(r"(\.\d{6})\d+")


def parse_ts(value: str | None) -> datetime | None:
    """dbt's ISO timestamps (with Z or an offset, up to 9 fractional digits) -> naive UTC."""
    if not value:
        return None
    try:
        ts = datetime.fromisoformat(_FRACTION.sub(r"\1", value.strip().replace("Z", "+00:00")))
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


# Results no manifest lists: run-operation's macros, and hooks (operation.*)
_UNLISTED = ("macro", "operation")


def _check_same_project(path: Path, result_ids: list[str], manifest: Manifest | None) -> None:
    """Results from another project than the manifest's: nothing in common, or another package."""
    if manifest is None:
        return
    listed = [u for u in result_ids if _resource_type(u) not in _UNLISTED]
    if not listed or any(u in manifest.nodes for u in listed):
        return
    raise ForeignResults(f"{path}: none of its {len(listed)} results is in {manifest.path} "
                         f"(project '{manifest.project_name}'): the files come from different "
                         "projects or builds")


def _once(items: list[Any], what: Path) -> tuple[list[Any], tuple[str, ...]]:
    """Each unique_id once (the last listing wins, at the place of the first)."""
    by_id: dict[str, Any] = {}
    for item in items:
        by_id[item.unique_id] = item
    if len(by_id) == len(items):
        return items, ()
    repeated = len(items) - len(by_id)
    return list(by_id.values()), (f"{what}: {repeated} result(s) list a unique_id already "
                                  "listed: each node counted once",)


def _args(raw_args: dict[str, Any] | None) -> tuple[str | None, str | None, str | None]:
    """(command, environment, target) from a results file's `args`.

    Fusion keeps only `command`, `which` and `__other__`; dbt < 1.5 writes vars as a YAML string.
    The environment follows the package's rule: var qalita_environment, else the target's name
    (known here only when the command line named it).
    """
    args = dict(raw_args or {})
    other = args.get("__other__")
    if isinstance(other, dict):
        args = {**other, **{k: v for k, v in args.items() if v is not None}}
    command = args.get("which") or args.get("command")
    target = args.get("target") if isinstance(args.get("target"), str) else None
    variables = _vars(args.get("vars"))
    env = variables.get("qalita_environment")
    environment = str(env) if env not in (None, "") else target
    return (str(command) if command else None), environment, target


def _vars(value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    if isinstance(value, str) and value.strip():
        try:
            import yaml

            loaded = yaml.safe_load(value)
        except Exception:  # vars are only a hint for the environment's name
            return {}
        return loaded if isinstance(loaded, dict) else {}
    return {}


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


class _Ids(msgspec.Struct, gc=False):
    unique_id: str = ""


class _IdsOnly(msgspec.Struct):
    results: list[_Ids] = []


def result_ids(path: Path) -> list[str] | None:
    """The unique_ids a results file lists, read cheaply; None when it cannot be read (the full
    reader then says why)."""
    try:
        data = Path(path).read_bytes()
        ids = msgspec.json.decode(data.removeprefix(_BOM), type=_IdsOnly, strict=False)
    except (OSError, msgspec.MsgspecError):
        return None
    return [r.unique_id for r in ids.results]


def project_of_ids(unique_ids: Iterable[str]) -> str | None:
    """The project results belong to when no manifest names it: the package most of their node
    ids name (`test.<project>.<name>...`); None when no id names one."""
    packages: Counter[str] = Counter()
    for unique_id in unique_ids:
        parts = unique_id.split(".")
        if len(parts) >= 3 and parts[0] != "operation" and parts[1]:
            packages[parts[1]] += 1
    return packages.most_common(1)[0][0] if packages else None


def read_run_results(path: Path, manifest: Manifest | None = None) -> Invocation:
    """run_results.json -> one Invocation; test metadata comes from the manifest."""
    with paused_gc():
        return _read_run_results(path, manifest)


def _read_run_results(path: Path, manifest: Manifest | None) -> Invocation:
    _, raw, warnings = _read(path, "run-results", RUN_RESULTS_VERSIONS, _RunResults)
    invocation_id, listed, warnings = _listed(path, raw, manifest, warnings)
    results = tuple(
        _enrich(r.unique_id, r.status, manifest, failures=r.failures,
                rows_affected=_count(r.adapter_response.rows_affected)
                if r.adapter_response else None,
                message=r.message, execution_time=r.execution_time)
        for r in listed
    )
    command = _args(raw.args)[0]
    return _invocation(path, raw, invocation_id, command, results, manifest, warnings)


def read_sources(path: Path, manifest: Manifest | None = None) -> Invocation:
    """sources.json (dbt source freshness) -> one Invocation of command `freshness`."""
    with paused_gc():
        return _read_sources(path, manifest)


def _read_sources(path: Path, manifest: Manifest | None) -> Invocation:
    _, raw, warnings = _read(path, "sources", SOURCES_VERSIONS, _Sources)
    invocation_id, listed, warnings = _listed(path, raw, manifest, warnings)
    results = tuple(
        _enrich(r.unique_id, r.status, manifest, message=r.error,
                execution_time=r.execution_time, age=r.max_loaded_at_time_ago_in_s,
                max_loaded_at=r.max_loaded_at)
        for r in listed
    )
    return _invocation(path, raw, invocation_id, "freshness", results, manifest, warnings)


def _listed(path: Path, raw: _RunResults | _Sources, manifest: Manifest | None,
            warnings: tuple[str, ...]) -> tuple[str, list[Any], tuple[str, ...]]:
    """The file's results, each unique_id once (a repeat adds a warning), once the file is known
    to be an invocation of the manifest's project."""
    invocation_id = raw.metadata.invocation_id
    if not invocation_id:
        raise ArtifactError(f"{path}: metadata.invocation_id is missing")
    _check_same_project(path, [r.unique_id for r in raw.results], manifest)
    listed, repeated = _once(list(raw.results), path)
    return invocation_id, listed, warnings + repeated


def _invocation(path: Path, raw: _RunResults | _Sources, invocation_id: str, command: str | None,
                results: tuple[Result, ...], manifest: Manifest | None,
                warnings: tuple[str, ...]) -> Invocation:
    meta = raw.metadata
    finished = parse_ts(meta.generated_at)
    started = parse_ts(meta.invocation_started_at)  # run_results v6 and sources v3 only
    if started is None and finished is not None and raw.elapsed_time is not None:
        started = finished - timedelta(seconds=raw.elapsed_time)
    _, environment, target = _args(raw.args)  # Fusion writes args in sources.json too
    return Invocation(invocation_id, command, started, finished, results, str(path),
                      project_name=manifest.project_name if manifest else None,
                      environment=environment, target_name=target,
                      dbt_version=meta.dbt_version, warnings=warnings)
