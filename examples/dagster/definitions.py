"""Dagster -> QALITA: retail assets with asset checks (two fail by design), shipped by the sidecar.

    pip install -e ".[dagster]"          (from the repository root)
    export QALITA_WORKER_ENDPOINT=https://qalita.example QALITA_WORKER_TOKEN=...
    export QALITA_PACK_ID=... QALITA_PACK_VERSION_ID=...
    dagster dev -f examples/dagster/definitions.py    (needs dagster-webserver)
    python examples/dagster/run.py                    (one run, shipped, no daemon)

Every finished run of any job in this code location is shipped by the `qalita_run_success` /
`qalita_run_failure` sensors: one QALITA job per run, check counts and a score per asset, one
recommendation per failed check or step. Without QALITA settings the runs wait in .qalita/outbox
for `qalita-sidecar flush`.
"""

from __future__ import annotations

import csv
import os
from collections import Counter
from pathlib import Path

import dagster as dg

from qalita_sidecar.hosts.dagster import QalitaResource, qalita_sensors

DATA = Path(os.environ.get("RETAIL_DATA_DIR")
            or Path(__file__).resolve().parents[1] / "data")


def _rows(name: str) -> list[dict[str, str]]:
    with open(DATA / f"{name}.csv", newline="") as fh:
        return list(csv.DictReader(fh))


@dg.asset
def orders() -> list[dict[str, str]]:
    """Retail orders (a CSV standing in for a warehouse table)."""
    return _rows("orders")


@dg.asset
def customers() -> list[dict[str, str]]:
    return _rows("customers")


@dg.asset_check(asset=orders, description="Each order id appears once")
def order_id_is_unique(orders: list[dict[str, str]]) -> dg.AssetCheckResult:
    duplicates = sum(n - 1 for n in Counter(r["order_id"] for r in orders).values() if n > 1)
    return dg.AssetCheckResult(passed=duplicates == 0,
                               metadata={"column": "order_id", "failing_rows": duplicates})


@dg.asset_check(asset=orders, description="Amounts are not negative")
def amount_is_not_negative(orders: list[dict[str, str]]) -> dg.AssetCheckResult:
    negative = sum(1 for r in orders if float(r["amount"]) < 0)
    return dg.AssetCheckResult(passed=negative == 0, severity=dg.AssetCheckSeverity.WARN,
                               metadata={"column": "amount", "failing_rows": negative})


@dg.asset_check(asset=customers, description="There are customers")
def customers_not_empty(customers: list[dict[str, str]]) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=len(customers) > 0, metadata={"row_count": len(customers)})


retail = dg.define_asset_job("retail", selection=dg.AssetSelection.all())

defs = dg.Definitions(
    assets=[orders, customers],
    asset_checks=[order_id_is_unique, amount_is_not_negative, customers_not_empty],
    jobs=[retail],
    resources={"qalita": QalitaResource(project="retail")},
    sensors=qalita_sensors(),
)
