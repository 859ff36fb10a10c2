"""What a run was (its ids, where it was read, its counts): kept with a Shipment for the ledger,
the mapping file and the summary, never sent to QALITA as a file.

Every field is optional: each reader fills those it knows. Fields left at their default are left
out of the JSON, so an outbox entry holds the same keys it did when the context was a plain
object, and entries written then decode as they are (keys no field names are ignored).
"""

from __future__ import annotations

import msgspec


class DbtCounts(msgspec.Struct, frozen=True):
    """dbt test outcomes of one invocation, over the whole project."""

    passed: int = 0
    failed: int = 0
    warned: int = 0
    errored: int = 0
    skipped: int = 0


class DbtCloudRun(msgspec.Struct, frozen=True):
    """The dbt Cloud run and step a shipment was read from."""

    account_id: int
    run_id: int
    step: int
    job_id: int | None = None


class RunContext(msgspec.Struct, frozen=True, omit_defaults=True):
    # every reader: the run's own id (dbt invocation, Soda scan, Airbyte sync attempt, Dagster run)
    invocation_id: str | None = None
    # names a mapping file may use for this run, most specific first (see deliver.mapping_names)
    mapping_keys: tuple[str, ...] = ()
    # dbt and Dagster
    project: str | None = None
    # dbt
    environment: str | None = None
    git_sha: str | None = None
    command: str | None = None
    read_from: str | None = None  # a table or an artifact path
    results: int | None = None
    tests: DbtCounts | None = None
    dbt_project: str | None = None  # the name dbt_project.yml gives, when it was read
    dbt_cloud: DbtCloudRun | None = None
    # Soda
    data_source: str | None = None
    definition: str | None = None
    # Soda and Dagster: checks run; Soda: their outcomes over the whole data source
    checks: int | None = None
    passed: int | None = None
    failed: int | None = None
    warned: int | None = None
    errored: int | None = None
    # Dagster
    job: str | None = None
    # Dagster and Airbyte: the tool's own run status
    status: str | None = None
    # Airbyte
    connection_id: str | None = None
    streams: int | None = None
    # the webhook: the digest of the body the run arrived in (part of the key)
    body_sha256: str | None = None
