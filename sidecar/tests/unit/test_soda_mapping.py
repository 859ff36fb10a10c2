"""Soda scan results -> Shipment, on hand-written results (the real scan is in test_soda_scan.py)."""

from __future__ import annotations

import json

import pytest

from qalita_sidecar.readers.soda import SodaResultsError, read_scan_results, scan_to_shipment


def check(name, outcome, table="orders", column=None, value=None, metric=None, **extra):
    return {"identity": f"id-{name}", "name": name, "type": "generic", "dataSource": "shop",
            "table": table, "column": column, "outcome": outcome,
            "metrics": [metric] if metric else [],
            "diagnostics": {"blocks": [], **({"value": value} if value is not None else {})},
            **extra}


def scan(**overrides):
    data = {
        "definitionName": "nightly", "defaultDataSource": "shop",
        "scanStartTimestamp": "2026-03-01T10:00:00+00:00",
        "scanEndTimestamp": "2026-03-01T10:00:07+00:00",
        "hasErrors": False, "hasWarnings": True, "hasFailures": True,
        "metrics": [
            {"identity": "m-rows", "metricName": "row_count", "value": 12},
            {"identity": "m-miss", "metricName": "missing_count", "value": 2},
            {"identity": "m-dup", "metricName": "duplicate_count", "value": 0},
            {"identity": "m-schema", "metricName": "schema", "dataSourceName": "shop",
             "tableName": "orders", "value": [{"columnName": "order_id", "sourceDataType": "int"},
                                              {"columnName": "note", "sourceDataType": "text"}]},
        ],
        "checks": [
            check("row_count > 0", "pass", value=12, metric="m-rows"),
            check("missing_count(email) = 0", "fail", column="email", value=2, metric="m-miss"),
            check("missing_count(email) < 5", "warn", column="email", value=2, metric="m-miss"),
            check("duplicate_count(id) = 0", "pass", table="customers", column="id", value=0,
                  metric="m-dup"),
            check("freshness(updated_at) < 1d", None, column="updated_at",
                  outcomeReasons=[{"message": "column updated_at does not exist"}]),
            check("Schema Check", "fail", metric="m-schema",
                  diagnostics={"missing_column_names": ["currency"]}),
        ],
    }
    data.update(overrides)
    return data


def by_scope(shipment):
    out = {}
    for m in shipment.metrics:
        s = m.scope
        out.setdefault((s.perimeter, s.value, s.parent.value if s.parent else None), {})[m.key] = m.value
    return out


def test_counts_scores_and_measured_values_per_scope():
    s = scan_to_shipment(scan())
    m = by_scope(s)
    # data source: 2 passed of 6 evaluated-or-not (a check Soda could not evaluate counts against)
    assert m[("database", "shop", None)] == {"check_passed": 2, "check_failed": 2, "check_warned": 1,
                                             "check_errored": 1, "score": "0.33"}
    assert m[("dataset", "orders", "shop")]["score"] == "0.20"
    assert m[("dataset", "customers", "shop")]["score"] == "1.00"
    email = m[("column", "email", "orders")]
    assert (email["check_failed"], email["check_warned"], email["score"]) == (1, 1, "0.00")
    # Soda's measured value, on the check's own scope; a second check on the same metric keeps both
    assert email["missing_count"] == 2
    assert m[("dataset", "orders", "shop")]["row_count"] == 12
    assert m[("column", "id", "customers")]["duplicate_count"] == 0
    assert all(not isinstance(mt.value, list) for mt in s.metrics)  # the schema metric is not a value


def test_one_recommendation_per_failing_warning_or_unevaluated_check():
    s = scan_to_shipment(scan())
    recs = {(r.level, r.type, r.scope.perimeter, r.scope.value): r.content for r in s.recommendations}
    assert len(s.recommendations) == 4
    assert recs[("high", "Soda Check Failed", "column", "email")] == \
        "Soda check `missing_count(email) = 0` failed on orders.email (data source shop): measured 2."
    assert ("warning", "Soda Check Warning", "column", "email") in recs
    unevaluated = recs[("high", "Soda Check Error", "column", "updated_at")]
    assert "could not be evaluated" in unevaluated and "does not exist" in unevaluated
    assert "missing column(s) currency" in recs[("high", "Soda Check Failed", "dataset", "orders")]


def test_schemas_cover_every_scope_and_the_columns_soda_saw():
    s = scan_to_shipment(scan())
    entries = [(e.key, e.value, e.scope.parent.value if e.scope.parent else None) for e in s.schemas]
    assert entries[0] == ("database", "shop", None)
    for expected in [("dataset", "orders", "shop"), ("dataset", "customers", "shop"),
                     ("column", "email", "orders"), ("column", "id", "customers"),
                     ("column", "updated_at", "orders"), ("column", "note", "orders"),
                     ("column", "order_id", "orders")]:
        assert expected in entries
    assert len(entries) == len(set(entries))


def test_job_dates_status_and_idempotency_key():
    s = scan_to_shipment(scan())
    assert (s.job.started_at, s.job.finished_at, s.job.status) == \
        ("2026-03-01 10:00:00", "2026-03-01 10:00:07", "succeeded")  # failing checks are findings
    assert scan_to_shipment(scan(hasErrors=True)).job.status == "failed"
    assert scan_to_shipment(scan()).key == s.key  # the same results file, the same key
    assert scan_to_shipment(scan(scanStartTimestamp="2026-03-02T10:00:00Z")).key != s.key
    other = scan()
    other["checks"][0]["outcome"] = "fail"
    assert scan_to_shipment(other).key != s.key
    assert s.source_name == "shop" and scan_to_shipment(scan(), source_name="Shop DB").source_name == "Shop DB"


def test_a_scan_without_checks_has_no_score():
    s = scan_to_shipment(scan(checks=[]))
    assert not [m for m in s.metrics if m.key == "score"]
    assert s.recommendations == ()


@pytest.mark.parametrize("content, expected", [
    ("", "not valid JSON"),
    ('{"checks": [{"name": "row_count > 0", "outc', "not valid JSON"),
    ('{"definitionName": "x"}', "not Soda scan results"),
    ('[1, 2]', "not Soda scan results"),
    ('{"checks": [{"outcome": "pass"}]}', "check #1 has no name"),
])
def test_bad_files_are_named_in_one_line(tmp_path, content, expected):
    path = tmp_path / "scan_results.json"
    path.write_text(content)
    with pytest.raises(SodaResultsError) as err:
        read_scan_results(path)
    message = str(err.value)
    assert str(path) in message and expected in message and "\n" not in message


def test_missing_file(tmp_path):
    with pytest.raises(SodaResultsError, match="cannot read"):
        read_scan_results(tmp_path / "nope.json")


def test_reads_what_it_maps(tmp_path):
    path = tmp_path / "scan_results.json"
    path.write_text(json.dumps(scan()))
    assert scan_to_shipment(read_scan_results(path)).key == scan_to_shipment(scan()).key
