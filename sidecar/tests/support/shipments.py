"""Shipments built by hand for the shipping tests (the readers are tested elsewhere)."""

from __future__ import annotations

from qalita_sidecar.run_context import RunContext
from qalita_sidecar.shipment import (
    Job,
    Metric,
    Recommendation,
    SchemaEntry,
    Scope,
    Shipment,
    column_scope,
    idempotency_key,
)

DB = Scope("database", "shop")  # named after the QALITA source, as QALITA's packs do


def make_shipment(invocation: str = "inv-1", project: str = "shop", env: str = "ci",
                  failed: int = 1, status: str = "succeeded") -> Shipment:
    orders = Scope("dataset", "orders", DB)
    amount = column_scope(orders, "amount")
    passed = 3
    score = f"{passed / (passed + failed):.2f}"
    recs = tuple(
        Recommendation(f"Test not_null_orders_amount_{i} failed on orders.amount: 2 failing rows",
                       "Checks Failed", amount, "high")
        for i in range(failed))
    return Shipment(
        key=idempotency_key(project, env, "abc123", invocation),
        origin="dbt",
        source_name=project,
        source_type="database",
        job=Job(f"dbt build {invocation}", "2026-01-02 03:04:05", "2026-01-02 03:05:06", status),
        metrics=(Metric("score", score, orders), Metric("tests_total", passed + failed, orders),
                 Metric("execution_time", 1.25, orders), Metric("score", score, DB)),
        recommendations=recs,
        schemas=(SchemaEntry("dataset", "orders", orders), SchemaEntry("column", "amount", amount)),
        context=RunContext(invocation_id=invocation, project=project, environment=env,
                           read_from="quotes ' \" and a\nnewline, ünïcode"),
    )
