"""Read, map and ship a generated dbt project's results: 10 k and 100 k results.

Budget: reading and mapping 100 k results with a 50 MB manifest in under 5 s and 300 MB.
Each measurement runs in a fresh Python process so its peak RSS is its own. Prints figures only.

    .venv/bin/python bench/ingest/bench_ingest.py [--sizes 10000,100000] [--no-ship]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
WORK = REPO / "bench" / ".work" / "ingest"
TESTS_PER_MODEL = 9  # one model result and nine test results: 10 results per model
PROJECT = "bench_shop"
TEST_KINDS = ["not_null", "unique", "accepted_values", "relationships", "accepted_range"]


def _config(kind: str, full: bool) -> dict:
    """A node config as dbt 1.11 writes it (`full`), or its few keys that matter here."""
    if not full:
        cfg: dict = {"enabled": True, "materialized": kind}
        if kind == "test":
            cfg["severity"] = "ERROR"
        return cfg
    cfg = {"enabled": True, "alias": None, "schema": None, "database": None, "tags": [],
           "meta": {}, "group": None, "materialized": kind, "incremental_strategy": None,
           "persist_docs": {}, "post-hook": [], "pre-hook": [], "quoting": {},
           "column_types": {}, "full_refresh": None, "unique_key": None,
           "on_schema_change": "ignore", "on_configuration_change": "apply",
           "grants": {}, "packages": [], "docs": {"show": True, "node_color": None},
           "contract": {"enforced": False, "alias_types": True}, "access": "protected"}
    if kind == "test":
        cfg.update({"severity": "ERROR", "store_failures": None, "where": None, "limit": None,
                    "fail_calc": "count(*)", "warn_if": "!= 0", "error_if": "!= 0"})
    return cfg


def generate(results: int, manifest_mb: float) -> tuple[Path, Path]:
    """manifest.json (about manifest_mb) and run_results.json with `results` results.

    dbt 1.11 writes ~1.7 kB per node, so a real 100 k-node manifest weighs ~180 MB: below that
    the nodes carry a lean config, above it descriptions pad them (as real projects' docs do).
    """
    full = manifest_mb * 1e6 / results >= 1700
    folder = WORK / f"r{results}-{manifest_mb:.0f}mb"
    manifest_path, results_path = folder / "manifest.json", folder / "run_results.json"
    if manifest_path.exists() and results_path.exists():
        return manifest_path, results_path
    folder.mkdir(parents=True, exist_ok=True)
    rnd = random.Random(results)
    models = results // (TESTS_PER_MODEL + 1)
    nodes: dict[str, dict] = {}
    rr: list[dict] = []
    pad = max(0, int(manifest_mb * 1e6 / results) - (1700 if full else 480))
    now = "2026-03-01T08:00:00.000000Z"
    for m in range(models):
        name = f"fct_orders_{m:06d}"
        uid = f"model.{PROJECT}.{name}"
        parent = f"model.{PROJECT}.fct_orders_{m - 1:06d}" if m else None
        nodes[uid] = {
            "unique_id": uid, "resource_type": "model", "name": name, "package_name": PROJECT,
            "config": _config("table", full), "tags": ["marts"],
            "description": "x" * pad * (TESTS_PER_MODEL + 1),
            "depends_on": {"macros": [], "nodes": [parent] if parent else []},
            "raw_code": f"select * from {{{{ ref('fct_orders_{m - 1:06d}') }}}}",
        }
        if full:
            nodes[uid].update({
                "path": f"marts/{name}.sql", "original_file_path": f"models/marts/{name}.sql",
                "fqn": [PROJECT, "marts", name], "alias": name, "language": "sql",
                "checksum": {"name": "sha256", "checksum": "0" * 64}, "refs": [], "sources": [],
                "columns": {f"col_{c}": {"name": f"col_{c}", "description": "", "meta": {},
                                         "data_type": None, "constraints": [], "quote": None,
                                         "tags": []} for c in range(5)}})
        status = rnd.choices(["success", "error", "skipped"], [98, 1, 1])[0]
        rr.append({"status": status, "unique_id": uid, "timing": [], "thread_id": "Thread-1",
                   "execution_time": rnd.random(), "failures": None,
                   "message": "Database Error: relation missing" if status == "error" else "OK",
                   "adapter_response": {"_message": "OK", "rows_affected": rnd.randint(0, 10**6)},
                   "compiled": True, "compiled_code": "select 1", "relation_name": name,
                   "batch_results": None})
        for t in range(TESTS_PER_MODEL):
            kind = TEST_KINDS[t % len(TEST_KINDS)]
            column = f"col_{t % 5}"
            tname = f"{kind}_{name}_{column}_{t}"
            tuid = f"test.{PROJECT}.{tname}.{t:010x}"
            nodes[tuid] = {
                "unique_id": tuid, "resource_type": "test", "name": tname,
                "package_name": PROJECT, "config": _config("test", full), "tags": [],
                "description": "", "column_name": column, "attached_node": uid,
                "test_metadata": {"name": kind, "namespace": None},
                "depends_on": {"nodes": [uid]},
            }
            if full:
                nodes[tuid].update({
                    "path": f"{tname}.sql", "original_file_path": "models/marts/_models.yml",
                    "fqn": [PROJECT, "marts", tname], "alias": tname,
                    "checksum": {"name": "none", "checksum": ""}, "columns": {},
                    "file_key_name": f"models.{name}", "language": "sql",
                    "raw_code": "{{ test_" + kind + "(**_dbt_generic_test_kwargs) }}",
                    "refs": [{"name": name, "package": None, "version": None}]})
            tstatus = rnd.choices(["pass", "fail", "warn", "error", "skipped"],
                                  [94, 3, 2, 0.5, 0.5])[0]
            failures = rnd.randint(1, 500) if tstatus in ("fail", "warn") else 0
            rr.append({"status": tstatus, "unique_id": tuid, "timing": [],
                       "thread_id": "Thread-2", "execution_time": rnd.random() / 10,
                       "failures": None if tstatus in ("error", "skipped") else failures,
                       "message": f"Got {failures} results" if failures else None,
                       "adapter_response": {}, "compiled": True,
                       "compiled_code": "select count(*) from x", "relation_name": None,
                       "batch_results": None})
    manifest = {"metadata": {"dbt_schema_version": "https://schemas.getdbt.com/dbt/manifest/v12.json",
                             "dbt_version": "1.11.0", "generated_at": now,
                             "invocation_id": "bench", "project_name": PROJECT, "env": {}},
                "nodes": nodes, "sources": {}, "macros": {}, "docs": {}, "exposures": {},
                "metrics": {}, "groups": {}, "selectors": {}, "disabled": {},
                "parent_map": {}, "child_map": {}, "unit_tests": {}}
    run_results = {"metadata": {"dbt_schema_version":
                                "https://schemas.getdbt.com/dbt/run-results/v6.json",
                                "dbt_version": "1.11.0", "generated_at": now,
                                "invocation_id": f"bench-{results}",
                                "invocation_started_at": "2026-03-01T07:50:00Z", "env": {}},
                   "results": rr, "elapsed_time": 600.0, "args": {"which": "build"}}
    manifest_path.write_text(json.dumps(manifest))
    results_path.write_text(json.dumps(run_results))
    return manifest_path, results_path


# --- measured in a child process ---------------------------------------------------------------

CHILD = r"""
import json, resource, sys, time
sys.path.insert(0, {sidecar!r})
mode, manifest_path, results_path = sys.argv[1:4]
import orjson
from qalita_sidecar.readers.dbt import artifacts
from qalita_sidecar.readers.dbt import to_shipment
def hwm():
    # VmHWM, not ru_maxrss: Linux keeps ru_maxrss across exec, so a child would inherit ours
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
base = hwm()
ru0 = resource.getrusage(resource.RUSAGE_SELF)
cpu0 = ru0.ru_utime + ru0.ru_stime
t0 = time.perf_counter()
if mode == "ours":
    m = artifacts.read_manifest(manifest_path)
    inv = artifacts.read_run_results(results_path, m)
    t1 = time.perf_counter()
    s = to_shipment.to_shipment(inv, project="bench", environment="ci", manifest=m)
    t2 = time.perf_counter()
    extra = dict(metrics=len(s.metrics), recommendations=len(s.recommendations),
                 schemas=len(s.schemas), nodes=len(m.nodes), results=len(inv.results))
elif mode == "orjson":
    # the naive reader: whole documents as Python dicts
    with open(manifest_path, "rb") as fh:
        m = orjson.loads(fh.read())
    with open(results_path, "rb") as fh:
        r = orjson.loads(fh.read())
    t1 = t2 = time.perf_counter()
    extra = dict(nodes=len(m["nodes"]), results=len(r["results"]))
else:
    from dbt_artifacts_parser.parser import parse_manifest, parse_run_results
    with open(manifest_path, "rb") as fh:
        m = parse_manifest(orjson.loads(fh.read()))
    with open(results_path, "rb") as fh:
        r = parse_run_results(orjson.loads(fh.read()))
    t1 = t2 = time.perf_counter()
    extra = dict(nodes=len(m.nodes), results=len(r.results))
peak = hwm()
ru = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps(dict(read_s=t1 - t0, map_s=t2 - t1, peak_mb=peak, base_mb=base,
                      cpu_s=ru.ru_utime + ru.ru_stime - cpu0, **extra)))
"""


def measure(mode: str, manifest: Path, results: Path) -> dict | None:
    code = CHILD.replace("{sidecar!r}", repr(str(REPO / "sidecar")))
    proc = subprocess.run([sys.executable, "-c", code, mode, str(manifest), str(results)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["?"])[-1]
        print(f"    {mode}: not measured ({last})")
        return None
    return json.loads(proc.stdout)


def ship(manifest: Path, results: Path, invocations: int) -> None:
    """Ship the big invocation, then `invocations` small ones, to the local contract server."""
    sys.path.insert(0, str(REPO / "sidecar"))
    sys.path.insert(0, str(REPO / "testing"))
    import tempfile
    from dataclasses import replace

    from contract_server import ContractServer

    from qalita_sidecar.readers.dbt import artifacts, to_shipment
    from qalita_sidecar.settings import load_settings
    from qalita_sidecar.shipping import deliver
    from qalita_sidecar.shipping.ledger import FileLedger
    from qalita_sidecar.shipping.outbox import Outbox

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
    server = ContractServer()
    server.start()
    try:
        settings = load_settings(server.env())
        m = artifacts.read_manifest(manifest)
        inv = artifacts.read_run_results(results, m)
        big = to_shipment.to_shipment(inv, project="bench", environment="ci", manifest=m)
        sizes = {k: len(json.dumps(v)) / 1e6 for k, v in big.files().items()}
        small_inv = replace(inv, results=inv.results[:1000])
        smalls = [to_shipment.to_shipment(replace(small_inv, invocation_id=f"small-{i}"),
                                      project="bench", environment="ci", manifest=m)
                  for i in range(invocations)]
        with tempfile.TemporaryDirectory() as tmp:
            outbox, ledger = Outbox(Path(tmp) / "outbox"), FileLedger(Path(tmp) / "ledger.jsonl")
            t0 = time.perf_counter()
            [outcome] = deliver.ship([big], settings, outbox, ledger)
            t1 = time.perf_counter()
            outcomes = deliver.ship(smalls, settings, outbox, ledger)
            t2 = time.perf_counter()
        print(f"    ship 1 invocation ({len(inv.results):,} results; files "
              + ", ".join(f"{k} {v:.1f} MB" for k, v in sizes.items())
              + f"): {t1 - t0:.2f} s ({outcome.status})")
        delivered = sum(o.status == "delivered" for o in outcomes)
        print(f"    ship {invocations} invocations of 1,000 results: {t2 - t1:.2f} s "
              f"({(t2 - t1) / invocations * 1000:.0f} ms each; {delivered} delivered)")
    finally:
        server.stop()


def table_read(results: int) -> None:
    """Read one invocation of `results` rows back from a DuckDB qalita_results table."""
    import tempfile

    import duckdb

    sys.path.insert(0, str(REPO / "sidecar"))
    from qalita_sidecar.readers.dbt import warehouse
    from qalita_sidecar.readers.dbt.profile import WarehouseTarget

    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "wh.duckdb")
        con = duckdb.connect(path)
        con.execute("create schema main_qalita")
        con.execute("create table main_qalita.qalita_invocations as select 'bench' as "
                    "invocation_id, 'build' as command, now()::timestamp as started_at, "
                    "now()::timestamp as finished_at, 'bench_shop' as project_name, "
                    "'ci' as environment, 'dev' as target_name, '1.11.0' as dbt_version, "
                    "null::varchar as git_sha, null::varchar as git_branch")
        con.execute(f"""create table main_qalita.qalita_results as select 'bench' as invocation_id,
            'test.bench_shop.t_' || i as unique_id, case when i % 20 = 0 then 'fail' else 'pass'
            end as status, 'test' as resource_type, 't_' || i as name, (i % 20 = 0)::int::bigint
            as failures, null::bigint as rows_affected, null::varchar as message,
            0.01 as execution_time, 'error' as severity, 'not_null' as test_name,
            'col_' || (i % 5) as column_name, 'model.bench_shop.m_' || (i // 10) as attached_node,
            null::double as age, null::timestamp as max_loaded_at,
            now()::timestamp as started_at from range({results}) t(i)""")
        con.close()
        target = WarehouseTarget("bench", "dev", "duckdb", "main", {"path": path})
        t0 = time.perf_counter()
        read = warehouse.read_invocations(target, "main_qalita", "bench_shop")
        took = time.perf_counter() - t0
    [inv] = read.invocations
    print(f"    read {len(inv.results):,} results from a DuckDB qalita_results table: {took:.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--manifest-mb-per-100k", type=float, default=50.0)
    parser.add_argument("--no-ship", action="store_true")
    parser.add_argument("--compare", default="orjson,dbt-artifacts-parser",
                        help="other readers to measure (skipped when not installed)")
    args = parser.parse_args()
    print(f"bench ingest: python {sys.version.split()[0]}, {os.cpu_count()} cpus, load average "
          f"{os.getloadavg()[0]:.1f} (figures scale with it on a shared machine)")
    for size in (int(s) for s in args.sizes.split(",")):
        mb = args.manifest_mb_per_100k * size / 100_000
        t = time.perf_counter()
        manifest, results = generate(size, mb)
        print(f"\n{size:,} results: manifest {manifest.stat().st_size / 1e6:.1f} MB, "
              f"run_results {results.stat().st_size / 1e6:.1f} MB "
              f"(generated in {time.perf_counter() - t:.1f} s)")
        ours = measure("ours", manifest, results)
        if ours:
            total = ours["read_s"] + ours["map_s"]
            print(f"    read {ours['read_s']:.2f} s + map {ours['map_s']:.2f} s = {total:.2f} s "
                  f"({ours['cpu_s']:.2f} s of CPU); "
                  f"peak RSS {ours['peak_mb']:.0f} MB ({ours['peak_mb'] - ours['base_mb']:.0f} MB "
                  f"above the {ours['base_mb']:.0f} MB interpreter); "
                  f"{ours['metrics']:,} metrics, {ours['recommendations']:,} recommendations")
            if size >= 100_000:
                print(f"    budget 5 s / 300 MB: {total / 5:.0%} of the time "
                      f"({ours['cpu_s'] / 5:.0%} in CPU time), "
                      f"{ours['peak_mb'] / 300:.0%} of the memory")
        for mode in filter(None, args.compare.split(",")):
            other = measure(mode, manifest, results)
            if other and ours:
                print(f"    {mode} (parse only): {other['read_s']:.2f} s, peak RSS "
                      f"{other['peak_mb']:.0f} MB -> ours reads+maps "
                      f"{other['read_s'] / (ours['read_s'] + ours['map_s']):.1f}x faster, "
                      f"{other['peak_mb'] / ours['peak_mb']:.1f}x less memory")
        table_read(size)
        if not args.no_ship:
            ship(manifest, results, invocations=20)


if __name__ == "__main__":
    main()
