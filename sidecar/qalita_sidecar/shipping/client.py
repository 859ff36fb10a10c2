"""The only code that talks HTTP to QALITA: auth, retries, the Idempotency-Key header.

Every write carries its own Idempotency-Key, `<shipment key>:<step>` (`:job`, `:metrics`,
`:logs`, `:finish`...): a gateway that honours the header answers a replay of that request, never
another request of the same shipment. Reads (GET) carry none.

Retry policy (after the OTLP exporter spec): only connection errors, timeouts, 429, 502, 503 and
504 are retried, with jittered exponential backoff; a Retry-After (seconds or HTTP-date) is
honoured; everything runs under one deadline per shipment. A small loop of our own rather than
urllib3's Retry: urllib3 caps nothing by an overall deadline and would retry a POST only when told
to, while we need both, plus a fake clock in tests.
"""

from __future__ import annotations

import email.utils
import logging
import random
import time
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urljoin, urlsplit

import msgspec
import requests

from qalita_sidecar.settings import Ids, Settings, SettingsError

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({429, 502, 503, 504})
BACKOFF_BASE_S = 0.5
BACKOFF_CAP_S = 30.0
ANSWER_CHARS = 2000
SIGNIN_REDIRECTS = 3  # same-origin 307/308 only: the form holds QALITA_PASSWORD
LOGS_ASSET = {"version": "1.0.0", "bucket": "logs", "type": "log", "description": "job logs"}
LOGS_VERSIONS = 10  # of one job's logs asset, tried in turn on 409


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


class Conflict(QalitaError):
    """A 409 on a request other than an upload: QALITA's state disagrees for now; kept pending."""


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
        self._registry: tuple[int | None] | None = None  # (id,) once asked; (None,): no registry
        self._packs: dict[tuple[int, int], str | None] = {}  # (pack, version) -> problem
        self.attempts = 0  # of the last request: more than 1 means it may have been served twice

    def __repr__(self) -> str:
        return f"<QalitaClient {self.settings.endpoint}>"

    def begin(self, key: str | None) -> None:
        """Start a shipment: the base of its requests' Idempotency-Keys, and a fresh deadline."""
        self._key = key
        self._deadline_at = self._clock() + self.settings.deadline_s

    def _idem(self, step: str) -> str | None:
        return f"{self._key}:{step}" if self._key else None

    # -- endpoints ---------------------------------------------------------------------------
    def version(self) -> str:
        return str(self._call("GET", "/api/v1/version").json().get("version"))

    def find_source(self, name: str, type: str, fresh: bool = False) -> int | None:
        if self._sources is None or fresh:
            r = self._call("GET", "/api/v2/sources")
            self._sources = [] if r.status_code == 204 else list(_json(r, "GET /api/v2/sources"))
        for source in self._sources:
            if source.get("name") == name and source.get("type") == type:
                return int(source["id"])
        return None

    def publish_source(self, name: str, type: str, description: str = "") -> int:
        body = {"name": name, "type": type, "description": description, "reference": False,
                "sensitive": False, "visibility": "private"}
        r = self._call("POST", "/api/v1/sources/publish", json=body, step="source")
        source = _json(r, "POST /api/v1/sources/publish")
        if self._sources is not None:
            self._sources.append(source)
        return int(source["id"])

    def check_pack(self, ids: Ids) -> None:
        """Raise SettingsError (naming the setting) unless the pack has that version; asked once
        per (pack, version) per client, as QALITA's own client reads a pack before running it."""
        pair = (ids.pack_id, ids.pack_version_id)
        if pair not in self._packs:
            r = self._call("GET", f"/api/v2/packs/{ids.pack_id}", missing_ok=True)
            if r.status_code in (204, 404):
                problem = (f"{ids.pack_from}: QALITA has no pack {ids.pack_id} "
                           f"(or it is not shared with this token)")
            else:
                pack = _json(r, f"GET /api/v2/packs/{ids.pack_id}")
                if not isinstance(pack, dict):
                    raise Unavailable(f"GET /api/v2/packs/{ids.pack_id}: QALITA answered "
                                      "something other than a pack", r.status_code)
                versions = [v for v in (pack.get("versions") or []) if isinstance(v, dict)]
                known = {_int_or_none(v.get("id")) for v in versions}
                problem = None
                if ids.pack_version_id not in known:
                    listed = ", ".join(f"{v.get('id')} ({v.get('sem_ver_id')})"
                                       for v in versions[:10]) or "none"
                    problem = (f"{ids.pack_version_from}: {ids.pack_version_id} is not a version "
                               f"of pack {ids.pack_id} on QALITA (its versions: {listed})")
            self._packs[pair] = problem
        if self._packs[pair]:
            raise SettingsError(str(self._packs[pair]))

    def create_job(self, name: str, ids: Ids, start_date: str) -> int:
        body = {"name": name, "source_id": ids.source_id, "pack_id": ids.pack_id,
                "pack_version_id": ids.pack_version_id, "start_date": start_date,
                "status": "running"}
        r = self._call("POST", "/api/v2/jobs/create", json=body, step="job")
        return int(_json(r, "POST /api/v2/jobs/create")["id"])

    def find_jobs(self, name: str) -> list[dict[str, Any]]:
        """QALITA's jobs of that exact name, oldest first (`GET /api/v2/jobs`; 204: none)."""
        r = self._call("GET", "/api/v2/jobs")
        jobs = [] if r.status_code == 204 else _json(r, "GET /api/v2/jobs")
        if not isinstance(jobs, list):
            raise Unavailable("GET /api/v2/jobs: QALITA answered something other than a list",
                              r.status_code)
        found = [j for j in jobs if isinstance(j, dict) and j.get("name") == name
                 and _int_or_none(j.get("id")) is not None]
        return sorted(found, key=lambda j: int(j["id"]))

    def finish_job(self, job_id: int, end_date: str, status: str,
                   logs_id: int | None = None, step: str = "finish") -> None:
        self._call("PUT", f"/api/v2/jobs/{job_id}", step=step,
                   json={"end_date": end_date, "status": status, "logs_id": logs_id})

    def registry_id(self) -> int | None:
        """The first registry's id (where QALITA keeps job logs); None when it has none."""
        if self._registry is None:
            r = self._call("GET", "/api/v2/registries")
            registries = [] if r.status_code == 204 else _json(r, "GET /api/v2/registries")
            first = registries[0] if isinstance(registries, list) and registries else {}
            self._registry = (_int_or_none(first.get("id")) if isinstance(first, dict)
                              else None,)
            if self._registry[0] is None:
                log.info("QALITA has no registry: jobs are finished without a logs asset")
        return self._registry[0]

    def upload_logs(self, name: str, text: str) -> int | None:
        """Upload a job's log as an asset (as QALITA's client does); its id, None when QALITA has
        no registry. A 409 means an attempt that died before noting the id stored this version:
        the log goes up again as the next version (its id is what the job needs)."""
        registry = self.registry_id()
        if registry is None:
            return None
        for n in range(LOGS_VERSIONS):
            query = {"registry_id": registry, "name": name, **LOGS_ASSET, "version": f"1.0.{n}"}
            r = self._call("POST", "/api/v1/assets/upload", params=query,
                           step="logs" if n == 0 else f"logs-{n}",
                           files={"file": ("logs.txt", text.encode("utf-8"), "text/plain")},
                           conflict_ok=True)
            if r.status_code != 409:
                asset = _json(r, "POST /api/v1/assets/upload")
                return _int_or_none(asset.get("id")) if isinstance(asset, dict) else None
        log.info("QALITA holds %d versions of the logs of %s already", LOGS_VERSIONS, name)
        return None

    def upload(self, kind: str, items: Sequence[Any], ids: Ids) -> bool:
        """Upload one file; True if stored now, False if QALITA already had it (409)."""
        query: dict[str, Any] = {"source_id": ids.source_id, "pack_id": ids.pack_id,
                                 "pack_version_id": ids.pack_version_id}
        if ids.source_version_id is not None:
            query["source_version_id"] = ids.source_version_id
        payload = msgspec.json.encode(items)  # a shipment's items (Structs) or plain objects
        # Ids both as query parameters and form fields: QALITA's clients have sent both.
        r = self._call("POST", f"/api/v1/{kind}/upload", params=query,
                       data={k: str(v) for k, v in query.items()},
                       files={"file": (f"{kind}.json", payload, "application/json")},
                       conflict_ok=True, step=kind)
        return r.status_code != 409

    # -- transport ---------------------------------------------------------------------------
    def _sign_in(self) -> str:
        s = self.settings
        url = s.endpoint + "/api/v1/auth/signin"
        for _ in range(SIGNIN_REDIRECTS + 1):
            # Redirects are never followed blindly: the form holds the password.
            r = self._send("POST", "/api/v1/auth/signin", auth=False, url=url,
                           allow_redirects=False,
                           data={"username": s.username, "password": s.password})
            if not r.is_redirect:
                break
            target = urljoin(url, r.headers.get("Location", ""))
            if r.status_code not in (307, 308) or _origin(target) != _origin(s.endpoint):
                raise AuthFailed(
                    f"POST /api/v1/auth/signin: QALITA answered {r.status_code} redirecting to "
                    f"{_origin(target)}; not followed, the sign-in (QALITA_PASSWORD) is only "
                    f"sent to {_origin(s.endpoint)}: set the endpoint to the address QALITA "
                    "answers on", r.status_code)
            url = target
        else:
            raise AuthFailed("POST /api/v1/auth/signin: too many redirects; set the endpoint "
                             "to the address QALITA answers on", r.status_code)
        token = _json(r, "POST /api/v1/auth/signin").get("access_token")
        if not token:
            raise AuthFailed("QALITA sign-in answered without an access_token "
                             "(QALITA_USERNAME/QALITA_PASSWORD)", r.status_code)
        return str(token)

    def _call(self, method: str, path: str, conflict_ok: bool = False, step: str | None = None,
              **kwargs: Any) -> requests.Response:
        if self._token is None:
            self._token = self._sign_in()
        key = self._idem(step) if step else None
        return self._send(method, path, conflict_ok=conflict_ok, key=key, **kwargs)

    def _send(self, method: str, path: str, auth: bool = True, conflict_ok: bool = False,
              key: str | None = None, url: str | None = None, missing_ok: bool = False,
              **kwargs: Any) -> requests.Response:
        s = self.settings
        url = url or s.endpoint + path
        what = f"{method} {path}"
        deadline = self._deadline_at if self._deadline_at is not None \
            else self._clock() + s.deadline_s
        headers = {"Accept": "application/json"}
        if key:
            headers["Idempotency-Key"] = key
        attempt = 0
        while True:
            self.attempts = attempt + 1
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
                if r.ok or (conflict_ok and status == 409) or (missing_ok and status == 404):
                    return r
                answer = self._scrub(f"{status} {r.text[:ANSWER_CHARS]}".strip())
                if status in (401, 403):
                    credential = "QALITA_USERNAME/QALITA_PASSWORD" if not auth or not s.token \
                        else "QALITA_WORKER_TOKEN (or QALITA_AGENT_TOKEN, QALITA_TOKEN_FILE)"
                    raise AuthFailed(f"{what}: QALITA refused the credentials ({status}); "
                                     f"check {credential}", status, answer)
                if status == 409:
                    raise Conflict(f"{what}: QALITA answered {_one_line(answer)}; kept, "
                                   "a later flush tries again", status, answer)
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


def _int_or_none(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _origin(url: str) -> str:
    parts = urlsplit(url)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    return f"{parts.scheme}://{parts.hostname}:{port}"


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
