"""Print, as JSON, what the sidecar reads of one consumer run: from the package's tables and from
dbt's artifacts alone, per invocation: the test counts it would ship and the result statuses.

    <python with qalita_sidecar> sidecar_read.py PROJECT_DIR TARGET RUN_RESULTS SOURCES

Run by the Python of the sidecar under test (the main venv's, or the one installed into a dbt
venv), with the run's environment (profiles.yml reads it), so it imports nothing of the tests.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

import msgspec

from qalita_sidecar.readers.dbt import artifacts, to_shipment, warehouse
from qalita_sidecar.readers.dbt.profile import load_target


def summary(inv: artifacts.Invocation, project: str) -> dict:
    shipment = to_shipment.to_shipment(inv, project=project, environment="compat")
    # the table keeps node results only; run_results.json also lists the on-run-end hook
    statuses = Counter(to_shipment.status_of(r) for r in inv.results
                       if not r.unique_id.startswith("operation."))
    return {"command": inv.command, "results": sum(statuses.values()),
            "statuses": dict(sorted(statuses.items())),
            "tests": msgspec.to_builtins(shipment.context.tests),
            "job": shipment.job.status,
            "score": next((m.value for m in shipment.metrics
                           if m.key == "score" and m.scope.perimeter == "database"), None)}


def main(project_dir: str, target_name: str, run_results: str, sources: str) -> None:
    root = Path(project_dir)
    manifest = artifacts.read_manifest(root / "target" / "manifest.json")
    files = {}
    for inv in (artifacts.read_run_results(Path(run_results), manifest),
                artifacts.read_sources(Path(sources), manifest)):
        files[inv.invocation_id] = summary(inv, manifest.project_name)
    target = load_target(root, target=target_name, project_dir=root)
    read = warehouse.read_invocations(target, warehouse.default_schema(target),
                                      manifest.project_name)
    if read.problem:
        raise SystemExit(f"tables not read: {read.problem}")
    tables = {inv.invocation_id: summary(inv, manifest.project_name)
              for inv in read.invocations if inv.invocation_id in files}
    print(json.dumps({"files": files, "tables": tables}))


if __name__ == "__main__":
    main(*sys.argv[1:])
