"""Our replacements for dbt_utils / dbt_expectations tests: each must pass AND must fail."""

from __future__ import annotations

import shutil

from testkit import REPO, drop_database, make_project

MODEL = """
select 1 as id, 5 as value, 'a' as category, {{ dbt.dateadd('day', -2, qalita_utc_now()) }} as updated_at
union all
select 2, 50, 'b', {{ dbt.dateadd('day', -2, qalita_utc_now()) }}
union all
select 2, 7, 'b', {{ dbt.dateadd('day', -3, qalita_utc_now()) }}
"""

# (test name, test, arguments, column) -> the name says what must happen
CASES = [
    ("between_fail", "expect_column_values_to_be_between", {"min_value": 0, "max_value": 10}, "value"),
    ("between_pass", "expect_column_values_to_be_between", {"min_value": 0, "max_value": 100}, "value"),
    ("between_strict_fail", "expect_column_values_to_be_between",
     {"min_value": 5, "max_value": 100, "strictly": True}, "value"),
    ("between_row_condition_pass", "expect_column_values_to_be_between",
     {"max_value": 10, "row_condition": "category = 'a'"}, "value"),
    ("unique_combination_fail", "unique_combination_of_columns",
     {"combination_of_columns": ["id", "category"]}, None),
    ("unique_combination_pass", "unique_combination_of_columns",
     {"combination_of_columns": ["id", "value"]}, None),
    ("row_count_fail", "expect_table_row_count_to_be_between", {"min_value": 1, "max_value": 2}, None),
    ("row_count_pass", "expect_table_row_count_to_be_between", {"min_value": 3, "max_value": 3}, None),
    ("recency_fail", "recency", {"datepart": "day", "field": "updated_at", "interval": 1}, None),
    ("recency_pass", "recency", {"datepart": "day", "field": "updated_at", "interval": 3}, None),
    ("accepted_range_fail", "accepted_range", {"min_value": 0, "max_value": 10}, "value"),
    ("accepted_range_pass", "accepted_range", {"min_value": 5, "max_value": 50}, "value"),
    ("expression_fail", "expression_is_true", {"expression": "value < 10"}, None),
    ("expression_pass", "expression_is_true", {"expression": "value > 0"}, None),
    ("in_set_fail", "expect_column_values_to_be_in_set", {"value_set": ["a"]}, "category"),
    ("in_set_pass", "expect_column_values_to_be_in_set", {"value_set": ["a", "b"]}, "category"),
]


def write_project(root):
    (root / "models").mkdir(parents=True)
    (root / "macros").mkdir()
    shutil.copytree(REPO / "tests" / "generic", root / "tests" / "generic")
    shutil.copy(REPO / "macros" / "cross_db" / "utc_now.sql", root / "macros")
    (root / "dbt_project.yml").write_text(
        "name: generic_cases\nversion: '1.0'\nconfig-version: 2\nprofile: quality_compass\n"
        "models:\n  generic_cases:\n    +materialized: table\n")
    (root / "models" / "cases.sql").write_text(MODEL)
    lines = ["models:", "  - name: cases", "    data_tests:"]
    import json
    for name, test, args, column in CASES:
        lines.append(f"      - {test}:")
        lines.append(f"          name: {name}")
        if column:
            lines.append(f"          column_name: {column}")
        lines.append(f"          arguments: {json.dumps(args)}")
    (root / "models" / "_models.yml").write_text("\n".join(lines) + "\n")


def test_each_generic_test_passes_and_fails_where_it_must(tmp_path, adapter_target):
    write_project(tmp_path / "cases")
    project = make_project(tmp_path, adapter_target, project_dir=tmp_path / "cases")
    try:
        project.run("build", check=False)
        statuses = {r["unique_id"].split(".")[2]: r["status"]
                    for r in project.artifact("run_results.json")["results"]
                    if r["unique_id"].startswith("test.")}
        expected = {name: "fail" if name.endswith("_fail") else "pass" for name, *_ in CASES}
        assert statuses == expected
    finally:
        if adapter_target == "prod":
            drop_database(project.env["DBT_POSTGRES_DATABASE"])
