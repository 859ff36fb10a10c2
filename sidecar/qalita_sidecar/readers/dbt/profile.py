"""Connect to the warehouse a dbt profile points at (DuckDB or PostgreSQL), outside dbt.

The sidecar and the Quality Compass loader read the same profiles.yml dbt uses, rendered the way
dbt renders it (`env_var()` with defaults, Jinja filters), so one set of settings serves all.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from jinja2 import Environment, StrictUndefined


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


_MISSING = object()


def _env_var(name: str, default: Any = _MISSING) -> str:
    if name in os.environ:
        return os.environ[name]
    if default is _MISSING:
        raise ProfileError(f"profiles.yml: env_var('{name}') is not set and has no default")
    return str(default)


def _render(value: Any, jinja: Environment) -> Any:
    if isinstance(value, str) and ("{{" in value or "{%" in value):
        return jinja.from_string(value).render()
    if isinstance(value, dict):
        return {k: _render(v, jinja) for k, v in value.items()}
    if isinstance(value, list):
        return [_render(v, jinja) for v in value]
    return value


def default_profiles_dir(project_dir: Path | None = None) -> Path:
    """dbt's order: DBT_PROFILES_DIR, the project directory if it has profiles.yml, ~/.dbt."""
    if os.environ.get("DBT_PROFILES_DIR"):
        return Path(os.environ["DBT_PROFILES_DIR"])
    project_dir = project_dir or Path.cwd()
    if (project_dir / "profiles.yml").exists():
        return project_dir
    return Path.home() / ".dbt"


def load_target(
    profiles_dir: Path | None = None,
    profile: str | None = None,
    target: str | None = None,
    project_dir: Path | None = None,
) -> WarehouseTarget:
    """Render profiles.yml and pick the profile (default: the project's) and target."""
    project_dir = project_dir or Path.cwd()
    profiles_dir = profiles_dir or default_profiles_dir(project_dir)
    path = Path(profiles_dir) / "profiles.yml"
    if profile is None:
        project_file = project_dir / "dbt_project.yml"
        try:
            profile = yaml.safe_load(project_file.read_text())["profile"]
        except (OSError, KeyError, TypeError, yaml.YAMLError) as exc:
            raise ProfileError(f"{project_file}: cannot read the profile name ({exc})") from exc
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ProfileError(f"{path}: cannot read ({exc.strerror})") from exc
    except yaml.YAMLError as exc:
        raise ProfileError(f"{path}: not valid YAML ({exc})") from exc
    if not isinstance(raw, dict) or profile not in raw:
        raise ProfileError(f"{path}: no profile named '{profile}'")
    jinja = Environment(undefined=StrictUndefined)
    jinja.globals["env_var"] = _env_var
    body = raw[profile]
    target = target or os.environ.get("DBT_TARGET") or _render(body.get("target", "dev"), jinja)
    outputs = body.get("outputs") or {}
    if target not in outputs:
        raise ProfileError(f"{path}: profile '{profile}' has no target '{target}'")
    settings = _render(outputs[target], jinja)
    adapter = settings.get("type")
    if adapter not in ("duckdb", "postgres"):
        raise ProfileError(f"{path}: target '{target}' has type '{adapter}'; "
                           "only duckdb and postgres are supported")
    schema = settings.get("schema") or ("main" if adapter == "duckdb" else "public")
    if adapter == "duckdb":
        db_path = Path(settings.get("path", ":memory:"))
        if str(db_path) != ":memory:" and not db_path.is_absolute():
            settings = {**settings, "path": str(project_dir / db_path)}
    return WarehouseTarget(profile, target, adapter, schema, settings)


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

    try:
        return psycopg2.connect(
            host=s.get("host"),
            port=int(s.get("port", 5432)),
            user=s.get("user"),
            password=s.get("password") or s.get("pass") or None,
            dbname=s.get("dbname") or s.get("database"),
            sslmode=s.get("sslmode") or "prefer",
            connect_timeout=int(s.get("connect_timeout", 10)),
        )
    except psycopg2.Error as exc:
        # psycopg2's message never contains the password.
        raise ProfileError(f"cannot connect to {target.describe()}: "
                           f"{str(exc).strip().splitlines()[0]}") from exc
