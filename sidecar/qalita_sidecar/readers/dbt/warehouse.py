"""Read the invocations the dbt package recorded (qalita_invocations, qalita_results).

The tables are the primary source: they hold every invocation, not only the last one whose
artifacts survive in target/. A missing table or an unreachable warehouse is not an error here:
the caller falls back to the artifacts and the summary says why.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from qalita_sidecar.readers.dbt.artifacts import Invocation, Result
from qalita_sidecar.readers.dbt.profile import ProfileError, WarehouseTarget, connect

_INVOCATION_COLUMNS = ("invocation_id", "command", "started_at", "finished_at", "project_name",
                       "environment", "target_name", "dbt_version", "git_sha", "git_branch")
_RESULT_COLUMNS = ("invocation_id", "unique_id", "status", "resource_type", "name", "failures",
                   "rows_affected", "message", "execution_time", "severity", "test_name",
                   "column_name", "attached_node", "age", "max_loaded_at")


@dataclass(frozen=True)
class InvocationHeader:
    """An invocation row without its results (enough to compute its idempotency key)."""

    invocation_id: str
    git_sha: str | None
    started_at: Any
    environment: str | None = None  # var qalita_environment, else the target's name


@dataclass(frozen=True)
class WarehouseRead:
    invocations: tuple[Invocation, ...]  # the wanted ones, oldest first, with their results
    known_ids: frozenset[str]  # every invocation id the table holds (shipped or not)
    problem: str | None = None  # why the tables could not serve (None = they did)


def default_schema(target: WarehouseTarget) -> str:
    """The package's default: `<target schema>_qalita` (var qalita_schema overrides it in dbt)."""
    return f"{target.schema}_qalita"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _table_exists(cur: Any, adapter: str, schema: str, table: str) -> bool:
    mark = "?" if adapter == "duckdb" else "%s"
    cur.execute("select count(*) from information_schema.tables "
                f"where table_schema = {mark} and table_name = {mark}", (schema, table))
    return cur.fetchone()[0] > 0


def read_invocations(
    target: WarehouseTarget,
    schema: str,
    project_name: str | None,
    wanted: Callable[[InvocationHeader], bool] = lambda _h: True,
) -> WarehouseRead:
    """The recorded invocations of `project_name` that `wanted` keeps, with their results."""
    try:
        # read-write like the ledger: DuckDB refuses two configurations of one file in a process
        con = connect(target)
    except ProfileError as exc:
        return WarehouseRead((), frozenset(), str(exc))
    try:
        cur = con.cursor()
        for table in ("qalita_invocations", "qalita_results"):
            if not _table_exists(cur, target.adapter, schema, table):
                return WarehouseRead((), frozenset(), f"no table {schema}.{table} in "
                                     f"{target.describe()}")
        mark = "?" if target.adapter == "duckdb" else "%s"
        inv_table = f"{_ident(schema)}.qalita_invocations"
        where, params = ("", ()) if project_name is None else (
            f" where project_name = {mark}", (project_name,))
        cur.execute(f"select {', '.join(_INVOCATION_COLUMNS)} from {inv_table}{where} "
                    "order by started_at, invocation_id", params)
        rows = [dict(zip(_INVOCATION_COLUMNS, r, strict=True)) for r in cur.fetchall()]
        known = frozenset(r["invocation_id"] for r in rows)
        keep = [r for r in rows
                if wanted(InvocationHeader(r["invocation_id"], r["git_sha"], r["started_at"],
                                          r["environment"]))]
        by_id: dict[str, list[Result]] = {r["invocation_id"]: [] for r in keep}
        if keep:
            res_table = f"{_ident(schema)}.qalita_results"
            # one query for all wanted invocations; `in` lists stay small (unshipped ones only)
            ids = list(by_id)
            for start in range(0, len(ids), 500):
                chunk = ids[start:start + 500]
                cur.execute(f"select {', '.join(_RESULT_COLUMNS)} from {res_table} "
                            f"where invocation_id in ({', '.join([mark] * len(chunk))}) "
                            "order by started_at, unique_id", tuple(chunk))
                for r in cur.fetchall():
                    by_id[r[0]].append(_result(r))
        origin = f"table {schema}.qalita_results ({target.describe()})"
        invocations = tuple(
            Invocation(
                invocation_id=r["invocation_id"], command=r["command"],
                started_at=r["started_at"], finished_at=r["finished_at"],
                results=tuple(by_id[r["invocation_id"]]), origin=origin,
                project_name=r["project_name"], environment=r["environment"],
                target_name=r["target_name"], dbt_version=r["dbt_version"],
                git_sha=r["git_sha"], git_branch=r["git_branch"])
            for r in keep)
        return WarehouseRead(invocations, known)
    except Exception as exc:  # a driver error (lock held by dbt, permissions...) -> fallback
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return WarehouseRead((), frozenset(), f"cannot read {schema} in {target.describe()}: "
                             f"{first}")
    finally:
        con.close()


def _result(r: tuple) -> Result:
    (_inv, uid, status, rtype, name, failures, rows, message, exec_time, severity, test_name,
     column, attached, age, max_loaded_at) = r
    return Result(
        unique_id=uid, status=status, resource_type=rtype, name=name,
        failures=None if failures is None else int(failures),
        rows_affected=None if rows is None else int(rows),
        message=message, execution_time=None if exec_time is None else float(exec_time),
        severity=severity, test_name=test_name, column_name=column, attached_node=attached,
        age=None if age is None else float(age),
        max_loaded_at=None if max_loaded_at is None else str(max_loaded_at))
