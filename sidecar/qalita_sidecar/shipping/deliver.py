"""Ship shipments exactly once: outbox first, then QALITA, then the ledger, then drop the entry.

Order of a delivery, and why a crash at any point loses nothing and duplicates nothing:
  1. the shipment is spooled (outbox) before any request;
  2. the source id, then the created job id, are noted next to the outbox entry as soon as QALITA
     gives them, so a replay reuses that job instead of creating a second one;
  3. the three files are uploaded; a replayed upload is answered 409, which counts as delivered;
  4. the job is finished, the ledger row written, and only then the outbox entry removed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

from qalita_sidecar.settings import Settings, SettingsError
from qalita_sidecar.shipment import Shipment
from qalita_sidecar.shipping.client import (
    AuthFailed,
    QalitaClient,
    QalitaError,
    Rejected,
    Unavailable,
)
from qalita_sidecar.shipping.ledger import Ledger, LedgerError
from qalita_sidecar.shipping.outbox import Entry, Outbox

Status = Literal["delivered", "already_delivered", "queued", "dead"]
UPLOAD_KINDS = ("metrics", "recommendations", "schemas")
EX_TEMPFAIL = 75


@dataclass(frozen=True)
class Outcome:
    key: str
    status: Status
    detail: str
    job_id: int | None = None


Progress = Callable[[Outcome], None]


def mapping_names(shipment: Shipment) -> list[str]:
    """Names a mapping file may use for this run, most specific first.

    A reader may set context["mapping_keys"]; otherwise "project/environment", "project",
    an Airbyte "connection_id", then the source name.
    """
    ctx = shipment.context
    if ctx.get("mapping_keys"):
        return [str(k) for k in ctx["mapping_keys"]]
    names = []
    if ctx.get("project") and ctx.get("environment"):
        names.append(f"{ctx['project']}/{ctx['environment']}")
    names += [str(ctx[k]) for k in ("project", "connection_id") if ctx.get(k)]
    names.append(shipment.source_name)
    return names


def _send(client: QalitaClient, outbox: Outbox, entry: Entry) -> int:
    """Deliver one outbox entry; returns the QALITA job id. Raises QalitaError/SettingsError."""
    shipment, key = entry.shipment, entry.shipment.key
    ids = client.settings.ids_for(mapping_names(shipment))
    source_id = ids.source_id or entry.source_id
    if source_id is None:
        description = f"Results of {shipment.origin} runs, shipped by qalita-sidecar"
        source_id = client.find_source(shipment.source_name, shipment.source_type) \
            or client.publish_source(shipment.source_name, shipment.source_type, description)
        outbox.note(key, source_id=source_id)
    ids = type(ids)(source_id, ids.pack_id, ids.pack_version_id, ids.source_version_id)
    job_id = entry.job_id
    if job_id is None:
        job_id = client.create_job(shipment.job.name, ids, shipment.job.started_at)
        outbox.note(key, job_id=job_id)
    files = shipment.files()
    for kind in UPLOAD_KINDS:
        client.upload(kind, files[f"{kind}.json"], ids)
    client.finish_job(job_id, shipment.job.finished_at, shipment.job.status)
    return job_id


def _deliver(entries: list[Entry], settings: Settings, outbox: Outbox, ledger: Ledger,
             progress: Progress | None, client: QalitaClient | None) -> list[Outcome]:
    client = client or QalitaClient(settings)
    outcomes: list[Outcome] = []
    blocked: str | None = None  # once QALITA is down or refuses us, the rest waits too

    def done(outcome: Outcome) -> None:
        outcomes.append(outcome)
        if progress:
            progress(outcome)

    for entry in entries:
        key = entry.shipment.key
        if ledger.shipped(key):
            # Delivered and recorded, but the process stopped before dropping the entry.
            outbox.remove(key)
            done(Outcome(key, "already_delivered", "already in the ledger", entry.job_id))
            continue
        if blocked:
            done(Outcome(key, "queued", f"not sent: {blocked}", entry.job_id))
            continue
        client.begin(key)
        try:
            job_id = _send(client, outbox, entry)
        except Rejected as exc:
            path = outbox.move_to_dead(key, exc.answer or str(exc))
            done(Outcome(key, "dead", f"{exc}; moved to {path}"))
            continue
        except (Unavailable, AuthFailed) as exc:
            blocked = str(exc)
            done(Outcome(key, "queued", f"{exc}; kept in {entry.path}", _job_of(outbox, entry)))
            continue
        except SettingsError as exc:  # ids missing for this run only: the others may have theirs
            done(Outcome(key, "queued", f"{exc}; kept in {entry.path}", _job_of(outbox, entry)))
            continue
        except QalitaError as exc:  # any other client failure keeps the shipment
            done(Outcome(key, "queued", f"{exc}; kept in {entry.path}", _job_of(outbox, entry)))
            continue
        try:
            ledger.record(entry.shipment, job_id)
        except LedgerError as exc:
            # Delivered, not recorded: the entry stays, and its replay is answered 409.
            blocked = str(exc)
            done(Outcome(key, "queued", f"delivered as job {job_id} but not recorded ({exc}); "
                         f"kept in {entry.path}, a flush records it", job_id))
            continue
        outbox.remove(key)
        done(Outcome(key, "delivered", f"job {job_id}", job_id))
    return outcomes


def _job_of(outbox: Outbox, entry: Entry) -> int | None:
    """The job id noted so far (the small ids file: the payload is not read again)."""
    return outbox.noted(entry.shipment.key).get("job_id", entry.job_id)


def ship(shipments: Iterable[Shipment], settings: Settings | None, outbox: Outbox, ledger: Ledger,
         progress: Progress | None = None, client: QalitaClient | None = None) -> list[Outcome]:
    """Spool every shipment not yet in the ledger, then (with settings) deliver them."""
    outcomes: list[Outcome] = []
    entries: list[Entry] = []
    for shipment in shipments:
        if ledger.shipped(shipment.key):
            outcome = Outcome(shipment.key, "already_delivered", "already in the ledger")
        elif outbox.dead_path(shipment.key).exists():
            outcome = Outcome(shipment.key, "dead", "QALITA refused it before; see "
                              f"{outbox.dead_path(shipment.key)} (move it to pending/ to retry)")
        else:
            entry = outbox.put_entry(shipment)  # written once, not read back
            if settings is None:
                outcome = Outcome(shipment.key, "queued",
                                  f"no QALITA endpoint configured; spooled to {entry.path}")
            else:
                entries.append(entry)
                continue
        outcomes.append(outcome)
        if progress:
            progress(outcome)
    if settings is not None and entries:
        outcomes += _deliver(entries, settings, outbox, ledger, progress, client)
    return outcomes


def flush(settings: Settings | None, outbox: Outbox, ledger: Ledger,
          progress: Progress | None = None, client: QalitaClient | None = None) -> list[Outcome]:
    """Replay what waits in the outbox, oldest first."""
    entries = outbox.entries()
    if settings is None:
        return [Outcome(e.shipment.key, "queued", "no QALITA endpoint configured", e.job_id)
                for e in entries]
    return _deliver(entries, settings, outbox, ledger, progress, client)


def exit_code(outcomes: Iterable[Outcome]) -> int:
    """0 delivered or nothing to do; 75 (EX_TEMPFAIL) something still queued; 1 something dead."""
    statuses = {o.status for o in outcomes}
    if "dead" in statuses:
        return 1
    if "queued" in statuses:
        return EX_TEMPFAIL
    return 0

