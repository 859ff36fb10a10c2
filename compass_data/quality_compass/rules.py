"""Tier and classification rules the generator applies (docs/compass.md).

The engine that normally applies them is not part of this repository: these are the documented
boundaries. The pytest suite recomputes them on its own, so a change here must be deliberate.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence

TIERS = ("extremely_low", "very_low", "moderately_low", "slightly_low", "normal",
         "slightly_high", "moderately_high", "very_high", "extremely_high")
# Z-score cut points; each tier interval is closed at its upper end: (lo, hi].
Z_CUTS = (-3.0, -2.0, -1.0, -0.5, 0.5, 1.0, 2.0, 3.0)
# Slope-percentile cut points; intervals are closed at their lower end: [lo, hi).
SLOPE_CUTS = (5.0, 10.0, 20.0, 40.0, 60.0, 80.0, 90.0, 95.0)

SIGNAL_TYPES = ("suspect_data", "sustained_excellence", "improving_leader", "baseline",
                "emerging_risk", "volatility_alert", "recovering", "chronic_underperformer",
                "critical_trajectory")
# Severity range per signal type (0-100). The fixture's observed ranges where known.
SEVERITY_RANGES = {
    "sustained_excellence": (5, 20), "improving_leader": (13, 25), "baseline": (26, 59),
    "suspect_data": (50, 50), "recovering": (40, 60), "volatility_alert": (55, 75),
    "emerging_risk": (60, 70), "chronic_underperformer": (81, 90),
    "critical_trajectory": (85, 100),
}


def zscore_tier(z: float | None) -> str:
    if z is None:
        return "no_score"
    for cut, tier in zip(Z_CUTS, TIERS, strict=False):
        if z <= cut:
            return tier
    return TIERS[-1]


def slope_tier(p: float | None) -> str:
    if p is None:
        return "no_score"
    for cut, tier in zip(SLOPE_CUTS, TIERS, strict=False):
        if p < cut:
            return tier
    return TIERS[-1]


def magnitude_tier(percentile_rank: float | None) -> str | None:
    if percentile_rank is None:
        return None
    for floor, tier in ((99, "critical"), (95, "severe"), (85, "elevated"), (75, "marginal"),
                        (25, "expected"), (10, "favorable")):
        if percentile_rank >= floor:
            return tier
    return "excellent"


def trajectory_tier(slope_percentile: float | None) -> str | None:
    if slope_percentile is None:
        return None
    for floor, tier in ((90, "rapidly_deteriorating"), (70, "deteriorating"), (30, "stable"),
                        (10, "improving")):
        if slope_percentile >= floor:
            return tier
    return "rapidly_improving"


def consistency_tier(zscore_std: float | None, period_count: int) -> str:
    if period_count < 3 or zscore_std is None or zscore_std > 1.10:
        return "transient"
    if zscore_std < 0.90 and period_count >= 6:
        return "persistent"
    return "variable"


def mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


def std(values: Sequence[float]) -> float:
    """Population standard deviation (0 for fewer than two values)."""
    if len(values) < 2:
        return 0.0
    m = mean(values)
    return math.sqrt(sum((v - m) ** 2 for v in values) / len(values))


def median(values: Sequence[float]) -> float:
    s = sorted(values)
    n = len(s)
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2


def percentile_rank(value: float, peers: Sequence[float]) -> float:
    """Share of peers below the value, ties counted half, in percent (0-100)."""
    return Ranker(peers)(value)


class Ranker:
    """percentile_rank against one fixed peer set, in O(log n) per value: a facet can hold
    thousands of peers and every one of them is ranked."""

    def __init__(self, peers: Sequence[float]) -> None:
        self._sorted = sorted(peers)

    def __call__(self, value: float) -> float:
        below = bisect.bisect_left(self._sorted, value)
        equal = bisect.bisect_right(self._sorted, value) - below
        return round(100.0 * (below + 0.5 * equal) / len(self._sorted), 4)
