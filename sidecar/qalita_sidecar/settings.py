"""Where and as whom to ship: QALITA settings from the environment, flags and a mapping file.

Names follow the QALITA CLI and its integration guides (first found wins): the current CLI's
QALITA_WORKER_*, the older QALITA_AGENT_*, and the Airbyte guide's QALITA_BASE_URL with
QALITA_USERNAME / QALITA_PASSWORD. Secrets are fields with repr=False and never appear in errors.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ENDPOINT_VARS = ("QALITA_WORKER_ENDPOINT", "QALITA_AGENT_ENDPOINT", "QALITA_BASE_URL")
TOKEN_VARS = ("QALITA_WORKER_TOKEN", "QALITA_AGENT_TOKEN")
SOURCE_ID_VARS = ("QALITA_SOURCE_ID", "QALITA_WORKER_JOB_SOURCE", "QALITA_AGENT_JOB_SOURCE")
PACK_ID_VARS = ("QALITA_PACK_ID", "QALITA_WORKER_JOB_PACK", "QALITA_AGENT_JOB_PACK")
PACK_VERSION_ID_VARS = ("QALITA_PACK_VERSION_ID", "QALITA_WORKER_JOB_PACK_VERSION",
                        "QALITA_AGENT_JOB_PACK_VERSION")
SOURCE_VERSION_ID_VARS = ("QALITA_SOURCE_VERSION_ID",)
CA_BUNDLE_VARS = ("QALITA_CA_BUNDLE", "REQUESTS_CA_BUNDLE")
_TRUE = {"1", "true", "yes", "on"}
DEFAULT_OUTBOX_DIR = Path(".qalita/outbox")
DEFAULT_OUTBOX_MAX_BYTES = 512 * 1024 * 1024


class SettingsError(Exception):
    """A setting that cannot be used; the one-line message names the setting (never its secret)."""


@dataclass(frozen=True)
class Ids:
    """The QALITA ids one shipment is sent against (source_id None: find or publish by name)."""

    source_id: int | None
    pack_id: int
    pack_version_id: int
    source_version_id: int | None = None
    # Where pack_id / pack_version_id came from, for a message that names the setting to fix.
    pack_from: str = field(default="QALITA_PACK_ID", compare=False)
    pack_version_from: str = field(default="QALITA_PACK_VERSION_ID", compare=False)


@dataclass(frozen=True)
class Settings:
    endpoint: str
    token: str | None = field(default=None, repr=False)
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    source_id: int | None = None
    pack_id: int | None = None
    pack_version_id: int | None = None
    ca_bundle: str | None = None
    verify: bool = True
    request_timeout_s: float = 30.0
    deadline_s: float = 60.0
    mapping_file: Path | None = None
    source_version_id: int | None = None
    # The mapping file's content: {"connection_map": {name: ids}, "default": ids}.
    mapping: Mapping[str, Any] = field(default_factory=dict, repr=False)

    def ids_for(self, names: Sequence[str]) -> Ids:
        """Ids for a run known by `names` (most specific first, e.g. "project/env", "project").

        Explicit settings (environment, flags) win over the mapping file, whose entry for the
        first matching name wins over its `default`.
        """
        entry: Mapping[str, Any] = {}
        entry_name = "default"
        table = self.mapping.get("connection_map") or {}
        for name in names:
            if name in table:
                entry, entry_name = table[name], name
                break
        else:
            entry = self.mapping.get("default") or {}
        where = f"{self.mapping_file}" if self.mapping_file else "the mapping file"

        def pick(explicit: int | None, key: str) -> int | None:
            if explicit is not None:
                return explicit
            value = entry.get(key)
            if value is None:
                return None
            try:
                return int(value)
            except (TypeError, ValueError) as exc:
                raise SettingsError(f"{where}: '{key}' must be an integer, got {value!r}") from exc

        pack_id = pick(self.pack_id, "pack_id")
        pack_version_id = pick(self.pack_version_id, "pack_version_id")
        if pack_id is None or pack_version_id is None:
            missing = "QALITA_PACK_ID" if pack_id is None else "QALITA_PACK_VERSION_ID"
            hint = (f" and {where} has no entry for {', '.join(map(repr, names))} nor a default"
                    if self.mapping_file else "")
            raise SettingsError(f"{missing} is not set (nor --pack-id/--pack-version-id){hint}")
        named = f"{where} ('{entry_name}' entry)"
        return Ids(pick(self.source_id, "source_id"), pack_id, pack_version_id,
                   pick(self.source_version_id, "source_version_id"),
                   "QALITA_PACK_ID (or --pack-id)" if self.pack_id is not None
                   else f"pack_id in {named}",
                   "QALITA_PACK_VERSION_ID (or --pack-version-id)"
                   if self.pack_version_id is not None else f"pack_version_id in {named}")



def _first(env: Mapping[str, str], names: Sequence[str]) -> tuple[str, str] | None:
    for name in names:
        value = env.get(name, "").strip()
        if value:
            return name, value
    return None


def _int(env: Mapping[str, str], names: Sequence[str]) -> int | None:
    found = _first(env, names)
    if found is None:
        return None
    name, value = found
    try:
        return int(value)
    except ValueError as exc:
        raise SettingsError(f"{name} must be an integer id, got {value!r}") from exc


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    value = env.get(name, "").strip()
    if not value:
        return default
    try:
        number = float(value)
    except ValueError as exc:
        raise SettingsError(f"{name} must be a number of seconds, got {value!r}") from exc
    if not math.isfinite(number):
        raise SettingsError(f"{name} must be a finite number of seconds, got {value!r}")
    if number <= 0:
        raise SettingsError(f"{name} must be positive, got {value!r}")
    return number


def _read_mapping(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SettingsError(f"QALITA_MAPPING_FILE {path}: cannot read ({exc.strerror})") from exc
    except ValueError as exc:
        raise SettingsError(f"QALITA_MAPPING_FILE {path}: not valid JSON ({exc})") from exc
    if not isinstance(data, dict) or not isinstance(data.get("connection_map", {}), dict) \
            or not isinstance(data.get("default") or {}, dict):
        raise SettingsError(f"QALITA_MAPPING_FILE {path}: expected an object with "
                            "'connection_map' (name -> ids) and/or 'default' (ids)")
    data["connection_map"] = {str(k): v for k, v in (data.get("connection_map") or {}).items()}
    for name, ids in data["connection_map"].items():
        if not isinstance(ids, dict):
            raise SettingsError(f"QALITA_MAPPING_FILE {path}: entry {name!r} is not an object")
    return data


def _token(env: Mapping[str, str]) -> str | None:
    found = _first(env, TOKEN_VARS)
    if found:
        return found[1]
    path = env.get("QALITA_TOKEN_FILE", "").strip()
    if not path:
        return None
    try:
        token = Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise SettingsError(f"QALITA_TOKEN_FILE {path}: cannot read ({exc.strerror})") from exc
    if not token:
        raise SettingsError(f"QALITA_TOKEN_FILE {path}: the file is empty")
    return token


def read_secret(path: Path | None, env_var: str,
                env: Mapping[str, str] | None = None) -> tuple[str, str] | None:
    """A secret from the file when given, else from the variable: (value, where it came from),
    None when neither is set. The value never appears in an error."""
    env = os.environ if env is None else env
    if path is not None:
        try:
            value = Path(path).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            why = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            raise SettingsError(f"--secret-file {path}: cannot read ({why})") from exc
        if not value:
            raise SettingsError(f"--secret-file {path}: the file is empty")
        return value, f"--secret-file {path}"
    value = (env.get(env_var) or "").strip()
    return (value, env_var) if value else None


def outbox_dir(env: Mapping[str, str] | None = None) -> Path:
    """QALITA_OUTBOX_DIR, else .qalita/outbox (relative to where the command runs)."""
    env = os.environ if env is None else env
    return Path(env.get("QALITA_OUTBOX_DIR", "").strip() or DEFAULT_OUTBOX_DIR)


def outbox_max_bytes(env: Mapping[str, str] | None = None) -> int:
    """QALITA_OUTBOX_MAX_MB (a positive, finite number of megabytes; default 512) in bytes."""
    env = os.environ if env is None else env
    raw = env.get("QALITA_OUTBOX_MAX_MB", "").strip()
    if not raw:
        return DEFAULT_OUTBOX_MAX_BYTES
    try:
        mb = float(raw)
    except ValueError:
        mb = math.nan
    if not math.isfinite(mb) or mb <= 0:
        raise SettingsError(f"QALITA_OUTBOX_MAX_MB must be a positive number of megabytes, "
                            f"got {raw!r}")
    return max(1, int(mb * 1024 * 1024))


def load_settings(env: Mapping[str, str] | None = None, **overrides: Any) -> Settings | None:
    """Settings from `env` (default os.environ); keyword overrides (CLI flags) win when not None.

    None when no endpoint is configured: the caller then only spools to the outbox.
    """
    env = os.environ if env is None else env
    given = {k: v for k, v in overrides.items() if v is not None}
    unknown = set(given) - set(Settings.__dataclass_fields__)
    if unknown:
        raise TypeError(f"unknown settings: {sorted(unknown)}")
    found = _first(env, ENDPOINT_VARS)
    endpoint = given.pop("endpoint", None) or (found[1] if found else None)
    if not endpoint:
        return None
    if not endpoint.startswith(("http://", "https://")):
        name = found[0] if found else "endpoint"
        raise SettingsError(f"{name} must be an http:// or https:// URL, got {endpoint!r}")
    mapping_path = given.pop("mapping_file", None) or env.get("QALITA_MAPPING_FILE", "").strip()
    mapping_file = Path(mapping_path) if mapping_path else None
    ca = _first(env, CA_BUNDLE_VARS)
    ca_bundle = given.pop("ca_bundle", None) or (ca[1] if ca else None)
    # The QALITA CLI's opt-out; a CA bundle is the better answer to a private CA.
    skip_verify = env.get("SKIP_SSL_VERIFY", "").strip().lower() in _TRUE
    if skip_verify and ca_bundle:
        if ca and ca[0] == "REQUESTS_CA_BUNDLE":
            # a machine-wide variable for every requests user: the explicit opt-out wins
            ca_bundle = None
        else:
            raise SettingsError(f"SKIP_SSL_VERIFY=true and {ca[0] if ca else 'ca_bundle'} are "
                                "both set: a CA bundle verifies TLS, SKIP_SSL_VERIFY turns "
                                "verification off; unset one")
    if ca_bundle and not Path(ca_bundle).exists():
        name = ca[0] if ca else "ca_bundle"
        raise SettingsError(f"{name} {ca_bundle}: no such file")
    values: dict[str, Any] = {
        "endpoint": endpoint.rstrip("/"),
        "token": _token(env),
        "username": env.get("QALITA_USERNAME") or None,
        "password": env.get("QALITA_PASSWORD") or None,
        "source_id": _int(env, SOURCE_ID_VARS),
        "pack_id": _int(env, PACK_ID_VARS),
        "pack_version_id": _int(env, PACK_VERSION_ID_VARS),
        "source_version_id": _int(env, SOURCE_VERSION_ID_VARS),
        "ca_bundle": ca_bundle,
        "verify": not skip_verify,
        "request_timeout_s": _float(env, "QALITA_TIMEOUT", 30.0),
        "deadline_s": _float(env, "QALITA_DEADLINE", 60.0),
        "mapping_file": mapping_file,
        "mapping": _read_mapping(mapping_file) if mapping_file else {},
    }
    values.update(given)
    if not values["token"] and not (values["username"] and values["password"]):
        raise SettingsError(f"{found[0] if found else 'endpoint'} is set but no credentials: set "
                            "QALITA_WORKER_TOKEN (or QALITA_AGENT_TOKEN, QALITA_TOKEN_FILE) or "
                            "QALITA_USERNAME and QALITA_PASSWORD")
    return Settings(**values)
