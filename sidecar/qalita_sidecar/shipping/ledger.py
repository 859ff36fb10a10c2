"""What has been delivered: one row per shipment key, written after QALITA acknowledged it.

With dbt the ledger is a table next to the results (`<results schema>.qalita_shipments`), so the
reader can tell shipped invocations from new ones in SQL; tools without a warehouse (Soda, Airbyte,
Dagster) use a JSON-lines file.

Before a shipment's job is created its key is claimed (`claim`): with the warehouse ledger a row
in `qalita_shipment_claims`, inserted if absent, so two machines never ship one key at once; a
claim older than CLAIM_STALE_S (its holder died) is taken over, and so at once is a claim left by
a dead process of this machine (the caller holds the key's local lock, so its holder is gone).
A taken-over claim tells the caller to look for a job the dead holder may have created.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Protocol

from qalita_sidecar.readers.dbt.profile import ProfileError, WarehouseTarget, connect
from qalita_sidecar.shipment import Shipment

TABLE = "qalita_shipments"
CLAIMS = "qalita_shipment_claims"
CLAIM_STALE_S = 600.0  # a claim this old belongs to a holder that died: 10 x the default deadline
DUCKDB_BUSY_S = 3.0  # another process holds the DuckDB file: wait this long before giving up
_NONCE = uuid.uuid4().hex[:12]  # this process, in its claims


class LedgerError(Exception):
    """The ledger cannot be read or written; the message names the table or the file."""


class ClaimHeld(Exception):
    """Another process (maybe on another machine) is shipping this key now."""


@dataclass(frozen=True)
class Claim:
    key: str
    shipped: bool  # already recorded: nothing to send
    taken_over: bool = False  # from a holder that died: it may have created a job


class Ledger(Protocol):
    def shipped(self, key: str) -> bool: ...

    def claim(self, shipment: Shipment) -> Claim: ...

    def release(self, key: str) -> None: ...

    def record(self, shipment: Shipment, job_id: int | None) -> None: ...


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _utc_now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None, microsecond=0)


def _row(shipment: Shipment, job_id: int | None) -> tuple[Any, ...]:
    return (shipment.key, shipment.origin, shipment.context.invocation_id, shipment.source_name,
            job_id, len(shipment.metrics), len(shipment.recommendations), len(shipment.schemas),
            time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()))


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


class WarehouseLedger:
    """`qalita_shipments` (and its claims) in the results schema of a DuckDB or PostgreSQL
    warehouse."""

    def __init__(self, target: WarehouseTarget, schema: str, local: str = "",
                 stale_s: float = CLAIM_STALE_S) -> None:
        self.target = target
        self.schema = schema
        self.table = f"{_quote(schema)}.{TABLE}"
        self.claims = f"{_quote(schema)}.{CLAIMS}"
        self._keys: set[str] | None = None
        self._ensured = False
        # Who claims: this machine and outbox (its local locks), then this process.
        self.local = f"{socket.gethostname()}:{local}"
        self.me = f"{self.local}|{os.getpid()}|{_NONCE}"
        self.stale_s = stale_s
        self._held: set[str] = set()

    def _describe(self) -> str:
        return f"{self.schema}.{TABLE} in {self.target.describe()}"

    def _connect(self) -> Any:
        deadline = time.monotonic() + DUCKDB_BUSY_S
        while True:
            try:
                return connect(self.target)
            except ProfileError as exc:  # e.g. the DuckDB file is locked by a running dbt
                busy = self.target.adapter == "duckdb" and "lock" in str(exc).lower()
                if not busy or time.monotonic() > deadline:
                    raise LedgerError(f"ledger {self.schema}.{TABLE}: {exc}") from exc
                time.sleep(0.1)

    @contextlib.contextmanager
    def _cursor(self) -> Iterator[Any]:
        """One transaction: the tables exist, the statements run, then commit (or roll back)."""
        con = self._connect()
        try:
            cur = con.cursor()
            if not self._ensured:
                self._ensure(con, cur)
            yield cur
            con.commit()
        except Exception as exc:
            if type(exc).__module__.split(".")[0] in ("duckdb", "psycopg2"):
                raise LedgerError(f"ledger {self._describe()}: {_first_line(exc)}") from exc
            raise
        finally:
            con.close()

    def _ensure(self, con: Any, cur: Any) -> None:
        statements = (
            f"create schema if not exists {_quote(self.schema)}",
            f"create table if not exists {self.table} ("
            "shipment_key varchar primary key, origin varchar, invocation_id varchar, "
            "source_name varchar, job_id bigint, metrics_count integer, "
            "recommendations_count integer, schemas_count integer, shipped_at timestamp)",
            f"create table if not exists {self.claims} ("
            "shipment_key varchar primary key, claimed_by varchar, claimed_at timestamp)",
        )
        for attempt in range(5):
            try:
                for sql in statements:
                    cur.execute(sql)
                con.commit()
                self._ensured = True
                return
            except Exception as exc:
                # Two sessions creating the same table at once: PostgreSQL lets one of them fail
                # on its catalog's unique index; the table exists after the other commits.
                if "already exists" not in str(exc) and "duplicate key" not in str(exc):
                    raise
                con.rollback()
                if attempt == 4:
                    raise
                time.sleep(0.05 * (attempt + 1))

    def _sql(self, sql: str) -> str:
        return sql.replace("%s", "?") if self.target.adapter == "duckdb" else sql

    def keys(self) -> set[str]:
        if self._keys is None:
            with self._cursor() as cur:
                cur.execute(f"select shipment_key from {self.table}")
                self._keys = {r[0] for r in cur.fetchall()}
        return self._keys

    def shipped(self, key: str) -> bool:
        return key in self.keys()

    def claim(self, shipment: Shipment) -> Claim:
        """Claim the key before its job is created; ClaimHeld while another holder lives."""
        key = shipment.key
        with self._cursor() as cur:
            cur.execute(self._sql(f"select 1 from {self.table} where shipment_key = %s"), (key,))
            if cur.fetchall():
                self.keys().add(key)
                return Claim(key, shipped=True)
            now = _utc_now()
            cur.execute(self._sql(f"insert into {self.claims} values (%s, %s, cast(%s as "
                                  "timestamp)) on conflict (shipment_key) do nothing"),
                        (key, self.me, now.isoformat(sep=" ")))
            cur.execute(self._sql(f"select claimed_by, claimed_at from {self.claims} "
                                  "where shipment_key = %s"), (key,))
            rows = cur.fetchall()
            holder, since = rows[0] if rows else (None, None)
            if holder == self.me:
                self._held.add(key)
                return Claim(key, shipped=False)
            mine = isinstance(holder, str) and holder.rsplit("|", 2)[0] == self.local
            stale = not isinstance(since, datetime) or \
                since.replace(tzinfo=None) < now - timedelta(seconds=self.stale_s)
            if not (mine or stale):
                who = holder.rsplit("|", 2)[0] if isinstance(holder, str) else holder
                raise ClaimHeld(f"being shipped from {who} since {since} UTC (claim in "
                                f"{self.schema}.{CLAIMS}); left pending")
            cur.execute(self._sql(f"update {self.claims} set claimed_by = %s, claimed_at = "
                                  "cast(%s as timestamp) where shipment_key = %s and "
                                  "claimed_by = %s"),
                        (self.me, now.isoformat(sep=" "), key, holder))
            cur.execute(self._sql(f"select claimed_by from {self.claims} "
                                  "where shipment_key = %s"), (key,))
            rows = cur.fetchall()
            if not rows or rows[0][0] != self.me:
                raise ClaimHeld(f"claimed by another process just now (claim in "
                                f"{self.schema}.{CLAIMS}); left pending")
            self._held.add(key)
            return Claim(key, shipped=False, taken_over=True)

    def release(self, key: str) -> None:
        if key not in self._held:
            return
        with self._cursor() as cur:
            cur.execute(self._sql(f"delete from {self.claims} where shipment_key = %s and "
                                  "claimed_by = %s"), (key, self.me))
        self._held.discard(key)

    def record(self, shipment: Shipment, job_id: int | None) -> None:
        """The shipment's row, and the end of its claim, in one transaction."""
        with self._cursor() as cur:
            cur.execute(self._sql(f"insert into {self.table} values (%s, %s, %s, %s, %s, %s, %s, "
                                  "%s, cast(%s as timestamp)) on conflict (shipment_key) do "
                                  "nothing"), _row(shipment, job_id))
            if shipment.key in self._held:
                cur.execute(self._sql(f"delete from {self.claims} where shipment_key = %s and "
                                      "claimed_by = %s"), (shipment.key, self.me))
        self._held.discard(shipment.key)
        if self._keys is not None:
            self._keys.add(shipment.key)


class FileLedger:
    """JSON lines, one per delivered shipment, appended and fsynced; never rewritten.

    Read incrementally (only what was appended since), so checking the file again before each
    shipment stays cheap. A complete line that does not parse is reported, never skipped: an edited
    ledger must not silently re-ship. Only an unterminated last line is left out: a crash tore
    that append, whose shipment is still in the outbox (the next record cuts it off first).
    """

    FIELDS = ("key", "origin", "invocation_id", "source_name", "job_id", "metrics",
              "recommendations", "schemas", "shipped_at")

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._keys: set[str] = set()
        self._read_to = 0  # bytes of complete lines read so far
        self._lines = 0
        self._loaded = False
        # One lock over the append and the cache: a reader in another thread (the Airbyte
        # receiver) that sees the line on disk also sees the key.
        self._lock = threading.RLock()

    def keys(self) -> set[str]:
        with self._lock:
            if not self._loaded:
                self._refresh()
            return self._keys

    def _refresh(self) -> None:
        """Read the complete lines appended since the last read."""
        try:
            with open(self.path, "rb") as fh:
                size = os.fstat(fh.fileno()).st_size
                if size < self._read_to:  # truncated or replaced: read it all again
                    self._keys, self._read_to, self._lines = set(), 0, 0
                fh.seek(self._read_to)
                chunk = fh.read()
        except FileNotFoundError:
            chunk = b""
        except OSError as exc:
            raise LedgerError(f"ledger {self.path}: cannot read ({exc.strerror})") from exc
        complete = chunk[:chunk.rfind(b"\n") + 1]
        for raw in complete.splitlines():
            self._lines += 1
            self._keys.add(self._parse(raw, self._lines))
        self._read_to += len(complete)
        self._loaded = True

    def _parse(self, raw: bytes, number: int) -> str:
        where = f"ledger {self.path} line {number}"
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise LedgerError(f"{where} is not UTF-8 (byte {exc.start}); the ledger is "
                              "append-only: restore that line, nothing was sent") from exc
        try:
            record = json.loads(text)
            key = record["key"]
            if not isinstance(key, str) or not key:
                raise TypeError("no key")
        except (ValueError, KeyError, TypeError) as exc:
            raise LedgerError(f"{where} does not parse as a shipment record ({exc}); the "
                              "ledger is append-only: restore that line, nothing was sent") from exc
        return key

    def shipped(self, key: str) -> bool:
        return key in self.keys()

    def claim(self, shipment: Shipment) -> Claim:
        """The file is this machine's only: the caller's key lock is the claim. Read what other
        processes appended, so a key they delivered is not sent again."""
        with self._lock:
            self._refresh()
            return Claim(shipment.key, shipped=shipment.key in self._keys)

    def release(self, key: str) -> None:
        return None

    def record(self, shipment: Shipment, job_id: int | None) -> None:
        record = dict(zip(self.FIELDS, _row(shipment, job_id), strict=True))
        line = json.dumps(record, ensure_ascii=False)
        with self._lock:
            self._append(line)
            self._refresh()
            self._keys.add(shipment.key)

    def _append(self, line: str) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "ab") as fh:
                # Other processes append too: one at a time, so lines never interleave.
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
                try:
                    size = os.fstat(fh.fileno()).st_size
                    if size:
                        with open(self.path, "rb") as rd:
                            rd.seek(max(0, size - 1))
                            torn = rd.read(1) != b"\n"
                        if torn:  # an append torn by a crash: cut off its fragment
                            with open(self.path, "rb") as rd:
                                data = rd.read()
                            os.truncate(self.path, data.rfind(b"\n") + 1)
                    fh.write(line.encode("utf-8") + b"\n")
                    fh.flush()
                    os.fsync(fh.fileno())
                finally:
                    fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
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

    def _in_table(self, shipment: Shipment) -> bool:
        return self.table is not None and shipment.origin == "dbt"

    def claim(self, shipment: Shipment) -> Claim:
        claim = self.file.claim(shipment)
        if claim.shipped or not self._in_table(shipment):
            return claim
        assert self.table is not None
        return self.table.claim(shipment)

    def release(self, key: str) -> None:
        if self.table is not None:
            self.table.release(key)

    def record(self, shipment: Shipment, job_id: int | None) -> None:
        # dbt runs go next to their results; other tools' runs (flushed from the same outbox)
        # go to the file their own `ingest` consults
        if self._in_table(shipment):
            assert self.table is not None
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
    table = WarehouseLedger(target, schema, local=str(Path(outbox_root).resolve())) \
        if target is not None and schema else None
    return EitherLedger(file_ledger(outbox_root), table)
