"""A durable queue on disk: every shipment is written here before any request is made.

`pending/<key>.json` waits to be sent (replayed oldest first); `dead/<key>.json` holds what QALITA
refused, with its answer. Every write is tmp file + fsync + rename + fsync of the directory, so
a crash leaves either the old file or the new one, never half of one (the Vector / Fluent Bit
disk-buffer discipline). The ids QALITA gives (source, job) are noted in a small
`pending/<key>.ids.json` as soon as they are known, so a replay reuses the job instead of creating
a second one, and the big payload is written once and never rewritten.

`locks/<key>.lock` serialises the shipping of one key between processes (and threads) on this
machine: an flock, released by the kernel when its holder dies, so a kill never leaves it held.
An entry that cannot be read is set aside in dead/ with the reason, so it never holds up the rest.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from qalita_sidecar import settings
from qalita_sidecar.shipment import Shipment, decode_shipment

IDS_SUFFIX = ".ids.json"
REASON_SUFFIX = ".reason.txt"
ID_FIELDS = ("source_id", "job_id", "logs_id", "job_requested_at")
# A temp file older than this is a leftover even if its pid was reused by another process.
STALE_TMP_S = 3600.0
LOCK_POLL_S = 0.05
PUT_WAIT_S = 300.0  # spooling a key another process is shipping waits for that shipment


class OutboxError(Exception):
    """The outbox cannot take or give a shipment; the message names the file or the setting."""


class LockTimeout(OutboxError):
    """Another process kept shipping this key past the wait; the entry stays pending."""


@dataclass(frozen=True)
class Entry:
    path: Path
    shipment: Shipment
    queued_at_ns: int
    source_id: int | None
    job_id: int | None
    # Every id known when read: kept inside the entry (a dead/ entry moved back), then noted.
    ids: dict[str, int | None] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class SetAside:
    """An entry that could not be read, moved to dead/ with the reason beside it."""

    key: str
    path: Path  # where it is now (dead/)
    reason: str


def _dumps(data: dict[str, Any], indent: bool = False) -> bytes:
    # a Shipment is encoded by msgspec as its Struct says; a msgspec.Raw (an entry's shipment,
    # as read) is written back byte for byte
    text = msgspec.json.encode(data)
    return msgspec.json.format(text, indent=2) if indent else text


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _tmp_pid(path: Path) -> int | None:
    """The writer's pid in a temp file name `.<name>.<pid>.tmp` (None: not one of ours)."""
    parts = path.name.rsplit(".", 2)
    if len(parts) != 3 or not path.name.startswith(".") or parts[2] != "tmp":
        return None
    return int(parts[1]) if parts[1].isdigit() else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def max_bytes_from_env(env: dict[str, str] | None = None) -> int:
    try:
        return settings.outbox_max_bytes(env)
    except settings.SettingsError as exc:
        raise OutboxError(str(exc)) from exc


def _int_field(data: dict[str, Any], name: str, where: Path) -> int | None:
    value = data.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise OutboxError(f"outbox file {where}: '{name}' must be an integer, got {value!r}")
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError) as exc:
        raise OutboxError(f"outbox file {where}: '{name}' must be an integer, "
                          f"got {value!r}") from exc


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
        self.root = Path(root) if root is not None else settings.outbox_dir()
        self.max_bytes = max_bytes_from_env() if max_bytes is None else max_bytes
        self.pending_dir = self.root / "pending"
        self.dead_dir = self.root / "dead"
        self.locks_dir = self.root / "locks"

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
        """Everything the outbox holds, temp files included (a kill's leftovers count)."""
        total = 0
        for folder in (self.pending_dir, self.dead_dir):
            if folder.is_dir():
                for p in folder.iterdir():
                    with contextlib.suppress(FileNotFoundError):  # removed while measured
                        total += p.stat().st_size
        return total

    def pending_count(self) -> int:
        """Entries waiting, without reading them."""
        if not self.pending_dir.is_dir():
            return 0
        return sum(1 for p in self.pending_dir.glob("*.json") if _is_entry(p))

    def clean_tmp(self) -> list[Path]:
        """Remove temp files left by a writer that died (its pid gone, or older than an hour)."""
        removed = []
        now = time.time()
        for folder in (self.pending_dir, self.dead_dir):
            if not folder.is_dir():
                continue
            for p in folder.glob(".*.tmp"):
                pid = _tmp_pid(p)
                try:
                    old = now - p.stat().st_mtime > STALE_TMP_S
                    if pid is None or pid == os.getpid() or (_alive(pid) and not old):
                        continue
                    p.unlink()
                    removed.append(p)
                except FileNotFoundError:
                    continue
                except OSError as exc:
                    raise OutboxError(f"outbox {p}: cannot remove a leftover temp file "
                                      f"({exc.strerror})") from exc
        return removed

    @contextlib.contextmanager
    def lock(self, key: str, wait_s: float) -> Iterator[None]:
        """Hold `locks/<key>.lock` (exclusive flock) while shipping `key`; LockTimeout after
        wait_s. The file is removed on release; a waiter that locked a removed file retries."""
        path = self.locks_dir / f"{self.path(key).stem}.lock"
        deadline = time.monotonic() + wait_s
        try:
            self.locks_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutboxError(f"outbox {self.locks_dir}: cannot create ({exc.strerror})") from exc
        while True:
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as exc:
                raise OutboxError(f"outbox lock {path}: cannot open ({exc.strerror})") from exc
            try:
                while True:
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        break
                    except BlockingIOError:
                        if time.monotonic() > deadline:
                            raise LockTimeout(f"another process is shipping it (lock {path}); "
                                              "left pending") from None
                        time.sleep(LOCK_POLL_S)
                try:
                    same = os.fstat(fd).st_ino == os.stat(path).st_ino
                except FileNotFoundError:
                    same = False
                if same:
                    break
            except BaseException:
                os.close(fd)
                raise
            os.close(fd)  # the holder removed that file as we waited: lock the new one
        try:
            yield
        finally:
            with contextlib.suppress(OSError):
                path.unlink()
            os.close(fd)

    def put(self, shipment: Shipment, wait_s: float = PUT_WAIT_S) -> Path:
        """Spool a shipment (no-op when its key already waits: the entry keeps its job id)."""
        return self._put(shipment, wait_s)[0]

    def put_entry(self, shipment: Shipment, wait_s: float = PUT_WAIT_S) -> Entry:
        """put(), then the entry, without reading back a payload the caller holds."""
        for _ in range(3):
            path, queued_at_ns = self._put(shipment, wait_s)
            if queued_at_ns is not None:
                return Entry(path, shipment, queued_at_ns, None, None)
            # it waited already: only its queue time and ids are read from disk
            try:
                data = self._load(path)
                queued_at_ns = _int_field(data, "queued_at_ns", path) or 0
                ids = self._ids(path, data)
            except FileNotFoundError:
                continue  # delivered by another process meanwhile: spool it again
            except OutboxError as exc:
                if path.exists():
                    self.set_aside(path, str(exc))  # this run's copy replaces it
                continue
            return Entry(path, shipment, queued_at_ns, ids.get("source_id"), ids.get("job_id"),
                         ids)
        raise OutboxError(f"outbox {self.path(shipment.key)}: the entry keeps changing under "
                          "this process (another one writes it)")

    def _put(self, shipment: Shipment, wait_s: float) -> tuple[Path, int | None]:
        """The entry's path, and its queue time when written now (None when it already waited).

        Under the key's lock: a process shipping that key is never left with ids cleared under
        it, or an entry rewritten as it notes its job.
        """
        with self.lock(shipment.key, wait_s):
            return self.put_held(shipment)

    def put_held(self, shipment: Shipment) -> tuple[Path, int | None]:
        """_put() for a caller that holds the key's lock already."""
        self._ensure()
        path = self.path(shipment.key)
        if path.exists():
            return path, None
        queued_at_ns = time.time_ns()
        data = _dumps({"queued_at_ns": queued_at_ns, "shipment": shipment})
        used = self.size_bytes()
        if used + len(data) > self.max_bytes:
            raise OutboxError(
                f"outbox {self.root} is full ({used / 1e6:.1f} MB of its "
                f"{self.max_bytes / 1e6:.1f} MB cap): run `qalita-sidecar flush`, clear "
                "dead/, or raise QALITA_OUTBOX_MAX_MB")
        try:
            # ids left by an entry removed just before a crash belong to no entry
            self.ids_path(shipment.key).unlink(missing_ok=True)
            _write_atomic(path, data)
        except OSError as exc:
            raise OutboxError(f"outbox {path}: cannot write ({exc.strerror})") from exc
        return path, queued_at_ns

    @staticmethod
    def _load(path: Path) -> dict[str, Any]:
        """The entry's fields; its shipment left as msgspec.Raw (decoded by _entry() only, so
        the ids of a big entry are read without building its items)."""
        try:
            fields = msgspec.json.decode(path.read_bytes(), type=dict[str, msgspec.Raw])
            shipment = fields.get("shipment")
            if shipment is None or not bytes(shipment).startswith(b"{"):
                raise ValueError("no shipment in it")
            return {k: v if k == "shipment" else msgspec.json.decode(v)
                    for k, v in fields.items()}
        except FileNotFoundError:
            raise
        except (OSError, ValueError) as exc:  # msgspec's DecodeError is a ValueError
            raise OutboxError(f"outbox entry {path} is unreadable ({exc})") from exc

    def noted(self, key: str) -> dict[str, Any]:
        """The ids noted for a pending entry (source_id, job_id, logs_id, job_requested_at);
        {} when none yet."""
        path = self.ids_path(key)
        try:
            data = msgspec.json.decode(path.read_bytes())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise OutboxError(f"outbox ids {path} are unreadable ({exc})") from exc
        if not isinstance(data, dict):
            raise OutboxError(f"outbox ids {path} are unreadable (not an object)")
        return {name: _int_field(data, name, path) for name in ID_FIELDS if name in data}

    def entry(self, key: str) -> Entry | None:
        path = self.path(key)
        if not path.exists():
            return None
        return self._entry(path, self._load(path))

    def _ids(self, path: Path, data: dict[str, Any]) -> dict[str, int | None]:
        """The ids of a pending entry: those kept inside it (an older outbox, or a dead/ entry
        moved back), then those noted beside it."""
        kept = {n: _int_field(data, n, path) for n in ID_FIELDS if n in data}
        return {**kept, **self.noted(path.name.removesuffix(".json"))}

    def _entry(self, path: Path, data: dict[str, Any]) -> Entry:
        ids = self._ids(path, data)
        queued_at_ns = _int_field(data, "queued_at_ns", path) or 0
        try:
            shipment = decode_shipment(data["shipment"])
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:  # names the field
            raise OutboxError(f"outbox entry {path} is unreadable ({exc})") from exc
        if shipment.key != path.name.removesuffix(".json"):
            raise OutboxError(f"outbox entry {path} holds the shipment of another key "
                              f"({shipment.key[:12]}...)")
        return Entry(path, shipment, queued_at_ns, ids.get("source_id"), ids.get("job_id"), ids)

    def scan(self) -> tuple[list[Entry], list[SetAside]]:
        """Pending entries, oldest first (by the time they were spooled, then by key), and those
        that could not be read, now moved to dead/ with the reason. Leftover temp files go."""
        if not self.pending_dir.is_dir():
            return [], []
        self.clean_tmp()
        entries: list[Entry] = []
        aside: list[SetAside] = []
        for p in self.pending_dir.glob("*.json"):
            if not _is_entry(p):
                continue
            try:
                entries.append(self._entry(p, self._load(p)))
            except FileNotFoundError:
                continue  # delivered and removed by another process as we listed
            except OutboxError as exc:
                if not p.exists():  # removed meanwhile: nothing to set aside
                    continue
                aside.append(self.set_aside(p, str(exc)))
        return sorted(entries, key=lambda e: (e.queued_at_ns, e.path.name)), aside

    def entries(self) -> list[Entry]:
        """Pending entries, oldest first; unreadable ones are set aside in dead/ (see scan)."""
        return self.scan()[0]

    def set_aside(self, path: Path, reason: str) -> SetAside:
        """Move an unreadable entry (bytes untouched) and its ids to dead/, the reason beside."""
        self._ensure()
        key = path.name.removesuffix(".json")
        target = self.dead_dir / path.name
        try:
            _write_atomic(self.dead_dir / f"{key}{REASON_SUFFIX}",
                          f"{reason}\n".encode())
            ids = self.pending_dir / f"{key}{IDS_SUFFIX}"
            if ids.exists():
                os.replace(ids, self.dead_dir / ids.name)
            os.replace(path, target)
            _fsync_dir(self.dead_dir)
            _fsync_dir(self.pending_dir)
        except FileNotFoundError:
            pass  # another process set it aside (or shipped a fresh copy) meanwhile
        except OSError as exc:
            raise OutboxError(f"outbox entry {path}: cannot move it to {self.dead_dir} "
                              f"({exc.strerror}); it is unreadable: {reason}") from exc
        return SetAside(key, target, reason)

    def pending(self) -> list[Shipment]:
        return [e.shipment for e in self.entries()]

    def note(self, key: str, **ids: int | None) -> None:
        """Remember ids QALITA gave (source_id, job_id, logs_id), or that a job is being
        created (job_requested_at), for the entry, atomically and durably."""
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
            try:
                path.unlink()
                removed = True
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise OutboxError(f"outbox {path}: cannot remove ({exc.strerror})") from exc
        if removed:
            _fsync_dir(self.pending_dir)

    def move_to_dead(self, key: str, reason: str) -> Path:
        """Move a pending entry to dead/ with its ids and the reason (QALITA's answer) inside it."""
        self._ensure()
        data = self._load(self.path(key))
        data.update(self.noted(key))
        data.update({"dead_at_ns": time.time_ns(), "dead_reason": reason})
        target = self.dead_path(key)
        try:
            _write_atomic(target, _dumps(data, indent=True))
            # a refusal now: whatever was set aside under this key before is replaced
            (self.dead_dir / f"{self.path(key).stem}{REASON_SUFFIX}").unlink(missing_ok=True)
        except OSError as exc:
            raise OutboxError(f"outbox {target}: cannot write ({exc.strerror})") from exc
        self.remove(key)
        return target

    def refused(self, key: str) -> bool:
        """QALITA refused this key's shipment (in dead/ with its answer). An entry only set aside
        as unreadable is no refusal: a readable copy of that shipment may be sent."""
        return self.dead_path(key).exists() and \
            not (self.dead_dir / f"{self.path(key).stem}{REASON_SUFFIX}").exists()

    def dead(self) -> list[Path]:
        if not self.dead_dir.is_dir():
            return []
        return sorted(p for p in self.dead_dir.glob("*.json") if _is_entry(p))
