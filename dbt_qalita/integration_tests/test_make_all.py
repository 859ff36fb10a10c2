"""Acceptance on the repository's own commands: `make all`, then `make ingest` and `make flush`.

One `make all` (the slowest step) serves every check, so they live in one test, in order.
"""

from __future__ import annotations

import json
import subprocess

from testkit import REPO, base_env, make_project


def make(target: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["make", target], cwd=REPO, env=env, capture_output=True, text=True)


def test_make_all_then_make_ingest_ships_each_invocation_exactly_once(tmp_path, qalita_server):
    env = {**base_env(tmp_path), "QALITA_OUTBOX_DIR": str(tmp_path / "outbox")}
    proc = make("all", env)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]

    # The results table holds one row per node result of the build, raw statuses as dbt's.
    run_results = json.loads((tmp_path / "target" / "run_results.json").read_text())
    assert run_results["args"]["which"] == "build"
    inv_id = run_results["metadata"]["invocation_id"]
    expected = sorted((r["unique_id"], r["status"]) for r in run_results["results"]
                      if not r["unique_id"].startswith("operation."))
    built = {uid for uid, _ in expected}
    # the whole project: air quality and Quality Compass, every test green
    assert {"model.quality_compass.airquality_metrics", "model.quality_compass.fct_signals"} <= built
    assert {status for _, status in expected} <= {"success", "pass", "no-op"}
    warehouse = make_project(tmp_path, "dev")
    stored = warehouse.query("select unique_id, status from main_qalita.qalita_results "
                             f"where invocation_id = '{inv_id}' order by unique_id")
    assert stored == expected
    (invocations,) = warehouse.query("select count(*) from main_qalita.qalita_invocations")[0]
    assert invocations == 2  # `make all` runs dbt seed, then dbt build

    # make ingest: one job per invocation, its metrics, schemas and log; a green build has nothing
    # to recommend, so no recommendations file is uploaded (never an empty one).
    ingest_env = {**env, **qalita_server.env()}
    proc = make("ingest", ingest_env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    received = qalita_server.received
    assert received.rejected == []
    assert len(received.jobs) == invocations
    assert {job.status for job in received.jobs.values()} == {"succeeded"}
    for kind in ("metrics", "schemas"):
        assert len(received.uploads[kind]) == invocations, kind
    assert received.uploads["recommendations"] == []
    assert all(upload.items for kind in received.uploads for upload in received.uploads[kind])
    logs = {job.logs_id for job in received.jobs.values()}
    assert None not in logs and logs <= set(received.assets)
    assert qalita_server.token not in proc.stdout + proc.stderr

    # A second make ingest has nothing new to ship.
    requests_before = len(received.requests)
    proc = make("ingest", ingest_env)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert len(received.jobs) == invocations
    assert len(received.requests) == requests_before

    # QALITA down: the next build's shipment waits in the outbox; flush delivers it once back.
    subprocess.run(["make", "build", "DBT_FLAGS=--target dev --select tag:airquality"], cwd=REPO,
                   env=env, check=True, capture_output=True)
    qalita_server.stop()
    try:
        proc = make("ingest", {**ingest_env, "QALITA_DEADLINE": "3"})
        assert proc.returncode == 0, proc.stdout[-3000:]  # queued is not a failure for make ingest
        pending = list((tmp_path / "outbox" / "pending").glob("*.json"))
        assert pending, proc.stdout[-3000:]
    finally:
        qalita_server.start()
    proc = make("flush", ingest_env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert len(received.jobs) == invocations + 1
    assert len(received.uploads["metrics"]) == invocations + 1
    assert not list((tmp_path / "outbox" / "pending").glob("*.json"))
    assert received.rejected == []
