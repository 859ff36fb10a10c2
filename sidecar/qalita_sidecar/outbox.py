"""A durable queue on disk: every shipment is written here before any request is made.

`pending/<key>.json` waits to be sent (replayed oldest first); `dead/<key>.json` holds what QALITA
refused, with its answer. Every write is tmp file + fsync + rename + fsync of the directory, so
a crash leaves either the old file or the new one, never half of one (the Vector / Fluent Bit
disk-buffer discipline). The entry also remembers the source and job ids once QALITA gave them,
so a replay reuses the job instead of creating a second one.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .shipment import Shipment

DEFAULT_ROOT = Path(".qalita/outbox")
DEFAULT_MAX_BYTES = 512 * 1024 * 1024


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
        if not key or not all(c.isalnum() or c in "-_." for c in key) or key.startswith("."):
            raise OutboxError(f"shipment key {key!r} is not usable as a file name")
        return self.pending_dir / f"{key}.json"

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
        self._ensure()
        path = self.path(shipment.key)
        if path.exists():
            return path
        data = json.dumps({"queued_at_ns": time.time_ns(), "source_id": None, "job_id": None,
                           "shipment": shipment.to_json()}, ensure_ascii=False).encode("utf-8")
        used = self.size_bytes()
        if used + len(data) > self.max_bytes:
            raise OutboxError(
                f"outbox {self.root} is full ({used / 1e6:.1f} MB of its "
                f"{self.max_bytes / 1e6:.1f} MB cap): run `qalita-sidecar flush`, clear dead/, "
                "or raise QALITA_OUTBOX_MAX_MB")
        try:
            _write_atomic(path, data)
        except OSError as exc:
            raise OutboxError(f"outbox {path}: cannot write ({exc.strerror})") from exc
        return path

    def _read(self, path: Path) -> dict[str, Any]:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            Shipment.from_json(data["shipment"])  # validates the shape
            return data
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise OutboxError(f"outbox entry {path} is unreadable ({exc}); move it aside "
                              "to let the others through") from exc

    def entry(self, key: str) -> Entry | None:
        path = self.path(key)
        if not path.exists():
            return None
        return self._entry(path, self._read(path))

    @staticmethod
    def _entry(path: Path, data: dict[str, Any]) -> Entry:
        return Entry(path, Shipment.from_json(data["shipment"]), int(data.get("queued_at_ns", 0)),
                     data.get("source_id"), data.get("job_id"))

    def entries(self) -> list[Entry]:
        """Pending entries, oldest first (by the time they were spooled, then by key)."""
        if not self.pending_dir.is_dir():
            return []
        entries = [self._entry(p, self._read(p)) for p in self.pending_dir.glob("*.json")]
        return sorted(entries, key=lambda e: (e.queued_at_ns, e.path.name))

    def pending(self) -> list[Shipment]:
        return [e.shipment for e in self.entries()]

    def note(self, key: str, **ids: int | None) -> None:
        """Remember ids QALITA gave (source_id, job_id) in the entry, atomically."""
        path = self.path(key)
        data = self._read(path)
        data.update(ids)
        _write_atomic(path, json.dumps(data, ensure_ascii=False).encode("utf-8"))

    def remove(self, key: str) -> None:
        path = self.path(key)
        if path.exists():
            path.unlink()
            _fsync_dir(path.parent)

    def move_to_dead(self, key: str, reason: str) -> Path:
        """Move a pending entry to dead/ with the reason (QALITA's answer) inside it."""
        self._ensure()
        path = self.path(key)
        data = self._read(path)
        data.update({"dead_at_ns": time.time_ns(), "dead_reason": reason})
        target = self.dead_path(key)
        _write_atomic(target, json.dumps(data, ensure_ascii=False, indent=1).encode("utf-8"))
        self.remove(key)
        return target

    def dead(self) -> list[Path]:
        if not self.dead_dir.is_dir():
            return []
        return sorted(self.dead_dir.glob("*.json"))
