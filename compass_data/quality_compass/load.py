"""Load an insight-graph run folder into the six raw tables the dbt sources read.

- Every line is parsed before the warehouse is touched: a malformed line stops the load with
  `<file>:<line>: ...` and nothing of that run is written.
- The write is one transaction: the run's previous rows (if any) are deleted, then the rows are
  bulk-loaded: PostgreSQL COPYs CSV files staged by the parse; DuckDB reads the JSONL files
  themselves with read_csv (one line, one field) and checks it got as many rows as the parse. A
  reload of the same run therefore replaces it; other runs stay (history).
- Every row of one load carries the same run_id and loaded_at (UTC, without time zone).
"""

from __future__ import annotations

import re
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import duckdb
import orjson
import psycopg2

from qalita_sidecar.readers.dbt.profile import WarehouseTarget, connect, load_target

RAW_SCHEMA = "raw"
DUCKDB_MEMORY_LIMIT = "1GB"
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class LoadError(Exception):
    """A run folder that cannot be loaded; the message names the file (and line)."""


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[tuple[str, str], ...]  # staged columns (after run_id), with portable types


TABLES = (
    Table("raw_node_results", (("file_path", "text"), ("json_data", "text"))),
    Table("raw_entity_results", (("canonical_node_id", "varchar(512)"), ("file_path", "text"),
                                 ("json_data", "text"))),
    Table("raw_contributions", (("file_path", "text"), ("json_data", "text"))),
    Table("raw_classifications", (("file_path", "text"), ("json_data", "text"))),
    Table("raw_modeling_runs", (("config_path", "text"), ("status", "varchar(50)"),
                                ("groups", "text"), ("run_dir", "text"),
                                ("duration_seconds", "double precision"))),
    Table("raw_modeling_experiments", (("json_data", "text"),)),
)


@dataclass(frozen=True)
class LoadResult:
    run_id: str
    loaded_at: datetime
    rows: dict[str, int]
    seconds: float
    target: str

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())


def resolve_run_dir(path: Path) -> Path:
    """A run folder (has results/) or a folder of runs: then the newest run (by name)."""
    path = Path(path)
    if (path / "results").is_dir():
        return path
    runs = sorted(p for p in path.glob("*") if (p / "results").is_dir()) if path.is_dir() else []
    if not runs:
        raise LoadError(f"{path}: not a run folder (no results/ inside, nor any run folder)")
    return runs[-1]


def _parse(path: Path, lineno: int, raw: bytes) -> dict[str, Any]:
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise LoadError(f"{path}:{lineno}: malformed JSON ({exc})") from None
    if not isinstance(obj, dict):
        raise LoadError(f"{path}:{lineno}: expected a JSON object, got {type(obj).__name__}")
    return obj


def _jsonl(path: Path, plain: list[bool] | None = None
           ) -> Iterator[tuple[int, bytes, dict[str, Any]]]:
    """Non-blank lines, stripped and parsed. `plain[0]` is cleared when a line holds more than its
    text and a final LF (a CR, surrounding blanks): DuckDB cannot read such a file as is."""
    with open(path, "rb") as fh:
        for lineno, line in enumerate(fh, start=1):
            raw = line.strip()
            if plain is not None and plain[0] and line.rstrip(b"\n") != raw:
                plain[0] = False
            if raw:
                yield lineno, raw, _parse(path, lineno, raw)


def _csv_field(value: Any) -> bytes:
    """One CSV field: None is an unquoted empty field (NULL), anything else is quoted."""
    if value is None:
        return b""
    if isinstance(value, bytes):
        return b'"' + value.replace(b'"', b'""') + b'"'
    if isinstance(value, float | int):
        return repr(value).encode()
    return b'"' + str(value).encode().replace(b'"', b'""') + b'"'


@dataclass(frozen=True)
class SourceFile:
    """A JSONL file whose lines go to a raw table as they are (the DuckDB direct path)."""
    path: Path
    rel: str
    node_id: str | None  # node files: the canonical_node_id of every entity line
    skip_line: str | None  # node files: the metadata line, which is not an entity row
    plain: bool  # only JSON text and LF line ends: DuckDB reads it directly


class _Stage:
    """CSV files (one per raw table) that the warehouse bulk-loads. Written as bytes by hand:
    the csv module is five times slower on long JSON lines, which are most of a run.

    Tables in `direct` get no CSV: their rows are only counted, and the writer bulk-reads the
    source files themselves (`files`), after this parse has proven every line valid."""

    def __init__(self, folder: Path, run_id: str, loaded_at: str,
                 direct: frozenset[str] = frozenset()) -> None:
        self.run_id, self.loaded_at, self.direct = run_id, loaded_at, direct
        self.paths = {t.name: folder / f"{t.name}.csv" for t in TABLES}
        self._fh = {n: open(p, "wb") for n, p in self.paths.items()}  # noqa: SIM115
        self._prefix = _csv_field(run_id) + b"," + _csv_field(loaded_at)
        self.rows = dict.fromkeys(self.paths, 0)
        self.files: dict[str, list[SourceFile]] = {n: [] for n in self.paths}

    def add(self, table: str, *values: Any) -> None:
        self.rows[table] += 1
        if table in self.direct:
            return
        fh = self._fh[table]
        fh.write(self._prefix)
        for v in values:
            fh.write(b",")
            fh.write(_csv_field(v))
        fh.write(b"\n")

    def add_file(self, table: str, source: SourceFile) -> None:
        self.files[table].append(source)

    def close(self) -> None:
        for fh in self._fh.values():
            fh.close()


def _check_run_id(path: Path, lineno: int, obj: dict[str, Any], run_id: str) -> None:
    # The models join on run_id taken from the JSON (contributions) and from the loader: a run
    # folder renamed after the engine wrote it would split one run in two, silently.
    found = obj.get("run_id")
    if found is not None and str(found) != run_id:
        raise LoadError(f"{path}:{lineno}: run_id '{found}' differs from the run being loaded "
                        f"('{run_id}', the run folder's name)")


def stage_run(run_dir: Path, stage: _Stage) -> None:
    """Parse every file of the run into the stage; raises LoadError at the first bad line."""
    nodes_dir = run_dir / "results" / "nodes"
    node_files = sorted(nodes_dir.glob("*.jsonl"))
    if not node_files:
        raise LoadError(f"{nodes_dir}: no node files (*.jsonl)")
    for path in node_files:
        rel = path.relative_to(run_dir).as_posix()
        node_id, meta, plain = None, "", [True]
        for lineno, raw, obj in _jsonl(path, plain):
            if node_id is None:
                node_id = obj.get("canonical_node_id")
                if obj.get("type") != "node_metadata" or not isinstance(node_id, str) \
                        or not node_id:
                    raise LoadError(f"{path}:{lineno}: the first line must be the node metadata "
                                    "(type node_metadata with a canonical_node_id)")
                stage.add("raw_node_results", rel, raw)
                meta = raw.decode()
            elif obj.get("type") == "node_metadata":
                raise LoadError(f"{path}:{lineno}: a second node metadata line (only the first "
                                "line of a node file describes the node)")
            else:
                stage.add("raw_entity_results", node_id, rel, raw)
        if node_id is None:
            raise LoadError(f"{path}: empty node file (no node metadata line)")
        stage.add_file("raw_entity_results", SourceFile(path, rel, node_id, meta, plain[0]))
    for sub, table in (("contribution", "raw_contributions"),
                       ("classification", "raw_classifications")):
        for path in sorted((run_dir / "analysis" / sub).glob("*.jsonl")):
            rel = path.relative_to(run_dir).as_posix()
            plain = [True]
            for lineno, raw, obj in _jsonl(path, plain):
                _check_run_id(path, lineno, obj, stage.run_id)
                stage.add(table, rel, raw)
            stage.add_file(table, SourceFile(path, rel, None, None, plain[0]))
    summary = run_dir / "modeling" / "run_summary.json"
    if summary.exists():
        s = _parse_document(summary, dict)
        _check_run_id(summary, 1, s, stage.run_id)
        duration = s.get("duration_seconds")
        if duration is not None and not isinstance(duration, int | float):
            raise LoadError(f"{summary}: duration_seconds must be a number, got {duration!r}")
        stage.add("raw_modeling_runs", s.get("config_path"), s.get("status"),
                  orjson.dumps(s.get("groups") or []), s.get("run_dir"), duration)
    experiments = run_dir / "modeling" / "experiments.json"
    if experiments.exists():
        for item in _parse_document(experiments, list):
            if not isinstance(item, dict):
                raise LoadError(f"{experiments}: every experiment must be a JSON object")
            stage.add("raw_modeling_experiments", orjson.dumps(item))


def _parse_document(path: Path, kind: type) -> Any:
    """A whole-file JSON document; a syntax error is reported with its line number."""
    data = path.read_bytes()
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        lineno = data.count(b"\n", 0, exc.pos) + 1
        raise LoadError(f"{path}:{lineno}: malformed JSON ({exc.msg})") from None
    if not isinstance(obj, kind):
        raise LoadError(f"{path}: expected a JSON {'object' if kind is dict else 'array'}, "
                        f"got {type(obj).__name__}")
    return obj


def ddl(schema: str, adapter: str) -> list[str]:
    stmts = [f"create schema if not exists {schema}"]
    for t in TABLES:
        cols = ", ".join(f"{c} {ty}" for c, ty in t.columns)
        if adapter == "postgres":
            ident = "id bigserial primary key"
        else:
            stmts.append(f"create sequence if not exists {schema}.{t.name}_id_seq")
            ident = f"id bigint default nextval('{schema}.{t.name}_id_seq')"
        stmts.append(f"create table if not exists {schema}.{t.name} ({ident}, "
                     f"run_id varchar(255) not null, loaded_at timestamp not null, {cols})")
        if adapter == "postgres":
            # DuckDB gets none: its zone maps already skip other runs, and an ART index would
            # be rebuilt in memory on every bulk insert.
            stmts.append(f"create index if not exists {t.name}_run_id_idx "
                         f"on {schema}.{t.name} (run_id)")
        if t.name == "raw_entity_results" and adapter == "postgres":
            stmts.append(f"create index if not exists {t.name}_node_idx "
                         f"on {schema}.{t.name} (canonical_node_id)")
    return stmts


# Tables the DuckDB writer reads straight from the run's files: their lines are most of a run, and
# copying them into a CSV first costs more than the insert itself.
DUCKDB_DIRECT = frozenset({"raw_entity_results", "raw_contributions", "raw_classifications"})
# What Python's bytes.strip() removes around a line (the parse above saw stripped lines).
_STRIP = " \t\r\x0b\x0c"


def _insert_direct_duckdb(con: Any, schema: str, table: Table, stage: _Stage) -> None:
    """Insert the lines of the table's source files as they are. The delimiter, byte 0x01,
    cannot occur in valid JSON (control characters must be escaped), so a line is one field."""
    files = [f for f in stage.files[table.name] if f.plain]
    before = con.execute(f"select count(*) from {schema}.{table.name}").fetchone()[0]
    others = [f for f in stage.files[table.name] if not f.plain]
    if others:  # rare (CRLF files...): through a CSV, like PostgreSQL
        _insert_csv_duckdb(con, schema, table, _csv_of(others, table, stage))
    if files:
        _read_plain_files(con, schema, table, stage, files)
    inserted = con.execute(f"select count(*) from {schema}.{table.name}").fetchone()[0] - before
    if inserted != stage.rows[table.name]:
        # DuckDB split the files differently from the parse: refuse rather than load a wrong run.
        raise LoadError(f"{table.name}: DuckDB read {inserted} lines where the parse found "
                        f"{stage.rows[table.name]}; nothing loaded")


def _csv_of(files: list[SourceFile], table: Table, stage: _Stage) -> Path:
    """The rows of these (already validated) files as a CSV for the bulk reader."""
    path = stage.paths[table.name].with_suffix(".fallback.csv")
    prefix = _csv_field(stage.run_id) + b"," + _csv_field(stage.loaded_at)
    with open(path, "wb") as fh:
        for f in files:
            rows = _jsonl(f.path)
            if f.skip_line is not None:
                next(rows)  # the node metadata line
            for _lineno, raw, _obj in rows:
                values = (f.node_id, f.rel, raw) if f.node_id else (f.rel, raw)
                fh.write(prefix + b"".join(b"," + _csv_field(v) for v in values) + b"\n")
    return path


def _read_plain_files(con: Any, schema: str, table: Table, stage: _Stage,
                      files: list[SourceFile]) -> None:
    con.execute("create or replace temp table _compass_files (filename varchar, rel varchar, "
                "node_id varchar, skip_line varchar)")
    con.executemany("insert into _compass_files values (?, ?, ?, ?)",
                    [[str(f.path), f.rel, f.node_id, f.skip_line] for f in files])
    node_col = "canonical_node_id, " if table.name == "raw_entity_results" else ""
    node_val = "f.node_id, " if node_col else ""
    con.execute(
        f"insert into {schema}.{table.name} (run_id, loaded_at, {node_col}file_path, json_data) "
        f"select ?, cast(? as timestamp), {node_val}f.rel, r.line "
        "from (select trim(line, ?) as line, filename "
        "      from read_csv(?, header = false, quote = '', escape = '', delim = '\x01', "
        "                    new_line = '\\n', max_line_size = 200000000, "
        "                    columns = {'line': 'varchar'}, filename = true, "
        "                    auto_detect = false)) r "
        "join _compass_files f on f.filename = r.filename "
        "where r.line <> '' and r.line is distinct from f.skip_line",
        [stage.run_id, stage.loaded_at, _STRIP, [str(f.path) for f in files]])


def _insert_csv_duckdb(con: Any, schema: str, t: Table, path: Path) -> None:
    names = ["run_id", "loaded_at", *(c for c, _ in t.columns)]
    types = ["varchar", "timestamp",
             *("double" if ty.startswith("double") else "varchar" for _, ty in t.columns)]
    spec = ", ".join(f"'{n}': '{ty}'" for n, ty in zip(names, types, strict=True))
    con.execute(
        f"insert into {schema}.{t.name} ({', '.join(names)}) select {', '.join(names)} "
        f"from read_csv(?, header = false, quote = '\"', escape = '\"', delim = ',', "
        f"new_line = '\\n', allow_quoted_nulls = false, max_line_size = 200000000, "
        f"columns = {{{spec}}})", [str(path)])


def _write_duckdb(con: Any, schema: str, stage: _Stage) -> None:
    # The staged rows stream from disk; without a cap DuckDB keeps up to 80 % of the machine's
    # memory in buffers while a million-row run is inserted (about 1.2 GB per 100k entity rows).
    con.execute(f"set memory_limit = '{DUCKDB_MEMORY_LIMIT}'")
    con.execute("begin transaction")
    try:
        for s in ddl(schema, "duckdb"):
            con.execute(s)
        for t in TABLES:
            con.execute(f"delete from {schema}.{t.name} where run_id = ?", [stage.run_id])
            if not stage.rows[t.name]:
                continue
            if t.name in stage.direct:
                _insert_direct_duckdb(con, schema, t, stage)
            else:
                _insert_csv_duckdb(con, schema, t, stage.paths[t.name])
        con.execute("commit")
    except Exception:
        con.execute("rollback")
        raise


def _write_postgres(con: Any, schema: str, stage: _Stage) -> None:
    try:
        with con.cursor() as cur:
            for s in ddl(schema, "postgres"):
                cur.execute(s)
            for t in TABLES:
                cur.execute(f"delete from {schema}.{t.name} where run_id = %s", [stage.run_id])
                if not stage.rows[t.name]:
                    continue
                cols = ", ".join(["run_id", "loaded_at", *(c for c, _ in t.columns)])
                with open(stage.paths[t.name], "rb") as fh:
                    cur.copy_expert(f"copy {schema}.{t.name} ({cols}) from stdin "
                                    "with (format csv)", fh, size=1 << 20)
                cur.execute(f"analyze {schema}.{t.name}")
        con.commit()
    except Exception:
        con.rollback()
        raise


def load_run(run_dir: Path, target: WarehouseTarget, schema: str = RAW_SCHEMA,
             run_id: str | None = None) -> LoadResult:
    """Validate the whole run, then write it in one transaction (replacing a previous load)."""
    if not _IDENT.match(schema):
        raise LoadError(f"raw schema '{schema}' is not a plain SQL identifier")
    run_dir = resolve_run_dir(run_dir)
    run_id = run_id or run_dir.name
    started = time.perf_counter()
    loaded_at = datetime.now(timezone.utc).replace(tzinfo=None)
    with tempfile.TemporaryDirectory(prefix="compass-stage-") as tmp:
        stage = _Stage(Path(tmp), run_id, loaded_at.isoformat(sep=" "),
                       DUCKDB_DIRECT if target.adapter == "duckdb" else frozenset())
        try:
            stage_run(run_dir, stage)
        finally:
            stage.close()
        con = connect(target)
        try:
            if target.adapter == "duckdb":
                _write_duckdb(con, schema, stage)
            else:
                _write_postgres(con, schema, stage)
        except (duckdb.Error, psycopg2.Error) as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise LoadError(f"{target.describe()}: loading run {run_id} failed, nothing loaded "
                            f"({first})") from exc
        finally:
            con.close()
    return LoadResult(run_id, loaded_at, dict(stage.rows), time.perf_counter() - started,
                      target.describe())


def load_from_profile(run_dir: Path, target: str | None = None, profiles_dir: Path | None = None,
                      project_dir: Path | None = None, schema: str = RAW_SCHEMA) -> LoadResult:
    wt = load_target(profiles_dir=profiles_dir, target=target, project_dir=project_dir)
    return load_run(run_dir, wt, schema=schema)
