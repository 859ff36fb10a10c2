"""The status mapping of docs/shipping.md, one status at a time (pure: no dbt, no I/O)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from qalita_sidecar.readers.common import score_of
from qalita_sidecar.readers.dbt.artifacts import Invocation, Manifest, Node, Result
from qalita_sidecar.readers.dbt.to_shipment import executes_nothing, score, to_shipment
from qalita_sidecar.shipment import Scope, idempotency_key

P = "shop"
# the database scope: the QALITA source, "<project> (<environment>)" unless named
DB = "Shop (prod)"
MODEL = "model.shop.orders"
SOURCE = "source.shop.raw.payments"
START = datetime(2026, 3, 1, 8, 30, 5, 123456)
END = datetime(2026, 3, 1, 8, 31, 0)


def dtest(name, status, *, column=None, failures=None, severity="error", subject=MODEL,
          message=None, test_name=None):
    return Result(f"test.shop.{name}", status, "test", name, failures=failures, severity=severity,
                  test_name=test_name or name.split("_orders")[0], column_name=column,
                  attached_node=subject, message=message)


def inv(*results, git_sha=None, inv_id="inv-1"):
    return Invocation(inv_id, "build", START, END, tuple(results), "test", project_name=P,
                      git_sha=git_sha)


def ship(*results, manifest=None, **kw):
    return to_shipment(inv(*results, **kw), project="Shop", environment="prod", manifest=manifest)


def metrics(s, scope_value):
    return {m.key: m.value for m in s.metrics if m.scope.value == scope_value}


def recs(s):
    return [(r.level, r.type, r.scope.perimeter, r.scope.value, r.content) for r in s.recommendations]


def test_passing_test_counts_and_scores_without_recommendation():
    s = ship(dtest("not_null_orders_id", "pass", column="id", failures=0))
    assert metrics(s, "orders") == {"tests_total": 1, "tests_passed": 1, "tests_failed": 0,
                                    "tests_warned": 0, "tests_errored": 0, "tests_skipped": 0,
                                    "score": "1.00"}
    assert metrics(s, DB)["score"] == "1.00"
    assert s.recommendations == ()
    assert s.job.status == "succeeded"


def test_failing_test_is_a_high_column_scoped_recommendation_naming_model_column_test_and_count():
    s = ship(dtest("not_null_orders_customer_id", "fail", column="customer_id", failures=12,
                   test_name="not_null"))
    [(level, type_, perimeter, value, content)] = recs(s)
    assert (level, type_, perimeter, value) == ("high", "Test failed", "column", "customer_id")
    assert "not_null" in content and "orders" in content and "customer_id" in content
    assert "12 failing rows" in content
    rec = s.recommendations[0]
    # as QALITA's packs write it: a column directly under its dataset, the database scope named
    # after the QALITA source; schemas.json lists the dataset in full, before its column
    assert rec.scope.parent == Scope("dataset", "orders")
    entries = [(e.key, e.value, e.scope) for e in s.schemas]
    assert entries == [("database", DB, Scope("database", DB)),
                       ("dataset", "orders", Scope("dataset", "orders", Scope("database", DB))),
                       ("column", "customer_id", rec.scope)]
    assert metrics(s, "orders")["tests_failed"] == 1 and metrics(s, "orders")["score"] == "0.00"
    # a failing data test is a finding, not a failed job
    assert s.job.status == "succeeded"


def test_warning_test_is_a_warning_recommendation_and_counts_against_the_score():
    s = ship(dtest("pass_orders", "pass"), dtest("recent_orders", "warn", failures=3, severity="warn"))
    assert [(r[0], r[1], r[2]) for r in recs(s)] == [("warning", "Test warning", "dataset")]
    assert "3 failing rows" in recs(s)[0][4]
    m = metrics(s, "orders")
    assert (m["tests_warned"], m["tests_passed"], m["score"]) == (1, 1, "0.50")
    assert s.job.status == "succeeded"


def test_erroring_test_is_high_test_error_and_fails_the_job():
    s = ship(dtest("broken_orders", "error", message="Runtime Error in test broken_orders "
                   "(tests/broken_orders.sql)\n  Binder Error: column x\n  not found"))
    [(level, type_, _, _, content)] = recs(s)
    assert (level, type_) == ("high", "Test error")
    # dbt's message on one line, without the preamble that repeats the test's name
    assert content == ("Test broken could not run on model orders (dbt test broken_orders): "
                       "Binder Error: column x not found")
    assert metrics(s, "orders")["tests_errored"] == 1
    assert metrics(s, "orders")["score"] == "0.00"
    assert s.job.status == "failed"


def test_skipped_tests_are_counted_but_never_scored():
    s = ship(dtest("a_orders", "skipped"), dtest("b_orders", "skipped"))
    m = metrics(s, "orders")
    assert (m["tests_total"], m["tests_skipped"]) == (2, 2)
    assert "score" not in m and "score" not in metrics(s, DB)  # no evidence is not a perfect score
    assert s.recommendations == ()


@pytest.mark.parametrize(("passed", "failed", "warned", "errored", "expected"), [
    (13, 2, 0, 0, "0.87"), (2, 1, 0, 0, "0.67"), (1, 0, 1, 1, "0.33"), (1, 7, 0, 0, "0.13"),
    (199, 1, 0, 0, "0.99"), (1999, 1, 0, 0, "0.99"), (3, 0, 0, 0, "1.00"), (0, 5, 0, 0, "0.00"),
    (1, 999, 0, 0, "0.00"), (0, 0, 0, 0, None)])
def test_score_rounds_half_up_and_1_00_means_every_test_passed(passed, failed, warned, errored,
                                                                expected):
    """Rounded as QALITA's packs round (half up: 1/8 = 0.125 -> 0.13), never 1.00 with a miss."""
    assert score(passed, failed, warned, errored) == expected
    assert score_of(passed, passed + failed + warned + errored) == expected


def test_statuses_count_in_any_case():
    s = ship(dtest("a_orders", "PASS"), dtest("b_orders", "Fail", failures=1),
             dtest("c_orders", "Warn", severity="warn"), dtest("d_orders", "Skipped"))
    m = metrics(s, DB)
    assert (m["tests_passed"], m["tests_failed"], m["tests_warned"], m["tests_skipped"],
            m["tests_errored"]) == (1, 1, 1, 1, 0)
    assert [r[1] for r in recs(s)] == ["Test failed", "Test warning"]


def test_an_unknown_test_status_counts_as_errored_and_is_named():
    s = ship(dtest("a_orders", "pass"), dtest("b_orders", "exploded"))
    m = metrics(s, DB)
    assert (m["tests_total"], m["tests_passed"], m["tests_errored"], m["score"]) == \
        (2, 1, 1, "0.50")
    [(level, type_, _, _, content)] = recs(s)
    assert (level, type_) == ("high", "Test error")
    assert "'exploded'" in content and "counted as errored" in content


def test_a_unique_id_repeated_counts_once():
    s = ship(dtest("a_orders", "pass"), dtest("a_orders", "pass"), dtest("b_orders", "fail"))
    assert (metrics(s, DB)["tests_total"], metrics(s, DB)["tests_passed"]) == (2, 1)
    assert s.context.results == 2


@pytest.mark.parametrize(("command", "reason"), [
    ("generate", "dbt docs generate compiles, it tests nothing"),
    ("compile", "dbt compile compiles, it tests nothing"),
    ("ls", "dbt list lists nodes, it tests nothing"),
    ("list", "dbt list lists nodes, it tests nothing"),
    ("parse", "dbt parse parses, it tests nothing"),
    ("show", "dbt show previews, it tests nothing"),
    ("run-operation", "dbt run-operation runs a macro, it tests nothing"),
    ("rpc", "dbt rpc compiles, it tests nothing"),
    # an IDE's results, whatever the command: tests `success`
    (None, "dbt: its tests report `success`, as a compile's do: it tests nothing"),
    ("build", "dbt build: its tests report `success`, as a compile's do: it tests nothing"),
])
def test_an_invocation_that_executes_nothing_ships_no_test_outcome(command, reason):
    compiled = Invocation("inv-c", command, START, END,
                          (dtest("a_orders", "success"), Result(MODEL, "success", "model",
                                                                "orders")), "test")
    assert executes_nothing(compiled) == reason
    s = to_shipment(compiled, project="Shop", environment="prod")
    assert not [m for m in s.metrics if m.key.startswith("tests_") or m.key == "score"]


def test_a_build_executes_something():
    assert executes_nothing(inv(dtest("a_orders", "pass"))) is None
    assert executes_nothing(Invocation("i", "run", START, END,
                                       (Result(MODEL, "success", "model", "orders"),), "t")) is None


def test_model_success_gives_rows_affected_and_execution_time():
    s = ship(Result(MODEL, "success", "model", "orders", rows_affected=42, execution_time=1.23456),
             Result("seed.shop.countries", "success", "seed", "countries", rows_affected=7,
                    execution_time=0.5),
             Result("snapshot.shop.orders_snap", "success", "snapshot", "orders_snap",
                    execution_time=0.25))
    assert metrics(s, "orders") == {"rows_affected": 42, "execution_time": 1.235}
    assert metrics(s, "countries") == {"rows_affected": 7, "execution_time": 0.5}
    assert metrics(s, "orders_snap") == {"execution_time": 0.25}
    assert "score" not in metrics(s, DB) and s.recommendations == ()
    assert s.job.status == "succeeded"


def test_model_no_op_is_a_metric_only():
    s = ship(Result(MODEL, "no-op", "model", "orders", execution_time=0.1))
    assert metrics(s, "orders") == {"execution_time": 0.1}
    assert s.recommendations == () and s.job.status == "succeeded"


def test_model_error_is_high_and_fails_the_job():
    s = ship(Result(MODEL, "error", "model", "orders", message="Database Error: relation missing"))
    assert recs(s) == [("high", "Build error", "dataset", "orders",
                        "Model orders failed to build: Database Error: relation missing")]
    assert s.job.status == "failed"


def test_skipped_model_is_info_naming_the_upstream_failure():
    nodes = {
        MODEL: Node(MODEL, "model", "orders", depends_on=("model.shop.stg_orders",)),
        "model.shop.stg_orders": Node("model.shop.stg_orders", "model", "stg_orders"),
        "model.shop.report": Node("model.shop.report", "model", "report", depends_on=(MODEL,)),
    }
    manifest = Manifest(Path("manifest.json"), 12, P, "1.11.0", None, nodes)
    s = ship(Result("model.shop.stg_orders", "success", "model", "stg_orders"),
             dtest("unique_stg_orders_id", "fail", failures=2, subject="model.shop.stg_orders"),
             Result(MODEL, "skipped", "model", "orders"),
             Result("model.shop.report", "skipped", "model", "report"),
             manifest=manifest)
    skipped = [r for r in recs(s) if r[1] == "Skipped"]
    assert [(r[0], r[3]) for r in skipped] == [("info", "orders"), ("info", "report")]
    assert all("unique_stg_orders_id" in r[4] for r in skipped)  # found two levels up too
    assert s.job.status == "succeeded"


def test_skipped_model_without_manifest_still_says_why():
    s = ship(Result(MODEL, "skipped", "model", "orders"))
    assert recs(s) == [("info", "Skipped", "dataset", "orders",
                        "Model orders was not built: skipped because an upstream node failed.")]


@pytest.mark.parametrize(("status", "level", "job"), [
    ("pass", None, "succeeded"), ("warn", "warning", "succeeded"), ("error", "high", "succeeded"),
    ("runtime error", "high", "failed"),
    # dbt Fusion capitalises them
    ("Pass", None, "succeeded"), ("Warn", "warning", "succeeded"), ("Error", "high", "succeeded")])
def test_freshness_statuses(status, level, job):
    r = Result(SOURCE, status, "source", "payments", age=None if status == "runtime error" else 90000.0,
               message="Database Error: no such table" if status == "runtime error" else None)
    s = ship(r)
    m = metrics(s, "raw.payments")
    assert m["freshness_status"] == status.lower()
    if status != "runtime error":
        assert m["freshness_age_s"] == 90000.0
    got = recs(s)
    if level is None:
        assert got == []
    else:
        [(lvl, type_, perimeter, value, content)] = got
        assert (lvl, type_, perimeter, value) == (level, "Freshness", "dataset", "raw.payments")
        assert ("25.0 hours" in content) or ("no such table" in content)
    assert s.job.status == job


def test_source_test_is_scoped_to_the_source_table():
    s = ship(dtest("not_null_raw_payments_id", "fail", column="id", failures=1, subject=SOURCE))
    rec = s.recommendations[0]
    assert (rec.scope.value, rec.scope.parent.value) == ("id", "raw.payments")
    assert rec.content == ("Test not_null_raw_payments_id failed on column id of source "
                           "raw.payments: 1 failing row.")


def test_test_without_subject_is_project_scoped():
    s = ship(dtest("orphan_check", "fail", failures=1, subject=None))
    assert s.recommendations[0].scope == Scope("database", DB)
    assert metrics(s, DB)["tests_failed"] == 1


def test_schemas_cover_exactly_the_scopes_used():
    s = ship(dtest("not_null_orders_id", "fail", column="id", failures=1),
             dtest("not_null_orders_amount", "pass", column="amount"),
             Result(SOURCE, "pass", "source", "payments", age=5.0))
    used = {(x.scope.perimeter, x.scope.value) for x in (*s.metrics, *s.recommendations)}
    parents = {(x.scope.parent.perimeter, x.scope.parent.value)
               for x in (*s.metrics, *s.recommendations) if x.scope.parent}
    assert {(e.key, e.value) for e in s.schemas} == used | parents
    assert ("column", "amount") not in {(e.key, e.value) for e in s.schemas}
    for e in s.schemas:
        assert e.key == e.scope.perimeter and e.value == e.scope.value


def test_job_and_idempotency_key():
    s = ship(dtest("a_orders", "pass"), git_sha="abc123", inv_id="0f0f-inv")
    assert s.key == idempotency_key("Shop", "prod", "abc123", "0f0f-inv")
    assert (s.job.started_at, s.job.finished_at) == ("2026-03-01 08:30:05", "2026-03-01 08:31:00")
    assert s.context.invocation_id == "0f0f-inv"
    assert s.origin == "dbt" and s.source_type == "database"
    other = to_shipment(inv(dtest("a_orders", "pass"), git_sha="abc123", inv_id="0f0f-inv"),
                        project="Shop", environment="dev")
    assert other.key != s.key  # another environment is another shipment


def test_every_item_serialises_to_the_contract_shapes():
    s = ship(dtest("not_null_orders_id", "fail", column="id", failures=1),
             Result(MODEL, "success", "model", "orders", rows_affected=1, execution_time=0.1))
    files = s.files()
    assert set(files) == {"metrics.json", "recommendations.json", "schemas.json"}
    for m in files["metrics.json"]:
        assert set(m) == {"key", "value", "scope"}
        if m["key"] == "score":
            assert isinstance(m["value"], str)
        elif m["key"].startswith("tests_"):
            assert isinstance(m["value"], int)
    for r in files["recommendations.json"]:
        assert set(r) == {"content", "type", "scope", "level"}
