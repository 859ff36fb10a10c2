"""What the hook stores from text it does not control: control characters (NUL included) in a tag
and in a message, an odd results schema name, and a unit test's subject.

One build per adapter serves every check: a model tagged with control characters, a model whose
compilation error carries them, a unit test on m_0, and a `qalita_schema` holding `'` and the
dollar-quote tags the PostgreSQL writer uses.
"""

from __future__ import annotations

import json
import re

import pytest
from testkit import drop_database, make_project, require_postgres

from .consumer import hook_warnings, node_results, write_consumer

CONTROLS = "".join(chr(c) for c in range(0x20) if chr(c) not in "\t\n\r")
TAG = "ctl\x00nul\x01\x08\x0c\x1b\x1f|\t\n\r"
# (no `"`: dbt's own relation names, a source's included, do not escape it)
SCHEMA = "it's_$qalita_do$_$qalita_sql$"

FILES = {
    # YAML double-quoted escapes (dbt reads a config() call without rendering its strings)
    "models/tagged.sql": "select 1 as id\n",
    "models/_tagged.yml": 'models:\n  - name: tagged\n    config:\n'
                          '      tags: ["ctl\\0nul\\x01\\b\\f\\e\\x1f|\\t\\n\\r"]\n',
    # Jinja string literals decode \x00 and friends; `\\u0000` stays the six characters \u0000
    "models/broken.sql": "{% if execute %}{{ exceptions.raise_compiler_error("
                         '"broken\\x00nul\\x07bell, kept: \\\\u0000 \\\\b tab\\tend") }}{% endif %}\n'
                         "select 1 as id\n",
    "models/_unit_tests.yml": """unit_tests:
  - name: m_0_keeps_its_labels
    model: m_0
    given:
      - input: ref('labels')
        rows:
          - {id: 1, label: a}
    expect:
      rows:
        - {id: 1, label: a}
""",
}


def replaced(text: str) -> str:
    """What the tables hold for `text`: each control character but tab, LF and CR as U+FFFD."""
    return re.sub(f"[{re.escape(CONTROLS)}]", "\ufffd", text)


def quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@pytest.fixture(scope="module", params=["dev", "prod"], ids=["duckdb", "postgres"])
def built(request, tmp_path_factory):
    if request.param == "prod":
        require_postgres()
    tmp = tmp_path_factory.mktemp(f"text-{request.param}")
    project = make_project(tmp, request.param,
                           project_dir=write_consumer(tmp / "consumer", files=FILES))
    try:
        project.run("deps")
        proc = project.run("build", check=False, vars={"qalita_schema": SCHEMA})
        yield project, proc
    finally:
        if request.param == "prod":
            drop_database(project.env["DBT_POSTGRES_DATABASE"])


def stored(project, column: str) -> dict[str, object]:
    inv_id = project.artifact("run_results.json")["metadata"]["invocation_id"]
    rows = project.query(f"select unique_id, {column} from {quoted(SCHEMA)}.qalita_results "
                         f"where invocation_id = '{inv_id}'")
    return dict(rows)


def test_the_whole_invocation_is_recorded(built):
    project, proc = built
    assert proc.returncode == 1, proc.stdout[-3000:]  # the broken model, not the hook
    assert hook_warnings(proc.stdout) == []
    results = node_results(project.artifact("run_results.json"))
    assert set(stored(project, "status")) == {r["unique_id"] for r in results}
    (row,) = project.query(f"select results_total, errored from {quoted(SCHEMA)}.qalita_invocations")
    assert row == (len(results), 1)


def test_control_characters_in_a_tag_are_stored_as_replacement_characters(built):
    project, _ = built
    (tag,) = project.artifact("manifest.json")["nodes"]["model.consumer.tagged"]["tags"]
    assert tag.startswith(TAG[:-1])  # as written (dbt keeps no trailing carriage return)
    tags = stored(project, "tags")["model.consumer.tagged"]
    assert json.loads(tags) == [replaced(tag)]
    assert json.loads(tags)[0].startswith("ctl\ufffdnul\ufffd\ufffd\ufffd\ufffd\ufffd|\t\n")


def test_control_characters_in_a_message_are_stored_as_replacement_characters(built):
    project, _ = built
    (broken,) = [r for r in node_results(project.artifact("run_results.json"))
                 if r["unique_id"] == "model.consumer.broken"]
    assert "\x00" in broken["message"] and "\x07" in broken["message"]
    message = stored(project, "message")["model.consumer.broken"]
    assert message == replaced(broken["message"])
    # the text of an escape (a backslash, then u0000) is text, and stays as it was
    assert "broken\ufffdnul\ufffdbell, kept: \\u0000 \\b tab\tend" in message


def test_a_unit_test_is_attached_to_the_model_it_tests(built):
    project, _ = built
    (unit,) = [r for r in node_results(project.artifact("run_results.json"))
               if r["unique_id"].startswith("unit_test.")]
    assert unit["status"] == "pass"
    attached = stored(project, "attached_node")[unit["unique_id"]]
    assert attached == "model.consumer.m_0"  # not its fixture input, seed.consumer.labels
    (test_type,) = project.query(f"select test_type from {quoted(SCHEMA)}.qalita_results "
                                 f"where unique_id = '{unit['unique_id']}'")
    assert test_type == ("unit",)


def test_the_tables_are_a_source_a_project_can_read(built):
    project, _ = built
    proc = project.run("show", "--inline",
                       "select count(*) as n from {{ source('qalita', 'qalita_invocations') }}",
                       "--output", "json", vars={"qalita_schema": SCHEMA})
    assert '"n": 1' in proc.stdout, proc.stdout[-2000:]
