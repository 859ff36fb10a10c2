"""The hand-off between reading (dbt, Soda, Airbyte, Dagster) and sending: one Shipment per run.

Everything a reader produces is a Shipment; everything after it (outbox, client, ledger) only
knows Shipments. Items serialise to exactly the JSON shapes of QALITA's three files, and a
Shipment to the outbox's file format (encode_shipment(), decode_shipment()).
"""

from __future__ import annotations

import hashlib
from typing import Any, Literal

import msgspec

from qalita_sidecar.run_context import RunContext

Perimeter = Literal["database", "dataset", "column"]
Level = Literal["info", "warning", "high"]
JobStatus = Literal["succeeded", "failed"]
Origin = Literal["dbt", "dbt-cloud", "soda", "airbyte", "dagster"]
JOB_KEY_CHARS = 12  # of the key, in the QALITA job name: 48 bits, no clash between real runs
LOG_RECOMMENDATIONS = 200  # lines of a default log: enough to read, bounded for huge runs


# A 100 k-result run builds several hundred thousand items: gc=False keeps the cycle collector off
# them (frozen records of strings and numbers cannot form a cycle).
class Scope(msgspec.Struct, frozen=True, gc=False, omit_defaults=True):
    perimeter: Perimeter
    value: str
    # `parent_scope` in QALITA's files, left out (never null) when there is none, as its packs do
    parent: Scope | None = msgspec.field(default=None, name="parent_scope")


def column_scope(dataset: Scope, column: str) -> Scope:
    """A column's scope as QALITA's packs write it: directly under its dataset, the dataset's own
    parent left out (`column > dataset`, never `column > dataset > database`)."""
    return Scope("column", column, Scope(dataset.perimeter, dataset.value))


class Metric(msgspec.Struct, frozen=True, gc=False):
    key: str
    # JSON has no NaN or infinity: a non-finite number is written as null, and read back so
    value: str | int | float | None
    scope: Scope


class Recommendation(msgspec.Struct, frozen=True, gc=False):
    content: str
    type: str
    scope: Scope
    level: Level


class SchemaEntry(msgspec.Struct, frozen=True, gc=False):
    key: Perimeter
    value: str
    scope: Scope


class Job(msgspec.Struct, frozen=True):
    """One QALITA job per run: created `running` at started_at, finished with status."""

    name: str
    started_at: str  # "YYYY-MM-DD HH:MM:SS", UTC
    finished_at: str  # "YYYY-MM-DD HH:MM:SS", UTC
    status: JobStatus


# Tagged with "format": 1, and the three item lists under their QALITA file names, so an outbox
# entry is the Shipment encoded as is; a later format can be decoded beside this one by its tag.
class Shipment(msgspec.Struct, frozen=True, tag_field="format", tag=1):
    """Everything QALITA receives for one run of one tool (a dbt invocation, a Soda scan, ...)."""

    key: str  # idempotency key: see idempotency_key()
    origin: Origin
    source_name: str  # the QALITA source this run reports on (found or published by name)
    source_type: str  # e.g. "database"
    job: Job
    metrics: tuple[Metric, ...] = msgspec.field(name="metrics.json")
    recommendations: tuple[Recommendation, ...] = msgspec.field(name="recommendations.json")
    schemas: tuple[SchemaEntry, ...] = msgspec.field(name="schemas.json")
    # What the run was (kept for the ledger, the mapping file and the summary; never sent).
    context: RunContext = msgspec.field(default_factory=RunContext)
    # What the reader's tool printed, if it gave it (uploaded as the job's logs asset); empty:
    # `log` builds one from the shipment.
    reader_log: str = msgspec.field(default="", name="log")

    @property
    def log(self) -> str:
        """The run's log, uploaded as the QALITA job's logs asset."""
        return self.reader_log or default_log(self)

    @property
    def qalita_job_name(self) -> str:
        """The job's name on QALITA: the reader's name, then the start of the key, so a job whose
        creation answer was lost can be found again by name."""
        return f"{self.job.name} [{self.key[:JOB_KEY_CHARS]}]"

    def items(self) -> dict[str, tuple[Metric, ...] | tuple[Recommendation, ...]
                                  | tuple[SchemaEntry, ...]]:
        """The three upload files' items, by file name (msgspec.json encodes each as is)."""
        return {"metrics.json": self.metrics, "recommendations.json": self.recommendations,
                "schemas.json": self.schemas}

    def files(self) -> dict[str, list[dict[str, Any]]]:
        """The three upload files, by file name, as bare JSON arrays of plain objects."""
        return {name: msgspec.to_builtins(list(items)) for name, items in self.items().items()}


_ENCODER = msgspec.json.Encoder()
_DECODER = msgspec.json.Decoder(Shipment)


def encode_shipment(shipment: Shipment) -> bytes:
    """The shipment as JSON (the outbox's file format); decode_shipment() inverts it exactly."""
    return _ENCODER.encode(shipment)


def decode_shipment(data: bytes | str) -> Shipment:
    """A shipment from its JSON; msgspec.ValidationError names the first field that is wrong,
    msgspec.DecodeError a text that is not JSON."""
    return _DECODER.decode(data)


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
