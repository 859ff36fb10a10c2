"""The hand-off between reading (dbt, Soda, Airbyte, Dagster) and sending: one Shipment per run.

Everything a reader produces is a Shipment; everything after it (outbox, client, ledger) only
knows Shipments. Items serialise to exactly the JSON shapes of QALITA's three files.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Literal

Perimeter = Literal["database", "dataset", "column"]
Level = Literal["info", "warning", "high"]
JobStatus = Literal["succeeded", "failed"]
JOB_KEY_CHARS = 12  # of the key, in the QALITA job name: 48 bits, no clash between real runs
LOG_RECOMMENDATIONS = 200  # lines of a default log: enough to read, bounded for huge runs


@dataclass(frozen=True)
class Scope:
    perimeter: Perimeter
    value: str
    parent: Scope | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"perimeter": self.perimeter, "value": self.value}
        if self.parent is not None:
            out["parent_scope"] = self.parent.to_json()
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Scope:
        parent = data.get("parent_scope")
        return cls(data["perimeter"], data["value"], cls.from_json(parent) if parent else None)


def column_scope(dataset: Scope, column: str) -> Scope:
    """A column's scope as QALITA's packs write it: directly under its dataset, the dataset's own
    parent left out (`column > dataset`, never `column > dataset > database`)."""
    return Scope("column", column, Scope(dataset.perimeter, dataset.value))


@dataclass(frozen=True)
class Metric:
    key: str
    value: str | int | float
    scope: Scope

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "value": self.value, "scope": self.scope.to_json()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Metric:
        return cls(data["key"], data["value"], Scope.from_json(data["scope"]))


@dataclass(frozen=True)
class Recommendation:
    content: str
    type: str
    scope: Scope
    level: Level

    def to_json(self) -> dict[str, Any]:
        return {
            "content": self.content,
            "type": self.type,
            "scope": self.scope.to_json(),
            "level": self.level,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Recommendation:
        return cls(data["content"], data["type"], Scope.from_json(data["scope"]), data["level"])


@dataclass(frozen=True)
class SchemaEntry:
    key: Literal["database", "dataset", "column"]
    value: str
    scope: Scope

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "value": self.value, "scope": self.scope.to_json()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SchemaEntry:
        return cls(data["key"], data["value"], Scope.from_json(data["scope"]))


@dataclass(frozen=True)
class Job:
    """One QALITA job per run: created `running` at started_at, finished with status."""

    name: str
    started_at: str  # "YYYY-MM-DD HH:MM:SS", UTC
    finished_at: str  # "YYYY-MM-DD HH:MM:SS", UTC
    status: JobStatus


@dataclass(frozen=True)
class Shipment:
    """Everything QALITA receives for one run of one tool (a dbt invocation, a Soda scan, ...)."""

    key: str  # idempotency key: see idempotency_key()
    origin: str  # "dbt", "soda", "airbyte", "dagster"
    source_name: str  # the QALITA source this run reports on (found or published by name)
    source_type: str  # e.g. "database"
    job: Job
    metrics: tuple[Metric, ...]
    recommendations: tuple[Recommendation, ...]
    schemas: tuple[SchemaEntry, ...]
    # What the run was: invocation id, project, environment, git sha, counts... (kept for the ledger
    # and the summary; never sent as a file).
    context: dict[str, Any] = field(default_factory=dict)
    # The run's log, uploaded as the QALITA job's logs asset. A reader may give what its tool
    # printed (dbt: the result lines and the `Done. PASS=...` line); empty: built by default_log().
    log: str = ""

    def __post_init__(self) -> None:
        if not self.log:
            object.__setattr__(self, "log", default_log(self))

    @property
    def qalita_job_name(self) -> str:
        """The job's name on QALITA: the reader's name, then the start of the key, so a job whose
        creation answer was lost can be found again by name."""
        return f"{self.job.name} [{self.key[:JOB_KEY_CHARS]}]"

    def files(self) -> dict[str, list[dict[str, Any]]]:
        """The three upload files, by file name, as bare JSON arrays."""
        return {
            "metrics.json": [m.to_json() for m in self.metrics],
            "recommendations.json": [r.to_json() for r in self.recommendations],
            "schemas.json": [s.to_json() for s in self.schemas],
        }

    def to_json(self) -> dict[str, Any]:
        """Everything, as plain JSON (the outbox's file format); from_json() inverts it exactly."""
        return {
            "format": 1,
            "key": self.key,
            "origin": self.origin,
            "source_name": self.source_name,
            "source_type": self.source_type,
            "job": {"name": self.job.name, "started_at": self.job.started_at,
                    "finished_at": self.job.finished_at, "status": self.job.status},
            **self.files(),
            "context": self.context,
            "log": self.log,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Shipment:
        job = data["job"]
        return cls(
            key=data["key"],
            origin=data["origin"],
            source_name=data["source_name"],
            source_type=data["source_type"],
            job=Job(job["name"], job["started_at"], job["finished_at"], job["status"]),
            metrics=tuple(Metric.from_json(m) for m in data["metrics.json"]),
            recommendations=tuple(Recommendation.from_json(r)
                                  for r in data["recommendations.json"]),
            schemas=tuple(SchemaEntry.from_json(s) for s in data["schemas.json"]),
            context=dict(data.get("context") or {}),
            log=str(data.get("log") or ""),
        )


def default_log(shipment: Shipment) -> str:
    """A log for a run whose reader gave none: the job, its counts and its recommendations."""
    job = shipment.job
    lines = [f"{job.name}: {job.status} ({job.started_at} .. {job.finished_at} UTC)",
             f"{len(shipment.metrics)} metrics, {len(shipment.recommendations)} recommendations, "
             f"{len(shipment.schemas)} schema entries"]
    for rec in shipment.recommendations[:LOG_RECOMMENDATIONS]:
        lines.append(f"[{rec.level}] {rec.type}: {rec.content}")
    hidden = len(shipment.recommendations) - LOG_RECOMMENDATIONS
    if hidden > 0:
        lines.append(f"... and {hidden} more recommendation(s)")
    return "\n".join(lines) + "\n"


def idempotency_key(*parts: str | None) -> str:
    """sha256 over the identifying parts (for dbt: project, environment, git sha, invocation id).

    Parts are joined with a unit separator so ("a", "bc") and ("ab", "c") differ; None is "".
    """
    joined = "\x1f".join("" if p is None else str(p) for p in parts)
    return hashlib.sha256(joined.encode("utf-8")).hexdigest()
