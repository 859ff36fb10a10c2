"""`ingest dbt-cloud` and `serve dbt-cloud`: ship a dbt Cloud run's steps as `ingest dbt` ships.

    qalita-sidecar ingest dbt-cloud --account-id N --run-id N [--base-url URL] [--token-file F]
    qalita-sidecar serve dbt-cloud --account-id N --secret-file F [--host H] [--port P]

dbt Cloud runs no command of ours after a job, so its runs are read back through the
Administrative API: the run, its steps, and each step's artifacts. Settings: DBT_CLOUD_BASE_URL
(default https://cloud.getdbt.com), DBT_CLOUD_API_TOKEN (or --token-file), DBT_CLOUD_ACCOUNT_ID.
`serve` receives the job webhook (signed with its secret) and reads each completed run the same
way. Exit status of `ingest`: 0 delivered (or nothing new), 75 queued in the outbox or dbt Cloud
unreachable (try again later), 1 bad input, a refused shipment, or a step whose artifact is
missing.
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
from qalita_sidecar.cli.serving import check_bounds, listen, listen_options
from qalita_sidecar.hosts.dbt_cloud_server import (
    ROUTE,
    SECRET_ENV,
    DbtCloudReceiver,
    DbtCloudService,
)
from qalita_sidecar.hosts.webhook import serve as serve_forever
from qalita_sidecar.readers.dbt import cloud_run, warehouse
from qalita_sidecar.readers.dbt.cloud import (
    DbtCloudClient,
    DbtCloudError,
    DbtCloudUnavailable,
    cloud_settings,
)
from qalita_sidecar.readers.dbt.profile import ProfileError, load_target
from qalita_sidecar.settings import SettingsError, read_secret
from qalita_sidecar.shipping.deliver import EX_TEMPFAIL
from qalita_sidecar.shipping.ledger import EitherLedger, file_ledger, ledger_for


class TryLater(InputError):
    """dbt Cloud is unreachable: nothing was read, nothing is lost (the run stays in dbt Cloud)."""

    exit_code = EX_TEMPFAIL


def cloud_options(func):
    """The dbt Cloud connection: --account-id, --base-url, --token-file, --deadline."""
    for option in reversed((
        click.option("--account-id", type=int,
                     help="dbt Cloud account id (default: $DBT_CLOUD_ACCOUNT_ID)."),
        click.option("--base-url", help="Your dbt Cloud access URL (default: "
                     "$DBT_CLOUD_BASE_URL, else https://cloud.getdbt.com)."),
        click.option("--token-file", type=click.Path(path_type=Path, dir_okay=False),
                     help="A file holding the service token (default: $DBT_CLOUD_API_TOKEN)."),
        click.option("--deadline", type=float, default=120.0, show_default=True,
                     help="Seconds for all dbt Cloud API calls of a run, retries included."),
    )):
        func = option(func)
    return func


def warehouse_ledger(outbox_root: Path, project_dir: Path | None, profiles_dir: Path | None,
                     dbt_target: str | None) -> EitherLedger:
    """The file ledger, plus the results schema's table when --project-dir names a dbt project:
    then an invocation `ingest dbt` shipped from that warehouse is known here too."""
    if project_dir is None:
        return ledger_for(outbox_root, None, None)
    try:
        target = load_target(profiles_dir, target=dbt_target, project_dir=project_dir.resolve())
    except ProfileError as exc:
        raise InputError(f"--project-dir {project_dir}: {exc}") from exc
    return ledger_for(outbox_root, target, warehouse.default_schema(target))


@click.command("dbt-cloud")
@click.option("--run-id", type=int, required=True, help="The dbt Cloud run to ship.")
@cloud_options
@click.option("--project", help="Project name in QALITA (default: the dbt project's name).")
@click.option("--env", "environment",
              help="Environment name (default: the job's target name, else 'default').")
@click.option("--source-name", help="QALITA source name (default: '<project> (<env>)').")
@click.option("--dry-run", is_flag=True, help="Read and map, print what would be shipped; "
              "write nothing, send nothing.")
@click.option("--project-dir", type=click.Path(path_type=Path, file_okay=False),
              help="A dbt project whose results schema holds `ingest dbt`'s ledger table, to "
                   "consult it too (default: the ledger file beside the outbox only).")
@click.option("--profiles-dir", type=click.Path(path_type=Path, file_okay=False),
              help="With --project-dir: where profiles.yml is.")
@click.option("--target", "dbt_target", help="With --project-dir: the profile's target.")
@qalita_id_options
@outbox_option
def ingest_dbt_cloud(run_id: int, account_id: int | None, base_url: str | None,
                     token_file: Path | None, deadline: float, project: str | None,
                     environment: str | None, source_name: str | None, dry_run: bool,
                     project_dir: Path | None, profiles_dir: Path | None, dbt_target: str | None,
                     source_id: int | None, pack_id: int | None, pack_version_id: int | None,
                     outbox_dir: Path | None) -> None:
    """Ship every step of a dbt Cloud run that executed nodes (one QALITA job per step)."""
    cloud = cloud_settings(base_url=base_url, account_id=account_id, token_file=token_file,
                           deadline_s=deadline)
    settings = None if dry_run else settings_for(source_id=source_id, pack_id=pack_id,
                                              pack_version_id=pack_version_id)
    outbox = open_outbox(outbox_dir)
    # the ledger `ingest dbt` keeps beside the same outbox: one invocation, shipped once
    ledger = warehouse_ledger(outbox.root, project_dir, profiles_dir, dbt_target)
    try:
        read = cloud_run.read_run(DbtCloudClient(cloud), run_id, project=project,
                                  environment=environment, source_name=source_name,
                                  shipped=ledger.shipped)
    except DbtCloudUnavailable as exc:
        raise TryLater(f"{exc}; nothing was read, run this again later") from exc
    except DbtCloudError as exc:
        raise InputError(str(exc)) from exc
    for line in read.summary():
        click.echo(line)
    shipments = read.shipments
    status = 0
    if not shipments:
        click.echo(f"shipped: nothing new to ship (ledger {ledger.describe()})")
    else:
        metrics = sum(len(s.metrics) for s in shipments)
        recs = sum(len(s.recommendations) for s in shipments)
        failed = sum(s.job.status == "failed" for s in shipments)
        click.echo(f"mapped: {len(shipments)} step invocation(s) -> {metrics} metrics, {recs} "
                   f"recommendations ({failed} job(s) failed)")
        if dry_run:
            for s in shipments:
                click.echo(f"  would ship {s.job.name}: job {s.job.status}, {len(s.metrics)} "
                           f"metrics, {len(s.recommendations)} recommendations "
                           f"(key {s.key[:12]})")
        else:
            status = ship_and_report(shipments, settings, outbox, ledger)
    if read.problems:
        for problem in read.problems[:-1]:
            click.echo(f"qalita-sidecar: error: {problem}", err=True)
        raise InputError(read.problems[-1])
    sys.exit(status)


def _secret(secret_file: Path | None) -> str:
    try:
        found = read_secret(secret_file, SECRET_ENV)
    except SettingsError as exc:
        raise InputError(str(exc)) from exc
    if found is None:
        raise InputError(f"the webhook's secret is required: --secret-file or {SECRET_ENV} "
                         "(dbt Cloud shows it once, when the webhook is created)")
    return found[0]


@click.command("dbt-cloud")
@cloud_options
@click.option("--secret-file", type=click.Path(path_type=Path, dir_okay=False),
              help=f"File holding the webhook's secret (default: ${SECRET_ENV}).")
@click.option("--project", help="Project name in QALITA (default: the dbt project's name).")
@click.option("--env", "environment",
              help="Environment name (default: the job's target name, else 'default').")
@click.option("--source-name", help="QALITA source name (default: '<project> (<env>)').")
@listen_options
@click.option("--retry-interval", type=float, default=30.0, show_default=True,
              help="Seconds between attempts while dbt Cloud or QALITA is unreachable.")
@qalita_id_options
@outbox_option
def serve_dbt_cloud(account_id: int | None, base_url: str | None, token_file: Path | None,
                    deadline: float, secret_file: Path | None, project: str | None,
                    environment: str | None, source_name: str | None, host: str, port: int,
                    max_body_kb: int, read_timeout: float, retry_interval: float,
                    source_id: int | None, pack_id: int | None, pack_version_id: int | None,
                    outbox_dir: Path | None) -> None:
    """Receive dbt Cloud's job webhook on POST /dbt-cloud/webhook; ship each completed run."""
    secret = _secret(secret_file)
    cloud = cloud_settings(base_url=base_url, account_id=account_id, token_file=token_file,
                           deadline_s=deadline)
    check_bounds(read_timeout, max_body_kb, retry_interval)
    settings = settings_for(source_id=source_id, pack_id=pack_id,
                            pack_version_id=pack_version_id)
    outbox = open_outbox(outbox_dir)
    service = DbtCloudService(DbtCloudReceiver(secret, cloud.token), DbtCloudClient(cloud),
                              settings, outbox, file_ledger(outbox.root), project=project,
                              environment=environment, source_name=source_name,
                              retry_interval_s=retry_interval)
    server = listen(service, host, port, max_body_kb, read_timeout)
    notes = [f"set the webhook's endpoint to http(s)://<this host>{ROUTE}, event "
             f"job.run.completed; runs are read from {cloud.describe()}"]
    if settings is None:
        notes.append("no QALITA endpoint configured: runs are only spooled to "
                     f"{outbox.root}; send them with `qalita-sidecar flush`")
    serve_forever(service, server, announce=notes)
