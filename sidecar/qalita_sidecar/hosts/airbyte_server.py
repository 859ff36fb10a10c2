"""`qalita-sidecar serve airbyte`: Airbyte's webhook in, the outbox, QALITA out.

  POST /airbyte/webhook/<secret>   (or /airbyte/webhook?token=<secret>): Airbyte cannot set
                          headers, so the shared secret rides in the URL. 401 without it; an
                          event is checked, mapped and spooled to the outbox (fsynced) before the
                          answer: 202 queued, 200 when that very event was delivered already
                          (Airbyte replays), 400 for a body that is not JSON or a connection the
                          config does not map (and no default), 411/413 for a missing or too
                          large Content-Length.
  GET  /health            200 with what waits in the outbox and the requests counted.
The HTTP server, the spooling, the sender and the replay guard are hosts/webhook.py's; this module
only says what an Airbyte event is.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from qalita_sidecar.hosts.webhook import (
    DEFAULT_MAX_BODY,
    Rejected,
    Request,
    SharedSecret,
    WebhookService,
    make_server,
    serve,
)
from qalita_sidecar.readers.airbyte import AirbyteEventError, parse_event, sync_to_shipment
from qalita_sidecar.settings import Settings, SettingsError
from qalita_sidecar.shipment import Shipment
from qalita_sidecar.shipping.ledger import Ledger
from qalita_sidecar.shipping.outbox import Outbox

WEBHOOK_PATH = "/airbyte/webhook"
SECRET_ENV = "QALITA_AIRBYTE_WEBHOOK_SECRET"


def load_connection_map(path: Path) -> dict[str, Any]:
    """The config file: {"connection_map": {connection id: ids}, "default": ids}."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise SettingsError(f"--config {path}: cannot read ({exc.strerror})") from exc
    except ValueError as exc:
        raise SettingsError(f"--config {path}: not valid JSON ({exc})") from exc
    if not isinstance(data, dict) or not isinstance(data.get("connection_map") or {}, dict) \
            or not isinstance(data.get("default") or {}, dict):
        raise SettingsError(f"--config {path}: expected an object with 'connection_map' "
                            "(connection id -> ids) and/or 'default' (ids)")
    data["connection_map"] = {str(k): v for k, v in (data.get("connection_map") or {}).items()}
    return data


class AirbyteReceiver:
    """Airbyte's sync notifications: a shared secret in the URL, one shipment per sync attempt."""

    name = "airbyte"
    route = WEBHOOK_PATH

    def __init__(self, connections: Mapping[str, Any], secret: SharedSecret | None,
                 config_name: str = "the config") -> None:
        self.connections = connections
        self.secret = secret  # None only with --insecure-no-auth on loopback
        self.config_name = config_name
        self.secrets: Sequence[str] = (secret.value,) if secret else ()

    def authenticate(self, request: Request) -> bool:
        return self.secret is None or self.secret.carried_by(request)

    def shipments(self, request: Request, body: Any) -> list[Shipment]:
        try:
            sync = parse_event(body)
        except AirbyteEventError as exc:
            raise Rejected(str(exc)) from exc
        table = self.connections.get("connection_map") or {}
        if sync.connection_id not in table and not self.connections.get("default"):
            raise Rejected(f"connection {sync.connection_id} is not in {self.config_name}'s "
                           "connection_map and there is no default")
        return [sync_to_shipment(sync)]


def airbyte_service(connections: Mapping[str, Any], secret: SharedSecret | None,
                    settings: Settings | None, outbox: Outbox, ledger: Ledger,
                    config_name: str = "the config", **kw: Any) -> WebhookService:
    return WebhookService(AirbyteReceiver(connections, secret, config_name), settings, outbox,
                          ledger, **kw)


__all__ = ["DEFAULT_MAX_BODY", "SECRET_ENV", "WEBHOOK_PATH", "AirbyteReceiver",
           "airbyte_service", "load_connection_map", "make_server", "serve"]
