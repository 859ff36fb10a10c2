"""A dbt Cloud run -> one Shipment per step that executed nodes, mapped as `ingest dbt` maps.

Which steps ship: those that invoked dbt with build, run, test, seed, snapshot, retry (their
run_results.json) or source freshness (its sources.json); a step whose command is not one of the
known ones is judged by its run_results' `args.which`. `dbt docs generate`, compile, deps, ls,
run-operation and the setup steps (clone, profile) ship nothing and the summary says so.

The key is `ingest dbt`'s (project, environment, git sha, dbt invocation id): the environment is
--env, else the job's target name (what dbt's `target.name` is in that run, so what the package
records), else "default"; the git sha is the run's (DBT_CLOUD_GIT_SHA in that run). So the same
invocation shipped from CI artifacts and from dbt Cloud is shipped once.

Artifacts are streamed to a temporary folder and read with the `ingest dbt` readers; a shipped
step's manifest (the large file) is not downloaded again.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import msgspec

from qalita_sidecar.readers.dbt import artifacts, to_shipment
from qalita_sidecar.readers.dbt.cloud import ERROR, DbtCloudClient, DbtCloudError, Run, Step
from qalita_sidecar.run_context import DbtCloudRun
from qalita_sidecar.shipment import Origin, Shipment

ORIGIN: Origin = "dbt-cloud"
RESULTS_COMMANDS = frozenset({"build", "run", "test", "seed", "snapshot", "retry"})
FRESHNESS_COMMANDS = ("source freshness", "source snapshot-freshness")
# dbt commands that execute no node: nothing to ship, said in the summary
NO_RESULTS = {"docs": "builds the docs (a compile: no test outcome)",
              "compile": "compiles only (no test outcome)", "deps": "installs packages",
              "parse": "parses only", "ls": "lists nodes", "list": "lists nodes",
              "run-operation": "runs a macro (no node results)", "debug": "checks the connection",
              "clean": "cleans folders", "show": "previews a query", "clone": "clones relations",
              "source": "is not a freshness check", "init": "creates a project"}


@dataclass(frozen=True)
class StepRead:
    step: Step
    note: str  # one line for the summary
    shipment: Shipment | None = None
    problem: str | None = None  # an artifact that should be there is not: one line, step named


@dataclass(frozen=True)
class RunRead:
    run: Run
    environment: str
    steps: tuple[StepRead, ...]

    @property
    def shipments(self) -> list[Shipment]:
        return [s.shipment for s in self.steps if s.shipment is not None]

    @property
    def problems(self) -> list[str]:
        return [s.problem for s in self.steps if s.problem]

    def summary(self) -> list[str]:
        """What was read, one line per dbt step, for a command's output or a receiver's log."""
        run = self.run
        job = f", job {run.job_id}" + (f" ({run.job_name})" if run.job_name else "") \
            if run.job_id else ""
        lines = [f"dbt Cloud run {run.id} (account {run.account_id}{job}): {run.status_name}; "
                 f"env {self.environment}, git sha {run.git_sha or 'unknown'}"]
        if not run.finished:
            lines.append("  the run has not finished: only its finished steps are read; read it "
                         "again once it has")
        setup = [s for s in self.steps if s.step.dbt_command is None]
        if setup:
            lines.append(f"  {len(setup)} setup step(s) (clone, profile): nothing to ship")
        return lines + [f"  {s.note}" for s in self.steps if s.step.dbt_command is not None]


def step_kind(step: Step) -> tuple[str, str]:
    """("results" | "freshness" | "judge" | "none", why) for one step, from its name."""
    command = step.dbt_command
    if command is None:
        return "none", "not a dbt invocation"
    words = command.split()
    head = words[0] if words else ""
    if " ".join(words[:2]) in FRESHNESS_COMMANDS:
        return "freshness", "source freshness"
    if head in RESULTS_COMMANDS:
        return "results", head
    if head in NO_RESULTS:
        return "none", NO_RESULTS[head]
    return "judge", head  # not known by name: its run_results' args.which decides


def environment_of(run: Run, given: str | None) -> str:
    return given or run.target_name or "default"


class _StepReader:
    def __init__(self, client: DbtCloudClient, run: Run, folder: Path, project: str | None,
                 environment: str, source_name: str | None,
                 shipped: Callable[[str], bool]) -> None:
        self.client, self.run, self.folder = client, run, folder
        self.project = project  # given, else learnt from the first manifest of this run
        self.environment, self.source_name, self.shipped = environment, source_name, shipped

    def where(self, step: Step, name: str) -> str:
        return f"dbt Cloud run {self.run.id} {step.label} {name}"

    def fetch(self, step: Step, name: str) -> Path | None:
        dest = self.folder / f"step{step.index}-{name}"
        return dest if self.client.download(self.run.id, name, step, dest) else None

    def read(self, step: Step) -> StepRead:
        kind, why = step_kind(step)
        if kind == "none":
            return StepRead(step, f"{step.label}: {why}: nothing to ship")
        if not step.finished:
            return StepRead(step, f"{step.label}: {step.status_humanized or 'not run'}: "
                            "nothing to ship")
        name = "sources.json" if kind == "freshness" else "run_results.json"
        path = self.fetch(step, name)
        if path is None:
            if step.status == ERROR:  # dbt stopped before writing it (a parse error, say)
                return StepRead(step, f"{step.label}: failed before writing {name}: "
                                "nothing to ship")
            return StepRead(step, f"{step.label}: no {name}",
                            problem=f"{self.where(step, name)}: missing (404 from dbt Cloud), "
                                    "so the step cannot be shipped")
        reader = artifacts.read_sources if kind == "freshness" else artifacts.read_run_results
        inv = self._invocation(step, name, path, reader, None)
        if kind != "freshness" and inv.command not in RESULTS_COMMANDS:
            return StepRead(step, f"{step.label}: ran `{inv.command}` (args.which): no node "
                            "results, nothing to ship")
        if self.project and self.shipped(self._key(self.project, inv)):
            return StepRead(step, f"{step.label}: invocation {inv.invocation_id} already shipped")
        manifest_path = self.fetch(step, "manifest.json")
        manifest = None
        if manifest_path is not None:
            manifest = self._manifest(step, manifest_path)
            inv = self._invocation(step, name, path, reader, manifest)
        project = self.project or (manifest.project_name if manifest else None)
        if project is None:
            return StepRead(step, f"{step.label}: no manifest.json",
                            problem=f"{self.where(step, 'manifest.json')}: missing, and no "
                                    "--project names the dbt project")
        self.project = project
        if self.shipped(self._key(project, inv)):
            return StepRead(step, f"{step.label}: invocation {inv.invocation_id} already shipped")
        try:
            shipment = to_shipment.to_shipment(inv, project=project,
                                               environment=self.environment, manifest=manifest,
                                               source_name=self.source_name)
        except ValueError as exc:
            raise DbtCloudError(f"{self.where(step, name)}: {exc}") from exc
        # its own origin: recorded in the ledger file that `ingest dbt-cloud` and `serve dbt-cloud`
        # consult (a dbt-origin shipment goes to the warehouse ledger when `flush` has one)
        cloud = DbtCloudRun(account_id=self.run.account_id, run_id=self.run.id,
                            step=step.index, job_id=self.run.job_id)
        shipment = msgspec.structs.replace(
            shipment, origin=ORIGIN,
            context=msgspec.structs.replace(shipment.context, dbt_cloud=cloud))
        names = f"{'manifest.json + ' if manifest else ''}{name}"
        return StepRead(step, f"{step.label}: {names}: invocation {inv.invocation_id} "
                        f"({inv.command}, {len(inv.results)} result(s))", shipment)

    def _key(self, project: str, inv: artifacts.Invocation) -> str:
        return to_shipment.dbt_key(project, self.environment, inv.git_sha, inv.invocation_id)

    def _invocation(self, step: Step, name: str, path: Path,
                    reader: Callable[..., artifacts.Invocation],
                    manifest: artifacts.Manifest | None) -> artifacts.Invocation:
        try:
            inv = reader(path, manifest)
        except artifacts.ArtifactError as exc:
            raise DbtCloudError(str(exc).replace(str(path), self.where(step, name))) from exc
        return replace(inv, origin=self.where(step, name), git_sha=self.run.git_sha,
                       git_branch=self.run.git_branch)

    def _manifest(self, step: Step, path: Path) -> artifacts.Manifest:
        try:
            return artifacts.read_manifest(path)
        except artifacts.ArtifactError as exc:
            raise DbtCloudError(str(exc).replace(str(path),
                                                 self.where(step, "manifest.json"))) from exc


def read_run(client: DbtCloudClient, run_id: int, *, project: str | None = None,
             environment: str | None = None, source_name: str | None = None,
             shipped: Callable[[str], bool] = lambda _key: False) -> RunRead:
    """Read a run's steps and map every finished step that executed nodes to a Shipment."""
    run = client.run(run_id)
    env = environment_of(run, environment)
    with tempfile.TemporaryDirectory(prefix="qalita-dbt-cloud-") as tmp:
        reader = _StepReader(client, run, Path(tmp), project, env, source_name, shipped)
        steps = tuple(reader.read(step) for step in run.steps)
    return RunRead(run, env, steps)
