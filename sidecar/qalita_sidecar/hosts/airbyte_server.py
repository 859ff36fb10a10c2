"""`qalita-sidecar serve airbyte`: Airbyte's webhook in, the outbox, QALITA out.

  POST /airbyte/webhook   an event is checked, mapped and spooled to the outbox (written and
                          fsynced) before the answer: 202 queued, 200 when that sync attempt was
                          delivered already (Airbyte replays), 400 for a body that is not JSON or a
                          connection the config does not map (and no default), 411/413 for a
                          missing or too large Content-Length.
  GET  /health            200 with what waits in the outbox.
A single sender thread delivers spooled events through deliver.ship (retries, idempotency key,
ledger), so a slow or dead QALITA never holds up Airbyte; what it cannot deliver waits in the
outbox and is retried every `retry_interval_s`, and after a restart. SIGTERM / SIGINT stop
accepting, finish the requests in flight and the delivery in progress, then exit.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from qalita_sidecar.readers.airbyte import AirbyteEventError, parse_event, sync_to_shipment
from qalita_sidecar.settings import Settings, SettingsError
from qalita_sidecar.shipping.deliver import Outcome, ship
from qalita_sidecar.shipping.ledger import Ledger, LedgerError
from qalita_sidecar.shipping.outbox import Outbox, OutboxError

WEBHOOK_PATH = "/airbyte/webhook"
HEALTH_PATHS = ("/health", "/healthz")
DEFAULT_MAX_BODY = 1024 * 1024  # an Airbyte event with a large catalog is well under this


def load_connection_map(path: Path) -> dict[str, Any]:
    """The config file: {"connection_map": {connection id: ids}, "default": ids}."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise SettingsError(f"--config {path}: cannot read ({exc.strerror})") from exc
    except ValueError as exc:
        raise SettingsError(f"--config {path}: not valid JSON ({exc})") from exc
    if not isinstance(data, dict) or not isinstance(data.get("connection_map") or {}, dict) \
            or not isinstance(data.get("default") or {}, dict):
        raise SettingsError(f"--config {path}: expected an object with 'connection_map' "
                            "(connection id -> ids) and/or 'default' (ids)")
    data["connection_map"] = {str(k): v for k, v in (data.get("connection_map") or {}).items()}
    return data


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any]


class AirbyteService:
    """What the HTTP layer calls: `accept(body)` per event, a sender thread for delivery."""

    def __init__(self, connections: Mapping[str, Any], settings: Settings | None, outbox: Outbox,
                 ledger: Ledger, config_name: str = "the config",
                 retry_interval_s: float = 30.0,
                 log: Callable[[str], None] | None = None) -> None:
        self.connections = connections
        self.settings = settings
        self.outbox = outbox
        self.ledger = ledger
        self.config_name = config_name
        self.retry_interval_s = retry_interval_s
        self.log = log or (lambda line: print(line, file=sys.stderr, flush=True))
        self.last_problem: str | None = None
        self._spool_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._sender: threading.Thread | None = None

    # -- events -----------------------------------------------------------------------------
    def accept(self, raw: bytes) -> Answer:
        try:
            body = json.loads(raw)
        except ValueError as exc:
            return self._bad(f"the body is not JSON ({exc})")
        try:
            sync = parse_event(body)
        except AirbyteEventError as exc:
            return self._bad(str(exc))
        table = self.connections.get("connection_map") or {}
        if sync.connection_id not in table and not self.connections.get("default"):
            return self._bad(f"connection {sync.connection_id} is not in {self.config_name}'s "
                             "connection_map and there is no default")
        shipment = sync_to_shipment(sync)
        try:
            delivered = self.ledger.shipped(shipment.key)
        except LedgerError as exc:  # spool anyway: the sender checks again before sending
            self.log(f"airbyte: {exc}")
            delivered = False
        if delivered:
            self.log(f"airbyte: {shipment.context['invocation_id']} was delivered before; "
                     "not shipped again")
            return Answer(200, {"status": "already_delivered", "key": shipment.key})
        with self._spool_lock:
            waiting = self.outbox.path(shipment.key).exists()
            try:
                path = self.outbox.put(shipment)
            except OutboxError as exc:  # full or unwritable: Airbyte keeps the event, we say so
                self.log(f"airbyte: {exc}")
                return Answer(503, {"error": str(exc)})
        self.log(f"airbyte: sync {shipment.context['invocation_id']} ({sync.status}) "
                 f"{'already waits in' if waiting else 'spooled to'} {path}")
        self._wake.set()
        return Answer(202, {"status": "queued", "key": shipment.key})

    def _bad(self, message: str) -> Answer:
        self.log(f"airbyte: 400 {message}")
        return Answer(400, {"error": message})

    # -- delivery ---------------------------------------------------------------------------
    def deliver_pending(self) -> list[Outcome]:
        """Ship every Airbyte entry waiting in the outbox (other origins are left alone)."""
        entries = [e for e in self.outbox.entries() if e.shipment.origin == "airbyte"]
        if self.settings is None or not entries:
            return []
        waiting = []
        for entry in entries:
            if self.ledger.shipped(entry.shipment.key):  # delivered, then stopped before removal
                self.outbox.remove(entry.shipment.key)
            else:
                waiting.append(entry.shipment)
        outcomes = ship(waiting, self.settings, self.outbox, self.ledger)
        for outcome in outcomes:
            self.log(f"airbyte: {outcome.status}: {outcome.detail}")
        problems = [o.detail for o in outcomes if o.status in ("queued", "dead")]
        self.last_problem = problems[-1] if problems else None
        return outcomes

    def _run_sender(self) -> None:
        while not self._stop.is_set():
            try:
                self.deliver_pending()
            except Exception as exc:  # keep serving; the entry stays in the outbox
                self.last_problem = f"{type(exc).__name__}: {exc}"
                self.log(f"airbyte: delivery failed, will retry: {self.last_problem}")
            self._wake.wait(self.retry_interval_s)
            self._wake.clear()

    def start_sender(self) -> None:
        self._sender = threading.Thread(target=self._run_sender, name="qalita-airbyte-sender",
                                         daemon=True)
        self._sender.start()

    def stop_sender(self, timeout: float | None = None) -> None:
        self._stop.set()
        self._wake.set()
        if self._sender is not None:
            self._sender.join(timeout)

    def health(self) -> dict[str, Any]:
        pending = [e for e in self.outbox.entries() if e.shipment.origin == "airbyte"]
        return {"status": "ok", "pending": len(pending), "dead": len(self.outbox.dead()),
                "qalita": self.settings.endpoint if self.settings else None,
                "last_problem": self.last_problem}


def _handler(service: AirbyteService, max_body: int) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "qalita-sidecar"

        def _answer(self, status: int, body: dict[str, Any], close: bool = False) -> None:
            data = json.dumps(body).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            if close:
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            self.wfile.write(data)

        def _guarded(self, serve: Callable[[], None]) -> None:
            try:
                serve()
            except Exception as exc:  # an unreadable outbox or ledger: say so, keep serving
                service.log(f"airbyte: 500 {type(exc).__name__}: {exc}")
                self._answer(500, {"error": f"{type(exc).__name__}: {exc}"}, close=True)

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            self._guarded(self._get)

        def do_POST(self) -> None:  # noqa: N802
            self._guarded(self._post)

        def _get(self) -> None:
            if self.path.split("?")[0] in HEALTH_PATHS:
                self._answer(200, service.health())
            else:
                self._answer(404, {"error": f"no such path {self.path}"})

        def _post(self) -> None:
            if self.path.split("?")[0] != WEBHOOK_PATH:
                self._answer(404, {"error": f"no such path {self.path}; POST {WEBHOOK_PATH}"})
                return
            length = self.headers.get("Content-Length")
            if length is None or not length.isdigit():
                self._answer(411, {"error": "Content-Length is required"}, close=True)
                return
            if int(length) > max_body:
                # Not read: the connection is closed instead.
                self._answer(413, {"error": f"body of {length} bytes is over the {max_body} "
                                            "bytes limit (--max-body-kb)"}, close=True)
                return
            answer = service.accept(self.rfile.read(int(length)))
            self._answer(answer.status, answer.body)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            service.log("airbyte: " + format % args)

    return Handler


def make_server(service: AirbyteService, host: str = "127.0.0.1", port: int = 8080,
                max_body: int = DEFAULT_MAX_BODY) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer((host, port), _handler(service, max_body))
    server.daemon_threads = False  # server_close() waits for the requests in flight
    return server


def serve(service: AirbyteService, server: ThreadingHTTPServer) -> None:
    """Serve until SIGTERM / SIGINT, then drain: requests in flight, the delivery in progress."""

    def stop(signum: int, _frame: Any) -> None:
        service.log(f"airbyte: {signal.Signals(signum).name} received, shutting down")
        # shutdown() waits for serve_forever to return, so never from serve_forever's thread.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    host, port = server.server_address[:2]
    service.log(f"airbyte: listening on http://{host}:{port}{WEBHOOK_PATH}")
    service.start_sender()
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        service.stop_sender()
        left = service.health()["pending"]
        service.log(f"airbyte: stopped; {left} event(s) wait in {service.outbox.root}"
                    if left else "airbyte: stopped; nothing waiting")
