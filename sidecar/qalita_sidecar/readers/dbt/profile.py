"""Connect to the warehouse a dbt profile points at (DuckDB or PostgreSQL), outside dbt.

The sidecar and the Quality Compass loader read the same profiles.yml dbt uses, rendered the way
dbt renders it: `env_var()` with its default, and dbt's filters `as_text`, `as_number`, `as_bool`
and `as_native` (dbt renders a profile value natively: a marked value becomes the Python value it
spells, anything else stays text), so one set of settings serves all.
"""

from __future__ import annotations

import os
from ast import literal_eval
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import chain, islice
from pathlib import Path
from typing import Any

import yaml
from jinja2 import StrictUndefined, TemplateError
from jinja2.nativetypes import NativeEnvironment, NativeTemplate


class ProfileError(Exception):
    """A profile that cannot be read or used; the message names the file or the setting."""


@dataclass(frozen=True)
class WarehouseTarget:
    profile: str
    target: str
    adapter: str  # "duckdb" or "postgres"
    schema: str
    settings: dict[str, Any]  # the rendered output (may hold a password: never log it)

    def describe(self) -> str:
        """A one-line description that is safe to print (no password)."""
        if self.adapter == "duckdb":
            return f"duckdb:{self.settings.get('path')} (target {self.target})"
        s = self.settings
        return (f"postgres://{s.get('user')}@{s.get('host')}:{s.get('port')}/"
                f"{s.get('dbname') or s.get('database')} (target {self.target})")


class _Text(str):
    """as_text: stays a string."""


class _Native(str):
    """as_native: the Python value the text spells (`5432` -> 5432, `[1, 2]` -> [1, 2])."""


class _Bool(_Native):
    """as_bool: must spell True or False."""


class _Number(_Native):
    """as_number: must spell an int or a float."""


def _concat(values: Iterable[Any]) -> Any:
    """dbt's rule for a rendered value: one marked node becomes its value, one unmarked node is
    returned as it is, several are joined as text."""
    nodes = iter(values)
    head = list(islice(nodes, 2))
    if not head:
        return ""
    if len(head) > 1:
        return "".join(str(v) for v in chain(head, nodes))
    raw = head[0]
    if isinstance(raw, _Text):
        return str(raw)
    if not isinstance(raw, _Native):
        return raw
    try:
        value = literal_eval(raw)
    except (ValueError, SyntaxError, MemoryError):
        value = str(raw)
    if isinstance(raw, _Bool) and not isinstance(value, bool):
        raise ProfileError(f"cannot convert '{raw}' into a bool (as_bool)")
    if isinstance(raw, _Number) and (isinstance(value, bool)
                                     or not isinstance(value, (int, float))):
        raise ProfileError(f"cannot convert '{raw}' into a number (as_number)")
    return value


class _ProfileJinja(NativeEnvironment):
    concat = staticmethod(_concat)


class _ProfileTemplate(NativeTemplate):
    # jinja's NativeTemplate concatenates with NativeEnvironment's rule (literal_eval of any
    # text: '123' -> 123), not the environment's: dbt's rule needs its own template class
    environment_class = _ProfileJinja


_ProfileJinja.template_class = _ProfileTemplate


_MISSING = object()


def _env_var(name: str, default: Any = _MISSING) -> Any:
    """dbt's env_var(): the variable, else the default as given, else an error naming it."""
    if name in os.environ:
        return os.environ[name]
    if default is _MISSING or default is None:
        raise ProfileError(f"env_var('{name}') is not set and has no default")
    return default


def _jinja() -> NativeEnvironment:
    jinja = _ProfileJinja(undefined=StrictUndefined)
    jinja.globals["env_var"] = _env_var
    jinja.filters.update(as_text=_Text, as_native=_Native, as_bool=_Bool, as_number=_Number)
    return jinja


def _render(value: Any, jinja: NativeEnvironment, path: Path | None = None,
            where: str = "") -> Any:
    if isinstance(value, str) and ("{{" in value or "{%" in value):
        try:
            return jinja.from_string(value).render()
        except ProfileError as exc:
            raise ProfileError(f"{path or 'profiles.yml'}: {where or 'a value'}: {exc}") from exc
        except TemplateError as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise ProfileError(f"{path or 'profiles.yml'}: {where or 'a value'}: cannot render "
                               f"({first})") from exc
    if isinstance(value, dict):
        return {k: _render(v, jinja, path, f"{where}.{k}" if where else str(k))
                for k, v in value.items()}
    if isinstance(value, list):
        return [_render(v, jinja, path, f"{where}[{i}]") for i, v in enumerate(value)]
    return value


def default_profiles_dir(project_dir: Path | None = None) -> Path:
    """dbt's order: DBT_PROFILES_DIR, the project directory if it has profiles.yml, ~/.dbt."""
    if os.environ.get("DBT_PROFILES_DIR"):
        return Path(os.environ["DBT_PROFILES_DIR"])
    project_dir = project_dir or Path.cwd()
    if (project_dir / "profiles.yml").exists():
        return project_dir
    return Path.home() / ".dbt"


@dataclass(frozen=True)
class _Profile:
    path: Path
    name: str
    body: dict[str, Any]
    target: str  # the one chosen: given, else $DBT_TARGET, else the profile's default


def _read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_bytes().decode("utf-8"))
    except OSError as exc:
        raise ProfileError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    except UnicodeDecodeError as exc:
        raise ProfileError(f"{path}: not valid UTF-8 (byte {exc.start})") from exc
    except yaml.YAMLError as exc:
        first = (str(exc).strip().splitlines() or ["?"])[0]
        raise ProfileError(f"{path}: not valid YAML ({first})") from exc


def _profile(profiles_dir: Path | None, profile: str | None, target: str | None,
             project_dir: Path, jinja: NativeEnvironment) -> _Profile:
    profiles_dir = profiles_dir or default_profiles_dir(project_dir)
    path = Path(profiles_dir) / "profiles.yml"
    if profile is None:
        project_file = project_dir / "dbt_project.yml"
        project = _read_yaml(project_file)
        if not isinstance(project, dict) or not isinstance(project.get("profile"), str):
            raise ProfileError(f"{project_file}: cannot read the profile name (no `profile:`)")
        profile = project["profile"]
    raw = _read_yaml(path)
    if not isinstance(raw, dict) or not isinstance(raw.get(profile), dict):
        raise ProfileError(f"{path}: no profile named '{profile}'")
    body = raw[profile]
    chosen = target or os.environ.get("DBT_TARGET") or _render(body.get("target", "dev"), jinja,
                                                              path, f"{profile}.target")
    return _Profile(path, profile, body, str(chosen))


def project_name(project_dir: Path) -> str | None:
    """The `name:` dbt_project.yml gives the project; None when there is no readable one."""
    path = project_dir / "dbt_project.yml"
    if not path.exists():
        return None
    try:
        project = _read_yaml(path)
    except ProfileError:
        return None
    name = project.get("name") if isinstance(project, dict) else None
    return name.strip() if isinstance(name, str) and name.strip() else None


def target_name(
    profiles_dir: Path | None = None,
    target: str | None = None,
    project_dir: Path | None = None,
) -> str | None:
    """The target dbt runs with (given, else $DBT_TARGET, else the profile's default), whatever
    its adapter; None when the profile cannot be read. It names an environment the same way the
    dbt package does when it records an invocation."""
    try:
        return _profile(profiles_dir, None, target, project_dir or Path.cwd(), _jinja()).target
    except ProfileError:
        return target


def load_target(
    profiles_dir: Path | None = None,
    profile: str | None = None,
    target: str | None = None,
    project_dir: Path | None = None,
) -> WarehouseTarget:
    """Render profiles.yml and pick the profile (default: the project's) and target."""
    project_dir = project_dir or Path.cwd()
    jinja = _jinja()
    p = _profile(profiles_dir, profile, target, project_dir, jinja)
    path, target = p.path, p.target
    outputs = p.body.get("outputs") or {}
    if not isinstance(outputs, dict) or not isinstance(outputs.get(target), dict):
        raise ProfileError(f"{path}: profile '{p.name}' has no target '{target}'")
    settings = _render(outputs[target], jinja, path, f"{p.name}.outputs.{target}")
    adapter = settings.get("type")
    if adapter not in ("duckdb", "postgres"):
        raise ProfileError(f"{path}: target '{target}' has type '{adapter}'; "
                           "only duckdb and postgres are supported")
    schema = settings.get("schema") or ("main" if adapter == "duckdb" else "public")
    if adapter == "duckdb":
        db_path = Path(str(settings.get("path", ":memory:")))
        if str(db_path) != ":memory:" and not db_path.is_absolute():
            settings = {**settings, "path": str(project_dir / db_path)}
    return WarehouseTarget(p.name, target, adapter, str(schema), settings)


def connect(target: WarehouseTarget, read_only: bool = False) -> Any:
    """A DB-API connection to the target's database (caller closes it)."""
    s = target.settings
    if target.adapter == "duckdb":
        import duckdb

        try:
            return duckdb.connect(s["path"], read_only=read_only)
        except duckdb.Error as exc:
            raise ProfileError(f"cannot open DuckDB file {s['path']}: {exc}") from exc
    import psycopg2

    port, timeout = _whole(target, "port", 5432), _whole(target, "connect_timeout", 10)
    try:
        return psycopg2.connect(
            host=s.get("host"),
            port=port,
            user=s.get("user"),
            password=s.get("password") or s.get("pass") or None,
            dbname=s.get("dbname") or s.get("database"),
            sslmode=s.get("sslmode") or "prefer",
            connect_timeout=timeout,
        )
    except psycopg2.Error as exc:
        # psycopg2's message never contains the password.
        raise ProfileError(f"cannot connect to {target.describe()}: "
                           f"{str(exc).strip().splitlines()[0]}") from exc


def _whole(target: WarehouseTarget, name: str, default: int) -> int:
    value = target.settings.get(name, default)
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ProfileError(f"profile '{target.profile}' target '{target.target}': {name} "
                           f"'{value}' is not a number") from None
