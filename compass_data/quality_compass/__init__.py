"""Quality Compass: generate an insight-graph run folder and load it into the raw tables dbt reads.

Separate from the sidecar package (`qalita_sidecar`): it only borrows its profile reader so that the
loader connects to the same warehouse dbt builds in.
"""

__version__ = "0.1.0"
