"""What has been delivered: one row per shipment key, written after QALITA acknowledged it.

With dbt the ledger is a table next to the results (`<results schema>.qalita_shipments`), so the
reader can tell shipped invocations from new ones in SQL; tools without a warehouse (Soda, Airbyte,
Dagster) use a JSON-lines file.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any, Protocol

from qalita_sidecar.readers.dbt.profile import ProfileError, WarehouseTarget, connect
from qalita_sidecar.shipment import Shipment

TABLE = "qalita_shipments"


class LedgerError(Exception):
    """The ledger cannot be read or written; the message names the table or the file."""


class Ledger(Protocol):
    def shipped(self, key: str) -> bool: ...

    def record(self, shipment: Shipment, job_id: int | None) -> None: ...


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _row(shipment: Shipment, job_id: int | None) -> tuple[Any, ...]:
    ctx = shipment.context
    return (shipment.key, shipment.origin, ctx.get("invocation_id"), shipment.source_name,
            job_id, len(shipment.metrics), len(shipment.recommendations), len(shipment.schemas),
            time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()))


class WarehouseLedger:
    """`qalita_shipments` in the results schema of a DuckDB or PostgreSQL warehouse."""

    def __init__(self, target: WarehouseTarget, schema: str) -> None:
        self.target = target
        self.schema = schema
        self.table = f"{_quote(schema)}.{TABLE}"
        self._keys: set[str] | None = None

    def _describe(self) -> str:
        return f"{self.schema}.{TABLE} in {self.target.describe()}"

    def _run(self, sql: str, params: tuple[Any, ...] = (), fetch: bool = False) -> list[Any]:
        placeholder = "?" if self.target.adapter == "duckdb" else "%s"
        try:
            con = connect(self.target)
        except ProfileError as exc:  # e.g. the DuckDB file is locked by a running dbt
            raise LedgerError(f"ledger {self.schema}.{TABLE}: {exc}") from exc
        try:
            cur = con.cursor()
            cur.execute(f"create schema if not exists {_quote(self.schema)}")
            cur.execute(
                f"create table if not exists {self.table} ("
                "shipment_key varchar primary key, origin varchar, invocation_id varchar, "
                "source_name varchar, job_id bigint, metrics_count integer, "
                "recommendations_count integer, schemas_count integer, "
                "shipped_at timestamp)")
            cur.execute(sql.replace("%s", placeholder), params)
            rows = cur.fetchall() if fetch else []
            con.commit()
            return rows
        except Exception as exc:
            if type(exc).__module__.split(".")[0] in ("duckdb", "psycopg2"):
                raise LedgerError(f"ledger {self._describe()}: "
                                  f"{str(exc).strip().splitlines()[0]}") from exc
            raise
        finally:
            con.close()

    def keys(self) -> set[str]:
        if self._keys is None:
            rows = self._run(f"select shipment_key from {self.table}", fetch=True)
            self._keys = {r[0] for r in rows}
        return self._keys

    def shipped(self, key: str) -> bool:
        return key in self.keys()

    def record(self, shipment: Shipment, job_id: int | None) -> None:
        self._run(f"insert into {self.table} values (%s, %s, %s, %s, %s, %s, %s, %s, "
                  f"cast(%s as timestamp)) on conflict (shipment_key) do nothing",
                  _row(shipment, job_id))
        if self._keys is not None:
            self._keys.add(shipment.key)


class FileLedger:
    """JSON lines, one per delivered shipment, appended and fsynced."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._keys: set[str] | None = None
        # One lock over the append and the cache: a reader in another thread (the Airbyte
        # receiver) that sees the line on disk also sees the key.
        self._lock = threading.RLock()

    def keys(self) -> set[str]:
        with self._lock:
            return self._load()

    def _load(self) -> set[str]:
        if self._keys is None:
            keys: set[str] = set()
            try:
                lines = self.path.read_text(encoding="utf-8").splitlines()
            except FileNotFoundError:
                lines = []
            except OSError as exc:
                raise LedgerError(f"ledger {self.path}: cannot read ({exc.strerror})") from exc
            for line in lines:
                try:
                    keys.add(json.loads(line)["key"])
                except (ValueError, KeyError, TypeError):
                    continue  # a line torn by a crash mid-append: its shipment was not recorded
            self._keys = keys
        return self._keys

    def shipped(self, key: str) -> bool:
        return key in self.keys()

    def record(self, shipment: Shipment, job_id: int | None) -> None:
        fields = ("key", "origin", "invocation_id", "source_name", "job_id", "metrics",
                  "recommendations", "schemas", "shipped_at")
        record = dict(zip(fields, _row(shipment, job_id), strict=True))
        line = json.dumps(record, ensure_ascii=False)
        with self._lock:
            self._append(line)
            self._load().add(shipment.key)

    def _append(self, line: str) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as fh:
                # A newline first if a crash left a torn line, so this record stays whole.
                if fh.tell() and not self.path.read_bytes().endswith(b"\n"):
                    fh.write("\n")
                fh.write(line + "\n")
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as exc:
            raise LedgerError(f"ledger {self.path}: cannot write ({exc.strerror})") from exc


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
        if self.table is not None and shipment.origin == "dbt":
            self.table.record(shipment, job_id)
        else:
            self.file.record(shipment, job_id)

    def describe(self) -> str:
        if self.table is not None:
            return f"{self.table.schema}.{TABLE}"
        return str(self.file.path)


def file_ledger(outbox_root: Path) -> FileLedger:
    """The JSON-lines ledger beside the outbox (`.qalita/ledger.jsonl`)."""
    return FileLedger(outbox_root.parent / "ledger.jsonl")


def ledger_for(outbox_root: Path, target: WarehouseTarget | None,
               schema: str | None) -> EitherLedger:
    table = WarehouseLedger(target, schema) if target is not None and schema else None
    return EitherLedger(file_ledger(outbox_root), table)
