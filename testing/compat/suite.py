"""What the compat suite runs, and how a test gets its run (skipped, failed or ready)."""

from __future__ import annotations

import pytest
import runs
import venvs
from testkit import require_postgres

MINORS = ["1.8", "1.9", "1.10", "1.11", "1.12"]
ADAPTERS = ["duckdb", "postgres"]
PAIRS = [(m, a) for m in MINORS for a in ADAPTERS]
# dbt-core 1.12 is installed without its deps (one of them downloads a binary from outside the
# package index): when that stops working it is skipped with the reason; the others must run
MAY_BE_UNAVAILABLE = {"1.12"}
# `dbt docs generate` (its run_results.json ships no test outcome) on one run: every minor's
# shape of that file is in the reader's fixtures already
DOCS_RUN = ("1.11", "duckdb")

_reported: set[tuple[str, str]] = set()


def get_run(session: runs.Session, minor: str, adapter: str) -> runs.Run:
    if adapter == "postgres":
        require_postgres()
    try:
        return session.get(minor, adapter)
    except venvs.Unavailable as exc:
        if minor in MAY_BE_UNAVAILABLE:
            pytest.skip(f"dbt {minor} cannot be installed or run here: {exc}")
        raise
    except Exception as exc:
        # the first test of a run that failed shows why in full, the others in one line
        if (minor, adapter) not in _reported:
            _reported.add((minor, adapter))
            raise
        first = str(exc).strip().splitlines()[:1]
        pytest.fail(f"dbt {minor} on {adapter} did not run: {first}", pytrace=False)
