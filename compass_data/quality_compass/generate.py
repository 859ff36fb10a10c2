"""Deterministic generator of an insight-graph run folder (an insight-graph engine's files).

Layout of `<out>/<run_id>/` (docs/compass.md):
  results/nodes/<canonical_node_id>.jsonl        line 1 node metadata, lines 2+ entity results
  analysis/contribution/<metric>.jsonl           one parent-child contribution per line
  analysis/classification/classifications.jsonl  one classification per aggregate entity
  modeling/run_summary.json, modeling/experiments.json

Memory stays bounded by one metric's entities (facilities x service lines), never by the run: every
node file is written as soon as its peer statistics are known, so millions of rows stream to disk.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson

from . import rules

COMPARISON_GROUP = "vizient_qa_amc_2025"
DATASET_PATH = "datasets/encounters_fy2025.parquet"
AGG = "aggregate_time_period"
MONTHLY = "dischargeMonth"
TREND_SET = "trending_time_period"
MIN_PEER_COUNT = 5
SUPPRESS_BELOW = 11  # encounters: small cells are suppressed (no statistics)
# 202407 .. 202506
PERIODS = tuple(f"{2024 + (6 + i) // 12}{(6 + i) % 12 + 1:02d}" for i in range(12))


@dataclass(frozen=True)
class MetricSpec:
    metric_id: str
    mean: float
    sd: float
    decimals: int
    floor: float = 0.0


METRICS = (
    MetricSpec("losIndex", 1.0, 0.15, 4),
    MetricSpec("readmissionRate", 14.0, 3.0, 3),
    MetricSpec("mortalityIndex", 1.0, 0.2, 4),
    MetricSpec("pctAllReturnsToIcu", 5.0, 1.5, 3),
    MetricSpec("meanIcuDaysIcuFile", 3.5, 0.8, 3),
    MetricSpec("icuCasesFromIcuFile", 400.0, 120.0, 0),
)
SERVICE_LINES = ("Cardiology", "Cardiothoracic Surgery", "General Medicine", "General Surgery",
                 "Gastroenterology", "Neurology", "Neurosurgery", "Oncology", "Orthopedics",
                 "Pulmonology", "Urology", "Vascular Surgery")
SL_PER_FACILITY = 6
DISCHARGE_STATUSES = ("Home", "Home Health", "Skilled Nursing", "Expired")
SYSTEMS = ("Northwind Health", "Bluewater Health System", "Cedar Valley Health",
           "Summit Medical Group", "Lakeshore Health Partners", "Prairie Care Alliance",
           "Harbor Regional Health", "Granite State Health")
# Entity rows per facility: per metric, facility agg + monthly, SL agg + monthly, discharge agg.
ROWS_PER_FACILITY = len(METRICS) * (2 + 2 * SL_PER_FACILITY + len(DISCHARGE_STATUSES))

# Artifact files of one modeling experiment (paths only: the files themselves are not written).
ARTIFACTS = (("metrics", "json"), ("predictions", "parquet"), ("eda_summary", "json"),
             ("group_summary", "json"), ("feature_descriptor", "json"), ("hparam_trials", "csv"),
             ("encounter_shap", "parquet"), ("facility_shap", "parquet"), ("global_shap", "json"),
             ("transparency", "json"))

# Temporal statistics the classification reads once the node file is written.
CLASSIFY_KEYS = ("slope_percentile", "acceleration", "zscore_std", "max_abs_deviation",
                 "observations", "coefficient_of_variation")

GROUPBYS = {
    "facility": ("medicareId",),
    "service_line": ("medicareId", "vizientServiceLine"),
    "discharge": ("medicareId", "dischargeStatus"),
}


@dataclass(frozen=True)
class GenerateConfig:
    out: Path
    entities: int = 2000
    seed: int = 42
    run_id: str | None = None  # default: derived from the seed, so a rerun gives the same folder

    def resolved_run_id(self) -> str:
        if self.run_id:
            return self.run_id
        return (datetime(2026, 1, 1) + timedelta(minutes=self.seed)).strftime("%Y%m%d%H%M%S")

    def facility_count(self) -> int:
        return max(1, round(self.entities / ROWS_PER_FACILITY))


@dataclass(frozen=True)
class Facility:
    medicare_id: str
    name: str
    system_name: str
    service_lines: tuple[str, ...]


@dataclass
class Entity:
    dims: dict[str, str]  # medicareId first, then the group-by dimensions
    facility: Facility
    encounters: int
    value: float
    timeline: list[float | None]
    monthly_encounters: list[int]
    stats: dict[str, Any] = field(default_factory=dict)  # filled by the node writers

    @property
    def facet(self) -> tuple[tuple[str, str], ...]:
        return tuple((k, v) for k, v in sorted(self.dims.items()) if k != "medicareId")

    @property
    def suppressed(self) -> bool:
        return self.encounters < SUPPRESS_BELOW


@dataclass(frozen=True)
class GenerateResult:
    run_dir: Path
    run_id: str
    facilities: int
    entity_rows: int
    node_files: int
    contributions: int
    classifications: int


def node_id(metric: str, groupby: tuple[str, ...], grain: str) -> str:
    return f"{metric}__{'_'.join(groupby)}__{grain}"


def method_id(method: str, method_set: str) -> str:
    return f"statistical_method__{method}__{method_set}"


def _r(x: float | None, nd: int = 6) -> float | None:
    return None if x is None else round(x, nd)


def medicare_id(i: int) -> str:
    """6 digits like a CMS Certification Number (2-digit state, 4-digit sequence), unique for
    900k facilities: 010001, 020002, ... 090009 (the ref_facilities seed's ids), 010010, ..."""
    if i < 9999:
        return f"{i % 9 + 1:02d}{i + 1:04d}"
    j = i - 9999
    return f"{10 + j // 9999 % 90:02d}{j % 9999 + 1:04d}"


def make_facilities(cfg: GenerateConfig) -> list[Facility]:
    out = []
    for i in range(cfg.facility_count()):
        rng = random.Random(f"{cfg.seed}|facility|{i}")
        mid = medicare_id(i)
        lines = tuple(sorted(rng.sample(SERVICE_LINES, SL_PER_FACILITY)))
        out.append(Facility(mid, f"Facility {mid}", SYSTEMS[i % len(SYSTEMS)], lines))
    return out


def _value(rng: random.Random, m: MetricSpec, shift: float = 0.0) -> float:
    v = rng.gauss(m.mean + shift * m.sd, m.sd)
    if rng.random() < 0.03:  # a few outliers so that the extreme tiers occur
        v += rng.choice((-1, 1)) * 4 * m.sd
    return round(max(m.floor, v), m.decimals)


def _timeline(rng: random.Random, m: MetricSpec, level: float) -> list[float | None]:
    # A few entities are noisy month to month (volatility_alert) and a few carry one gross data
    # error (suspect_data), so that every signal type occurs even in a small run.
    kind = rng.random()
    noise = m.sd * (1.2 if kind < 0.04 else 0.25)
    bad_month = rng.randrange(len(PERIODS)) if 0.04 <= kind < 0.06 else None
    slope = rng.gauss(0, m.sd * 0.03)
    out: list[float | None] = []
    for t in range(len(PERIODS)):
        if rng.random() < 0.04:  # a missing month: the latest non-null value must be used
            out.append(None)
            continue
        v = level + slope * (t - (len(PERIODS) - 1) / 2) + rng.gauss(0, noise)
        if rng.random() < 0.02:
            v += rng.choice((-1, 1)) * 3 * m.sd
        if t == bad_month:
            v += 12 * m.sd
        out.append(round(max(m.floor, v), m.decimals))
    return out


def _split(rng: random.Random, total: int, parts: int) -> list[int]:
    weights = [rng.uniform(0.5, 1.5) for _ in range(parts)]
    s = sum(weights)
    return [max(0, int(total * w / s)) for w in weights]


def build_metric_entities(cfg: GenerateConfig, m: MetricSpec, facilities: list[Facility]
                          ) -> dict[str, list[Entity]]:
    """Entities of one metric for the three group-bys; the facility value is the encounter-weighted
    mean of its service lines, so the contributions add up."""
    out: dict[str, list[Entity]] = {"facility": [], "service_line": [], "discharge": []}
    for f in facilities:
        rng = random.Random(f"{cfg.seed}|{m.metric_id}|{f.medicare_id}")
        shift = rng.gauss(0, 0.5)  # a facility effect shared by its segments
        children = []
        for sl in f.service_lines:
            enc = rng.randint(5, 400)
            v = _value(rng, m, shift)
            tl = _timeline(rng, m, v)
            children.append(Entity({"medicareId": f.medicare_id, "vizientServiceLine": sl}, f,
                                   enc, v, tl, _split(rng, enc, len(PERIODS))))
        total = sum(c.encounters for c in children)
        fv = round(sum(c.value * c.encounters for c in children) / total, m.decimals)
        ftl: list[float | None] = []
        for t in range(len(PERIODS)):
            pts = [(c.timeline[t], c.monthly_encounters[t] or 1) for c in children
                   if c.timeline[t] is not None]
            ftl.append(round(sum(v * w for v, w in pts) / sum(w for _, w in pts), m.decimals)
                       if pts else None)
        out["facility"].append(Entity({"medicareId": f.medicare_id}, f, total, fv, ftl,
                                      [sum(c.monthly_encounters[t] for c in children)
                                       for t in range(len(PERIODS))]))
        out["service_line"].extend(children)
        for ds in DISCHARGE_STATUSES:
            enc = rng.randint(3, 200)
            out["discharge"].append(Entity({"medicareId": f.medicare_id, "dischargeStatus": ds}, f,
                                           enc, _value(rng, m, shift), [], []))
    return out


# --- statistics -------------------------------------------------------------------------------

def _facets(entities: list[Entity]) -> dict[tuple, list[Entity]]:
    groups: dict[tuple, list[Entity]] = defaultdict(list)
    for e in entities:
        groups[e.facet].append(e)
    return dict(sorted(groups.items()))


def _spread_floor(m: MetricSpec) -> float:
    return max(m.sd * 0.01, 10 ** -m.decimals)


def _mad_floor(m: MetricSpec) -> float:
    """The robust method's floor: three quarters of the metric's spread. A small peer group can
    agree almost exactly (MAD near 0), and dividing by that would turn an ordinary value into
    |z| > 10."""
    return max(m.sd * 0.75, _spread_floor(m))


def aggregate_stats(m: MetricSpec, entities: list[Entity]) -> list[dict[str, Any]]:
    """Simple and robust z-scores within each facet; returns the facet summaries."""
    facets = []
    floor, mad_floor = _spread_floor(m), _mad_floor(m)
    for facet, members in _facets(entities).items():
        peers = [e.value for e in members if not e.suppressed]
        scored = len(peers) >= MIN_PEER_COUNT
        mu = rules.mean(peers) if peers else None
        sd = rules.std(peers) if peers else None
        med = rules.median(peers) if peers else None
        mad = rules.median([abs(p - med) for p in peers]) * 1.4826 if peers else None
        rank = rules.Ranker(peers)
        for e in members:
            s: dict[str, Any] = {"peer_count": len(peers)}
            if e.suppressed:
                s.update(simple_zscore=None, robust_zscore=None, percentile_rank=None,
                         peer_mean=None, peer_std=None, peer_median=None, peer_mad=None,
                         suppressed=True)
            else:
                s.update(
                    simple_zscore=_r((e.value - mu) / max(sd, floor), 4) if scored else None,
                    robust_zscore=_r((e.value - med) / max(mad, mad_floor), 4) if scored else None,
                    percentile_rank=rank(e.value) if scored else None,
                    peer_mean=_r(mu), peer_std=_r(sd), peer_median=_r(med), peer_mad=_r(mad),
                    suppressed=False)
            e.stats = s
        counts = {"record_count": sum(e.encounters for e in members),
                  "entity_count": len(members), "entity_with_statistics_count": len(peers)}
        facets.append({
            "facet_values": dict(facet), "facet_counts": counts,
            "simple": {"global_metric_mean": _r(mu), "global_metric_std": _r(sd),
                       "std_floor": _r(floor), "std_floor_applied": bool(sd is not None
                                                                         and sd < floor),
                       "min_peer_count": MIN_PEER_COUNT},
            "robust": {"global_metric_mean": _r(mu), "global_metric_std": _r(sd),
                       "global_metric_median": _r(med), "global_mad": _r(mad),
                       "mad_floor": _r(mad_floor), "mad_floor_applied": bool(mad is not None
                                                                             and mad < mad_floor),
                       "winsor_percentile": None, "winsor_applied": False,
                       "std_floor": _r(floor), "min_peer_count": MIN_PEER_COUNT},
        })
    return facets


def _ols(points: list[tuple[float, float]], weights: list[float] | None = None) -> float | None:
    if len(points) < 3:
        return None
    w = weights or [1.0] * len(points)
    sw = sum(w)
    mx = sum(wi * x for wi, (x, _) in zip(w, points, strict=True)) / sw
    my = sum(wi * y for wi, (_, y) in zip(w, points, strict=True)) / sw
    den = sum(wi * (x - mx) ** 2 for wi, (x, _) in zip(w, points, strict=True))
    if den == 0:
        return None
    return sum(wi * (x - mx) * (y - my) for wi, (x, y) in zip(w, points, strict=True)) / den


def _mean_z(zs: list[dict[str, Any]]) -> float | None:
    return _r(rules.mean([z["zscore"] for z in zs]), 4) if zs else None


def temporal_stats(m: MetricSpec, entities: list[Entity]) -> list[dict[str, Any]]:
    """Per-period z-scores against the facet's peers of the same month, slope and percentiles."""
    floor, mad_floor = _spread_floor(m), _mad_floor(m)
    facets = []
    for facet, members in _facets(entities).items():
        active = [e for e in members if not e.suppressed]
        per_period: list[tuple[float, float, float, float, int]] = []
        for t in range(len(PERIODS)):
            vals = [e.timeline[t] for e in active if e.timeline[t] is not None]
            if len(vals) >= MIN_PEER_COUNT:
                med = rules.median(vals)
                per_period.append((rules.mean(vals), rules.std(vals), med,
                                   rules.median([abs(v - med) for v in vals]) * 1.4826, len(vals)))
            else:
                per_period.append((math.nan, math.nan, math.nan, math.nan, len(vals)))
        slopes: dict[int, float] = {}
        for e in active:
            pts = [(float(t), v) for t, v in enumerate(e.timeline) if v is not None]
            s = _ols(pts)
            if s is not None:
                slopes[id(e)] = s
        peer_slopes = list(slopes.values())
        latest_vals = [next(v for v in reversed(e.timeline) if v is not None) for e in active
                       if any(v is not None for v in e.timeline)]
        rank_latest, rank_slope = rules.Ranker(latest_vals), rules.Ranker(peer_slopes)
        for e in members:
            st: dict[str, Any] = {"peer_count": len(active), "suppressed": e.suppressed}
            simple_z, robust_z = [], []
            if not e.suppressed:
                for t, v in enumerate(e.timeline):
                    mu, sd, med, mad, n = per_period[t]
                    if v is None or n < MIN_PEER_COUNT:
                        continue
                    simple_z.append({"period": PERIODS[t],
                                     "zscore": round((v - mu) / max(sd, floor), 4)})
                    robust_z.append({"period": PERIODS[t],
                                     "zscore": round((v - med) / max(mad, mad_floor), 4)})
            pts = [(float(t), v) for t, v in enumerate(e.timeline) if v is not None]
            slope = slopes.get(id(e))
            half = len(PERIODS) // 2
            s1 = _ols([p for p in pts if p[0] < half])
            s2 = _ols([p for p in pts if p[0] >= half])
            wts = [float(e.monthly_encounters[int(x)] or 1) for x, _ in pts]
            scored = slope is not None and len(peer_slopes) >= MIN_PEER_COUNT and simple_z
            latest = pts[-1][1] if pts else None
            st.update(
                per_period_simple_zscores=simple_z, per_period_robust_zscores=robust_z,
                mean_simple_zscore=_mean_z(simple_z),
                latest_simple_zscore=simple_z[-1]["zscore"] if simple_z else None,
                mean_robust_zscore=_mean_z(robust_z),
                latest_robust_zscore=robust_z[-1]["zscore"] if robust_z else None,
                latest_period=simple_z[-1]["period"] if simple_z else None,
                observations=len(pts),
                percentile_rank=(rank_latest(latest)
                                 if latest is not None and scored else None),
                slope=_r(slope) if scored else None,
                slope_weighted=_r(_ols(pts, wts)) if scored else None,
                acceleration=_r(s2 - s1) if scored and s1 is not None and s2 is not None else None,
                end_start_delta=_r(pts[-1][1] - pts[0][1]) if scored else None,
                slope_percentile=rank_slope(slope) if scored else None,
                zscore_std=_r(rules.std([z["zscore"] for z in simple_z]), 4) if simple_z else None,
                max_abs_deviation=max((abs(z["zscore"]) for z in simple_z), default=None),
                coefficient_of_variation=(_r(rules.std([v for _, v in pts])
                                             / abs(rules.mean([v for _, v in pts])), 4)
                                          if len(pts) >= 2 and rules.mean([v for _, v in pts])
                                          else None),
            )
            if st["slope"] is None:
                st.update(trend_direction=None, momentum=None)
            else:
                eps = m.sd * 0.001
                st["trend_direction"] = ("increasing" if slope > eps else
                                         "decreasing" if slope < -eps else "stable")
                acc = st["acceleration"] or 0.0
                st["momentum"] = "gaining" if acc * slope > 0 else "slowing"
            e.stats = st
        pct: dict[str, list] = {k: [] for k in ("p10", "p25", "p50", "p75", "p90")}
        sizes = []
        for t in range(len(PERIODS)):
            vals = sorted(e.timeline[t] for e in active if e.timeline[t] is not None)
            sizes.append(len(vals))
            for k, q in (("p10", .1), ("p25", .25), ("p50", .5), ("p75", .75), ("p90", .9)):
                pct[k].append(_r(vals[min(len(vals) - 1, int(q * len(vals)))]) if vals else None)
        counts = {"record_count": sum(e.encounters for e in members),
                  "entity_count": len(members), "entity_with_statistics_count": len(active)}
        facets.append({"facet_values": dict(facet), "facet_counts": counts,
                       "percentile_trends": {"periods": list(PERIODS), **pct, "sample_sizes": sizes,
                                             "suppression_applied": len(active) < len(members)}})
    return facets


# --- JSON shapes ------------------------------------------------------------------------------

def _anomaly(method: str, method_set: str, kind: str, applies_to: str, value: float | None,
             tier: str) -> dict[str, Any]:
    rendered = ("No score (suppressed or too few peers)" if tier == "no_score"
                else f"{applies_to} {value} is {tier.replace('_', ' ')}")
    return {"anomaly_method": f"anomaly_method__{method}__{kind}__{method_set}",
            "anomaly": tier, "statistic_value": value, "applies_to": applies_to,
            "interpretation": {"template_id": f"{kind}_v1", "rendered": rendered}}


def _profile(method: str, method_set: str, methods: list[dict]) -> list[dict]:
    return [{"anomaly_profile": f"anomaly_profiles__{method}__{method_set}", "methods": methods}]


def _runtime(st: dict[str, Any], tiers: list[str]) -> dict[str, Any]:
    sev = [t for t in tiers if t.startswith(("extremely", "very"))]
    return {"status": "suppressed" if st.get("suppressed") else "ok",
            "summary": {"has_issues": bool(sev), "highest_severity": sev[0] if sev else None,
                        "severity_counts": {t: tiers.count(t) for t in sorted(set(tiers))}},
            "issues": [], "anomaly_statistics": {"peer_count": st["peer_count"]}}


def aggregate_methods(e: Entity) -> list[dict[str, Any]]:
    s = e.stats
    out = []
    for method, zkey, extra in (
        ("simple_zscore", "simple_zscore",
         {"peer_mean": s["peer_mean"], "peer_std": s["peer_std"],
          "percentile_rank": s["percentile_rank"]}),
        ("robust_zscore", "robust_zscore",
         {"peer_median": s["peer_median"], "peer_mad": s["peer_mad"], "winsor_applied": False}),
    ):
        tier = rules.zscore_tier(s[zkey])
        out.append({
            "statistical_method": method_id(method, AGG),
            "statistics": {zkey: s[zkey], **extra, "suppressed": s["suppressed"]},
            "anomalies": _profile(method, AGG, [_anomaly(method, AGG, f"{method}_threshold", zkey,
                                                         s[zkey], tier)]),
            "runtime": _runtime(s, [tier]),
        })
    return out


def temporal_methods(e: Entity) -> list[dict[str, Any]]:
    s = e.stats
    out = []
    for kind in ("simple", "robust"):
        method = f"trending_{kind}_zscore"
        latest, mean_ = s[f"latest_{kind}_zscore"], s[f"mean_{kind}_zscore"]
        tiers = [rules.zscore_tier(latest), rules.zscore_tier(mean_)]
        stats = {f"mean_{kind}_zscore": mean_, f"latest_{kind}_zscore": latest,
                 "latest_period": s["latest_period"], "observations": s["observations"],
                 "periods": len(PERIODS),
                 f"per_period_{kind}_zscores": s[f"per_period_{kind}_zscores"],
                 "suppressed": s["suppressed"]}
        if kind == "simple":
            stats["percentile_rank"] = s["percentile_rank"]
        out.append({
            "statistical_method": method_id(method, TREND_SET), "statistics": stats,
            "anomalies": _profile(method, TREND_SET, [
                _anomaly(method, TREND_SET, f"{kind}_zscore_threshold", f"latest_{kind}_zscore",
                         latest, tiers[0]),
                _anomaly(method, TREND_SET, f"mean_{kind}_zscore_threshold", f"mean_{kind}_zscore",
                         mean_, tiers[1])]),
            "runtime": _runtime(s, tiers),
        })
    tier = rules.slope_tier(s["slope_percentile"])
    out.append({
        "statistical_method": method_id("slope_percentile", TREND_SET),
        "statistics": {k: s[k] for k in ("slope", "slope_weighted", "acceleration",
                                         "end_start_delta", "trend_direction", "momentum",
                                         "percentile_rank", "slope_percentile", "suppressed")}
        | {"period_count": s["observations"]},
        "anomalies": _profile("slope_percentile", TREND_SET, [
            _anomaly("slope_percentile", TREND_SET, "percentile_threshold", "slope_percentile",
                     s["slope_percentile"], tier)]),
        "runtime": _runtime(s, [tier]),
    })
    return out


def entity_line(e: Entity, metric: str, temporal: bool) -> dict[str, Any]:
    f = e.facility
    values: Any = ({"timeline": [{"period": p, "value": v} for p, v in zip(PERIODS, e.timeline,
                                                                        strict=True)]}
                   if temporal else e.value)
    meta: dict[str, Any] = {"encounters": e.encounters, "systemName": f.system_name,
                            "facility": f.name, "uniquePatients": int(e.encounters * 0.93),
                            "losOutliers": e.encounters // 40}
    if temporal:
        meta["per_period"] = [{"period": p, "encounters": n}
                              for p, n in zip(PERIODS, e.monthly_encounters, strict=True)]
    return {
        "entity": [{"id": k, "value": v, "dataset_field": k} for k, v in e.dims.items()],
        "metric": [{"metadata": {"metric_id": metric}, "values": values}],
        "metadata": meta,
        "statistical_methods": temporal_methods(e) if temporal else aggregate_methods(e),
    }


def node_metadata(nid: str, metric: str, groupby: tuple[str, ...], temporal: bool,
                  facets: list[dict], children: list[tuple[str, str]],
                  parents: list[tuple[str, str]], count: int) -> dict[str, Any]:
    if temporal:
        methods = [{"statistical_method": method_id(f"trending_{k}_zscore", TREND_SET),
                    "summary": {"global_statistics": {
                        "group_by_columns": list(groupby),
                        "facets": [{"facet_values": fa["facet_values"],
                                    "facet_counts": fa["facet_counts"],
                                    "method_statistics": {"min_peer_count": MIN_PEER_COUNT}}
                                   for fa in facets],
                        **({"percentile_trends": facets[0]["percentile_trends"]}
                           if k == "robust" and len(facets) == 1 else {})}}}
                   for k in ("simple", "robust")]
        methods.append({"statistical_method": method_id("slope_percentile", TREND_SET),
                        "summary": {"global_statistics": {"group_by_columns": list(groupby),
                                                          "facets": []}}})
    else:
        methods = [{"statistical_method": method_id(f"{k}_zscore", AGG),
                    "summary": {"global_statistics": {
                        "group_by_columns": list(groupby),
                        "facets": [{"facet_values": fa["facet_values"],
                                    "facet_counts": fa["facet_counts"],
                                    "method_statistics": fa[k]} for fa in facets]}}}
                   for k in ("simple", "robust")]
    return {
        "type": "node_metadata", "canonical_node_id": nid,
        "canonical_child_node_ids": [{"id": i, "edge_type": t} for i, t in children],
        "canonical_parent_node_ids": [{"id": i, "edge_type": t} for i, t in parents],
        "metric_id": metric, "dataset_path": DATASET_PATH,
        "summary": {"entity_scope": {"display_name": " x ".join(groupby),
                                     "comparison_group": COMPARISON_GROUP}},
        "statistical_methods": methods,
        "entity_results_count": count,
        "entity_results_path": f"results/nodes/{nid}.jsonl",
    }


def classification(e: Entity, temporal: Entity | None, nid: str, metric: str, run_id: str
                   ) -> dict[str, Any]:
    """The simplified_v1 classification of one aggregate entity (its own rules, see notes)."""
    s = e.stats
    t = temporal.stats if temporal else {}
    z = s.get("simple_zscore")
    sp = t.get("slope_percentile")
    zstd, mad = t.get("zscore_std"), t.get("max_abs_deviation")
    periods = t.get("observations", 0)
    suppressed = bool(s.get("suppressed")) or z is None
    position = trend = momentum = None
    signal, severity, rng_ = None, None, None
    if not suppressed:
        position = ("elevated" if z >= 2 else "marginal" if z >= 1 else "normal" if z > -1
                    else "favorable" if z > -2 else "excellent")
        trend = (None if sp is None else "rapidly_worsening" if sp >= 90 else "worsening"
                 if sp >= 70 else "stable" if sp > 30 else "improving" if sp > 10
                 else "rapidly_improving")
        acc = t.get("acceleration")
        momentum = (None if acc is None else "accelerating" if acc > 0 else "decelerating"
                    if acc < 0 else "neutral")
        consistency = "consistent" if zstd is not None and zstd < 0.9 else "variable"
        spike = mad is not None and mad > 3
        if mad is not None and mad > 4.5:
            signal = "suspect_data"
        elif z >= 2 and trend in ("worsening", "rapidly_worsening"):
            signal = "critical_trajectory"
        elif z >= 2:
            signal = "chronic_underperformer"
        elif z >= 1 and trend in ("improving", "rapidly_improving"):
            signal = "recovering"
        elif z >= 1 or trend == "rapidly_worsening":
            signal = "emerging_risk"
        elif z <= -2 and trend in ("stable", "improving", "rapidly_improving"):
            signal = "sustained_excellence"
        elif z <= -1 and trend in ("improving", "rapidly_improving"):
            signal = "improving_leader"
        elif consistency == "variable" and spike:
            signal = "volatility_alert"
        else:
            signal = "baseline"
        lo, hi = rules.SEVERITY_RANGES[signal]
        severity = lo + round((hi - lo) * min(1.0, abs(z) / 4))
        rng_ = [lo, hi]
    entity_key = dict(e.dims)
    entity_key["systemName"] = e.facility.system_name
    return {
        "classification_version": "simplified_v1", "run_id": run_id, "node_id": nid,
        "entity_key": entity_key, "metric_id": metric, "signal_type": signal,
        "severity": severity, "severity_range": rng_,
        "inputs": {"aggregate_zscore": z, "slope_percentile": sp,
                   "acceleration": t.get("acceleration"), "zscore_std": zstd,
                   "max_abs_deviation": mad},
        "derived_indicators": {"position": position, "trend": trend, "momentum": momentum,
                               "consistency": None if suppressed else consistency,
                               "has_spike": None if suppressed else spike},
        "classification_reasoning": None if suppressed else f"{position} position, {trend} trend",
        "severity_calculation": None if suppressed else {"base": lo, "range": hi - lo,
                                                         "magnitude": abs(z)},
        "suppressed": suppressed, "period_count": periods,
        "magnitude_tier": rules.magnitude_tier(s.get("percentile_rank")),
        "trajectory_tier": rules.trajectory_tier(sp),
        "consistency_tier": rules.consistency_tier(zstd, periods),
        "coefficient_of_variation": t.get("coefficient_of_variation"),
    }


def contribution_lines(parent: Entity, children: list[Entity], pnode: str, cnode: str,
                       metric: str, run_id: str, stamp: str):
    total = sum(c.encounters for c in children)
    for c in children:
        share = round(c.encounters / total, 8)
        yield {
            "run_id": run_id, "parent_node_id": pnode,
            "parent_node_file": f"results/nodes/{pnode}.jsonl", "parent_entity": parent.dims,
            "child_node_id": cnode, "child_node_file": f"results/nodes/{cnode}.jsonl",
            "child_entity": c.dims, "metric_id": metric, "method": "weighted_mean",
            "child_value": c.value, "parent_value": parent.value, "weight_field": "encounters",
            "weight_value": c.encounters, "weight_share": share,
            "weighted_child_value": _r(share * c.value, 8),
            "contribution_value": _r(share * (c.value - parent.value), 8),
            "raw_component": _r(share * c.value, 8),
            "excess_over_parent": _r(share * (c.value - parent.value), 8),
            "parent_statistics": {"simple_zscore": parent.stats.get("simple_zscore"),
                                  "peer_mean": parent.stats.get("peer_mean")},
            "assumptions": ["parent value is the encounter-weighted mean of its children"],
            "fallbacks": [], "missing_inputs": [],
            "dataset_row_locator": {"dataset_path": DATASET_PATH, "filters": c.dims},
            "timestamp": stamp,
        }


def _dump(fh, obj: dict[str, Any]) -> None:
    fh.write(orjson.dumps(obj))
    fh.write(b"\n")


def generate(cfg: GenerateConfig) -> GenerateResult:
    run_id = cfg.resolved_run_id()
    run_dir = Path(cfg.out) / run_id
    nodes_dir = run_dir / "results" / "nodes"
    contrib_dir = run_dir / "analysis" / "contribution"
    class_dir = run_dir / "analysis" / "classification"
    model_dir = run_dir / "modeling"
    for d in (nodes_dir, contrib_dir, class_dir, model_dir):
        d.mkdir(parents=True, exist_ok=True)
    stamp = datetime.strptime(run_id, "%Y%m%d%H%M%S").replace(tzinfo=timezone.utc).isoformat()
    facilities = make_facilities(cfg)
    rows = files = n_contrib = n_class = 0

    with open(class_dir / "classifications.jsonl", "wb") as cls_fh:
        for m in METRICS:
            ents = build_metric_entities(cfg, m, facilities)
            ids = {(g, gr): node_id(m.metric_id, GROUPBYS[g], gr)
                   for g in GROUPBYS for gr in (AGG, MONTHLY)}
            # Temporal copies share dims and values but get their own statistics.
            temporal = {g: [Entity(e.dims, e.facility, e.encounters, e.value, e.timeline,
                                   e.monthly_encounters) for e in ents[g]]
                        for g in ("facility", "service_line")}
            plan = [
                ("facility", AGG, ents["facility"],
                 [(ids["facility", MONTHLY], "trends_to"),
                  (ids["service_line", AGG], "segments_into"),
                  (ids["discharge", AGG], "potentially_driven_by")], []),
                ("facility", MONTHLY, temporal["facility"], [],
                 [(ids["facility", AGG], "trends_to")]),
                ("service_line", AGG, ents["service_line"],
                 [(ids["service_line", MONTHLY], "trends_to")],
                 [(ids["facility", AGG], "segments_into")]),
                ("service_line", MONTHLY, temporal["service_line"], [],
                 [(ids["service_line", AGG], "trends_to")]),
                ("discharge", AGG, ents["discharge"], [],
                 [(ids["facility", AGG], "potentially_driven_by")]),
            ]
            for g, grain, members, children, parents in plan:
                is_t = grain == MONTHLY
                facets = temporal_stats(m, members) if is_t else aggregate_stats(m, members)
                nid = ids[g, grain]
                with open(nodes_dir / f"{nid}.jsonl", "wb") as fh:
                    _dump(fh, node_metadata(nid, m.metric_id, GROUPBYS[g], is_t, facets,
                                            children, parents, len(members)))
                    for e in members:
                        _dump(fh, entity_line(e, m.metric_id, is_t))
                        if is_t:  # keep what the classification needs, not the per-period lists
                            e.stats = {k: e.stats.get(k) for k in CLASSIFY_KEYS}
                rows += len(members)
                files += 1
            for g in ("facility", "service_line"):
                by_dims = {tuple(e.dims.items()): e for e in temporal[g]}
                for e in ents[g]:
                    _dump(cls_fh, classification(e, by_dims.get(tuple(e.dims.items())),
                                                 ids[g, AGG], m.metric_id, run_id))
                    n_class += 1
            children_of: dict[str, list[Entity]] = defaultdict(list)
            for c in ents["service_line"]:
                children_of[c.dims["medicareId"]].append(c)
            with open(contrib_dir / f"{m.metric_id}__weighted_mean.jsonl", "wb") as fh:
                for p in ents["facility"]:
                    for line in contribution_lines(p, children_of[p.dims["medicareId"]],
                                                   ids["facility", AGG], ids["service_line", AGG],
                                                   m.metric_id, run_id, stamp):
                        _dump(fh, line)
                        n_contrib += 1

    groups = [m.metric_id for m in METRICS]
    (model_dir / "run_summary.json").write_bytes(orjson.dumps({
        "run_id": run_id, "config_path": "configs/modeling/quality_compass.yaml",
        "status": "completed", "groups": groups, "run_dir": f"modeling/{run_id}",
        "duration_seconds": round(3.5 + len(facilities) * 0.01, 3)}, option=orjson.OPT_INDENT_2))
    rng = random.Random(f"{cfg.seed}|modeling")
    experiments = []
    for metric in groups:
        for est in ("lightgbm", "ridge"):
            r2 = round(rng.uniform(0.2, 0.8), 4)
            capped = rng.randint(0, 20)
            experiments.append({
                "run_id": run_id, "config_path": "configs/modeling/quality_compass.yaml",
                "groupby_label": "metric", "group_value": metric, "estimator": est,
                "scoring": "neg_mean_absolute_error", "n_iter": 20, "random_state": cfg.seed,
                "dataset_path": DATASET_PATH, "row_count": rows,
                "duration_seconds": round(rng.uniform(1, 30), 3),
                "mae": round(rng.uniform(0.05, 0.3), 4), "rmse": round(rng.uniform(0.1, 0.4), 4),
                "r2": r2, "tuning_random_state": cfg.seed + 1,
                "mae_original": round(rng.uniform(0.05, 0.3), 4),
                "rmse_original": round(rng.uniform(0.1, 0.4), 4),
                "r2_original": round(r2 - rng.uniform(0, 0.05), 4), "inverse_cap": 3.0,
                "capped_pred_count": capped,
                "capped_pred_fraction": round(capped / max(rows, 1), 6),
                "artifacts": {k: f"modeling/{metric}/{est}/{k}.{ext}" for k, ext in ARTIFACTS},
            })
    (model_dir / "experiments.json").write_bytes(orjson.dumps(experiments,
                                                              option=orjson.OPT_INDENT_2))
    return GenerateResult(run_dir, run_id, len(facilities), rows, files, n_contrib, n_class)
