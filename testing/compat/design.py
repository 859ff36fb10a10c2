"""The outcomes the compat consumer project (project/) is built to give, and the same read back
from dbt's artifacts: the fixture generator and the compat suite both check dbt against it."""

from __future__ import annotations

PROJECT = "qalita_compat"
# What testing/compat/project is built to give, by node name. Tests: three pass, not_null on
# amount fails, unique on customer_id warns (severity warn), the singular test errors, and the
# test of the model that errors is skipped.
TESTS = {
    "not_null_stg_customers_customer_id": "pass",
    "unique_stg_customers_customer_id": "pass",
    "not_null_stg_orders_order_id": "pass",
    "not_null_stg_orders_amount": "fail",
    "unique_stg_orders_customer_id": "warn",
    "assert_orders_error_by_design": "error",
    "not_null_dim_customers_broken_customer_id": "skipped",
}
UNIT_TESTS = {"stg_customers_keeps_id_and_name": "pass"}  # dbt >= 1.8
NODES = {
    "raw_customers": "success", "raw_orders": "success", "raw_events": "success",  # seeds
    "customers_snapshot": "success",
    "stg_customers": "success", "stg_orders": "success", "stg_load_heartbeat": "success",
    "dim_customers_broken": "error",
}
FRESHNESS = {  # by source table
    "load_heartbeat": "pass", "raw_events": "warn", "raw_orders": "error",
    "raw_customers": "runtime error",
}
COUNT_NAMES = {"pass": "passed", "fail": "failed", "warn": "warned", "error": "errored",
               "skipped": "skipped"}


def design(with_unit_tests: bool, with_hook: bool) -> dict:
    tests = {COUNT_NAMES[s]: sum(v == s for v in TESTS.values()) for s in COUNT_NAMES}
    out = {
        "build": {
            "tests": tests,
            "unit_tests": ({"passed": len(UNIT_TESTS)} if with_unit_tests else None),
            "test_status": TESTS,
            "unit_test_status": UNIT_TESTS if with_unit_tests else {},
            "node_status": NODES,
            "hooks": {"success": 1} if with_hook else {},
        },
        "freshness": FRESHNESS,
        # docs generate compiles every node: each result is a success, none is an outcome
        "docs_generate_statuses": ["success"],
    }
    return out


def observed(manifest: dict, run_results: dict, sources: dict, docs: dict) -> dict:
    """The same shape as design(), read from the files."""
    names = {uid: n["name"] for uid, n in
             {**manifest.get("nodes", {}), **manifest.get("unit_tests", {})}.items()}
    test_status, unit_status, node_status, hooks = {}, {}, {}, {}
    for r in run_results["results"]:
        uid, status = r["unique_id"], r["status"]
        kind = uid.split(".")[0]
        if kind == "test":
            test_status[names[uid]] = status
        elif kind == "unit_test":
            unit_status[names[uid]] = status
        elif kind == "operation":
            hooks[status] = hooks.get(status, 0) + 1
        else:
            node_status[names[uid]] = status
    tests = {COUNT_NAMES[s]: sum(v == s for v in test_status.values()) for s in COUNT_NAMES}
    return {
        "build": {
            "tests": tests,
            "unit_tests": ({"passed": sum(v == "pass" for v in unit_status.values())}
                           if unit_status else None),
            "test_status": test_status,
            "unit_test_status": unit_status,
            "node_status": node_status,
            "hooks": hooks,
        },
        "freshness": {r["unique_id"].rsplit(".", 1)[1]: r["status"] for r in sources["results"]},
        "docs_generate_statuses": sorted({r["status"] for r in docs["results"]}),
    }


def differences(want: dict, got: dict, path: str = "") -> list[str]:
    if isinstance(want, dict) and isinstance(got, dict):
        out = []
        for key in sorted(set(want) | set(got)):
            out += differences(want.get(key), got.get(key), f"{path}.{key}" if path else key)
        return out
    return [] if want == got else [f"{path}: designed {want!r}, dbt wrote {got!r}"]
