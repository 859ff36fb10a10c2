"""`serve airbyte` over real HTTP: Airbyte's webhook in, the contract server out.

In-process servers for the HTTP behaviour (a thread serves, the sender thread delivers), and the
real `qalita-sidecar serve airbyte` process for the command line, SIGTERM and restarts.
"""

from __future__ import annotations

import json
import signal
import subprocess
import threading

import pytest
import requests
from support.airbyte_events import CONNECTION, guide_event, notification
from support.itkit import clean_env, items, ledger_keys, pending, sidecar, wait_until
from testkit import BIN

from qalita_sidecar.hosts.airbyte_server import (
    AirbyteService,
    load_connection_map,
    make_server,
)
from qalita_sidecar.settings import load_settings
from qalita_sidecar.shipping.ledger import FileLedger
from qalita_sidecar.shipping.outbox import Outbox


def write_config(tmp_path, server, default: bool = False):
    sid = server.add_source("shop warehouse")
    ids = {"source_id": sid, "pack_id": server.pack_id, "pack_version_id": server.pack_version_id}
    config = {"connection_map": {CONNECTION: ids}}
    if default:
        config["default"] = ids
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    return path, sid


class Running:
    """An in-process `serve airbyte` on a free port."""

    def __init__(self, tmp_path, qalita_server, default=False, max_body=64 * 1024, settings=True):
        self.config, self.source_id = write_config(tmp_path, qalita_server, default)
        # a short deadline: a delivery to a stopped server gives up (and retries) quickly
        env = {**qalita_server.env(with_ids=False), "QALITA_DEADLINE": "2"} if settings else {}
        self.settings = load_settings(env=env, mapping_file=self.config)
        outbox = Outbox(tmp_path / "qalita" / "outbox")
        self.log: list[str] = []
        self.service = AirbyteService(load_connection_map(self.config), self.settings, outbox,
                                      FileLedger(tmp_path / "qalita" / "ledger.jsonl"),
                                      config_name=str(self.config), retry_interval_s=0.2,
                                      log=self.log.append)
        self.http = make_server(self.service, "127.0.0.1", 0, max_body)
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}"
        self.thread = threading.Thread(target=self.http.serve_forever, daemon=True)
        self.thread.start()
        self.service.start_sender()

    def post(self, body, **kw):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        return requests.post(f"{self.url}/airbyte/webhook", data=data, timeout=10,
                             headers={"Content-Type": "application/json"}, **kw)

    def stop(self):
        self.http.shutdown()
        self.http.server_close()
        self.service.stop_sender(timeout=30)


@pytest.fixture
def running(tmp_path, qalita_server):
    servers = []

    def start(**kw):
        servers.append(Running(tmp_path, qalita_server, **kw))
        return servers[-1]

    yield start
    for s in servers:
        s.stop()


def delivered_jobs(server, n=1):
    return wait_until(lambda: len([j for j in server.received.jobs.values()
                                   if j.status in ("succeeded", "failed")]) >= n and
                      list(server.received.jobs.values()), what=f"{n} finished job(s)")


def test_a_sync_is_delivered_with_the_mapped_ids(tmp_path, qalita_server, running):
    app = running()
    answer = app.post(guide_event())
    assert answer.status_code == 202 and answer.json()["status"] == "queued"
    [job] = delivered_jobs(qalita_server)
    assert (job.source_id, job.pack_id, job.pack_version_id) == \
        (app.source_id, qalita_server.pack_id, qalita_server.pack_version_id)
    assert (job.name, job.start_date, job.end_date, job.status) == (
        f"airbyte sync airbyte-{CONNECTION} (job 1234)", "2024-05-23 16:00:00",
        "2024-05-23 16:02:03", "succeeded")
    wait_until(lambda: ledger_keys(tmp_path), what="the ledger row")
    metrics = {(m["scope"]["value"], m["key"]): m["value"] for m in items(qalita_server, "metrics")}
    assert metrics[(f"airbyte-{CONNECTION}", "records_emitted")] == 102934
    assert metrics[("created_at", "data_type")] == "string(date-time)"
    schemas = [(s["key"], s["value"]) for s in items(qalita_server, "schemas")]
    assert ("dataset", "orders") in schemas and ("column", "total_price") in schemas
    assert qalita_server.received.rejected == []
    assert pending(tmp_path) == []
    assert app.service.health()["pending"] == 0


def test_a_replayed_event_is_not_shipped_twice(tmp_path, qalita_server, running):
    app = running()
    assert app.post(notification()).status_code == 202
    delivered_jobs(qalita_server)
    wait_until(lambda: ledger_keys(tmp_path), what="the ledger row")
    replay = app.post(notification())
    assert replay.status_code == 200 and replay.json()["status"] == "already_delivered"
    assert app.post(notification(job_id=4243)).status_code == 202  # a new sync is
    delivered_jobs(qalita_server, 2)
    wait_until(lambda: len(ledger_keys(tmp_path)) == 2, what="two ledger rows")
    assert len(qalita_server.received.jobs) == 2
    assert len(qalita_server.received.uploads["metrics"]) == 2


def test_bad_input_gets_400_and_loses_nothing(tmp_path, qalita_server, running):
    app = running()
    not_json = app.post(b"sync done!")
    assert not_json.status_code == 400 and "not JSON" in not_json.json()["error"]
    unknown = app.post(notification(connection="no-such-connection"))
    assert unknown.status_code == 400
    assert unknown.json()["error"] == (f"connection no-such-connection is not in {app.config}'s "
                                       "connection_map and there is no default")
    no_job = app.post({"connection": {"connectionId": CONNECTION}})
    assert no_job.status_code == 400 and "no job id" in no_job.json()["error"]
    assert pending(tmp_path) == []
    # the good event after them still arrives
    assert app.post(notification()).status_code == 202
    delivered_jobs(qalita_server)
    assert len(qalita_server.received.jobs) == 1


def test_unknown_connection_goes_to_the_default(tmp_path, qalita_server, running):
    app = running(default=True)
    assert app.post(notification(connection="elsewhere")).status_code == 202
    [job] = delivered_jobs(qalita_server)
    assert job.source_id == app.source_id


def test_size_limit_health_and_unknown_paths(tmp_path, qalita_server, running):
    app = running(max_body=2048)
    big = notification(errorMessage="x" * 4096)
    too_big = app.post(big)
    assert too_big.status_code == 413 and "2048 bytes limit" in too_big.json()["error"]
    health = requests.get(f"{app.url}/health", timeout=5)
    assert health.status_code == 200 and health.json()["status"] == "ok"
    assert health.json()["pending"] == 0
    assert requests.get(f"{app.url}/nope", timeout=5).status_code == 404
    assert requests.post(f"{app.url}/airbyte", data=b"{}", timeout=5).status_code == 404
    assert pending(tmp_path) == [] and qalita_server.received.jobs == {}


def test_qalita_down_the_event_waits_then_is_delivered_once(tmp_path, qalita_server, running):
    qalita_server.stop()
    app = running()
    assert app.post(notification(success=False)).status_code == 202
    assert len(pending(tmp_path)) == 1
    wait_until(lambda: app.service.health()["last_problem"], what="a failed delivery")
    # Airbyte replays while QALITA is still down: still one entry
    assert app.post(notification(success=False)).status_code == 202
    assert len(pending(tmp_path)) == 1
    assert requests.get(f"{app.url}/health", timeout=5).json()["pending"] == 1
    qalita_server.start()
    [job] = delivered_jobs(qalita_server)
    assert job.status == "failed"
    wait_until(lambda: pending(tmp_path) == [], what="the outbox to empty")
    [rec] = items(qalita_server, "recommendations")
    assert rec["level"] == "high" and "HTTP 401 from the API" in rec["content"]
    assert len(qalita_server.received.jobs) == 1


def _start_cli(tmp_path, env, *extra):
    proc = subprocess.Popen([str(BIN / "qalita-sidecar"), "serve", "airbyte", "--port", "0",
                             "--retry-interval", "0.2", *extra], env=env, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = []
    for line in proc.stderr:
        lines.append(line)
        if "listening on " in line:
            return proc, line.split("listening on ")[1].strip(), lines
    raise AssertionError(f"serve airbyte did not start: {''.join(lines)}")


def test_cli_sigterm_without_qalita_spools_then_flush_delivers(tmp_path, qalita_server):
    config, _sid = write_config(tmp_path, qalita_server)
    env = clean_env(tmp_path)  # no QALITA endpoint: events wait in the outbox
    proc, url, _ = _start_cli(tmp_path, env, "--config", str(config))
    try:
        assert url.endswith("/airbyte/webhook")
        answer = requests.post(url, json=notification(), timeout=10)
        assert answer.status_code == 202
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        rest = proc.stderr.read()
        assert "SIGTERM received" in rest and "1 event(s) wait in" in rest
    finally:
        if proc.poll() is None:
            proc.kill()
    assert len(pending(tmp_path)) == 1

    flushed = sidecar("flush", env={**env, **qalita_server.env(with_ids=False),
                                    "QALITA_MAPPING_FILE": str(config)}, cwd=tmp_path)
    assert flushed.returncode == 0, flushed.stdout + flushed.stderr
    [job] = qalita_server.received.jobs.values()
    assert job.status == "succeeded" and pending(tmp_path) == []


def test_cli_restart_replays_what_waited_and_refuses_bad_config(tmp_path, qalita_server):
    config, _sid = write_config(tmp_path, qalita_server)
    env = clean_env(tmp_path)
    proc, url, _ = _start_cli(tmp_path, env, "--config", str(config))
    try:
        assert requests.post(url, json=guide_event(), timeout=10).status_code == 202
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    # restarted with QALITA configured: the waiting event goes out without a new webhook call
    proc, url, _ = _start_cli(tmp_path, {**env, **qalita_server.env(with_ids=False),
                                         "QALITA_DEADLINE": "5"},
                              "--config", str(config))
    try:
        delivered_jobs(qalita_server)
        wait_until(lambda: pending(tmp_path) == [], what="the outbox to empty")
        replay = requests.post(url, json=guide_event(), timeout=10)
        assert replay.status_code == 200 and replay.json()["status"] == "already_delivered"
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    assert len(qalita_server.received.jobs) == 1
    assert qalita_server.token not in proc.stderr.read()

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


def test_an_unreadable_ledger_still_spools_the_event(tmp_path, qalita_server, running):
    app = running()
    (tmp_path / "qalita" / "ledger.jsonl").mkdir(parents=True)  # cannot be read as a file
    answer = app.post(notification())
    assert answer.status_code == 202 and len(pending(tmp_path)) == 1
    problem = wait_until(lambda: app.service.health()["last_problem"], what="a failed delivery")
    assert "ledger.jsonl" in problem and "cannot read" in problem
    assert len(pending(tmp_path)) == 1  # kept for the next try
