"""Commands for Soda and Airbyte, registered on `qalita-sidecar` (see the bottom of ../cli.py).

    qalita-sidecar ingest soda --file scan_results.json [--source-name NAME] [--dry-run]
    qalita-sidecar serve airbyte --config config.json [--host H] [--port P]

Same settings, outbox and exit statuses as `ingest dbt`; the ledger is the JSON-lines file beside
the outbox (.qalita/ledger.jsonl), since these tools have no results warehouse.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from qalita_sidecar.cli import InputError, _file_ledger, _settings, ship_and_report
from qalita_sidecar.hosts.airbyte_server import (
    DEFAULT_MAX_BODY,
    AirbyteService,
    load_connection_map,
    make_server,
)
from qalita_sidecar.hosts.airbyte_server import serve as serve_forever
from qalita_sidecar.readers.soda import SodaResultsError, read_scan_results, scan_to_shipment
from qalita_sidecar.settings import SettingsError
from qalita_sidecar.shipping.outbox import Outbox, OutboxError, default_root

_OUTBOX_HELP = "Outbox folder (default: $QALITA_OUTBOX_DIR, else .qalita/outbox)."


@click.command("soda")
@click.option("--file", "path", required=True, type=click.Path(path_type=Path, dir_okay=False),
              help="Soda Core scan results: `soda scan ... -srf scan_results.json`.")
@click.option("--source-name", help="QALITA source name (default: the Soda data source name).")
@click.option("--dry-run", is_flag=True, help="Read and map, print what would be shipped.")
@click.option("--source-id", type=int, help="QALITA source id (else found or published by name).")
@click.option("--pack-id", type=int, help="QALITA pack id (overrides QALITA_PACK_ID).")
@click.option("--pack-version-id", type=int, help="QALITA pack version id.")
@click.option("--outbox", "outbox_dir", type=click.Path(path_type=Path, file_okay=False),
              help=_OUTBOX_HELP)
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
    click.echo(f"read: {path}: {ctx['checks']} check(s) on data source {ctx['data_source']}: "
               f"{ctx['passed']} passed, {ctx['failed']} failed, {ctx['warned']} warned, "
               f"{ctx['errored']} not evaluated")
    click.echo(f"mapped: {len(shipment.metrics)} metrics, {len(shipment.recommendations)} "
               f"recommendations, {len(shipment.schemas)} schema entries (job "
               f"{shipment.job.status})")
    if dry_run:
        click.echo(f"  would ship {shipment.job.name} (key {shipment.key[:12]})")
        sys.exit(0)
    settings = _settings(source_id=source_id, pack_id=pack_id, pack_version_id=pack_version_id)
    outbox = Outbox(outbox_dir or default_root())
    ledger = _file_ledger(outbox.root)
    if ledger.shipped(shipment.key):
        click.echo(f"shipped: nothing new (this scan is in {ledger.path})")
        sys.exit(0)
    sys.exit(ship_and_report([shipment], settings, outbox, ledger))


@click.group("serve")
def serve() -> None:
    """Long-running receivers that ship what they receive."""


@serve.command("airbyte")
@click.option("--config", "config_path", type=click.Path(path_type=Path, dir_okay=False),
              help="JSON {\"connection_map\": {connection id: ids}, \"default\": ids} "
                   "(default: $QALITA_MAPPING_FILE).")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8080, show_default=True, help="0 picks a free port.")
@click.option("--max-body-kb", type=int, default=DEFAULT_MAX_BODY // 1024, show_default=True,
              help="Larger requests are answered 413.")
@click.option("--retry-interval", type=float, default=30.0, show_default=True,
              help="Seconds between delivery attempts while QALITA is unreachable.")
@click.option("--outbox", "outbox_dir", type=click.Path(path_type=Path, file_okay=False),
              help=_OUTBOX_HELP)
def serve_airbyte(config_path: Path | None, host: str, port: int, max_body_kb: int,
                  retry_interval: float, outbox_dir: Path | None) -> None:
    """Receive Airbyte's webhook on POST /airbyte/webhook and ship each sync to QALITA."""
    config_path = config_path or (Path(os.environ["QALITA_MAPPING_FILE"])
                                  if os.environ.get("QALITA_MAPPING_FILE") else None)
    if config_path is None:
        raise InputError("--config (or QALITA_MAPPING_FILE) is required: it maps Airbyte "
                         "connection ids to QALITA source/pack ids")
    try:
        connections = load_connection_map(config_path)
    except SettingsError as exc:
        raise InputError(str(exc)) from exc
    settings = _settings(mapping_file=config_path)
    try:
        outbox = Outbox(outbox_dir or default_root())
    except OutboxError as exc:
        raise InputError(str(exc)) from exc
    service = AirbyteService(connections, settings, outbox, _file_ledger(outbox.root),
                             config_name=str(config_path), retry_interval_s=retry_interval)
    if settings is None:
        service.log("airbyte: no QALITA endpoint configured: events are only spooled to "
                    f"{outbox.root}; send them with `qalita-sidecar flush`")
    try:
        server = make_server(service, host, port, max_body_kb * 1024)
    except OSError as exc:
        raise InputError(f"--host {host} --port {port}: cannot listen ({exc.strerror})") from exc
    serve_forever(service, server)


def register(main: click.Group, ingest: click.Group) -> None:
    ingest.add_command(ingest_soda)
    main.add_command(serve)
