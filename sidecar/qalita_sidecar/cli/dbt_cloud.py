"""`qalita-sidecar ingest dbt-cloud`: ship a dbt Cloud run's steps, as `ingest dbt` ships a build.

    qalita-sidecar ingest dbt-cloud --account-id N --run-id N [--base-url URL] [--token-file F]

dbt Cloud runs no command of ours after a job, so its runs are read back through the
Administrative API: the run, its steps, and each step's artifacts. Settings: DBT_CLOUD_BASE_URL
(default https://cloud.getdbt.com), DBT_CLOUD_API_TOKEN (or --token-file), DBT_CLOUD_ACCOUNT_ID.
Exit status: 0 delivered (or nothing new), 75 queued in the outbox or dbt Cloud unreachable (try
again later), 1 bad input, a refused shipment, or a step whose artifact is missing.
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
from qalita_sidecar.readers.dbt import cloud_run
from qalita_sidecar.readers.dbt.cloud import (
    DbtCloudClient,
    DbtCloudError,
    DbtCloudUnavailable,
    cloud_settings,
)
from qalita_sidecar.shipping.deliver import EX_TEMPFAIL
from qalita_sidecar.shipping.ledger import ledger_for


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


def summary_lines(read: cloud_run.RunRead) -> list[str]:
    run = read.run
    job = f", job {run.job_id}" + (f" ({run.job_name})" if run.job_name else "") \
        if run.job_id else ""
    lines = [f"dbt Cloud run {run.id} (account {run.account_id}{job}): {run.status_name}; "
             f"env {read.environment}, git sha {run.git_sha or 'unknown'}"]
    if not run.finished:
        lines.append("  the run has not finished: only its finished steps are read; run this "
                     "again once it has")
    setup = [s for s in read.steps if s.step.dbt_command is None]
    if setup:
        lines.append(f"  {len(setup)} setup step(s) (clone, profile): nothing to ship")
    lines += [f"  {s.note}" for s in read.steps if s.step.dbt_command is not None]
    return lines


@click.command("dbt-cloud")
@click.option("--run-id", type=int, required=True, help="The dbt Cloud run to ship.")
@cloud_options
@click.option("--project", help="Project name in QALITA (default: the dbt project's name).")
@click.option("--env", "environment",
              help="Environment name (default: the job's target name, else 'default').")
@click.option("--source-name", help="QALITA source name (default: '<project> (<env>)').")
@click.option("--dry-run", is_flag=True, help="Read and map, print what would be shipped; "
              "write nothing, send nothing.")
@qalita_id_options
@outbox_option
def ingest_dbt_cloud(run_id: int, account_id: int | None, base_url: str | None,
                     token_file: Path | None, deadline: float, project: str | None,
                     environment: str | None, source_name: str | None, dry_run: bool,
                     source_id: int | None, pack_id: int | None, pack_version_id: int | None,
                     outbox_dir: Path | None) -> None:
    """Ship every step of a dbt Cloud run that executed nodes (one QALITA job per step)."""
    cloud = cloud_settings(base_url=base_url, account_id=account_id, token_file=token_file,
                           deadline_s=deadline)
    settings = None if dry_run else settings_for(source_id=source_id, pack_id=pack_id,
                                              pack_version_id=pack_version_id)
    outbox = open_outbox(outbox_dir)
    # the ledger `ingest dbt` keeps beside the same outbox: one invocation, shipped once
    ledger = ledger_for(outbox.root, None, None)
    try:
        read = cloud_run.read_run(DbtCloudClient(cloud), run_id, project=project,
                                  environment=environment, source_name=source_name,
                                  shipped=ledger.shipped)
    except DbtCloudUnavailable as exc:
        raise TryLater(f"{exc}; nothing was read, run this again later") from exc
    except DbtCloudError as exc:
        raise InputError(str(exc)) from exc
    for line in summary_lines(read):
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
