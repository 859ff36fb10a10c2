"""What every `serve` command shares: how its webhook receiver listens, and its bounds."""

from __future__ import annotations

from typing import Any, TypeVar

import click

from qalita_sidecar.cli.common import InputError
from qalita_sidecar.hosts.webhook import (
    DEFAULT_MAX_BODY,
    DEFAULT_READ_TIMEOUT_S,
    WebhookServer,
    WebhookService,
    make_server,
)

F = TypeVar("F", bound=Any)


def listen_options(func: F) -> F:
    """--host, --port, --max-body-kb, --read-timeout."""
    for option in reversed((
        click.option("--host", default="127.0.0.1", show_default=True),
        click.option("--port", type=int, default=8080, show_default=True,
                     help="0 picks a free port."),
        click.option("--max-body-kb", type=int, default=DEFAULT_MAX_BODY // 1024,
                     show_default=True, help="Larger requests are answered 413."),
        click.option("--read-timeout", type=float, default=DEFAULT_READ_TIMEOUT_S,
                     show_default=True, help="Seconds a request may take to arrive; slower or "
                     "idle connections are closed."),
    )):
        func = option(func)
    return func


def check_bounds(read_timeout: float, max_body_kb: int, retry_interval: float) -> None:
    if read_timeout <= 0 or max_body_kb <= 0 or retry_interval <= 0:
        raise InputError("--read-timeout, --max-body-kb and --retry-interval must be positive")


def listen(service: WebhookService, host: str, port: int, max_body_kb: int,
           read_timeout: float) -> WebhookServer:
    try:
        return make_server(service, host, port, max_body_kb * 1024, read_timeout)
    except OSError as exc:
        raise InputError(f"--host {host} --port {port}: cannot listen ({exc.strerror})") from exc
