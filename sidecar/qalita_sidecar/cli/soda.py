"""`qalita-sidecar ingest soda`: ship one Soda Core scan.

    qalita-sidecar ingest soda --file scan_results.json [--source-name NAME] [--dry-run]

Same settings, outbox and exit statuses as `ingest dbt`; the ledger is the JSON-lines file beside
the outbox (.qalita/ledger.jsonl), since Soda has no results warehouse.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from qalita_sidecar.cli.common import (
    InputError,
    open_outbox,
    outbox_option,
    qalita_id_options,
    settings_for,
    ship_and_report,
)
from qalita_sidecar.readers.soda import SodaResultsError, read_scan_results, scan_to_shipment
from qalita_sidecar.shipping.ledger import file_ledger


@click.command("soda")
@click.option("--file", "path", required=True, type=click.Path(path_type=Path, dir_okay=False),
              help="Soda Core scan results: `soda scan ... -srf scan_results.json`.")
@click.option("--source-name", help="QALITA source name (default: the Soda data source name).")
@click.option("--dry-run", is_flag=True, help="Read and map, print what would be shipped.")
@qalita_id_options
@outbox_option
def ingest_soda(path: Path, source_name: str | None, dry_run: bool, source_id: int | None,
                pack_id: int | None, pack_version_id: int | None,
                outbox_dir: Path | None) -> None:
    """Ship one Soda Core scan: check counts and score per data source, table and column, a
    recommendation per failing or warning check, the schemas Soda saw."""
    try:
        shipment = scan_to_shipment(read_scan_results(path), source_name=source_name)
    except SodaResultsError as exc:
        raise InputError(str(exc)) from exc
    ctx = shipment.context
    click.echo(f"read: {path}: {ctx.checks} check(s) on data source {ctx.data_source}: "
               f"{ctx.passed} passed, {ctx.failed} failed, {ctx.warned} warned, "
               f"{ctx.errored} not evaluated")
    click.echo(f"mapped: {len(shipment.metrics)} metrics, {len(shipment.recommendations)} "
               f"recommendations, {len(shipment.schemas)} schema entries (job "
               f"{shipment.job.status})")
    if dry_run:
        click.echo(f"  would ship {shipment.job.name} (key {shipment.key[:12]})")
        sys.exit(0)
    settings = settings_for(source_id=source_id, pack_id=pack_id, pack_version_id=pack_version_id)
    outbox = open_outbox(outbox_dir)
    ledger = file_ledger(outbox.root)
    if ledger.shipped(shipment.key):
        click.echo(f"shipped: nothing new (this scan is in {ledger.path})")
        sys.exit(0)
    sys.exit(ship_and_report([shipment], settings, outbox, ledger))
