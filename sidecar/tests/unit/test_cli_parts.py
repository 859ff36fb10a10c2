"""CLI helpers that need no dbt run: which ledger records what, when a progress bar shows."""

from __future__ import annotations

from qalita_sidecar.cli.common import progress_bar
from qalita_sidecar.shipment import Job, Shipment
from qalita_sidecar.shipping.ledger import EitherLedger, FileLedger


def shipment(key: str, origin: str) -> Shipment:
    job = Job("j", "2026-01-01 00:00:00", "2026-01-01 00:00:01", "succeeded")
    return Shipment(key, origin, "src", "database", job, (), (), ())


def test_dbt_runs_go_to_the_table_ledger_other_tools_to_the_file(tmp_path):
    table = FileLedger(tmp_path / "table.jsonl")  # stands in for the warehouse table
    file = FileLedger(tmp_path / "ledger.jsonl")
    ledger = EitherLedger(file, table)  # type: ignore[arg-type]
    ledger.record(shipment("k-dbt", "dbt"), 1)
    ledger.record(shipment("k-soda", "soda"), 2)
    assert FileLedger(tmp_path / "table.jsonl").keys() == {"k-dbt"}
    assert FileLedger(tmp_path / "ledger.jsonl").keys() == {"k-soda"}
    assert ledger.shipped("k-dbt") and ledger.shipped("k-soda") and not ledger.shipped("k-new")


def test_without_a_warehouse_everything_goes_to_the_file(tmp_path):
    ledger = EitherLedger(FileLedger(tmp_path / "ledger.jsonl"), None)
    ledger.record(shipment("k-dbt", "dbt"), 1)
    assert FileLedger(tmp_path / "ledger.jsonl").shipped("k-dbt")


def test_a_progress_bar_only_when_there_is_much_to_ship(capsys):
    with progress_bar(3, "shipping") as progress:
        assert progress is None
    with progress_bar(25, "shipping") as progress:
        for _ in range(25):
            progress(None)
    assert "shipping" in capsys.readouterr().err  # tqdm or click, whichever is installed
