"""A webhook receiver's plumbing, shared by every `serve <tool>` command.

What it does for a receiver: a threaded HTTP server on a listen backlog that fits bursts, a
deadline for reading each request (an idle or trickling connection is dropped, it never holds a
thread), body bounds (411 without Content-Length, 413 over the limit, unread), `GET /health`,
spooling every accepted shipment to the outbox (fsynced) before answering, one background
sender that delivers what waits and retries every `retry_interval_s`, a graceful stop on SIGTERM /
SIGINT within a few seconds, and a replay guard keyed on the body (see `body_digest`). Secrets
given by the receiver are removed from every log line, error and /health.

Plugging in a receiver: write a class with

    name      "dbt-cloud": the log prefix; also the shipments' origin, which the sender delivers
    route     "/dbt-cloud/webhook": POSTs to it, or below it (`/route/<anything>`), reach it
    secrets   the strings to redact (the shared secret, a signing key); () when there are none
    authenticate(request) -> bool   False is answered 401 and counted; nothing is read further
    shipments(request, body) -> list[Shipment]
              body is the parsed JSON; raise Rejected("what is wrong") for a 400

and serve it:

    service = WebhookService(receiver, settings, outbox, ledger, retry_interval_s=30)
    serve(service, make_server(service, host, port, max_body))

`SharedSecret` checks a secret carried in the URL (a path segment or `?token=`) in constant time,
for tools that cannot set headers; a tool that signs its body checks `request.body` instead.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import ipaddress
import json
import signal
import socket
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qs, unquote, urlsplit, urlunsplit

import msgspec

from qalita_sidecar.settings import Settings, SettingsError, read_secret
from qalita_sidecar.shipment import Shipment, idempotency_key
from qalita_sidecar.shipping.client import QalitaClient
from qalita_sidecar.shipping.deliver import Outcome, ship
from qalita_sidecar.shipping.ledger import Ledger, LedgerError
from qalita_sidecar.shipping.outbox import Outbox, OutboxError

HEALTH_PATHS = ("/health", "/healthz")
DEFAULT_MAX_BODY = 1024 * 1024
DEFAULT_READ_TIMEOUT_S = 10.0  # a whole request (line, headers, body) must arrive within this
DEFAULT_MAX_CONNECTIONS = 128  # served at once; more wait in the listen backlog
LISTEN_BACKLOG = 512  # the kernel caps it at net.core.somaxconn
STOP_GRACE_S = 3.0  # on SIGTERM: requests in progress and the delivery under way get this long
SEND_BATCH = 10  # shipments per ship() call; the stop flag is checked between batches
MIN_SECRET_LENGTH = 16
_SECRET_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
REDACTED = "***"


# -- what a receiver sees and says ---------------------------------------------------------------
@dataclass(frozen=True)
class Request:
    method: str
    path: str  # without the query string; may hold a secret: never log it, log `shown`
    query: dict[str, list[str]]
    headers: dict[str, str]  # names lower-cased
    body: bytes
    tail: str  # what follows the route (`/route/<tail>`), "" when nothing does
    shown: str  # the path as logs may show it


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any]


class Rejected(Exception):
    """The body cannot be used: answered 400 with this message, nothing spooled."""


class Receiver(Protocol):
    name: str
    route: str
    secrets: Sequence[str]

    def authenticate(self, request: Request) -> bool: ...

    def shipments(self, request: Request, body: Any) -> list[Shipment]: ...


# -- secrets -------------------------------------------------------------------------------------
class SecretError(ValueError):
    """The secret cannot be used; the message names the file or the variable, never the value."""


class SharedSecret:
    """A shared secret carried in the URL: `<route>/<secret>` or `<route>?token=<secret>`."""

    def __init__(self, value: str, origin: str) -> None:
        if len(value) < MIN_SECRET_LENGTH:
            raise SecretError(f"{origin}: the secret is shorter than {MIN_SECRET_LENGTH} "
                              "characters (make one with: openssl rand -hex 32)")
        if not set(value) <= _SECRET_CHARS:
            raise SecretError(f"{origin}: the secret goes in a URL, so only letters, digits and "
                              "- . _ ~ may be used (make one with: openssl rand -hex 32)")
        self._value = value.encode("ascii")
        self.value = value
        self.origin = origin

    @classmethod
    def load(cls, path: Path | None, env_var: str,
             env: dict[str, str] | None = None) -> SharedSecret | None:
        """From the file when given, else from the variable; None when neither is set."""
        try:
            found = read_secret(path, env_var, env)
        except SettingsError as exc:
            raise SecretError(str(exc)) from exc
        return cls(*found) if found else None

    def matches(self, candidate: str) -> bool:
        # Constant time over the bytes; a candidate that is not ASCII cannot match anyway.
        return hmac.compare_digest(candidate.encode("utf-8", "replace"), self._value)

    def carried_by(self, request: Request) -> bool:
        candidates = [unquote(request.tail.strip("/"))] if request.tail.strip("/") else []
        candidates += request.query.get("token", [])
        # Every candidate is compared, so the time does not tell which one was close.
        return any([self.matches(c) for c in candidates])


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def redact_url(url: str | None) -> str | None:
    """A URL as it may be shown: no user:password, no query values."""
    if not url:
        return url
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
        if "@" in netloc:
            netloc = f"{REDACTED}@{netloc.rsplit('@', 1)[1]}"
        query = "&".join(f"{k}={REDACTED}" for k in parse_qs(parts.query, keep_blank_values=True))
        return urlunsplit((parts.scheme, netloc, parts.path, query, ""))
    except ValueError:
        return REDACTED


def body_digest(raw: bytes, parsed: Any) -> str:
    """sha256 of the canonical JSON (sorted keys, no spaces), so a re-serialised replay matches.

    The replay guard keys each shipment on its ids AND this digest: a body that differs from the
    one delivered (a forgery, or a changed event) is a new shipment, never "already delivered".
    """
    try:  # stdlib json: its text is what the keys of delivered bodies were built from
        canonical = json.dumps(parsed, sort_keys=True, separators=(",", ":"),
                               ensure_ascii=False).encode("utf-8")
    except (TypeError, ValueError):
        canonical = raw
    return hashlib.sha256(canonical).hexdigest()


# -- the service: accept, spool, deliver ----------------------------------------------------------
class WebhookService:
    """What the HTTP layer calls: `accept(request)` per POST, a sender thread for delivery."""

    def __init__(self, receiver: Receiver, settings: Settings | None, outbox: Outbox,
                 ledger: Ledger, retry_interval_s: float = 30.0,
                 log: Callable[[str], None] | None = None) -> None:
        self.receiver = receiver
        self.settings = settings
        self.outbox = outbox
        self.ledger = ledger
        self.retry_interval_s = retry_interval_s
        self._raw_log = log or (lambda line: print(line, file=sys.stderr, flush=True))
        self.last_problem: str | None = None
        self._lock = threading.Lock()
        # Striped: two posts of the same event never write its entry at once.
        self._key_locks = [threading.Lock() for _ in range(64)]
        self._counts: Counter[str] = Counter()
        self._waiting: set[str] = set()  # keys of this origin in the outbox, as far as we know
        self._spooled_in_pass: set[str] = set()
        self._bodies: dict[str, str] = {}  # run -> digest first seen (for the conflict warning)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._sender: threading.Thread | None = None
        self._redactions = [s for s in receiver.secrets if s]
        if settings is not None:
            # QALITA's credentials too, should an error message ever quote them
            userinfo = urlsplit(settings.endpoint).netloc.rpartition("@")[0]
            self._redactions += [s for s in (userinfo, urlsplit(settings.endpoint).password,
                                             settings.token, settings.password) if s]
        # Longest first ("user:pass" before "pass"); a string of 1-3 characters would blank out
        # ordinary words, and no real secret is that short.
        self._redactions = sorted({s for s in self._redactions if len(s) >= 4}, key=len,
                                  reverse=True)

    # -- logging and redaction ----------------------------------------------------------------
    def redact(self, text: str) -> str:
        for secret in self._redactions:
            text = text.replace(secret, REDACTED)
        return text

    def log(self, line: str) -> None:
        self._raw_log(self.redact(f"{self.receiver.name}: {line}"))

    def count(self, what: str) -> None:
        with self._lock:
            self._counts[what] += 1

    # -- events -------------------------------------------------------------------------------
    def accept(self, request: Request) -> Answer:
        if not self.receiver.authenticate(request):
            self.count("unauthorized")
            self.log(f"401 {request.method} {request.shown}: missing or wrong secret")
            return Answer(401, {"error": "missing or wrong webhook secret"})
        try:
            body = json.loads(request.body)
        except ValueError as exc:
            return self._bad(f"the body is not JSON ({exc})")
        try:
            shipments = self.receiver.shipments(request, body)
        except Rejected as exc:
            return self._bad(str(exc))
        digest = body_digest(request.body, body)
        keyed = [self._keyed(s, digest) for s in shipments]
        if not keyed:
            return self._bad("the event carries nothing to ship")
        refused = [s for s in keyed if self.outbox.dead_path(s.key).exists()]
        if refused and len(refused) == len(keyed):
            # QALITA refused this very body before: sending it again would be refused again.
            self.count("refused_before")
            path = self.outbox.dead_path(refused[0].key)
            self.log(f"{refused[0].context.invocation_id} was refused by QALITA before; "
                     f"see {path}")
            return Answer(200, {"status": "refused_before", "key": refused[0].key,
                                "detail": f"QALITA refused it; see {path} (move it to "
                                          "pending/ to retry)"})
        queued = [s for s in keyed if s not in refused and not self._delivered(s)]
        for shipment in queued:
            problem = self._spool(shipment)
            if problem is not None:  # full or unwritable: the tool keeps the event, we say so
                self.count("failed")
                return Answer(503, {"error": problem})
        if not queued:  # delivered (or, for some of them, refused) before
            self.count("already_delivered")
            return Answer(200, {"status": "already_delivered",
                                "key": keyed[0].key, "keys": [s.key for s in keyed]})
        self.count("queued")
        self._wake.set()
        return Answer(202, {"status": "queued", "key": queued[0].key,
                            "keys": [s.key for s in queued]})

    def _keyed(self, shipment: Shipment, digest: str) -> Shipment:
        run = shipment.context.invocation_id or shipment.key
        with self._lock:
            first = self._bodies.setdefault(run, digest)
            if len(self._bodies) > 100_000:  # a bound on memory; the warning is best-effort
                self._bodies.clear()
        if first != digest:
            self.log(f"warning: run {run} arrived again with a different body; both are "
                     "shipped (check what else posts to this webhook)")
        context = msgspec.structs.replace(shipment.context, body_sha256=digest)
        return msgspec.structs.replace(shipment, key=idempotency_key(shipment.key, digest),
                                       context=context)

    def _delivered(self, shipment: Shipment) -> bool:
        try:
            delivered = self.ledger.shipped(shipment.key)
        except LedgerError as exc:  # spool anyway: the sender checks again before sending
            self.log(str(exc))
            return False
        if delivered:
            self.log(f"{shipment.context.invocation_id} was delivered before; "
                     "not shipped again")
        return delivered

    def _spool(self, shipment: Shipment) -> str | None:
        """Write the shipment to the outbox (fsynced); the problem when it cannot be written."""
        with self._key_locks[hash(shipment.key) % len(self._key_locks)]:
            for attempt in range(5):
                try:
                    waiting = self.outbox.path(shipment.key).exists()
                    path = self.outbox.put(shipment)
                    break
                except OutboxError as exc:
                    self.log(str(exc))
                    return str(exc)
                except FileNotFoundError:
                    # the sender removed a delivered entry while the outbox was measured
                    if attempt == 4:
                        raise
                    time.sleep(0.01)
        with self._lock:
            self._waiting.add(shipment.key)
            self._spooled_in_pass.add(shipment.key)
        self.log(f"{shipment.context.invocation_id} "
                 f"{'already waits in' if waiting else 'spooled to'} {path}")
        return None

    def _bad(self, message: str) -> Answer:
        self.count("rejected")
        self.log(f"400 {message}")
        return Answer(400, {"error": message})

    # -- delivery -----------------------------------------------------------------------------
    def deliver_pending(self) -> list[Outcome]:
        """Ship every entry of this receiver's origin waiting in the outbox (others stay)."""
        with self._lock:
            self._spooled_in_pass = set()
        entries = [e for e in self.outbox.entries() if e.shipment.origin == self.receiver.name]
        with self._lock:
            self._waiting = {e.shipment.key for e in entries} | self._spooled_in_pass
        if self.settings is None or not entries:
            return []
        waiting = []
        for entry in entries:
            if self.ledger.shipped(entry.shipment.key):  # delivered, then stopped before removal
                self.outbox.remove(entry.shipment.key)
                self._done(entry.shipment.key)
            else:
                waiting.append(entry.shipment)
        # In small batches, so a stop waits for a few shipments, not for the whole backlog.
        client = QalitaClient(self.settings)
        outcomes: list[Outcome] = []
        for start in range(0, len(waiting), SEND_BATCH):
            if self._stop.is_set():
                break
            batch = ship(waiting[start:start + SEND_BATCH], self.settings, self.outbox,
                         self.ledger, client=client)
            outcomes += batch
            for outcome in batch:
                self.log(f"{outcome.status}: {outcome.detail}")
                if outcome.status != "queued":
                    self._done(outcome.key)
            if batch and all(o.status == "queued" for o in batch):
                break  # QALITA is down or refuses us: the rest waits for the next try
        problems = [o.detail for o in outcomes if o.status in ("queued", "dead")]
        self.last_problem = self.redact(problems[-1]) if problems else None
        return outcomes

    def _done(self, key: str) -> None:
        with self._lock:
            self._waiting.discard(key)

    def _run_sender(self) -> None:
        while not self._stop.is_set():
            try:
                self.deliver_pending()
            except Exception as exc:  # keep serving; the entry stays in the outbox
                self.last_problem = self.redact(f"{type(exc).__name__}: {exc}")
                self.log(f"delivery failed, will retry: {self.last_problem}")
            self._wake.wait(self.retry_interval_s)
            self._wake.clear()

    def start_sender(self) -> None:
        self._sender = threading.Thread(target=self._run_sender, daemon=True,
                                        name=f"qalita-{self.receiver.name}-sender")
        self._sender.start()

    def stop_sender(self, timeout: float | None = None) -> bool:
        """Stop after the delivery under way; False if it still runs after `timeout`.

        What it was sending stays in the outbox with its job id noted, so the next start
        finishes it without a second job.
        """
        self._stop.set()
        self._wake.set()
        if self._sender is not None:
            self._sender.join(timeout)
            return not self._sender.is_alive()
        return True

    def pending(self) -> int:
        with self._lock:
            return len(self._waiting)

    def health(self) -> dict[str, Any]:
        """Only what is in memory, and one directory listing: cheap, and it cannot fail."""
        with self._lock:
            counts = dict(self._counts)
            pending = len(self._waiting)
        try:
            dead: int | None = len(self.outbox.dead())
        except OSError:
            dead = None
        return {"status": "ok", "pending": pending, "dead": dead,
                "unauthorized": counts.get("unauthorized", 0),
                "requests": {k: counts.get(k, 0) for k in
                             ("queued", "already_delivered", "refused_before", "rejected",
                              "unauthorized", "failed")},
                "qalita": redact_url(self.settings.endpoint) if self.settings else None,
                "last_problem": self.last_problem}


# -- HTTP ----------------------------------------------------------------------------------------
class _Connection:
    """One open connection: the time by which its current request must have arrived."""

    __slots__ = ("sock", "deadline", "busy")

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self.sock = sock
        self.deadline: float | None = deadline  # None while its request is being answered
        self.busy = False


class WebhookServer(ThreadingHTTPServer):
    """One thread per connection, at most `max_connections` at once, each read under a deadline.

    A reaper shuts down the socket of a connection whose request has not fully arrived within
    `read_timeout` (idle keep-alive, half-open, slowloris), which ends its thread; a request
    being answered is never cut.
    """

    daemon_threads = True  # stop() waits for the requests being answered, bounded
    request_queue_size = LISTEN_BACKLOG
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler],
                 read_timeout: float, max_connections: int) -> None:
        self.read_timeout = read_timeout
        self._slots = threading.BoundedSemaphore(max_connections)
        self._connections: dict[int, _Connection] = {}
        self._registry = threading.Lock()
        self._stopping = threading.Event()
        self._reaper: threading.Thread | None = None
        super().__init__(address, handler)

    # connections ------------------------------------------------------------------------------
    def process_request(self, request: Any, client_address: Any) -> None:
        # Over the limit, wait here: further clients queue in the backlog instead of threads.
        while not self._slots.acquire(timeout=0.2):
            if self._stopping.is_set():
                self.shutdown_request(request)
                return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        with self._registry:
            self._connections[id(request)] = _Connection(
                request, time.monotonic() + self.read_timeout)
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._registry:
                self._connections.pop(id(request), None)
            self._slots.release()

    def answering(self, sock: socket.socket, busy: bool) -> None:
        """A request fully read (busy) or answered (the deadline for the next one starts)."""
        with self._registry:
            conn = self._connections.get(id(sock))
            if conn is not None:
                conn.busy = busy
                conn.deadline = None if busy else time.monotonic() + self.read_timeout

    def _reap(self, everyone_idle: bool = False) -> None:
        now = time.monotonic()
        with self._registry:
            late = [c.sock for c in self._connections.values() if not c.busy and
                    (everyone_idle or (c.deadline is not None and c.deadline <= now))]
        for sock in late:
            with contextlib.suppress(OSError):  # closed meanwhile
                sock.shutdown(socket.SHUT_RDWR)

    def _run_reaper(self) -> None:
        while not self._stopping.wait(min(0.5, self.read_timeout / 4)):
            self._reap()

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that resets or vanishes mid-request: one line, not socketserver's traceback.
        exc = sys.exc_info()[1]
        self.log_line(f"connection from {client_address[0]} dropped "
                      f"({type(exc).__name__ if exc else 'unknown'})")

    log_line: Callable[[str], None] = staticmethod(lambda line: None)  # set by make_server

    def busy_count(self) -> int:
        with self._registry:
            return sum(1 for c in self._connections.values() if c.busy)

    def open_count(self) -> int:
        with self._registry:
            return len(self._connections)

    # life -------------------------------------------------------------------------------------
    def serve_forever(self, poll_interval: float = 0.2) -> None:
        self._reaper = threading.Thread(target=self._run_reaper, daemon=True,
                                        name="qalita-webhook-reaper")
        self._reaper.start()
        super().serve_forever(poll_interval)

    def stop(self, grace_s: float = STOP_GRACE_S) -> None:
        """Stop accepting, drop idle connections, let requests being answered finish (bounded)."""
        self._stopping.set()
        self.shutdown()  # from another thread than serve_forever's
        deadline = time.monotonic() + grace_s
        while True:
            self._reap(everyone_idle=True)
            if self.busy_count() == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        self.server_close()


class _WebhookServer6(WebhookServer):
    address_family = socket.AF_INET6  # --host ::1 and other IPv6 literals


def _handler(service: WebhookService, max_body: int) -> type[BaseHTTPRequestHandler]:
    route = service.receiver.route.rstrip("/")

    class Handler(BaseHTTPRequestHandler):
        server_version = "qalita-sidecar"
        protocol_version = "HTTP/1.1"
        server: WebhookServer

        def setup(self) -> None:
            # A backstop per read; the reaper bounds the whole request.
            self.timeout = self.server.read_timeout  # type: ignore[misc]
            super().setup()

        def _shown(self) -> str:
            path = urlsplit(self.path).path
            if path == route or path.startswith(route + "/"):
                return route + ("/" + REDACTED if path[len(route):].strip("/") else "")
            if path in HEALTH_PATHS:
                return path
            return "/" + path.strip("/").split("/")[0] + ("/..." if path.count("/") > 1 else "")

        def _answer(self, status: int, body: dict[str, Any], close: bool = False) -> None:
            data = json.dumps(body).encode("utf-8")
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                if close:
                    self.send_header("Connection", "close")
                    self.close_connection = True
                self.end_headers()
                self.wfile.write(data)
                self.wfile.flush()
            except OSError:  # the client went away; what was accepted is spooled already
                self.close_connection = True
            finally:
                self.server.answering(self.connection, busy=False)

        def _guarded(self, serve: Callable[[], None]) -> None:
            try:
                serve()
            except Exception as exc:  # an unreadable outbox or ledger: say so, keep serving
                service.count("failed")
                problem = service.redact(f"{type(exc).__name__}: {exc}")
                service.log(f"500 {problem}")
                self._answer(500, {"error": problem}, close=True)

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            self.server.answering(self.connection, busy=True)
            self._guarded(self._get)

        def do_POST(self) -> None:  # noqa: N802
            self._guarded(self._post)

        def _get(self) -> None:
            if urlsplit(self.path).path in HEALTH_PATHS:
                self._answer(200, service.health())
            else:
                self._answer(404, {"error": f"no such path; POST {route}/<secret>, "
                                            f"GET {HEALTH_PATHS[0]}"})

        def _post(self) -> None:
            parts = urlsplit(self.path)
            path = parts.path
            if not (path == route or path.startswith(route + "/")):
                self.server.answering(self.connection, busy=True)
                self._answer(404, {"error": f"no such path; POST {route}/<secret>"},
                             close=True)
                return
            length = self.headers.get("Content-Length")
            if length is None or not length.strip().isdigit():
                self.server.answering(self.connection, busy=True)
                self._answer(411, {"error": "Content-Length is required"}, close=True)
                service.count("rejected")
                return
            if int(length) > max_body:
                # Not read: the connection is closed instead.
                self.server.answering(self.connection, busy=True)
                self._answer(413, {"error": f"body of {int(length)} bytes is over the "
                                            f"{max_body} bytes limit (--max-body-kb)"},
                             close=True)
                service.count("rejected")
                return
            try:
                raw = self.rfile.read(int(length))
            except OSError:  # too slow (the reaper or the socket timeout) or gone: not accepted
                self.close_connection = True
                return
            if len(raw) < int(length):  # the client closed early: nobody to answer
                self.close_connection = True
                return
            self.server.answering(self.connection, busy=True)
            request = Request("POST", path, parse_qs(parts.query),
                              {k.lower(): v for k, v in self.headers.items()}, raw,
                              path[len(route):], self._shown())
            answer = service.accept(request)
            self._answer(answer.status, answer.body)

        def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
            service.log(f"{self.command} {self._shown()} {code}")

        def log_error(self, format: str, *args: Any) -> None:  # noqa: A002
            # The message may quote the raw request line, and with it a secret in the path.
            service.log("bad request: " + (format % args).split("(")[0].strip())

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            service.log(format % args)

    return Handler


def make_server(service: WebhookService, host: str = "127.0.0.1", port: int = 8080,
                max_body: int = DEFAULT_MAX_BODY,
                read_timeout: float = DEFAULT_READ_TIMEOUT_S,
                max_connections: int = DEFAULT_MAX_CONNECTIONS) -> WebhookServer:
    cls = _WebhookServer6 if ":" in host else WebhookServer
    server = cls((host, port), _handler(service, max_body), read_timeout, max_connections)
    server.log_line = service.log  # type: ignore[method-assign]
    return server


def serve(service: WebhookService, server: WebhookServer, grace_s: float = STOP_GRACE_S,
          announce: Iterable[str] = ()) -> None:
    """Serve until SIGTERM / SIGINT, then stop within about 2 x grace_s."""

    def stop(signum: int, _frame: Any) -> None:
        service.log(f"{signal.Signals(signum).name} received, shutting down")
        # stop() waits for serve_forever to return, so never from serve_forever's thread.
        threading.Thread(target=server.stop, args=(grace_s,), daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for line in announce:
        service.log(line)
    host, port = server.server_address[:2]
    # The last line before serving: whoever waits for it may post at once.
    service.log(f"listening on http://{host!s}:{port}{service.receiver.route}")
    try:
        service.start_sender()
        server.serve_forever(poll_interval=0.2)
    finally:
        # serve_forever returns once stop() has shut the loop; give stop() its grace to drain.
        deadline = time.monotonic() + grace_s + 1
        while server.busy_count() and time.monotonic() < deadline:
            time.sleep(0.05)
        finished = service.stop_sender(timeout=grace_s)
        if not finished:
            service.log("the delivery under way is left to the next start (its job id is "
                        "noted in the outbox)")
        left = service.pending()
        service.log(f"stopped; {left} event(s) wait in {service.outbox.root}"
                    if left else "stopped; nothing waiting")


__all__ = ["Answer", "DEFAULT_MAX_BODY", "DEFAULT_READ_TIMEOUT_S", "Receiver", "Rejected",
           "Request", "SecretError", "SettingsError", "SharedSecret", "WebhookServer",
           "WebhookService", "body_digest", "is_loopback", "make_server", "redact_url", "serve"]
