"""QALITA sidecar: read dbt (and Soda, Airbyte, Dagster) results and ship them to QALITA."""

__version__ = "0.1.0"
