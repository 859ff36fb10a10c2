"""What every command shares: one-line errors and their boundary, settings, options, the summary.

Commands import from here; nothing here imports a command, so the import graph has no circle.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import click

from qalita_sidecar.readers.dbt.artifacts import ArtifactError
from qalita_sidecar.readers.dbt.profile import ProfileError
from qalita_sidecar.readers.soda import SodaResultsError
from qalita_sidecar.settings import Settings, SettingsError, load_settings
from qalita_sidecar.shipment import Shipment
from qalita_sidecar.shipping import deliver
from qalita_sidecar.shipping.ledger import Ledger, LedgerError
from qalita_sidecar.shipping.outbox import Outbox, OutboxError

EX_FAILED = 1
PROGRESS_FROM = 20  # shipments: below this a bar is noise
OUTBOX_HELP = "Outbox folder (default: $QALITA_OUTBOX_DIR, else .qalita/outbox)."

# Errors whose message already names the file or the setting: shown as one line, exit 1.
KNOWN_ERRORS: tuple[type[Exception], ...] = (
    ArtifactError, ProfileError, SodaResultsError, SettingsError, OutboxError, LedgerError)

F = TypeVar("F", bound=Callable[..., Any])


class InputError(click.ClickException):
    """Bad input: one line naming the file or setting; exit status 1."""

    exit_code = EX_FAILED

    def show(self, file=None) -> None:  # one line, no usage block
        click.echo(f"qalita-sidecar: error: {self.format_message()}", err=True)


class Group(click.Group):
    """The error boundary: a known error raised anywhere below a command becomes one line."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except KNOWN_ERRORS as exc:
            raise InputError(str(exc)) from exc


def settings_for(**ids: Any) -> Settings | None:
    try:
        return load_settings(**ids)
    except SettingsError as exc:
        raise InputError(str(exc)) from exc


def outbox_option(func: F) -> F:
    return click.option("--outbox", "outbox_dir", type=click.Path(path_type=Path, file_okay=False),
                        help=OUTBOX_HELP)(func)


def qalita_id_options(func: F) -> F:
    """--source-id, --pack-id, --pack-version-id: override the settings' ids for this run."""
    for option in reversed((
        click.option("--source-id", type=int,
                     help="QALITA source id (else found or published by name)."),
        click.option("--pack-id", type=int, help="QALITA pack id (overrides QALITA_PACK_ID)."),
        click.option("--pack-version-id", type=int,
                     help="QALITA pack version id (overrides QALITA_PACK_VERSION_ID)."),
    )):
        func = option(func)
    return func


def open_outbox(outbox_dir: Path | None) -> Outbox:
    try:
        return Outbox(outbox_dir)
    except OutboxError as exc:
        raise InputError(str(exc)) from exc


@contextmanager
def progress_bar(total: int, label: str) -> Iterator[Callable[[deliver.Outcome], None] | None]:
    """A bar on stderr when there is much to ship: tqdm if installed, else click's."""
    if total < PROGRESS_FROM:
        yield None
        return
    try:
        from tqdm import tqdm
    except ImportError:
        with click.progressbar(length=total, label=label, file=sys.stderr) as bar:
            yield lambda _o: bar.update(1)
        return
    with tqdm(total=total, desc=label, unit="shipment", file=sys.stderr) as bar:
        yield lambda _o: bar.update(1)


def report(outcomes: Sequence[deliver.Outcome], outbox: Outbox, configured: bool) -> int:
    """The summary every command prints after shipping; returns the exit status."""
    by: Counter[str] = Counter(o.status for o in outcomes)
    parts = [f"{by[s]} {s.replace('_', ' ')}" for s in
             ("delivered", "already_delivered", "queued", "dead") if by[s]]
    click.echo(f"shipped: {', '.join(parts) if parts else 'nothing'}")
    jobs = [str(o.job_id) for o in outcomes if o.status == "delivered" and o.job_id is not None]
    if jobs:
        click.echo(f"  QALITA jobs: {', '.join(jobs[:20])}{' ...' if len(jobs) > 20 else ''}")
    for o in outcomes:
        if o.status == "dead":
            click.echo(f"  refused {o.key[:12]}: {o.detail}", err=True)
        elif o.needs_fix:
            click.echo(f"  not sent {o.key[:12]}: {o.detail}", err=True)
    queued = [o for o in outcomes if o.status == "queued"]
    if queued:
        if configured:
            click.echo(f"  waiting in {outbox.pending_dir}: {queued[0].detail}")
            click.echo("  send them later with: qalita-sidecar flush (make flush)")
        else:
            click.echo(f"  written to {outbox.pending_dir} (no QALITA endpoint configured)")
            click.echo("  to send them: export QALITA_WORKER_ENDPOINT=https://... and "
                       "QALITA_WORKER_TOKEN (or QALITA_USERNAME/QALITA_PASSWORD), "
                       "QALITA_PACK_ID, QALITA_PACK_VERSION_ID; then run: qalita-sidecar flush "
                       "(make flush)")
    return deliver.exit_code(outcomes)


def ship_and_report(shipments: list[Shipment], settings: Settings | None, outbox: Outbox,
                    ledger: Ledger) -> int:
    """Spool, send and summarise; shared by every `ingest` subcommand."""
    with progress_bar(len(shipments), "shipping") as progress:
        outcomes = deliver.ship(shipments, settings, outbox, ledger, progress=progress)
    return report(outcomes, outbox, settings is not None)
