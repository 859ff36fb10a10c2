"""`serve dbt-cloud`'s receiver: dbt Cloud's job webhook in, the run's steps read back, QALITA out.

Built on the shared webhook server (hosts/webhook.py: bounds, /health, one sender, graceful
stop). What is dbt Cloud's own:

  POST /dbt-cloud/webhook  the `Authorization` header must be the hex HMAC-SHA256 of the raw
                           body keyed with the webhook's secret (compared in constant time), else
                           401 and nothing is read. A `job.run.completed` event is spooled
                           (written and fsynced under .qalita/dbt-cloud-events/) before the
                           answer, 200 {"status": "queued"}; dbt Cloud gives a webhook 10 s.
                           A run already read is 200 {"status": "already_ingested"}: a replay
                           ships nothing. `job.run.started` and `job.run.errored` are 200
                           "ignored": errored fires before the artifacts are in, completed
                           follows once they are (for failed runs too).
The sender thread then reads each spooled run through the Administrative API (as `ingest
dbt-cloud` does), spools its steps' shipments to the outbox, marks the event done, and delivers.
dbt Cloud unreachable: the event stays spooled and is read again every `retry_interval_s`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from qalita_sidecar.hosts.webhook import Answer, Request, WebhookService
from qalita_sidecar.readers.dbt import cloud_run
from qalita_sidecar.readers.dbt.cloud import (
    COMPLETED,
    CloudEvent,
    DbtCloudClient,
    DbtCloudError,
    DbtCloudUnavailable,
    parse_event,
)
from qalita_sidecar.settings import Settings
from qalita_sidecar.shipment import Shipment
from qalita_sidecar.shipping.ledger import Ledger
from qalita_sidecar.shipping.outbox import Outbox

ROUTE = "/dbt-cloud/webhook"
SECRET_ENV = "DBT_CLOUD_WEBHOOK_SECRET"


def signature(body: bytes, secret: str) -> str:
    return hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


class DbtCloudReceiver:
    """The route and the signature check the shared server asks of a receiver."""

    name: str = cloud_run.ORIGIN
    route = ROUTE

    def __init__(self, secret: str, token: str) -> None:
        self._secret = secret
        self.secrets: Sequence[str] = (secret, token)

    def authenticate(self, request: Request) -> bool:
        given = request.headers.get("authorization", "").strip()
        expected = signature(request.body, self._secret)
        return hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode("ascii"))

    def shipments(self, request: Request, body: Any) -> list[Shipment]:
        # Never called: the run is read from dbt Cloud after the answer (DbtCloudService).
        return []


def _write_synced(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class EventSpool:
    """Runs to read: pending/<account>-<run>.json, then done/ once their shipments are spooled."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.pending_dir = self.root / "pending"
        self.done_dir = self.root / "done"
        for folder in (self.pending_dir, self.done_dir):
            folder.mkdir(parents=True, exist_ok=True)

    def is_done(self, event: CloudEvent) -> bool:
        return (self.done_dir / f"{event.name}.json").exists()

    def put(self, event: CloudEvent) -> bool:
        """Spool the event (fsynced); False when it was waiting already."""
        path = self.pending_dir / f"{event.name}.json"
        if path.exists():
            return False
        record = {**asdict(event), "received_at": time.strftime("%Y-%m-%d %H:%M:%S",
                                                                 time.gmtime())}
        _write_synced(path, json.dumps(record).encode("utf-8"))
        return True

    def pending(self) -> list[CloudEvent]:
        events = []
        for path in sorted(self.pending_dir.glob("*.json"), key=lambda p: p.stat().st_mtime):
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
                data.pop("received_at", None)
                events.append(CloudEvent(**data))
            except (OSError, ValueError, TypeError):
                continue  # torn by a crash before the rename: never acknowledged
        return events

    def done(self, event: CloudEvent, problems: list[str]) -> None:
        source = self.pending_dir / f"{event.name}.json"
        record = {**asdict(event), "problems": problems,
                  "read_at": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())}
        _write_synced(self.done_dir / f"{event.name}.json", json.dumps(record).encode("utf-8"))
        source.unlink(missing_ok=True)


class DbtCloudService(WebhookService):
    """The shared service, with dbt Cloud's event spool in front of the outbox."""

    def __init__(self, receiver: DbtCloudReceiver, client: DbtCloudClient,
                 settings: Settings | None, outbox: Outbox, ledger: Ledger, *,
                 project: str | None = None, environment: str | None = None,
                 source_name: str | None = None, retry_interval_s: float = 30.0,
                 log: Any = None) -> None:
        super().__init__(receiver, settings, outbox, ledger, retry_interval_s=retry_interval_s,
                         log=log)
        self.client = client
        self.account_id = client.settings.account_id
        self.events = EventSpool(outbox.root.parent / "dbt-cloud-events")
        self.project, self.environment, self.source_name = project, environment, source_name

    # -- the webhook: check, spool, answer --------------------------------------------------
    def accept(self, request: Request) -> Answer:
        if not self.receiver.authenticate(request):
            self.count("unauthorized")
            self.log(f"401 {request.method} {request.shown}: missing or wrong signature")
            return Answer(401, {"error": "missing or wrong signature (Authorization)"})
        try:
            event = parse_event(json.loads(request.body))
        except ValueError as exc:
            return self._bad(f"the body is not JSON ({exc})")
        except DbtCloudError as exc:
            return self._bad(str(exc))
        if event.account_id != self.account_id:
            return self._bad(f"the event is from account {event.account_id}; this receiver "
                             f"reads account {self.account_id} (--account-id)")
        if event.event_type != COMPLETED:
            self.count("ignored")
            self.log(f"run {event.run_id}: {event.event_type} ignored ({COMPLETED} follows "
                     "once the artifacts are in)")
            return Answer(200, {"status": "ignored", "event": event.event_type})
        if self.events.is_done(event):
            self.count("already_delivered")
            self.log(f"run {event.run_id} was read before; not shipped again")
            return Answer(200, {"status": "already_ingested", "run_id": event.run_id})
        try:
            fresh = self.events.put(event)
        except OSError as exc:  # dbt Cloud retries what we cannot keep
            self.count("failed")
            self.log(f"cannot spool run {event.run_id}: {exc}")
            return Answer(503, {"error": f"cannot spool the event ({exc.strerror})"})
        self.count("queued")
        self.log(f"run {event.run_id} {'spooled to' if fresh else 'already waits in'} "
                 f"{self.events.pending_dir}")
        self._wake.set()
        return Answer(200, {"status": "queued", "run_id": event.run_id})

    # -- the sender: read the runs, spool their shipments, deliver ----------------------------
    def read_pending(self) -> None:
        for event in self.events.pending():
            if self._stop.is_set():
                return
            self.client.begin()
            try:
                read = cloud_run.read_run(self.client, event.run_id, project=self.project,
                                          environment=self.environment,
                                          source_name=self.source_name,
                                          shipped=self.ledger.shipped)
            except DbtCloudUnavailable as exc:  # kept: read again at the next pass
                self.last_problem = self.redact(str(exc))
                self.log(f"run {event.run_id}: {exc}; will retry")
                return
            except DbtCloudError as exc:  # a run that cannot be read: said, not retried
                self.log(f"run {event.run_id}: error: {exc}")
                self.events.done(event, [str(exc)])
                continue
            for line in read.summary():
                self.log(line.strip())
            for problem in read.problems:
                self.log(f"error: {problem}")
            for shipment in read.shipments:
                spool_problem = self._spool(shipment)
                if spool_problem is not None:  # the outbox is full or unwritable: read again later
                    self.last_problem = spool_problem
                    return
            self.events.done(event, read.problems)

    def deliver_pending(self) -> Any:
        self.read_pending()
        return super().deliver_pending()

    def pending(self) -> int:
        return super().pending() + len(self.events.pending())

    def health(self) -> dict[str, Any]:
        health = super().health()
        with self._lock:
            ignored = self._counts.get("ignored", 0)
        health["requests"]["ignored"] = ignored
        runs = len(self.events.pending())
        health["runs_waiting"] = runs
        health["pending"] += runs  # a run not read yet waits as much as a shipment does
        health["dbt_cloud"] = self.client.settings.describe()
        return health
