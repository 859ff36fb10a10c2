"""Helpers for the Soda / Airbyte / Dagster tests: run the real CLI, wait for the sender."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from testkit import BIN, REPO

EXAMPLES = REPO / "examples"
DATA = REPO / "examples" / "data"


def clean_env(tmp: Path, **extra: str) -> dict[str, str]:
    """The process environment without any QALITA_/SODA_ settings, an outbox under tmp."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("QALITA_", "SODA_"))}
    env.update({"QALITA_OUTBOX_DIR": str(tmp / "qalita" / "outbox"), "HOME": str(tmp),
                "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"})
    env.update(extra)
    return env


def sidecar(*args: str, env: dict[str, str], cwd: Path,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "qalita-sidecar"), *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)


def pending(tmp: Path) -> list[Path]:
    return sorted((tmp / "qalita" / "outbox" / "pending").glob("*.json"))


def ledger_keys(tmp: Path) -> list[str]:
    path = tmp / "qalita" / "ledger.jsonl"
    if not path.exists():
        return []
    return [json.loads(line)["key"] for line in path.read_text().splitlines() if line.strip()]


def wait_until(predicate: Callable[[], Any], timeout: float = 30.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(0.05)


def items(server, kind: str) -> list[dict[str, Any]]:
    """Every item the contract server accepted for one upload kind."""
    return [item for upload in server.received.uploads[kind] for item in upload.items]
