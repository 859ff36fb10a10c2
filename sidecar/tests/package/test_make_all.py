"""Acceptance: after `make all`, the results table holds one row per node result of that build."""

from __future__ import annotations

import json
import subprocess

from testkit import REPO, base_env, make_project


def test_make_all_records_every_result_of_its_build(tmp_path):
    env = base_env(tmp_path)
    proc = subprocess.run(["make", "all"], cwd=REPO, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]

    run_results = json.loads((tmp_path / "target" / "run_results.json").read_text())
    assert run_results["args"]["which"] == "build"
    inv_id = run_results["metadata"]["invocation_id"]
    expected = sorted((r["unique_id"], r["status"]) for r in run_results["results"]
                      if not r["unique_id"].startswith("operation."))
    # the whole project was built: air quality and Quality Compass, every test green
    built = {uid for uid, _ in expected}
    assert {"model.quality_compass.airquality_metrics", "model.quality_compass.fct_signals"} <= built
    assert {status for _, status in expected} <= {"success", "pass"}

    project = make_project(tmp_path, "dev")
    stored = project.query("select unique_id, status from main_qalita.qalita_results "
                           f"where invocation_id = '{inv_id}' order by unique_id")
    assert stored == expected
