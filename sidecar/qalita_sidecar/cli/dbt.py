"""`qalita-sidecar ingest dbt` and `qalita-sidecar flush`.

    qalita-sidecar ingest dbt [--project-dir .] [--target-path target] [--no-tables] [--dry-run]
    qalita-sidecar flush

It never runs dbt, so it never masks dbt's exit code: its own status says what happened to the
results: 0 delivered (or nothing new), 75 queued in the outbox (QALITA unreachable or not
configured), 1 failed (bad input, or QALITA refused a shipment: see the outbox's dead/ folder).
"""

from __future__ import annotations

import os
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import click

from qalita_sidecar.cli.common import (
    InputError,
    outbox_option,
    progress_bar,
    qalita_id_options,
    report,
    settings_for,
    ship_and_report,
)
from qalita_sidecar.readers.dbt import artifacts, to_shipment, warehouse
from qalita_sidecar.readers.dbt.profile import (
    ProfileError,
    WarehouseTarget,
    load_target,
    project_name,
    target_name,
)
from qalita_sidecar.shipping import deliver
from qalita_sidecar.shipping.ledger import EitherLedger, LedgerError, ledger_for
from qalita_sidecar.shipping.outbox import Outbox, OutboxError

# The commit a CI run builds, as the dbt package records it (first found wins).
GIT_SHA_VARS = ("GITHUB_SHA", "CI_COMMIT_SHA", "DBT_CLOUD_GIT_SHA")


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
            known = read.known_ids
            idle = [i for i in read.invocations if to_shipment.executes_nothing(i)]
            invocations += [i for i in read.invocations if i not in idle]
            lines.append(f"table {schema}.qalita_invocations ({target.describe()}): "
                         f"{len(read.known_ids)} invocations, {len(read.invocations)} not yet "
                         "shipped")
            if idle:
                names = ", ".join(sorted({to_shipment.command_name(i.command) for i in idle}))
                lines.append(f"table {schema}.qalita_invocations: {len(idle)} invocation(s) "
                             f"tested nothing ({names}): not shipped")
        else:
            problem = read.problem
    if problem:
        lines.append(f"tables not used: {problem}")
    foreign: list[artifacts.ForeignResults] = []
    for path, reader in ((results, artifacts.read_run_results), (sources, artifacts.read_sources)):
        if path is None:
            continue
        try:
            # the commit this CI run builds, as the package records it for the same run
            inv = replace(reader(path, manifest), git_sha=ci_sha)
        except artifacts.ForeignResults as exc:
            lines.append(f"warning: {exc}: not shipped")  # the other file can still serve
            foreign.append(exc)
            continue
        except artifacts.ArtifactError as exc:
            raise InputError(str(exc)) from exc
        lines += [f"warning: {w}" for w in inv.warnings]
        nothing = to_shipment.executes_nothing(inv)
        if nothing:
            lines.append(f"{path}: {nothing}: not shipped")
            continue
        if inv.invocation_id in known:
            lines.append(f"{path}: invocation {inv.invocation_id} is in the table")
            continue
        if ledger.shipped(key(inv.invocation_id, inv.git_sha, inv.environment)):
            lines.append(f"{path}: invocation {inv.invocation_id} already shipped")
            continue
        invocations.append(inv)
        lines.append(f"{path}: invocation {inv.invocation_id} ({inv.command}, "
                     f"{len(inv.results)} result(s)){' not in the table' if known else ''}")
        if inv.command == "freshness" and _drops_freshness_errors(inv.dbt_version):
            lines.append(f"{path}: freshness runtime errors are only known from the results "
                         "table (sources.json leaves them out since dbt 1.8)")
    if foreign and len(foreign) == (results is not None) + (sources is not None) and problem:
        raise InputError(str(foreign[0]))  # no table, no file: the manifest is the odd one
    return _Read(invocations, lines)


def _drops_freshness_errors(dbt_version: str | None) -> bool:
    """dbt 1.8 and later (Fusion too) leave a source whose freshness query failed out of
    sources.json; an unreadable version is assumed recent."""
    try:
        major, minor = (int(p) for p in (dbt_version or "").split(".")[:2])
    except ValueError:
        return True
    return (major, minor) >= (1, 8)


def _project_name(man: artifacts.Manifest | None, project_dir: Path, target_path: Path,
                  results_path: Path | None, sources_path: Path | None) -> str:
    """The manifest's name, else dbt_project.yml's, else the package the results' node ids name.

    Exits 0 when the files hold no result at all (nothing ran: no name is needed to say so)."""
    name = (man.project_name if man else None) or project_name(project_dir)
    if name:
        return name
    ids = {p: artifacts.result_ids(p) for p in (results_path, sources_path) if p}
    name = artifacts.project_of_ids(i for listed in ids.values() for i in listed or ())
    if name:
        return name
    files = list(ids)
    if files and all(listed == [] for listed in ids.values()):
        for path in files:
            click.echo(f"{path}: no result, nothing ran: not shipped")
        click.echo("shipped: nothing to ship")
        sys.exit(0)
    try:  # a file that cannot be read says so before a missing name is blamed
        if results_path:
            artifacts.read_run_results(results_path)
        if sources_path:
            artifacts.read_sources(sources_path)
    except artifacts.ArtifactError as exc:
        raise InputError(str(exc)) from exc
    raise InputError(f"--project is required: no manifest.json in {target_path}, no "
                     f"dbt_project.yml in {project_dir}, and no node id names a project")


@click.command("dbt")
@click.option("--manifest", type=click.Path(path_type=Path),
              help="manifest.json (default: <target-path>/manifest.json).")
@click.option("--results", type=click.Path(path_type=Path),
              help="run_results.json (default: <target-path>/run_results.json, if present).")
@click.option("--sources", type=click.Path(path_type=Path),
              help="sources.json of `dbt source freshness` (default: <target-path>/sources.json, "
                   "if present).")
@click.option("--project", help="Project name in QALITA (default: the dbt project's name, from "
              "manifest.json, else dbt_project.yml, else the results' node ids).")
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
@qalita_id_options
@outbox_option
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

    settings = None if dry_run else settings_for(source_id=source_id, pack_id=pack_id,
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
    project = project or _project_name(man, project_dir, target_path, results_path,
                                       sources_path)
    # the package's rule for an environment (var qalita_environment, else the target's name),
    # applied the same way to the tables and to the artifacts, so one invocation keeps one key
    # however it is read: without a warehouse, the target dbt would run with
    default_env = (target.target if target else None) or target_name(
        profiles_dir, dbt_target, project_dir) or "default"
    ci_sha = _git_sha()

    def env_of(recorded: str | None) -> str:
        return environment or recorded or default_env

    def key(invocation_id: str, sha: str | None, recorded_env: str | None) -> str:
        return to_shipment.dbt_key(project, env_of(recorded_env), sha, invocation_id)

    outbox = Outbox(outbox_dir)
    ledger = ledger_for(outbox.root, target, schema)
    try:
        read = _read_dbt(man, results_path, sources_path, target, schema, problem, key, ledger,
                         ci_sha)
    except LedgerError as exc:
        raise InputError(str(exc)) from exc
    if man is not None:
        click.echo(f"manifest: {man.path} (v{man.schema_version}, dbt {man.dbt_version}, "
                   f"project {man.project_name}, {len(man.nodes)} nodes)")
        for warning in man.warnings:
            click.echo(f"  warning: {warning}")
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
                      schemas=len(s.schemas), failed=int(s.job.status == "failed"))
    envs = ", ".join(sorted({str(s.context.environment) for s in shipments}))
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


@click.command()
@outbox_option
@click.option("--project-dir", type=click.Path(path_type=Path, file_okay=False), default=".",
              show_default=True, help="dbt project whose results schema holds the ledger.")
@click.option("--profiles-dir", type=click.Path(path_type=Path, file_okay=False))
@click.option("--target", "dbt_target")
@click.option("--qalita-schema")
@qalita_id_options
def flush(outbox_dir: Path | None, project_dir: Path, profiles_dir: Path | None,
          dbt_target: str | None, qalita_schema: str | None, source_id: int | None,
          pack_id: int | None, pack_version_id: int | None) -> None:
    """Send what waits in the outbox, oldest first."""
    outbox = Outbox(outbox_dir)
    settings = settings_for(source_id=source_id, pack_id=pack_id, pack_version_id=pack_version_id)
    target = None
    if (project_dir / "dbt_project.yml").exists():
        try:
            target = load_target(profiles_dir, target=dbt_target, project_dir=project_dir.resolve())
            if target.adapter == "duckdb" and not Path(target.settings["path"]).exists():
                target = None
        except ProfileError:
            target = None  # no warehouse ledger: the file ledger still guards against repeats
    schema = qalita_schema or (warehouse.default_schema(target) if target else None)
    ledger = ledger_for(outbox.root, target, schema)
    try:
        pending = outbox.pending_count()  # read once, by the flush itself
        click.echo(f"outbox: {outbox.pending_dir}: {pending} pending, "
                   f"{len(outbox.dead())} dead")
        if not pending:
            sys.exit(0)
        with progress_bar(pending, "flushing") as progress:
            outcomes = deliver.flush(settings, outbox, ledger, progress=progress)
    except (OutboxError, LedgerError) as exc:
        raise InputError(str(exc)) from exc
    sys.exit(report(outcomes, outbox, settings is not None))
