"""Outbox entries written before the shipment was a msgspec Struct (format 1, the context a plain
object) still load and ship the same: users upgrade with entries waiting."""

from __future__ import annotations

import json

import pytest

from qalita_sidecar.settings import load_settings
from qalita_sidecar.shipment import encode_shipment
from qalita_sidecar.shipping.deliver import flush, mapping_names
from qalita_sidecar.shipping.ledger import FileLedger
from qalita_sidecar.shipping.outbox import Outbox

# A dbt Cloud step's shipment as the earlier code wrote it to pending/<key>.json (there compact,
# on one line: the fixture writes it so; indented here to be read).
FORMAT_1 = r"""
{
 "queued_at_ns": 1777777777000000000,
 "shipment": {
  "format": 1,
  "key": "31580e8b0b3b831a5b915a1019704fd2efc984fca6629fa21c37ae2c6145f6b4",
  "origin": "dbt-cloud",
  "source_name": "shop (prod)",
  "source_type": "database",
  "job": {
   "name": "dbt build shop prod 7d1e-inv",
   "started_at": "2026-05-04 03:02:01",
   "finished_at": "2026-05-04 03:04:05",
   "status": "failed"
  },
  "metrics.json": [
   {
    "key": "tests_total",
    "value": 4,
    "scope": {
     "perimeter": "dataset",
     "value": "orders",
     "parent_scope": {"perimeter": "database", "value": "shop (prod)"}
    }
   },
   {
    "key": "score",
    "value": "0.75",
    "scope": {
     "perimeter": "dataset",
     "value": "orders",
     "parent_scope": {"perimeter": "database", "value": "shop (prod)"}
    }
   },
   {
    "key": "execution_time",
    "value": 0.5,
    "scope": {
     "perimeter": "dataset",
     "value": "orders",
     "parent_scope": {"perimeter": "database", "value": "shop (prod)"}
    }
   },
   {
    "key": "freshness_status",
    "value": "pass",
    "scope": {"perimeter": "database", "value": "shop (prod)"}
   }
  ],
  "recommendations.json": [
   {
    "content": "Test not_null_orders_amount failed on orders.amount: 2 failing rows.",
    "type": "Test failed",
    "scope": {
     "perimeter": "column",
     "value": "amount",
     "parent_scope": {"perimeter": "dataset", "value": "orders"}
    },
    "level": "high"
   }
  ],
  "schemas.json": [
   {
    "key": "database",
    "value": "shop (prod)",
    "scope": {"perimeter": "database", "value": "shop (prod)"}
   },
   {
    "key": "dataset",
    "value": "orders",
    "scope": {
     "perimeter": "dataset",
     "value": "orders",
     "parent_scope": {"perimeter": "database", "value": "shop (prod)"}
    }
   },
   {
    "key": "column",
    "value": "amount",
    "scope": {
     "perimeter": "column",
     "value": "amount",
     "parent_scope": {"perimeter": "dataset", "value": "orders"}
    }
   }
  ],
  "context": {
   "invocation_id": "7d1e-inv",
   "project": "shop",
   "environment": "prod",
   "git_sha": "abc123",
   "command": "build",
   "read_from": "dbt Cloud run 91 step 4 run_results.json",
   "results": 5,
   "tests": {"passed": 3, "failed": 1, "warned": 0, "errored": 0, "skipped": 0},
   "dbt_project": "shop",
   "dbt_cloud": {"account_id": 1, "run_id": 91, "step": 4, "job_id": 12}
  },
  "log": "dbt build shop prod 7d1e-inv: failed (2026-05-04 03:02:01 .. 2026-05-04 03:04:05 UTC)\n4 metrics, 1 recommendations, 3 schema entries\n[high] Test failed: Test not_null_orders_amount failed on orders.amount: 2 failing rows.\n"
 }
}
"""
KEY = json.loads(FORMAT_1)["shipment"]["key"]


@pytest.fixture
def box(tmp_path):
    box = Outbox(tmp_path / "outbox")
    box.pending_dir.mkdir(parents=True)
    box.path(KEY).write_text(json.dumps(json.loads(FORMAT_1), ensure_ascii=False,
                                        separators=(",", ":")))
    return box


def test_a_format_1_entry_loads_with_its_context_typed(box):
    (entry,) = box.entries()
    s = entry.shipment
    assert entry.queued_at_ns == 1777777777000000000
    assert (s.key, s.origin, s.source_name, s.job.status) == (KEY, "dbt-cloud", "shop (prod)",
                                                              "failed")
    assert (s.context.invocation_id, s.context.project, s.context.environment) == \
        ("7d1e-inv", "shop", "prod")
    assert (s.context.tests.passed, s.context.tests.failed) == (3, 1)
    assert (s.context.dbt_cloud.run_id, s.context.dbt_cloud.step) == (91, 4)
    assert mapping_names(s) == ["shop/prod", "shop", "shop (prod)"]
    assert s.log.startswith("dbt build shop prod 7d1e-inv: failed")
    # encoded again, it is the very shipment the earlier code wrote
    assert json.loads(encode_shipment(s)) == json.loads(FORMAT_1)["shipment"]


def test_a_format_1_entry_ships_the_same(box, tmp_path, qalita_server):
    old = json.loads(FORMAT_1)["shipment"]
    ledger = FileLedger(tmp_path / "ledger.jsonl")
    outcomes = flush(load_settings(qalita_server.env()), box, ledger)
    assert [o.status for o in outcomes] == ["delivered"] and ledger.shipped(KEY)
    received = qalita_server.received
    assert received.rejected == []
    for kind in ("metrics", "recommendations", "schemas"):
        (upload,) = received.uploads[kind]
        assert upload.items == old[f"{kind}.json"]
    (job,) = received.jobs.values()
    assert (job.base_name, job.status, job.end_date) == (old["job"]["name"], "failed",
                                                          old["job"]["finished_at"])
    assert received.assets[job.logs_id].text == old["log"]


def test_a_format_1_entry_with_a_wrong_field_goes_to_dead_with_one_line(box):
    data = json.loads(FORMAT_1)
    data["shipment"]["metrics.json"][0]["scope"]["perimeter"] = "table"
    box.path(KEY).write_text(json.dumps(data))
    entries, (moved,) = box.scan()
    assert entries == [] and moved.path == box.dead_path(KEY) and "\n" not in moved.reason
    assert "unreadable" in moved.reason and "metrics.json" in moved.reason
