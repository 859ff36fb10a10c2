"""The only code that talks HTTP to QALITA: auth, retries, the Idempotency-Key header.

Retry policy (after the OTLP exporter spec): only connection errors, timeouts, 429, 502, 503 and
504 are retried, with jittered exponential backoff; a Retry-After (seconds or HTTP-date) is
honoured; everything runs under one deadline per shipment. A small loop of our own rather than
urllib3's Retry: urllib3 caps nothing by an overall deadline and would retry a POST only when told
to, while we need both, plus a fake clock in tests.
"""

from __future__ import annotations

import email.utils
import json
import logging
import random
import time
from collections.abc import Callable
from typing import Any

import requests

from qalita_sidecar.settings import Ids, Settings

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({429, 502, 503, 504})
BACKOFF_BASE_S = 0.5
BACKOFF_CAP_S = 30.0
ANSWER_CHARS = 2000


class QalitaError(Exception):
    """A failed exchange with QALITA; `answer` is the server's reply (status and body), if any."""

    def __init__(self, message: str, status: int | None = None, answer: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.answer = answer


class Unavailable(QalitaError):
    """QALITA could not be reached or kept failing until the deadline: try again later."""


class AuthFailed(QalitaError):
    """The token or the credentials were refused (401/403): fix the settings, nothing is lost."""


class Rejected(QalitaError):
    """A definitive 4xx (not 408, 409, 429): the shipment goes to dead/ with the answer."""


class _Bearer(requests.auth.AuthBase):
    # An AuthBase (not a plain header) so requests never swaps in ~/.netrc credentials.
    def __init__(self, token: str) -> None:
        self._token = token

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        r.headers["Authorization"] = f"Bearer {self._token}"
        return r

    def __repr__(self) -> str:
        return "<Bearer ***>"


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date); None if unusable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - now)


def backoff_s(attempt: int, rand: Callable[[], float]) -> float:
    """Equal jitter: half of the exponential step fixed, half random (attempt counts from 0)."""
    step = min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2**attempt)
    return step / 2 + rand() * step / 2


class QalitaClient:
    def __init__(
        self,
        settings: Settings,
        session: requests.Session | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        wall: Callable[[], float] = time.time,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.settings = settings
        self.session = session or requests.Session()
        self._clock, self._sleep, self._wall, self._rand = clock, sleep, wall, rand
        self._token = settings.token
        self._key: str | None = None
        self._deadline_at: float | None = None
        self._sources: list[dict[str, Any]] | None = None

    def __repr__(self) -> str:
        return f"<QalitaClient {self.settings.endpoint}>"

    def begin(self, key: str | None) -> None:
        """Start a shipment: its Idempotency-Key on every request, and a fresh deadline."""
        self._key = key
        self._deadline_at = self._clock() + self.settings.deadline_s

    # -- endpoints ---------------------------------------------------------------------------
    def version(self) -> str:
        return str(self._call("GET", "/api/v1/version").json().get("version"))

    def find_source(self, name: str, type: str) -> int | None:
        if self._sources is None:
            r = self._call("GET", "/api/v2/sources")
            self._sources = [] if r.status_code == 204 else list(_json(r, "GET /api/v2/sources"))
        for source in self._sources:
            if source.get("name") == name and source.get("type") == type:
                return int(source["id"])
        return None

    def publish_source(self, name: str, type: str, description: str = "") -> int:
        body = {"name": name, "type": type, "description": description, "reference": False,
                "sensitive": False, "visibility": "private"}
        r = self._call("POST", "/api/v1/sources/publish", json=body)
        source = _json(r, "POST /api/v1/sources/publish")
        if self._sources is not None:
            self._sources.append(source)
        return int(source["id"])

    def create_job(self, name: str, ids: Ids, start_date: str) -> int:
        body = {"name": name, "source_id": ids.source_id, "pack_id": ids.pack_id,
                "pack_version_id": ids.pack_version_id, "start_date": start_date,
                "status": "running"}
        r = self._call("POST", "/api/v2/jobs/create", json=body)
        return int(_json(r, "POST /api/v2/jobs/create")["id"])

    def finish_job(self, job_id: int, end_date: str, status: str) -> None:
        self._call("PUT", f"/api/v2/jobs/{job_id}",
                   json={"end_date": end_date, "status": status, "logs_id": None})

    def upload(self, kind: str, items: list[dict[str, Any]], ids: Ids) -> bool:
        """Upload one file; True if stored now, False if QALITA already had it (409)."""
        query: dict[str, Any] = {"source_id": ids.source_id, "pack_id": ids.pack_id,
                                 "pack_version_id": ids.pack_version_id}
        if ids.source_version_id is not None:
            query["source_version_id"] = ids.source_version_id
        payload = json.dumps(items, ensure_ascii=False).encode("utf-8")
        # Ids both as query parameters and form fields: QALITA's clients have sent both.
        r = self._call("POST", f"/api/v1/{kind}/upload", params=query,
                       data={k: str(v) for k, v in query.items()},
                       files={"file": (f"{kind}.json", payload, "application/json")},
                       conflict_ok=True)
        return r.status_code != 409

    # -- transport ---------------------------------------------------------------------------
    def _sign_in(self) -> str:
        s = self.settings
        r = self._send("POST", "/api/v1/auth/signin", auth=False,
                       data={"username": s.username, "password": s.password})
        token = _json(r, "POST /api/v1/auth/signin").get("access_token")
        if not token:
            raise AuthFailed("QALITA sign-in answered without an access_token "
                             "(QALITA_USERNAME/QALITA_PASSWORD)", r.status_code)
        return str(token)

    def _call(self, method: str, path: str, conflict_ok: bool = False,
              **kwargs: Any) -> requests.Response:
        if self._token is None:
            self._token = self._sign_in()
        return self._send(method, path, conflict_ok=conflict_ok, **kwargs)

    def _send(self, method: str, path: str, auth: bool = True, conflict_ok: bool = False,
              **kwargs: Any) -> requests.Response:
        s = self.settings
        url = s.endpoint + path
        what = f"{method} {path}"
        deadline = self._deadline_at if self._deadline_at is not None \
            else self._clock() + s.deadline_s
        headers = {"Accept": "application/json"}
        if self._key:
            headers["Idempotency-Key"] = self._key
        attempt = 0
        while True:
            remaining = deadline - self._clock()
            if remaining <= 0:
                raise Unavailable(f"{what}: no answer from QALITA at {s.endpoint} within the "
                                  f"{s.deadline_s:g}s deadline (QALITA_DEADLINE)")
            wait: float | None
            try:
                r = self.session.request(
                    method, url, headers=headers, timeout=min(s.request_timeout_s, remaining),
                    verify=s.ca_bundle or s.verify, auth=_Bearer(self._token or "") if auth
                    else None, **kwargs)
            except requests.exceptions.SSLError as exc:
                # A certificate problem does not heal by retrying.
                raise Unavailable(f"{what}: TLS verification of {s.endpoint} failed; give the "
                                  "CA with QALITA_CA_BUNDLE (or REQUESTS_CA_BUNDLE)") from exc
            except (requests.ConnectionError, requests.Timeout) as exc:
                problem = _describe(exc)
                wait = None
                status = None
            else:
                status = r.status_code
                log.debug("%s -> %s (attempt %d)", what, status, attempt + 1)
                if r.ok or (conflict_ok and status == 409):
                    return r
                answer = self._scrub(f"{status} {r.text[:ANSWER_CHARS]}".strip())
                if status in (401, 403):
                    credential = "QALITA_USERNAME/QALITA_PASSWORD" if not auth or not s.token \
                        else "QALITA_WORKER_TOKEN (or QALITA_AGENT_TOKEN, QALITA_TOKEN_FILE)"
                    raise AuthFailed(f"{what}: QALITA refused the credentials ({status}); "
                                     f"check {credential}", status, answer)
                if status not in RETRY_STATUSES:
                    error = Rejected if 400 <= status < 500 and status != 408 else Unavailable
                    raise error(f"{what}: QALITA answered {_one_line(answer)}", status, answer)
                problem = f"QALITA answered {status}"
                wait = parse_retry_after(r.headers.get("Retry-After"), self._wall())
            # A Retry-After of 0 (or a past date) must not turn into a hot loop.
            delay = wait if wait else backoff_s(attempt, self._rand)
            remaining = deadline - self._clock()
            if delay >= remaining:
                raise Unavailable(f"{what}: {problem}; giving up, the next try ({delay:.1f}s) "
                                  f"would pass the {s.deadline_s:g}s deadline (QALITA_DEADLINE)",
                                  status)
            log.info("%s: %s; retrying in %.1fs", what, problem, delay)
            self._sleep(delay)
            attempt += 1

    def _scrub(self, text: str) -> str:
        # A server that echoes the request must not make us print the token.
        for secret in (self._token, self.settings.token, self.settings.password):
            if secret:
                text = text.replace(secret, "***")
        return text


def _json(r: requests.Response, what: str) -> Any:
    try:
        return r.json()
    except ValueError as exc:
        raise Unavailable(f"{what}: QALITA answered {r.status_code} with a body that is not "
                          f"JSON: {_one_line(r.text[:200])}", r.status_code) from exc


def _one_line(text: str) -> str:
    return " ".join(text.split())[:300]


def _describe(exc: Exception) -> str:
    """A short reason for a transport error (requests' own messages run to several lines)."""
    if isinstance(exc, requests.Timeout):
        return "timed out"
    text = str(exc)
    for marker in ("Connection refused", "Name or service not known", "No route to host",
                   "Connection reset", "CERTIFICATE_VERIFY_FAILED", "Remote end closed"):
        if marker in text:
            return marker.lower().replace("_", " ")
    return f"connection error ({type(exc).__name__})"
