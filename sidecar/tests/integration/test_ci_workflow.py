"""examples/ci/github-actions.yml run step by step on this machine against the QALITA contract
server (and the GitLab job's script, at the end): each step's `run:` script in order, in bash as GitHub runs it (`-eo pipefail`), with the
workflow's env, `if:` conditions, step outputs and `${{ }}` expressions.

What stands in for GitHub: a copy of the working tree is the checkout; `actions/setup-python` is
this venv; the `pip install` step is answered by a `pip` on PATH that checks the requirements file
exists (this venv is the environment it installs, already built by `make install`); the PostgreSQL
service is the local server at the same host and port, with a new database per run (a runner's
service is new per run); `actions/cache` restore/save copy the path to and from a folder. The
test's own settings on top of the workflow's: that database's name, the contract server's
endpoint, token and ids as the repository's vars and secrets, and a short QALITA deadline.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from testkit import BIN, REPO, create_database, drop_database, require_postgres

WORKFLOW = REPO / "examples" / "ci" / "github-actions.yml"
EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")
PIP_SHIM = """#!/bin/sh
# The workflow's install step: this venv is the environment it installs (make install).
echo "pip $*" >> "$PIP_SHIM_LOG"
if [ "$1" = install ] && [ "$2" = -r ] && [ -f "$3" ]; then exit 0; fi
echo "pip stand-in: not the install the workflow should make: $*" >&2
exit 2
"""


@dataclass
class StepResult:
    name: str
    ran: bool
    status: int | None = None
    output: str = ""


@dataclass
class Runner:
    """Runs one job of a workflow: `run:` steps in bash, a few `uses:` emulated, others skipped."""

    workflow: dict[str, Any]
    job: str
    workspace: Path
    cache: Path
    context: dict[str, dict[str, str]]
    base_env: dict[str, str]
    overrides: dict[str, str]
    outputs: dict[str, dict[str, str]] = field(default_factory=dict)
    results: list[StepResult] = field(default_factory=list)

    def evaluate(self, text: Any) -> str:
        def value(m: re.Match[str]) -> str:
            parts = m.group(1).split(".")
            if parts[0] in ("secrets", "vars", "github") and len(parts) == 2:
                return self.context[parts[0]].get(parts[1], "")
            if parts[0] == "steps" and len(parts) == 4 and parts[2] == "outputs":
                return self.outputs.get(parts[1], {}).get(parts[3], "")
            raise AssertionError(f"expression not supported by the test runner: {m.group(0)}")

        return EXPRESSION.sub(value, str(text))

    def env(self, step: dict[str, Any]) -> dict[str, str]:
        env = dict(self.base_env)
        for scope in (self.workflow.get("env"), self.workflow["jobs"][self.job].get("env"),
                      step.get("env")):
            env.update({k: self.evaluate(v) for k, v in (scope or {}).items()})
        env.update(self.overrides)
        return env

    def run(self) -> list[StepResult]:
        failed = False
        for step in self.workflow["jobs"][self.job]["steps"]:
            name = step.get("name") or step.get("uses") or step["run"].splitlines()[0]
            condition = str(step.get("if", "")).strip()
            if condition not in ("", "always()"):
                raise AssertionError(f"condition not supported by the test runner: {condition}")
            if failed and condition != "always()":
                self.results.append(StepResult(name, ran=False))
                continue
            result = self.uses(name, step) if "uses" in step else self.script(name, step)
            self.results.append(result)
            failed = failed or (result.status or 0) != 0
        return self.results

    def uses(self, name: str, step: dict[str, Any]) -> StepResult:
        action = step["uses"].split("@")[0]
        given = {k: self.evaluate(v) for k, v in (step.get("with") or {}).items()}
        if action in ("actions/checkout", "actions/setup-python"):
            return StepResult(name, ran=False)  # the copied tree, this venv
        if action == "actions/cache/restore":
            keys = [given["key"], *given.get("restore-keys", "").split()]
            for key in keys:
                hits = sorted((p for p in self.cache.glob("*") if p.name.startswith(key)),
                              key=lambda p: p.stat().st_mtime, reverse=True)
                if hits:
                    shutil.copytree(hits[0], self.workspace / given["path"], dirs_exist_ok=True)
                    return StepResult(name, ran=True, status=0, output=f"restored {hits[0].name}")
            return StepResult(name, ran=True, status=0, output="cache miss")
        if action == "actions/cache/save":
            source = self.workspace / given["path"]
            if source.exists():
                shutil.copytree(source, self.cache / given["key"])
            return StepResult(name, ran=True, status=0, output=f"saved {given['key']}")
        raise AssertionError(f"action not emulated by the test runner: {action}")

    def script(self, name: str, step: dict[str, Any]) -> StepResult:
        index = len(self.results)
        script = self.workspace.parent / f"step-{index}.sh"
        script.write_text(self.evaluate(step["run"]))
        output = self.workspace.parent / f"step-{index}.output"
        output.write_text("")
        env = {**self.env(step), "GITHUB_OUTPUT": str(output)}
        proc = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
                              cwd=self.workspace, env=env, capture_output=True, text=True,
                              timeout=600)
        if step.get("id"):
            self.outputs[step["id"]] = dict(
                line.split("=", 1) for line in output.read_text().splitlines() if "=" in line)
        return StepResult(name, ran=True, status=proc.returncode,
                          output=proc.stdout + proc.stderr)

    def step(self, name: str) -> StepResult:
        [found] = [r for r in self.results if r.name == name]
        return found


def checkout(tmp: Path) -> Path:
    """The working tree's files as a checkout would lay them (nothing git ignores)."""
    workspace = tmp / "workspace"
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard",
                            "-z"], cwd=REPO, capture_output=True, text=True,
                           check=True).stdout.split("\0")
    for name in filter(None, files):
        source = REPO / name
        if source.is_file():
            (workspace / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, workspace / name)
    return workspace


def run_workflow(tmp: Path, cache: Path, qalita_server, run_id: int,
                 edit: dict[str, tuple[str, str]] | None = None) -> Runner:
    workspace = checkout(tmp)
    for path, (old, new) in (edit or {}).items():  # a commit of this run
        text = (workspace / path).read_text()
        assert old in text
        (workspace / path).write_text(text.replace(old, new))
    shims = tmp / "shims"
    shims.mkdir()
    (shims / "pip").write_text(PIP_SHIM)
    (shims / "pip").chmod(0o755)
    database = f"qc_ci_{uuid.uuid4().hex[:10]}"
    create_database(database)
    sha = f"{run_id:040x}"
    base_env = {k: v for k, v in os.environ.items()
                if not k.startswith(("DBT_", "QALITA_", "GITHUB_", "GITLAB_", "CI"))}
    base_env.update({
        "PATH": f"{shims}{os.pathsep}{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "HOME": str(tmp), "CI": "true", "GITHUB_ACTIONS": "true", "GITHUB_SHA": sha,
        "GITHUB_REF_NAME": "main", "GITHUB_RUN_ID": str(run_id), "GITHUB_WORKFLOW": "dbt",
        "GITHUB_JOB": "dbt", "GITHUB_REPOSITORY": "example/quality-compass",
        "GITHUB_SERVER_URL": "https://github.com", "GITHUB_WORKSPACE": str(workspace),
        "PIP_SHIM_LOG": str(tmp / "pip.log")})
    context = {
        "github": {"ref_name": "main", "run_id": str(run_id), "sha": sha,
                   "ref": "refs/heads/main"},
        "secrets": {"DBT_POSTGRES_PASSWORD": "", "QALITA_TOKEN": qalita_server.token},
        "vars": {"QALITA_ENDPOINT": qalita_server.url,
                 "QALITA_PACK_ID": str(qalita_server.pack_id),
                 "QALITA_PACK_VERSION_ID": str(qalita_server.pack_version_id)},
    }
    runner = Runner(yaml.safe_load(WORKFLOW.read_text()), "dbt", workspace, cache, context,
                    base_env, {"DBT_POSTGRES_DATABASE": database, "QALITA_DEADLINE": "3"})
    try:
        runner.run()
    finally:
        drop_database(database)
    return runner


def test_the_github_workflow_ships_keeps_the_outbox_and_ends_with_dbts_status(tmp_path,
                                                                              qalita_server):
    require_postgres()
    cache = tmp_path / "cache"
    cache.mkdir()

    # run 1: QALITA is down; the build passes
    qalita_server.stop()
    first = run_workflow(tmp_path / "run1", cache, qalita_server, 1001)
    names = [r.name for r in first.results]
    assert names[:3] == ["actions/checkout@v4", "actions/setup-python@v5",
                         "Install dbt and the sidecar"]
    assert all(r.ran for r in first.results[2:]), [(r.name, r.output[-2000:])
                                                    for r in first.results]
    assert (tmp_path / "run1" / "pip.log").read_text() == "pip install -r requirements-dev.txt\n"
    assert first.outputs["build"] == {"status": "0"}
    assert first.outputs["freshness"] == {"status": "0"}
    ship = first.step("Ship to QALITA")
    assert ship.status == 0, ship.output
    assert "::warning::results wait in .qalita/outbox" in ship.output
    verdict = first.step("dbt's exit status")
    assert verdict.status == 0 and "dbt build exited 0, dbt source freshness 0" in verdict.output
    [saved] = cache.glob("qalita-outbox-main-1001")
    assert len(list((saved / "outbox" / "pending").glob("*.json"))) == 2  # build, freshness

    # run 2: QALITA is back; a commit makes the build fail (the failing test variant)
    qalita_server.start()
    second = run_workflow(tmp_path / "run2", cache, qalita_server, 1002, edit={
        "dbt_project.yml": ("airquality_failing_variant: false",
                            "airquality_failing_variant: true")})
    assert second.step("Restore the outbox").output == "restored qalita-outbox-main-1001"
    assert second.outputs["build"] == {"status": "1"}
    ship = second.step("Ship to QALITA")
    assert ship.status == 0, ship.output
    assert "2 delivered" in ship.output.split("shipped:")[1]  # run 1's, from the cache
    verdict = second.step("dbt's exit status")
    assert verdict.status == 1, verdict.output  # dbt's status, not the sidecar's
    assert "dbt build exited 1" in verdict.output
    assert second.step("Save the outbox").ran

    jobs = sorted(qalita_server.received.jobs.values(), key=lambda j: j.id)
    assert len(jobs) == 4 and qalita_server.received.rejected == []
    assert sorted((j.name.split()[1], j.status) for j in jobs) == [
        ("build", "failed"), ("build", "succeeded"), ("freshness", "succeeded"),
        ("freshness", "succeeded")]
    recs = [item for u in qalita_server.received.uploads["recommendations"] for item in u.items]
    assert any(r["type"] == "Test failed" and "121 failing rows" in r["content"] for r in recs)
    [saved] = cache.glob("qalita-outbox-main-1002")
    assert list((saved / "outbox" / "pending").glob("*.json")) == []



GITLAB = REPO / "examples" / "ci" / "gitlab-ci.yml"
VARIABLE = re.compile(r"\$(\w+)|\$\{(\w+)\}")


def test_the_gitlab_job_ships_and_ends_with_dbts_status(tmp_path, qalita_server):
    """The GitLab job's script, in one bash session as GitLab's shell runner runs it, with the
    file's variables expanded against the CI/CD variables; the postgres service is the local
    server (the test's DBT_POSTGRES_HOST and database on top of the file's)."""
    require_postgres()
    config = yaml.safe_load(GITLAB.read_text())
    workspace = checkout(tmp_path)
    text = (workspace / "dbt_project.yml").read_text()  # a commit that breaks the build
    (workspace / "dbt_project.yml").write_text(
        text.replace("airquality_failing_variant: false", "airquality_failing_variant: true"))
    shims = tmp_path / "shims"
    shims.mkdir()
    (shims / "pip").write_text(PIP_SHIM)
    (shims / "pip").chmod(0o755)
    database = f"qc_ci_{uuid.uuid4().hex[:10]}"
    create_database(database)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DBT_", "QALITA_", "GITHUB_", "GITLAB_", "CI"))}
    env.update({
        "PATH": f"{shims}{os.pathsep}{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "HOME": str(tmp_path), "CI": "true", "GITLAB_CI": "true", "CI_COMMIT_SHA": "c" * 40,
        "CI_COMMIT_REF_NAME": "main", "CI_COMMIT_REF_SLUG": "main", "CI_JOB_ID": "77",
        "CI_PIPELINE_ID": "7", "CI_PROJECT_DIR": str(workspace),
        "CI_JOB_URL": "https://gitlab.example/jobs/77", "PIP_SHIM_LOG": str(tmp_path / "pip.log"),
        # the project's CI/CD variables
        "DBT_POSTGRES_PASSWORD": "", **qalita_server.env()})
    for name, value in config["variables"].items():
        env[name] = VARIABLE.sub(lambda m: env.get(m.group(1) or m.group(2), ""), str(value))
    env.update({"DBT_POSTGRES_HOST": "127.0.0.1", "DBT_POSTGRES_DATABASE": database,
                "QALITA_DEADLINE": "3"})
    script = tmp_path / "job.sh"
    script.write_text("\n".join(config["dbt"]["script"]) + "\n")
    try:
        proc = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
                              cwd=workspace, env=env, capture_output=True, text=True,
                              timeout=600)
    finally:
        drop_database(database)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out[-4000:]  # dbt build's status, not the sidecar's
    assert "dbt build exited 1, dbt source freshness 0" in out
    assert (tmp_path / "pip.log").read_text() == "pip install -r requirements-dev.txt\n"
    jobs = sorted((j.name.split()[1], j.status) for j in qalita_server.received.jobs.values())
    assert jobs == [("build", "failed"), ("freshness", "succeeded")]
    assert list((workspace / ".qalita" / "outbox" / "pending").glob("*.json")) == []
