"""A durable queue on disk: every shipment is written here before any request is made.

`pending/<key>.json` waits to be sent (replayed oldest first); `dead/<key>.json` holds what QALITA
refused, with its answer. Every write is tmp file + fsync + rename + fsync of the directory, so
a crash leaves either the old file or the new one, never half of one (the Vector / Fluent Bit
disk-buffer discipline). The ids QALITA gives (source, job) are noted in a small
`pending/<key>.ids.json` as soon as they are known, so a replay reuses the job instead of creating
a second one, and the big payload is written once and never rewritten.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from qalita_sidecar.shipment import Shipment

DEFAULT_ROOT = Path(".qalita/outbox")
DEFAULT_MAX_BYTES = 512 * 1024 * 1024
IDS_SUFFIX = ".ids.json"


class OutboxError(Exception):
    """The outbox cannot take or give a shipment; the message names the file or the setting."""


@dataclass(frozen=True)
class Entry:
    path: Path
    shipment: Shipment
    queued_at_ns: int
    source_id: int | None
    job_id: int | None


def default_root(env: dict[str, str] | None = None) -> Path:
    env = dict(os.environ) if env is None else env
    return Path(env.get("QALITA_OUTBOX_DIR") or DEFAULT_ROOT)


def _dumps(data: Any, indent: bool = False) -> bytes:
    option = orjson.OPT_NON_STR_KEYS | (orjson.OPT_INDENT_2 if indent else 0)
    try:
        return orjson.dumps(data, option=option)
    except orjson.JSONEncodeError:  # e.g. an int beyond 64 bits: the slow encoder takes it
        return json.dumps(data, ensure_ascii=False, indent=1 if indent else None).encode("utf-8")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _is_entry(path: Path) -> bool:
    return not path.name.endswith(IDS_SUFFIX)


class Outbox:
    def __init__(self, root: Path | None = None, max_bytes: int | None = None) -> None:
        self.root = Path(root) if root is not None else default_root()
        if max_bytes is None:
            raw = os.environ.get("QALITA_OUTBOX_MAX_MB", "").strip()
            try:
                max_bytes = int(float(raw) * 1024 * 1024) if raw else DEFAULT_MAX_BYTES
            except ValueError as exc:
                raise OutboxError(f"QALITA_OUTBOX_MAX_MB must be a number, got {raw!r}") from exc
        self.max_bytes = max_bytes
        self.pending_dir = self.root / "pending"
        self.dead_dir = self.root / "dead"

    def _ensure(self) -> None:
        try:
            self.pending_dir.mkdir(parents=True, exist_ok=True)
            self.dead_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutboxError(f"outbox {self.root}: cannot create ({exc.strerror})") from exc

    def path(self, key: str) -> Path:
        if (not key or not all(c.isalnum() or c in "-_." for c in key) or key.startswith(".")
                or f"{key}.json".endswith(IDS_SUFFIX)):
            raise OutboxError(f"shipment key {key!r} is not usable as a file name")
        return self.pending_dir / f"{key}.json"

    def ids_path(self, key: str) -> Path:
        return self.pending_dir / f"{key}{IDS_SUFFIX}"

    def dead_path(self, key: str) -> Path:
        return self.dead_dir / self.path(key).name

    def size_bytes(self) -> int:
        total = 0
        for folder in (self.pending_dir, self.dead_dir):
            if folder.is_dir():
                total += sum(p.stat().st_size for p in folder.glob("*.json"))
        return total

    def put(self, shipment: Shipment) -> Path:
        """Spool a shipment (no-op when its key already waits: the entry keeps its job id)."""
        return self._put(shipment)[0]

    def put_entry(self, shipment: Shipment) -> Entry:
        """put(), then the entry, without reading back a payload the caller holds."""
        path, queued_at_ns = self._put(shipment)
        if queued_at_ns is None:  # it waited already: only its queue time and ids are on disk
            queued_at_ns = int(self._load(path).get("queued_at_ns", 0))
            ids = self.noted(shipment.key)
            return Entry(path, shipment, queued_at_ns, ids.get("source_id"), ids.get("job_id"))
        return Entry(path, shipment, queued_at_ns, None, None)

    def _put(self, shipment: Shipment) -> tuple[Path, int | None]:
        """The entry's path, and its queue time when written now (None when it already waited)."""
        self._ensure()
        path = self.path(shipment.key)
        if path.exists():
            return path, None
        queued_at_ns = time.time_ns()
        data = _dumps({"queued_at_ns": queued_at_ns, "shipment": shipment.to_json()})
        used = self.size_bytes()
        if used + len(data) > self.max_bytes:
            raise OutboxError(
                f"outbox {self.root} is full ({used / 1e6:.1f} MB of its "
                f"{self.max_bytes / 1e6:.1f} MB cap): run `qalita-sidecar flush`, clear dead/, "
                "or raise QALITA_OUTBOX_MAX_MB")
        try:
            # ids left by an entry removed just before a crash belong to no entry: never reuse them
            self.ids_path(shipment.key).unlink(missing_ok=True)
            _write_atomic(path, data)
        except OSError as exc:
            raise OutboxError(f"outbox {path}: cannot write ({exc.strerror})") from exc
        return path, queued_at_ns

    @staticmethod
    def _load(path: Path) -> dict[str, Any]:
        try:
            data = orjson.loads(path.read_bytes())
            if not isinstance(data, dict) or not isinstance(data.get("shipment"), dict):
                raise ValueError("no shipment in it")
            return data
        except (OSError, ValueError) as exc:
            raise OutboxError(f"outbox entry {path} is unreadable ({exc}); move it aside "
                              "to let the others through") from exc

    def noted(self, key: str) -> dict[str, Any]:
        """The ids noted for a pending entry (source_id, job_id); {} when none yet."""
        path = self.ids_path(key)
        try:
            data = orjson.loads(path.read_bytes())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise OutboxError(f"outbox ids {path} are unreadable ({exc}); move the entry "
                              "aside to let the others through") from exc
        if not isinstance(data, dict):
            raise OutboxError(f"outbox ids {path} are unreadable (not an object); move the "
                              "entry aside to let the others through")
        return data

    def entry(self, key: str) -> Entry | None:
        path = self.path(key)
        if not path.exists():
            return None
        return self._entry(path, self._load(path))

    def _entry(self, path: Path, data: dict[str, Any]) -> Entry:
        # Ids inside the entry itself come from an older outbox or from a dead/ entry moved back.
        ids = {"source_id": data.get("source_id"), "job_id": data.get("job_id"),
               **self.noted(path.name.removesuffix(".json"))}
        try:
            shipment = Shipment.from_json(data["shipment"])
        except (ValueError, KeyError, TypeError) as exc:
            raise OutboxError(f"outbox entry {path} is unreadable ({exc!r}); move it aside "
                              "to let the others through") from exc
        return Entry(path, shipment, int(data.get("queued_at_ns", 0)),
                     ids["source_id"], ids["job_id"])

    def entries(self) -> list[Entry]:
        """Pending entries, oldest first (by the time they were spooled, then by key)."""
        if not self.pending_dir.is_dir():
            return []
        entries = [self._entry(p, self._load(p))
                   for p in self.pending_dir.glob("*.json") if _is_entry(p)]
        return sorted(entries, key=lambda e: (e.queued_at_ns, e.path.name))

    def pending(self) -> list[Shipment]:
        return [e.shipment for e in self.entries()]

    def note(self, key: str, **ids: int | None) -> None:
        """Remember ids QALITA gave (source_id, job_id) for the entry, atomically and durably."""
        path = self.path(key)
        if not path.exists():
            raise OutboxError(f"outbox entry {path} is gone; cannot note {sorted(ids)}")
        target = self.ids_path(key)
        data = {**self.noted(key), **ids}
        try:
            _write_atomic(target, _dumps(data))
        except OSError as exc:
            raise OutboxError(f"outbox {target}: cannot write ({exc.strerror})") from exc

    def remove(self, key: str) -> None:
        # The entry first: ids left alone by a crash are cleared by the next put().
        removed = False
        for path in (self.path(key), self.ids_path(key)):
            if path.exists():
                path.unlink()
                removed = True
        if removed:
            _fsync_dir(self.pending_dir)

    def move_to_dead(self, key: str, reason: str) -> Path:
        """Move a pending entry to dead/ with its ids and the reason (QALITA's answer) inside it."""
        self._ensure()
        data = self._load(self.path(key))
        data.update(self.noted(key))
        data.update({"dead_at_ns": time.time_ns(), "dead_reason": reason})
        target = self.dead_path(key)
        _write_atomic(target, _dumps(data, indent=True))
        self.remove(key)
        return target

    def dead(self) -> list[Path]:
        if not self.dead_dir.is_dir():
            return []
        return sorted(p for p in self.dead_dir.glob("*.json") if _is_entry(p))
