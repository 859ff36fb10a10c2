"""Dagster: the example's job executed in-process, its run shipped by the run-status sensors through
the sidecar library to the contract server."""

from __future__ import annotations

import importlib.util
import os
import subprocess

import dagster as dg
import pytest
from support.itkit import EXAMPLES, clean_env, items, ledger_keys, pending, sidecar
from testkit import BIN

from qalita_sidecar.hosts.dagster import QalitaResource, qalita_sensors


def _example():
    spec = importlib.util.spec_from_file_location("qalita_dagster_example",
                                                  EXAMPLES / "dagster" / "definitions.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


example = _example()


@dg.asset
def broken_orders() -> int:
    raise RuntimeError("orders extract: the warehouse refused the connection")


@pytest.fixture
def qalita_env(monkeypatch, qalita_server, tmp_path):
    """QALITA settings the resource reads from the environment, as in production."""
    for name in list(os.environ):
        if name.startswith("QALITA_"):
            monkeypatch.delenv(name)
    for name, value in {**qalita_server.env(), "QALITA_DEADLINE": "2"}.items():
        monkeypatch.setenv(name, value)
    return tmp_path


def resource(tmp_path) -> QalitaResource:
    return QalitaResource(project="retail", outbox_dir=str(tmp_path / "qalita" / "outbox"))


def run_sensor(result, instance, tmp_path, failed: bool = False):
    on_success, on_failure = qalita_sensors()
    sensor = on_failure if failed else on_success
    event = result.get_run_failure_event() if failed else result.get_run_success_event()
    context = dg.build_run_status_sensor_context(
        sensor_name=sensor.name, dagster_event=event, dagster_instance=instance,
        dagster_run=result.dagster_run, resources={"qalita": resource(tmp_path)})
    return sensor(context)


def test_a_run_with_failing_checks_is_delivered_once(qalita_env, qalita_server):
    tmp_path = qalita_env
    instance = dg.DagsterInstance.ephemeral()
    result = example.defs.resolve_job_def("retail").execute_in_process(instance=instance)
    assert result.success  # failing asset checks are findings, not a failed run
    skip = run_sensor(result, instance, tmp_path)
    assert skip.skip_message.startswith("shipped to QALITA: delivered: job ")

    [job] = qalita_server.received.jobs.values()
    assert job.base_name == f"dagster run retail ({result.run_id[:8]})"
    assert job.statuses == ["running", "succeeded"]
    metrics = {(m["scope"]["perimeter"], m["scope"]["value"], m["key"]): m["value"]
               for m in items(qalita_server, "metrics")}
    assert metrics[("database", "retail", "score")] == "0.33"
    assert metrics[("dataset", "orders", "score")] == "0.00"
    assert metrics[("dataset", "customers", "score")] == "1.00"
    assert metrics[("column", "order_id", "failing_rows")] == 1
    recs = {(r["level"], r["scope"]["value"]) for r in items(qalita_server, "recommendations")}
    assert recs == {("high", "order_id"), ("warning", "amount")}
    assert qalita_server.received.rejected == []
    assert len(ledger_keys(tmp_path)) == 1 and pending(tmp_path) == []

    again = run_sensor(result, instance, tmp_path)  # a sensor evaluated twice for the same run
    assert "already_delivered" in again.skip_message
    assert len(qalita_server.received.jobs) == 1


def test_a_failed_run_is_a_failed_job_with_the_step_error(qalita_env, qalita_server):
    tmp_path = qalita_env
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize([broken_orders], instance=instance, raise_on_error=False)
    assert not result.success
    run_sensor(result, instance, tmp_path, failed=True)
    [job] = qalita_server.received.jobs.values()
    assert job.status == "failed"
    [rec] = items(qalita_server, "recommendations")
    assert rec["type"] == "Step Failed" and rec["level"] == "high"
    assert "the warehouse refused the connection" in rec["content"]


def test_qalita_down_the_run_waits_for_flush(qalita_env, qalita_server):
    tmp_path = qalita_env
    instance = dg.DagsterInstance.ephemeral()
    result = example.defs.resolve_job_def("retail").execute_in_process(instance=instance)
    qalita_server.stop()
    skip = run_sensor(result, instance, tmp_path)
    assert "queued" in skip.skip_message and len(pending(tmp_path)) == 1
    qalita_server.start()
    flushed = sidecar("flush", env=clean_env(tmp_path, **qalita_server.env()), cwd=tmp_path)
    assert flushed.returncode == 0, flushed.stdout + flushed.stderr
    assert pending(tmp_path) == [] and len(qalita_server.received.jobs) == 1
    assert "already_delivered" in run_sensor(result, instance, tmp_path).skip_message
    assert len(qalita_server.received.jobs) == 1


def test_the_example_definitions_load():
    defs = example.defs
    assert {s.name for s in defs.sensors} == {"qalita_run_success", "qalita_run_failure"}
    assert isinstance(defs.resources["qalita"], QalitaResource)


def test_the_example_script_ships_a_run(tmp_path, qalita_server):
    proc = subprocess.run([str(BIN / "python"), str(EXAMPLES / "dagster" / "run.py")],
                          env=clean_env(tmp_path, **qalita_server.env()), cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.startswith("shipped to QALITA: delivered: job ")
    [job] = qalita_server.received.jobs.values()
    assert job.name.startswith("dagster run retail (") and job.status == "succeeded"
