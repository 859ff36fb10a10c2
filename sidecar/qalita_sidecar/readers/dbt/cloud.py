"""dbt Cloud's Administrative API v2: one run with its steps, and each step's artifacts.

    GET {base}/api/v2/accounts/{account}/runs/{run}/?include_related=["run_steps","job"]
    GET {base}/api/v2/accounts/{account}/runs/{run}/artifacts/{path}?step={index}

Without `step`, dbt Cloud answers with the artifacts of the run's LAST step, which in most jobs is
`dbt docs generate` (a compile: no test outcome), so every artifact request here names its step.

Retries: connection errors, timeouts, 429 and 5xx, with jittered exponential backoff (a
Retry-After is honoured), all under one deadline per client (`begin()` starts a new one). The
token only ever goes into the Authorization header: no message, log or repr carries it.
"""

from __future__ import annotations

import email.utils
import json
import os
import random
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from qalita_sidecar.settings import SettingsError

DEFAULT_BASE_URL = "https://cloud.getdbt.com"
BASE_URL_VAR = "DBT_CLOUD_BASE_URL"
TOKEN_VAR = "DBT_CLOUD_API_TOKEN"
ACCOUNT_VAR = "DBT_CLOUD_ACCOUNT_ID"
# Run and step status codes of the Administrative API.
STATUS_NAMES = {1: "queued", 2: "starting", 3: "running", 10: "success", 20: "error",
                30: "cancelled"}
SUCCESS, ERROR, CANCELLED = 10, 20, 30
FINISHED = (SUCCESS, ERROR, CANCELLED)
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
BACKOFF_BASE_S = 0.5
BACKOFF_CAP_S = 30.0
_CHUNK = 1 << 20
_INVOKE = re.compile(r"`\s*dbt\s+([^`]*)`")


class DbtCloudError(Exception):
    """A dbt Cloud answer that cannot be used; one line naming the setting or the step."""


class DbtCloudUnavailable(DbtCloudError):
    """dbt Cloud could not be reached, or kept failing until the deadline: try again later."""


@dataclass(frozen=True)
class CloudSettings:
    base_url: str
    account_id: int
    token: str = field(repr=False)
    request_timeout_s: float = 30.0
    deadline_s: float = 120.0

    def describe(self) -> str:
        return f"{self.base_url} (account {self.account_id})"


def cloud_settings(env: Mapping[str, str] | None = None, *, base_url: str | None = None,
                   account_id: int | None = None, token_file: Path | None = None,
                   deadline_s: float | None = None) -> CloudSettings:
    """dbt Cloud settings from flags, else the environment; SettingsError names the wrong one."""
    env = os.environ if env is None else env
    url = (base_url or env.get(BASE_URL_VAR) or DEFAULT_BASE_URL).strip().rstrip("/")
    where = "--base-url" if base_url else (BASE_URL_VAR if env.get(BASE_URL_VAR) else "base URL")
    if not re.match(r"^https?://[^/\s]+", url):
        raise SettingsError(f"{where} {url!r}: expected https://<host> (your dbt Cloud access URL, "
                            "e.g. https://cloud.getdbt.com or https://emea.dbt.com)")
    url = re.sub(r"/api/v2$", "", url)  # the access URL, whether or not the API path was given
    if account_id is None:
        raw = (env.get(ACCOUNT_VAR) or "").strip()
        if not raw:
            raise SettingsError(f"--account-id (or {ACCOUNT_VAR}) is required: the number after "
                                "/deploy/ in a dbt Cloud URL")
        if not raw.isdigit():
            raise SettingsError(f"{ACCOUNT_VAR}: expected a number, got {raw!r}")
        account_id = int(raw)
    if token_file is not None:
        try:
            token = Path(token_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise SettingsError(f"--token-file {token_file}: cannot read ({exc.strerror})") from exc
        if not token:
            raise SettingsError(f"--token-file {token_file}: the file is empty")
    else:
        token = (env.get(TOKEN_VAR) or "").strip()
        if not token:
            raise SettingsError(f"no dbt Cloud token: set {TOKEN_VAR} or pass --token-file "
                                "(a service account token that can read job runs)")
    return CloudSettings(url, account_id, token,
                         deadline_s=deadline_s if deadline_s is not None else 120.0)


# --- the records ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    index: int  # 1-based, what `?step=` takes
    name: str  # "Invoke dbt with `dbt build`", "Clone git repository", ...
    status: int | None
    status_humanized: str

    @property
    def dbt_command(self) -> str | None:
        """The dbt command line of a step that invoked dbt ('build --select x'), else None."""
        found = _INVOKE.search(self.name)
        return " ".join(found.group(1).split()) if found else None

    @property
    def label(self) -> str:
        command = self.dbt_command
        return f"step {self.index} (`dbt {command}`)" if command else \
            f"step {self.index} ({self.name})"

    @property
    def finished(self) -> bool:
        return self.status in (SUCCESS, ERROR)


@dataclass(frozen=True)
class Run:
    id: int
    account_id: int
    status: int
    status_humanized: str
    steps: tuple[Step, ...]
    job_id: int | None = None
    job_name: str | None = None
    environment_id: int | None = None
    project_id: int | None = None
    git_sha: str | None = None
    git_branch: str | None = None
    target_name: str | None = None  # the job's target name: dbt's `target.name` in that run
    started_at: str | None = None
    finished_at: str | None = None

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    @property
    def status_name(self) -> str:
        return STATUS_NAMES.get(self.status, self.status_humanized or str(self.status))


def _int(value: Any) -> int | None:
    try:
        return int(value) if value is not None and value != "" else None
    except (TypeError, ValueError):
        return None


def parse_run(data: Mapping[str, Any], account_id: int) -> Run:
    """The `data` object of GET .../runs/{id}/ (with run_steps and job) -> a Run."""
    steps = []
    for raw in data.get("run_steps") or ():
        if not isinstance(raw, Mapping) or _int(raw.get("index")) is None:
            continue
        steps.append(Step(int(raw["index"]), str(raw.get("name") or ""), _int(raw.get("status")),
                          str(raw.get("status_humanized") or "")))
    raw_job = data.get("job")
    job: Mapping[str, Any] = raw_job if isinstance(raw_job, Mapping) else {}
    raw_settings = job.get("settings")
    job_settings: Mapping[str, Any] = raw_settings if isinstance(raw_settings, Mapping) else {}
    status = _int(data.get("status"))
    if status is None or _int(data.get("id")) is None:
        raise DbtCloudError(f"run {data.get('id')!r}: the answer has no id or status")
    return Run(
        id=int(data["id"]), account_id=_int(data.get("account_id")) or account_id, status=status,
        status_humanized=str(data.get("status_humanized") or ""),
        steps=tuple(sorted(steps, key=lambda s: s.index)),
        job_id=_int(data.get("job_definition_id") or data.get("job_id") or job.get("id")),
        job_name=job.get("name"), environment_id=_int(data.get("environment_id")),
        project_id=_int(data.get("project_id")), git_sha=data.get("git_sha") or None,
        git_branch=data.get("git_branch") or None,
        target_name=job_settings.get("target_name") or None,
        started_at=data.get("started_at") or None, finished_at=data.get("finished_at") or None)


# --- the client ------------------------------------------------------------------------------


class _TokenAuth(requests.auth.AuthBase):
    # An AuthBase (not a plain header) so requests never swaps in ~/.netrc credentials.
    def __init__(self, token: str) -> None:
        self._token = token

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        r.headers["Authorization"] = f"Token {self._token}"
        return r

    def __repr__(self) -> str:
        return "<Token ***>"


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    if value.strip().isdigit():
        return float(value.strip())
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time()) if when else None


def _user_message(response: requests.Response) -> str:
    """dbt Cloud's own reason ({"status": {"user_message": ...}}), one line, bounded."""
    try:
        body = response.json()
        status = body.get("status") if isinstance(body, dict) else None
        text = status.get("user_message") if isinstance(status, dict) else None
    except ValueError:
        text = None
    text = " ".join(str(text or response.reason or "").split())
    return text[:200]


class DbtCloudClient:
    def __init__(self, settings: CloudSettings, session: requests.Session | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep,
                 rand: Callable[[], float] = random.random) -> None:
        self.settings = settings
        self.session = session or requests.Session()
        self._clock, self._sleep, self._rand = clock, sleep, rand
        self._deadline_at = clock() + settings.deadline_s
        self.requests_made = 0

    def __repr__(self) -> str:
        return f"<DbtCloudClient {self.settings.describe()}>"

    def begin(self) -> None:
        """A fresh deadline (the webhook receiver starts one per event)."""
        self._deadline_at = self._clock() + self.settings.deadline_s

    def _runs_url(self, run_id: int) -> str:
        return (f"{self.settings.base_url}/api/v2/accounts/{self.settings.account_id}"
                f"/runs/{run_id}/")

    def run(self, run_id: int) -> Run:
        response = self._get(self._runs_url(run_id),
                             {"include_related": json.dumps(["run_steps", "job"])},
                             f"run {run_id}")
        if response.status_code == 404:
            raise DbtCloudError(f"run {run_id} not found in dbt Cloud account "
                                f"{self.settings.account_id} at {self.settings.base_url} (404): "
                                "check --run-id, --account-id and --base-url")
        try:
            data = response.json().get("data")
        except (ValueError, AttributeError) as exc:
            raise DbtCloudError(f"run {run_id}: the dbt Cloud answer is not JSON") from exc
        if not isinstance(data, Mapping):
            raise DbtCloudError(f"run {run_id}: the dbt Cloud answer has no run in 'data'")
        return parse_run(data, self.settings.account_id)

    def download(self, run_id: int, path: str, step: Step, dest: Path) -> bool:
        """Write a step's artifact to `dest`; False when dbt Cloud has none (404)."""
        url = f"{self._runs_url(run_id)}artifacts/{path}"
        what = f"run {run_id} {step.label} {path}"
        response = self._get(url, {"step": str(step.index)}, what, stream=True)
        with response:
            if response.status_code == 404:
                return False
            try:
                with open(dest, "wb") as fh:
                    for chunk in response.iter_content(_CHUNK):
                        fh.write(chunk)
            except requests.RequestException as exc:
                raise DbtCloudUnavailable(f"{what}: the download broke off "
                                          f"({type(exc).__name__})") from exc
            except OSError as exc:
                raise DbtCloudError(f"{what}: cannot write {dest} ({exc.strerror})") from exc
        return True

    def _get(self, url: str, params: dict[str, str], what: str,
             stream: bool = False) -> requests.Response:
        """GET with retries under the deadline; returns a 2xx or a 404, raises otherwise."""
        attempt = 0
        while True:
            left = self._deadline_at - self._clock()
            if left <= 0:
                raise DbtCloudUnavailable(f"{what}: dbt Cloud at {self.settings.base_url} did "
                                          f"not answer within the {self.settings.deadline_s:g} s "
                                          "deadline (--deadline)")
            wait: float | None = None
            try:
                self.requests_made += 1
                response = self.session.get(
                    url, params=params, auth=_TokenAuth(self.settings.token), stream=stream,
                    timeout=min(self.settings.request_timeout_s, left),
                    headers={"Accept": "application/json"})
            except requests.RequestException as exc:
                problem = f"cannot reach {self.settings.base_url} ({type(exc).__name__})"
            else:
                code = response.status_code
                if code < 300 or code == 404:
                    return response
                reason = _user_message(response)
                response.close()
                if code in (401, 403):
                    raise DbtCloudError(
                        f"{what}: {TOKEN_VAR} was refused by {self.settings.base_url} ({code} "
                        f"{reason}): it needs read access to job runs of account "
                        f"{self.settings.account_id}")
                if code not in RETRY_STATUSES:
                    raise DbtCloudError(f"{what}: dbt Cloud answered {code} ({reason})")
                problem = f"dbt Cloud answered {code} ({reason})"
                wait = _retry_after(response.headers.get("Retry-After"))
            step = min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** attempt)
            pause = wait if wait is not None else step / 2 + self._rand() * step / 2
            left = self._deadline_at - self._clock()
            if pause >= left:
                raise DbtCloudUnavailable(f"{what}: {problem}; gave up at the "
                                          f"{self.settings.deadline_s:g} s deadline (--deadline)")
            self._sleep(pause)
            attempt += 1


# --- the job webhook --------------------------------------------------------------------------

COMPLETED = "job.run.completed"
EVENT_TYPES = ("job.run.started", COMPLETED, "job.run.errored")


@dataclass(frozen=True)
class CloudEvent:
    """One job webhook event: which run it is about (ids are strings in dbt Cloud's `data`)."""

    event_type: str
    account_id: int
    run_id: int
    event_id: str | None = None
    job_id: int | None = None
    run_status_code: int | None = None

    @property
    def name(self) -> str:
        return f"{self.account_id}-{self.run_id}"


def parse_event(body: Any) -> CloudEvent:
    """A webhook body -> CloudEvent; DbtCloudError (one line) when it is not a job event."""
    if not isinstance(body, Mapping):
        raise DbtCloudError("the body is not a JSON object")
    data = body.get("data")
    if not isinstance(data, Mapping):
        raise DbtCloudError("the event has no 'data' object")
    event_type = str(body.get("eventType") or "")
    if event_type not in EVENT_TYPES:
        raise DbtCloudError(f"eventType {event_type!r} is not a dbt Cloud job event "
                            f"({', '.join(EVENT_TYPES)})")
    account_id, run_id = _int(body.get("accountId")), _int(data.get("runId"))
    if account_id is None or run_id is None:
        raise DbtCloudError("the event names no accountId or data.runId")
    return CloudEvent(event_type, account_id, run_id, str(body.get("eventId") or "") or None,
                      _int(data.get("jobId")), _int(data.get("runStatusCode")))
