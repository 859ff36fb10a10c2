"""Shared fixtures; the helpers themselves live in testkit.py (importable from any test)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from testkit import BIN, REPO, base_env, drop_database, make_project, require_postgres


@pytest.fixture(scope="session", autouse=True)
def _dbt_deps() -> None:
    """The host project's packages (the local `qalita` package) installed once per session."""
    subprocess.run([str(BIN / "dbt"), "deps", "--project-dir", str(REPO), "--profiles-dir",
                    str(REPO)], cwd=REPO, check=True, capture_output=True,
                   env={**base_env(Path("/tmp")), "DBT_LOG_PATH": "/tmp/qalita-dbt-deps-logs"})


@pytest.fixture(params=["dev", "prod"], ids=["duckdb", "postgres"])
def adapter_target(request) -> str:
    """Parametrises a test over both adapters; the PostgreSQL case skips (or fails) per policy."""
    if request.param == "prod":
        require_postgres()
    return request.param


@pytest.fixture
def dbt_project(tmp_path, adapter_target):
    proj = make_project(tmp_path, adapter_target)
    yield proj
    if adapter_target == "prod":
        drop_database(proj.env["DBT_POSTGRES_DATABASE"])

# The local QALITA contract server (fixture `qalita_server`), shared by the shipping tests.
pytest_plugins = ["contract_server"]
