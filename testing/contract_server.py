"""A local QALITA server that enforces the REST contract (docs/shipping.md, "Testing against a local QALITA").

It lives with the tests, never in the product. It listens on 127.0.0.1 on a real port, so a
subprocess (`qalita-sidecar ingest dbt`, `make ingest`) can ship to it as well as in-process code.

What it enforces: a bearer token on every call but sign-in; the documented paths and methods
(`POST /api/v2/jobs` is 405, as on current servers); known source / pack / pack-version ids (else
404); the job-create body (status `running`, UTC `YYYY-MM-DD HH:MM:SS` dates) answered 201; uploads
as multipart part `file` holding a bare JSON array of items of the documented shape, ids in the
query string (or as form fields, as the Airbyte tutorial sent them); 409 on a repeated upload of the
same (kind, source, pack, pack version, Idempotency-Key or, without one, content). An empty array is
refused (422) unless `refuse_empty_files` is off: QALITA's own client never sends one, so a client
that does is caught. Job logs: `GET /api/v2/registries`, `POST /api/v1/assets/upload` (multipart
`file`, query `registry_id`, `name`, `version`, `bucket=logs`, `type=log`; 409 on the same registry,
name, version and bucket), and a `logs_id` in the finishing `PUT` must name a stored asset.
`GET /api/v2/packs/{id}` (204 for an unknown pack) and `GET /api/v2/jobs` (every job; 204 when
none) answer as QALITA does.

What it records (`server.received`): every request (method, path, status, Idempotency-Key), jobs
with their status history and dates, accepted uploads by kind, published sources, and every 4xx it
answered with the reason (`rejected`), so a test can assert that a client kept to the contract.

Faults: `server.fail(path, status, times=, retry_after=, delay_s=, method=)` answers the next
`times` requests of that path with the fault (a delay without a status serves the request, then
holds the answer back: the server did the work, a client that timed out never hears of it);
`headers=` adds answer headers (e.g. a redirect's Location). `server.slow(s)` delays every request
by `s` seconds, half before serving it and half after. `server.stop()` / `server.start()`
restart it on the same port (connection refused in between).

Standalone: `python testing/contract_server.py --port 8765` serves until interrupted and
prints what it received on exit.
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import re
import signal
import ssl
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import pytest
from loopback_server import LoopbackServer
from werkzeug import Request, Response

DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")
JOB_STATUSES = {"pending", "running", "succeeded", "failed", "killed"}
UPLOAD_KINDS = ("metrics", "recommendations", "schemas")
PERIMETERS = {"database", "dataset", "column"}
LEVELS = {"info", "warning", "high"}
VISIBILITIES = {"private", "internal", "public"}


def http_date(seconds_from_now: float) -> str:
    """An HTTP-date (the Retry-After date form) `seconds_from_now` in the future."""
    return email.utils.formatdate(time.time() + seconds_from_now, usegmt=True)


@dataclass
class Fault:
    status: int | None = None  # None: serve normally, then delay the answer
    retry_after: str | None = None
    delay_s: float = 0.0
    body: str = '{"detail": "injected fault"}'
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class RequestRecord:
    method: str
    path: str
    status: int
    idempotency_key: str | None


@dataclass
class JobRecord:
    id: int
    name: str
    source_id: int
    pack_id: int
    pack_version_id: int
    start_date: str
    statuses: list[str]
    end_date: str | None = None
    idempotency_key: str | None = None
    logs_id: int | None = None

    @property
    def status(self) -> str:
        return self.statuses[-1]

    @property
    def base_name(self) -> str:
        """The name without the sidecar's ` [<start of the shipment key>]` suffix."""
        return re.sub(r" \[[0-9a-f]{12}\]$", "", self.name)


@dataclass
class Asset:
    id: int
    registry_id: int
    name: str
    version: str
    bucket: str
    type: str
    description: str | None
    text: str
    filename: str | None
    idempotency_key: str | None


@dataclass
class Upload:
    kind: str  # metrics, recommendations, schemas
    source_id: int
    pack_id: int
    pack_version_id: int
    items: list[dict[str, Any]]
    idempotency_key: str | None
    ids_in: str  # "query" or "form"
    filename: str | None


@dataclass
class Received:
    requests: list[RequestRecord] = field(default_factory=list)
    jobs: dict[int, JobRecord] = field(default_factory=dict)
    uploads: dict[str, list[Upload]] = field(
        default_factory=lambda: {k: [] for k in UPLOAD_KINDS})
    sources_published: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[tuple[str, str, int, str]] = field(default_factory=list)  # method, path, status, why
    conflicts: list[tuple[str, str | None]] = field(default_factory=list)  # kind, key of each 409
    assets: dict[int, Asset] = field(default_factory=dict)
    signins: list[dict[str, str]] = field(default_factory=list)  # the forms posted to sign-in

    @property
    def idempotency_keys(self) -> set[str]:
        return {r.idempotency_key for r in self.requests if r.idempotency_key}

    def calls(self, method: str, path: str) -> list[RequestRecord]:
        return [r for r in self.requests if r.method == method and r.path == path]


class _Reject(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


class ContractServer(LoopbackServer):
    def __init__(self, token: str = "qalita-test-token-5f2c", port: int = 0,
                 username: str = "qalita", password: str = "qalita-password",
                 pack_id: int = 7, pack_version_id: int = 70,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        super().__init__("127.0.0.1", port, ssl_context, threaded=True)
        self.token = token
        self.username = username
        self.password = password
        self.pack_id = pack_id
        self.pack_version_id = pack_version_id
        self.packs: dict[int, set[int]] = {pack_id: {pack_version_id}}
        self.sources: dict[int, dict[str, Any]] = {}
        self.registries: list[dict[str, Any]] = [
            {"id": 1, "name": "local", "url": "s3://qalita-registry"}]
        self.refuse_empty_files = True
        self.delay_s = 0.0
        self.received = Received()
        self._faults: dict[tuple[str | None, str], deque[Fault]] = {}
        self._seen_uploads: set[tuple[Any, ...]] = set()
        self._seen_assets: dict[tuple[Any, ...], int] = {}
        self._next_id = {"job": 100, "source": 1, "asset": 500}
        self._lock = threading.Lock()

    # -- for tests -------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"{'https' if self.ssl_context else 'http'}://127.0.0.1:{self.port}"

    def add_source(self, name: str, type: str = "database") -> int:
        with self._lock:
            sid = self._take_id("source")
            self.sources[sid] = {"id": sid, "name": name, "type": type, "description": "",
                                 "visibility": "private", "sensitive": False, "reference": False}
            return sid

    def fail(self, path: str, status: int | None = None, *, times: int = 1,
             retry_after: str | int | None = None, delay_s: float = 0.0,
             method: str | None = None, body: str | None = None,
             headers: dict[str, str] | None = None) -> None:
        """Answer the next `times` requests of `path` (any method unless given) with a fault."""
        fault = Fault(status, None if retry_after is None else str(retry_after), delay_s,
                      headers=dict(headers or {}))
        if body is not None:
            fault.body = body
        with self._lock:
            queue = self._faults.setdefault((method, path), deque())
            queue.extend(fault for _ in range(times))

    def env(self, with_ids: bool = True) -> dict[str, str]:
        """Environment variables that point the sidecar at this server."""
        env = {"QALITA_WORKER_ENDPOINT": self.url, "QALITA_WORKER_TOKEN": self.token}
        if with_ids:
            env.update({"QALITA_PACK_ID": str(self.pack_id),
                        "QALITA_PACK_VERSION_ID": str(self.pack_version_id)})
        return env

    def slow(self, delay_s: float) -> None:
        """Every request takes `delay_s` more: half before it is served, half after."""
        self.delay_s = delay_s

    def running_jobs(self) -> list[JobRecord]:
        with self._lock:
            return [j for j in self.received.jobs.values() if j.status in ("running", "pending")]

    def restart(self) -> None:
        self.stop()
        self.start()

    # -- dispatch ----------------------------------------------------------------------------
    def dispatch(self, request: Request) -> Response:
        path = request.path
        key = request.headers.get("Idempotency-Key")
        fault = self._take_fault(request.method, path)
        time.sleep(self.delay_s / 2)
        if fault is not None and fault.status is not None:
            time.sleep(fault.delay_s)
            headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
            headers.update(fault.headers)
            response = Response(fault.body, fault.status, headers, content_type="application/json")
        else:
            try:
                response = self._serve(request)
            except _Reject as exc:
                response = Response(json.dumps({"detail": exc.detail}), exc.status,
                                    content_type="application/json")
                with self._lock:
                    self.received.rejected.append((request.method, path, exc.status, exc.detail))
            if fault is not None:
                # Done, but the answer comes late: what a client that timed out never sees.
                time.sleep(fault.delay_s)
        time.sleep(self.delay_s / 2)
        with self._lock:
            self.received.requests.append(
                RequestRecord(request.method, path, response.status_code, key))
        return response

    def _take_fault(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for k in ((method, path), (None, path)):
                queue = self._faults.get(k)
                if queue:
                    return queue.popleft()
        return None

    def _take_id(self, kind: str) -> int:
        value = self._next_id[kind]
        self._next_id[kind] += 1
        return value

    def _serve(self, request: Request) -> Response:
        method, path = request.method, request.path
        if (method, path) == ("POST", "/api/v1/auth/signin"):
            return self._signin(request)
        self._check_auth(request)
        routes = {
            ("GET", "/api/v1/version"): lambda: _json({"version": "3.2.1-contract"}),
            ("GET", "/api/v2/sources"): self._list_sources,
            ("POST", "/api/v1/sources/publish"): lambda: self._publish(request),
            ("POST", "/api/v2/jobs/create"): lambda: self._create_job(request),
            ("GET", "/api/v2/jobs"): self._list_jobs,
            ("GET", "/api/v2/registries"): self._list_registries,
            ("POST", "/api/v1/assets/upload"): lambda: self._upload_asset(request),
        }
        if (method, path) in routes:
            return routes[(method, path)]()
        m = re.fullmatch(r"/api/v1/(metrics|recommendations|schemas)/upload", path)
        if m and method == "POST":
            return self._upload(request, m.group(1))
        m = re.fullmatch(r"/api/v2/jobs/(\d+)", path)
        if m and method == "PUT":
            return self._finish_job(request, int(m.group(1)))
        pack = re.fullmatch(r"/api/v2/packs/(\d+)", path)
        if pack and method == "GET":
            return self._get_pack(int(pack.group(1)))
        known = {p for _, p in routes}
        if path in known or m or pack or re.fullmatch(r"/api/v1/\w+/upload", path):
            raise _Reject(405, f"Method {method} not allowed on {path}")
        raise _Reject(404, "Not Found")

    def _list_jobs(self) -> Response:
        with self._lock:
            jobs = [_job_json(j, listed=True) for j in self.received.jobs.values()]
        return _json(jobs) if jobs else Response(status=204)

    def _list_registries(self) -> Response:
        with self._lock:
            registries = list(self.registries)
        return _json(registries) if registries else Response(status=204)

    def _get_pack(self, pid: int) -> Response:
        with self._lock:
            versions = sorted(self.packs.get(pid, ()))
        if pid not in self.packs:
            return Response(status=204)  # QALITA: missing, or not yours
        return _json({"id": pid, "name": f"pack {pid}", "versions": [
            {"id": v, "sem_ver_id": f"1.0.{i}", "asset_id": 9000 + v}
            for i, v in enumerate(versions)]})

    def _upload_asset(self, request: Request) -> Response:
        if "file" not in request.files:
            raise _Reject(422, "multipart part 'file' is required")
        args = request.args
        try:
            registry_id = int(args.get("registry_id", ""))
        except ValueError as exc:
            raise _Reject(422, "query 'registry_id' is a required integer") from exc
        with self._lock:
            known = {int(r["id"]) for r in self.registries}
        if registry_id not in known:
            raise _Reject(404, f"Registry {registry_id} not found")
        for name in ("name", "version", "bucket", "type"):
            if not args.get(name):
                raise _Reject(422, f"query '{name}' is required")
        upload = request.files["file"]
        raw = upload.read()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _Reject(422, f"file is not UTF-8: {exc}") from exc
        dedup = (registry_id, args["name"], args["version"], args["bucket"])
        with self._lock:
            if dedup in self._seen_assets:
                self.received.conflicts.append(("assets", request.headers.get("Idempotency-Key")))
                return _json({"detail": "asset already exists"}, 409)
            aid = self._take_id("asset")
            self._seen_assets[dedup] = aid
            self.received.assets[aid] = Asset(
                aid, registry_id, args["name"], args["version"], args["bucket"], args["type"],
                args.get("description"), text, upload.filename,
                request.headers.get("Idempotency-Key"))
        return _json({"id": aid, "name": args["name"], "version": args["version"],
                      "bucket": args["bucket"], "type": args["type"]})

    def _signin(self, request: Request) -> Response:
        with self._lock:
            self.received.signins.append(dict(request.form))
        if request.form.get("username") == self.username and \
                request.form.get("password") == self.password:
            return _json({"access_token": self.token, "token_type": "bearer"})
        raise _Reject(401, "Incorrect username or password")

    def _check_auth(self, request: Request) -> None:
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            raise _Reject(401, "Could not validate credentials")

    def _list_sources(self) -> Response:
        with self._lock:
            sources = list(self.sources.values())
        return _json(sources) if sources else Response(status=204)

    def _publish(self, request: Request) -> Response:
        body = _json_body(request)
        for name in ("name", "type"):
            if not isinstance(body.get(name), str) or not body[name]:
                raise _Reject(422, f"field '{name}' is required (a non-empty string)")
        for name in ("reference", "sensitive"):
            if name in body and not isinstance(body[name], bool):
                raise _Reject(422, f"field '{name}' must be a boolean")
        if body.get("visibility", "private") not in VISIBILITIES:
            raise _Reject(422, f"field 'visibility' must be one of {sorted(VISIBILITIES)}")
        with self._lock:
            sid = self._take_id("source")
            source = {"id": sid, "name": body["name"], "type": body["type"],
                      "description": body.get("description", ""),
                      "visibility": body.get("visibility", "private"),
                      "sensitive": body.get("sensitive", False),
                      "reference": body.get("reference", False)}
            self.sources[sid] = source
            self.received.sources_published.append(dict(body))
        return _json(source)

    def _check_ids(self, source_id: Any, pack_id: Any, pack_version_id: Any) -> tuple[int, int, int]:
        try:
            sid, pid, vid = int(source_id), int(pack_id), int(pack_version_id)
        except (TypeError, ValueError) as exc:
            raise _Reject(422, "source_id, pack_id and pack_version_id are required integers") \
                from exc
        if sid not in self.sources:
            raise _Reject(404, f"Source {sid} not found")
        if pid not in self.packs:
            raise _Reject(404, f"Pack {pid} not found")
        if vid not in self.packs[pid]:
            raise _Reject(404, f"Pack version {vid} not found for pack {pid}")
        return sid, pid, vid

    def _create_job(self, request: Request) -> Response:
        body = _json_body(request)
        sid, pid, vid = self._check_ids(body.get("source_id"), body.get("pack_id"),
                                        body.get("pack_version_id"))
        if not isinstance(body.get("name"), str) or not body["name"]:
            raise _Reject(422, "field 'name' is required")
        if not isinstance(body.get("start_date"), str) or not DATE_RE.match(body["start_date"]):
            raise _Reject(422, "field 'start_date' must be 'YYYY-MM-DD HH:MM:SS'")
        if body.get("status") not in ("running", "pending"):
            raise _Reject(422, "a job is created 'running' (or 'pending')")
        with self._lock:
            jid = self._take_id("job")
            job = JobRecord(jid, body["name"], sid, pid, vid, body["start_date"],
                            [body["status"]], idempotency_key=request.headers.get("Idempotency-Key"))
            self.received.jobs[jid] = job
        return _json(_job_json(job), 201)

    def _finish_job(self, request: Request, jid: int) -> Response:
        body = _json_body(request)
        with self._lock:
            job = self.received.jobs.get(jid)
        if job is None:
            raise _Reject(404, f"Job {jid} not found")
        if body.get("status") not in JOB_STATUSES:
            raise _Reject(422, f"field 'status' must be one of {sorted(JOB_STATUSES)}")
        if "end_date" in body and (not isinstance(body["end_date"], str)
                                   or not DATE_RE.match(body["end_date"])):
            raise _Reject(422, "field 'end_date' must be 'YYYY-MM-DD HH:MM:SS'")
        logs_id = body.get("logs_id")
        if logs_id is not None and (not isinstance(logs_id, int) or isinstance(logs_id, bool)):
            raise _Reject(422, "field 'logs_id' must be an integer or null")
        if logs_id is not None and logs_id not in self.received.assets:
            raise _Reject(404, f"Asset {logs_id} not found")
        with self._lock:
            job.statuses.append(body["status"])
            job.end_date = body.get("end_date", job.end_date)
            if logs_id is not None:
                job.logs_id = logs_id
        return _json(_job_json(job))

    def _upload(self, request: Request, kind: str) -> Response:
        if "file" not in request.files:
            raise _Reject(422, "multipart part 'file' is required")
        ids_in = "query"
        ids = [request.args.get(n) for n in ("source_id", "pack_id", "pack_version_id")]
        if any(v is None for v in ids):
            ids_in = "form"
            ids = [request.form.get(n) for n in ("source_id", "pack_id", "pack_version_id")]
        sid, pid, vid = self._check_ids(*ids)
        upload = request.files["file"]
        raw = upload.read()
        try:
            items = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise _Reject(422, f"file is not UTF-8 JSON: {exc}") from exc
        if not isinstance(items, list):
            raise _Reject(422, "file must be a bare JSON array")
        if not items and self.refuse_empty_files:
            raise _Reject(422, f"{kind} file holds no items")
        for i, item in enumerate(items):
            problem = _ITEM_CHECKS[kind](item)
            if problem:
                raise _Reject(422, f"{kind}[{i}]: {problem}")
        key = request.headers.get("Idempotency-Key")
        dedup = (kind, sid, pid, vid, key or hashlib.sha256(raw).hexdigest())
        with self._lock:
            if dedup in self._seen_uploads:
                self.received.conflicts.append((kind, key))
                return _json({"detail": f"{kind} already exists"}, 409)
            self._seen_uploads.add(dedup)
            self.received.uploads[kind].append(
                Upload(kind, sid, pid, vid, items, key, ids_in, upload.filename))
        return _json({"detail": f"{len(items)} {kind} uploaded"})


def _json(data: Any, status: int = 200) -> Response:
    return Response(json.dumps(data), status, content_type="application/json")


def _json_body(request: Request) -> dict[str, Any]:
    if not (request.mimetype or "").endswith("json"):
        raise _Reject(415, "body must be application/json")
    try:
        body = json.loads(request.get_data(as_text=True))
    except ValueError as exc:
        raise _Reject(422, f"body is not JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise _Reject(422, "body must be a JSON object")
    return body


def _job_json(job: JobRecord, listed: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": job.id, "name": job.name, "source_id": job.source_id, "pack_id": job.pack_id,
        "pack_version_id": job.pack_version_id, "start_date": job.start_date,
        "end_date": job.end_date, "status": job.status, "logs_id": job.logs_id}
    if listed:  # the job list nests its relations, as QALITA's does
        out.update({"source": {"id": job.source_id}, "pack": {"id": job.pack_id},
                    "pack_version": {"id": job.pack_version_id}})
    return out


def _scope_problem(scope: Any, depth: int = 0) -> str | None:
    if not isinstance(scope, dict):
        return "scope must be an object"
    if scope.get("perimeter") not in PERIMETERS:
        return f"scope.perimeter must be one of {sorted(PERIMETERS)}"
    if not isinstance(scope.get("value"), str) or not scope["value"]:
        return "scope.value must be a non-empty string"
    extra = set(scope) - {"perimeter", "value", "parent_scope"}
    if extra:
        return f"scope has unknown fields {sorted(extra)}"
    if "parent_scope" in scope:
        if depth > 3:
            return "scope nests too deep"
        return _scope_problem(scope["parent_scope"], depth + 1)
    return None


def _fields_problem(item: Any, fields: set[str]) -> str | None:
    if not isinstance(item, dict):
        return "item must be an object"
    if set(item) != fields:
        return f"item fields must be {sorted(fields)}, got {sorted(item)}"
    return None


def _metric_problem(item: Any) -> str | None:
    problem = _fields_problem(item, {"key", "value", "scope"})
    if problem:
        return problem
    if not isinstance(item["key"], str) or not item["key"]:
        return "key must be a non-empty string"
    if isinstance(item["value"], bool) or not isinstance(item["value"], (str, int, float)):
        return "value must be a string or a number"
    if item["key"] == "score" and not re.fullmatch(r"(0\.\d\d|1\.00)", str(item["value"])):
        return "score must be a string with 2 decimals between 0.00 and 1.00"
    return _scope_problem(item["scope"])


def _recommendation_problem(item: Any) -> str | None:
    problem = _fields_problem(item, {"content", "type", "scope", "level"})
    if problem:
        return problem
    for name in ("content", "type"):
        if not isinstance(item[name], str) or not item[name]:
            return f"{name} must be a non-empty string"
    if item["level"] not in LEVELS:
        return f"level must be one of {sorted(LEVELS)}"
    return _scope_problem(item["scope"])


def _schema_problem(item: Any) -> str | None:
    problem = _fields_problem(item, {"key", "value", "scope"})
    if problem:
        return problem
    if item["key"] not in PERIMETERS:
        return f"key must be one of {sorted(PERIMETERS)}"
    if not isinstance(item["value"], str) or not item["value"]:
        return "value must be a non-empty string"
    return _scope_problem(item["scope"])


_ITEM_CHECKS = {"metrics": _metric_problem, "recommendations": _recommendation_problem,
                "schemas": _schema_problem}


@pytest.fixture
def qalita_server():
    """A running contract server on a free loopback port; stopped after the test."""
    server = ContractServer()
    server.start()
    try:
        yield server
    finally:
        if server.is_running():
            server.stop()


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--token", default="qalita-test-token-5f2c")
    args = parser.parse_args()
    server = ContractServer(token=args.token, port=args.port)

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)  # `kill` prints the summary too
    server.start()
    print(f"QALITA contract server on {server.url} (pack {server.pack_id}, "
          f"version {server.pack_version_id}); Ctrl+C to stop", flush=True)
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        server.stop()
    r = server.received
    print(f"jobs: {len(r.jobs)}; uploads: "
          + ", ".join(f"{k} {len(v)}" for k, v in r.uploads.items())
          + f"; logs assets: {len(r.assets)}; 409s: {len(r.conflicts)}; rejected: {r.rejected}")


if __name__ == "__main__":
    main()
