"""Paired comparison of two leaderboard entries and rank intervals of many, on the same held-out unit rows.

* :func:`compare`: the difference ``a − b`` of one metric, with a paired
  hierarchical-bootstrap interval (both entries scored on the same resampled
  units), the bootstrap p-value (two-sided, by inverting the percentile
  interval) and a paired permutation p-value (each unit swaps the two entries'
  predictions with probability 1/2; exact under the null that the entries are
  exchangeable).
* :func:`rank_intervals`: each entry's rank (1 = best) and the percentile
  interval of its rank over bootstrap replicates shared by all entries.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> p = rng.uniform(0.5, 1, 80); k = rng.binomial(40, p); n = np.full(80, 40)
>>> c = compare(p, rng.permutation(p), k, n, cluster=np.arange(80), n_boot=300, n_perm=300, seed=0)
>>> bool(c.diff > 0 and c.p_permutation < 0.05 and c.ci_low > 0)
True
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from imi_bench.errors import ImiBenchError

from .bootstrap import _check_settings, _generator, percentile_ci, replicate_metrics
from .metrics import HIGHER_IS_BETTER, MODEL_METRICS, batch_metric, check_rows, codes_of

__all__ = ["Comparison", "compare", "rank_intervals"]

log = logging.getLogger(__name__)

#: Elements (permutations × rows) handled at once.
_CHUNK_ELEMENTS = 2**20


@dataclass(frozen=True)
class Comparison:
    """Paired comparison of entries ``a`` and ``b`` on one metric.

    Attributes:
        metric: Metric name (for ``mae`` lower is better: a negative ``diff`` favours ``a``).
        a: Metric of ``a`` on the rows.
        b: Metric of ``b``.
        diff: ``a − b``.
        ci_low: Lower end of the paired-bootstrap percentile interval of ``diff``.
        ci_high: Upper end.
        p_bootstrap: Two-sided bootstrap p-value of ``diff = 0``.
        p_permutation: Two-sided paired permutation p-value.
        n_boot: Bootstrap replicates.
        n_perm: Permutations.
        confidence: Interval level.
    """

    metric: str
    a: float
    b: float
    diff: float
    ci_low: float
    ci_high: float
    p_bootstrap: float
    p_permutation: float
    n_boot: int
    n_perm: int
    confidence: float

    def to_dict(self) -> dict[str, object]:
        """Return the fields as a dict."""
        return asdict(self)


def _codes(values: ArrayLike, name: str, length: int) -> tuple[np.ndarray, int]:
    codes, labels = codes_of(values, name, length)
    return codes, len(labels)


def _metric_of(metric: str, preds: np.ndarray, k: np.ndarray, n: np.ndarray, model: tuple[np.ndarray, int] | None
               ) -> np.ndarray:
    """Metric of each row of ``preds`` (shape (B, N)) against the same counts."""
    codes, n_models = (None, 0) if model is None else model
    return batch_metric(metric, preds, np.broadcast_to(k, preds.shape), np.broadcast_to(n, preds.shape),
                        model=codes, n_models=n_models)


_CORRELATIONS = ("spearman", "kendall", "pearson")


def _strata(strata: ArrayLike | None, length: int) -> list[tuple[np.ndarray, float]]:
    """``(row mask, weight)`` per stratum (weights: row shares); one stratum of every row when None."""
    if strata is None:
        return [(np.ones(length, bool), 1.0)]
    codes, count = _codes(strata, "strata", length)
    return [(codes == s, float((codes == s).sum()) / length) for s in range(count)]


def _metric_strat(metric: str, preds: np.ndarray, k: np.ndarray, n: np.ndarray,
                  model: tuple[np.ndarray, int] | None, strata: list[tuple[np.ndarray, float]]) -> np.ndarray:
    """Row-weighted mean over strata of each stratum's metric (``preds``: (B, N))."""
    out = np.zeros(preds.shape[0])
    for mask, w in strata:
        sub = None if model is None else (model[0][mask], model[1])
        values = _metric_of(metric, preds[:, mask], k[mask], n[mask], sub)
        if metric in _CORRELATIONS:  # constant predictions rank nothing: correlation 0, as in the Evaluator
            values = np.where(np.ptp(preds[:, mask], axis=1) == 0, 0.0, values)
        out += w * values
    return out


def _replicates_strat(arrays: list[np.ndarray], k: np.ndarray, n: np.ndarray, cluster: np.ndarray, metric: str,
                      n_boot: int, rng: np.random.Generator, model: ArrayLike | None, resample_responses: bool,
                      strata: list[tuple[np.ndarray, float]]) -> np.ndarray:
    """Per-entry replicates ``(E, B)`` of the stratified metric (strata resampled independently)."""
    total = np.zeros((len(arrays), n_boot))
    models = None if model is None else np.asarray(model)
    for (mask, w), child in zip(strata, rng.spawn(len(strata)), strict=True):
        reps = replicate_metrics([a[mask] for a in arrays], k[mask], n[mask], cluster=cluster[mask],
                                 metrics=(metric,), n_boot=n_boot, seed=child,
                                 model=None if models is None else models[mask],
                                 resample_responses=resample_responses)[:, 0]
        if metric in _CORRELATIONS:
            reps[np.array([np.ptp(a[mask]) == 0 for a in arrays])] = 0.0
        total += w * reps
    return total


def _permutation_p(pa: np.ndarray, pb: np.ndarray, k: np.ndarray, n: np.ndarray, codes: np.ndarray, n_clusters: int,
                   metric: str, n_perm: int, rng: np.random.Generator, model: tuple[np.ndarray, int] | None,
                   observed: float, strata: list[tuple[np.ndarray, float]]) -> float:
    """Two-sided paired permutation p-value: ``(1 + #{|d*| ≥ |d|}) / (1 + n_perm)``, units swapped as wholes."""
    if not np.isfinite(observed):
        return float("nan")
    hits, step = 0, max(1, _CHUNK_ELEMENTS // len(pa))
    tol = 1e-12 * max(1.0, abs(observed))
    for first in range(0, n_perm, step):
        swap = (rng.random((min(step, n_perm - first), n_clusters)) < 0.5)[:, codes]
        d = (_metric_strat(metric, np.where(swap, pb, pa), k, n, model, strata)
             - _metric_strat(metric, np.where(swap, pa, pb), k, n, model, strata))
        hits += int((np.abs(d) >= abs(observed) - tol).sum())  # an undefined d* (NaN) never counts
    return (1 + hits) / (1 + n_perm)


def _bootstrap_p(diffs: np.ndarray) -> float:
    """Two-sided p-value from inverting the percentile interval: ``2 min(P*(d ≤ 0), P*(d ≥ 0))``, +1 smoothed."""
    d = diffs[np.isfinite(diffs)]
    if not len(d):
        return float("nan")
    below, above = (np.sum(d <= 0) + 1) / (len(d) + 1), (np.sum(d >= 0) + 1) / (len(d) + 1)
    return float(min(1.0, 2 * min(below, above)))


def compare(
    pred_a: ArrayLike,
    pred_b: ArrayLike,
    k: ArrayLike,
    n: ArrayLike,
    *,
    cluster: ArrayLike,
    metric: str = "spearman",
    n_boot: int = 2000,
    n_perm: int = 2000,
    seed: int | np.random.Generator,
    model: ArrayLike | None = None,
    confidence: float = 0.95,
    resample_responses: bool = False,
    strata: ArrayLike | None = None,
) -> Comparison:
    """Compare two entries' predictions of the same held-out unit rows.

    Args:
        pred_a: Predictions of entry ``a``, one per unit row.
        pred_b: Predictions of entry ``b`` for the same rows, in the same order.
        k: Correct responses per row.
        n: Responses per row.
        cluster: Unit of each row (resampled and swapped as a whole).
        metric: Metric name.
        n_boot: Paired bootstrap replicates.
        n_perm: Permutations (0 skips the permutation test: NaN).
        seed: Seed or generator; the bootstrap and the permutations use two streams spawned from it.
        model: Model of each row (needed by model-level metrics).
        confidence: Interval level.
        resample_responses: See :func:`~imi_bench.eval.bootstrap.hierarchical_bootstrap`.
        strata: Fold of each row: the metric is then the row-weighted mean over folds of each fold's
            metric (the Evaluator's headline), folds resampled independently, units swapped across all.

    Raises:
        ImiBenchError: When the entries do not cover the same rows, or on bad input.
    """
    a_len, b_len = len(np.asarray(pred_a)), len(np.asarray(pred_b))
    if a_len != b_len:
        raise ImiBenchError(f"the two entries must predict the same held-out unit rows: pred_a has {a_len} rows, "
                            f"pred_b {b_len}")
    _check_settings(n_boot, confidence, (metric,))
    pa, kk, nn = check_rows(pred_a, k, n, cluster=cluster, model=model)
    pb, _, _ = check_rows(pred_b, k, n)
    if model is None and metric in MODEL_METRICS:
        raise ImiBenchError(f"metric {metric!r} needs the model of each row")
    codes, n_clusters = _codes(cluster, "cluster", len(pa))
    models = None if model is None else _codes(model, "model", len(pa))
    boot_rng, perm_rng = _generator(seed).spawn(2)
    strat = _strata(strata, len(pa))
    a, b = _metric_strat(metric, np.stack([pa, pb]), kk, nn, models, strat)
    reps = _replicates_strat([pa, pb], kk, nn, codes, metric, n_boot, boot_rng, model, resample_responses, strat)
    diffs = reps[0] - reps[1]
    low, high = percentile_ci(diffs, confidence)
    p_perm = (_permutation_p(pa, pb, kk, nn, codes, n_clusters, metric, n_perm, perm_rng, models, a - b, strat)
              if n_perm > 0 else float("nan"))
    return Comparison(metric, float(a), float(b), float(a - b), low, high, _bootstrap_p(diffs), p_perm, n_boot,
                      n_perm, confidence)


def _replicate_ranks(values: np.ndarray, higher_is_better: bool) -> np.ndarray:
    """Rank of each entry (rows) in each replicate (columns): 1 + entries strictly better; undefined = worst."""
    v = np.where(np.isfinite(values), values if higher_is_better else -values, -np.inf)
    return 1 + (v[None, :, :] > v[:, None, :]).sum(axis=1)


def rank_intervals(
    preds: Mapping[str, ArrayLike],
    k: ArrayLike,
    n: ArrayLike,
    *,
    cluster: ArrayLike,
    metric: str = "spearman",
    n_boot: int = 1000,
    seed: int | np.random.Generator,
    confidence: float = 0.95,
    model: ArrayLike | None = None,
    resample_responses: bool = False,
    strata: ArrayLike | None = None,
) -> pd.DataFrame:
    """Rank of each entry with a bootstrap interval, every entry scored on the same replicates.

    Args:
        preds: Entry name → predictions of the same unit rows.
        k: Correct responses per row.
        n: Responses per row.
        cluster: Unit of each row.
        metric: Metric name (its direction comes from :data:`~imi_bench.eval.metrics.HIGHER_IS_BETTER`).
        n_boot: Replicates.
        seed: Seed or generator.
        confidence: Interval level of the ranks.
        model: Model of each row (needed by model-level metrics).
        resample_responses: See :func:`~imi_bench.eval.bootstrap.hierarchical_bootstrap`.
        strata: Fold of each row (fold-averaged metric, as in :func:`compare`).

    Returns:
        ``entry, estimate, rank, rank_low, rank_high`` sorted by rank; ``rank`` is 1 + the number of
        entries with a strictly better estimate (ties share the better rank).
    """
    if not preds:
        raise ImiBenchError("rank_intervals needs at least one entry")
    _check_settings(n_boot, confidence, (metric,))
    names = list(preds)
    lengths = {name: len(np.asarray(p)) for name, p in preds.items()}
    if len(set(lengths.values())) != 1:
        raise ImiBenchError(f"every entry must predict the same held-out unit rows; rows per entry: {lengths}")
    arrays = [check_rows(preds[name], k, n, cluster=cluster, model=model)[0] for name in names]
    _, kk, nn = check_rows(arrays[0], k, n)
    models = None if model is None else _codes(model, "model", len(kk))
    strat = _strata(strata, len(kk))
    estimate = _metric_strat(metric, np.stack(arrays), kk, nn, models, strat)
    codes, _ = _codes(cluster, "cluster", len(kk))
    reps = _replicates_strat(arrays, kk, nn, codes, metric, n_boot, _generator(seed), model, resample_responses,
                             strat)
    higher = HIGHER_IS_BETTER[metric]
    ranks = _replicate_ranks(reps, higher)
    alpha = (1 - confidence) / 2
    frame = pd.DataFrame({
        "entry": names, "estimate": estimate, "rank": _replicate_ranks(estimate[:, None], higher)[:, 0],
        "rank_low": np.quantile(ranks, alpha, axis=1, method="inverted_cdf").astype(int),
        "rank_high": np.quantile(ranks, 1 - alpha, axis=1, method="inverted_cdf").astype(int)})
    return frame.sort_values(["rank", "entry"], kind="stable").reset_index(drop=True)
