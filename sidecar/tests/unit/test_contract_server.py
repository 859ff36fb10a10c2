"""The contract server itself: it must reject what QALITA would reject, or client tests prove nothing."""

from __future__ import annotations

import json
import socket

import pytest
import requests
from contract_server import http_date

SCOPE = {"perimeter": "dataset", "value": "orders",
         "parent_scope": {"perimeter": "database", "value": "shop"}}


def _auth(server) -> dict[str, str]:
    return {"Authorization": f"Bearer {server.token}"}


def _upload(server, kind, items, *, key="k1", ids=None, as_form=False, token=None):
    ids = ids or {"source_id": server.add_source("shop"), "pack_id": server.pack_id,
                  "pack_version_id": server.pack_version_id}
    headers = {"Authorization": f"Bearer {token or server.token}", "Idempotency-Key": key}
    files = {"file": (f"{kind}.json", json.dumps(items), "application/json")}
    return requests.post(f"{server.url}/api/v1/{kind}/upload", headers=headers, files=files,
                         params=None if as_form else ids, data=ids if as_form else None, timeout=5)


def test_every_call_needs_the_bearer_token(qalita_server):
    s = qalita_server
    assert requests.get(f"{s.url}/api/v1/version", timeout=5).status_code == 401
    bad = {"Authorization": "Bearer nope"}
    assert requests.get(f"{s.url}/api/v2/sources", headers=bad, timeout=5).status_code == 401
    ok = requests.get(f"{s.url}/api/v1/version", headers=_auth(s), timeout=5)
    assert ok.status_code == 200 and "version" in ok.json()


def test_signin_with_form_fields(qalita_server):
    s = qalita_server
    r = requests.post(f"{s.url}/api/v1/auth/signin",
                      data={"username": s.username, "password": s.password}, timeout=5)
    assert r.json()["access_token"] == s.token
    r = requests.post(f"{s.url}/api/v1/auth/signin",
                      data={"username": s.username, "password": "wrong"}, timeout=5)
    assert r.status_code == 401


def test_sources_204_when_empty_then_listed_after_publish(qalita_server):
    s = qalita_server
    assert requests.get(f"{s.url}/api/v2/sources", headers=_auth(s), timeout=5).status_code == 204
    r = requests.post(f"{s.url}/api/v1/sources/publish", headers=_auth(s), timeout=5,
                      json={"name": "shop", "type": "database", "description": "",
                            "reference": False, "sensitive": False, "visibility": "private"})
    assert r.status_code == 200
    listed = requests.get(f"{s.url}/api/v2/sources", headers=_auth(s), timeout=5).json()
    assert [(x["id"], x["name"]) for x in listed] == [(r.json()["id"], "shop")]


def test_job_lifecycle_and_the_405_path(qalita_server):
    s = qalita_server
    sid = s.add_source("shop")
    body = {"name": "dbt build", "source_id": sid, "pack_id": s.pack_id,
            "pack_version_id": s.pack_version_id, "start_date": "2026-01-02 03:04:05",
            "status": "running"}
    assert requests.post(f"{s.url}/api/v2/jobs", json=body, headers=_auth(s), timeout=5).status_code == 405
    r = requests.post(f"{s.url}/api/v2/jobs/create", json=body, headers=_auth(s), timeout=5)
    assert r.status_code == 201
    jid = r.json()["id"]
    r = requests.put(f"{s.url}/api/v2/jobs/{jid}", headers=_auth(s), timeout=5,
                     json={"end_date": "2026-01-02 03:05:00", "status": "succeeded", "logs_id": None})
    assert r.status_code == 200
    job = s.received.jobs[jid]
    assert job.statuses == ["running", "succeeded"] and job.end_date == "2026-01-02 03:05:00"
    bad = dict(body, start_date="2026-01-02T03:04:05Z")
    assert requests.post(f"{s.url}/api/v2/jobs/create", json=bad, headers=_auth(s), timeout=5).status_code == 422
    unknown = dict(body, pack_version_id=999)
    assert requests.post(f"{s.url}/api/v2/jobs/create", json=unknown, headers=_auth(s), timeout=5).status_code == 404
    assert requests.put(f"{s.url}/api/v2/jobs/999999", json={"status": "failed"}, headers=_auth(s), timeout=5).status_code == 404


def test_uploads_validate_shape_and_conflict_on_repeat(qalita_server):
    s = qalita_server
    metrics = [{"key": "score", "value": "0.92", "scope": SCOPE}]
    assert _upload(s, "metrics", metrics).status_code == 200
    sid = s.received.uploads["metrics"][0].source_id
    ids = {"source_id": sid, "pack_id": s.pack_id, "pack_version_id": s.pack_version_id}
    assert _upload(s, "metrics", metrics, ids=ids).status_code == 409
    assert _upload(s, "metrics", metrics, ids=ids, key="k2", as_form=True).status_code == 200
    assert [u.ids_in for u in s.received.uploads["metrics"]] == ["query", "form"]
    assert _upload(s, "metrics", [{"key": "score", "value": 0.9, "scope": SCOPE}], key="k3").status_code == 422
    assert _upload(s, "metrics", {"key": "x"}, key="k4").status_code == 422
    rec = [{"content": "x", "type": "Checks Failed", "scope": SCOPE, "level": "severe"}]
    assert _upload(s, "recommendations", rec).status_code == 422
    assert _upload(s, "schemas", [{"key": "dataset", "value": "orders", "scope": SCOPE}]).status_code == 200
    unknown = {"source_id": 999, "pack_id": s.pack_id, "pack_version_id": s.pack_version_id}
    assert _upload(s, "schemas", [], ids=unknown, key="k5").status_code == 404
    assert len(s.received.uploads["metrics"]) == 2 and len(s.received.conflicts) == 1


def test_faults_then_normal_service(qalita_server):
    s = qalita_server
    s.fail("/api/v1/version", 503)
    s.fail("/api/v1/version", 429, retry_after=http_date(2))
    url = f"{s.url}/api/v1/version"
    assert requests.get(url, headers=_auth(s), timeout=5).status_code == 503
    r = requests.get(url, headers=_auth(s), timeout=5)
    assert r.status_code == 429 and r.headers["Retry-After"].endswith("GMT")
    assert requests.get(url, headers=_auth(s), timeout=5).status_code == 200
    s.fail("/api/v1/version", delay_s=0.5)
    with pytest.raises(requests.Timeout):
        requests.get(url, headers=_auth(s), timeout=0.1)


def test_stop_refuses_connections_and_restart_keeps_port_and_state(qalita_server):
    s = qalita_server
    port, sid = s.port, s.add_source("shop")
    s.stop()
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{s.url}/api/v1/version", headers=_auth(s), timeout=2)
    s.start()
    assert s.port == port and sid in s.sources
    assert requests.get(f"{s.url}/api/v1/version", headers=_auth(s), timeout=5).status_code == 200
    with socket.create_connection(("127.0.0.1", port), timeout=2):
        pass
