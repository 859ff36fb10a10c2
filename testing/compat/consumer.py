"""Run the compat consumer project (testing/compat/project/) with the dbt of a compat venv.

Each run works on its own copy of the project (dbt writes target/, logs/, dbt_packages/ into the
project directory) and its own DuckDB file or PostgreSQL database.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import dbt_fork
from testkit import (
    PG_HOST,
    PG_PORT,
    PG_USER,
    create_database,
    drop_database,
    duckdb_query,
    postgres_available,
    postgres_query,
)
from venvs import Venv

HERE = Path(__file__).resolve().parent
PROJECT = HERE / "project"
REPO = HERE.parents[1]
PACKAGE = REPO / "dbt_qalita"


@dataclass
class ConsumerRun:
    """One copy of the consumer project, bound to a venv and an adapter."""

    venv: Venv
    adapter: str  # "duckdb" / "postgres"
    root: Path  # the copy
    env: dict[str, str]
    with_qalita: bool
    database: str | None = None  # PostgreSQL database of this run
    log: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)  # per dbt command

    @property
    def target(self) -> Path:
        return self.root / "target"

    def dbt(self, *args: str, check_codes: tuple[int, ...] = (0, 1)) -> subprocess.CompletedProcess:
        cmd = [str(self.venv.bin / "dbt"), *args]
        if not self.with_qalita and args[:1] != ("deps",):
            cmd += ["--vars", "{qalita_hook: false}"]
        started = time.monotonic()
        proc = dbt_fork.run(cmd, self.root, self.env)
        name = " ".join(itertools.takewhile(lambda a: not a.startswith("-"), args))
        self.seconds[name] = round(time.monotonic() - started, 1)
        self.log.append(f"$ {' '.join(cmd[1:])} -> {proc.returncode}")
        if proc.returncode not in check_codes:
            raise RuntimeError(f"dbt {' '.join(args)} exited {proc.returncode} (dbt "
                               f"{self.venv.version.minor}, {self.adapter}):\n"
                               f"{proc.stdout[-5000:]}\n{proc.stderr[-3000:]}")
        return proc

    def artifact(self, name: str) -> dict:
        return json.loads((self.target / name).read_text())

    def query(self, sql: str) -> list[tuple]:
        """Read from this run's warehouse with the host's drivers (after dbt has exited)."""
        if self.adapter == "duckdb":
            return duckdb_query(self.env["COMPAT_DUCKDB_PATH"], sql)
        return postgres_query(self.database, sql)

    def close(self) -> None:
        if self.database:
            drop_database(self.database)


# the same check as every other suite's
postgres_unavailable = postgres_available


def prepare(venv: Venv, adapter: str, workdir: Path, with_qalita: bool | None = None
            ) -> ConsumerRun:
    """Copy the project into `workdir`, point it at the qalita package, give it a warehouse."""
    if with_qalita is None:
        with_qalita = venv.version.with_qalita
    root = workdir / "project"
    shutil.copytree(PROJECT, root, ignore=shutil.ignore_patterns(
        "target", "logs", "dbt_packages", "package-lock.yml", "*.duckdb*"))
    if with_qalita:
        # the repo's packages.yml names the package relative to the project; the copy lives
        # elsewhere, so it gets the absolute path
        (root / "packages.yml").write_text(f"packages:\n  - local: {PACKAGE}\n")
        # dbt 1.8 and 1.9 run project hooks on `dbt source freshness` only with this flag (1.10
        # made it the default); `flags:` in dbt_project.yml is dbt 1.8's (older dbt read flags
        # from profiles.yml), so only the copy the package runs in gets it
        with (root / "dbt_project.yml").open("a") as f:
            f.write("\nflags:\n  source_freshness_run_project_hooks: true\n")
    else:
        (root / "packages.yml").unlink()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DBT_", "QALITA_", "COMPAT_", "VIRTUAL_ENV"))}
    env.update({
        "DBT_PROFILES_DIR": str(root),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "COMPAT_TARGET": adapter,
        "COMPAT_DUCKDB_PATH": str(workdir / "warehouse.duckdb"),
        "PATH": f"{venv.bin}{os.pathsep}{os.environ.get('PATH', '')}",
        "DBT_POSTGRES_HOST": PG_HOST, "DBT_POSTGRES_PORT": str(PG_PORT), "DBT_POSTGRES_USER": PG_USER,
    })
    database = None
    if adapter == "postgres":
        database = f"qalita_compat_{venv.version.minor.replace('.', '_')}_{uuid.uuid4().hex[:8]}"
        create_database(database)
        env["COMPAT_POSTGRES_DATABASE"] = database
    run = ConsumerRun(venv, adapter, root, env, with_qalita, database)
    if with_qalita:
        run.dbt("deps", check_codes=(0,))
    return run
