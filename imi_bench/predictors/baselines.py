"""Baseline predictors: constant, random, depth, one per feature family, ridge, LightGBM, simulated 2AFC.

Every baseline ends in a :class:`~imi_bench.predictors.base.Calibration` fitted on the training rows
(except ``mis``, whose α is fitted by maximum binomial likelihood and which predicts probabilities
directly), so all of them output p(correct) in [0.5, 1).
"""

from __future__ import annotations

import hashlib
import warnings
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from ..errors import ImiBenchError
from .base import Calibration, Predictor, _targets, register_predictor
from .table import feature_columns

__all__ = ["ConstantPredictor", "DepthPredictor", "FamilyPredictor", "RandomPredictor", "RidgePredictor",
           "signed_rank_score"]


@register_predictor("constant")
class ConstantPredictor(Predictor):
    """The training rows' response-weighted mean HIS, for every unit row."""

    def fit(self, X: pd.DataFrame, y: Any, sample_weight: Any = None) -> ConstantPredictor:  # noqa: N803
        """Store the weighted mean."""
        yy, w = _targets(y, sample_weight)
        self.mean_ = float(np.average(yy, weights=w))
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
        """The mean, clipped to [0.5, 1)."""
        return np.full(len(X), float(np.clip(self.mean_, 0.5, 1 - 1e-6)))


@register_predictor("random")
class RandomPredictor(Predictor):
    """Uniform scores in [0.5, 1) that depend only on the unit row's identity and the seed (not on order)."""

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def fit(self, X: pd.DataFrame, y: Any, sample_weight: Any = None) -> RandomPredictor:  # noqa: N803
        """Nothing to learn."""
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
        """Seeded hash of the unit row key → U[0.5, 1)."""
        cols = [c for c in ("model", "layer", "channel", "condition", "difficulty") if c in X.columns]
        keys = X[cols].astype(str).agg("/".join, axis=1)
        u = [int.from_bytes(hashlib.sha256(f"{self.seed}|{k}".encode()).digest()[:8], "big") / 2**64 for k in keys]
        return 0.5 + 0.5 * np.asarray(u, dtype=float)


def _ecdf(train: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Mid-rank empirical CDF of ``values`` against finite ``train`` values (NaN stays NaN)."""
    ref = np.sort(train[np.isfinite(train)])
    if len(ref) == 0:
        return np.full(len(values), np.nan)
    lo = np.searchsorted(ref, values, side="left")
    hi = np.searchsorted(ref, values, side="right")
    out = (lo + hi) / (2.0 * len(ref))
    return np.where(np.isfinite(values), out, np.nan)


def signed_rank_score(train: pd.DataFrame, y: np.ndarray, test: pd.DataFrame, columns: list[str]
                      ) -> tuple[np.ndarray, np.ndarray, dict[str, float]]:
    """Mean over ``columns`` of each column's training-ECDF rank, flipped where it correlates negatively.

    The sign of each column is that of its Spearman correlation with ``y`` on the training rows
    (0 → the column is dropped). Returns the training and test scores and the signs.
    """
    signs: dict[str, float] = {}
    tr, te = [], []
    for c in columns:
        x = train[c].to_numpy(float)
        ok = np.isfinite(x)
        if ok.sum() < 3 or np.ptp(x[ok]) == 0:
            continue
        rho = stats.spearmanr(x[ok], y[ok]).statistic
        if not np.isfinite(rho) or rho == 0:
            continue
        signs[c] = float(np.sign(rho))
        tr.append(signs[c] * (_ecdf(x, x) - 0.5))
        te.append(signs[c] * (_ecdf(x, test[c].to_numpy(float)) - 0.5))
    if not tr:
        return np.full(len(train), np.nan), np.full(len(test), np.nan), signs
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # rows with every column missing stay NaN
        return np.nanmean(np.vstack(tr), 0), np.nanmean(np.vstack(te), 0), signs


class _ScorePredictor(Predictor):
    """A score computed from columns, calibrated on the training rows."""

    def _columns(self, X: pd.DataFrame) -> list[str]:  # noqa: N803
        raise NotImplementedError

    def fit(self, X: pd.DataFrame, y: Any, sample_weight: Any = None) -> _ScorePredictor:  # noqa: N803
        """Learn column signs and the calibration."""
        yy, w = _targets(y, sample_weight)
        self.columns_ = self._columns(X)
        if not self.columns_:
            raise ImiBenchError(f"{type(self).__name__}: none of its feature columns is in the unit table")
        self.train_ = X[self.columns_].reset_index(drop=True).copy()
        self.y_ = yy
        score, _, self.signs_ = signed_rank_score(self.train_, yy, self.train_, self.columns_)
        self.calibration_ = Calibration().fit(score, yy, w)
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
        """Calibrated signed-rank score."""
        _, score, _ = signed_rank_score(self.train_, self.y_, X.reset_index(drop=True), self.columns_)
        return self.calibration_(score)


@register_predictor("depth")
class DepthPredictor(_ScorePredictor):
    """The layer's relative depth (sign learned on the training rows)."""

    def _columns(self, X: pd.DataFrame) -> list[str]:  # noqa: N803
        return ["relative_depth"] if "relative_depth" in X.columns else []


class FamilyPredictor(_ScorePredictor):
    """One feature family: rank-transformed columns, signs learned on train, averaged, calibrated.

    Args:
        family: Feature family name (``imi_b4``, ``sparseness``, ``sis``, …).
    """

    def __init__(self, family: str = "imi_b4") -> None:
        self.family = family

    def _columns(self, X: pd.DataFrame) -> list[str]:  # noqa: N803
        return feature_columns(X, [self.family])


def _family_factory(family: str) -> Any:
    def make(**params: Any) -> FamilyPredictor:
        return FamilyPredictor(family=params.pop("family", family), **params)

    make.__doc__ = f"FamilyPredictor(family={family!r})"
    return make


for _family in ("imi_b4", "sparseness", "sis", "param_saliency", "lesion", "mis"):
    register_predictor(f"family:{_family}")(_family_factory(_family))


class _Imputed(Predictor):
    """All feature columns, median-imputed and standardised on the training rows."""

    def _matrix(self, X: pd.DataFrame, fit: bool) -> np.ndarray:  # noqa: N803
        if fit:
            cols = feature_columns(X)
            values = X[cols].to_numpy(float)
            self.columns_ = [c for c, ok in zip(cols, np.isfinite(values).any(0), strict=True) if ok]
            if not self.columns_:
                raise ImiBenchError(f"{type(self).__name__}: the unit table has no (non-empty) feature columns")
            m = X[self.columns_].to_numpy(float)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # single finite value: std 0 → 1 below
                self.median_ = np.nan_to_num(np.nanmedian(m, 0))
                self.scale_ = np.nan_to_num(np.nanstd(m, 0), nan=1.0)
            self.scale_[self.scale_ == 0] = 1.0
        m = X[self.columns_].to_numpy(float)
        m = np.where(np.isfinite(m), m, self.median_)
        return (m - self.median_) / self.scale_


@register_predictor("ridge")
class RidgePredictor(_Imputed):
    """Ridge regression on every feature column (α by generalised cross-validation), weighted by responses.

    Args:
        alphas: Candidate regularisation strengths.
    """

    def __init__(self, alphas: tuple[float, ...] = (0.01, 0.1, 1.0, 10.0, 100.0, 1000.0)) -> None:
        self.alphas = alphas

    def fit(self, X: pd.DataFrame, y: Any, sample_weight: Any = None) -> RidgePredictor:  # noqa: N803
        """Fit RidgeCV."""
        from sklearn.linear_model import RidgeCV

        yy, w = _targets(y, sample_weight)
        self.model_ = RidgeCV(alphas=self.alphas).fit(self._matrix(X, True), yy, sample_weight=w)
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
        """Clipped predictions."""
        return np.clip(self.model_.predict(self._matrix(X, False)), 0.5, 1 - 1e-6)


from .boosting import LightGBMPredictor  # noqa: E402,F401  (registers "lightgbm")
from .mis import MISPredictor  # noqa: E402,F401  (registers "mis")
