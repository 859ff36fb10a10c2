"""A local dbt Cloud stand-in: the Administrative API v2 runs and artifacts endpoints, for the tests.

It lives with the tests, never in the product. It listens on 127.0.0.1 on a real port, so the
`qalita-sidecar` CLI in a subprocess talks to it as it would to https://cloud.getdbt.com.

    GET /api/v2/accounts/{account}/runs/{run}/                 the run; `include_related` with
                                                               run_steps (and job) adds them
    GET /api/v2/accounts/{account}/runs/{run}/artifacts/       the artifact names of a step
    GET /api/v2/accounts/{account}/runs/{run}/artifacts/{path} one artifact; `?step=N` (1-based),
                                                               without it the LAST step's

What it enforces: `Authorization: Token <token>` or `Bearer <token>` on every call (else 401 in
dbt Cloud's envelope), the account id (else 404). Artifacts are files of real dbt runs of this
repository's project (`dbt_cloud_artifacts`, once per test session); a step without a folder (the
setup steps) has none. What it records (`server.requests`): method, path, query, status.
Faults: `server.fail(pattern, status, times=, retry_after=)`; `server.slow(pattern, seconds)`;
`server.hide(run, step, name)` answers 404 for one artifact. `sign(body, secret)` and `webhook_body(...)` build a signed
job.run.completed event as dbt Cloud sends it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import shutil
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from loopback_server import LoopbackServer
from werkzeug import Request, Response

ARTIFACTS = ("manifest.json", "run_results.json", "sources.json", "catalog.json")
STATUS_HUMANIZED = {1: "Queued", 2: "Starting", 3: "Running", 10: "Success", 20: "Error",
                    30: "Cancelled"}
GIT_SHA = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c"


@dataclass
class CloudStep:
    name: str
    status: int = 10
    artifacts: Path | None = None  # a folder of one dbt command's artifacts


@dataclass
class CloudRun:
    id: int
    steps: list[CloudStep]
    status: int = 10
    job_id: int = 42
    job_name: str = "Daily build"
    target_name: str = "dev"
    environment_id: int = 7
    project_id: int = 3
    git_sha: str | None = GIT_SHA
    git_branch: str = "main"
    started_at: str = "2026-01-31T19:28:07.000000+00:00"
    finished_at: str = "2026-01-31T19:29:32.000000+00:00"


@dataclass
class CloudRequest:
    method: str
    path: str
    query: dict[str, str]
    status: int


def setup_steps() -> list[CloudStep]:
    """What dbt Cloud runs before the job's commands: no artifacts."""
    return [CloudStep("Clone git repository"), CloudStep("Create profile from connection DuckDB"),
            CloudStep("Invoke dbt with `dbt deps`")]


def dbt_step(command: str, artifacts: Path | None, status: int = 10) -> CloudStep:
    return CloudStep(f"Invoke dbt with `dbt {command}`", status, artifacts)


def _envelope(data: Any, code: int = 200, message: str = "Success!") -> Response:
    body = {"status": {"code": code, "is_success": code < 300, "user_message": message,
                       "developer_message": ""}, "data": data}
    return Response(json.dumps(body), code, content_type="application/json")


class DbtCloudServer(LoopbackServer):
    def __init__(self, token: str = "dbtc_stand-in_service_token_9a7b", account_id: int = 4321,
                 port: int = 0) -> None:
        super().__init__("127.0.0.1", port, None, threaded=True)
        self.token = token
        self.account_id = account_id
        self.runs: dict[int, CloudRun] = {}
        self.requests: list[CloudRequest] = []
        self._hidden: set[tuple[int, int, str]] = set()
        self._faults: deque[tuple[re.Pattern[str], int, str | None]] = deque()
        self._slow: list[tuple[re.Pattern[str], float]] = []
        self._lock = threading.Lock()

    # -- for tests -------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        """The variables that point `ingest dbt-cloud` at this stand-in."""
        return {"DBT_CLOUD_BASE_URL": self.url, "DBT_CLOUD_API_TOKEN": self.token,
                "DBT_CLOUD_ACCOUNT_ID": str(self.account_id)}

    def add_run(self, run: CloudRun) -> CloudRun:
        with self._lock:
            self.runs[run.id] = run
        return run

    def hide(self, run_id: int, step: int, name: str) -> None:
        """Answer 404 for one artifact of one step."""
        with self._lock:
            self._hidden.add((run_id, step, name))

    def fail(self, pattern: str, status: int, *, times: int = 1,
             retry_after: str | int | None = None) -> None:
        """Answer the next `times` requests whose path matches `pattern` with `status`."""
        with self._lock:
            for _ in range(times):
                self._faults.append((re.compile(pattern), status,
                                     None if retry_after is None else str(retry_after)))

    def slow(self, pattern: str, seconds: float) -> None:
        """Serve requests whose path matches `pattern` only after `seconds`."""
        with self._lock:
            self._slow.append((re.compile(pattern), seconds))

    def calls(self, pattern: str = "") -> list[CloudRequest]:
        return [r for r in self.requests if re.search(pattern, r.path)]

    def artifact_calls(self, name: str | None = None) -> list[CloudRequest]:
        return [r for r in self.calls(r"/artifacts/.") if name is None
                or r.path.endswith("/" + name)]

    # -- dispatch ----------------------------------------------------------------------------
    def dispatch(self, request: Request) -> Response:
        with self._lock:
            delay = max([s for p, s in self._slow if p.search(request.path)], default=0.0)
        time.sleep(delay)
        response = self._dispatch(request)
        with self._lock:
            self.requests.append(CloudRequest(request.method, request.path,
                                              dict(request.args.items()), response.status_code))
        return response

    def _dispatch(self, request: Request) -> Response:
        with self._lock:
            for i, (pattern, status, retry_after) in enumerate(self._faults):
                if pattern.search(request.path):
                    del self._faults[i]
                    response = _envelope(None, status, "injected fault")
                    if retry_after:
                        response.headers["Retry-After"] = retry_after
                    return response
        auth = request.headers.get("Authorization", "")
        scheme, _, given = auth.partition(" ")
        if scheme not in ("Token", "Bearer") or not hmac.compare_digest(given, self.token):
            return _envelope(None, 401, "Invalid token.")
        m = re.fullmatch(r"/api/v2/accounts/(\d+)/runs/(\d+)/(?:artifacts/(.*))?", request.path)
        if request.method != "GET" or m is None:
            return _envelope(None, 404, "The requested resource was not found.")
        account, run_id, artifact = int(m.group(1)), int(m.group(2)), m.group(3)
        run = self.runs.get(run_id)
        if account != self.account_id or run is None:
            return _envelope(None, 404, "The requested resource was not found.")
        if artifact is None:
            return _envelope(self._run_json(run, _related(request)))
        step_arg = request.args.get("step")
        index = int(step_arg) if step_arg and step_arg.isdigit() else len(run.steps)
        if not 1 <= index <= len(run.steps):
            return _envelope(None, 400, f"step {step_arg} is not a step of run {run_id}")
        folder = run.steps[index - 1].artifacts
        if artifact == "":
            names = sorted(p.name for p in folder.iterdir()) if folder else []
            return _envelope(names)
        path = folder / artifact if folder else None
        if path is None or not path.is_file() or (run_id, index, artifact) in self._hidden:
            return _envelope(None, 404, "The requested resource was not found.")
        return Response(path.read_bytes(), 200, content_type="application/json")

    def _run_json(self, run: CloudRun, related: set[str]) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": run.id, "account_id": self.account_id, "job_definition_id": run.job_id,
            "environment_id": run.environment_id, "project_id": run.project_id,
            "status": run.status, "status_humanized": STATUS_HUMANIZED[run.status],
            "git_sha": run.git_sha, "git_branch": run.git_branch,
            "started_at": run.started_at, "finished_at": run.finished_at,
            "is_complete": run.status in (10, 20, 30), "is_success": run.status == 10,
            "is_error": run.status == 20, "is_cancelled": run.status == 30,
            "in_progress": run.status in (1, 2, 3), "run_steps": [], "job": None,
        }
        if "run_steps" in related:
            data["run_steps"] = [
                {"id": run.id * 100 + i, "run_id": run.id, "account_id": self.account_id,
                 "index": i, "name": step.name, "status": step.status,
                 "status_humanized": STATUS_HUMANIZED[step.status], "logs": "", "debug_logs": ""}
                for i, step in enumerate(run.steps, start=1)]
        if "job" in related:
            data["job"] = {"id": run.job_id, "name": run.job_name,
                           "execute_steps": [s.name for s in run.steps if "`dbt" in s.name],
                           "settings": {"threads": 4, "target_name": run.target_name}}
        return data


def _related(request: Request) -> set[str]:
    """include_related as a JSON list (`["run_steps"]`), comma-separated, or repeated."""
    found: set[str] = set()
    for value in request.args.getlist("include_related"):
        try:
            parsed = json.loads(value)
        except ValueError:
            parsed = value.split(",")
        found |= {str(v).strip() for v in (parsed if isinstance(parsed, list) else [parsed])}
    return found


def sign(body: bytes, secret: str) -> str:
    """dbt Cloud's webhook signature: hex HMAC-SHA256 of the raw body, keyed with the secret."""
    return hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def webhook_body(run: CloudRun, account_id: int, event_type: str = "job.run.completed",
                 event_id: str = "wev_2L6ZDoilyiWzKkSA59Gmc2d7FDD") -> bytes:
    """A job event in the shape of dbt Cloud's examples (ids are strings in `data`)."""
    payload = {
        "accountId": account_id, "webhooksID": "wsu_12345abcde", "eventId": event_id,
        "timestamp": "2026-01-31T19:29:35.789265936Z", "eventType": event_type,
        "webhookName": "qalita", "data": {
            "jobId": str(run.job_id), "jobName": run.job_name, "runId": str(run.id),
            "environmentId": str(run.environment_id), "environmentName": "Production",
            "dbtVersion": "1.11", "projectName": "quality_compass",
            "projectId": str(run.project_id), "runStatus": STATUS_HUMANIZED[run.status],
            "runStatusCode": run.status, "runStatusMessage": "None",
            "runReason": "Kicked off from UI by test@example.com",
            "runStartedAt": "2026-01-31T19:28:07Z", "runFinishedAt": "2026-01-31T19:29:32Z"}}
    return json.dumps(payload).encode("utf-8")


# --- real dbt runs, once per session -----------------------------------------------------------


@dataclass(frozen=True)
class CloudArtifacts:
    """Folders of artifacts of real dbt commands on the air-quality part of the project."""

    build: Path  # dbt build --select tag:airquality (every test passes)
    freshness: Path  # dbt source freshness --select source:openaq
    docs: Path  # dbt docs generate --select tag:airquality
    failing_build: Path  # the same build with the failing variant: fail, warn, error, skipped
    extra: dict[str, Any] = field(default_factory=dict)


def generate_artifacts(root: Path) -> CloudArtifacts:
    from testkit import make_project

    project = make_project(root / "work", "dev")
    project.run("seed")  # what the warehouse held before the job ran: not a step of it

    def step(name: str, *args: str, vars: dict | None = None) -> Path:
        for artifact in ARTIFACTS:
            (project.target_path / artifact).unlink(missing_ok=True)
        project.run(*args, vars=vars, check=False)
        folder = root / name
        folder.mkdir()
        for artifact in ARTIFACTS:
            if (project.target_path / artifact).exists():
                shutil.copy(project.target_path / artifact, folder / artifact)
        return folder

    built = dict(
        build=step("build", "build", "--select", "tag:airquality"),
        freshness=step("freshness", "source", "freshness", "--select", "source:openaq"),
        docs=step("docs", "docs", "generate", "--select", "tag:airquality"),
        failing_build=step("failing_build", "build", "--select", "tag:airquality",
                           vars={"airquality_failing_variant": True}),
    )
    # the warehouse those runs wrote, with the package's tables (for `ingest dbt` beside them)
    return CloudArtifacts(**built, extra={"duckdb": project.env["DBT_DUCKDB_PATH"]})


def three_step_run(artifacts: CloudArtifacts, run_id: int = 70001) -> CloudRun:
    """A job `dbt build`, `dbt source freshness`, then `dbt docs generate` (its last step)."""
    return CloudRun(run_id, [*setup_steps(),
                             dbt_step("build --select tag:airquality", artifacts.build),
                             dbt_step("source freshness --select source:openaq",
                                      artifacts.freshness),
                             dbt_step("docs generate --select tag:airquality", artifacts.docs)])


def failed_run(artifacts: CloudArtifacts, run_id: int = 70002) -> CloudRun:
    """The build fails (a runtime error in a test); dbt Cloud runs no later command step."""
    return CloudRun(run_id, [*setup_steps(),
                             dbt_step("build --select tag:airquality --vars "
                                      "'{airquality_failing_variant: true}'",
                                      artifacts.failing_build, status=20)], status=20)


@pytest.fixture(scope="session")
def dbt_cloud_artifacts(tmp_path_factory) -> CloudArtifacts:
    """Artifacts of real dbt runs (DuckDB), generated once per test session."""
    return generate_artifacts(tmp_path_factory.mktemp("dbt_cloud_artifacts"))


@pytest.fixture
def dbt_cloud():
    """A running dbt Cloud stand-in on a free loopback port; stopped after the test."""
    server = DbtCloudServer()
    server.start()
    try:
        yield server
    finally:
        if server.is_running():
            server.stop()
