"""`qalita-sidecar serve airbyte`: receive Airbyte's webhook and ship each sync.

    qalita-sidecar serve airbyte --config config.json --secret-file secret.txt [--host H] [--port P]

A shared secret is required (--secret-file or QALITA_AIRBYTE_WEBHOOK_SECRET); only
--insecure-no-auth on a loopback host serves without one. The ledger is the JSON-lines file beside
the outbox (.qalita/ledger.jsonl).
"""

from __future__ import annotations

import os
from pathlib import Path

import click

from qalita_sidecar.cli.common import InputError, open_outbox, outbox_option, settings_for
from qalita_sidecar.cli.serving import check_bounds, listen, listen_options
from qalita_sidecar.hosts.airbyte_server import (
    SECRET_ENV,
    WEBHOOK_PATH,
    airbyte_service,
    load_connection_map,
)
from qalita_sidecar.hosts.airbyte_server import serve as serve_forever
from qalita_sidecar.hosts.webhook import SecretError, SharedSecret, is_loopback
from qalita_sidecar.settings import SettingsError
from qalita_sidecar.shipping.ledger import file_ledger


def _secret(secret_file: Path | None, insecure: bool, host: str) -> SharedSecret | None:
    try:
        secret = SharedSecret.load(secret_file, SECRET_ENV)
    except SecretError as exc:
        raise InputError(str(exc)) from exc
    if secret is not None:
        return secret
    if not insecure:
        raise InputError(f"a webhook secret is required: --secret-file or {SECRET_ENV} "
                         "(or --insecure-no-auth, on a loopback host only)")
    if not is_loopback(host):
        raise InputError(f"--insecure-no-auth is refused on --host {host}: only a loopback "
                         f"host may serve without a secret (set --secret-file or {SECRET_ENV})")
    return None


@click.command("airbyte")
@click.option("--config", "config_path", type=click.Path(path_type=Path, dir_okay=False),
              help="JSON {\"connection_map\": {connection id: ids}, \"default\": ids} "
                   "(default: $QALITA_MAPPING_FILE).")
@click.option("--secret-file", type=click.Path(path_type=Path, dir_okay=False),
              help=f"File holding the webhook secret (default: ${SECRET_ENV}). Airbyte's URL "
                   f"carries it: {WEBHOOK_PATH}/<secret> or {WEBHOOK_PATH}?token=<secret>.")
@click.option("--insecure-no-auth", is_flag=True,
              help="Serve without a secret; only with a loopback --host.")
@listen_options
@click.option("--retry-interval", type=float, default=30.0, show_default=True,
              help="Seconds between delivery attempts while QALITA is unreachable.")
@outbox_option
def serve_airbyte(config_path: Path | None, secret_file: Path | None, insecure_no_auth: bool,
                  host: str, port: int, max_body_kb: int, read_timeout: float,
                  retry_interval: float, outbox_dir: Path | None) -> None:
    """Receive Airbyte's webhook on POST /airbyte/webhook/<secret> and ship each sync to QALITA."""
    secret = _secret(secret_file, insecure_no_auth, host)
    config_path = config_path or (Path(os.environ["QALITA_MAPPING_FILE"])
                                  if os.environ.get("QALITA_MAPPING_FILE") else None)
    if config_path is None:
        raise InputError("--config (or QALITA_MAPPING_FILE) is required: it maps Airbyte "
                         "connection ids to QALITA source/pack ids")
    check_bounds(read_timeout, max_body_kb, retry_interval)
    try:
        connections = load_connection_map(config_path)
    except SettingsError as exc:
        raise InputError(str(exc)) from exc
    settings = settings_for(mapping_file=config_path)
    outbox = open_outbox(outbox_dir)
    service = airbyte_service(connections, secret, settings, outbox, file_ledger(outbox.root),
                              config_name=str(config_path), retry_interval_s=retry_interval)
    server = listen(service, host, port, max_body_kb, read_timeout)
    notes = [f"the webhook URL ends in {WEBHOOK_PATH}/<secret> (secret from {secret.origin})"
             if secret else "WARNING: no webhook secret (--insecure-no-auth): anyone who can "
             "reach this port can post events"]
    if settings is None:
        notes.append("no QALITA endpoint configured: events are only spooled to "
                     f"{outbox.root}; send them with `qalita-sidecar flush`")
    serve_forever(service, server, announce=notes)
