"""End to end over real HTTP against the contract server: nothing lost, nothing duplicated."""

from __future__ import annotations

import json

import pytest
from contract_server import http_date
from support.shipments import make_shipment

from qalita_sidecar.settings import load_settings
from qalita_sidecar.shipping.deliver import exit_code, flush, ship
from qalita_sidecar.shipping.ledger import FileLedger
from qalita_sidecar.shipping.outbox import Outbox

UPLOADS = "/api/v1/{}/upload"


def settings_for(server, **env):
    return load_settings({**server.env(), "QALITA_DEADLINE": "8", "QALITA_TIMEOUT": "2", **env})


@pytest.fixture
def box(tmp_path):
    return Outbox(tmp_path / "outbox")


@pytest.fixture
def ledger(tmp_path):
    return FileLedger(tmp_path / "ledger.jsonl")


def assert_delivered_once(server, shipments):
    """One job per shipment, finished with its logs asset, and each file that has items exactly
    once (an empty one never)."""
    r = server.received
    assert r.rejected == []
    assert sorted(j.name for j in r.jobs.values()) == sorted(s.qalita_job_name for s in shipments)
    for s in shipments:
        (job,) = [j for j in r.jobs.values() if j.name == s.qalita_job_name]
        assert job.base_name == s.job.name
        assert job.statuses[0] == "running" and job.status == s.job.status
        assert job.start_date == s.job.started_at and job.end_date == s.job.finished_at
        for kind in ("metrics", "recommendations", "schemas"):
            got = [u for u in r.uploads[kind] if u.idempotency_key == f"{s.key}:{kind}"]
            items = s.files()[f"{kind}.json"]
            assert len(got) == (1 if items else 0), (kind, s.key, len(got))
            if items:
                assert got[0].items == items
                assert (got[0].pack_id, got[0].pack_version_id) == (server.pack_id, server.pack_version_id)
        logs = r.assets[job.logs_id]
        assert (logs.name, logs.bucket, logs.type, logs.text) == (s.qalita_job_name, "logs", "log", s.log)


def test_happy_path_publishes_the_source_once_and_a_second_ship_sends_nothing(qalita_server, box, ledger):
    s1, s2 = make_shipment("inv-1"), make_shipment("inv-2", status="failed")
    outcomes = ship([s1, s2], settings_for(qalita_server), box, ledger)
    assert [o.status for o in outcomes] == ["delivered", "delivered"] and exit_code(outcomes) == 0
    assert_delivered_once(qalita_server, [s1, s2])
    assert [p["name"] for p in qalita_server.received.sources_published] == ["shop"]
    assert box.pending() == [] and ledger.shipped(s1.key) and ledger.shipped(s2.key)
    before = len(qalita_server.received.requests)
    again = ship([s1, s2], settings_for(qalita_server), box, FileLedger(ledger.path))
    assert [o.status for o in again] == ["already_delivered"] * 2 and exit_code(again) == 0
    assert len(qalita_server.received.requests) == before  # not one request


def test_every_write_carries_its_own_idempotency_key_derived_from_the_shipment(qalita_server, box, ledger):
    s = make_shipment()
    ship([s], settings_for(qalita_server), box, ledger)
    writes = [r for r in qalita_server.received.requests if r.method in ("POST", "PUT")]
    assert [(r.path, r.idempotency_key) for r in writes] == [
        ("/api/v1/sources/publish", f"{s.key}:source"),
        ("/api/v2/jobs/create", f"{s.key}:job"),
        ("/api/v1/recommendations/upload", f"{s.key}:recommendations"),
        ("/api/v1/schemas/upload", f"{s.key}:schemas"),
        ("/api/v1/metrics/upload", f"{s.key}:metrics"),
        ("/api/v1/assets/upload", f"{s.key}:logs"),
        ("/api/v2/jobs/100", f"{s.key}:finish"),
    ]
    # reads are idempotent by themselves: no key
    assert {r.idempotency_key for r in qalita_server.received.requests if r.method == "GET"} == {None}


def test_existing_source_is_found_by_name_and_type(qalita_server, box, ledger):
    sid = qalita_server.add_source("shop", "database")
    qalita_server.add_source("shop", "file")
    ship([make_shipment()], settings_for(qalita_server), box, ledger)
    assert qalita_server.received.sources_published == []
    assert {u.source_id for u in qalita_server.received.uploads["metrics"]} == {sid}


def test_503_then_200_delivers_once(qalita_server, box, ledger):
    qalita_server.fail("/api/v2/jobs/create", 503)
    qalita_server.fail(UPLOADS.format("recommendations"), 503, times=2)
    s = make_shipment()
    outcomes = ship([s], settings_for(qalita_server), box, ledger)
    assert [o.status for o in outcomes] == ["delivered"]
    assert_delivered_once(qalita_server, [s])
    assert [r.status for r in qalita_server.received.calls("POST", "/api/v2/jobs/create")] == [503, 201]


@pytest.mark.parametrize("retry_after", ["1", "date"])
def test_429_with_retry_after_is_waited_out(qalita_server, box, ledger, retry_after):
    value = http_date(1) if retry_after == "date" else retry_after
    qalita_server.fail(UPLOADS.format("metrics"), 429, retry_after=value)
    s = make_shipment()
    outcomes = ship([s], settings_for(qalita_server), box, ledger)
    assert [o.status for o in outcomes] == ["delivered"]
    assert_delivered_once(qalita_server, [s])


def test_timeout_on_an_upload_then_409_counts_as_delivered(qalita_server, box, ledger):
    # The server stores the upload but answers after the client gave up; the retry gets 409.
    qalita_server.fail(UPLOADS.format("metrics"), delay_s=3)
    s = make_shipment()
    outcomes = ship([s], settings_for(qalita_server, QALITA_TIMEOUT="1"), box, ledger)
    assert [o.status for o in outcomes] == ["delivered"]
    assert_delivered_once(qalita_server, [s])
    assert ("metrics", f"{s.key}:metrics") in qalita_server.received.conflicts


def test_server_down_queues_then_flush_delivers_once_with_the_same_key(qalita_server, box, ledger):
    s1, s2 = make_shipment("inv-1"), make_shipment("inv-2")
    settings = settings_for(qalita_server, QALITA_DEADLINE="2")
    qalita_server.stop()
    outcomes = ship([s1, s2], settings, box, ledger)
    assert [o.status for o in outcomes] == ["queued", "queued"] and exit_code(outcomes) == 75
    assert "connection refused" in outcomes[0].detail and "not sent" in outcomes[1].detail
    assert [p.name for p in sorted(box.pending_dir.iterdir())] == sorted(f"{k}.json" for k in (s1.key, s2.key))
    assert box.pending() == [s1, s2]
    qalita_server.start()
    outcomes = flush(settings, box, ledger)
    assert [(o.key, o.status) for o in outcomes] == [(s1.key, "delivered"), (s2.key, "delivered")]
    assert_delivered_once(qalita_server, [s1, s2])
    assert box.pending() == [] and exit_code(outcomes) == 0
    assert flush(settings, box, ledger) == []


def test_400_moves_the_shipment_to_dead_with_the_answer(qalita_server, box, ledger):
    qalita_server.fail(UPLOADS.format("schemas"), 400, body='{"detail": "schemas[0]: unknown key"}')
    s, ok = make_shipment("bad"), make_shipment("good")
    outcomes = ship([s, ok], settings_for(qalita_server), box, ledger)
    assert [o.status for o in outcomes] == ["dead", "delivered"] and exit_code(outcomes) == 1
    (dead,) = box.dead()
    data = json.loads(dead.read_text())
    assert data["dead_reason"] == '400 {"detail": "schemas[0]: unknown key"}'
    assert data["shipment"]["key"] == s.key and box.pending() == []
    assert not ledger.shipped(s.key)
    # the next ship of the same run does not hammer QALITA with it again
    again = ship([s], settings_for(qalita_server), box, ledger)
    assert again[0].status == "dead" and str(dead) in again[0].detail


def test_unknown_pack_version_fails_once_with_one_line_naming_the_setting(qalita_server, box, ledger):
    shipments = [make_shipment("inv-1"), make_shipment("inv-2")]
    outcomes = ship(shipments, settings_for(qalita_server, QALITA_PACK_VERSION_ID="999"), box, ledger)
    assert [o.status for o in outcomes] == ["queued", "queued"] and exit_code(outcomes) == 1
    detail = outcomes[0].detail
    assert detail.startswith("QALITA_PACK_VERSION_ID (or --pack-version-id): 999 is not a version of pack 7")
    assert "70 (1.0.0)" in detail and "\n" not in detail
    # checked once for the run, before anything was created; both wait for the fix
    assert len(qalita_server.received.calls("GET", "/api/v2/packs/7")) == 1
    assert qalita_server.received.jobs == {} and box.pending() == shipments
    outcomes = ship(shipments, settings_for(qalita_server, QALITA_PACK_ID="8"), box, ledger)
    assert "QALITA_PACK_ID (or --pack-id): QALITA has no pack 8" in outcomes[0].detail
    assert [o.status for o in flush(settings_for(qalita_server), box, ledger)] == ["delivered"] * 2


class CrashOnce(FileLedger):
    """A ledger whose first write dies, as if the process were killed after the uploads."""

    crashed = False

    def record(self, shipment, job_id):
        if not self.crashed:
            self.crashed = True
            raise KeyboardInterrupt("killed between the uploads and the ledger write")
        super().record(shipment, job_id)


def test_crash_between_upload_and_ledger_write_replays_without_duplicates(qalita_server, box, tmp_path):
    s = make_shipment()
    ledger = CrashOnce(tmp_path / "ledger.jsonl")
    with pytest.raises(KeyboardInterrupt):
        ship([s], settings_for(qalita_server), box, ledger)
    (entry,) = box.entries()
    assert entry.job_id is not None  # the job id was saved before the uploads
    outcomes = flush(settings_for(qalita_server), box, FileLedger(tmp_path / "ledger.jsonl"))
    assert [o.status for o in outcomes] == ["delivered"] and outcomes[0].job_id == entry.job_id
    assert_delivered_once(qalita_server, [s])
    assert len(qalita_server.received.jobs) == 1
    assert sorted(k for k, _ in qalita_server.received.conflicts) == ["metrics", "recommendations", "schemas"]
    assert len(qalita_server.received.sources_published) == 1


def test_crash_after_the_ledger_write_drops_the_entry_without_sending(qalita_server, box, ledger):
    s = make_shipment()
    box.put(s)
    ledger.record(s, 5)
    before = len(qalita_server.received.requests)
    outcomes = flush(settings_for(qalita_server), box, ledger)
    assert [o.status for o in outcomes] == ["already_delivered"] and box.pending() == []
    assert len(qalita_server.received.requests) == before


def test_wrong_token_one_clear_line_and_the_shipment_is_kept(qalita_server, box, ledger):
    s = make_shipment()
    outcomes = ship([s], settings_for(qalita_server, QALITA_WORKER_TOKEN="wrong-token-xyz"), box, ledger)
    (o,) = outcomes
    assert o.status == "queued" and exit_code(outcomes) == 75
    assert "QALITA_WORKER_TOKEN" in o.detail and "401" in o.detail and "\n" not in o.detail
    assert "wrong-token-xyz" not in o.detail
    assert box.pending() == [s] and qalita_server.received.jobs == {}
    assert [x[2] for x in qalita_server.received.rejected] == [401]  # stopped at the first refusal
    qalita_server.received.rejected.clear()
    outcomes = flush(settings_for(qalita_server), box, ledger)
    assert [o.status for o in outcomes] == ["delivered"]
    assert_delivered_once(qalita_server, [s])


def test_sign_in_with_username_and_password(qalita_server, box, ledger):
    env = {k: v for k, v in qalita_server.env().items() if k != "QALITA_WORKER_TOKEN"}
    settings = load_settings({**env, "QALITA_USERNAME": qalita_server.username,
                              "QALITA_PASSWORD": qalita_server.password})
    s = make_shipment()
    assert [o.status for o in ship([s], settings, box, ledger)] == ["delivered"]
    assert_delivered_once(qalita_server, [s])


def test_without_settings_everything_waits_in_the_outbox(qalita_server, box, ledger):
    s = make_shipment()
    outcomes = ship([s], None, box, ledger)
    assert [o.status for o in outcomes] == ["queued"] and "no QALITA endpoint" in outcomes[0].detail
    assert box.pending() == [s] and qalita_server.received.requests == []
    assert [o.status for o in flush(settings_for(qalita_server), box, ledger)] == ["delivered"]


def test_mapping_file_gives_the_ids(qalita_server, box, ledger, tmp_path):
    sid = qalita_server.add_source("elsewhere")
    mapping = tmp_path / "config.json"
    mapping.write_text(json.dumps({"connection_map": {"shop/ci": {
        "source_id": sid, "pack_id": qalita_server.pack_id, "pack_version_id": qalita_server.pack_version_id}}}))
    env = {"QALITA_BASE_URL": qalita_server.url, "QALITA_WORKER_TOKEN": qalita_server.token,
           "QALITA_MAPPING_FILE": str(mapping)}
    s = make_shipment()
    assert [o.status for o in ship([s], load_settings(env), box, ledger)] == ["delivered"]
    assert {u.source_id for u in qalita_server.received.uploads["schemas"]} == {sid}


@pytest.mark.parametrize("adapter", ["duckdb", "postgres"])
def test_warehouse_ledger_end_to_end(qalita_server, box, tmp_path, adapter):
    import uuid

    from testkit import PG_HOST, PG_PORT, PG_USER, create_database, drop_database, require_postgres

    from qalita_sidecar.readers.dbt.profile import WarehouseTarget
    from qalita_sidecar.shipping.ledger import WarehouseLedger

    if adapter == "duckdb":
        target = WarehouseTarget("p", "dev", "duckdb", "main", {"path": str(tmp_path / "w.duckdb")})
    else:
        require_postgres()
        db = f"qalita_ship_{uuid.uuid4().hex[:8]}"
        create_database(db)
        target = WarehouseTarget("p", "prod", "postgres", "public",
                                 {"host": PG_HOST, "port": PG_PORT, "user": PG_USER, "dbname": db})
    try:
        shipments = [make_shipment(f"inv-{i}") for i in range(3)]
        schema = f"{target.schema}_qalita"
        outcomes = ship(shipments, settings_for(qalita_server), box, WarehouseLedger(target, schema))
        assert [o.status for o in outcomes] == ["delivered"] * 3
        again = ship(shipments, settings_for(qalita_server), box, WarehouseLedger(target, schema))
        assert [o.status for o in again] == ["already_delivered"] * 3
        assert_delivered_once(qalita_server, shipments)
    finally:
        if adapter == "postgres":
            drop_database(db)


class BrokenLedger(FileLedger):
    def record(self, shipment, job_id):
        from qalita_sidecar.shipping.ledger import LedgerError

        raise LedgerError("ledger main_qalita.qalita_shipments: Could not set lock on file")


def test_a_ledger_that_cannot_be_written_keeps_the_entry_and_flush_records_it(qalita_server, box, tmp_path):
    s1, s2 = make_shipment("inv-1"), make_shipment("inv-2")
    outcomes = ship([s1, s2], settings_for(qalita_server), box, BrokenLedger(tmp_path / "l.jsonl"))
    assert [o.status for o in outcomes] == ["queued", "queued"] and exit_code(outcomes) == 75
    assert "delivered as job" in outcomes[0].detail and "lock" in outcomes[0].detail
    assert "not sent" in outcomes[1].detail
    ledger = FileLedger(tmp_path / "l.jsonl")
    outcomes = flush(settings_for(qalita_server), box, ledger)
    assert [o.status for o in outcomes] == ["delivered", "delivered"]
    assert_delivered_once(qalita_server, [s1, s2])
    assert ledger.shipped(s1.key) and ledger.shipped(s2.key) and box.pending() == []


def test_missing_ids_for_one_project_do_not_hold_back_another(qalita_server, box, ledger, tmp_path):
    mapping = tmp_path / "config.json"
    mapping.write_text(json.dumps({"connection_map": {"shop": {
        "pack_id": qalita_server.pack_id, "pack_version_id": qalita_server.pack_version_id}}}))
    env = {"QALITA_BASE_URL": qalita_server.url, "QALITA_WORKER_TOKEN": qalita_server.token,
           "QALITA_MAPPING_FILE": str(mapping)}
    other, mine = make_shipment("inv-1", project="unmapped"), make_shipment("inv-2")
    outcomes = ship([other, mine], load_settings(env), box, ledger)
    assert [o.status for o in outcomes] == ["queued", "delivered"]
    assert "QALITA_PACK_ID is not set" in outcomes[0].detail and "'unmapped'" in outcomes[0].detail
    assert box.pending() == [other]


def test_tls_is_verified_by_default_and_a_ca_bundle_makes_it_work(tmp_path, box, ledger):
    import ssl
    import subprocess

    from contract_server import ContractServer

    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = ContractServer(ssl_context=context)
    server.start()
    try:
        assert server.url.startswith("https://")
        s = make_shipment()
        outcomes = ship([s], settings_for(server), box, ledger)
        assert outcomes[0].status == "queued" and "QALITA_CA_BUNDLE" in outcomes[0].detail
        assert server.received.requests == []  # the handshake failed before any request
        outcomes = flush(settings_for(server, QALITA_CA_BUNDLE=str(cert)), box, ledger)
        assert [o.status for o in outcomes] == ["delivered"]
        assert_delivered_once(server, [s])
    finally:
        server.stop()


def test_a_subprocess_ships_to_the_server_with_settings_from_its_environment(qalita_server, box, tmp_path):
    import os
    import subprocess
    import sys

    s = make_shipment()
    box.put(s)
    code = ("import sys; from pathlib import Path; from qalita_sidecar import settings; from qalita_sidecar.shipping import deliver, ledger, outbox; "
            "o = deliver.flush(settings.load_settings(), outbox.Outbox(Path(sys.argv[1])), "
            "ledger.FileLedger(Path(sys.argv[2]))); print([x.status for x in o]); "
            "sys.exit(deliver.exit_code(o))")
    env = {k: v for k, v in os.environ.items() if not k.startswith("QALITA_")}
    proc = subprocess.run([sys.executable, "-c", code, str(box.root), str(tmp_path / "l.jsonl")],
                          env={**env, **qalita_server.env()}, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "['delivered']"
    assert qalita_server.token not in proc.stdout + proc.stderr
    assert_delivered_once(qalita_server, [s])


def test_progress_is_told_of_each_shipment(qalita_server, box, ledger):
    seen = []
    shipments = [make_shipment(f"inv-{i}") for i in range(3)]
    ship(shipments[:1], settings_for(qalita_server), box, ledger)
    outcomes = ship(shipments, settings_for(qalita_server), box, ledger, progress=seen.append)
    assert seen == outcomes and [o.status for o in seen] == ["already_delivered", "delivered", "delivered"]


# -- what QALITA's own client does, and recovery --------------------------------------------------

def test_the_recorded_shipment_keeps_to_the_contract(qalita_server, box, ledger):
    """A green run (nothing to recommend): no empty file, its log as the job's logs asset, one key
    per request; what was recorded is what the contract describes."""
    green = make_shipment("green", failed=0)
    red = make_shipment("red", failed=2, status="failed")
    outcomes = ship([green, red], settings_for(qalita_server), box, ledger)
    assert [o.status for o in outcomes] == ["delivered", "delivered"]
    r = qalita_server.received
    assert_delivered_once(qalita_server, [green, red])
    # no `[]` anywhere; the green run sent no recommendations file at all
    assert all(u.items for kind in r.uploads.values() for u in kind)
    assert [u.idempotency_key for u in r.uploads["recommendations"]] == [f"{red.key}:recommendations"]
    # the logs asset as QALITA's client sends it: file part, registry from the registry list
    assert len(r.calls("GET", "/api/v2/registries")) == 1  # asked once for the run
    for s in (green, red):
        (job,) = [j for j in r.jobs.values() if j.name == s.qalita_job_name]
        asset = r.assets[job.logs_id]
        assert (asset.registry_id, asset.version, asset.description, asset.filename) == \
            (1, "1.0.0", "job logs", "logs.txt")
        assert s.job.name in asset.text and f"{s.job.status}" in asset.text
    assert "[high] Checks Failed: Test not_null_orders_amount_0 failed" in r.assets[
        [j for j in r.jobs.values() if j.name == red.qalita_job_name][0].logs_id].text
    # every write's key is its own; none is repeated across requests or shipments
    keys = [q.idempotency_key for q in r.requests if q.method in ("POST", "PUT")]
    assert len(keys) == len(set(keys)) and all(k.rsplit(":", 1)[0] in (green.key, red.key) for k in keys)


def test_a_refused_upload_finishes_the_job_failed_with_the_reason_in_its_log_then_dead(qalita_server, box, ledger):
    qalita_server.fail(UPLOADS.format("metrics"), 422, body='{"detail": "metrics[3]: unknown scope"}')
    s = make_shipment()
    outcomes = ship([s], settings_for(qalita_server), box, ledger)
    assert [o.status for o in outcomes] == ["dead"] and exit_code(outcomes) == 1
    (job,) = qalita_server.received.jobs.values()
    assert job.statuses == ["running", "failed"]  # never left running
    log = qalita_server.received.assets[job.logs_id].text
    assert log.startswith(s.log.rstrip()) and "metrics[3]: unknown scope" in log
    assert str(box.dead_path(s.key)) in log
    data = json.loads(box.dead_path(s.key).read_text())
    assert data["job_id"] == job.id and "unknown scope" in data["dead_reason"]
    # fixed and moved back: the same job is reused and ends succeeded
    box.dead_path(s.key).rename(box.path(s.key))
    assert [o.status for o in flush(settings_for(qalita_server), box, ledger)] == ["delivered"]
    assert len(qalita_server.received.jobs) == 1 and job.status == "succeeded"


def test_a_409_on_a_request_other_than_an_upload_keeps_the_shipment_pending(qalita_server, box, ledger):
    qalita_server.fail("/api/v2/jobs/create", 409, body='{"detail": "job being created"}')
    s = make_shipment()
    outcomes = ship([s], settings_for(qalita_server), box, ledger)
    assert [o.status for o in outcomes] == ["queued"] and exit_code(outcomes) == 75
    assert "409" in outcomes[0].detail and box.dead() == [] and box.pending() == [s]
    assert [o.status for o in flush(settings_for(qalita_server), box, ledger)] == ["delivered"]
    assert_delivered_once(qalita_server, [s])


def test_a_lost_job_creation_answer_does_not_leave_a_running_job(qalita_server, box, ledger):
    # QALITA creates the job but answers after the client gave up; the client's retry makes a
    # second one: the first is found by its name and finished failed, the second delivered.
    qalita_server.fail("/api/v2/jobs/create", delay_s=2.5)
    s = make_shipment()
    outcomes = ship([s], settings_for(qalita_server, QALITA_TIMEOUT="1"), box, ledger)
    assert [o.status for o in outcomes] == ["delivered"]
    jobs = sorted(qalita_server.received.jobs.values(), key=lambda j: j.id)
    assert qalita_server.running_jobs() == []
    assert [j.status for j in jobs if j.id == outcomes[0].job_id] == ["succeeded"]
    assert all(j.statuses == ["running", "failed"] for j in jobs if j.id != outcomes[0].job_id)


class DiesNotingTheJob(Outbox):
    """An outbox whose first job-id note never happens: a kill right after the job creation."""

    died = False

    def note(self, key, **ids):
        if "job_id" in ids and not self.died:
            self.died = True
            raise KeyboardInterrupt("killed before the job id was written")
        super().note(key, **ids)


def test_a_kill_before_the_job_id_is_written_finds_the_job_again(qalita_server, tmp_path, ledger):
    s = make_shipment()
    with pytest.raises(KeyboardInterrupt):
        ship([s], settings_for(qalita_server), DiesNotingTheJob(tmp_path / "outbox"), ledger)
    (job,) = qalita_server.received.jobs.values()
    assert job.status == "running"
    box = Outbox(tmp_path / "outbox")
    assert box.noted(s.key).get("job_id") is None and box.noted(s.key)["job_requested_at"] > 0
    outcomes = flush(settings_for(qalita_server), box, ledger)
    assert [(o.status, o.job_id) for o in outcomes] == [("delivered", job.id)]
    assert len(qalita_server.received.jobs) == 1 and job.statuses == ["running", "succeeded"]
    assert_delivered_once(qalita_server, [s])


def test_a_corrupt_entry_among_healthy_ones_is_set_aside_and_the_rest_is_sent(qalita_server, box, ledger):
    shipments = [make_shipment(f"inv-{i}") for i in range(3)]
    for s in shipments:
        box.put(s)
    bad = box.path(shipments[1].key)
    bad.write_bytes(b'{"queued_at_ns": 1, "shipment": {"key": \xff')
    (box.pending_dir / f".{bad.name}.999999999.tmp").write_text("left by a kill")
    outcomes = flush(settings_for(qalita_server), box, ledger)
    by_key = {o.key: o for o in outcomes}
    assert by_key[shipments[1].key].status == "dead"
    assert str(bad) in by_key[shipments[1].key].detail and "unreadable" in by_key[shipments[1].key].detail
    assert [by_key[s.key].status for s in (shipments[0], shipments[2])] == ["delivered", "delivered"]
    assert_delivered_once(qalita_server, [shipments[0], shipments[2]])
    assert sorted(p.name for p in box.pending_dir.iterdir()) == []  # the .tmp went too
    assert box.dead() == [box.dead_dir / bad.name] and exit_code(outcomes) == 1


def test_sign_in_follows_no_redirect_to_another_origin(qalita_server, box, ledger):
    from contract_server import ContractServer

    elsewhere = ContractServer()
    elsewhere.start()
    try:
        target = f"{elsewhere.url}/api/v1/auth/signin"
        qalita_server.fail("/api/v1/auth/signin", 307, headers={"Location": target})
        env = {k: v for k, v in qalita_server.env().items() if k != "QALITA_WORKER_TOKEN"}
        settings = load_settings({**env, "QALITA_USERNAME": qalita_server.username,
                                  "QALITA_PASSWORD": "the-password-9d1e"})
        outcomes = ship([make_shipment()], settings, box, ledger)
        (o,) = outcomes
        assert o.status == "queued" and "not followed" in o.detail
        assert f"redirecting to http://127.0.0.1:{elsewhere.port}" in o.detail
        assert "the-password-9d1e" not in o.detail and "\n" not in o.detail
        assert elsewhere.received.requests == [] and elsewhere.received.signins == []
    finally:
        elsewhere.stop()


def test_sign_in_follows_a_redirect_on_the_same_origin(qalita_server, box, ledger):
    qalita_server.fail("/api/v1/auth/signin", 308,
                       headers={"Location": f"{qalita_server.url}/api/v1/auth/signin?again=1"})
    env = {k: v for k, v in qalita_server.env().items() if k != "QALITA_WORKER_TOKEN"}
    settings = load_settings({**env, "QALITA_USERNAME": qalita_server.username,
                              "QALITA_PASSWORD": qalita_server.password})
    assert [o.status for o in ship([make_shipment()], settings, box, ledger)] == ["delivered"]
    assert [r.status for r in qalita_server.received.calls("POST", "/api/v1/auth/signin")] == [308, 200]


def test_a_server_without_a_registry_still_finishes_every_job(qalita_server, box, ledger):
    qalita_server.registries.clear()
    s = make_shipment()
    assert [o.status for o in ship([s], settings_for(qalita_server), box, ledger)] == ["delivered"]
    (job,) = qalita_server.received.jobs.values()
    assert job.status == "succeeded" and job.logs_id is None
    assert qalita_server.received.calls("POST", "/api/v1/assets/upload") == []


def test_a_refused_logs_asset_never_holds_up_the_results(qalita_server, box, ledger):
    qalita_server.fail("/api/v1/assets/upload", 413, body='{"detail": "too large"}')
    s = make_shipment()
    assert [o.status for o in ship([s], settings_for(qalita_server), box, ledger)] == ["delivered"]
    (job,) = qalita_server.received.jobs.values()
    assert job.status == "succeeded" and job.logs_id is None
