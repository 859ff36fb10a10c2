"""Ship shipments exactly once: outbox first, then QALITA, then the ledger, then drop the entry.

Order of one delivery, and why a crash, or a second process, at any point loses nothing and
duplicates nothing:
  1. the shipment is spooled (outbox) before any request;
  2. the key's lock (outbox locks/) is taken and the key claimed in the ledger; a key the ledger
     holds by then is only dropped from the outbox;
  3. the pack and its version are checked, once per run;
  4. the source id is noted next to the entry as soon as QALITA gives it; before the job is
     created the entry notes that a job is being requested, then its id once QALITA answers. A
     replay reuses the noted job; when the id was never noted (the answer was lost, the process
     killed, or a dead process's claim taken over) the job is looked up by its name, which carries
     the key, before a new one is created;
  5. the files that have items are uploaded; a replayed upload is answered 409 = delivered;
  6. the log goes up as the job's logs asset, and the job is finished with its id;
  7. the ledger row is written (the claim ends with it), and only then is the entry removed.
A refusal (a definitive 4xx) once the job exists finishes it `failed`, best effort, with the
refusal in its logs asset, before the shipment goes to dead/.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

from qalita_sidecar.settings import Ids, Settings, SettingsError
from qalita_sidecar.shipment import Shipment
from qalita_sidecar.shipping.client import (
    AuthFailed,
    QalitaClient,
    QalitaError,
    Rejected,
    Unavailable,
)
from qalita_sidecar.shipping.ledger import ClaimHeld, Ledger, LedgerError
from qalita_sidecar.shipping.outbox import Entry, LockTimeout, Outbox, OutboxError

log = logging.getLogger(__name__)

Status = Literal["delivered", "already_delivered", "queued", "dead"]
# The order QALITA's own client uploads in; a file without items is not sent at all.
UPLOAD_KINDS = ("recommendations", "schemas", "metrics")
EX_TEMPFAIL = 75
LOCK_SLACK_S = 30.0  # beyond the deadline: the ledger write and removal of the holder's shipment


@dataclass(frozen=True)
class Outcome:
    key: str
    status: Status
    detail: str
    job_id: int | None = None
    # A setting must change before this can ship (e.g. a pack version QALITA does not have):
    # kept pending, but the run fails (exit 1) instead of saying "try later".
    needs_fix: bool = False


Progress = Callable[[Outcome], None]


def mapping_names(shipment: Shipment) -> list[str]:
    """Names a mapping file may use for this run, most specific first.

    A reader may set context.mapping_keys; otherwise "project/environment", "project",
    an Airbyte connection id, then the source name.
    """
    ctx = shipment.context
    if ctx.mapping_keys:
        return list(ctx.mapping_keys)
    names = []
    if ctx.project and ctx.environment:
        names.append(f"{ctx.project}/{ctx.environment}")
    names += [name for name in (ctx.project, ctx.connection_id) if name]
    names.append(shipment.source_name)
    return names


@dataclass
class _Attempt:
    """What one delivery learnt so far, for the give-up path."""

    ids: Ids | None = None
    job_id: int | None = None
    logs_id: int | None = None


def _find_job(client: QalitaClient, shipment: Shipment) -> int | None:
    """The job an earlier attempt created (found by its name); other `running` jobs of that name
    are orphans of attempts whose answer was lost: finished `failed`."""
    try:
        jobs = client.find_jobs(shipment.qalita_job_name)
    except Rejected as exc:  # a server without the job list: fall back to a new job
        log.info("cannot look up jobs (%s); creating a new one", exc)
        return None
    if not jobs:
        return None
    keep = int(jobs[0]["id"])
    _fail_orphans(client, shipment, jobs, keep)
    return keep


def _fail_orphans(client: QalitaClient, shipment: Shipment, jobs: list[dict], keep: int) -> None:
    for job in jobs:
        if int(job["id"]) != keep and job.get("status") in ("running", "pending"):
            try:
                client.finish_job(int(job["id"]), shipment.job.finished_at, "failed",
                                  step=f"orphan-{job['id']}")
            except Rejected as exc:
                log.info("could not finish orphan job %s: %s", job["id"], exc)


def _send(client: QalitaClient, outbox: Outbox, shipment: Shipment, ids_known: dict,
          taken_over: bool, attempt: _Attempt) -> int:
    """Deliver one shipment; returns the QALITA job id. Raises QalitaError/SettingsError/
    OutboxError."""
    key = shipment.key
    ids = client.settings.ids_for(mapping_names(shipment))
    client.check_pack(ids)
    source_id = ids.source_id or ids_known.get("source_id")
    if source_id is None:
        source_id = client.find_source(shipment.source_name, shipment.source_type) \
            or _publish_once(client, outbox, shipment)
        outbox.note(key, source_id=source_id)
    ids = dataclasses.replace(ids, source_id=source_id)
    attempt.ids = ids
    job_id = ids_known.get("job_id")
    searched = False
    if job_id is None and (ids_known.get("job_requested_at") or taken_over):
        job_id = _find_job(client, shipment)
        searched = True
    if job_id is None:
        # noted first: a kill before the answer leaves the trace that sends the replay looking
        outbox.note(key, job_requested_at=int(time.time()))
        job_id = client.create_job(shipment.qalita_job_name, ids, shipment.job.started_at)
        # a creation retried after a lost answer may have made a job on the first try too
        searched = searched or client.attempts > 1
        outbox.note(key, job_id=job_id)
    attempt.job_id = job_id
    files = shipment.items()
    for kind in UPLOAD_KINDS:
        items = files[f"{kind}.json"]
        if items:
            client.upload(kind, items, ids)
    attempt.logs_id = ids_known.get("logs_id") or _upload_log(client, outbox, shipment,
                                                              shipment.log)
    client.finish_job(job_id, shipment.job.finished_at, shipment.job.status, attempt.logs_id)
    if searched:
        # an attempt killed while its job creation was still being served shows up only now
        try:
            jobs = client.find_jobs(shipment.qalita_job_name)
        except Rejected:
            jobs = []
        _fail_orphans(client, shipment, jobs, job_id)
    return job_id


def _publish_once(client: QalitaClient, outbox: Outbox, shipment: Shipment) -> int:
    """Publish the source, or find it published meanwhile: under a lock per source name, so two
    processes shipping two runs of one source never publish it twice."""
    name, type_ = shipment.source_name, shipment.source_type
    lock = "source-" + hashlib.sha256(f"{type_}\x1f{name}".encode()).hexdigest()[:40]
    with outbox.lock(lock, client.settings.deadline_s + LOCK_SLACK_S):
        found = client.find_source(name, type_, fresh=True)
        if found is not None:
            return found
        description = f"Results of {shipment.origin} runs, shipped by qalita-sidecar"
        return client.publish_source(name, type_, description)


def _upload_log(client: QalitaClient, outbox: Outbox, shipment: Shipment, text: str) -> int | None:
    """The logs asset's id (noted), or None: a log QALITA refuses never holds up the results."""
    try:
        logs_id = client.upload_logs(shipment.qalita_job_name, text)
    except Rejected as exc:
        log.info("QALITA refused the job's logs asset: %s", exc)
        return None
    if logs_id is not None:
        outbox.note(shipment.key, logs_id=logs_id)
    return logs_id


def _give_up(client: QalitaClient, outbox: Outbox, shipment: Shipment, attempt: _Attempt,
             reason: str) -> None:
    """Finish the job `failed`, the refusal in its logs asset, before the shipment goes to dead/.
    Best effort: QALITA may refuse this too, the shipment is kept in dead/ either way."""
    if attempt.job_id is None:
        return
    text = (f"{shipment.log.rstrip()}\n\nNot delivered: QALITA refused this shipment "
            f"({reason}). It waits in {outbox.dead_path(shipment.key)}.\n")
    try:
        logs_id = attempt.logs_id or _upload_log(client, outbox, shipment, text)
        client.finish_job(attempt.job_id, shipment.job.finished_at, "failed", logs_id,
                          step="finish-failed")
    except (QalitaError, OutboxError) as exc:
        log.info("job %s left unfinished: %s", attempt.job_id, exc)


def _deliver_one(entry: Entry, client: QalitaClient, outbox: Outbox,
                 ledger: Ledger) -> tuple[Outcome, str | None]:
    """One entry, under its key's lock: the outcome, and why the rest must wait (or None)."""
    shipment, key = entry.shipment, entry.shipment.key
    try:
        claim = ledger.claim(shipment)
    except ClaimHeld as exc:
        return Outcome(key, "queued", str(exc), entry.job_id), None
    except LedgerError as exc:
        return Outcome(key, "queued", f"{exc}; kept in {entry.path}", entry.job_id), str(exc)
    if claim.shipped:
        # Delivered and recorded (maybe by another process) but the entry was not dropped yet.
        _remove(outbox, key)
        return Outcome(key, "already_delivered", "already in the ledger", entry.job_id), None
    if not entry.path.exists():
        if outbox.refused(key):
            _release(ledger, key)
            return Outcome(key, "dead", f"QALITA refused it; see {outbox.dead_path(key)}"), None
        outbox.put_held(shipment)  # gone without a ledger row: spool it again, then ship
    ids_known = {**entry.ids, **outbox.noted(key)}
    attempt = _Attempt()
    client.begin(key)
    blocked: str | None = None
    try:
        job_id = _send(client, outbox, shipment, ids_known, claim.taken_over, attempt)
    except Rejected as exc:
        reason = exc.answer or str(exc)
        _give_up(client, outbox, shipment, attempt, reason)
        path = outbox.move_to_dead(key, reason)
        _release(ledger, key)
        return Outcome(key, "dead", f"{exc}; moved to {path}", attempt.job_id), None
    except (Unavailable, AuthFailed) as exc:  # once QALITA is down or refuses us, the rest waits
        outcome = Outcome(key, "queued", f"{exc}; kept in {entry.path}", _job_of(outbox, entry))
        blocked = str(exc)
    except SettingsError as exc:  # ids wrong or missing for this run only: others may have theirs
        outcome = Outcome(key, "queued", f"{exc}; kept in {entry.path}", _job_of(outbox, entry),
                          needs_fix=True)
    except (QalitaError, OutboxError) as exc:  # a 409, a full disk: kept for a later flush
        outcome = Outcome(key, "queued", f"{exc}; kept in {entry.path}", _job_of(outbox, entry))
    else:
        try:
            ledger.record(shipment, job_id)
        except LedgerError as exc:
            # Delivered, not recorded: the entry stays, and its replay finds the job again.
            return Outcome(key, "queued", f"delivered as job {job_id} but not recorded ({exc}); "
                           f"kept in {entry.path}, a flush records it", job_id), str(exc)
        problem = _remove(outbox, key)
        return Outcome(key, "delivered", f"job {job_id}{problem}", job_id), None
    _release(ledger, key)
    return outcome, blocked


def _remove(outbox: Outbox, key: str) -> str:
    """Drop a delivered entry; a failure only delays that (the ledger row drops it next time)."""
    try:
        outbox.remove(key)
    except OutboxError as exc:
        return f" ({exc}; the next run drops it)"
    return ""


def _release(ledger: Ledger, key: str) -> None:
    try:
        ledger.release(key)
    except LedgerError as exc:  # the claim goes stale and is taken over later
        log.info("claim of %s not released: %s", key[:12], exc)


def _deliver(entries: list[Entry], settings: Settings, outbox: Outbox, ledger: Ledger,
             progress: Progress | None, client: QalitaClient | None) -> list[Outcome]:
    client = client or QalitaClient(settings)
    outcomes: list[Outcome] = []
    blocked: str | None = None  # once QALITA is down or refuses us, the rest waits too

    def done(outcome: Outcome) -> None:
        outcomes.append(outcome)
        if progress:
            progress(outcome)

    wait_s = settings.deadline_s + LOCK_SLACK_S
    for entry in entries:
        key = entry.shipment.key
        if blocked:
            try:
                shipped = ledger.shipped(key)
            except LedgerError:
                shipped = False
            if shipped:
                _remove(outbox, key)
                done(Outcome(key, "already_delivered", "already in the ledger", entry.job_id))
            else:
                done(Outcome(key, "queued", f"not sent: {blocked}", entry.job_id))
            continue
        try:
            with outbox.lock(key, wait_s):
                outcome, blocked = _deliver_one(entry, client, outbox, ledger)
        except LockTimeout as exc:
            outcome = Outcome(key, "queued", str(exc), entry.job_id)
        except OutboxError as exc:
            outcome = Outcome(key, "queued", f"{exc}; kept in {entry.path}", entry.job_id)
        done(outcome)
    return outcomes


def _job_of(outbox: Outbox, entry: Entry) -> int | None:
    """The job id noted so far (the small ids file: the payload is not read again)."""
    try:
        return outbox.noted(entry.shipment.key).get("job_id", entry.job_id)
    except OutboxError:
        return entry.job_id


def ship(shipments: Iterable[Shipment], settings: Settings | None, outbox: Outbox, ledger: Ledger,
         progress: Progress | None = None, client: QalitaClient | None = None) -> list[Outcome]:
    """Spool every shipment not yet in the ledger, then (with settings) deliver them."""
    outcomes: list[Outcome] = []
    entries: list[Entry] = []
    wait_s = (settings.deadline_s if settings else 0.0) + LOCK_SLACK_S
    for shipment in shipments:
        if ledger.shipped(shipment.key):
            outcome = Outcome(shipment.key, "already_delivered", "already in the ledger")
        elif outbox.refused(shipment.key):
            outcome = Outcome(shipment.key, "dead", "QALITA refused it before; see "
                              f"{outbox.dead_path(shipment.key)} (move it to pending/ to retry)")
        else:
            try:
                entry = outbox.put_entry(shipment, wait_s)  # written once, not read back
            except LockTimeout as exc:
                outcome = Outcome(shipment.key, "queued", str(exc))
            else:
                if settings is not None:
                    entries.append(entry)
                    continue
                outcome = Outcome(shipment.key, "queued",
                                  f"no QALITA endpoint configured; spooled to {entry.path}")
        outcomes.append(outcome)
        if progress:
            progress(outcome)
    if settings is not None and entries:
        outcomes += _deliver(entries, settings, outbox, ledger, progress, client)
    return outcomes


def flush(settings: Settings | None, outbox: Outbox, ledger: Ledger,
          progress: Progress | None = None, client: QalitaClient | None = None) -> list[Outcome]:
    """Replay what waits in the outbox, oldest first; an entry that cannot be read is set aside
    in dead/ (named in its outcome) and the others are sent."""
    entries, aside = outbox.scan()
    outcomes = [Outcome(a.key, "dead", f"unreadable, moved to {a.path}: {a.reason}")
                for a in aside]
    if progress:
        for outcome in outcomes:
            progress(outcome)
    if settings is None:
        return outcomes + [Outcome(e.shipment.key, "queued", "no QALITA endpoint configured",
                                   e.job_id) for e in entries]
    return outcomes + _deliver(entries, settings, outbox, ledger, progress, client)


def exit_code(outcomes: Iterable[Outcome]) -> int:
    """0 delivered or nothing to do; 75 (EX_TEMPFAIL) something still queued; 1 something dead,
    or a setting to fix."""
    outcomes = list(outcomes)
    statuses = {o.status for o in outcomes}
    if "dead" in statuses or any(o.needs_fix for o in outcomes):
        return 1
    if "queued" in statuses:
        return EX_TEMPFAIL
    return 0
