"""Soda Core 3.x scan results (`soda scan ... -srf scan_results.json`) -> one Shipment per scan.

Scopes: the Soda data source is the database, a table its dataset, a check's column (when Soda
knows it) a column under that dataset.
  metrics          `check_passed`, `check_failed`, `check_warned`, `check_errored` and `score` per
                   data source, table and column; each check's measured value (`missing_count`,
                   `duplicate_count`, `min`, ...) on the check's scope.
  recommendations  one per failing (`high`), warning (`warning`) or unevaluated (`high`) check.
  schemas          every scope used, plus the columns Soda's schema checks saw.
  job              the scan; `failed` when Soda reported scan errors (failing checks are findings,
                   not a failed job), from scanStartTimestamp to scanEndTimestamp.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path
from typing import Any, Literal

from qalita_sidecar.readers.common import (
    count_metrics,
    is_number,
    now_date,
    qalita_date,
    schema_entries,
)
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

OUTCOMES = {"pass": "passed", "fail": "failed", "warn": "warned"}
LEVELS = {"failed": "high", "warned": "warning", "errored": "high"}
TYPES = {"failed": "Soda Check Failed", "warned": "Soda Check Warning",
         "errored": "Soda Check Error"}
VERBS = {"failed": "failed", "warned": "warned", "errored": "could not be evaluated"}


class SodaResultsError(Exception):
    """The scan results file cannot be used; the one-line message names the file."""


def read_scan_results(path: Path) -> dict[str, Any]:
    """The parsed file, checked to be Soda scan results."""
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise SodaResultsError(f"{path}: cannot read ({exc.strerror})") from exc
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise SodaResultsError(f"{path}: not valid JSON, truncated or corrupt? ({exc})") from exc
    if not isinstance(data, dict) or not isinstance(data.get("checks"), list):
        raise SodaResultsError(f"{path}: not Soda scan results (no 'checks' list); write them "
                               f"with `soda scan ... -srf {Path(path).name}`")
    for i, check in enumerate(data["checks"]):
        if not isinstance(check, dict) or not isinstance(check.get("name"), str):
            raise SodaResultsError(f"{path}: check #{i + 1} has no name; not Soda scan results?")
    return data


def _outcome(check: dict[str, Any]) -> str:
    # Soda leaves `outcome` null when a check could not be evaluated (query error, bad config).
    return OUTCOMES.get(str(check.get("outcome") or "").lower(), "errored")


def _scopes(check: dict[str, Any], database: Scope) -> tuple[Scope | None, Scope | None]:
    table = check.get("table")
    dataset = Scope("dataset", str(table), database) if table else None
    column = check.get("column")
    col = column_scope(dataset, str(column)) if column and dataset else None
    return dataset, col


def _metric_names(scan: dict[str, Any]) -> dict[str, str]:
    return {str(m.get("identity")): str(m.get("metricName")) for m in scan.get("metrics") or []
            if isinstance(m, dict) and m.get("metricName")}


def _content(check: dict[str, Any], outcome: str, scope: Scope, value: Any, ds: str) -> str:
    where = scope.value
    if scope.perimeter == "column" and scope.parent is not None:
        where = f"{scope.parent.value}.{scope.value}"
    text = f"Soda check `{check['name']}` {VERBS[outcome]} on {where} (data source {ds})"
    diagnostics = check.get("diagnostics") or {}
    if is_number(value):
        text += f": measured {value}"
    missing = diagnostics.get("missing_column_names") or []
    if missing:
        text += f": missing column(s) {', '.join(map(str, missing))}"
    changes = diagnostics.get("column_type_mismatches") or {}
    if changes:
        text += f": column type mismatch on {', '.join(map(str, changes))}"
    reasons = check.get("outcomeReasons") or []
    messages = [str(r.get("message")) for r in reasons if isinstance(r, dict) and r.get("message")]
    if messages:
        text += f" ({'; '.join(messages)})"
    return text + "."


def _schema_columns(scan: dict[str, Any], database: Scope) -> list[Scope]:
    """Columns Soda's schema metrics saw (value: [{columnName, sourceDataType}])."""
    scopes: list[Scope] = []
    for metric in scan.get("metrics") or []:
        if not isinstance(metric, dict) or metric.get("metricName") != "schema":
            continue
        table, columns = metric.get("tableName"), metric.get("value")
        if not table or not isinstance(columns, list):
            continue
        dataset = Scope("dataset", str(table), database)
        scopes.append(dataset)
        scopes += [column_scope(dataset, str(c["columnName"])) for c in columns
                   if isinstance(c, dict) and c.get("columnName")]
    return scopes


def scan_to_shipment(scan: dict[str, Any], source_name: str | None = None) -> Shipment:
    """One Shipment for one Soda scan (pure: the caller reads the file)."""
    default_ds = str(scan.get("defaultDataSource") or "soda")
    definition = str(scan.get("definitionName") or "soda scan")
    metric_names = _metric_names(scan)
    counts: dict[Scope, Counter[str]] = {}
    values: list[Metric] = []
    seen_values: set[tuple[str, Scope]] = set()
    recommendations: list[Recommendation] = []

    # named after the QALITA source, as QALITA's packs name it (a scan reads one data source)
    source = source_name or default_ds
    database = Scope("database", source)
    for check in scan["checks"]:
        outcome = _outcome(check)
        dataset, column = _scopes(check, database)
        scope = column or dataset or database
        for s in (database, dataset, column):
            if s is not None:
                counts.setdefault(s, Counter())[outcome] += 1
        diagnostics = check.get("diagnostics") or {}
        value = diagnostics.get("value")
        ids = check.get("metrics") or []
        name = metric_names.get(str(ids[0])) if ids else None
        if name and name != "schema" and is_number(value):
            key = name if (name, scope) not in seen_values else f"{name}:{check.get('identity')}"
            seen_values.add((key, scope))
            values.append(Metric(key, value, scope))
        if outcome != "passed":
            ds = str(check.get("dataSource") or default_ds)
            recommendations.append(Recommendation(_content(check, outcome, scope, value, ds),
                                                  TYPES[outcome], scope, LEVELS[outcome]))  # type: ignore[arg-type]

    metrics: list[Metric] = []
    for scope, counter in counts.items():
        metrics += count_metrics("check", counter, scope)
    metrics += values
    scopes = [m.scope for m in metrics] + [r.scope for r in recommendations]
    scopes += _schema_columns(scan, database)

    total: Counter[str] = Counter()
    for scope, counter in counts.items():
        if scope.perimeter == "database":
            total.update(counter)
    start = qalita_date(scan.get("scanStartTimestamp"), default=now_date())
    end = qalita_date(scan.get("scanEndTimestamp"), default=start)
    status: Literal["failed", "succeeded"] = "failed" if scan.get("hasErrors") else "succeeded"
    # The same scan results read twice give the same key: the checks are part of it. Stdlib json:
    # its text (spacing, floats, default=str) is what the keys of shipped scans were built from.
    digest = hashlib.sha256(json.dumps(scan["checks"], sort_keys=True, default=str)
                            .encode("utf-8")).hexdigest()
    run = f"{definition}@{scan.get('scanStartTimestamp')}"
    return Shipment(
        key=idempotency_key("soda", default_ds, definition, scan.get("scanStartTimestamp"),
                            digest),
        origin="soda",
        source_name=source,
        source_type="database",
        job=Job(f"soda scan {definition} ({default_ds})", start, end, status),
        metrics=tuple(metrics),
        recommendations=tuple(recommendations),
        schemas=schema_entries(scopes),
        context=RunContext(invocation_id=run, data_source=default_ds, definition=definition,
                           mapping_keys=(f"soda/{default_ds}", default_ds),
                           checks=len(scan["checks"]), passed=total["passed"],
                           failed=total["failed"], warned=total["warned"],
                           errored=total["errored"]),
    )
