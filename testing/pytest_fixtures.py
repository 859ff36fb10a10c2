"""Fixtures every suite shares; the helpers themselves live in testkit.py (importable anywhere)."""

from __future__ import annotations

import os

import pytest
import testkit
from testkit import drop_database, make_project, require_postgres


@pytest.fixture(scope="session", autouse=True)
def _saved_dbt_parses(tmp_path_factory) -> None:
    """dbt's saved parses of the host project, shared by this session's test processes (xdist
    gives each worker a folder inside the session's)."""
    base = tmp_path_factory.getbasetemp()
    testkit.PARSES = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "dbt-parses"


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
