"""Run the example's `retail` job in-process and ship it the way the sensor does (no daemon).

    python examples/dagster/run.py

In a deployment, the Dagster daemon (or `dagster dev`, from the dagster-webserver package)
evaluates `qalita_run_success` / `qalita_run_failure` after each run; this script does the same
once, so the example works without either.
"""

from __future__ import annotations

import dagster as dg
from definitions import defs

from qalita_sidecar.hosts.dagster import QalitaResource, qalita_sensors


def main() -> None:
    instance = dg.DagsterInstance.ephemeral()
    result = defs.resolve_job_def("retail").execute_in_process(instance=instance)
    on_success, on_failure = qalita_sensors()
    sensor = on_success if result.success else on_failure
    event = result.get_run_success_event() if result.success else result.get_run_failure_event()
    context = dg.build_run_status_sensor_context(
        sensor_name=sensor.name, dagster_event=event, dagster_instance=instance,
        dagster_run=result.dagster_run, resources={"qalita": QalitaResource(project="retail")})
    print(sensor(context).skip_message)


if __name__ == "__main__":
    main()
