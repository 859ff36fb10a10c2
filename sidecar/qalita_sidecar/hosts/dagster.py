"""Dagster -> QALITA: a `QalitaResource` and run-status sensors that ship each finished run's asset
checks and outcome through the sidecar (outbox, retries, ledger), not through a CLI.

    from qalita_sidecar.hosts.dagster import QalitaResource, qalita_sensors
    defs = dg.Definitions(assets=..., asset_checks=...,
                          resources={"qalita": QalitaResource(project="retail")},
                          sensors=qalita_sensors())

The mapping of a run to a shipment is qalita_sidecar.readers.dagster (pure, testable without
Dagster); this module reads runs from a Dagster instance and ships them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import dagster as dg

from qalita_sidecar.readers.common import is_number, qalita_date
from qalita_sidecar.readers.dagster import CheckResult, DagsterRunRecord, run_to_shipment
from qalita_sidecar.settings import load_settings
from qalita_sidecar.shipping.deliver import Outcome, ship
from qalita_sidecar.shipping.ledger import file_ledger
from qalita_sidecar.shipping.outbox import Outbox


def _asset_name(key: dg.AssetKey) -> str:
    return "/".join(key.path)


def _check(evaluation: Any) -> CheckResult:
    metadata = dict(evaluation.metadata or {})
    column = metadata.pop("column", None)
    column_value = getattr(column, "value", column)
    numbers = {k: getattr(v, "value", v) for k, v in metadata.items()}
    numeric: dict[str, float | int] = {k: v for k, v in numbers.items() if is_number(v)}
    return CheckResult(
        asset=_asset_name(evaluation.asset_key),
        name=evaluation.check_name,
        passed=bool(evaluation.passed),
        severity=getattr(evaluation.severity, "value", str(evaluation.severity)),
        description=evaluation.description,
        column=str(column_value) if isinstance(column_value, str) and column_value else None,
        numbers=numeric,
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
            error: Any = getattr(event.event_specific_data, "error", None)
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
        outbox = Outbox(Path(self.outbox_dir) if self.outbox_dir else None)
        return ship([shipment], settings, outbox, file_ledger(outbox.root))


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
