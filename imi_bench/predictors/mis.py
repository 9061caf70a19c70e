"""Simulated 2AFC (MIS-style) with α fitted on the training units by maximum binomial likelihood.

The featurizer's ``mis`` family gives, per unit row, the mean and standard deviation of the
per-trial evidence ``Δ = Δ(q⁺) − Δ(q⁻)``. With ``Δ ~ N(μ, σ²)`` over trials, the predicted
proportion correct is ``p(α) = E[σ(α·Δ)]``, computed by Gauss–Hermite quadrature, and α maximises
``Σ k log p + (n − k) log(1 − p)`` over the training rows (bounded search on log α).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from numpy.polynomial.hermite_e import hermegauss
from scipy.optimize import minimize_scalar
from scipy.special import expit

from ..errors import ImiBenchError
from .base import Predictor, _targets, register_predictor

__all__ = ["MISPredictor", "mis_probability"]

_NODES, _WEIGHTS = hermegauss(24)
_WEIGHTS = _WEIGHTS / _WEIGHTS.sum()


def mis_probability(alpha: float, mean: np.ndarray, sd: np.ndarray) -> np.ndarray:
    """``E[σ(α·Δ)]`` for ``Δ ~ N(mean, sd²)`` per row (NaN where the moments are missing)."""
    d = mean[:, None] + np.nan_to_num(sd)[:, None] * _NODES[None]
    return expit(alpha * d) @ _WEIGHTS


@register_predictor("mis")
class MISPredictor(Predictor):
    """MIS with α fitted on training rows (needs the ``mis_delta_mean`` / ``mis_delta_sd`` columns).

    Args:
        log_alpha_bounds: Search interval of ln α.
    """

    def __init__(self, log_alpha_bounds: tuple[float, float] = (-4.0, 9.0)) -> None:
        self.log_alpha_bounds = log_alpha_bounds

    @staticmethod
    def _moments(X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:  # noqa: N803
        missing = [c for c in ("mis_delta_mean", "mis_delta_sd") if c not in X.columns]
        if missing:
            raise ImiBenchError(f"the mis predictor needs featurizer columns {missing} (run the 'mis' family)")
        return X["mis_delta_mean"].to_numpy(float), X["mis_delta_sd"].to_numpy(float)

    def fit(self, X: pd.DataFrame, y: Any, sample_weight: Any = None) -> MISPredictor:  # noqa: N803
        """Maximum-likelihood α on rows with finite moments."""
        yy, w = _targets(y, sample_weight)
        mean, sd = self._moments(X)
        ok = np.isfinite(mean) & (w > 0)
        if not ok.any():
            raise ImiBenchError("the mis predictor has no training row with MIS moments")
        k, n, m, s = yy[ok] * w[ok], w[ok], mean[ok], sd[ok]

        def nll(log_alpha: float) -> float:
            p = np.clip(mis_probability(float(np.exp(log_alpha)), m, s), 1e-9, 1 - 1e-9)
            return -float(np.sum(k * np.log(p) + (n - k) * np.log1p(-p)))

        res = minimize_scalar(nll, bounds=self.log_alpha_bounds, method="bounded", options={"xatol": 1e-4})
        self.alpha_ = float(np.exp(res.x))
        self.fallback_ = float(np.clip(np.average(yy, weights=w), 0.5, 1 - 1e-6))
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
        """p(correct) at the fitted α, clipped to [0.5, 1) (rows without moments: the training mean)."""
        mean, sd = self._moments(X)
        p = mis_probability(self.alpha_, np.nan_to_num(mean), sd)
        return np.where(np.isfinite(mean), np.clip(p, 0.5, 1 - 1e-6), self.fallback_)
