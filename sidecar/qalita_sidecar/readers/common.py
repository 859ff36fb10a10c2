"""What the dbt, Soda, Airbyte and Dagster readers share: dates, scores, counts and schema entries.

Pure functions, no I/O: each reader turns its tool's record of a run into one Shipment with them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import datetime, timezone
from decimal import ROUND_HALF_UP, Decimal
from typing import TypeGuard

from qalita_sidecar.shipment import Metric, SchemaEntry, Scope

QALITA_DATE = "%Y-%m-%d %H:%M:%S"
# Outcomes counted in a score (dbt's rule: passed / (passed + failed + warned + errored)).
SCORED = ("passed", "failed", "warned", "errored")


def qalita_date(value: str | int | float | datetime | None, default: str | None = None) -> str:
    """A timestamp as QALITA's `YYYY-MM-DD HH:MM:SS` in UTC.

    Accepts ISO 8601 strings (with `Z` or an offset; naive means UTC), epoch seconds or
    milliseconds (Airbyte's tutorial payload uses milliseconds), and datetimes.
    """
    if value is None or value == "":
        if default is None:
            raise ValueError("no timestamp")
        return default
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        seconds = value / 1000.0 if value > 1e11 else float(value)  # > 1e11 s is year 5138
        moment = datetime.fromtimestamp(seconds, tz=timezone.utc)
    else:
        text = str(value).strip()
        if text.endswith("Z"):
            text = text[:-1] + "+00:00"
        moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).strftime(QALITA_DATE)


def now_date() -> str:
    return datetime.now(timezone.utc).strftime(QALITA_DATE)


def score_of(passed: int, scored: int) -> str | None:
    """passed / scored as a 2-decimal string, the one score rule of every reader.

    Rounded half-up to the hundredth, as QALITA's own packs round theirs (13/15 -> "0.87"), except
    that "1.00" only ever means every scored outcome passed: anything less is capped at "0.99".
    None when nothing was evaluated (no evidence is not a perfect score).
    """
    if scored <= 0:
        return None
    value = (Decimal(passed) / Decimal(scored)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    if passed < scored:
        value = min(value, Decimal("0.99"))
    return str(value)


def score(counts: Counter[str]) -> str | None:
    """The score of outcome counts: passed / (passed + failed + warned + errored)."""
    return score_of(counts["passed"], sum(counts[o] for o in SCORED))


def count_metrics(prefix: str, counts: Counter[str], scope: Scope,
                  outcomes: Iterable[str] = SCORED) -> list[Metric]:
    """`<prefix>_passed`, `<prefix>_failed`, ... as ints, then `score` when there is one."""
    metrics = [Metric(f"{prefix}_{o}", int(counts[o]), scope) for o in outcomes]
    value = score(counts)
    if value is not None:
        metrics.append(Metric("score", value, scope))
    return metrics


def schema_entries(scopes: Iterable[Scope]) -> tuple[SchemaEntry, ...]:
    """One entry per distinct scope, parents first, in first-seen order (QALITA wants every scope
    that a metric or recommendation uses).

    A column names its dataset without the dataset's own parent (as QALITA's packs write it): that
    dataset is listed once, in its full form, before the column."""
    scopes = list(scopes)
    full: dict[str, Scope] = {}
    for scope in scopes:
        node: Scope | None = scope
        while node is not None:
            if node.perimeter == "dataset" and node.parent is not None:
                full.setdefault(node.value, node)
            node = node.parent
    seen: dict[Scope, None] = {}

    def add(scope: Scope) -> None:
        if scope.perimeter == "dataset" and scope.parent is None:
            scope = full.get(scope.value, scope)
        if scope.parent is not None:
            add(scope.parent)
        seen.setdefault(scope, None)

    for scope in scopes:
        add(scope)
    return tuple(SchemaEntry(s.perimeter, s.value, s) for s in seen)


def is_number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)
