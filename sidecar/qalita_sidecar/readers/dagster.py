"""Dagster run -> Shipment (pure: no Dagster import, so it is tested without Dagster installed).

Scopes: the project (default "dagster") is the database, an asset (its key joined with "/") a
dataset, and an asset check whose metadata has a `column` text entry a column of that asset.
  metrics          check_passed / check_failed / check_warned and `score` per asset and for the
                   project; numeric check metadata (e.g. `failing_rows`) on the check's scope;
                   `materializations` per asset.
  recommendations  a failed check: `high` (severity ERROR) or `warning` (severity WARN); a failed
                   step: `high`, with its error.
  job              the run: `succeeded` when Dagster says SUCCESS, else `failed`.

The host side (reading a run from a Dagster instance, the resource, the sensors) is
qalita_sidecar.hosts.dagster.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

from qalita_sidecar.readers.common import count_metrics, now_date, schema_entries
from qalita_sidecar.run_context import RunContext
from qalita_sidecar.shipment import (
    Job,
    Metric,
    Recommendation,
    Scope,
    Shipment,
    column_scope,
    idempotency_key,
)


@dataclass(frozen=True)
class CheckResult:
    asset: str
    name: str
    passed: bool
    severity: str  # "ERROR" or "WARN"
    description: str | None = None
    column: str | None = None
    numbers: Mapping[str, float | int] = field(default_factory=dict)


@dataclass(frozen=True)
class DagsterRunRecord:
    """What a finished Dagster run tells QALITA (read from the instance by `read_run`)."""

    run_id: str
    job_name: str
    status: str  # DagsterRunStatus name: SUCCESS, FAILURE, CANCELED
    started_at: str | None
    finished_at: str | None
    checks: tuple[CheckResult, ...] = ()
    failed_steps: tuple[tuple[str, str], ...] = ()  # (step key, error message)
    materialized: tuple[str, ...] = ()  # asset keys, one per materialization


def run_to_shipment(run: DagsterRunRecord, project: str = "dagster",
                    source_name: str | None = None) -> Shipment:
    """One Shipment per run (pure)."""
    # named after the QALITA source, as QALITA's packs name it
    database = Scope("database", source_name or project)
    datasets: dict[str, Scope] = {}

    def dataset(name: str) -> Scope:
        return datasets.setdefault(name, Scope("dataset", name, database))

    counts: dict[Scope, Counter[str]] = {database: Counter()}
    values: list[Metric] = []
    recommendations: list[Recommendation] = []
    for check in run.checks:
        asset = dataset(check.asset)
        scope = column_scope(asset, check.column) if check.column else asset
        outcome = "passed" if check.passed else ("warned" if check.severity == "WARN"
                                                 else "failed")
        for s in dict.fromkeys((database, asset, scope)):  # scope may be the asset
            counts.setdefault(s, Counter())[outcome] += 1
        values += [Metric(k, v, scope) for k, v in check.numbers.items()]
        if not check.passed:
            where = f"{check.asset}.{check.column}" if check.column else check.asset
            why = f": {check.description}" if check.description else ""
            numbers = ", ".join(f"{k} {v}" for k, v in check.numbers.items())
            recommendations.append(Recommendation(
                f"Dagster asset check {check.name} failed on {where} (run "
                f"{run.run_id[:8]} of {run.job_name}){why}{f' ({numbers})' if numbers else ''}",
                "Asset Check Failed", scope, "warning" if outcome == "warned" else "high"))
    for step, message in run.failed_steps:
        recommendations.append(Recommendation(
            f"Dagster step {step} failed in run {run.run_id[:8]} of {run.job_name}: {message}",
            "Step Failed", database, "high"))
    metrics: list[Metric] = []
    for scope, counter in counts.items():
        metrics += count_metrics("check", counter, scope, ("passed", "failed", "warned"))
    for name, n in Counter(run.materialized).items():
        metrics.append(Metric("materializations", n, dataset(name)))
    metrics += values
    metrics.append(Metric("run_status", run.status, database))
    start = run.started_at or now_date()
    scopes = [m.scope for m in metrics] + [r.scope for r in recommendations]
    return Shipment(
        key=idempotency_key("dagster", project, run.run_id),
        origin="dagster",
        source_name=database.value,
        source_type="database",
        job=Job(f"dagster run {run.job_name} ({run.run_id[:8]})", start,
                run.finished_at or start, "succeeded" if run.status == "SUCCESS" else "failed"),
        metrics=tuple(metrics),
        recommendations=tuple(recommendations),
        schemas=schema_entries(scopes),
        context=RunContext(invocation_id=run.run_id, project=project, job=run.job_name,
                           status=run.status, checks=len(run.checks),
                           mapping_keys=(f"dagster/{project}", project)),
    )
