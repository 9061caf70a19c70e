"""LightGBM on every feature column, with early stopping on an inner split of the training units."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .base import _targets, register_predictor
from .baselines import _Imputed

__all__ = ["LightGBMPredictor"]


@register_predictor("lightgbm")
class LightGBMPredictor(_Imputed):
    """Gradient-boosted trees (LightGBM), response-weighted, early-stopped on held-out training units.

    The inner validation set is ``valid_fraction`` of the training *units* (a unit's rows stay
    together), drawn with ``seed``; the final model keeps the best iteration.

    Args:
        n_estimators: Maximum boosting rounds.
        learning_rate: Shrinkage.
        num_leaves: Leaves per tree.
        min_child_samples: Minimum rows per leaf.
        valid_fraction: Fraction of training units held out for early stopping.
        early_stopping_rounds: Rounds without improvement before stopping.
        seed: Seed of the inner split and of LightGBM.
    """

    def __init__(self, n_estimators: int = 500, learning_rate: float = 0.05, num_leaves: int = 15,
                 min_child_samples: int = 10, valid_fraction: float = 0.2, early_stopping_rounds: int = 30,
                 seed: int = 0) -> None:
        self.n_estimators, self.learning_rate, self.num_leaves = n_estimators, learning_rate, num_leaves
        self.min_child_samples, self.valid_fraction = min_child_samples, valid_fraction
        self.early_stopping_rounds, self.seed = early_stopping_rounds, seed

    def fit(self, X: pd.DataFrame, y: Any, sample_weight: Any = None) -> LightGBMPredictor:  # noqa: N803
        """Fit with early stopping on an inner grouped split."""
        import lightgbm as lgb

        yy, w = _targets(y, sample_weight)
        m = self._matrix(X, True)
        groups = X["unit_id"].to_numpy() if "unit_id" in X.columns else np.arange(len(X))
        uniq = np.unique(groups)
        rng = np.random.default_rng(self.seed)
        held = rng.choice(uniq, max(1, round(self.valid_fraction * len(uniq))), replace=False)
        valid = np.isin(groups, held)
        if valid.all() or not valid.any():
            valid = np.zeros(len(X), bool)
        self.model_ = lgb.LGBMRegressor(
            n_estimators=self.n_estimators, learning_rate=self.learning_rate, num_leaves=self.num_leaves,
            min_child_samples=self.min_child_samples, random_state=self.seed, n_jobs=2, verbose=-1,
            deterministic=True, force_row_wise=True)
        kwargs: dict[str, Any] = {}
        if valid.any():
            kwargs = {"eval_X": (m[valid],), "eval_y": (yy[valid],), "eval_sample_weight": [w[valid]],
                      "callbacks": [lgb.early_stopping(self.early_stopping_rounds, verbose=False)]}
        self.model_.fit(m[~valid], yy[~valid], sample_weight=w[~valid], **kwargs)
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
        """Clipped predictions (best iteration)."""
        return np.clip(self.model_.predict(self._matrix(X, False)), 0.5, 1 - 1e-6)
