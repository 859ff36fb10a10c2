"""The on-run-end hook's own time for 1,000 and 10,000 results, on DuckDB and PostgreSQL.

Generates a dbt project with N/6 models and 5 tests per model (so N results per `dbt build`),
builds it once to warm the warehouse, then builds it again and reads the hook's execution time from
run_results.json (dbt reports the hook as an `operation` result). Prints figures; asserts nothing.

    .venv/bin/python bench/hook/bench_hook.py [--sizes 1000 10000] [--adapters duckdb postgres]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
WORK = REPO / "bench" / ".work" / "hook"
BIN = Path(sys.executable).parent
BUDGET_PER_1000 = 0.25


def generate(root: Path, results: int) -> int:
    models = max(1, results // 6)
    if root.exists():
        shutil.rmtree(root)
    (root / "models").mkdir(parents=True)
    (root / "dbt_project.yml").write_text(
        "name: hook_bench\nversion: '1.0'\nconfig-version: 2\nprofile: quality_compass\n"
        "models:\n  hook_bench:\n    +materialized: view\n"
        "on-run-end:\n  - \"{{ qalita.record_results(results) }}\"\n")
    (root / "packages.yml").write_text(f"packages:\n  - local: {REPO / 'dbt_qalita'}\n")
    yml = ["models:"]
    for i in range(models):
        (root / "models" / f"m_{i:05d}.sql").write_text(
            f"select {i} as id, 'name ''{i}''' as label, {i} * 1.5 as amount\n")
        yml.append(f"  - name: m_{i:05d}\n    columns:\n      - name: id\n        data_tests:\n"
                   "          - not_null\n          - unique\n"
                   "          - accepted_values:\n              arguments:\n"
                   f"                values: [{i}]\n                quote: false\n"
                   "      - name: label\n        data_tests: [not_null]\n"
                   "      - name: amount\n        data_tests: [not_null]")
    (root / "models" / "_models.yml").write_text("\n".join(yml) + "\n")
    return models * 6


def dbt(root: Path, env: dict, target: str, *args: str) -> None:
    cmd = [str(BIN / "dbt"), *args, "--project-dir", str(root), "--profiles-dir", str(REPO),
           "--target", target]
    proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"dbt {' '.join(args)} failed:\n{proc.stdout[-3000:]}{proc.stderr[-2000:]}")


def pg_database(name: str) -> None:
    import psycopg2

    con = psycopg2.connect(host="127.0.0.1", user="postgres", dbname="postgres")
    con.autocommit = True
    with con.cursor() as cur:
        cur.execute(f'drop database if exists "{name}" with (force)')
        cur.execute(f'create database "{name}"')
    con.close()


def measure(results: int, adapter: str) -> dict:
    root = WORK / f"project_{results}"
    generate(root, results)
    env = {**os.environ, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
           "DBT_TARGET_PATH": str(WORK / f"target_{results}_{adapter}"),
           "DBT_LOG_PATH": str(WORK / "logs")}
    target = "dev" if adapter == "duckdb" else "prod"
    if adapter == "duckdb":
        env["DBT_DUCKDB_PATH"] = str(WORK / f"bench_{results}.duckdb")
        for suffix in ("", ".wal"):
            Path(env["DBT_DUCKDB_PATH"] + suffix).unlink(missing_ok=True)
    else:
        env["DBT_POSTGRES_DATABASE"] = f"qalita_hook_bench_{results}"
        pg_database(env["DBT_POSTGRES_DATABASE"])
    dbt(root, env, target, "deps")
    dbt(root, env, target, "build")  # first run: also creates the tables
    started = time.perf_counter()
    dbt(root, env, target, "build")
    wall = time.perf_counter() - started
    run_results = json.loads((Path(env["DBT_TARGET_PATH"]) / "run_results.json").read_text())
    hook = [r for r in run_results["results"] if r["unique_id"].startswith("operation.")]
    nodes = len(run_results["results"]) - len(hook)
    hook_time = sum(r["execution_time"] for r in hook)
    return {"adapter": adapter, "results": nodes, "hook_s": hook_time, "build_s": wall,
            "per_1000": hook_time / nodes * 1000}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--adapters", nargs="+", default=["duckdb", "postgres"])
    args = parser.parse_args()
    print(f"{'adapter':<10}{'results':>9}{'hook s':>9}{'s/1000':>9}{'budget':>9}{'build s':>10}")
    for size in args.sizes:
        for adapter in args.adapters:
            m = measure(size, adapter)
            verdict = "ok" if m["per_1000"] <= BUDGET_PER_1000 else "OVER"
            print(f"{m['adapter']:<10}{m['results']:>9}{m['hook_s']:>9.3f}{m['per_1000']:>9.3f}"
                  f"{verdict:>9}{m['build_s']:>10.1f}", flush=True)


if __name__ == "__main__":
    main()
