"""Generated Quality Compass runs shared by the loader and generator tests (generated once)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


def generate(out: Path, entities: int, seed: int, run_id: str | None = None) -> Path:
    """Run the generator's CLI as a user would; returns the run folder."""
    cmd = [sys.executable, "-m", "quality_compass", "generate", "--out", str(out),
           "--entities", str(entities), "--seed", str(seed)]
    if run_id:
        cmd += ["--run-id", run_id]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    folders = [p for p in out.iterdir() if p.is_dir()]
    assert len(folders) == 1, folders
    return folders[0]


@pytest.fixture(scope="session")
def gen():
    """The generator CLI as a function: gen(out, entities, seed, run_id=None) -> run folder."""
    return generate


@pytest.fixture(scope="session")
def medium_run(tmp_path_factory) -> Path:
    """Enough facilities (about 46) for every tier and signal type to occur."""
    return generate(tmp_path_factory.mktemp("medium"), 5000, 7)
