"""`qalita-sidecar`: read a tool's results, map them, ship them to QALITA exactly once.

    qalita-sidecar ingest dbt --manifest target/manifest.json --results target/run_results.json \\
        --project NAME --env NAME [--sources target/sources.json] [--dry-run]
    qalita-sidecar flush

It never runs dbt, so it never masks dbt's exit code: its own status says what happened to the
results: 0 delivered (or nothing new), 75 queued in the outbox (QALITA unreachable or not
configured), 1 failed (bad input, or QALITA refused a shipment: see the outbox's dead/ folder).
"""

from __future__ import annotations

import os
import sys
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import click

from qalita_sidecar.readers.dbt import artifacts, to_shipment, warehouse
from qalita_sidecar.readers.dbt.profile import ProfileError, WarehouseTarget, load_target
from qalita_sidecar.settings import SettingsError, load_settings
from qalita_sidecar.shipment import Shipment, idempotency_key
from qalita_sidecar.shipping import deliver
from qalita_sidecar.shipping.ledger import FileLedger, LedgerError, WarehouseLedger
from qalita_sidecar.shipping.outbox import Outbox, OutboxError, default_root

EX_FAILED = 1
PROGRESS_FROM = 20  # shipments: below this a bar is noise
# The commit a CI run builds, as the dbt package records it (first found wins).
GIT_SHA_VARS = ("GITHUB_SHA", "CI_COMMIT_SHA", "DBT_CLOUD_GIT_SHA")


class InputError(click.ClickException):
    """Bad input: one line naming the file or setting; exit status 1."""

    exit_code = EX_FAILED

    def show(self, file=None) -> None:  # one line, no usage block
        click.echo(f"qalita-sidecar: error: {self.format_message()}", err=True)


class EitherLedger:
    """The warehouse ledger when the warehouse is reachable, plus the file ledger beside the outbox.

    A shipment recorded in either counts as shipped, so an invocation shipped from the artifacts
    while the warehouse was down is not shipped again once it is back.
    """

    def __init__(self, file: FileLedger, table: WarehouseLedger | None) -> None:
        self.file, self.table = file, table

    def shipped(self, key: str) -> bool:
        return (self.table is not None and self.table.shipped(key)) or self.file.shipped(key)

    def record(self, shipment: Shipment, job_id: int | None) -> None:
        # dbt runs go next to their results; other tools' runs (flushed from the same outbox)
        # go to the file their own `ingest` consults
        use_table = self.table is not None and shipment.origin == "dbt"
        (self.table if use_table else self.file).record(shipment, job_id)  # type: ignore[union-attr]

    def describe(self) -> str:
        if self.table is not None:
            return f"{self.table.schema}.qalita_shipments"
        return str(self.file.path)


def _file_ledger(outbox_root: Path) -> FileLedger:
    return FileLedger(outbox_root.parent / "ledger.jsonl")


def _ledger(outbox_root: Path, target: WarehouseTarget | None, schema: str | None) -> EitherLedger:
    table = WarehouseLedger(target, schema) if target is not None and schema else None
    return EitherLedger(_file_ledger(outbox_root), table)


def _settings(**ids: int | None):
    try:
        return load_settings(**ids)
    except SettingsError as exc:
        raise InputError(str(exc)) from exc


@contextmanager
def _progress(total: int, label: str) -> Iterator[Callable[[deliver.Outcome], None] | None]:
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


def _report(outcomes: Sequence[deliver.Outcome], outbox: Outbox, configured: bool) -> int:
    by = Counter(o.status for o in outcomes)
    parts = [f"{by[s]} {s.replace('_', ' ')}" for s in
             ("delivered", "already_delivered", "queued", "dead") if by[s]]
    click.echo(f"shipped: {', '.join(parts) if parts else 'nothing'}")
    jobs = [str(o.job_id) for o in outcomes if o.status == "delivered" and o.job_id is not None]
    if jobs:
        click.echo(f"  QALITA jobs: {', '.join(jobs[:20])}{' ...' if len(jobs) > 20 else ''}")
    for o in outcomes:
        if o.status == "dead":
            click.echo(f"  refused {o.key[:12]}: {o.detail}", err=True)
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


def ship_and_report(shipments: list[Shipment], settings, outbox: Outbox, ledger) -> int:
    """Spool, send and summarise; shared by every `ingest` subcommand."""
    try:
        with _progress(len(shipments), "shipping") as progress:
            outcomes = deliver.ship(shipments, settings, outbox, ledger, progress=progress)
    except (OutboxError, LedgerError) as exc:
        raise InputError(str(exc)) from exc
    return _report(outcomes, outbox, settings is not None)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="qalita-sidecar", prog_name="qalita-sidecar")
def main() -> None:
    """Ship dbt (and other tools') results to QALITA, exactly once."""


@main.group()
def ingest() -> None:
    """Read a tool's results and ship them to QALITA."""


@dataclass(frozen=True)
class _Read:
    invocations: list[artifacts.Invocation]
    lines: list[str]  # what was read, for the summary


def _git_sha() -> str | None:
    for name in GIT_SHA_VARS:
        if os.environ.get(name):
            return os.environ[name]
    return None


def _read_dbt(manifest: artifacts.Manifest | None, results: Path | None, sources: Path | None,
              target: WarehouseTarget | None, schema: str | None, problem: str | None,
              key: Callable[[str, str | None, str | None], str], ledger: EitherLedger,
              ci_sha: str | None) -> _Read:
    lines: list[str] = []
    invocations: list[artifacts.Invocation] = []
    known: frozenset[str] = frozenset()
    if target is not None and schema:
        read = warehouse.read_invocations(
            target, schema, manifest.project_name if manifest else None,
            lambda h: not ledger.shipped(key(h.invocation_id, h.git_sha, h.environment)))
        if read.problem is None:
            invocations += read.invocations
            known = read.known_ids
            lines.append(f"table {schema}.qalita_invocations ({target.describe()}): "
                         f"{len(read.known_ids)} invocations, {len(read.invocations)} not yet "
                         "shipped")
        else:
            problem = read.problem
    if problem:
        lines.append(f"tables not used: {problem}")
    for path, reader in ((results, artifacts.read_run_results), (sources, artifacts.read_sources)):
        if path is None:
            continue
        try:
            # the commit this CI run builds, as the package records it for the same run
            inv = replace(reader(path, manifest), git_sha=ci_sha)
        except artifacts.ArtifactError as exc:
            raise InputError(str(exc)) from exc
        if inv.invocation_id in known:
            lines.append(f"{path}: invocation {inv.invocation_id} is in the table")
            continue
        if ledger.shipped(key(inv.invocation_id, inv.git_sha, None)):
            lines.append(f"{path}: invocation {inv.invocation_id} already shipped")
            continue
        invocations.append(inv)
        lines.append(f"{path}: invocation {inv.invocation_id} ({inv.command}, "
                     f"{len(inv.results)} result(s)){' not in the table' if known else ''}")
    return _Read(invocations, lines)


@ingest.command("dbt")
@click.option("--manifest", type=click.Path(path_type=Path),
              help="manifest.json (default: <target-path>/manifest.json).")
@click.option("--results", type=click.Path(path_type=Path),
              help="run_results.json (default: <target-path>/run_results.json, if present).")
@click.option("--sources", type=click.Path(path_type=Path),
              help="sources.json of `dbt source freshness` (default: <target-path>/sources.json, "
                   "if present).")
@click.option("--project", help="Project name in QALITA (default: the dbt project's name).")
@click.option("--env", "environment", help="Environment name (default: what the package "
              "recorded, var qalita_environment or the target's name; else the target's name).")
@click.option("--project-dir", type=click.Path(path_type=Path, file_okay=False), default=".",
              show_default=True, help="The dbt project (dbt_project.yml names its profile).")
@click.option("--target-path", type=click.Path(path_type=Path, file_okay=False),
              help="dbt's target folder (default: $DBT_TARGET_PATH, else <project-dir>/target).")
@click.option("--profiles-dir", type=click.Path(path_type=Path, file_okay=False),
              help="Where profiles.yml is (dbt's default order otherwise).")
@click.option("--target", "dbt_target", help="The profile's target (default: the profile's).")
@click.option("--qalita-schema", help="Schema of the results tables (default: "
              "<target schema>_qalita, as the dbt package writes them).")
@click.option("--no-tables", is_flag=True, help="Read the artifacts only, not the tables.")
@click.option("--dry-run", is_flag=True, help="Read and map, print what would be shipped; "
              "write nothing, send nothing.")
@click.option("--source-id", type=int, help="QALITA source id (else found or published by name).")
@click.option("--pack-id", type=int, help="QALITA pack id (overrides QALITA_PACK_ID).")
@click.option("--pack-version-id", type=int, help="QALITA pack version id.")
@click.option("--outbox", "outbox_dir", type=click.Path(path_type=Path, file_okay=False),
              help="Outbox folder (default: $QALITA_OUTBOX_DIR, else .qalita/outbox).")
def ingest_dbt(manifest: Path | None, results: Path | None, sources: Path | None,
               project: str | None, environment: str | None, project_dir: Path,
               target_path: Path | None, profiles_dir: Path | None, dbt_target: str | None,
               qalita_schema: str | None, no_tables: bool, dry_run: bool, source_id: int | None,
               pack_id: int | None, pack_version_id: int | None, outbox_dir: Path | None) -> None:
    """Ship every dbt invocation not yet shipped: the results tables first, the artifacts
    (run_results.json, sources.json) for what the tables do not hold."""
    project_dir = project_dir.resolve()
    target_path = target_path or Path(os.environ.get("DBT_TARGET_PATH") or project_dir / "target")
    if not target_path.is_absolute():
        target_path = project_dir / target_path

    def default(given: Path | None, name: str) -> Path | None:
        if given is not None:
            return given  # named explicitly: it must be readable
        path = target_path / name
        return path if path.exists() else None

    manifest_path = default(manifest, "manifest.json")
    results_path = default(results, "run_results.json")
    sources_path = default(sources, "sources.json")
    try:
        man = artifacts.read_manifest(manifest_path) if manifest_path else None
    except artifacts.ArtifactError as exc:
        raise InputError(str(exc)) from exc

    settings = None if dry_run else _settings(source_id=source_id, pack_id=pack_id,
                                              pack_version_id=pack_version_id)
    target: WarehouseTarget | None = None
    problem: str | None = "--no-tables" if no_tables else None
    if not no_tables:
        try:
            target = load_target(profiles_dir, target=dbt_target, project_dir=project_dir)
            if target.adapter == "duckdb" and not Path(target.settings["path"]).exists():
                problem = f"no DuckDB file {target.settings['path']}"
                target = None
        except ProfileError as exc:
            problem = str(exc)
    schema = qalita_schema or (warehouse.default_schema(target) if target else None)
    project = project or (man.project_name if man else None)
    if not project:
        raise InputError("--project is required when no manifest.json is found "
                         f"(looked in {target_path})")
    default_env = (target.target if target else dbt_target) or "default"
    ci_sha = _git_sha()

    def env_of(recorded: str | None) -> str:
        return environment or recorded or default_env

    def key(invocation_id: str, sha: str | None, recorded_env: str | None) -> str:
        return idempotency_key(project, env_of(recorded_env), sha, invocation_id)

    outbox = Outbox(outbox_dir or default_root())
    ledger = _ledger(outbox.root, target, schema)
    try:
        read = _read_dbt(man, results_path, sources_path, target, schema, problem, key, ledger,
                         ci_sha)
    except LedgerError as exc:
        raise InputError(str(exc)) from exc
    if man is not None:
        click.echo(f"manifest: {man.path} (v{man.schema_version}, dbt {man.dbt_version}, "
                   f"project {man.project_name}, {len(man.nodes)} nodes)")
    else:
        click.echo(f"manifest: none found in {target_path}: names come from unique ids")
    click.echo("read:")
    for line in read.lines:
        click.echo(f"  {line}")
    try:
        shipments = [to_shipment.to_shipment(inv, project=project,
                                         environment=env_of(inv.environment), manifest=man)
                     for inv in read.invocations]
    except ValueError as exc:
        raise InputError(str(exc)) from exc
    shipments = [s for s in shipments if not ledger.shipped(s.key)]
    if not shipments:
        click.echo("mapped: nothing new")
        click.echo(f"shipped: nothing new to ship (ledger {ledger.describe()})")
        sys.exit(0)
    totals: Counter[str] = Counter()
    for s in shipments:
        totals.update(metrics=len(s.metrics), recommendations=len(s.recommendations),
                      schemas=len(s.schemas), failed=s.job.status == "failed")
    envs = ", ".join(sorted({str(s.context["environment"]) for s in shipments}))
    click.echo(f"mapped: {len(shipments)} invocation(s) of project {project} / env "
               f"{envs} -> {totals['metrics']} metrics, {totals['recommendations']} "
               f"recommendations, {totals['schemas']} schema entries "
               f"({totals['failed']} job(s) failed)")
    if dry_run:
        for s in shipments:
            click.echo(f"  would ship {s.job.name}: job {s.job.status}, {len(s.metrics)} metrics, "
                       f"{len(s.recommendations)} recommendations, {len(s.schemas)} schemas "
                       f"(key {s.key[:12]})")
        sys.exit(0)
    sys.exit(ship_and_report(shipments, settings, outbox, ledger))


@main.command()
@click.option("--outbox", "outbox_dir", type=click.Path(path_type=Path, file_okay=False),
              help="Outbox folder (default: $QALITA_OUTBOX_DIR, else .qalita/outbox).")
@click.option("--project-dir", type=click.Path(path_type=Path, file_okay=False), default=".",
              show_default=True, help="dbt project whose results schema holds the ledger.")
@click.option("--profiles-dir", type=click.Path(path_type=Path, file_okay=False))
@click.option("--target", "dbt_target")
@click.option("--qalita-schema")
@click.option("--source-id", type=int)
@click.option("--pack-id", type=int)
@click.option("--pack-version-id", type=int)
def flush(outbox_dir: Path | None, project_dir: Path, profiles_dir: Path | None,
          dbt_target: str | None, qalita_schema: str | None, source_id: int | None,
          pack_id: int | None, pack_version_id: int | None) -> None:
    """Send what waits in the outbox, oldest first."""
    outbox = Outbox(outbox_dir or default_root())
    settings = _settings(source_id=source_id, pack_id=pack_id, pack_version_id=pack_version_id)
    target = None
    if (project_dir / "dbt_project.yml").exists():
        try:
            target = load_target(profiles_dir, target=dbt_target, project_dir=project_dir.resolve())
            if target.adapter == "duckdb" and not Path(target.settings["path"]).exists():
                target = None
        except ProfileError:
            target = None  # no warehouse ledger: the file ledger still guards against repeats
    schema = qalita_schema or (warehouse.default_schema(target) if target else None)
    ledger = _ledger(outbox.root, target, schema)
    try:
        pending = len(outbox.entries())
        click.echo(f"outbox: {outbox.pending_dir}: {pending} pending, "
                   f"{len(outbox.dead())} dead")
        if not pending:
            sys.exit(0)
        with _progress(pending, "flushing") as progress:
            outcomes = deliver.flush(settings, outbox, ledger, progress=progress)
    except (OutboxError, LedgerError) as exc:
        raise InputError(str(exc)) from exc
    sys.exit(_report(outcomes, outbox, settings is not None))


# `ingest soda` and `serve airbyte` (integrations/cli.py); imported last, it uses the helpers above.
from qalita_sidecar.cli.integrations import register  # noqa: E402

register(main, ingest)


if __name__ == "__main__":
    main()
