"""Test kit: real dbt runs in isolated state, on DuckDB and on PostgreSQL.

Each dbt run gets its own DuckDB file, target path and log path under tmp, so tests never share
state and never touch the developer's `quality_compass.duckdb` or `target/`.

What tests do share is dbt's parse of the host project. A full parse is most of a run (about 4 of
its 6 s here), and dbt reuses a saved one (`partial_parse.msgpack`) only when the connection
values are the same as when it was saved. So the runs of the host project see the same ones: the
DuckDB file by a name relative to the run's folder, and a PostgreSQL database whose name is fixed
within a test process (the lowest slot free); the last parse saved for a target and `--vars` is
put into a run's target folder before it starts. dbt itself checks that the saved parse still
holds (files, vars, profile, version) and parses again where it does not.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import dbt_fork
import pytest

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
REQUIRE_POSTGRES = os.environ.get("QALITA_TEST_REQUIRE_POSTGRES") == "1"
PG_HOST = os.environ.get("DBT_POSTGRES_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("DBT_POSTGRES_PORT", "5432"))
PG_USER = os.environ.get("DBT_POSTGRES_USER", "postgres")


@dataclass
class DbtProject:
    """A dbt project run in isolation: `run(...)` is the real dbt CLI in a process of its own."""

    project_dir: Path
    target: str
    env: dict[str, str]
    target_path: Path
    extra: dict[str, str] = field(default_factory=dict)

    def run(self, *args: str, check: bool = True, vars: dict | None = None,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        cmd = [str(BIN / "dbt"), *args, "--project-dir", str(self.project_dir),
               "--profiles-dir", str(REPO), "--target", self.target]
        if vars:
            cmd += ["--vars", json.dumps(vars)]
        run_env, cwd = {**self.env, **(env or {})}, self.project_dir
        saved = None
        if self.project_dir == REPO:
            run_env, cwd = _stable_connection(run_env)
            saved = _saved_parse(self.target, vars, run_env)
            _copy_atomically(saved, self.target_path / PARSE)
        proc = dbt_fork.run(cmd, cwd, run_env)
        if saved is not None:
            _copy_atomically(self.target_path / PARSE, saved)
        if check and proc.returncode != 0:
            raise AssertionError(f"dbt {' '.join(args)} failed ({proc.returncode}):\n"
                                 f"{proc.stdout[-6000:]}\n{proc.stderr[-3000:]}")
        return proc

    def artifact(self, name: str) -> dict:
        return json.loads((self.target_path / name).read_text())

    def execute(self, sql: str) -> None:
        """Run a statement (committed) against this project's warehouse."""
        if self.target == "dev":
            duckdb_query(self.env["DBT_DUCKDB_PATH"], sql, read_only=False)
        else:
            postgres_execute(self.env["DBT_POSTGRES_DATABASE"], sql)

    def query(self, sql: str) -> list[tuple]:
        """Run a query against this project's warehouse (after dbt has exited)."""
        if self.target == "dev":
            return duckdb_query(self.env["DBT_DUCKDB_PATH"], sql)
        return postgres_query(self.env["DBT_POSTGRES_DATABASE"], sql)


PARSE = "partial_parse.msgpack"
PER_RUN = ("DBT_TARGET_PATH", "DBT_LOG_PATH")  # where a run writes, no part of what it parses
# Shared by the test processes of one pytest session: pytest_fixtures points it into the
# session's temporary folder (pytest removes old ones); outside pytest, one per process.
PARSES = Path(tempfile.gettempdir()) / f"qalita-test-parses-{os.getpid()}"


def _stable_connection(env: dict[str, str]) -> tuple[dict[str, str], Path]:
    """The run's environment and folder, the DuckDB file named relative to that folder: dbt
    sees the same path in every test, so a saved parse stays valid."""
    path = env.get("DBT_DUCKDB_PATH")
    if not path or not os.path.isabs(path):
        return env, REPO
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return {**env, "DBT_DUCKDB_PATH": os.path.basename(path)}, Path(path).parent


def _saved_parse(target: str, vars: dict | None, env: dict[str, str]) -> Path:
    """Where the last parse of the host project for this target, vars and connection is kept."""
    settings = sorted((k, v) for k, v in env.items() if k.startswith("DBT_") and k not in PER_RUN)
    key = json.dumps([target, vars or {}, settings])
    return PARSES / f"{hashlib.sha256(key.encode()).hexdigest()[:16]}.msgpack"


def _copy_atomically(source: Path, dest: Path) -> None:
    """`source` over `dest` (if there is a source): a reader never sees half a file."""
    if not source.exists():
        return
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    shutil.copyfile(source, tmp)
    os.replace(tmp, dest)


def duckdb_query(path: str, sql: str, read_only: bool = True) -> list[tuple]:
    import duckdb

    con = duckdb.connect(path, read_only=read_only)
    try:
        cur = con.execute(sql)
        return cur.fetchall() if read_only else []
    finally:
        con.close()


def postgres_query(database: str, sql: str) -> list[tuple]:
    import psycopg2

    con = psycopg2.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname=database)
    try:
        with con.cursor() as cur:
            cur.execute(sql)
            return cur.fetchall()
    finally:
        con.close()


def postgres_execute(database: str, sql: str) -> None:
    """One statement in autocommit (CREATE/DROP DATABASE need it)."""
    import psycopg2

    con = psycopg2.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname=database)
    con.autocommit = True
    try:
        with con.cursor() as cur:
            cur.execute(sql)
    finally:
        con.close()


def base_env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DBT_", "QALITA_"))}
    env.update({
        "DBT_DUCKDB_PATH": str(tmp / "warehouse.duckdb"),
        "DBT_TARGET_PATH": str(tmp / "target"),
        "DBT_LOG_PATH": str(tmp / "logs"),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    })
    for k in ("DBT_POSTGRES_HOST", "DBT_POSTGRES_PORT", "DBT_POSTGRES_USER"):
        if k in os.environ:
            env[k] = os.environ[k]
    return env


def postgres_available() -> str | None:
    """None when a server answers, else the reason it does not."""
    try:
        import psycopg2

        psycopg2.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname="postgres",
                         connect_timeout=3).close()
        return None
    except Exception as exc:  # any failure means: no usable server
        return f"PostgreSQL at {PG_HOST}:{PG_PORT} is not reachable ({str(exc).strip()})"


def create_database(name: str) -> None:
    drop_database(name)
    postgres_execute("postgres", f'create database "{name}"')


def drop_database(name: str) -> None:
    postgres_execute("postgres", f'drop database if exists "{name}" with (force)')
    _slots_in_use.discard(name)


_slots_in_use: set[str] = set()


def _database_slot() -> str:
    """A database name of this test process, the lowest not in use: the same name from test to
    test, so dbt's saved parse (which holds the connection values) stays valid."""
    names = (f"qc_test_{os.getpid()}_{slot}" for slot in itertools.count())
    name = next(n for n in names if n not in _slots_in_use)
    _slots_in_use.add(name)
    return name


def require_postgres() -> None:
    reason = postgres_available()
    if reason is None:
        return
    if REQUIRE_POSTGRES:
        pytest.fail(f"{reason}; QALITA_TEST_REQUIRE_POSTGRES=1 requires it")
    pytest.skip(reason)


_deps_done = False


def ensure_host_deps() -> None:
    """`dbt deps` of the host project (the local `qalita` package), once per test session, by the
    first test that runs dbt: pure tests never pay for it."""
    global _deps_done
    if _deps_done:
        return
    tmp = Path(tempfile.gettempdir())
    proc = dbt_fork.run([str(BIN / "dbt"), "deps", "--project-dir", str(REPO), "--profiles-dir",
                         str(REPO)], REPO,
                        {**base_env(tmp), "DBT_LOG_PATH": str(tmp / "qalita-dbt-deps-logs")})
    if proc.returncode != 0:
        raise AssertionError(f"dbt deps of the host project failed:\n{proc.stdout[-3000:]}")
    _deps_done = True


def make_project(tmp: Path, target: str, project_dir: Path = REPO) -> DbtProject:
    if project_dir == REPO:
        ensure_host_deps()
    env = base_env(tmp)
    if target == "prod":
        require_postgres()
        db = _database_slot()
        create_database(db)
        env["DBT_POSTGRES_DATABASE"] = db
    return DbtProject(project_dir, target, env, tmp / "target")
