"""Airbyte sync webhook events -> one Shipment per sync attempt (pure; the server is elsewhere).

Two payload shapes are read:
  - Airbyte's own sync notification webhook: `{"data": {"connection": {"id", "name"}, "jobId",
    "success", "startedAt", "finishedAt", "recordsEmitted", "recordsCommitted", "bytesEmitted",
    "bytesCommitted", "durationInSeconds", "errorMessage", ...}}`;
  - the QALITA Airbyte guide's payload: `{"connection": {"connectionId"}, "job": {"id", "status",
    "startedAt", "endedAt"}, "attempt": {"number", "totalStats": {...}}, "catalog": {"streams":
    [...]}}` (timestamps in epoch milliseconds), which also carries the synced catalog.

Scopes: the connection is the database, each stream a dataset, each catalog property a column.
  metrics          records/bytes emitted and committed, duration_seconds and sync_status on the
                   connection; `data_type` on each column of the catalog.
  recommendations  a failed sync (`high`, with Airbyte's error message); committed fewer records
                   than emitted (`warning`).
  schemas          the connection, its streams and their columns.
  job              the sync: `succeeded` or `failed`, from its start to its end.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from qalita_sidecar.readers.common import (
    QALITA_DATE,
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

STATS = ("records_emitted", "records_committed", "bytes_emitted", "bytes_committed")
_CAMEL = {"records_emitted": "recordsEmitted", "records_committed": "recordsCommitted",
          "bytes_emitted": "bytesEmitted", "bytes_committed": "bytesCommitted"}


class AirbyteEventError(ValueError):
    """The event cannot be used (answered 400); the message says what is missing."""


@dataclass(frozen=True)
class Column:
    name: str
    type: str


@dataclass(frozen=True)
class Stream:
    name: str
    columns: tuple[Column, ...]


@dataclass(frozen=True)
class AirbyteSync:
    connection_id: str
    connection_name: str | None
    job_id: str
    attempt: str | None
    status: str  # Airbyte's word: succeeded, failed, cancelled, ...
    started_at: str  # QALITA date
    finished_at: str
    duration_s: float | None
    stats: Mapping[str, int]  # records/bytes emitted/committed present in the event
    error_message: str | None
    streams: tuple[Stream, ...]

    @property
    def succeeded(self) -> bool:
        return self.status == "succeeded"


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _type_name(schema: dict[str, Any]) -> str:
    """JSON-schema type in one word: ["string", "null"] + format date-time: "string(date-time)"."""
    raw = schema.get("type")
    types = [t for t in (raw if isinstance(raw, list) else [raw]) if t and t != "null"]
    name = "|".join(map(str, types)) or str(schema.get("airbyte_type") or "unknown")
    fmt = schema.get("format") or schema.get("airbyte_type")
    return f"{name}({fmt})" if fmt and fmt != name else name


def _streams(body: dict[str, Any]) -> tuple[Stream, ...]:
    catalog = _dict(body.get("catalog") or body.get("syncedCatalog"))
    streams = []
    for item in catalog.get("streams") or []:
        item = _dict(item)
        inner = _dict(item.get("stream")) or item  # configured catalogs nest the stream
        name = inner.get("name")
        if not name:
            continue
        props = _dict(_dict(inner.get("jsonSchema") or inner.get("json_schema")).get("properties"))
        streams.append(Stream(str(name), tuple(Column(str(c), _type_name(_dict(s)))
                                               for c, s in props.items())))
    return tuple(streams)


def parse_event(body: Any) -> AirbyteSync:
    """Normalise either payload shape; AirbyteEventError when the event identifies no sync."""
    if not isinstance(body, dict):
        raise AirbyteEventError("the body must be a JSON object")
    data = _dict(body.get("data")) or body
    connection = _dict(data.get("connection"))
    connection_id = (connection.get("id") or connection.get("connectionId")
                     or data.get("connectionId") or data.get("connection_id"))
    if not connection_id:
        raise AirbyteEventError("no connection id (data.connection.id or connection.connectionId)")
    job = _dict(data.get("job"))
    attempt = _dict(data.get("attempt"))
    job_id = data.get("jobId") if data.get("jobId") is not None else job.get("id")
    if job_id is None or job_id == "":
        # Without it a replayed event could not be told from a new sync.
        raise AirbyteEventError("no job id (data.jobId or job.id)")
    if "success" in data:
        status = "succeeded" if data["success"] is True else "failed"
    else:
        status = str(job.get("status") or attempt.get("status") or "unknown").lower()
    started = data.get("startedAt") or attempt.get("startedAt") or job.get("startedAt")
    finished = (data.get("finishedAt") or attempt.get("endedAt") or job.get("endedAt")
                or job.get("finishedAt"))
    try:
        start = qalita_date(started, default=now_date())
        end = qalita_date(finished, default=start)
    except (ValueError, TypeError, OverflowError) as exc:
        raise AirbyteEventError(f"unreadable start/end timestamp ({exc})") from exc
    stats_src = _dict(attempt.get("totalStats")) or _dict(attempt.get("syncStats")) or data
    stats = {k: int(stats_src[c]) for k, c in _CAMEL.items() if is_number(stats_src.get(c))}
    duration = data.get("durationInSeconds")
    if not is_number(duration):
        duration = (datetime.strptime(end, QALITA_DATE) - datetime.strptime(start, QALITA_DATE)
                    ).total_seconds() if started and finished else None
    error = data.get("errorMessage") or _dict(attempt.get("failureSummary")).get("message")
    return AirbyteSync(
        connection_id=str(connection_id),
        connection_name=str(connection["name"]) if connection.get("name") else None,
        job_id=str(job_id),
        attempt=str(attempt["number"]) if attempt.get("number") is not None else None,
        status=status,
        started_at=start,
        finished_at=end,
        duration_s=float(duration) if duration is not None else None,
        stats=stats,
        error_message=str(error) if error else None,
        streams=_streams(data) or _streams(body),
    )


def sync_key(sync: AirbyteSync) -> str:
    """The same sync attempt replayed by Airbyte gives the same key."""
    return idempotency_key("airbyte", sync.connection_id, sync.job_id, sync.attempt)


def sync_to_shipment(sync: AirbyteSync, source_name: str | None = None) -> Shipment:
    label = sync.connection_name or f"airbyte-{sync.connection_id}"
    # named after the QALITA source, as QALITA's packs name it
    connection = Scope("database", source_name or label)
    metrics = [Metric(k, v, connection) for k, v in sync.stats.items()]
    if sync.duration_s is not None:
        metrics.append(Metric("duration_seconds", round(sync.duration_s, 3), connection))
    metrics.append(Metric("sync_status", sync.status, connection))
    recommendations = []
    if not sync.succeeded:
        why = f": {sync.error_message}" if sync.error_message else ""
        recommendations.append(Recommendation(
            f"Airbyte sync of connection {label} (job {sync.job_id}) {sync.status}{why}",
            "Sync Failed", connection, "high"))
    emitted, committed = sync.stats.get("records_emitted"), sync.stats.get("records_committed")
    if sync.succeeded and emitted is not None and committed is not None and committed < emitted:
        recommendations.append(Recommendation(
            f"Airbyte sync of connection {label} (job {sync.job_id}) committed {committed} of "
            f"{emitted} records emitted", "Records Not Committed", connection, "warning"))
    scopes: list[Scope] = [connection]
    for stream in sync.streams:
        dataset = Scope("dataset", stream.name, connection)
        scopes.append(dataset)
        for column in stream.columns:
            scope = column_scope(dataset, column.name)
            scopes.append(scope)
            metrics.append(Metric("data_type", column.type, scope))
    run = f"{sync.connection_id}/{sync.job_id}" + (f"/{sync.attempt}" if sync.attempt else "")
    return Shipment(
        key=sync_key(sync),
        origin="airbyte",
        source_name=connection.value,
        source_type="database",
        job=Job(f"airbyte sync {label} (job {sync.job_id})", sync.started_at, sync.finished_at,
                "succeeded" if sync.succeeded else "failed"),
        metrics=tuple(metrics),
        recommendations=tuple(recommendations),
        schemas=schema_entries(scopes),
        context=RunContext(invocation_id=run, connection_id=sync.connection_id,
                           mapping_keys=(sync.connection_id,), status=sync.status,
                           streams=len(sync.streams)),
    )
