"""The compat suite: the consumer project run by each dbt minor 1.8 .. 1.12 on both adapters.

Every (dbt minor, adapter) run starts when the session does, two at a time, and each test reads
the run it names; the terminal summary prints the time each one took.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import runs  # noqa: E402
import suite  # noqa: E402
from testkit import postgres_available  # noqa: E402

_session: runs.Session | None = None


@pytest.fixture(scope="session")
def compat_session(tmp_path_factory):
    global _session
    session = runs.Session(tmp_path_factory.mktemp("compat"))
    # without a server the PostgreSQL runs are not started; their tests skip or fail per policy
    pairs = [p for p in suite.PAIRS if p[1] != "postgres" or postgres_available() is None]
    session.start(pairs, with_docs=suite.DOCS_RUN)
    _session = session
    yield session
    session.close()


@pytest.fixture(params=suite.PAIRS, ids=[f"dbt{m}-{a}" for m, a in suite.PAIRS])
def pair(request, compat_session) -> runs.Run:
    return suite.get_run(compat_session, *request.param)


def pytest_terminal_summary(terminalreporter):
    if _session is None:
        return
    terminalreporter.section("compat runs (seconds)")
    for line in _session.timings():
        terminalreporter.write_line(line)
