"""dbt Cloud runs into QALITA: the real `qalita-sidecar ingest dbt-cloud` and `serve dbt-cloud`
against the local dbt Cloud stand-in (artifacts of real dbt runs of this project) and the QALITA
contract server.
"""

from __future__ import annotations

import json
import queue
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import requests
from dbt_cloud_server import (
    GIT_SHA,
    dbt_step,
    failed_run,
    setup_steps,
    sign,
    three_step_run,
    webhook_body,
)
from support.itkit import clean_env, items, ledger_keys, pending, sidecar, wait_until
from testkit import BIN, REPO

SECRET = "whsec-dbt-cloud-stand-in-3f9a1c77e2"


def cloud_env(tmp_path: Path, dbt_cloud, qalita_server=None, **extra: str) -> dict[str, str]:
    return clean_env(tmp_path, **dbt_cloud.env(),
                     **(qalita_server.env() if qalita_server is not None else {}), **extra)


def ingest(env: dict[str, str], *args: str):
    return sidecar("ingest", "dbt-cloud", *args, env=env, cwd=REPO)


def dbt_test_counts(artifacts: Path) -> dict[str, int]:
    """What dbt itself counted: test outcomes in that step's run_results.json."""
    counts: dict[str, int] = {}
    for r in json.loads((artifacts / "run_results.json").read_text())["results"]:
        if r["unique_id"].startswith(("test.", "unit_test.")):
            counts[r["status"]] = counts.get(r["status"], 0) + 1
    return counts


def project_metrics(qalita_server) -> dict[str, object]:
    return {m["key"]: m["value"] for m in items(qalita_server, "metrics")
            if m["scope"]["perimeter"] == "database"}


def test_three_step_run_ships_two_jobs_with_the_builds_real_test_counts(
        tmp_path, dbt_cloud, dbt_cloud_artifacts, qalita_server):
    run = dbt_cloud.add_run(three_step_run(dbt_cloud_artifacts))
    env = cloud_env(tmp_path, dbt_cloud, qalita_server)
    first = ingest(env, "--run-id", str(run.id))
    assert first.returncode == 0, first.stdout + first.stderr
    assert "2 delivered" in first.stdout
    assert "step 6 (`dbt docs generate --select tag:airquality`): builds the docs" in first.stdout
    jobs = sorted(qalita_server.received.jobs.values(), key=lambda j: j.id)
    assert [j.name.split()[:2] for j in jobs] == [["dbt", "build"], ["dbt", "freshness"]]
    assert [j.status for j in jobs] == ["succeeded", "succeeded"]
    assert qalita_server.received.rejected == []

    counts = dbt_test_counts(dbt_cloud_artifacts.build)
    assert counts.get("pass", 0) > 10 and set(counts) == {"pass"}
    metrics = project_metrics(qalita_server)
    assert metrics["tests_total"] == sum(counts.values())
    assert metrics["tests_passed"] == counts["pass"]
    assert metrics["score"] == "1.00"
    fresh = [m for m in items(qalita_server, "metrics") if m["key"] == "freshness_status"]
    assert [(m["scope"]["value"], m["value"]) for m in fresh] == \
        [("openaq.opendata_airquality", "pass")]

    # every artifact was asked for its own step; the docs step (the last one) never
    calls = dbt_cloud.artifact_calls()
    assert calls and all(c.query.get("step") in ("4", "5") for c in calls)
    assert {(c.path.rsplit("/", 1)[1], c.query["step"]) for c in calls} == {
        ("run_results.json", "4"), ("manifest.json", "4"), ("sources.json", "5"),
        ("manifest.json", "5")}
    [run_call] = dbt_cloud.calls(r"/runs/70001/$")
    assert json.loads(run_call.query["include_related"]) == ["run_steps", "job"]

    again = ingest(env, "--run-id", str(run.id))
    assert again.returncode == 0, again.stdout + again.stderr
    assert "nothing new to ship" in again.stdout
    assert again.stdout.count("already shipped") == 2
    assert len(qalita_server.received.jobs) == 2
    # a replay downloads no manifest once the project is known
    assert len(dbt_cloud.artifact_calls("manifest.json")) == 3


def test_an_invocation_shipped_from_ci_artifacts_is_not_shipped_again(
        tmp_path, dbt_cloud, dbt_cloud_artifacts, qalita_server):
    run = dbt_cloud.add_run(three_step_run(dbt_cloud_artifacts, run_id=70011))
    build = dbt_cloud_artifacts.build
    env = cloud_env(tmp_path, dbt_cloud, qalita_server, DBT_CLOUD_GIT_SHA=GIT_SHA)
    ci = sidecar("ingest", "dbt", "--no-tables", "--env", "dev", "--manifest",
                 str(build / "manifest.json"), "--results", str(build / "run_results.json"),
                 env=env, cwd=REPO)
    assert ci.returncode == 0, ci.stdout + ci.stderr
    assert len(qalita_server.received.jobs) == 1
    cloud = ingest(env, "--run-id", str(run.id))
    assert cloud.returncode == 0, cloud.stdout + cloud.stderr
    assert "step 4 (`dbt build --select tag:airquality`): invocation" in cloud.stdout
    assert "already shipped" in cloud.stdout
    assert "1 delivered" in cloud.stdout  # the freshness step only
    assert len(qalita_server.received.jobs) == 2
    assert len(set(ledger_keys(tmp_path))) == 2


def test_with_project_dir_an_invocation_ingest_dbt_shipped_from_the_tables_ships_once(
        tmp_path, dbt_cloud, dbt_cloud_artifacts, qalita_server):
    import shutil

    # the runs recorded no commit (no CI variables), so this dbt Cloud run names none either
    run = dbt_cloud.add_run(three_step_run(dbt_cloud_artifacts, run_id=70012))
    run.git_sha = None
    db = tmp_path / "warehouse.duckdb"
    shutil.copy(dbt_cloud_artifacts.extra["duckdb"], db)
    env = cloud_env(tmp_path, dbt_cloud, qalita_server, DBT_DUCKDB_PATH=str(db),
                    DBT_TARGET_PATH=str(tmp_path / "no-target"))
    tables = sidecar("ingest", "dbt", "--project-dir", str(REPO), "--profiles-dir", str(REPO),
                     "--project", "quality_compass", env=env, cwd=REPO)
    assert tables.returncode == 0, tables.stdout + tables.stderr
    shipped = len(qalita_server.received.jobs)
    assert shipped >= 3  # seed, build, freshness, the failing build (docs generate tests nothing)
    cloud = ingest(env, "--run-id", str(run.id), "--project-dir", str(REPO), "--profiles-dir",
                   str(REPO))
    assert cloud.returncode == 0, cloud.stdout + cloud.stderr
    assert cloud.stdout.count("already shipped") == 2
    assert len(qalita_server.received.jobs) == shipped
    bad = ingest(env, "--run-id", str(run.id), "--project-dir", str(tmp_path))
    assert bad.returncode == 1 and bad.stderr.startswith("qalita-sidecar: error: --project-dir")


def test_a_failed_run_ships_its_failing_build(tmp_path, dbt_cloud, dbt_cloud_artifacts,
                                              qalita_server):
    run = dbt_cloud.add_run(failed_run(dbt_cloud_artifacts))
    done = ingest(cloud_env(tmp_path, dbt_cloud, qalita_server), "--run-id", str(run.id))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"dbt Cloud run {run.id} (account {dbt_cloud.account_id}, job 42 (Daily build)): " \
           "error" in done.stdout
    [job] = qalita_server.received.jobs.values()
    assert job.status == "failed"  # the build had a test that could not run
    counts = dbt_test_counts(dbt_cloud_artifacts.failing_build)
    metrics = project_metrics(qalita_server)
    assert metrics["tests_failed"] == counts["fail"] and metrics["tests_warned"] == counts["warn"]
    assert metrics["tests_errored"] == counts["error"]
    recs = items(qalita_server, "recommendations")
    [pm25] = [r for r in recs if r["type"] == "Test failed" and "who_pm25_limit" in r["content"]]
    assert pm25["level"] == "high" and "121 failing rows" in pm25["content"]


def test_a_missing_artifact_is_one_line_naming_the_step(tmp_path, dbt_cloud,
                                                         dbt_cloud_artifacts, qalita_server):
    run = dbt_cloud.add_run(three_step_run(dbt_cloud_artifacts, run_id=70003))
    dbt_cloud.hide(run.id, 4, "run_results.json")
    done = ingest(cloud_env(tmp_path, dbt_cloud, qalita_server), "--run-id", str(run.id))
    assert done.returncode == 1, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines == [f"qalita-sidecar: error: dbt Cloud run {run.id} step 4 (`dbt build "
                     "--select tag:airquality`) run_results.json: missing (404 from dbt Cloud), "
                     "so the step cannot be shipped"]
    # the other step is not held back
    assert "1 delivered" in done.stdout
    [job] = qalita_server.received.jobs.values()
    assert job.name.startswith("dbt freshness")


def test_a_failed_step_without_artifacts_is_said_not_an_error(tmp_path, dbt_cloud,
                                                              dbt_cloud_artifacts):
    # dbt stopped before writing run_results.json (a parse error, say)
    run = dbt_cloud.add_run(failed_run(dbt_cloud_artifacts, run_id=70004))
    dbt_cloud.hide(run.id, 4, "run_results.json")
    done = ingest(cloud_env(tmp_path, dbt_cloud), "--run-id", str(run.id))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "failed before writing run_results.json: nothing to ship" in done.stdout


def test_qalita_down_the_steps_wait_in_the_outbox(tmp_path, dbt_cloud, dbt_cloud_artifacts,
                                                  qalita_server):
    run = dbt_cloud.add_run(three_step_run(dbt_cloud_artifacts, run_id=70005))
    env = cloud_env(tmp_path, dbt_cloud, qalita_server, QALITA_DEADLINE="2")
    qalita_server.stop()
    down = ingest(env, "--run-id", str(run.id))
    assert down.returncode == 75, down.stdout + down.stderr
    assert len(pending(tmp_path)) == 2
    assert "qalita-sidecar flush" in down.stdout
    qalita_server.start()
    flushed = sidecar("flush", env=env, cwd=tmp_path)
    assert flushed.returncode == 0, flushed.stdout + flushed.stderr
    assert len(qalita_server.received.jobs) == 2 and pending(tmp_path) == []
    again = ingest(env, "--run-id", str(run.id))
    assert again.returncode == 0 and "nothing new to ship" in again.stdout


def test_dbt_cloud_hiccups_are_retried(tmp_path, dbt_cloud, dbt_cloud_artifacts, qalita_server):
    run = dbt_cloud.add_run(three_step_run(dbt_cloud_artifacts, run_id=70006))
    dbt_cloud.fail(r"/runs/70006/$", 503, times=2)
    dbt_cloud.fail(r"/artifacts/run_results\.json$", 429, retry_after=0)
    done = ingest(cloud_env(tmp_path, dbt_cloud, qalita_server), "--run-id", str(run.id))
    assert done.returncode == 0, done.stdout + done.stderr
    assert [c.status for c in dbt_cloud.calls(r"/runs/70006/$")] == [503, 503, 200]
    assert len(qalita_server.received.jobs) == 2


def test_dbt_cloud_down_is_try_again_later(tmp_path, dbt_cloud, dbt_cloud_artifacts):
    run = dbt_cloud.add_run(three_step_run(dbt_cloud_artifacts, run_id=70007))
    dbt_cloud.fail(r"/runs/70007/", 502, times=1000)
    done = ingest(cloud_env(tmp_path, dbt_cloud), "--run-id", str(run.id), "--deadline", "2")
    assert done.returncode == 75, done.stdout + done.stderr
    [line] = done.stderr.strip().splitlines()
    assert "dbt Cloud answered 502" in line and "--deadline" in line
    assert "run this again later" in line
    assert pending(tmp_path) == []


def test_settings_errors_are_one_line_and_the_token_never_shows(tmp_path, dbt_cloud,
                                                                dbt_cloud_artifacts,
                                                                qalita_server):
    run = dbt_cloud.add_run(three_step_run(dbt_cloud_artifacts, run_id=70008))
    env = cloud_env(tmp_path, dbt_cloud, qalita_server)

    def one_line(done) -> str:
        assert done.returncode == 1, done.stdout + done.stderr
        [line] = done.stderr.strip().splitlines()
        return line

    wrong = {**env, "DBT_CLOUD_API_TOKEN": "dbtc_not-the-token-0000"}
    line = one_line(ingest(wrong, "--run-id", str(run.id)))
    assert "DBT_CLOUD_API_TOKEN was refused" in line and "401" in line
    assert "dbtc_not-the-token-0000" not in line
    no_account = {k: v for k, v in env.items() if k != "DBT_CLOUD_ACCOUNT_ID"}
    assert "--account-id (or DBT_CLOUD_ACCOUNT_ID) is required" in \
        one_line(ingest(no_account, "--run-id", str(run.id)))
    no_token = {k: v for k, v in env.items() if k != "DBT_CLOUD_API_TOKEN"}
    assert "set DBT_CLOUD_API_TOKEN or pass --token-file" in \
        one_line(ingest(no_token, "--run-id", str(run.id)))
    assert "DBT_CLOUD_BASE_URL 'cloud.getdbt.com'" in \
        one_line(ingest({**env, "DBT_CLOUD_BASE_URL": "cloud.getdbt.com"}, "--run-id", "1"))
    assert "run 999 not found in dbt Cloud account" in one_line(ingest(env, "--run-id", "999"))

    # the token from a file works the same, and appears nowhere
    token_file = tmp_path / "token"
    token_file.write_text(dbt_cloud.token + "\n")
    done = ingest(no_token, "--run-id", str(run.id), "--token-file", str(token_file))
    assert done.returncode == 0, done.stdout + done.stderr
    assert dbt_cloud.token not in done.stdout + done.stderr
    written = [p for p in (tmp_path / "qalita").rglob("*") if p.is_file()]
    assert written and all(dbt_cloud.token not in p.read_text() for p in written)


def test_a_step_is_judged_by_its_results_when_its_name_says_nothing(tmp_path, dbt_cloud,
                                                                    dbt_cloud_artifacts):
    arts = dbt_cloud_artifacts
    run = dbt_cloud.add_run(three_step_run(arts, run_id=70009))
    run.steps = [*setup_steps(), dbt_step("sl list metrics", arts.docs),
                 dbt_step("build --select tag:airquality", arts.build)]
    done = ingest(cloud_env(tmp_path, dbt_cloud), "--run-id", str(run.id), "--dry-run")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "step 4 (`dbt sl list metrics`): ran `generate` (args.which): no node results" \
        in done.stdout
    assert "would ship dbt build quality_compass dev" in done.stdout
    assert pending(tmp_path) == []


# --- serve dbt-cloud ------------------------------------------------------------------------------


class Serving:
    """The real `qalita-sidecar serve dbt-cloud` on a free port, its log read as it comes."""

    def __init__(self, env: dict[str, str], *args: str) -> None:
        self.proc = subprocess.Popen(
            [str(BIN / "qalita-sidecar"), "serve", "dbt-cloud", "--port", "0",
             "--retry-interval", "0.5", *args], env=env, cwd=REPO, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True)
        self.lines: queue.Queue[str] = queue.Queue()
        self.log: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        found = wait_until(lambda: self._port(), timeout=30, what="the listening line")
        self.url = f"http://127.0.0.1:{found}/dbt-cloud/webhook"

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))

    def _drain(self) -> list[str]:
        while not self.lines.empty():
            self.log.append(self.lines.get())
        return self.log

    def _port(self) -> str | None:
        if self.proc.poll() is not None:
            raise AssertionError(f"serve exited {self.proc.returncode}: {self._drain()}")
        for line in self._drain():
            m = re.search(r"listening on http://127\.0\.0\.1:(\d+)/dbt-cloud/webhook", line)
            if m:
                return m.group(1)
        return None

    def post(self, body: bytes, signature: str | None) -> requests.Response:
        headers = {"Content-Type": "application/json"}
        if signature is not None:
            headers["Authorization"] = signature
        return requests.post(self.url, data=body, headers=headers, timeout=10)

    def health(self) -> dict:
        return requests.get(self.url.replace("/dbt-cloud/webhook", "/health"), timeout=5).json()

    def stop(self) -> str:
        self.proc.send_signal(signal.SIGTERM)
        assert self.proc.wait(timeout=15) == 0
        time.sleep(0.1)
        return "\n".join(self._drain())


def serve_env(tmp_path: Path, dbt_cloud, qalita_server, **extra: str) -> dict[str, str]:
    return cloud_env(tmp_path, dbt_cloud, qalita_server, DBT_CLOUD_WEBHOOK_SECRET=SECRET,
                     QALITA_DEADLINE="2", **extra)


def test_a_signed_completed_event_is_answered_at_once_and_ships_the_run_once(
        tmp_path, dbt_cloud, dbt_cloud_artifacts, qalita_server):
    run = dbt_cloud.add_run(three_step_run(dbt_cloud_artifacts, run_id=70101))
    body = webhook_body(run, dbt_cloud.account_id)
    dbt_cloud.slow(r"/runs/70101/$", 2.0)  # the run is read after the answer, never before
    env = serve_env(tmp_path, dbt_cloud, qalita_server)
    serving = Serving(env)
    try:
        started = time.monotonic()
        answer = serving.post(body, sign(body, SECRET))
        took = time.monotonic() - started
        assert (answer.status_code, answer.json()) == (200, {"status": "queued",
                                                             "run_id": run.id})
        assert took < 1.5, took
        # the event waits (spooled) until its steps are delivered
        wait_until(lambda: serving.health()["pending"] == 0, timeout=60,
                   what="the run's steps delivered")
        assert len(qalita_server.received.jobs) == 2
        assert sorted(j.name.split()[1] for j in qalita_server.received.jobs.values()) == \
            ["build", "freshness"]
        metrics = project_metrics(qalita_server)
        assert metrics["tests_passed"] == dbt_test_counts(dbt_cloud_artifacts.build)["pass"]
        # dbt Cloud retries: the same event again ships nothing new
        again = serving.post(body, sign(body, SECRET))
        assert (again.status_code, again.json()["status"]) == (200, "already_ingested")
        assert serving.health()["runs_waiting"] == 0
    finally:
        log = serving.stop()
    assert "step 6 (`dbt docs generate --select tag:airquality`): builds the docs" in log
    assert SECRET not in log and dbt_cloud.token not in log
    # after a restart too
    serving = Serving(env)
    try:
        again = serving.post(body, sign(body, SECRET))
        assert again.json()["status"] == "already_ingested"
    finally:
        serving.stop()
    assert len(qalita_server.received.jobs) == 2
    assert len(dbt_cloud.calls(r"/runs/70101/$")) == 1


def test_a_wrong_signature_ships_nothing(tmp_path, dbt_cloud, dbt_cloud_artifacts,
                                         qalita_server):
    run = dbt_cloud.add_run(three_step_run(dbt_cloud_artifacts, run_id=70102))
    body = webhook_body(run, dbt_cloud.account_id)
    serving = Serving(serve_env(tmp_path, dbt_cloud, qalita_server))
    try:
        for signature in (sign(body, "not-the-secret-0000000000"), None, "",
                          sign(body + b" ", SECRET)):
            answer = serving.post(body, signature)
            assert answer.status_code == 401, (signature, answer.text)
        started = webhook_body(run, dbt_cloud.account_id, event_type="job.run.started")
        answer = serving.post(started, sign(started, SECRET))
        assert (answer.status_code, answer.json()["status"]) == (200, "ignored")
        other = webhook_body(run, dbt_cloud.account_id + 1)
        assert serving.post(other, sign(other, SECRET)).status_code == 400
        time.sleep(1.0)  # a sender pass or two
        assert serving.health()["unauthorized"] == 4
    finally:
        serving.stop()
    assert dbt_cloud.requests == []  # nothing was read from dbt Cloud
    assert qalita_server.received.jobs == {}
    assert pending(tmp_path) == [] and ledger_keys(tmp_path) == []
    assert list((tmp_path / "qalita" / "dbt-cloud-events" / "pending").glob("*")) == []


def test_serve_with_qalita_down_keeps_the_run_then_delivers_it(tmp_path, dbt_cloud,
                                                                dbt_cloud_artifacts,
                                                                qalita_server):
    run = dbt_cloud.add_run(failed_run(dbt_cloud_artifacts, run_id=70103))
    body = webhook_body(run, dbt_cloud.account_id)
    qalita_server.stop()
    serving = Serving(serve_env(tmp_path, dbt_cloud, qalita_server))
    try:
        assert serving.post(body, sign(body, SECRET)).status_code == 200
        wait_until(lambda: len(pending(tmp_path)) == 1, timeout=60, what="the build spooled")
        problem = wait_until(lambda: serving.health()["last_problem"], timeout=30,
                             what="the delivery failure in /health")
        assert "QALITA" in problem or "connection" in problem.lower()
        qalita_server.start()
        wait_until(lambda: pending(tmp_path) == [], timeout=60,
                   what="the delivery once QALITA is back")
        [job] = qalita_server.received.jobs.values()
        assert job.status == "failed"
    finally:
        serving.stop()
