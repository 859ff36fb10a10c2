"""The compat suite: the consumer project run by each dbt minor 1.8 .. 1.12 on both adapters.

Each (dbt minor, adapter) pair is built once per session (dbt build, then dbt source freshness)
and every test of that pair reads the same run.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import consumer  # noqa: E402
import venvs  # noqa: E402

MINORS = ["1.8", "1.9", "1.10", "1.11", "1.12"]
ADAPTERS = ["duckdb", "postgres"]
REQUIRE_POSTGRES = os.environ.get("QALITA_TEST_REQUIRE_POSTGRES") == "1"


@dataclass
class Built:
    """A consumer project after `dbt build` and `dbt source freshness`."""

    run: consumer.ConsumerRun
    manifest: dict
    run_results: dict  # of the build
    sources: dict
    docs: dict  # run_results.json of dbt docs generate

    @property
    def qalita_schema(self) -> str:
        return "main_qalita" if self.run.adapter == "duckdb" else "public_qalita"


def venv_for(minor: str, extra_key: str = "") -> venvs.Venv:
    try:
        return venvs.ensure(venvs.VERSIONS[minor], extra_key=extra_key)
    except venvs.Unavailable as exc:
        pytest.skip(f"dbt {minor} cannot be had here: {exc}")


def need_adapter(adapter: str) -> None:
    if adapter != "postgres":
        return
    reason = consumer.postgres_unavailable()
    if reason and REQUIRE_POSTGRES:
        pytest.fail(f"{reason}; QALITA_TEST_REQUIRE_POSTGRES=1 requires it")
    if reason:
        pytest.skip(reason)


def build(venv: venvs.Venv, adapter: str, workdir: Path) -> Built:
    need_adapter(adapter)
    run = consumer.prepare(venv, adapter, workdir)
    run.dbt("build")
    manifest, run_results = run.artifact("manifest.json"), run.artifact("run_results.json")
    run.dbt("docs", "generate", check_codes=(0,))
    docs = run.artifact("run_results.json")
    run.dbt("source", "freshness")
    return Built(run, manifest, run_results, run.artifact("sources.json"), docs)


@pytest.fixture(scope="session")
def built(tmp_path_factory):
    """built(minor, adapter): the pair's run, made on first use and shared by its tests."""
    runs: dict[tuple[str, str], Built] = {}

    def get(minor: str, adapter: str) -> Built:
        if (minor, adapter) not in runs:
            venv = venv_for(minor)
            workdir = tmp_path_factory.mktemp(f"dbt-{minor}-{adapter}")
            runs[minor, adapter] = build(venv, adapter, workdir)
        return runs[minor, adapter]

    yield get
    for b in runs.values():
        b.run.close()


@pytest.fixture(params=[(m, a) for m in MINORS for a in ADAPTERS],
                ids=[f"dbt{m}-{a}" for m in MINORS for a in ADAPTERS])
def pair(request, built) -> Built:
    minor, adapter = request.param
    return built(minor, adapter)
