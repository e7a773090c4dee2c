"""Small statistics helpers: percentiles of raw samples and of weighted quantile sketches."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence


def percentile(sorted_values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of already sorted values (p in 0..100)."""
    if not sorted_values:
        return math.nan
    k = max(0, min(len(sorted_values) - 1, math.ceil(p / 100.0 * len(sorted_values)) - 1))
    return float(sorted_values[k])


def summarize(values: Iterable[float]) -> dict[str, float]:
    """n, mean, p50, p90, p99, p99.9, max of raw samples."""
    v = sorted(values)
    if not v:
        return {"n": 0}
    return {
        "n": len(v),
        "mean": sum(v) / len(v),
        "p50": percentile(v, 50),
        "p90": percentile(v, 90),
        "p99": percentile(v, 99),
        "p999": percentile(v, 99.9),
        "max": v[-1],
    }


def weighted_percentile(pairs: Sequence[tuple[float, float]], p: float) -> float:
    """Percentile of (value, weight) pairs."""
    items = sorted(pairs)
    total = sum(w for _, w in items)
    if total <= 0:
        return math.nan
    target = p / 100.0 * total
    acc = 0.0
    for value, weight in items:
        acc += weight
        if acc >= target - 1e-9:
            return float(value)
    return float(items[-1][0])


def merge_quantiles(runs: Sequence[tuple[Sequence[float], float]]) -> list[tuple[float, float]]:
    """Turn several runs, each given as (evenly spaced quantile values, request count), into
    one weighted sample whose percentiles approximate those of all requests together."""
    pairs: list[tuple[float, float]] = []
    for qs, count in runs:
        if not qs or count <= 0:
            continue
        w = count / len(qs)
        pairs.extend((q, w) for q in qs)
    return pairs


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0 or math.isnan(a) or math.isnan(b):
        return None
    return a / b
