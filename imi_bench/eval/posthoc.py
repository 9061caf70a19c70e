"""Rank-based post-hoc tests: the Conover–Iman pairwise test and Holm's step-down adjustment.

Both are implemented here (no statsmodels or scikit-posthocs dependency) and tested against
hand-worked cases and independent computations in ``tests/test_report.py``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from scipy import stats

__all__ = ["conover_iman", "holm", "kruskal_h"]


def holm(p_values: ArrayLike) -> np.ndarray:
    """Holm's step-down adjustment of p-values for multiple comparisons.

    With the ``m`` finite p-values sorted ascending, ``p_(1) ≤ … ≤ p_(m)``, the adjusted value of
    ``p_(i)`` is ``min(1, max_{j ≤ i} (m − j + 1) p_(j))``: monotone in the raw p-values and capped
    at 1. NaN p-values stay NaN and do not count towards ``m``.

    Args:
        p_values: Raw p-values (any shape is flattened).

    Returns:
        Adjusted p-values, in the input order.

    >>> holm([0.01, 0.04, 0.03, 0.005]).round(3).tolist()
    [0.03, 0.06, 0.06, 0.02]
    """
    p = np.asarray(p_values, dtype=float).ravel()
    out = np.full_like(p, np.nan)
    finite = np.flatnonzero(np.isfinite(p))
    m = len(finite)
    if m == 0:
        return out
    order = finite[np.argsort(p[finite], kind="stable")]
    scaled = (m - np.arange(m)) * p[order]
    out[order] = np.minimum(np.maximum.accumulate(scaled), 1.0)
    return out


def _ranked(values: ArrayLike, groups: ArrayLike) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Ranks (ties averaged), group labels, group index of each value and group sizes."""
    x = np.asarray(values, dtype=float).ravel()
    g = np.asarray(groups).ravel()
    if x.shape != g.shape:
        raise ValueError(f"values and groups differ in length: {x.shape[0]} vs {g.shape[0]}")
    if not np.isfinite(x).all():
        raise ValueError("values must be finite")
    labels, inv = np.unique(g, return_inverse=True)
    n = np.bincount(inv, minlength=len(labels)).astype(float)
    return stats.rankdata(x), labels, inv, n


def _h_and_s2(ranks: np.ndarray, inv: np.ndarray, n: np.ndarray) -> tuple[float, float, np.ndarray]:
    """Tie-corrected Kruskal–Wallis H, the rank variance S² and the mean rank of each group."""
    big_n = len(ranks)
    mean_rank = np.bincount(inv, weights=ranks, minlength=len(n)) / n
    centre = big_n * (big_n + 1) ** 2 / 4
    s2 = (float(np.sum(ranks**2)) - centre) / (big_n - 1)
    between = float(np.sum(n * mean_rank**2)) - centre
    h = between / s2 if s2 > 0 else np.nan
    return h, s2, mean_rank


def kruskal_h(values: ArrayLike, groups: ArrayLike) -> float:
    """Tie-corrected Kruskal–Wallis statistic ``H = Σ nᵢ (R̄ᵢ − R̄)² / S²`` (NaN if all values tie).

    Args:
        values: Observations.
        groups: Group label of each observation.
    """
    ranks, _, inv, n = _ranked(values, groups)
    return _h_and_s2(ranks, inv, n)[0]


def conover_iman(values: ArrayLike, groups: ArrayLike) -> pd.DataFrame:
    """Conover–Iman pairwise comparisons after a Kruskal–Wallis test.

    All ``N`` observations are ranked together (ties get their average rank). With ``S²`` the
    variance of those ranks (``(Σ R² − N(N+1)²/4) / (N − 1)``, which accounts for ties) and ``H``
    the tie-corrected Kruskal–Wallis statistic, groups ``i`` and ``j`` are compared with

        t = |R̄ᵢ − R̄ⱼ| / sqrt(S² (N − 1 − H) / (N − k) · (1/nᵢ + 1/nⱼ)),

    two-sided against Student's t with ``N − k`` degrees of freedom (Conover & Iman, 1979).
    ``S² (N − 1 − H) / (N − k)`` is the within-group mean square of the ranks. When every
    observation ties, no pair differs (t = 0, p = 1); when the groups are perfectly separated
    (no within-group rank spread) differing pairs get t = inf, p = 0.

    Args:
        values: Observations.
        groups: Group label of each observation (at least two groups, ``N > k``).

    Returns:
        One row per pair of groups (sorted labels, ``group_a < group_b``): ``group_a``,
        ``group_b``, ``n_a``, ``n_b``, ``mean_rank_a``, ``mean_rank_b``, ``t``, ``df``, ``p_value``.

    Raises:
        ValueError: Fewer than two groups, no within-group degrees of freedom, or non-finite values.
    """
    ranks, labels, inv, n = _ranked(values, groups)
    big_n, k = len(ranks), len(labels)
    if k < 2 or big_n <= k:
        raise ValueError(f"need at least two groups and more observations than groups (N={big_n}, k={k})")
    h, s2, mean_rank = _h_and_s2(ranks, inv, n)
    a, b = np.triu_indices(k, 1)
    diff = np.abs(mean_rank[a] - mean_rank[b])
    within = s2 * (big_n - 1 - h) / (big_n - k) if s2 > 0 else 0.0
    se = np.sqrt(max(within, 0.0) * (1 / n[a] + 1 / n[b]))
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(diff == 0, 0.0, diff / se)
    df = big_n - k
    return pd.DataFrame({
        "group_a": labels[a], "group_b": labels[b], "n_a": n[a].astype(int), "n_b": n[b].astype(int),
        "mean_rank_a": mean_rank[a], "mean_rank_b": mean_rank[b], "t": t, "df": df,
        "p_value": 2 * stats.t.sf(t, df),
    })
