"""The real `qalita-sidecar serve airbyte` process on loopback, posted to the way Airbyte does and
the way an attacker or a bad network would: the secret, bursts, idle and trickling connections,
SIGTERM, restarts, and what it shows."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from support.airbyte_events import CONNECTION, SECRET, guide_event, notification
from support.itkit import clean_env, ledger_keys, pending, sidecar, wait_until
from testkit import BIN

SECRET_ENV = "QALITA_AIRBYTE_WEBHOOK_SECRET"


def write_config(tmp_path, server):
    sid = server.add_source("shop warehouse")
    ids = {"source_id": sid, "pack_id": server.pack_id, "pack_version_id": server.pack_version_id}
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"connection_map": {CONNECTION: ids}}))
    return path


class Serve:
    """`serve airbyte` as a subprocess; its stderr is read all along (a full pipe would block it)."""

    def __init__(self, tmp_path, env, *args):
        self.proc = subprocess.Popen(
            [str(BIN / "qalita-sidecar"), "serve", "airbyte", "--port", "0",
             "--retry-interval", "0.2", *args],
            env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self._listening = threading.Event()
        self.base = ""
        threading.Thread(target=self._read, daemon=True).start()
        if not self._listening.wait(20):
            self.proc.kill()
            raise AssertionError(f"serve airbyte did not start: {self.stderr}")

    def _read(self):
        for line in self.proc.stderr:
            self.lines.append(line)
            if "listening on " in line:
                url = line.split("listening on ")[1].strip()
                self.base = url.removesuffix("/airbyte/webhook")
                self._listening.set()

    @property
    def stderr(self) -> str:
        return "".join(self.lines)

    @property
    def port(self) -> int:
        return int(self.base.rsplit(":", 1)[1])

    @property
    def hook(self) -> str:
        return f"{self.base}/airbyte/webhook/{SECRET}"

    def health(self):
        return requests.get(f"{self.base}/health", timeout=10).json()

    def stop(self, timeout: float = 10) -> float:
        """SIGTERM; the seconds it took to exit."""
        began = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=timeout)
        took = time.monotonic() - began
        time.sleep(0.1)  # the reader thread takes the last lines
        return took

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def serve(tmp_path):
    started: list[Serve] = []

    def start(env, *args):
        started.append(Serve(tmp_path, env, *args))
        return started[-1]

    yield start
    for s in started:
        s.kill()
    for s in started:  # whatever the clients did, the receiver wrote lines, never a traceback
        assert "Traceback" not in s.stderr, s.stderr[-3000:]


def finished_jobs(server):
    return [j for j in server.received.jobs.values() if j.status in ("succeeded", "failed")]


# -- the secret ----------------------------------------------------------------------------------
def test_without_a_secret_it_refuses_to_start(tmp_path, qalita_server):
    config = write_config(tmp_path, qalita_server)
    env = clean_env(tmp_path)
    refused = sidecar("serve", "airbyte", "--config", str(config), env=env, cwd=tmp_path,
                      timeout=30)
    assert refused.returncode == 1
    assert refused.stderr.strip() == (
        f"qalita-sidecar: error: a webhook secret is required: --secret-file or {SECRET_ENV} "
        "(or --insecure-no-auth, on a loopback host only)")
    exposed = sidecar("serve", "airbyte", "--config", str(config), "--insecure-no-auth",
                      "--host", "0.0.0.0", env=env, cwd=tmp_path, timeout=30)
    assert exposed.returncode == 1
    assert exposed.stderr.strip() == (
        "qalita-sidecar: error: --insecure-no-auth is refused on --host 0.0.0.0: only a loopback "
        f"host may serve without a secret (set --secret-file or {SECRET_ENV})")
    (tmp_path / "empty").write_text("\n")
    empty = sidecar("serve", "airbyte", "--config", str(config), "--secret-file",
                    str(tmp_path / "empty"), env=env, cwd=tmp_path, timeout=30)
    assert empty.returncode == 1 and empty.stderr.strip() == (
        f"qalita-sidecar: error: --secret-file {tmp_path / 'empty'}: the file is empty")
    weak = sidecar("serve", "airbyte", "--config", str(config),
                   env={**env, SECRET_ENV: "hunter2"}, cwd=tmp_path, timeout=30)
    assert weak.returncode == 1 and len(weak.stderr.strip().splitlines()) == 1
    assert "shorter than 16 characters" in weak.stderr and "hunter2" not in weak.stderr


def test_insecure_on_loopback_serves_and_says_so(tmp_path, qalita_server, serve):
    config = write_config(tmp_path, qalita_server)
    app = serve(clean_env(tmp_path), "--config", str(config), "--insecure-no-auth")
    assert "WARNING: no webhook secret (--insecure-no-auth)" in app.stderr
    answer = requests.post(f"{app.base}/airbyte/webhook", json=notification(), timeout=10)
    assert answer.status_code == 202
    assert app.stop() < 5
    if socket.has_ipv6:  # the IPv6 loopback is a loopback too
        app = serve(clean_env(tmp_path), "--config", str(config), "--insecure-no-auth",
                    "--host", "::1")
        answer = requests.post(f"http://[::1]:{app.port}/airbyte/webhook", timeout=10,
                               json=notification(job_id=99))
        assert answer.status_code == 202
        assert app.stop() < 5


def test_a_post_without_the_secret_gets_401_and_ships_nothing(tmp_path, qalita_server, serve):
    config = write_config(tmp_path, qalita_server)
    secret_file = tmp_path / "secret"
    secret_file.write_text(SECRET + "\n")
    env = {**clean_env(tmp_path), **qalita_server.env(with_ids=False), "QALITA_DEADLINE": "5"}
    app = serve(env, "--config", str(config), "--secret-file", str(secret_file))
    for url in (f"{app.base}/airbyte/webhook", f"{app.base}/airbyte/webhook/not-the-secret-000",
                f"{app.base}/airbyte/webhook?token={SECRET[:-2]}"):
        answer = requests.post(url, json=notification(), timeout=10)
        assert answer.status_code == 401 and answer.json() == {
            "error": "missing or wrong webhook secret"}
    time.sleep(0.5)  # the sender's turn: nothing may arrive
    assert pending(tmp_path) == [] and qalita_server.received.jobs == {}
    assert app.health()["unauthorized"] == 3
    assert requests.post(f"{app.base}/airbyte/webhook?token={SECRET}", json=notification(),
                         timeout=10).status_code == 202
    wait_until(lambda: finished_jobs(qalita_server), what="the delivery")
    health = requests.get(f"{app.base}/health", timeout=10).text
    assert app.stop() < 5
    for shown in (app.stderr, health):
        assert SECRET not in shown and SECRET[:-2] not in shown
        assert qalita_server.token not in shown
    assert f"secret from --secret-file {secret_file}" in app.stderr


# -- robustness ----------------------------------------------------------------------------------
def test_500_concurrent_posts_each_answered_each_sync_delivered_once(tmp_path, qalita_server,
                                                                     serve):
    config = write_config(tmp_path, qalita_server)
    env = {**clean_env(tmp_path), **qalita_server.env(with_ids=False), SECRET_ENV: SECRET,
           "QALITA_DEADLINE": "20"}
    app = serve(env, "--config", str(config))
    # 125 syncs, each posted 4 times at once (Airbyte's retries racing the first try); the one
    # sender then delivers them in about 10 s (4 fsyncs and 6 requests each)
    syncs = 125
    bodies = [notification(job_id=10_000 + i % syncs, success=(i % syncs) % 7 != 0)
              for i in range(500)]
    start = threading.Barrier(500 + 1)
    health_codes: list[int] = []
    latencies: list[float] = []
    began = 0.0

    def post(body):
        start.wait()
        nonlocal began
        began = began or time.monotonic()
        sent = time.monotonic()
        try:
            answer = requests.post(app.hook, json=body, timeout=60)
            latencies.append(time.monotonic() - sent)
            return answer.status_code, answer.json().get("status")
        except requests.RequestException as exc:
            return "lost", type(exc).__name__

    def poll_health():
        start.wait()
        for _ in range(40):
            health_codes.append(requests.get(f"{app.base}/health", timeout=30).status_code)

    with ThreadPoolExecutor(max_workers=501) as pool:
        watcher = pool.submit(poll_health)
        futures = [pool.submit(post, body) for body in bodies]
        answers = [f.result() for f in futures]
        watcher.result()
    answered = time.monotonic()
    print(f"500 posts answered in {answered - began:.1f}s, the slowest in {max(latencies):.1f}s")
    assert [a for a in answers if a[0] not in (200, 202)] == []
    assert set(health_codes) == {200}
    # none left waiting for a SYN retry (1 s, 3 s, ...) as a short backlog would
    assert max(latencies) < 10
    jobs = wait_until(lambda: len(finished_jobs(qalita_server)) >= syncs and
                      finished_jobs(qalita_server), timeout=60, what=f"{syncs} deliveries")
    wait_until(lambda: pending(tmp_path) == [], timeout=20, what="the outbox to empty")
    time.sleep(0.5)  # a duplicate would arrive now
    # the job name ends in the start of the shipment key: a sync shipped twice under two keys
    # would show as the same name before it
    names = sorted(re.sub(r" \[[0-9a-f]{12}\]$", "", j.name)
                   for j in qalita_server.received.jobs.values())
    assert len(names) == len(set(names)) == syncs
    assert len(jobs) == syncs and len(ledger_keys(tmp_path)) == syncs
    wait_until(lambda: app.health()["pending"] == 0, what="/health to count none")
    print(f"500 posts answered, {syncs} syncs delivered {time.monotonic() - answered:.1f}s later")
    assert app.stop() < 5


def test_idle_and_trickling_connections_are_dropped(tmp_path, qalita_server, serve):
    config = write_config(tmp_path, qalita_server)
    app = serve({**clean_env(tmp_path), SECRET_ENV: SECRET}, "--config", str(config),
                "--read-timeout", "1")
    idle = socket.create_connection(("127.0.0.1", app.port))
    slow = socket.create_connection(("127.0.0.1", app.port))
    began = time.monotonic()
    request = (f"POST /airbyte/webhook/{SECRET} HTTP/1.1\r\nHost: x\r\n"
               "Content-Type: application/json\r\n").encode()
    dropped_after = None
    try:
        for i in range(len(request)):  # a byte every 0.2 s: each read is quick, the whole is not
            slow.sendall(request[i:i + 1])
            time.sleep(0.2)
            if time.monotonic() - began > 8:
                break
    except OSError:  # reset by the server
        dropped_after = time.monotonic() - began
    if dropped_after is None:
        slow.settimeout(5)
        assert slow.recv(100) == b""
        dropped_after = time.monotonic() - began
    print(f"a trickling client dropped after {dropped_after:.1f}s (--read-timeout 1)")
    assert dropped_after < 3
    idle.settimeout(5)
    assert idle.recv(100) == b""  # closed by the server, with no answer
    assert time.monotonic() - began < 4
    # a half-sent body is dropped the same way, and nothing is spooled
    body = json.dumps(notification()).encode()
    half = socket.create_connection(("127.0.0.1", app.port))
    half.sendall(f"POST /airbyte/webhook/{SECRET} HTTP/1.1\r\nHost: x\r\nContent-Length: "
                 f"{len(body)}\r\n\r\n".encode() + body[:20])
    half.settimeout(5)
    assert half.recv(100) == b""
    assert pending(tmp_path) == []
    # still serving
    assert requests.post(app.hook, json=notification(), timeout=10).status_code == 202
    assert app.stop() < 5


def test_sigterm_exits_in_seconds_with_idle_connections_open(tmp_path, qalita_server, serve):
    config = write_config(tmp_path, qalita_server)
    # a long read timeout: the stop itself must drop them
    app = serve({**clean_env(tmp_path), SECRET_ENV: SECRET}, "--config", str(config),
                "--read-timeout", "120")
    idle = [socket.create_connection(("127.0.0.1", app.port)) for _ in range(20)]
    session = requests.Session()  # a kept-alive connection after one request
    assert session.post(app.hook, json=notification(), timeout=10).status_code == 202
    partial = socket.create_connection(("127.0.0.1", app.port))
    partial.sendall(b"POST /airbyte/webhook HTTP/1.1\r\nHost: x\r\n")
    time.sleep(0.3)
    took = app.stop()
    print(f"SIGTERM with 22 connections open: exited in {took:.2f}s")
    assert took < 5, f"SIGTERM took {took:.1f}s"
    assert app.proc.returncode == 0
    assert "1 event(s) wait in" in app.stderr
    assert len(pending(tmp_path)) == 1
    for s in [*idle, partial]:
        s.close()


def test_sigterm_during_a_slow_delivery_exits_in_seconds_and_the_job_is_finished_later(
        tmp_path, qalita_server, serve):
    config = write_config(tmp_path, qalita_server)
    env = {**clean_env(tmp_path), **qalita_server.env(with_ids=False), SECRET_ENV: SECRET,
           "QALITA_DEADLINE": "60"}
    qalita_server.fail("/api/v1/metrics/upload", None, delay_s=20)  # served, answered late
    app = serve(env, "--config", str(config))
    assert requests.post(app.hook, json=notification(), timeout=10).status_code == 202
    wait_until(lambda: qalita_server.received.uploads["metrics"], what="the slow upload")
    took = app.stop()
    print(f"SIGTERM during a slow upload: exited in {took:.2f}s")
    assert took < 6, f"SIGTERM took {took:.1f}s"
    assert app.proc.returncode == 0
    # the entry waits, with the job id noted beside it
    assert sorted(p.name.endswith(".ids.json") for p in pending(tmp_path)) == [False, True]
    [job] = qalita_server.received.jobs.values()
    assert job.status == "running"
    # the next start finishes that job (its id was noted), it does not open a second one
    app = serve(env, "--config", str(config))
    wait_until(lambda: finished_jobs(qalita_server), what="the job to be finished")
    assert list(qalita_server.received.jobs) == [job.id]
    wait_until(lambda: pending(tmp_path) == [], what="the outbox to empty")
    app.stop()


def test_body_bounds_and_health_hide_the_endpoints_credentials(tmp_path, qalita_server, serve):
    config = write_config(tmp_path, qalita_server)
    endpoint = qalita_server.url.replace("http://", "http://worker:pa55-word-qq@")
    env = {**clean_env(tmp_path), **qalita_server.env(with_ids=False), SECRET_ENV: SECRET,
           "QALITA_WORKER_ENDPOINT": endpoint, "QALITA_DEADLINE": "2"}
    app = serve(env, "--config", str(config), "--max-body-kb", "2")
    too_big = requests.post(app.hook, data=b"{" + b" " * 4096 + b"}", timeout=10)
    assert too_big.status_code == 413
    raw = socket.create_connection(("127.0.0.1", app.port))
    raw.sendall(f"POST /airbyte/webhook/{SECRET} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    raw.settimeout(5)
    assert raw.recv(100).startswith(b"HTTP/1.1 411 ")
    not_json = requests.post(app.hook, data=b"sync done", timeout=10)
    assert not_json.status_code == 400
    health = requests.get(f"{app.base}/health", timeout=10)
    assert health.status_code == 200
    assert health.json()["qalita"] == qalita_server.url.replace("http://", "http://***@")
    assert health.json()["requests"]["rejected"] == 3
    app.stop()
    assert "pa55-word-qq" not in health.text and "pa55-word-qq" not in app.stderr


# -- restarts ------------------------------------------------------------------------------------
def test_sigterm_without_qalita_spools_then_flush_delivers(tmp_path, qalita_server, serve):
    config = write_config(tmp_path, qalita_server)
    env = {**clean_env(tmp_path), SECRET_ENV: SECRET}  # no QALITA endpoint: events wait
    app = serve(env, "--config", str(config))
    assert requests.post(app.hook, json=notification(), timeout=10).status_code == 202
    app.stop()
    assert app.proc.returncode == 0
    assert "SIGTERM received" in app.stderr and "1 event(s) wait in" in app.stderr
    assert len(pending(tmp_path)) == 1
    flushed = sidecar("flush", env={**env, **qalita_server.env(with_ids=False),
                                    "QALITA_MAPPING_FILE": str(config)}, cwd=tmp_path)
    assert flushed.returncode == 0, flushed.stdout + flushed.stderr
    [job] = qalita_server.received.jobs.values()
    assert job.status == "succeeded" and pending(tmp_path) == []


def test_restart_replays_what_waited_and_refuses_bad_config(tmp_path, qalita_server, serve):
    config = write_config(tmp_path, qalita_server)
    env = {**clean_env(tmp_path), SECRET_ENV: SECRET}
    app = serve(env, "--config", str(config))
    assert requests.post(app.hook, json=guide_event(), timeout=10).status_code == 202
    app.stop()
    # restarted with QALITA configured: the waiting event goes out without a new webhook call
    app = serve({**env, **qalita_server.env(with_ids=False), "QALITA_DEADLINE": "5"},
                "--config", str(config))
    wait_until(lambda: finished_jobs(qalita_server), what="the delivery")
    wait_until(lambda: pending(tmp_path) == [], what="the outbox to empty")
    replay = requests.post(app.hook, json=guide_event(), timeout=10)
    assert replay.status_code == 200 and replay.json()["status"] == "already_delivered"
    app.stop()
    assert app.proc.returncode == 0
    assert len(qalita_server.received.jobs) == 1
    assert qalita_server.token not in app.stderr

    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    refused = sidecar("serve", "airbyte", "--config", str(bad), env=env, cwd=tmp_path)
    assert refused.returncode == 1
    assert refused.stderr.strip() == (f"qalita-sidecar: error: --config {bad}: not valid JSON "
                                      "(Expecting property name enclosed in double quotes: "
                                      "line 1 column 2 (char 1))")
    missing = sidecar("serve", "airbyte", env=env, cwd=tmp_path)
    assert missing.returncode == 1 and "--config (or QALITA_MAPPING_FILE) is required" in \
        missing.stderr
