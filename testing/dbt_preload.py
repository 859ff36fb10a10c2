"""Imported once by the fork server of `dbt_fork`: what every dbt run would otherwise redo.

Two costs come before dbt reads a project: importing dbt-core and the adapters (about 4 s of CPU),
and building the JSON schemas dbt validates its configuration and nodes against (about 4 s on a
full parse; each schema is cached on its class, so a fork inherits it). Nothing here touches a
project, a connection or a thread: a fork of this process starts as clean as a new interpreter.
"""

from __future__ import annotations

import importlib

MODULES = [
    "dbt.cli.main",
    "dbt.task.build",
    "dbt.task.freshness",
    "dbt.task.docs.generate",
    "dbt.task.deps",
    "dbt.parser.manifest",
    "dbt.context.providers",
    "dbt.adapters.duckdb.impl",
    "dbt.adapters.postgres.impl",
    "dbt_common.clients.agate_helper",
]

# The classes whose schema a parse, a build and a freshness run validate against.
SCHEMAS = {
    "dbt.contracts.project": ["Project", "ProjectFlags", "Configuration", "PackageConfig",
                              "ProfileConfig"],
    "dbt.contracts.selection": ["SelectorFile"],
    "dbt.contracts.graph.nodes": ["ModelNode", "SeedNode", "GenericTestNode", "SingularTestNode",
                                  "HookNode", "SnapshotNode"],
    "dbt.contracts.graph.unparsed": ["UnparsedSourceDefinition", "UnparsedModelUpdate",
                                     "UnparsedNodeUpdate", "UnparsedMacroUpdate", "UnparsedMetric",
                                     "UnparsedSemanticModel", "UnparsedExposure"],
    "dbt.artifacts.resources.v1.config": ["NodeConfig", "TestConfig", "Hook"],
    "dbt.artifacts.resources.v1.model": ["ModelConfig"],
    "dbt.artifacts.resources.v1.seed": ["SeedConfig"],
    "dbt.artifacts.resources.v1.source_definition": ["SourceConfig"],
    "dbt.artifacts.resources.v1.components": ["Contract"],
    "dbt.artifacts.resources.v1.metric": ["MetricConfig"],
    "dbt.artifacts.resources.v1.semantic_model": ["SemanticModelConfig"],
    "dbt.artifacts.resources.v1.exposure": ["ExposureConfig"],
    "dbt.adapters.duckdb.credentials": ["DuckDBCredentials"],
    "dbt.adapters.postgres.connections": ["PostgresCredentials"],
    "dbt.task.test": ["TestResultData"],
}


def _warm() -> None:
    # A module or class another dbt version lacks (the compatibility suite's) is only work its
    # runs do themselves.
    for name in MODULES:
        _module(name)
    for module_name, classes in SCHEMAS.items():
        module = _module(module_name)
        for cls in classes:
            build = getattr(getattr(module, cls, None), "json_schema", None)
            if build is not None:
                build()


def _module(name: str) -> object:
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


_warm()
