"""Paired comparison of two configurations on the same queries.

Gains from TempScale with small models are a few percent and test collections are small, so a difference of
means alone says little: each comparison carries a paired bootstrap interval on the mean difference and the
p-value of a paired randomization (sign-flip permutation) test, the test IR evaluation recommends
(Smucker et al., CIKM 2007). Both come from scipy.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class PairedComparison:
    """Configuration B against configuration A on one measure; differences are B − A."""

    measure: str
    mean_a: float
    mean_b: float
    mean_diff: float
    ci_low: float
    ci_high: float
    p_value: float
    n_queries: int
    relative_change: float
    confidence_level: float = 0.95

    def significant(self, alpha: float = 0.05) -> bool:
        return self.p_value < alpha

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def paired_comparison(
    per_query_a: Mapping[str, Mapping[str, float]],
    per_query_b: Mapping[str, Mapping[str, float]],
    measure: str,
    n_resamples: int = 10000,
    seed: int = 0,
    confidence_level: float = 0.95,
) -> PairedComparison:
    """Compare ``measure`` between two ``score_run`` results over the same queries.

    The interval is a percentile bootstrap of the mean per-query difference (queries resampled with their
    pairing kept); the p-value is two-sided, from a randomization test that swaps A and B within each query.
    """
    if set(per_query_a) != set(per_query_b):
        only_a, only_b = set(per_query_a) - set(per_query_b), set(per_query_b) - set(per_query_a)
        raise ValueError(
            f"paired comparison needs the same queries on both sides: {len(only_a)} only in A "
            f"{sorted(only_a)[:3]}, {len(only_b)} only in B {sorted(only_b)[:3]}"
        )
    if not per_query_a:
        raise ValueError("paired comparison needs at least one query")
    query_ids = sorted(per_query_a)
    try:
        a = np.array([per_query_a[query_id][measure] for query_id in query_ids], dtype=float)
        b = np.array([per_query_b[query_id][measure] for query_id in query_ids], dtype=float)
    except KeyError:
        raise KeyError(f"measure {measure!r} is missing from the per-query scores") from None
    diff = b - a
    rng = np.random.default_rng(seed)
    if len(diff) > 1 and np.ptp(diff) > 0:
        interval = stats.bootstrap(
            (diff,),
            np.mean,
            n_resamples=n_resamples,
            confidence_level=confidence_level,
            method="percentile",
            rng=rng,
        ).confidence_interval
        ci_low, ci_high = float(interval.low), float(interval.high)
    else:  # every query moved by the same amount (often 0): a resample is always the same mean
        ci_low = ci_high = float(diff.mean())
    if np.any(diff != 0):
        p_value = float(
            stats.permutation_test(
                (b, a),
                _mean_difference,
                permutation_type="samples",
                vectorized=True,
                n_resamples=n_resamples,
                alternative="two-sided",
                rng=rng,
            ).pvalue
        )
    else:
        p_value = 1.0
    mean_a, mean_b = float(a.mean()), float(b.mean())
    return PairedComparison(
        measure=measure,
        mean_a=mean_a,
        mean_b=mean_b,
        mean_diff=mean_b - mean_a,
        ci_low=ci_low,
        ci_high=ci_high,
        p_value=p_value,
        n_queries=len(query_ids),
        relative_change=(mean_b - mean_a) / mean_a if mean_a else math.nan,
        confidence_level=confidence_level,
    )


def _mean_difference(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(x - y, axis=axis)
