"""The predictor protocol: scikit-learn estimators from a unit table to p(correct) per unit row.

A predictor is a scikit-learn compatible regressor: ``fit(X, y, sample_weight=None)`` and
``predict(X)``, where ``X`` is a unit table (:func:`~imi_bench.predictors.table.unit_table`:
metadata + feature columns), ``y`` the human score (``his``) and ``sample_weight`` the responses
per unit row (``n_responses``; with it, ``y · sample_weight`` are the correct responses).
Predictions are p(correct) in [0.5, 1] (any monotone score works for the rank metrics; the
binomial likelihood needs probabilities).

Register a predictor with :func:`register_predictor`; build one with :func:`get_predictor`::

    @register_predictor("my-score")
    class MyScore(Predictor):
        def fit(self, X, y, sample_weight=None): ...; return self
        def predict(self, X): ...
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin

from .._registry import Registry
from ..errors import ImiBenchError

__all__ = ["PREDICTORS", "P_MAX", "P_MIN", "Calibration", "Predictor", "get_predictor", "list_predictors",
           "register_predictor"]

P_MIN, P_MAX = 0.5, 1.0 - 1e-6
T = TypeVar("T", bound=type)


class Predictor(BaseEstimator, RegressorMixin):
    """Base class of imi-bench predictors (scikit-learn conventions: parameters in ``__init__``)."""

    def fit(self, X: pd.DataFrame, y: Any, sample_weight: Any = None) -> Predictor:  # noqa: N803
        """Learn from training unit rows."""
        raise NotImplementedError

    def predict(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
        """p(correct) per unit row."""
        raise NotImplementedError


def _targets(y: Any, sample_weight: Any) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y, dtype=float)
    w = np.ones_like(y) if sample_weight is None else np.asarray(sample_weight, dtype=float)
    if y.shape != w.shape or not np.isfinite(y).all() or (w < 0).any():
        raise ImiBenchError("y must be finite and sample_weight non-negative, with one value per unit row")
    return y, w


class Calibration:
    """Weighted least squares ``y ≈ a + b·score`` on training rows, clipped to [0.5, 1).

    Maps any monotone score onto the probability scale without changing its ranking (when ``b > 0``).
    NaN scores (missing features) get the training mean.
    """

    def fit(self, score: np.ndarray, y: np.ndarray, w: np.ndarray) -> Calibration:
        """Fit on finite scores."""
        ok = np.isfinite(score) & (w > 0)
        self.mean_ = float(np.average(y, weights=w)) if w.sum() > 0 else float(np.mean(y))
        self.a_, self.b_ = self.mean_, 0.0
        if ok.sum() >= 2 and np.ptp(score[ok]) > 0:
            s, t, ww = score[ok], y[ok], w[ok]
            sm, tm = np.average(s, weights=ww), np.average(t, weights=ww)
            self.b_ = float(np.sum(ww * (s - sm) * (t - tm)) / np.sum(ww * (s - sm) ** 2))
            self.a_ = float(tm - self.b_ * sm)
        return self

    def __call__(self, score: np.ndarray) -> np.ndarray:
        """Calibrated probabilities."""
        p = np.where(np.isfinite(score), self.a_ + self.b_ * np.nan_to_num(score), self.mean_)
        return np.clip(p, P_MIN, P_MAX)


PREDICTORS: Registry[Callable[..., Predictor]] = Registry("predictor")


def register_predictor(name: str) -> Callable[[T], T]:
    """Class decorator registering a predictor class (or factory) under ``name`` (duplicates raise)."""

    def wrap(cls: T) -> T:
        PREDICTORS.register(name, cls)
        return cls

    return wrap


def _load() -> None:
    from . import baselines  # noqa: F401  (registers the shipped predictors)


def get_predictor(name: str, **params: Any) -> Predictor:
    """A new predictor registered under ``name`` (unknown names raise with close matches)."""
    _load()
    return PREDICTORS.get(name)(**params)


def list_predictors(pattern: str = "*") -> list[str]:
    """Registered predictor names."""
    _load()
    return PREDICTORS.list(pattern)
