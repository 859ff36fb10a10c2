"""Dagster -> QALITA: a `QalitaResource` and run-status sensors that ship each finished run's asset
checks and outcome through the sidecar (outbox, retries, ledger), not through a CLI.

    from qalita_sidecar.hosts.dagster import QalitaResource, qalita_sensors
    defs = dg.Definitions(assets=..., asset_checks=...,
                          resources={"qalita": QalitaResource(project="retail")},
                          sensors=qalita_sensors())

Scopes: the project (default "dagster") is the database, an asset (its key joined with "/") a
dataset, and an asset check whose metadata has a `column` text entry a column of that asset.
  metrics          check_passed / check_failed / check_warned and `score` per asset and for the
                   project; numeric check metadata (e.g. `failing_rows`) on the check's scope;
                   `materializations` per asset.
  recommendations  a failed check: `high` (severity ERROR) or `warning` (severity WARN); a failed
                   step: `high`, with its error.
  job              the run: `succeeded` when Dagster says SUCCESS, else `failed`.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg

from qalita_sidecar.readers.common import (
    count_metrics,
    is_number,
    now_date,
    qalita_date,
    schema_entries,
)
from qalita_sidecar.settings import load_settings
from qalita_sidecar.shipment import Job, Metric, Recommendation, Scope, Shipment, idempotency_key
from qalita_sidecar.shipping.deliver import Outcome, ship
from qalita_sidecar.shipping.ledger import FileLedger
from qalita_sidecar.shipping.outbox import Outbox, default_root


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


def _asset_name(key: dg.AssetKey) -> str:
    return "/".join(key.path)


def _check(evaluation: Any) -> CheckResult:
    metadata = dict(evaluation.metadata or {})
    column = metadata.pop("column", None)
    column_value = getattr(column, "value", column)
    numbers = {k: getattr(v, "value", v) for k, v in metadata.items()}
    return CheckResult(
        asset=_asset_name(evaluation.asset_key),
        name=evaluation.check_name,
        passed=bool(evaluation.passed),
        severity=getattr(evaluation.severity, "value", str(evaluation.severity)),
        description=evaluation.description,
        column=str(column_value) if isinstance(column_value, str) and column_value else None,
        numbers={k: v for k, v in numbers.items() if is_number(v)},
    )


def read_run(instance: dg.DagsterInstance, run: dg.DagsterRun) -> DagsterRunRecord:
    """Asset check evaluations, step failures and materializations of one run, from its events."""
    events = dg.DagsterEventType
    checks, failed, materialized = [], [], []
    for entry in instance.all_logs(run.run_id, of_type={
            events.ASSET_CHECK_EVALUATION, events.STEP_FAILURE, events.ASSET_MATERIALIZATION}):
        event = entry.dagster_event
        if event is None:
            continue
        if event.event_type == events.ASSET_CHECK_EVALUATION:
            checks.append(_check(event.event_specific_data))
        elif event.event_type == events.STEP_FAILURE:
            error = getattr(event.event_specific_data, "error", None)
            while getattr(error, "cause", None) is not None:  # the user's error, not the wrapper
                error = error.cause
            message = (getattr(error, "message", None) or event.message or "failed").strip()
            failed.append((event.step_key or "?", message.splitlines()[0]))
        elif event.asset_key is not None:
            materialized.append(_asset_name(event.asset_key))
    stats = instance.get_run_stats(run.run_id)
    return DagsterRunRecord(
        run_id=run.run_id, job_name=run.job_name, status=run.status.value,
        started_at=qalita_date(stats.start_time) if stats.start_time else None,
        finished_at=qalita_date(stats.end_time) if stats.end_time else None,
        checks=tuple(checks), failed_steps=tuple(failed), materialized=tuple(materialized))


def run_to_shipment(run: DagsterRunRecord, project: str = "dagster",
                    source_name: str | None = None) -> Shipment:
    """One Shipment per run (pure)."""
    database = Scope("database", project)
    datasets: dict[str, Scope] = {}

    def dataset(name: str) -> Scope:
        return datasets.setdefault(name, Scope("dataset", name, database))

    counts: dict[Scope, Counter[str]] = {database: Counter()}
    values: list[Metric] = []
    recommendations: list[Recommendation] = []
    for check in run.checks:
        asset = dataset(check.asset)
        scope = Scope("column", check.column, asset) if check.column else asset
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
        source_name=source_name or project,
        source_type="database",
        job=Job(f"dagster run {run.job_name} ({run.run_id[:8]})", start,
                run.finished_at or start, "succeeded" if run.status == "SUCCESS" else "failed"),
        metrics=tuple(metrics),
        recommendations=tuple(recommendations),
        schemas=schema_entries(scopes),
        context={"invocation_id": run.run_id, "project": project, "job": run.job_name,
                 "status": run.status, "checks": len(run.checks),
                 "mapping_keys": [f"dagster/{project}", project]},
    )


class QalitaResource(dg.ConfigurableResource):
    """Ships Dagster runs to QALITA. Endpoint, token and ids come from the environment, as for
    `qalita-sidecar` (QALITA_WORKER_ENDPOINT, QALITA_WORKER_TOKEN, QALITA_PACK_ID, ...); without an
    endpoint the shipments wait in the outbox for `qalita-sidecar flush`."""

    project: str = "dagster"
    source_name: str | None = None
    outbox_dir: str | None = None  # default $QALITA_OUTBOX_DIR, else .qalita/outbox
    mapping_file: str | None = None  # default $QALITA_MAPPING_FILE
    source_id: int | None = None
    pack_id: int | None = None
    pack_version_id: int | None = None

    def ship_run(self, instance: dg.DagsterInstance, run: dg.DagsterRun) -> list[Outcome]:
        shipment = run_to_shipment(read_run(instance, run), self.project, self.source_name)
        settings = load_settings(os.environ, source_id=self.source_id, pack_id=self.pack_id,
                                 pack_version_id=self.pack_version_id,
                                 mapping_file=Path(self.mapping_file) if self.mapping_file
                                 else None)
        outbox = Outbox(Path(self.outbox_dir) if self.outbox_dir else default_root())
        return ship([shipment], settings, outbox, FileLedger(outbox.root.parent / "ledger.jsonl"))


def _ship(context: dg.RunStatusSensorContext, qalita: QalitaResource) -> dg.SkipReason:
    outcomes = qalita.ship_run(context.instance, context.dagster_run)
    summary = ", ".join(f"{o.status}: {o.detail}" for o in outcomes)
    context.log.info(f"qalita: run {context.dagster_run.run_id[:8]}: {summary}")
    # Nothing to launch; the reason shows in the sensor's tick history.
    return dg.SkipReason(f"shipped to QALITA: {summary}")


def qalita_sensors(name: str = "qalita", minimum_interval_seconds: int = 30,
                   default_status: dg.DefaultSensorStatus = dg.DefaultSensorStatus.RUNNING,
                   ) -> list[dg.RunStatusSensorDefinition]:
    """Two run-status sensors (runs that succeeded, runs that failed) using the `qalita`
    resource."""

    @dg.run_status_sensor(run_status=dg.DagsterRunStatus.SUCCESS, name=f"{name}_run_success",
                          minimum_interval_seconds=minimum_interval_seconds,
                          default_status=default_status, monitor_all_code_locations=False)
    def on_success(context: dg.RunStatusSensorContext, qalita: QalitaResource):
        return _ship(context, qalita)

    @dg.run_status_sensor(run_status=dg.DagsterRunStatus.FAILURE, name=f"{name}_run_failure",
                          minimum_interval_seconds=minimum_interval_seconds,
                          default_status=default_status, monitor_all_code_locations=False)
    def on_failure(context: dg.RunStatusSensorContext, qalita: QalitaResource):
        return _ship(context, qalita)

    return [on_success, on_failure]
