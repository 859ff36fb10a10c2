"""What the Compass marts must contain, recomputed in Python from a generated run folder.

Independent of the SQL: it reads the raw JSON lines the loader loads, and applies the rules of
the data model (docs/compass.md) written out again here, not imported from the product.
"""

from __future__ import annotations

import csv
import json
import math
from collections import defaultdict
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]

# Each tier interval is closed at its upper end: z <= -3 is extremely_low, -3 < z <= -2 very_low...
Z_TIERS = ((-3.0, "extremely_low"), (-2.0, "very_low"), (-1.0, "moderately_low"),
           (-0.5, "slightly_low"), (0.5, "normal"), (1.0, "slightly_high"),
           (2.0, "moderately_high"), (3.0, "very_high"))
SEVERITY = {"extremely_high": "Critical", "extremely_low": "Critical", "very_high": "High",
            "very_low": "High", "moderately_high": "Moderate", "moderately_low": "Moderate",
            "slightly_high": "Watch", "slightly_low": "Watch"}
DIMENSION_LABELS = {"vizientServiceLine": "Service Line", "vizientSubServiceLine": "Sub-Service Line",
                    "admissionSource": "Admission Source", "dischargeStatus": "Discharge Status",
                    "primaryPayer": "Primary Payer", "patientAge": "Patient Age",
                    "patientGender": "Patient Gender"}
NOT_DIMENSIONS = ("medicareId", "systemName")


def zscore_tier(z: float | None) -> str:
    if z is None:
        return "no_score"
    for upper, tier in Z_TIERS:
        if z <= upper:
            return tier
    return "extremely_high"


def severity(tier: str | None) -> str | None:
    return SEVERITY.get(tier or "")


def round_half_up(x: float, places: int) -> float:
    return float(Decimal(repr(x)).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP))


def dimensions(fields: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in fields.items() if k not in NOT_DIMENSIONS}


def groupby_label(dims: dict[str, str]) -> str:
    if not dims:
        return "Facility-wide"
    return " / ".join(DIMENSION_LABELS.get(k, k.replace("_", " ").title()) for k in sorted(dims))


def group_value(dims: dict[str, str]) -> str:
    return " / ".join(dims[k] for k in sorted(dims)) if dims else "Facility-wide"


def metric_domain(metric_id: str, catalog: dict[str, dict[str, str]]) -> str:
    """The catalogue's domain, else substring rules on the id (first match wins)."""
    if metric_id in catalog:
        return catalog[metric_id]["domain"]
    m = metric_id.lower()
    rules = ((("los", "length of stay", "lengthofstay"), "Efficiency"),
             (("readmission", "readmit"), "Effectiveness"),
             (("mortality", "death", "infection", "sepsis", "fall"), "Safety"),
             (("cost", "charge", "wait", "throughput"), "Efficiency"))
    for needles, domain in rules:
        if any(n in m for n in needles):
            return domain
    return "Other"


def metric_catalog() -> dict[str, dict[str, str]]:
    with open(REPO / "seeds" / "metric_catalog.csv", newline="") as fh:
        return {row["metric_id"]: row for row in csv.DictReader(fh)}


def _key(node: str, fields: dict[str, str]) -> tuple:
    return node, tuple(sorted(dimensions(fields).items())), fields.get("medicareId")


@dataclass(frozen=True)
class Signal:
    node: str
    facility_id: str
    dims: tuple[tuple[str, str], ...]
    metric_id: str
    metric_value: float
    z_score: float | None
    robust_zscore: float | None
    anomaly_classification: str
    severity: str | None
    direction: str | None
    benchmark: float
    variance_percent: float | None
    groupby_label: str
    group_value: str
    domain: str
    signal_type: str
    slope_percentile: float | None
    trend_direction: str | None


@dataclass(frozen=True)
class Contribution:
    parent_node: str
    child_node: str
    parent_facility: str
    child_service_line: str | None
    metric_id: str
    weight_share: float
    contribution_weight: float
    direction: str
    pct: float
    rank: int


def _lines(path: Path) -> list[dict]:
    with open(path, "rb") as fh:
        return [json.loads(line) for line in fh if line.strip()]


class Run:
    """A generated run folder, read the way the loader reads it."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.nodes: dict[str, dict] = {}
        self.entities: dict[tuple, dict] = {}  # (node, dims, facility) -> entity line
        for path in sorted((run_dir / "results" / "nodes").glob("*.jsonl")):
            meta, *lines = _lines(path)
            self.nodes[meta["canonical_node_id"]] = meta
            for line in lines:
                fields = {f["id"]: f["value"] for f in line["entity"]}
                self.entities[_key(meta["canonical_node_id"], fields)] = line
        self.classifications = _lines(run_dir / "analysis" / "classification"
                                      / "classifications.jsonl")
        self.contributions = [c for p in sorted((run_dir / "analysis" / "contribution")
                                                .glob("*.jsonl")) for c in _lines(p)]

    @staticmethod
    def methods(line: dict) -> dict[str, dict]:
        return {m["statistical_method"].split("__")[1]: m["statistics"]
                for m in line["statistical_methods"]}

    def peer_mean(self, node: str, dims: tuple) -> float:
        """Mean value of the scored peers (not suppressed) of one facet of a node."""
        values = [line["metric"][0]["values"] for (n, d, _f), line in self.entities.items()
                  if n == node and d == dims
                  and not self.methods(line)["simple_zscore"].get("suppressed")]
        return sum(values) / len(values)

    def temporal_node(self, node: str) -> str | None:
        for child in self.nodes[node]["canonical_child_node_ids"]:
            if child["edge_type"] == "trends_to" and child["id"].split("__")[2] != "aggregate_time_period":
                return child["id"]
        return None

    def signals(self) -> dict[tuple, Signal]:
        catalog = metric_catalog()
        out: dict[tuple, Signal] = {}
        for c in self.classifications:
            if c.get("suppressed") or c.get("signal_type") is None:
                continue
            key = _key(c["node_id"], c["entity_key"])
            line = self.entities[key]
            stats = self.methods(line)
            if any(s.get("suppressed") for s in stats.values()):
                continue
            z = stats["simple_zscore"]["simple_zscore"]
            tier = zscore_tier(z)
            value = line["metric"][0]["values"]
            bench = self.peer_mean(c["node_id"], key[1])
            temporal = self.temporal_node(c["node_id"])
            t_line = self.entities.get((temporal, key[1], key[2])) if temporal else None
            slope = self.methods(t_line)["slope_percentile"] if t_line else {}
            dims = dict(key[1])
            out[key] = Signal(
                node=c["node_id"], facility_id=key[2], dims=key[1], metric_id=c["metric_id"],
                metric_value=value, z_score=z, robust_zscore=stats["robust_zscore"]["robust_zscore"],
                anomaly_classification=tier, severity=severity(tier),
                direction=None if not z else ("above" if z > 0 else "below"),
                benchmark=bench,
                variance_percent=(round_half_up((value - bench) / bench * 100, 2) if bench else None),
                groupby_label=groupby_label(dims), group_value=group_value(dims),
                domain=metric_domain(c["metric_id"], catalog), signal_type=c["signal_type"],
                slope_percentile=slope.get("slope_percentile"),
                trend_direction=slope.get("trend_direction"))
        return out

    def contribution_rows(self) -> dict[tuple, Contribution]:
        parents: dict[tuple, list[dict]] = defaultdict(list)
        for c in self.contributions:
            parents[(c["parent_node_id"], c["parent_entity"]["medicareId"],
                     c["parent_entity"].get("vizientServiceLine"), c["metric_id"])].append(c)
        out: dict[tuple, Contribution] = {}
        for (pnode, pfac, _psl, metric), children in parents.items():
            total_weight = sum(c["weight_value"] for c in children)
            total_share = sum(c["weight_share"] for c in children)
            weights = []
            for c in children:
                # recomputed from the weights, not read: the file's share must agree with it
                share = c["weight_value"] / total_weight
                assert math.isclose(share, c["weight_share"], abs_tol=1e-7), c
                excess = share * (c["child_value"] - c["parent_value"])
                assert math.isclose(excess, c["excess_over_parent"], rel_tol=1e-6, abs_tol=1e-6), c
                weights.append((abs(c["excess_over_parent"]) * c["weight_share"], c))
            ranked = sorted(weights, key=lambda wc: -wc[0])
            for rank, (weight, c) in enumerate(ranked, start=1):
                excess = c["excess_over_parent"]
                key = (c["child_node_id"], c["child_entity"]["medicareId"],
                       c["child_entity"].get("vizientServiceLine"), metric)
                out[key] = Contribution(
                    parent_node=pnode, child_node=c["child_node_id"], parent_facility=pfac,
                    child_service_line=c["child_entity"].get("vizientServiceLine"),
                    metric_id=metric, weight_share=c["weight_share"], contribution_weight=weight,
                    direction="positive" if excess > 0 else "negative" if excess < 0 else "neutral",
                    pct=round_half_up(c["weight_share"] / total_share * 100, 2), rank=rank)
        return out
