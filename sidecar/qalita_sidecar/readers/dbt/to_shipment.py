"""dbt invocation -> Shipment (QALITA job + metrics, recommendations, schemas). Pure: no I/O.

The status mapping is the product's decision, published as a table in docs/shipping.md:
tests pass/fail/warn/error/skipped (any case; any other status counts as errored and is named),
models/seeds/snapshots success/error/skipped/no-op, source freshness pass/warn/error/runtime error.
An invocation that executes nothing (compile, docs generate, ls, ...) has no outcome to ship:
`executes_nothing` says why. Scopes: every model, seed, snapshot or source table is a
dataset under the database scope named after the dbt project; a column test is column-scoped.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from qalita_sidecar.readers.common import score_of
from qalita_sidecar.readers.dbt.artifacts import Invocation, Manifest, Result, paused_gc
from qalita_sidecar.run_context import DbtCounts, RunContext
from qalita_sidecar.shipment import (
    Job,
    Metric,
    Recommendation,
    SchemaEntry,
    Scope,
    Shipment,
    column_scope,
    idempotency_key,
)

TEST_TYPES = ("test", "unit_test")
BUILT_TYPES = ("model", "seed", "snapshot")
# test status (lower case) -> the counter it increments; `success` is not one: a test reports it
# only when it was compiled, not run
_TEST_OUTCOME = {"pass": "passed", "fail": "failed", "warn": "warned", "error": "errored",
                 "runtime error": "errored", "skipped": "skipped"}
# commands that write run_results.json without executing a node: what each does instead
_EXECUTES_NOTHING = {"compile": "compiles", "generate": "compiles", "docs generate": "compiles",
                     "serve": "serves the docs", "docs serve": "serves the docs",
                     "list": "lists nodes", "ls": "lists nodes", "parse": "parses",
                     "show": "previews", "run-operation": "runs a macro", "rpc": "compiles",
                     "debug": "checks the connection", "deps": "installs packages",
                     "clean": "cleans", "init": "creates a project"}
# what dbt prints for the commands whose `which` is not what the user typed
_COMMAND_NAME = {"generate": "docs generate", "serve": "docs serve", "ls": "list"}
_COUNTERS = ("passed", "failed", "warned", "errored", "skipped")
_MESSAGE_LIMIT = 300


class _Counts(Counter):
    """Test outcomes (passed, failed, warned, errored, skipped) of one scope."""

    def __getattr__(self, name: str) -> int:
        return self[name]

    def add(self, outcome: str) -> None:
        self[outcome] += 1

    @property
    def all(self) -> int:
        return sum(self.values())


def score(passed: int, failed: int, warned: int, errored: int) -> str | None:
    """passed / (passed + failed + warned + errored) by the readers' one rule; None with no
    evidence."""
    return score_of(passed, passed + failed + warned + errored)


def status_of(r: Result) -> str:
    """dbt's status as the mapping compares it: Fusion capitalises (`Pass`), others do not."""
    return r.status.strip().lower()


def command_name(command: str | None) -> str:
    """`generate` -> `dbt docs generate`, as the user typed it."""
    if not command:
        return "dbt"
    text = " ".join(command.strip().lower().split())
    return f"dbt {_COMMAND_NAME.get(text, text)}"


def executes_nothing(invocation: Invocation) -> str | None:
    """Why an invocation has no outcome to ship (None: it executed nodes).

    A compile, docs generate, ls, parse, show or run-operation writes run_results.json too, its
    test nodes all `success`: counting them would report passes that never happened. Results whose
    tests carry `success` (rpc, IDE compiles) are one whatever the command.
    """
    command = " ".join((invocation.command or "").strip().lower().split())
    did = _EXECUTES_NOTHING.get(command)
    if did is not None:
        return f"{command_name(invocation.command)} {did}, it tests nothing"
    if any(r.resource_type in TEST_TYPES and status_of(r) == "success"
           for r in invocation.results):
        return (f"{command_name(invocation.command)}: its tests report `success`, as a "
                "compile's do: it tests nothing")
    if not invocation.results:
        # a selection that matched nothing: an empty job would only say that nothing happened
        return f"{command_name(invocation.command)} has no result: nothing ran"
    return None


def dataset_name(unique_id: str, manifest: Manifest | None = None) -> str:
    """A node's dataset name: its dbt name; a source table is `source_name.table_name`."""
    node = manifest.get(unique_id) if manifest else None
    parts = unique_id.split(".")
    if parts[0] == "source":
        if node is not None and node.source_name:
            return f"{node.source_name}.{node.name}"
        return ".".join(parts[2:4]) if len(parts) >= 4 else parts[-1]
    if node is not None:
        return node.name
    return parts[2] if len(parts) > 2 else unique_id


# dbt's preamble repeats what the recommendation already names: "Runtime Error in test x (path)"
_PREAMBLE = re.compile(r"^(?:Runtime|Database|Compilation|Dependency) Error in \w+ .*? "
                       r"\([^)]*\)\s*")


def _clean(message: str | None) -> str:
    """One readable line: whitespace collapsed, bounded (dbt errors can span pages)."""
    text = _PREAMBLE.sub("", re.sub(r"\s+", " ", message or "").strip())
    return text if len(text) <= _MESSAGE_LIMIT else text[:_MESSAGE_LIMIT - 1] + "…"


def _fmt_ts(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S")


def _rows(n: int | None) -> str:
    if n is None:
        return ""
    return f": {n} failing row{'s' if n != 1 else ''}"


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} seconds"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} minutes"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} hours"
    return f"{seconds / 86400:.1f} days"


@dataclass
class _Builder:
    database: Scope
    manifest: Manifest | None
    datasets: dict[str, Scope] = field(default_factory=dict)
    kinds: dict[str, str] = field(default_factory=dict)  # dataset name -> dbt resource type
    columns: dict[tuple[str, str], Scope] = field(default_factory=dict)
    metrics: list[Metric] = field(default_factory=list)
    recommendations: list[Recommendation] = field(default_factory=list)

    by_id: dict[str, Scope] = field(default_factory=dict)  # unique_id -> its dataset scope

    def dataset(self, unique_id: str) -> Scope:
        scope = self.by_id.get(unique_id)  # the hot path: ~10 tests per dataset
        if scope is None:
            scope = self.by_id[unique_id] = self._dataset(unique_id)
        return scope

    def _dataset(self, unique_id: str) -> Scope:
        name = dataset_name(unique_id, self.manifest)
        scope = self.datasets.get(name)
        if scope is None:
            scope = self.datasets[name] = Scope("dataset", name, self.database)
            self.kinds[name] = unique_id.split(".", 1)[0]
        return scope

    def column(self, dataset: Scope, column: str) -> Scope:
        key = (dataset.value, column)
        scope = self.columns.get(key)
        if scope is None:
            scope = self.columns[key] = column_scope(dataset, column)
        return scope

    def where(self, scope: Scope) -> str:
        """'column city of model stg_airquality', 'source openaq.readings', 'project x'."""
        if scope.perimeter == "column" and scope.parent is not None:
            return f"column {scope.value} of {self.where(scope.parent)}"
        if scope.perimeter == "dataset":
            return f"{self.kinds.get(scope.value, 'model')} {scope.value}"
        return f"project {scope.value}"

    def recommend(self, content: str, type_: str, scope: Scope, level: str) -> None:
        self.recommendations.append(Recommendation(content, type_, scope, level))  # type: ignore[arg-type]


def _test_subject(r: Result, manifest: Manifest | None) -> str | None:
    if r.attached_node:
        return r.attached_node
    node = manifest.get(r.unique_id) if manifest else None
    if node is not None:
        return node.attached_node or (node.depends_on[0] if node.depends_on else None)
    return None


def _description(r: Result, manifest: Manifest | None) -> str:
    node = manifest.get(r.unique_id) if manifest else None
    text = _clean(node.description) if node is not None and node.description else ""
    return f" {text}" if text else ""


def _upstream_failures(r: Result, failed: dict[str, list[str]], manifest: Manifest | None
                       ) -> list[str]:
    """Names of the failed nodes (or their failing tests) upstream of a skipped node."""
    if manifest is None:
        return []
    seen: set[str] = set()
    found: list[str] = []
    node = manifest.get(r.unique_id)
    frontier = list(node.depends_on) if node is not None else []
    while frontier:
        uid = frontier.pop(0)
        if uid in seen:
            continue
        seen.add(uid)
        for name in failed.get(uid, ()):
            if name not in found:
                found.append(name)
        node = manifest.get(uid)
        if node is not None and not found:
            frontier.extend(node.depends_on)
    return found


def dbt_key(project: str, environment: str, git_sha: str | None, invocation_id: str) -> str:
    """The one rule for a dbt invocation's key; the ledger is asked with it before mapping."""
    return idempotency_key(project, environment, git_sha, invocation_id)


def to_shipment(
    invocation: Invocation,
    *,
    project: str,
    environment: str,
    manifest: Manifest | None = None,
    source_name: str | None = None,
) -> Shipment:
    """Map one dbt invocation to everything QALITA receives for it."""
    with paused_gc():
        return _to_shipment(invocation, project, environment, manifest, source_name)


def _to_shipment(invocation: Invocation, project: str, environment: str,
                 manifest: Manifest | None, source_name: str | None) -> Shipment:
    project_name = invocation.project_name or (manifest.project_name if manifest else project)
    source = source_name or f"{project} ({environment})"
    # the database scope is named after the QALITA source, as QALITA's packs name it, so dbt's
    # figures sit beside the other results of the same source
    b = _Builder(Scope("database", source), manifest)
    per_dataset: dict[str, _Counts] = defaultdict(_Counts)
    project_counts = _Counts()
    job_failed = False
    # a compile's `success` tests are no outcome: never counted, whoever calls
    count_tests = executes_nothing(invocation) is None
    # each node once (the readers already do it for a file; a table can repeat a row)
    results = list({r.unique_id: r for r in invocation.results}.values())

    # what failed, by the node it is about: a skipped node names its upstream failure
    failed: dict[str, list[str]] = defaultdict(list)
    for r in results:
        if status_of(r) in ("error", "fail", "runtime error") and r.resource_type != "source":
            subject = _test_subject(r, manifest) if r.resource_type in TEST_TYPES else r.unique_id
            label = f"{r.resource_type} {r.name}"
            failed[r.unique_id].append(label)
            if subject:
                failed[subject].append(label)

    for r in results:
        rtype, status = r.resource_type, status_of(r)
        if status == "runtime error" or (status == "error" and rtype != "source"):
            job_failed = True
        if rtype in TEST_TYPES:
            if not count_tests:
                continue
            # a status dbt does not define is no pass: counted as errored, and named
            outcome = _TEST_OUTCOME.get(status, "errored")
            subject = _test_subject(r, manifest)
            dataset = b.dataset(subject) if subject else None
            project_counts.add(outcome)
            if dataset is not None:
                per_dataset[dataset.value].add(outcome)
            if outcome != "passed" and outcome != "skipped":
                scope = dataset or b.database
                if r.column_name and dataset is not None:
                    scope = b.column(dataset, r.column_name)
                _test_recommendation(b, r, status, scope, _description(r, manifest))
        elif rtype in BUILT_TYPES:
            dataset = b.dataset(r.unique_id)
            if status in ("success", "no-op", "pass"):
                if r.rows_affected is not None:
                    b.metrics.append(Metric("rows_affected", int(r.rows_affected), dataset))
                if r.execution_time is not None:
                    b.metrics.append(Metric("execution_time", round(r.execution_time, 3),
                                            dataset))
            elif status in ("error", "runtime error"):
                b.recommend(f"{rtype.capitalize()} {r.name} failed to build: {_clean(r.message)}",
                            "Build error", dataset, "high")
            elif status == "skipped":
                upstream = _upstream_failures(r, failed, manifest)
                because = (f"because {', '.join(upstream[:3])} failed"
                           + (f" (and {len(upstream) - 3} more)" if len(upstream) > 3 else "")
                           if upstream else "because an upstream node failed")
                b.recommend(f"{rtype.capitalize()} {r.name} was not built: skipped {because}.",
                            "Skipped", dataset, "info")
        elif rtype == "source":
            _freshness(b, r, status)
        # operations, analyses...: nothing to report

    for name in sorted(per_dataset):
        _count_metrics(b, per_dataset[name], b.datasets[name])
    if project_counts.all:
        _count_metrics(b, project_counts, b.database)

    # every scope a metric or recommendation uses, with the parents they name
    scopes: list[Scope] = [b.database, *b.datasets.values(), *b.columns.values()]
    schemas = tuple(SchemaEntry(s.perimeter, s.value, s) for s in scopes)
    started = invocation.started_at or invocation.finished_at
    finished = invocation.finished_at or invocation.started_at
    if started is None or finished is None:
        raise ValueError(f"invocation {invocation.invocation_id} has no start or end time")
    sha = invocation.git_sha
    command = invocation.command or "dbt"
    job = Job(name=f"dbt {command} {project} {environment} {invocation.invocation_id[:8]}",
              started_at=_fmt_ts(started), finished_at=_fmt_ts(finished),
              status="failed" if job_failed else "succeeded")
    c = project_counts
    counts = DbtCounts(passed=c.passed, failed=c.failed, warned=c.warned, errored=c.errored,
                       skipped=c.skipped)
    return Shipment(
        key=dbt_key(project, environment, sha, invocation.invocation_id),
        origin="dbt",
        source_name=source,
        source_type="database",
        job=job,
        metrics=tuple(b.metrics),
        recommendations=tuple(b.recommendations),
        schemas=schemas,
        context=RunContext(invocation_id=invocation.invocation_id, project=project,
                           environment=environment, git_sha=sha, command=command,
                           read_from=invocation.origin, results=len(results), tests=counts,
                           dbt_project=project_name),
    )


def to_shipments(invocations: Iterable[Invocation], **kwargs) -> list[Shipment]:
    return [to_shipment(inv, **kwargs) for inv in invocations]


def _count_metrics(b: _Builder, c: _Counts, scope: Scope) -> None:
    b.metrics.append(Metric("tests_total", c.all, scope))
    for name in _COUNTERS:
        b.metrics.append(Metric(f"tests_{name}", getattr(c, name), scope))
    value = score(c.passed, c.failed, c.warned, c.errored)
    if value is not None:
        b.metrics.append(Metric("score", value, scope))


def _test_recommendation(b: _Builder, r: Result, status: str, scope: Scope, about: str) -> None:
    test = r.test_name or r.name
    named = f" (dbt test {r.name})" if r.name != test else ""
    where = b.where(scope)
    if status == "fail":
        b.recommend(f"Test {test} failed on {where}{_rows(r.failures)}{named}.{about}",
                    "Test failed", scope, "high" if (r.severity or "error") != "warn"
                    else "warning")
    elif status == "warn":
        b.recommend(f"Test {test} warned on {where}{_rows(r.failures)}{named}.{about}",
                    "Test warning", scope, "warning")
    elif status in ("error", "runtime error"):
        b.recommend(f"Test {test} could not run on {where}{named}: {_clean(r.message)}",
                    "Test error", scope, "high")
    else:
        said = f": {_clean(r.message)}" if r.message else ""
        b.recommend(f"Test {test} on {where}{named} reported status '{r.status}', which is not a "
                    f"dbt test outcome: counted as errored{said}", "Test error", scope, "high")


def _freshness(b: _Builder, r: Result, status: str) -> None:
    dataset = b.dataset(r.unique_id)
    b.metrics.append(Metric("freshness_status", status, dataset))
    if r.age is not None:
        b.metrics.append(Metric("freshness_age_s", round(r.age, 1), dataset))
    age = f"last loaded {_age(r.age)} ago" if r.age is not None else "no load time known"
    if status == "warn":
        b.recommend(f"Source {dataset.value} is stale: {age}, past its warn_after limit.",
                    "Freshness", dataset, "warning")
    elif status == "error":
        b.recommend(f"Source {dataset.value} is stale: {age}, past its error_after limit.",
                    "Freshness", dataset, "high")
    elif status == "runtime error":
        b.recommend(f"Freshness of source {dataset.value} could not be checked: "
                    f"{_clean(r.message)}", "Freshness", dataset, "high")
