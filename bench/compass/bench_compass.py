"""Quality Compass end to end: generate a run, load it, `dbt build` the Compass models and seeds.

For each size (entity rows) and adapter, into a fresh warehouse:
  1. generate the run once (cached under bench/.work/compass/runs/; prints time and peak memory),
  2. load it with the CLI (`python -m quality_compass load`): raw rows, seconds, rows/s, peak RSS,
  3. `dbt build --select tag:compass ref_facilities metric_catalog`: seconds, result statuses and
     the slowest nodes (from run_results.json).
Prints figures and ratios; asserts nothing. Budget: 100k entity rows loaded and built in
under 60 s on DuckDB; the table says whether each run is within it.

    .venv/bin/python bench/compass/bench_compass.py [--sizes 10000,100000,1000000]
        [--adapters duckdb,postgres] [--top 5]
Defaults: COMPASS_BENCH_SIZES (else 10000,100000,1000000) and both adapters (PostgreSQL is skipped,
with the reason, when no server answers).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
WORK = REPO / "bench" / ".work" / "compass"
BIN = Path(sys.executable).parent
SEED = 42
BUDGET_ROWS, BUDGET_SECONDS = 100_000, 60.0
SELECT = ["tag:compass", "ref_facilities", "metric_catalog"]
PG = {"host": os.environ.get("DBT_POSTGRES_HOST", "127.0.0.1"),
      "port": int(os.environ.get("DBT_POSTGRES_PORT", "5432")),
      "user": os.environ.get("DBT_POSTGRES_USER", "postgres")}


@dataclass
class Figures:
    size: int
    adapter: str
    entity_rows: int = 0
    raw_rows: int = 0
    load_s: float = 0.0
    load_peak_mb: float = 0.0
    build_s: float = 0.0
    statuses: Counter = field(default_factory=Counter)
    note: str = ""

    @property
    def total_s(self) -> float:
        return self.load_s + self.build_s


def run_measured(cmd: list[str], env: dict[str, str]) -> tuple[int, str, str, float, float]:
    """Run a command; returns (returncode, stdout, stderr, seconds, peak RSS in MB)."""
    out, err = WORK / "last.stdout", WORK / "last.stderr"
    started = time.perf_counter()
    with open(out, "w") as fo, open(err, "w") as fe:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=fo, stderr=fe)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - started
    return proc.returncode, out.read_text(), err.read_text(), seconds, usage.ru_maxrss / 1024


def generated_run(size: int, env: dict[str, str]) -> tuple[Path, int]:
    """The run folder for a size (generated once) and its entity-row count."""
    folder = WORK / "runs" / str(size)
    done = folder / "generated.txt"
    if not done.exists():
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        rc, out, err, secs, peak = run_measured(
            [str(BIN / "python"), "-m", "quality_compass", "generate", "--out", str(folder),
             "--entities", str(size), "--seed", str(SEED)], env)
        if rc != 0:
            sys.exit(f"generate {size} failed: {err.strip()}")
        done.write_text(out)
        print(f"  generate {size:>9,}: {secs:7.1f} s, peak {peak:6.0f} MB  ({out.strip()})")
    text = done.read_text()
    rows = int(re.search(r"([\d]+) entity rows", text).group(1))
    (run,) = [p for p in folder.iterdir() if p.is_dir()]
    return run, rows


def pg_reason() -> str | None:
    try:
        import psycopg2

        psycopg2.connect(dbname="postgres", connect_timeout=3, **PG).close()
        return None
    except Exception as exc:  # any failure: no usable server
        return str(exc).strip().splitlines()[0]


def pg_fresh_database(name: str) -> None:
    import psycopg2

    con = psycopg2.connect(dbname="postgres", **PG)
    con.autocommit = True
    with con.cursor() as cur:
        cur.execute(f'drop database if exists "{name}" with (force)')
        cur.execute(f'create database "{name}"')
    con.close()


def bench_one(size: int, adapter: str, top: int) -> Figures:
    fig = Figures(size, adapter)
    work = WORK / f"{adapter}-{size}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DBT_")}
    env.update({k: v for k, v in os.environ.items() if k.startswith("DBT_POSTGRES_")})
    env.update({"DBT_DUCKDB_PATH": str(work / "warehouse.duckdb"),
                "DBT_TARGET_PATH": str(work / "target"), "DBT_LOG_PATH": str(work / "logs"),
                "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"})
    target = "dev" if adapter == "duckdb" else "prod"
    if adapter == "postgres":
        env["DBT_POSTGRES_DATABASE"] = f"compass_bench_{size}"
        pg_fresh_database(env["DBT_POSTGRES_DATABASE"])
    run, fig.entity_rows = generated_run(size, env)

    rc, out, err, fig.load_s, fig.load_peak_mb = run_measured(
        [str(BIN / "python"), "-m", "quality_compass", "load", str(run), "--target", target,
         "--profiles-dir", str(REPO), "--project-dir", str(REPO)], env)
    if rc != 0:
        fig.note = f"load failed: {err.strip()}"
        return fig
    fig.raw_rows = sum(int(n) for n in re.findall(r"raw_\w+=(\d+)", out))

    rc, out, err, fig.build_s, _ = run_measured(
        [str(BIN / "dbt"), "build", "--select", *SELECT, "--target", target,
         "--project-dir", str(REPO), "--profiles-dir", str(REPO)], env)
    results_file = work / "target" / "run_results.json"
    if results_file.exists():
        results = json.loads(results_file.read_text())["results"]
        fig.statuses = Counter(r["status"] for r in results)
        slow = sorted(results, key=lambda r: -(r.get("execution_time") or 0))[:top]
        print(f"  slowest nodes ({adapter}, {size:,}): " + ", ".join(
            f"{r['unique_id'].split('.')[-1]} {r['execution_time']:.1f}s" for r in slow))
        bad = [r for r in results if r["status"] in ("error", "fail")]
        if bad:
            message = " ".join((bad[0].get("message") or "").split())
            fig.note = f"{len(bad)} error/fail, first: {bad[0]['unique_id']}: {message[:300]}"
    elif rc != 0:
        lines = [x for x in (out + err).splitlines() if x.strip()]
        fig.note = f"dbt build failed ({rc}): {lines[-1][:200] if lines else ''}"
    return fig


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default=os.environ.get("COMPASS_BENCH_SIZES",
                                                     "10000,100000,1000000"))
    p.add_argument("--adapters", default="duckdb,postgres")
    p.add_argument("--top", type=int, default=5, help="slowest dbt nodes to print per build")
    args = p.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s]
    adapters = [a for a in args.adapters.split(",") if a]
    WORK.mkdir(parents=True, exist_ok=True)
    if "postgres" in adapters and (reason := pg_reason()):
        print(f"PostgreSQL skipped: {reason}")
        adapters.remove("postgres")
    print(f"Quality Compass bench: sizes {sizes}, adapters {adapters}, {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.1f} (other work on the machine slows every figure)")
    figs = []
    for size in sizes:
        for adapter in adapters:
            fig = bench_one(size, adapter, args.top)
            figs.append(fig)
            print(f"  {adapter:8} {size:>9,}: load {fig.load_s:6.1f} s, build {fig.build_s:6.1f} s"
                  + (f"  [{fig.note}]" if fig.note else ""))

    print()
    print(f"{'adapter':8} {'entity rows':>11} {'raw rows':>10} {'load s':>7} {'rows/s':>8} "
          f"{'load MB':>7} {'build s':>8} {'total s':>8}  build results")
    for f in figs:
        rate = f.raw_rows / f.load_s if f.load_s and f.raw_rows else 0
        res = ", ".join(f"{k} {v}" for k, v in sorted(f.statuses.items())) or "-"
        print(f"{f.adapter:8} {f.entity_rows:>11,} {f.raw_rows:>10,} {f.load_s:>7.1f} "
              f"{rate:>8,.0f} {f.load_peak_mb:>7.0f} {f.build_s:>8.1f} {f.total_s:>8.1f}  {res}"
              + (f"  ({f.note})" if f.note else ""))
    for adapter in adapters:
        mine = sorted((f for f in figs if f.adapter == adapter and f.raw_rows),
                      key=lambda f: f.size)
        for a, b in zip(mine, mine[1:], strict=False):
            print(f"{adapter}: {b.size:,} vs {a.size:,} entity rows "
                  f"(x{b.entity_rows / a.entity_rows:.1f}): load x{b.load_s / a.load_s:.1f}, "
                  f"build x{b.build_s / a.build_s:.1f}")
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    for f in figs:
        if f.adapter == "duckdb" and f.size == BUDGET_ROWS and f.raw_rows:
            verdict = "within" if f.total_s < BUDGET_SECONDS and not f.note else "NOT within"
            print(f"budget: {f.entity_rows:,} entity rows loaded and built on DuckDB in "
                  f"{f.total_s:.1f} s: {verdict} the {BUDGET_SECONDS:.0f} s budget")


if __name__ == "__main__":
    main()
