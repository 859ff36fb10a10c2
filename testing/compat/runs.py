"""One compat run: a dbt minor on one adapter, the consumer project built and read back by the
sidecar; and the runs of a session started together, two at a time (the machine has two cores
and each run is a chain of subprocesses).

The tests only read what a run recorded: every dbt and sidecar process runs here, in parallel.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import consumer
import venvs

HERE = Path(__file__).resolve().parent
HOST_PYTHON = Path(sys.executable)
WORKERS = int(os.environ.get("QALITA_COMPAT_WORKERS") or max(2, os.cpu_count() or 2))


@dataclass
class Run:
    """A consumer project after `dbt build` and `dbt source freshness` (and, on DuckDB,
    `dbt docs generate` into its own target path), with what the sidecar read of it."""

    minor: str
    adapter: str
    venv: venvs.Venv
    run: consumer.ConsumerRun
    manifest: dict
    run_results: dict  # of the build
    sources: dict
    docs: dict | None  # run_results.json of dbt docs generate (the runs `with_docs` only)
    read: dict  # sidecar_read.py's output: per invocation, from the tables and from the files
    dry_run_tables: subprocess.CompletedProcess  # `ingest dbt --dry-run`
    dry_run_files: subprocess.CompletedProcess  # `ingest dbt --dry-run --no-tables`
    dry_run_docs: subprocess.CompletedProcess | None  # the docs generate results, files only
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def qalita_schema(self) -> str:
        return "main_qalita" if self.adapter == "duckdb" else "public_qalita"

    @property
    def sidecar_python(self) -> Path:
        """The sidecar under test: the one installed into the dbt venv, else the main venv's."""
        return self.venv.bin / "python" if self.venv.version.with_sidecar else HOST_PYTHON

    @property
    def build_id(self) -> str:
        return self.run_results["metadata"]["invocation_id"]

    @property
    def freshness_id(self) -> str:
        return self.sources["metadata"]["invocation_id"]


def _timed(seconds: dict[str, float], name: str, proc_args: list[str], **kwargs
           ) -> subprocess.CompletedProcess:
    started = time.monotonic()
    proc = subprocess.run(proc_args, capture_output=True, text=True, **kwargs)
    seconds[name] = round(seconds.get(name, 0.0) + time.monotonic() - started, 1)
    return proc


def _dry_run(run: consumer.ConsumerRun, sidecar: Path, seconds: dict[str, float],
             *extra: str) -> subprocess.CompletedProcess:
    cmd = [str(sidecar), "ingest", "dbt", "--dry-run", "--project-dir", str(run.root),
           "--profiles-dir", str(run.root), "--target", run.adapter,
           "--outbox", str(run.root / "outbox"), *extra]
    return _timed(seconds, "sidecar", cmd, cwd=run.root, env=run.env)


def execute(minor: str, adapter: str, workdir: Path, with_docs: bool = False) -> Run:
    """Build the consumer project with dbt `minor` on `adapter`, then read it with the sidecar
    (and, `with_docs`, what `dbt docs generate` writes)."""
    venv = venvs.ensure(venvs.VERSIONS[minor])
    run = consumer.prepare(venv, adapter, workdir)
    try:
        run.dbt("build")
        manifest = run.artifact("manifest.json")
        run_results = run.artifact("run_results.json")
        build_results = workdir / "build_run_results.json"
        shutil.copyfile(run.target / "run_results.json", build_results)
        run.dbt("source", "freshness")
        sources = run.artifact("sources.json")
        docs = None
        if with_docs:
            run.dbt("docs", "generate", "--target-path", "target_docs", check_codes=(0,))
            docs = json.loads((run.root / "target_docs" / "run_results.json").read_text())
        seconds = dict(run.seconds)
        python = venv.bin / "python" if venv.version.with_sidecar else HOST_PYTHON
        sidecar = python.parent / "qalita-sidecar"
        proc = _timed(seconds, "sidecar", [str(python), str(HERE / "sidecar_read.py"),
                                           str(run.root), adapter, str(build_results),
                                           str(run.target / "sources.json")],
                      cwd=run.root, env=run.env)
        if proc.returncode != 0:
            raise AssertionError(f"sidecar_read.py exited {proc.returncode} (dbt {minor}, "
                                 f"{adapter}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
        read = json.loads(proc.stdout)
        results = ("--results", str(build_results))
        dry_tables = _dry_run(run, sidecar, seconds, *results)
        dry_files = _dry_run(run, sidecar, seconds, "--no-tables", *results)
        dry_docs = None
        if docs is not None:
            dry_docs = _dry_run(run, sidecar, seconds, "--no-tables",
                                "--target-path", str(run.root / "target_docs"))
    except BaseException:
        run.close()
        raise
    seconds["venv"] = venv.seconds
    return Run(minor, adapter, venv, run, manifest, run_results, sources, docs, read,
               dry_tables, dry_files, dry_docs, seconds)


@dataclass
class Session:
    """Every run of a pytest session, started at once and awaited by the tests that read it."""

    workdir: Path
    pool: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(WORKERS))
    futures: dict[tuple[str, str], Future] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)
    finished: dict[tuple[str, str], float] = field(default_factory=dict)
    ended: float | None = None

    def start(self, pairs: list[tuple[str, str]], with_docs: tuple[str, str] | None = None
              ) -> None:
        # one adapter across the minors first: the two workers then build two different venvs
        # on a cold cache instead of one waiting for the other's
        for minor, adapter in sorted(pairs, key=lambda p: (p[1], pairs.index(p))):
            self.futures[minor, adapter] = self.pool.submit(
                self._one, minor, adapter, (minor, adapter) == with_docs)

    def _one(self, minor: str, adapter: str, with_docs: bool) -> Run:
        try:
            return execute(minor, adapter, self.workdir / f"dbt-{minor}-{adapter}", with_docs)
        finally:
            self.finished[minor, adapter] = round(time.monotonic() - self.started, 1)

    def get(self, minor: str, adapter: str) -> Run:
        return self.futures[minor, adapter].result()

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
        self.ended = time.monotonic()
        for future in self.futures.values():
            if not future.cancelled() and future.exception() is None:
                future.result().run.close()

    def timings(self) -> list[str]:
        """One line per run, for the terminal summary."""
        lines = [f"{'dbt':<6}{'adapter':<10}{'python':<9}{'venv':<14}{'deps':>6}{'build':>7}"
                 f"{'fresh':>7}{'docs':>6}{'sidecar':>9}{'done at':>9}"]
        for (minor, adapter), future in self.futures.items():
            if future.cancelled() or not future.done():
                continue
            exc = future.exception()
            if exc is not None:
                reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc)
                lines.append(f"{minor:<6}{adapter:<10}not run: {reason}")
                continue
            r: Run = future.result()
            s = r.seconds
            venv = f"{'built' if r.venv.built else 'reused'} {r.venv.seconds:.1f}"
            lines.append(f"{minor:<6}{adapter:<10}{r.venv.python_version:<9}{venv:<14}"
                         f"{s.get('deps', 0):>6.1f}{s.get('build', 0):>7.1f}"
                         f"{s.get('source freshness', 0):>7.1f}{s.get('docs generate', 0):>6.1f}"
                         f"{s.get('sidecar', 0):>9.1f}{self.finished.get((minor, adapter), 0):>9.1f}")
        wall = (self.ended or time.monotonic()) - self.started
        lines.append(f"all runs: {wall:.1f} s wall time, {WORKERS} at a time")
        return lines
