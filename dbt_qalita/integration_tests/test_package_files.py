"""The package describes itself: its documentation and sources agree with its macros."""

from __future__ import annotations

import re

import yaml
from testkit import REPO

from .consumer import consumer_project

PACKAGE = REPO / "dbt_qalita"


def column_list(macro: str) -> list[str]:
    """The column names of `invocation_columns()` / `result_columns()`, read from columns.sql."""
    text = (PACKAGE / "macros" / "schema" / "columns.sql").read_text()
    spec = re.search(rf"macro {macro}\(\).*?split_columns\('(.*?)'\)", text, re.S)
    assert spec, macro
    return [word.split(":")[0] for word in spec.group(1).split()]


def test_the_sources_declare_every_column_in_order():
    sources = yaml.safe_load((PACKAGE / "models" / "qalita_sources.yml").read_text())["sources"]
    (qalita,) = sources
    tables = {t["name"]: [c["name"] for c in t["columns"]] for t in qalita["tables"]}
    assert tables == {"qalita_invocations": column_list("invocation_columns"),
                      "qalita_results": column_list("result_columns")}


def test_every_documented_macro_exists_and_every_var_is_documented():
    sql = "\n".join(p.read_text() for p in (PACKAGE / "macros").rglob("*.sql"))
    defined = set(re.findall(r"{%-?\s*macro\s+(\w+)\(", sql))
    documented = yaml.safe_load((PACKAGE / "macros" / "_macros.yml").read_text())["macros"]
    assert {m["name"] for m in documented} <= defined
    used = set(re.findall(r"var\('(qalita_\w+)'", sql)) | {
        f"qalita_{key}" for key in ("git_sha", "git_branch", "ci_provider", "job_id", "run_id",
                                    "run_url")}
    readme = (PACKAGE / "README.md").read_text()
    entry = next(m for m in documented if m["name"] == "record_results")["description"]
    for var in used | {"qalita_lock_timeout", "qalita_statement_timeout"}:
        assert f"`{var}`" in readme and f"`{var}`" in entry, var


def test_another_adapter_gets_one_error_naming_the_supported_ones(tmp_path):
    project = consumer_project(tmp_path, "dev")
    proc = project.run("run-operation", "qalita.default__write_invocation",
                       "--args", "{invocation: [], rows: []}", check=False)
    assert proc.returncode != 0
    assert ("qalita: the qalita package records results on duckdb and postgres only, not on duckdb"
            in proc.stdout)
    assert "Traceback" not in proc.stdout + proc.stderr
