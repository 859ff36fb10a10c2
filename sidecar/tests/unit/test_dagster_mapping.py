"""The Dagster run -> Shipment mapping, without Dagster installed."""

from __future__ import annotations

from qalita_sidecar.readers.dagster import CheckResult, DagsterRunRecord, run_to_shipment


def test_mapping_of_a_run_record():
    record = DagsterRunRecord(
        run_id="0123456789abcdef", job_name="nightly", status="FAILURE",
        started_at="2026-05-01 01:00:00", finished_at="2026-05-01 01:05:00",
        checks=(CheckResult("raw/orders", "ids_unique", False, "ERROR", "3 duplicates",
                            "order_id", {"failing_rows": 3}),
                CheckResult("raw/orders", "fresh", False, "WARN"),
                CheckResult("customers", "not_empty", True, "ERROR")),
        failed_steps=(("load_customers", "RuntimeError: boom"),),
        materialized=("raw/orders", "raw/orders"))
    s = run_to_shipment(record, project="shop")
    metrics = {(m.scope.perimeter, m.scope.value, m.key): m.value for m in s.metrics}
    assert metrics[("database", "shop", "score")] == "0.33"
    assert metrics[("dataset", "raw/orders", "check_failed")] == 1
    assert metrics[("dataset", "raw/orders", "check_warned")] == 1
    assert metrics[("column", "order_id", "failing_rows")] == 3
    assert metrics[("dataset", "raw/orders", "materializations")] == 2
    assert metrics[("database", "shop", "run_status")] == "FAILURE"
    recs = [(r.level, r.type, r.scope.value, r.content) for r in s.recommendations]
    assert recs == [
        ("high", "Asset Check Failed", "order_id", "Dagster asset check ids_unique failed on "
         "raw/orders.order_id (run 01234567 of nightly): 3 duplicates (failing_rows 3)"),
        ("warning", "Asset Check Failed", "raw/orders",
         "Dagster asset check fresh failed on raw/orders (run 01234567 of nightly)"),
        ("high", "Step Failed", "shop",
         "Dagster step load_customers failed in run 01234567 of nightly: RuntimeError: boom")]
    assert (s.job.status, s.job.started_at, s.job.finished_at) == \
        ("failed", "2026-05-01 01:00:00", "2026-05-01 01:05:00")
    assert s.key == run_to_shipment(record, project="shop").key
    assert s.key != run_to_shipment(record, project="other").key
