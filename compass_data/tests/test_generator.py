"""The generator's output, checked against the data model's rules recomputed here from the raw numbers.

Nothing is imported from quality_compass.rules: the tier tables and the z-score formulas below are
written out again from docs/compass.md, so a wrong rule in the generator fails.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter, defaultdict
from pathlib import Path

TIERS = ["extremely_low", "very_low", "moderately_low", "slightly_low", "normal",
         "slightly_high", "moderately_high", "very_high", "extremely_high"]
SIGNAL_TYPES = {"suspect_data", "sustained_excellence", "improving_leader", "baseline",
                "emerging_risk", "volatility_alert", "recovering", "chronic_underperformer",
                "critical_trajectory"}


def z_tier(z: float | None) -> str:
    """§6: cut points -3, -2, -1, -0.5, 0.5, 1, 2, 3, each interval closed at its upper end."""
    if z is None:
        return "no_score"
    bounds = [(-math.inf, -3), (-3, -2), (-2, -1), (-1, -0.5), (-0.5, 0.5), (0.5, 1), (1, 2),
              (2, 3), (3, math.inf)]
    (tier,) = [t for t, (lo, hi) in zip(TIERS, bounds, strict=True) if lo < z <= hi]
    return tier


def slope_tier(p: float | None) -> str:
    """§6 slope-percentile tiers: intervals closed at their lower end."""
    if p is None:
        return "no_score"
    bounds = [(-math.inf, 5), (5, 10), (10, 20), (20, 40), (40, 60), (60, 80), (80, 90),
              (90, 95), (95, math.inf)]
    (tier,) = [t for t, (lo, hi) in zip(TIERS, bounds, strict=True) if lo <= p < hi]
    return tier


def magnitude(pr: float | None) -> str | None:
    if pr is None:
        return None
    return ("critical" if pr >= 99 else "severe" if pr >= 95 else "elevated" if pr >= 85
            else "marginal" if pr >= 75 else "expected" if pr >= 25 else "favorable" if pr >= 10
            else "excellent")


def trajectory(sp: float | None) -> str | None:
    if sp is None:
        return None
    return ("rapidly_deteriorating" if sp >= 90 else "deteriorating" if sp >= 70 else "stable"
            if sp >= 30 else "improving" if sp >= 10 else "rapidly_improving")


def consistency(std: float | None, periods: int) -> str:
    if periods < 3 or std is None or std > 1.10:
        return "transient"
    return "persistent" if std < 0.90 and periods >= 6 else "variable"


def read_nodes(run: Path) -> dict[str, tuple[dict, list[dict]]]:
    out = {}
    for path in sorted((run / "results" / "nodes").glob("*.jsonl")):
        lines = [json.loads(x) for x in path.read_text().splitlines()]
        out[lines[0]["canonical_node_id"]] = (lines[0], lines[1:])
    return out


def jsonl(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()]


def tree_bytes(run: Path) -> dict[str, bytes]:
    return {p.relative_to(run).as_posix(): p.read_bytes() for p in sorted(run.rglob("*"))
            if p.is_file()}


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path, gen):
    a = gen(tmp_path / "a", 600, 11)
    b = gen(tmp_path / "b", 600, 11)
    c = gen(tmp_path / "c", 600, 12)
    assert a.name == b.name  # the run id is derived from the seed
    ta, tb, tc = tree_bytes(a), tree_bytes(b), tree_bytes(c)
    assert len(ta) == 39  # 30 node files, 6 contribution files, classifications, 2 modeling
    assert ta == tb
    assert ta["results/nodes/losIndex__medicareId__aggregate_time_period.jsonl"] != \
        tc["results/nodes/losIndex__medicareId__aggregate_time_period.jsonl"]


def test_size_is_a_parameter(tmp_path, gen):
    for entities in (300, 20000):
        run = gen(tmp_path / str(entities), entities, 3)
        rows = sum(len(lines) for _, lines in read_nodes(run).values())
        assert abs(rows - entities) <= max(60, entities * 0.05), (entities, rows)


def test_facilities_metrics_and_graph(medium_run):
    nodes = read_nodes(medium_run)
    metrics = {meta["metric_id"] for meta, _ in nodes.values()}
    assert {"losIndex", "readmissionRate", "mortalityIndex", "pctAllReturnsToIcu",
            "meanIcuDaysIcuFile", "icuCasesFromIcuFile"} <= metrics
    systems: dict[str, set[str]] = defaultdict(set)
    for nid, (meta, lines) in nodes.items():
        assert re.fullmatch(r"[A-Za-z]+__medicareId(_[A-Za-z]+)?__(aggregate_time_period|"
                            r"dischargeMonth)", nid)
        assert meta["entity_results_count"] == len(lines)
        for e in lines:
            ent = {f["id"]: f["value"] for f in e["entity"]}
            assert re.fullmatch(r"\d{6}", ent["medicareId"])
            systems[ent["medicareId"]].add(e["metadata"]["systemName"])
            values = e["metric"][0]["values"]
            if nid.endswith("__dischargeMonth"):
                periods = [p["period"] for p in values["timeline"]]
                assert periods == sorted(periods) and len(periods) == 12
                assert {p["period"] for p in e["metadata"]["per_period"]} == set(periods)
            else:
                assert isinstance(values, int | float)
        # every edge is declared on both ends with the same type
        for child in meta["canonical_child_node_ids"]:
            back = nodes[child["id"]][0]["canonical_parent_node_ids"]
            assert {"id": nid, "edge_type": child["edge_type"]} in back
    assert all(len(s) == 1 for s in systems.values())  # one health system per facility
    assert len(systems) >= 40
    edge_types = {c["edge_type"] for meta, _ in nodes.values()
                  for c in meta["canonical_child_node_ids"]}
    assert edge_types == {"trends_to", "segments_into", "potentially_driven_by"}
    trends = [(n, c["id"]) for n, (meta, _) in nodes.items()
              for c in meta["canonical_child_node_ids"] if c["edge_type"] == "trends_to"]
    assert trends and all(a.endswith("__aggregate_time_period") and b.endswith("__dischargeMonth")
                          for a, b in trends)


def test_zscores_recomputed_from_peer_values(medium_run):
    """Aggregate nodes: simple z = (v - mean) / max(std, floor); robust z = (v - median) /
    max(1.4826 * MAD, mad_floor); peers = the unsuppressed entities of the same facet."""
    checked = 0
    for _nid, (meta, lines) in read_nodes(medium_run).items():
        if not _nid.endswith("__aggregate_time_period"):
            continue
        facets = {m["statistical_method"].split("__")[1]:
                  {json.dumps(f["facet_values"], sort_keys=True): f
                   for f in m["summary"]["global_statistics"]["facets"]}
                  for m in meta["statistical_methods"]}
        groups: dict[str, list[tuple[float, dict]]] = defaultdict(list)
        for e in lines:
            dims = {f["id"]: f["value"] for f in e["entity"] if f["id"] != "medicareId"}
            methods = {m["statistical_method"].split("__")[1]: m for m in e["statistical_methods"]}
            groups[json.dumps(dims, sort_keys=True)].append((e["metric"][0]["values"], methods))
        for facet, members in groups.items():
            peers = [v for v, m in members if not m["simple_zscore"]["statistics"]["suppressed"]]
            gs = facets["simple_zscore"][facet]
            assert gs["facet_counts"]["entity_with_statistics_count"] == len(peers)
            floor = gs["method_statistics"]["std_floor"]
            mad_floor = facets["robust_zscore"][facet]["method_statistics"]["mad_floor"]
            min_peers = gs["method_statistics"]["min_peer_count"]
            for value, m in members:
                simple = m["simple_zscore"]["statistics"]["simple_zscore"]
                robust = m["robust_zscore"]["statistics"]["robust_zscore"]
                if m["simple_zscore"]["statistics"]["suppressed"] or len(peers) < min_peers:
                    assert simple is None and robust is None
                    continue
                mean = sum(peers) / len(peers)
                std = math.sqrt(sum((p - mean) ** 2 for p in peers) / len(peers))
                s = sorted(peers)
                med = (s[len(s) // 2] + s[(len(s) - 1) // 2]) / 2
                dev = sorted(abs(p - med) for p in peers)
                mad = 1.4826 * (dev[len(dev) // 2] + dev[(len(dev) - 1) // 2]) / 2
                assert simple == round((value - mean) / max(std, floor), 4)
                assert abs(robust - (value - med) / max(mad, mad_floor)) <= 6e-5
                below = sum(p < value for p in peers) + 0.5 * sum(p == value for p in peers)
                pr = m["simple_zscore"]["statistics"]["percentile_rank"]
                assert abs(pr - 100 * below / len(peers)) <= 1e-4
                checked += 1
    assert checked > 1500


def test_anomaly_tiers_match_the_statistics(medium_run):
    seen: Counter[tuple[str, str]] = Counter()
    for _nid, (_meta, lines) in read_nodes(medium_run).items():
        for e in lines:
            for m in e["statistical_methods"]:
                for profile in m["anomalies"]:
                    for a in profile["methods"]:
                        # the anomaly is about the statistic it names
                        assert a["statistic_value"] == m["statistics"][a["applies_to"]]
                        want = (slope_tier if a["applies_to"] == "slope_percentile"
                                else z_tier)(a["statistic_value"])
                        assert a["anomaly"] == want, (a, want)
                        kind = "slope" if a["applies_to"] == "slope_percentile" else "z"
                        seen[kind, a["anomaly"]] += 1
    for kind in ("z", "slope"):
        assert {t for k, t in seen if k == kind} == set(TIERS) | {"no_score"}, seen


def test_contribution_weight_shares_sum_to_one(medium_run):
    parents: dict[tuple, list[dict]] = defaultdict(list)
    files = sorted((medium_run / "analysis" / "contribution").glob("*.jsonl"))
    assert len(files) == 6
    for path in files:
        for c in jsonl(path):
            key = (c["metric_id"], c["parent_node_id"], json.dumps(c["parent_entity"],
                                                                   sort_keys=True))
            parents[key].append(c)
    assert len(parents) > 200
    for key, rows in parents.items():
        assert abs(sum(r["weight_share"] for r in rows) - 1) <= 1e-6, key
        total = sum(r["weight_value"] for r in rows)
        parent_value = rows[0]["parent_value"]
        for r in rows:
            share = r["weight_share"]
            assert abs(share - r["weight_value"] / total) <= 1e-8
            assert abs(r["raw_component"] - share * r["child_value"]) <= 1e-7
            assert abs(r["excess_over_parent"] - share * (r["child_value"] - parent_value)) <= 1e-7
            assert r["child_entity"]["medicareId"] == r["parent_entity"]["medicareId"]
        # the parent is the encounter-weighted mean of its children (up to its own rounding)
        weighted = sum(r["weight_share"] * r["child_value"] for r in rows)
        tolerance = 0.5 if parent_value == int(parent_value) else 1e-3 * max(1, abs(parent_value))
        assert abs(weighted - parent_value) <= tolerance, key


def test_classifications_types_and_tiers(medium_run):
    pr_by_entity = {}
    for nid, (_meta, lines) in read_nodes(medium_run).items():
        for e in lines:
            for m in e["statistical_methods"]:
                if m["statistical_method"].endswith("__simple_zscore__aggregate_time_period"):
                    key = (nid, tuple(sorted((f["id"], f["value"]) for f in e["entity"])))
                    pr_by_entity[key] = m["statistics"]["percentile_rank"]
    rows = jsonl(medium_run / "analysis" / "classification" / "classifications.jsonl")
    types = Counter()
    for c in rows:
        key = (c["node_id"], tuple(sorted((k, v) for k, v in c["entity_key"].items()
                                          if k != "systemName")))
        assert c["magnitude_tier"] == magnitude(pr_by_entity[key])
        assert c["trajectory_tier"] == trajectory(c["inputs"]["slope_percentile"])
        assert c["consistency_tier"] == consistency(c["inputs"]["zscore_std"], c["period_count"])
        if c["suppressed"]:
            assert c["signal_type"] is None
            continue
        types[c["signal_type"]] += 1
        lo, hi = c["severity_range"]
        assert 0 <= lo <= c["severity"] <= hi <= 100
    assert set(types) == SIGNAL_TYPES, types


def test_medicare_ids_stay_six_digits_and_unique_for_large_runs():
    from quality_compass.generate import medicare_id

    ids = [medicare_id(i) for i in range(900_000)]  # about 97M entity rows
    assert len(set(ids)) == len(ids)
    assert all(len(x) == 6 and x.isdigit() for x in ids)
    assert ids[:9] == ["010001", "020002", "030003", "040004", "050005", "060006", "070007",
                       "080008", "090009"]  # the ref_facilities seed's sample ids
