"""Exactly once across processes and kills: real `qalita-sidecar` processes, one outbox, the
contract server on loopback.

The invocations are copies of one real dbt run (the 1.11 fixture) under new invocation ids, so
twenty or thirty of them cost no dbt build.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import time
import uuid
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from support.itkit import clean_env
from support.shipments import make_shipment
from testkit import (
    BIN,
    PG_HOST,
    PG_PORT,
    PG_USER,
    REPO,
    create_database,
    drop_database,
    require_postgres,
)

from qalita_sidecar.shipping.outbox import Outbox

FIXTURE = REPO / "sidecar" / "tests" / "fixtures" / "dbt" / "1.11"
SIDECAR = str(BIN / "qalita-sidecar")


def make_invocations(root: Path, n: int) -> list[tuple[str, Path]]:
    """n run_results.json files of one real run, each under its own invocation id."""
    data = json.loads((FIXTURE / "run_results.json").read_text())
    out = []
    for i in range(n):
        invocation = str(uuid.uuid4())
        data["metadata"]["invocation_id"] = invocation
        path = root / f"inv{i:02d}" / "run_results.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps(data))
        out.append((invocation, path))
    return out


def ingest_args(results: Path, tmp: Path, *extra: str) -> list[str]:
    empty = tmp / "no-target"
    empty.mkdir(exist_ok=True)
    return [SIDECAR, "ingest", "dbt", "--manifest", str(FIXTURE / "manifest.json"),
            "--results", str(results), "--target-path", str(empty), *extra]


def run_env(tmp: Path, server, **extra: str) -> dict[str, str]:
    return clean_env(tmp, **server.env(), QALITA_DEADLINE="30", **extra)


def jobs_by_invocation(server, invocations) -> dict[str, list]:
    out: dict[str, list] = defaultdict(list)
    for job in server.received.jobs.values():
        for invocation, _ in invocations:
            if invocation[:8] in job.name:
                out[invocation].append(job)
    return out


def assert_each_delivered_once(server, invocations) -> dict[str, int]:
    """Each invocation: one job with its logs asset and its files, each file stored once; other
    jobs of that name (orphans of killed attempts) finished `failed`; nothing left running."""
    r = server.received
    assert r.rejected == [], r.rejected[:3]
    assert server.running_jobs() == []
    by_inv = jobs_by_invocation(server, invocations)
    orphans = 0
    for invocation, _ in invocations:
        jobs = by_inv[invocation]
        delivered = [j for j in jobs if j.logs_id is not None]
        assert len(delivered) == 1, (invocation, [(j.id, j.statuses) for j in jobs])
        (job,) = delivered
        key12 = job.name.rsplit("[", 1)[1].rstrip("]")
        for kind in ("recommendations", "schemas", "metrics"):
            stored = [u for u in r.uploads[kind] if u.idempotency_key.startswith(key12)]
            assert len(stored) == 1, (invocation, kind, len(stored))
        for other in jobs:
            if other is not job:
                assert other.statuses == ["running", "failed"], other.statuses
                orphans += 1
    assert len({s["name"] for s in r.sources_published}) == len(r.sources_published) == 1
    return {"jobs": len(r.jobs), "orphans_failed": orphans}


def race(pairs: list[list[str]], env: dict[str, str], cwd: Path, width: int = 5) -> list:
    """Start each pair's two processes at the same moment, `width` pairs at a time."""
    def one_pair(args: list[str]) -> list[subprocess.CompletedProcess]:
        procs = [subprocess.Popen(args, env=env, cwd=cwd, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for _ in range(2)]
        return [subprocess.CompletedProcess(p.args, p.wait(timeout=120), *p.communicate())
                for p in procs]

    with ThreadPoolExecutor(width) as pool:
        return [done for pair in pool.map(one_pair, pairs) for done in pair]


def test_two_processes_racing_on_20_invocations_file_ledger(tmp_path, qalita_server):
    invocations = make_invocations(tmp_path / "runs", 20)
    env = run_env(tmp_path, qalita_server)
    started = time.monotonic()
    results = race([ingest_args(p, tmp_path, "--no-tables") for _, p in invocations], env,
                   tmp_path)
    took = time.monotonic() - started
    for done in results:
        assert done.returncode == 0, done.stdout + done.stderr
    summaries = [d.stdout for d in results]
    assert sum("1 delivered" in s for s in summaries) == 20
    assert sum("already shipped" in s or "1 already delivered" in s for s in summaries) == 20
    figures = assert_each_delivered_once(qalita_server, invocations)
    assert figures == {"jobs": 20, "orphans_failed": 0}
    ledger = [json.loads(x) for x in (tmp_path / "qalita" / "ledger.jsonl").read_text().splitlines()]
    assert len(ledger) == len({x["key"] for x in ledger}) == 20
    assert not list((tmp_path / "qalita" / "outbox" / "pending").iterdir())
    assert took < 60, took


@pytest.mark.postgres
def test_two_processes_racing_on_20_invocations_postgres_ledger(tmp_path, qalita_server):
    require_postgres()
    db = f"qalita_race_{uuid.uuid4().hex[:8]}"
    create_database(db)
    try:
        project = tmp_path / "project"
        project.mkdir()
        (project / "dbt_project.yml").write_text("name: qalita_compat\nprofile: race\n")
        (project / "profiles.yml").write_text(
            "race:\n  target: ci\n  outputs:\n    ci:\n      type: postgres\n"
            f"      host: {PG_HOST}\n      port: {PG_PORT}\n      user: {PG_USER}\n"
            f"      password: ''\n      dbname: {db}\n      schema: public\n      threads: 1\n")
        invocations = make_invocations(tmp_path / "runs", 20)
        env = run_env(tmp_path, qalita_server)
        args = [ingest_args(p, tmp_path, "--project-dir", str(project), "--profiles-dir",
                            str(project)) for _, p in invocations]
        results = race(args, env, tmp_path)
        for done in results:
            assert done.returncode == 0, done.stdout + done.stderr
        # the warehouse holds no results tables: artifacts read, the ledger a table beside them
        assert all("tables not used: no table public_qalita.qalita_invocations" in d.stdout
                   for d in results)
        assert assert_each_delivered_once(qalita_server, invocations) == \
            {"jobs": 20, "orphans_failed": 0}
        rows = _pg(db, "select count(*), count(distinct shipment_key), count(job_id) "
                       "from public_qalita.qalita_shipments")
        assert rows == [(20, 20, 20)]
        assert _pg(db, "select count(*) from public_qalita.qalita_shipment_claims") == [(0,)]
        assert not (tmp_path / "qalita" / "ledger.jsonl").exists()  # dbt runs go to the table
    finally:
        drop_database(db)


def _pg(db: str, sql: str) -> list:
    import psycopg2

    con = psycopg2.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname=db)
    try:
        cur = con.cursor()
        cur.execute(sql)
        return cur.fetchall()
    finally:
        con.close()


def test_30_kills_at_random_points_then_flush_deliver_each_once(tmp_path, qalita_server):
    """kill -9 anywhere in `ingest dbt` (a slow server widens every window), then `flush` and a
    re-run of what never reached the outbox: every invocation delivered once, no job running."""
    invocations = make_invocations(tmp_path / "runs", 30)
    env = run_env(tmp_path, qalita_server)
    qalita_server.slow(0.12)
    rng = random.Random(20261202)
    # a fifth killed while starting (maybe before the outbox holds it), the rest anywhere in the
    # ~1.3 s a shipment takes once spooled: job creation, uploads, logs, finish, ledger, removal
    plans = [("start", rng.uniform(0.0, 0.8)) if i % 5 == 0 else ("spooled", rng.uniform(0, 1.4))
             for i in range(len(invocations))]
    pending = tmp_path / "qalita" / "outbox" / "pending"
    seen: dict[str, str] = {}  # entry file -> invocation id

    def spooled(invocation: str) -> bool:
        for path in pending.glob("*.json") if pending.is_dir() else ():
            if path.name not in seen and not path.name.endswith(".ids.json"):
                try:
                    seen[path.name] = json.loads(path.read_text())["shipment"]["context"][
                        "invocation_id"]
                except (OSError, ValueError, KeyError):
                    continue
        return invocation in seen.values()

    def run_and_kill(i: int) -> str:
        invocation, results = invocations[i]
        proc = subprocess.Popen(ingest_args(results, tmp_path, "--no-tables"), env=env,
                                cwd=tmp_path, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        phase, delay = plans[i]
        if phase == "spooled":
            deadline = time.monotonic() + 20
            while not spooled(invocation) and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.02)
        time.sleep(delay)
        finished = proc.poll() is not None
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        return "finished first" if finished else phase

    started = time.monotonic()
    with ThreadPoolExecutor(6) as pool:
        where = list(pool.map(run_and_kill, range(len(invocations))))
    killed_with_a_job = sum(1 for jobs in jobs_by_invocation(qalita_server, invocations).values()
                            if any(j.status == "running" for j in jobs))
    qalita_server.slow(0)
    time.sleep(0.3)  # requests of killed processes still being served finish
    flushed = subprocess.run([SIDECAR, "flush"], env=env, cwd=tmp_path, capture_output=True,
                             text=True, timeout=120)
    assert flushed.returncode == 0, flushed.stdout + flushed.stderr
    # killed before the outbox held them: nothing was sent for those; the next run ships them
    ledger = tmp_path / "qalita" / "ledger.jsonl"
    shipped = {json.loads(x)["invocation_id"] for x in ledger.read_text().splitlines()} \
        if ledger.exists() else set()
    again = [ingest_args(p, tmp_path, "--no-tables") for inv, p in invocations
             if inv not in shipped]
    with ThreadPoolExecutor(4) as pool:
        reruns = list(pool.map(lambda a: subprocess.run(a, env=env, cwd=tmp_path,
                                                        capture_output=True, text=True,
                                                        timeout=120), again))
    for done in reruns:
        assert done.returncode == 0, done.stdout + done.stderr
    took = time.monotonic() - started
    figures = assert_each_delivered_once(qalita_server, invocations)
    assert len([x for x in ledger.read_text().splitlines()]) == 30
    assert not [p for p in (tmp_path / "qalita" / "outbox" / "pending").iterdir()]
    print(f"kills: {dict((w, where.count(w)) for w in set(where))}; jobs running at kill "
          f"time: {killed_with_a_job}; flushed: "
          f"{flushed.stdout.splitlines()[-2:]}; re-run: {len(again)}; {figures}; {took:.1f}s")
    assert took < 60, took


def test_two_flush_processes_over_one_outbox_send_each_entry_once(tmp_path, qalita_server):
    box = Outbox(tmp_path / "qalita" / "outbox")
    shipments = [make_shipment(f"inv-{i}") for i in range(20)]
    for s in shipments:
        box.put(s)
    env = run_env(tmp_path, qalita_server)
    procs = [subprocess.Popen([SIDECAR, "flush"], env=env, cwd=tmp_path, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [(p.wait(timeout=120), *p.communicate()) for p in procs]
    assert all(code == 0 for code, _, _ in outs), outs
    r = qalita_server.received
    assert sorted(j.name for j in r.jobs.values()) == sorted(s.qalita_job_name for s in shipments)
    assert len(r.uploads["metrics"]) == 20 and len(r.sources_published) == 1
    assert box.pending() == []


def test_flush_sets_a_corrupt_entry_aside_and_sends_the_rest(tmp_path, qalita_server):
    box = Outbox(tmp_path / "qalita" / "outbox")
    shipments = [make_shipment(f"inv-{i}") for i in range(3)]
    for s in shipments:
        box.put(s)
    bad = box.path(shipments[0].key)
    bad.write_text('{"queued_at_ns": "yesterday", "shipment": {}}')
    done = subprocess.run([SIDECAR, "flush"], env=run_env(tmp_path, qalita_server), cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stdout + done.stderr  # something is in dead/
    assert "2 delivered, 1 dead" in done.stdout
    assert f"moved to {box.dead_dir / bad.name}" in done.stderr
    assert "'queued_at_ns' must be an integer" in done.stderr and "Traceback" not in done.stderr
    assert len(qalita_server.received.jobs) == 2 and box.pending() == []


@pytest.mark.parametrize("value", ["abc", "inf"])
def test_a_bad_outbox_cap_is_one_line(tmp_path, qalita_server, value):
    env = run_env(tmp_path, qalita_server, QALITA_OUTBOX_MAX_MB=value)
    (_, results), = make_invocations(tmp_path / "runs", 1)
    for args in (ingest_args(results, tmp_path, "--no-tables"), [SIDECAR, "flush"]):
        done = subprocess.run(args, env=env, cwd=tmp_path, capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 1
        assert done.stderr.strip() == ("qalita-sidecar: error: QALITA_OUTBOX_MAX_MB must be a "
                                       f"positive number of megabytes, got {value!r}")
