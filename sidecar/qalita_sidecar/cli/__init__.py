"""`qalita-sidecar`: read a tool's results, map them, ship them to QALITA exactly once.

This module only assembles the commands; each lives in its own module and shares cli/common.py.
"""

from __future__ import annotations

import click

from qalita_sidecar.cli import airbyte, dbt, dbt_cloud, soda
from qalita_sidecar.cli.common import Group


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="qalita-sidecar", prog_name="qalita-sidecar")
def main() -> None:
    """Ship dbt (and other tools') results to QALITA, exactly once."""


@main.group(cls=Group)
def ingest() -> None:
    """Read a tool's results and ship them to QALITA."""


@main.group(cls=Group)
def serve() -> None:
    """Long-running receivers that ship what they receive."""


ingest.add_command(dbt.ingest_dbt)
ingest.add_command(soda.ingest_soda)
ingest.add_command(dbt_cloud.ingest_dbt_cloud)
serve.add_command(airbyte.serve_airbyte)
serve.add_command(dbt_cloud.serve_dbt_cloud)
main.add_command(dbt.flush)


if __name__ == "__main__":
    main()
