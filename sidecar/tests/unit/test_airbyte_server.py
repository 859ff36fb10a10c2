"""`serve airbyte` over real HTTP: Airbyte's webhook in, the contract server out.

In-process servers (a thread serves, the sender thread delivers); the real
`qalita-sidecar serve airbyte` process is in tests/integration/test_airbyte_serve.py.
"""

from __future__ import annotations

import json
import threading

import pytest
import requests
from support.airbyte_events import CONNECTION, SECRET, guide_event, notification
from support.itkit import items, ledger_keys, pending, wait_until

from qalita_sidecar.hosts.airbyte_server import airbyte_service, load_connection_map, make_server
from qalita_sidecar.hosts.webhook import SharedSecret
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

    def __init__(self, tmp_path, qalita_server, default=False, max_body=64 * 1024, settings=True,
                 secret=SECRET, read_timeout=10.0):
        self.config, self.source_id = write_config(tmp_path, qalita_server, default)
        # a short deadline: a delivery to a stopped server gives up (and retries) quickly
        env = {**qalita_server.env(with_ids=False), "QALITA_DEADLINE": "2"} if settings else {}
        self.settings = load_settings(env=env, mapping_file=self.config)
        outbox = Outbox(tmp_path / "qalita" / "outbox")
        self.log: list[str] = []
        self.service = airbyte_service(load_connection_map(self.config),
                                       SharedSecret(secret, "test") if secret else None,
                                       self.settings, outbox,
                                       FileLedger(tmp_path / "qalita" / "ledger.jsonl"),
                                       config_name=str(self.config), retry_interval_s=0.2,
                                       log=self.log.append)
        self.http = make_server(self.service, "127.0.0.1", 0, max_body, read_timeout)
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}"
        self.webhook = f"{self.url}/airbyte/webhook/{secret}" if secret \
            else f"{self.url}/airbyte/webhook"
        self.thread = threading.Thread(target=self.http.serve_forever, daemon=True)
        self.thread.start()
        self.service.start_sender()

    def post(self, body, **kw):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        return requests.post(kw.pop("url", self.webhook), data=data, timeout=10,
                             headers={"Content-Type": "application/json"}, **kw)

    def stop(self):
        self.http.stop(grace_s=2)
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
    assert (job.base_name, job.start_date, job.end_date, job.status) == (
        f"airbyte sync airbyte-{CONNECTION} (job 1234)", "2024-05-23 16:00:00",
        "2024-05-23 16:02:03", "succeeded")
    wait_until(lambda: ledger_keys(tmp_path), what="the ledger row")
    metrics = {(m["scope"]["value"], m["key"]): m["value"] for m in items(qalita_server, "metrics")}
    assert metrics[(f"airbyte-{CONNECTION}", "records_emitted")] == 102934
    assert metrics[("created_at", "data_type")] == "string(date-time)"
    schemas = [(s["key"], s["value"]) for s in items(qalita_server, "schemas")]
    assert ("dataset", "orders") in schemas and ("column", "total_price") in schemas
    assert qalita_server.received.rejected == []
    # the entry goes once the ledger row is written
    wait_until(lambda: pending(tmp_path) == [], what="the outbox to empty")
    wait_until(lambda: app.service.health()["pending"] == 0, what="/health to count none")


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


def test_an_unreadable_ledger_still_spools_the_event(tmp_path, qalita_server, running):
    app = running()
    (tmp_path / "qalita" / "ledger.jsonl").mkdir(parents=True)  # cannot be read as a file
    answer = app.post(notification())
    assert answer.status_code == 202 and len(pending(tmp_path)) == 1
    problem = wait_until(lambda: app.service.health()["last_problem"], what="a failed delivery")
    assert "ledger.jsonl" in problem and "cannot read" in problem
    assert len(pending(tmp_path)) == 1  # kept for the next try


def test_without_the_secret_401_nothing_is_shipped_and_health_counts_it(tmp_path, qalita_server,
                                                                         running):
    app = running()
    hook = f"{app.url}/airbyte/webhook"
    for url in (hook, f"{hook}/wrong-secret-0000000000", f"{hook}?token=wrong-secret-000000",
                f"{hook}/{SECRET}x", f"{hook}/{SECRET[:-1]}"):
        answer = app.post(notification(), url=url)
        assert answer.status_code == 401, url
        assert answer.json() == {"error": "missing or wrong webhook secret"}
    assert pending(tmp_path) == []
    health = requests.get(f"{app.url}/health", timeout=5).json()
    assert health["unauthorized"] == 5 and health["requests"]["unauthorized"] == 5
    # both ways Airbyte's URL may carry it
    assert app.post(notification(), url=f"{hook}?token={SECRET}").status_code == 202
    assert app.post(notification(job_id=7), url=f"{hook}/{SECRET}").status_code == 202
    delivered_jobs(qalita_server, 2)
    assert len(qalita_server.received.jobs) == 2
    logged = "\n".join(app.log)
    assert SECRET not in logged and SECRET[:-1] not in logged
    assert "401 POST /airbyte/webhook/***: missing or wrong secret" in logged
    assert SECRET not in json.dumps(requests.get(f"{app.url}/health", timeout=5).json())


def test_a_forged_event_with_the_real_ids_does_not_block_the_real_one(tmp_path, qalita_server,
                                                                      running):
    app = running()
    forged = notification(job_id=5000, recordsEmitted=1, recordsCommitted=0)
    real = notification(job_id=5000)
    assert app.post(forged).status_code == 202
    delivered_jobs(qalita_server, 1)
    wait_until(lambda: len(ledger_keys(tmp_path)) == 1, what="the forged event's ledger row")
    # the real event for the same connection and job is not "already delivered"
    answer = app.post(real)
    assert answer.status_code == 202 and answer.json()["status"] == "queued"
    delivered_jobs(qalita_server, 2)
    wait_until(lambda: len(ledger_keys(tmp_path)) == 2, what="the real event's ledger row")
    assert any("arrived again with a different body; both are shipped" in line
               for line in app.log)
    emitted = sorted(m["value"] for m in items(qalita_server, "metrics")
                     if m["key"] == "records_emitted")
    assert emitted == [1, 1000]
    # replays of either body, even re-serialised with other key order, are answered 200
    reordered = json.dumps(real, sort_keys=True, indent=2).encode()
    for body in (real, forged, reordered):
        replay = app.post(body)
        assert replay.status_code == 200 and replay.json()["status"] == "already_delivered"
    assert len(qalita_server.received.jobs) == 2


def test_health_shows_no_credentials_of_the_endpoint(tmp_path, qalita_server):
    config, _ = write_config(tmp_path, qalita_server)
    endpoint = qalita_server.url.replace("http://", "http://worker:pa55-word-zz@")
    settings = load_settings(env={"QALITA_WORKER_ENDPOINT": endpoint + "?key=abc123secret",
                                  "QALITA_WORKER_TOKEN": qalita_server.token},
                             mapping_file=config)
    log: list[str] = []
    service = airbyte_service(load_connection_map(config), SharedSecret(SECRET, "test"),
                              settings, Outbox(tmp_path / "outbox"),
                              FileLedger(tmp_path / "ledger.jsonl"), log=log.append)
    http = make_server(service, "127.0.0.1", 0)
    threading.Thread(target=http.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{http.server_address[1]}/health"
        answer = requests.get(url, timeout=5)
        assert answer.status_code == 200
        shown = answer.json()["qalita"]
        assert "pa55-word-zz" not in answer.text and "abc123secret" not in answer.text
        assert qalita_server.token not in answer.text
        assert shown == qalita_server.url.replace("http://", "http://***@") + "?key=***"
        service.log(f"a problem with {endpoint} and {qalita_server.token}")
        assert log[-1] == f"airbyte: a problem with {shown.split('?')[0]} and ***"
    finally:
        http.stop(grace_s=1)


def test_an_event_qalita_refused_is_not_spooled_again(tmp_path, qalita_server, running):
    qalita_server.fail("/api/v2/jobs/create", 422)
    app = running()
    assert app.post(notification()).status_code == 202
    wait_until(lambda: app.service.health()["dead"] == 1, what="the refusal")
    wait_until(lambda: pending(tmp_path) == [], what="the pending entry to move to dead/")
    replay = app.post(notification())
    assert replay.status_code == 200 and replay.json()["status"] == "refused_before"
    assert "dead" in replay.json()["detail"]
    assert pending(tmp_path) == []
    assert app.service.health()["requests"]["refused_before"] == 1
    # another sync still goes through
    assert app.post(notification(job_id=77)).status_code == 202
    wait_until(lambda: finished_jobs_named(qalita_server, "(job 77)"), what="the other sync")


def finished_jobs_named(server, part):
    return [j for j in server.received.jobs.values()
            if part in j.name and j.status in ("succeeded", "failed")]
