"""Metrics of a predictor of per-unit human interpretability, point and batch (one replicate per row).

An evaluation works on *unit rows*: ``pred`` (any score, or p(correct) in
[0.5, 1]), ``k`` correct responses out of ``n``, the row's ``model``. The human
score is ``y = k / n``.

Every point metric is the batch kernel applied to one row, so the point
estimates and the bootstrap replicates are computed by the same code. The
batch kernels take 2-D arrays ``(B, N)`` and an optional boolean ``mask`` of
the same shape (``False`` = padding: bootstrap replicates of clusters of
unequal sizes have unequal lengths). Ties get average ranks exactly as in
scipy; a constant input gives NaN, silently.

>>> round(spearman([1, 2, 3, 4], [0.6, 0.7, 0.7, 0.9]), 6)
0.948683
>>> round(kendall([1, 1, 2], [0.5, 0.6, 0.7]), 6)
0.816497
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import NamedTuple

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from imi_bench.errors import ImiBenchError

from .ranks import _constant, _dense_codes, _inversions, _mask, _rows, _sorted_runs, _tied_pairs, average_ranks

__all__ = [
    "HIGHER_IS_BETTER", "METRICS", "MODEL_METRICS", "P_MAX", "P_MIN", "UNIT_METRICS", "WorstModel", "average_ranks",
    "batch_metric", "ceiling_normalised", "check_rows", "codes_of", "kendall", "kendall_batch", "loglik",
    "loglik_batch", "mae", "mae_batch", "model_rank_tau", "pearson", "pearson_batch", "per_model_spearman",
    "point_metrics", "r2", "r2_batch", "spearman", "spearman_batch", "worst_model",
]

log = logging.getLogger(__name__)

#: Metrics over unit rows.
UNIT_METRICS: tuple[str, ...] = ("spearman", "kendall", "pearson", "r2", "mae", "loglik")
#: Metrics that need the ``model`` of each row.
MODEL_METRICS: tuple[str, ...] = ("model_rank_tau", "worst_model")
#: Every metric, in reporting order.
METRICS: tuple[str, ...] = UNIT_METRICS + MODEL_METRICS
#: Direction of each metric (only ``mae`` is better when lower).
HIGHER_IS_BETTER: Mapping[str, bool] = MappingProxyType({m: m != "mae" for m in METRICS})
#: ``loglik`` clips predictions to [P_MIN, P_MAX]: 2AFC chance is 0.5, and p = 1 would give -inf.
P_MIN, P_MAX = 0.5, 1.0 - 1e-6


class WorstModel(NamedTuple):
    """The model whose rows the predictor ranks worst (lowest per-model Spearman)."""

    value: float
    model: str | None



def _vector(a: ArrayLike, name: str) -> np.ndarray:
    arr = np.asarray(a)
    if arr.ndim != 1:
        raise ImiBenchError(f"{name} must be one-dimensional, got shape {arr.shape}")
    try:
        arr = arr.astype(float)
    except (TypeError, ValueError) as exc:
        raise ImiBenchError(f"{name} must be numeric: {exc}") from None
    if not np.isfinite(arr).all():
        raise ImiBenchError(f"{name} has {int((~np.isfinite(arr)).sum())} non-finite values (NaN or inf)")
    return arr


def _counts(a: ArrayLike, name: str) -> np.ndarray:
    arr = _vector(a, name)
    if not (arr == np.round(arr)).all():
        raise ImiBenchError(f"{name} must hold whole numbers (response counts)")
    return arr.astype(np.int64)


def check_rows(
    pred: ArrayLike, k: ArrayLike, n: ArrayLike, **columns: ArrayLike | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validate unit rows and return ``pred`` (float), ``k`` and ``n`` (int64) as arrays.

    Args:
        pred: Predictions, finite.
        k: Correct responses per row, ``0 <= k <= n``.
        n: Responses per row, ``>= 1``.
        **columns: Further per-row columns (``model``, ``cluster``, ...) whose length must match; None is skipped.

    Raises:
        ImiBenchError: Naming the column at fault.
    """
    p, kk, nn = _vector(pred, "pred"), _counts(k, "k"), _counts(n, "n")
    lengths = {"pred": len(p), "k": len(kk), "n": len(nn)}
    lengths.update({name: len(np.asarray(c)) for name, c in columns.items() if c is not None})
    if len(set(lengths.values())) != 1:
        raise ImiBenchError(f"unit-row columns differ in length: {lengths}")
    if (nn < 1).any():
        raise ImiBenchError(f"n must be >= 1 on every row ({int((nn < 1).sum())} rows are not)")
    if ((kk < 0) | (kk > nn)).any():
        raise ImiBenchError(f"k must lie in [0, n] on every row ({int(((kk < 0) | (kk > nn)).sum())} rows do not)")
    return p, kk, nn


def _pair(x: ArrayLike, y: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    a, b = _vector(x, "x"), _vector(y, "y")
    if len(a) != len(b):
        raise ImiBenchError(f"x and y differ in length: {len(a)} vs {len(b)}")
    return a[None, :], b[None, :]



def pearson_batch(x: ArrayLike, y: ArrayLike, mask: ArrayLike | None = None) -> np.ndarray:
    """Pearson's r of ``x[i]`` with ``y[i]`` for every row (NaN: fewer than 2 valid entries or a constant row)."""
    xx, yy = _rows(x), _rows(y)
    valid = _mask(mask, xx.shape)
    w = valid.astype(float)
    cnt = w.sum(axis=1)
    xx, yy = np.where(valid, xx, 0.0), np.where(valid, yy, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        dx = (xx - ((xx * w).sum(axis=1) / cnt)[:, None]) * w
        dy = (yy - ((yy * w).sum(axis=1) / cnt)[:, None]) * w
        r = np.clip((dx * dy).sum(axis=1) / np.sqrt((dx * dx).sum(axis=1) * (dy * dy).sum(axis=1)), -1.0, 1.0)
    return np.where((cnt < 2) | _constant(xx, valid) | _constant(yy, valid), np.nan, r)


def spearman_batch(x: ArrayLike, y: ArrayLike, mask: ArrayLike | None = None) -> np.ndarray:
    """Spearman's ρ per row: Pearson's r of average ranks (as ``scipy.stats.spearmanr``)."""
    xx = _rows(x)
    valid = _mask(mask, xx.shape)
    return pearson_batch(average_ranks(xx, valid), average_ranks(y, valid), valid)


def kendall_batch(x: ArrayLike, y: ArrayLike, mask: ArrayLike | None = None) -> np.ndarray:
    """Kendall's τ-b per row (as ``scipy.stats.kendalltau``), O(N log N) per row.

    ``τ_b = (n_c − n_d) / sqrt((n_0 − n_x)(n_0 − n_y))`` with ``n_0 = N(N−1)/2``
    and ``n_x``, ``n_y`` the pairs tied in x, in y.
    """
    xx, yy = _rows(x), _rows(y)
    valid = _mask(mask, xx.shape)
    xc, xnew = _dense_codes(xx, valid)
    yc, ynew = _dense_codes(yy, valid)
    key = xc * (int(yc.max(initial=0)) + 1) + yc  # lexicographic (x, y); masked entries sort last
    order, knew = _sorted_runs(key.astype(float), np.ones_like(valid))
    nv = valid.sum(axis=1)
    tot = nv * (nv - 1) // 2
    xtie, ytie, both = _tied_pairs(xnew, valid), _tied_pairs(ynew, valid), _tied_pairs(knew, valid)
    dis = _inversions(np.take_along_axis(yc, order, axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        tau = (tot - xtie - ytie + both - 2 * dis) / np.sqrt((tot - xtie).astype(float) * (tot - ytie))
    return np.where((nv < 2) | (tot == xtie) | (tot == ytie), np.nan, np.clip(tau, -1.0, 1.0))


def r2_batch(pred: ArrayLike, y: ArrayLike, mask: ArrayLike | None = None) -> np.ndarray:
    """Coefficient of determination ``1 − SS_res / SS_tot`` of ``pred`` as a prediction of ``y``, per row.

    NaN where ``y`` is constant (sklearn's ``r2_score`` returns 1 or 0 there unless ``force_finite=False``).
    """
    pp, yy = _rows(pred), _rows(y)
    valid = _mask(mask, pp.shape)
    w = valid.astype(float)
    pp, yy = np.where(valid, pp, 0.0), np.where(valid, yy, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        ybar = (yy * w).sum(axis=1) / w.sum(axis=1)
        ss_tot = (((yy - ybar[:, None]) ** 2) * w).sum(axis=1)
        out = 1.0 - (((yy - pp) ** 2) * w).sum(axis=1) / ss_tot
    return np.where((w.sum(axis=1) < 2) | _constant(yy, valid), np.nan, out)


def mae_batch(pred: ArrayLike, y: ArrayLike, mask: ArrayLike | None = None) -> np.ndarray:
    """Mean absolute error ``mean |pred − y|`` per row (NaN for a row with no valid entry)."""
    pp, yy = _rows(pred), _rows(y)
    valid = _mask(mask, pp.shape)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(valid, np.abs(pp - yy), 0.0).sum(axis=1) / valid.sum(axis=1)


def loglik_batch(pred: ArrayLike, k: ArrayLike, n: ArrayLike, mask: ArrayLike | None = None) -> np.ndarray:
    """Binomial log-likelihood of the responses in nats per response, per row.

    ``Σ [k log p + (n − k) log(1 − p)] / Σ n`` with ``p = clip(pred, P_MIN, P_MAX)``
    (binomial coefficients omitted: they do not depend on the predictor).
    """
    pp = _rows(pred)
    kk, nn = (np.broadcast_to(np.asarray(c, dtype=float), pp.shape) for c in (k, n))
    valid = _mask(mask, pp.shape)
    p = np.clip(pp, P_MIN, P_MAX)
    ll = np.where(valid, kk * np.log(p) + (nn - kk) * np.log1p(-p), 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return ll.sum(axis=1) / np.where(valid, nn, 0.0).sum(axis=1)


def _model_means(pred: np.ndarray, y: np.ndarray, model: np.ndarray, n_models: int,
                 valid: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unweighted per-model means of ``pred`` and ``y`` per row, shape (B, n_models), and which exist."""
    b = pred.shape[0]
    flat = (np.arange(b)[:, None] * n_models + model)[valid]
    size = b * n_models
    cnt = np.bincount(flat, minlength=size).reshape(b, n_models)
    with np.errstate(invalid="ignore", divide="ignore"):
        mx = np.bincount(flat, weights=pred[valid], minlength=size).reshape(b, n_models) / cnt
        my = np.bincount(flat, weights=y[valid], minlength=size).reshape(b, n_models) / cnt
    return mx, my, cnt > 0


def _per_model_spearman_batch(pred: np.ndarray, y: np.ndarray, model: np.ndarray, n_models: int,
                              valid: np.ndarray) -> np.ndarray:
    """Spearman's ρ within each model, shape (B, n_models) (a loop over models, not over units)."""
    return np.stack([spearman_batch(pred, y, valid & (model == g)) for g in range(n_models)], axis=1)


def _nanmin_rows(a: np.ndarray) -> np.ndarray:
    empty = np.isnan(a).all(axis=1)
    return np.where(empty, np.nan, np.where(np.isnan(a), np.inf, a).min(axis=1))


def batch_metric(name: str, pred: np.ndarray, k: np.ndarray, n: np.ndarray, *, mask: np.ndarray | None = None,
                 model: np.ndarray | None = None, n_models: int = 0) -> np.ndarray:
    """Metric ``name`` for every row of ``(B, N)`` arrays of predictions and counts.

    Args:
        name: One of :data:`METRICS`.
        pred: Predictions, shape (B, N).
        k: Correct responses, same shape.
        n: Responses (≥ 1 where valid), same shape.
        mask: Valid entries (default: all).
        model: Integer model codes in ``[0, n_models)``, same shape; needed by :data:`MODEL_METRICS`.
        n_models: Number of model codes.

    Returns:
        One value per row.
    """
    pp = _rows(pred)
    valid = _mask(mask, pp.shape)
    y = np.asarray(k, dtype=float) / np.where(valid, n, 1)
    if name in _PAIR_KERNELS:
        return _PAIR_KERNELS[name](pp, y, valid)
    if name == "loglik":
        return loglik_batch(pp, k, n, valid)
    if name not in MODEL_METRICS:
        raise ImiBenchError(f"unknown metric {name!r}; known: {', '.join(METRICS)}")
    if model is None:
        raise ImiBenchError(f"metric {name!r} needs the model of each row")
    codes = np.broadcast_to(model, pp.shape)
    if name == "model_rank_tau":
        mx, my, has = _model_means(pp, y, codes, n_models, valid)
        return kendall_batch(mx, my, has)
    return _nanmin_rows(_per_model_spearman_batch(pp, y, codes, n_models, valid))


_PAIR_KERNELS: dict[str, Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]] = {
    "spearman": spearman_batch, "kendall": kendall_batch, "pearson": pearson_batch, "r2": r2_batch, "mae": mae_batch,
}



def spearman(x: ArrayLike, y: ArrayLike) -> float:
    """Spearman's ρ (average ranks for ties); NaN if either input is constant."""
    return float(spearman_batch(*_pair(x, y))[0])


def kendall(x: ArrayLike, y: ArrayLike) -> float:
    """Kendall's τ-b; NaN if either input is constant."""
    return float(kendall_batch(*_pair(x, y))[0])


def pearson(x: ArrayLike, y: ArrayLike) -> float:
    """Pearson's r; NaN if either input is constant."""
    return float(pearson_batch(*_pair(x, y))[0])


def r2(pred: ArrayLike, y: ArrayLike) -> float:
    """Coefficient of determination of ``pred`` as a prediction of ``y`` (note the order: prediction first)."""
    return float(r2_batch(*_pair(pred, y))[0])


def mae(pred: ArrayLike, y: ArrayLike) -> float:
    """Mean absolute error between ``pred`` and ``y``."""
    return float(mae_batch(*_pair(pred, y))[0])


def loglik(pred: ArrayLike, k: ArrayLike, n: ArrayLike) -> float:
    """Binomial log-likelihood in nats per response, ``p = clip(pred, 0.5, 1 − 1e-6)``.

    Only meaningful for predictors of p(correct) in [0.5, 1]; a score on any
    other scale is clipped, so its value says little.
    """
    p, kk, nn = check_rows(pred, k, n)
    return float(loglik_batch(p[None, :], kk[None, :], nn[None, :])[0])


def codes_of(values: ArrayLike, name: str, length: int) -> tuple[np.ndarray, np.ndarray]:
    """Integer codes ``0..G-1`` of a per-row label column (``model``, ``cluster``) and the sorted labels.

    Raises:
        ImiBenchError: When the length differs from the rows' or a label is missing.
    """
    codes, labels = pd.factorize(np.asarray(values), sort=True)
    if len(codes) != length:
        raise ImiBenchError(f"{name} has {len(codes)} rows, the predictions {length}")
    if (codes < 0).any():
        raise ImiBenchError(f"{name} has missing values")
    return codes, np.asarray(labels)


def model_rank_tau(pred: ArrayLike, y: ArrayLike, model: ArrayLike) -> float:
    """Kendall's τ-b between per-model mean prediction and per-model mean human score (unweighted row means)."""
    x, yy = _pair(pred, y)
    codes, names = codes_of(model, "model", x.shape[1])
    return float(batch_metric("model_rank_tau", x, yy, np.ones_like(yy), model=codes[None], n_models=len(names))[0])


def per_model_spearman(pred: ArrayLike, y: ArrayLike, model: ArrayLike) -> dict[str, float]:
    """Spearman's ρ within each model's rows, by model name."""
    x, yy = _pair(pred, y)
    codes, names = codes_of(model, "model", x.shape[1])
    per = _per_model_spearman_batch(x, yy, codes[None], len(names), np.ones_like(x, dtype=bool))[0]
    return {str(m): float(v) for m, v in zip(names, per, strict=True)}


def worst_model(pred: ArrayLike, y: ArrayLike, model: ArrayLike) -> WorstModel:
    """Lowest per-model Spearman's ρ and its model (models where ρ is undefined are skipped)."""
    per = {m: v for m, v in per_model_spearman(pred, y, model).items() if not np.isnan(v)}
    if not per:
        return WorstModel(float("nan"), None)
    name = min(per, key=per.__getitem__)
    return WorstModel(per[name], name)


def point_metrics(pred: ArrayLike, k: ArrayLike, n: ArrayLike, model: ArrayLike | None = None) -> dict[str, float]:
    """Every metric of :data:`METRICS` on the given unit rows.

    Args:
        pred: Predictions per unit row.
        k: Correct responses per row.
        n: Responses per row.
        model: Model of each row; without it the model-level metrics are NaN.

    Returns:
        ``{metric: value}`` in the order of :data:`METRICS` (``worst_model``'s
        name is given by :func:`worst_model`).
    """
    p, kk, nn = check_rows(pred, k, n, model=model)
    out = {m: float(batch_metric(m, p[None], kk[None], nn[None])[0]) for m in UNIT_METRICS}
    if model is None:
        return out | {m: float("nan") for m in MODEL_METRICS}
    codes, names = codes_of(model, "model", len(p))
    for m in MODEL_METRICS:
        out[m] = float(batch_metric(m, p[None], kk[None], nn[None], model=codes[None], n_models=len(names))[0])
    return out


def ceiling_normalised(r: float, reliability: float) -> float:
    """``r / sqrt(reliability)``: a correlation relative to the noise ceiling (NaN if reliability ≤ 0).

    Report it beside the raw correlation, never instead of it.

    >>> ceiling_normalised(0.45, 0.81)
    0.5
    """
    if not np.isfinite(reliability) or reliability <= 0:
        return float("nan")
    return float(r / np.sqrt(reliability))
