"""`qalita-sidecar serve airbyte`: receive Airbyte's webhook and ship each sync.

    qalita-sidecar serve airbyte --config config.json [--host H] [--port P]

The ledger is the JSON-lines file beside the outbox (.qalita/ledger.jsonl).
"""

from __future__ import annotations

import os
from pathlib import Path

import click

from qalita_sidecar.cli.common import InputError, open_outbox, outbox_option, settings_for
from qalita_sidecar.hosts.airbyte_server import (
    DEFAULT_MAX_BODY,
    AirbyteService,
    load_connection_map,
    make_server,
)
from qalita_sidecar.hosts.airbyte_server import serve as serve_forever
from qalita_sidecar.settings import SettingsError
from qalita_sidecar.shipping.ledger import file_ledger


@click.command("airbyte")
@click.option("--config", "config_path", type=click.Path(path_type=Path, dir_okay=False),
              help="JSON {\"connection_map\": {connection id: ids}, \"default\": ids} "
                   "(default: $QALITA_MAPPING_FILE).")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8080, show_default=True, help="0 picks a free port.")
@click.option("--max-body-kb", type=int, default=DEFAULT_MAX_BODY // 1024, show_default=True,
              help="Larger requests are answered 413.")
@click.option("--retry-interval", type=float, default=30.0, show_default=True,
              help="Seconds between delivery attempts while QALITA is unreachable.")
@outbox_option
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
    settings = settings_for(mapping_file=config_path)
    outbox = open_outbox(outbox_dir)
    service = AirbyteService(connections, settings, outbox, file_ledger(outbox.root),
                             config_name=str(config_path), retry_interval_s=retry_interval)
    if settings is None:
        service.log("airbyte: no QALITA endpoint configured: events are only spooled to "
                    f"{outbox.root}; send them with `qalita-sidecar flush`")
    try:
        server = make_server(service, host, port, max_body_kb * 1024)
    except OSError as exc:
        raise InputError(f"--host {host} --port {port}: cannot listen ({exc.strerror})") from exc
    serve_forever(service, server)
