"""``Evaluator``: score predictions of held-out unit rows under a split (OGB's Evaluator contract).

::

    ev = Evaluator("leave-one-model-out")
    print(ev.expected_input_format)
    result = ev.eval(predictions, units)      # predictions: DataFrame, units: a unit table

Per fold, averaged over folds (row-weighted: the headline) and over the concatenated held-out
rows: Spearman, Kendall τ-b, Pearson, R², MAE, the binomial log-likelihood of the observed counts,
Kendall τ between predicted and human per-model means, and the worst held-out model. CIs come from
a cluster bootstrap (units resampled with all their rows; redrawing responses within rows is
available but off by default: it double-counts response noise and under-covers, see
docs/eval-statistics.md). Correlations are also reported ceiling-normalised (raw / √ split-half
reliability of the held-out HIS), beside the raw values. Constant predictions have correlation 0.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..data.ceiling import split_half_reliability
from ..errors import ImiBenchError
from .bootstrap import BootstrapResult, hierarchical_bootstrap, percentile_ci
from .metrics import ceiling_normalised, point_metrics, worst_model
from .splits import Fold, SplitScheme, check_no_leak, get_split

__all__ = ["BOOTSTRAP_METRICS", "KEY", "EvalResult", "Evaluator"]

log = logging.getLogger(__name__)
KEY = ("model", "layer", "channel", "condition", "difficulty")
BOOTSTRAP_METRICS = ("spearman", "kendall", "pearson", "r2", "mae", "loglik")
CORRELATIONS = ("spearman", "kendall", "pearson")


@dataclass
class EvalResult:
    """What :meth:`Evaluator.eval` returns.

    Attributes:
        folds: Per fold: ``name``, ``n_test`` and point ``metrics``.
        pooled: Metric → ``{"estimate", "ci_low", "ci_high"}``: the row-weighted mean over folds of each
            fold's metric (the headline; ``extra["concatenated"]`` has the same over all held-out rows
            pooled into one vector). Constant predictions have correlation 0.
        extra: ``reliability`` (row-weighted mean over folds of the split-half reliability of the
            held-out HIS; per fold with CIs in ``reliability_per_fold``), ``ceiling_normalised``
            (fold-averaged correlation / √reliability), ``model_rank_tau``, ``worst_model`` (+ name),
            ``per_model_spearman`` and ``concatenated`` (metrics over all held-out rows, with CIs).
        heldout: The held-out rows with ``fold`` and ``prediction`` (for plots).
    """

    folds: list[dict[str, Any]]
    pooled: dict[str, dict[str, float]]
    extra: dict[str, Any] = field(default_factory=dict)
    heldout: pd.DataFrame | None = None


def _first_rows(frame: pd.DataFrame, mask: np.ndarray | pd.Series, n: int = 5) -> str:
    rows = frame.loc[np.asarray(mask, bool), [c for c in (*KEY, "fold", "prediction") if c in frame.columns]]
    return "; ".join(f"row {i + 2}: " + ", ".join(f"{k}={v}" for k, v in r.items())
                     for i, r in zip(rows.index[:n], rows.head(n).to_dict("records"), strict=False))


class Evaluator:
    """Scores predictions of the held-out rows of every fold of ``split``.

    Args:
        split: A registered split name or a :class:`~imi_bench.eval.splits.SplitScheme`.
        n_boot: Hierarchical bootstrap resamples for the pooled CIs.
        seed: Seed of the bootstrap and the split (None: the scheme's own seed).
        confidence: CI level.
        probabilities: Predictions are p(correct) in [0, 1] (else any finite score: the
            log-likelihood is then not reported).
    """

    expected_input_format = (
        "predictions: a DataFrame with one row per held-out unit row and columns model, layer, channel, "
        "condition, difficulty, prediction (finite; in [0, 1] when probabilities=True), and optionally fold "
        "(the fold name, when a row is predicted differently in different folds; without it, a row's one "
        "prediction is used in every fold that holds it out). units: the unit table (model, layer, channel, "
        "condition, difficulty, unit_id, n_correct, n_responses, and the split's metadata columns).")

    def __init__(self, split: str | SplitScheme, *, n_boot: int = 1000, seed: int | None = 0,
                 confidence: float = 0.95, probabilities: bool = True) -> None:
        self.scheme = get_split(split) if isinstance(split, str) else split
        self.n_boot, self.seed, self.confidence, self.probabilities = n_boot, seed, confidence, probabilities

    @property
    def _boot_seed(self) -> int:
        return 0 if self.seed is None else self.seed

    def folds(self, units: pd.DataFrame) -> list[Fold]:
        """The split's folds on ``units`` (checked for leaks)."""
        folds = self.scheme.folds(units, seed=self.seed)
        check_no_leak(units, folds, self.scheme)
        return folds

    # ------------------------------------------------------------------ input checks
    def _check_predictions(self, predictions: pd.DataFrame) -> pd.DataFrame:
        missing = [c for c in (*KEY, "prediction") if c not in predictions.columns]
        if missing:
            raise ImiBenchError(f"predictions lack columns {missing}; {self.expected_input_format}")
        pred = predictions.reset_index(drop=True).copy()
        pred["channel"] = pd.to_numeric(pred["channel"], errors="coerce").astype("Int64")
        pred["prediction"] = pd.to_numeric(pred["prediction"], errors="coerce")
        key = [*KEY, "fold"] if "fold" in pred.columns else list(KEY)
        dup = pred.duplicated(key, keep=False)
        if dup.any():
            raise ImiBenchError(f"predictions have duplicate unit rows: {_first_rows(pred, dup)}")
        bad = ~np.isfinite(pred["prediction"].to_numpy(float, na_value=np.nan))
        if bad.any():
            raise ImiBenchError(f"predictions must be finite numbers: {_first_rows(pred, bad)}")
        if self.probabilities:
            out = ~pred["prediction"].between(0, 1)
            if out.any():
                raise ImiBenchError(f"predictions must lie in [0, 1] (pass probabilities=False / --scores for "
                                    f"arbitrary scores): {_first_rows(pred, out)}")
        return pred

    def heldout(self, predictions: pd.DataFrame, units: pd.DataFrame, folds: Sequence[Fold]) -> pd.DataFrame:
        """Held-out rows of every fold joined with their predictions (raises on missing/extra rows)."""
        pred = self._check_predictions(predictions)
        table = units.reset_index(drop=True).copy()
        table["channel"] = table["channel"].astype("Int64")
        known = pred.merge(table[list(KEY)].drop_duplicates(), on=list(KEY), how="left", indicator=True)
        extra = (known["_merge"] == "left_only").to_numpy()
        if extra.any():
            raise ImiBenchError(f"predictions for unit rows that are not in the dataset: {_first_rows(pred, extra)}")
        parts = [table.iloc[f.test].assign(fold=f.name) for f in folds]
        held = pd.concat(parts, ignore_index=True)
        on = [*KEY, "fold"] if "fold" in pred.columns else list(KEY)
        if "fold" in pred.columns:
            unknown = ~pred["fold"].isin([f.name for f in folds])
            if unknown.any():
                raise ImiBenchError(f"predictions name unknown folds: {_first_rows(pred, unknown)}")
        merged = held.merge(pred[[*on, "prediction"]], on=on, how="left")
        lost = merged["prediction"].isna().to_numpy()
        if lost.any():
            raise ImiBenchError(f"{int(lost.sum())} held-out unit rows have no prediction: "
                                f"{_first_rows(merged, lost)}")
        return merged

    # ------------------------------------------------------------------ metrics
    def eval(self, predictions: pd.DataFrame, units: pd.DataFrame, folds: Sequence[Fold] | None = None) -> EvalResult:
        """Metrics per fold and pooled (see the module docstring)."""
        folds = self.folds(units) if folds is None else folds
        held = self.heldout(predictions, units, folds)
        out_folds = []
        for name, g in held.groupby("fold", sort=False):
            m = point_metrics(g["prediction"].to_numpy(float), g["n_correct"].to_numpy(np.int64),
                              g["n_responses"].to_numpy(np.int64), g["model"].to_numpy())
            if not self.probabilities:
                m["loglik"] = float("nan")
            if np.ptp(g["prediction"].to_numpy(float)) == 0:
                m.update(dict.fromkeys(CORRELATIONS, 0.0))
            out_folds.append({"name": str(name), "n_test": len(g), "metrics": m})
        mean, concat = self._pooled(held)
        extra = {**self._extra(held, mean), "concatenated": concat}
        return EvalResult(out_folds, mean, extra, held)

    def _metrics(self) -> tuple[str, ...]:
        return BOOTSTRAP_METRICS if self.probabilities else tuple(m for m in BOOTSTRAP_METRICS if m != "loglik")

    def _bootstrap(self, rows: pd.DataFrame) -> BootstrapResult:
        constant = np.ptp(rows["prediction"].to_numpy(float)) == 0  # ranks nothing: correlations are 0
        metrics = tuple(m for m in self._metrics() if not (constant and m in CORRELATIONS))
        boot = hierarchical_bootstrap(
            rows["prediction"].to_numpy(float), rows["n_correct"].to_numpy(np.int64),
            rows["n_responses"].to_numpy(np.int64), cluster=rows["unit_id"].to_numpy(), metrics=metrics,
            n_boot=self.n_boot, seed=self._boot_seed, confidence=self.confidence)
        if constant:
            for m in CORRELATIONS:
                boot.estimate[m] = 0.0
                boot.replicates[m] = np.zeros(self.n_boot)
        return boot

    def _pooled(self, held: pd.DataFrame) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, float]]]:
        """Fold-averaged metrics (headline) and metrics over the concatenated held-out rows, with CIs.

        Fold-averaged: the row-weighted mean of each fold's metric; its replicates average per-fold
        replicates (folds resampled independently). Concatenated rows mix between-fold offsets into
        correlations (under leave-one-model-out even a constant predictor gets one), so they are
        reported beside the headline, not instead of it.
        """
        def ci(est: float, reps: np.ndarray) -> dict[str, float]:
            lo, hi = percentile_ci(reps, self.confidence)
            return {"estimate": float(est), "ci_low": lo, "ci_high": hi}

        folds = [(len(g), self._bootstrap(g)) for _, g in held.groupby("fold", sort=False)]
        w = np.array([n for n, _ in folds], float) / sum(n for n, _ in folds)
        mean = {m: ci(float(np.dot(w, [b.estimate[m] for _, b in folds])),
                      np.einsum("f,fb->b", w, np.stack([b.replicates[m] for _, b in folds])))
                for m in self._metrics()}
        whole = self._bootstrap(held)
        return mean, {m: ci(whole.estimate[m], whole.replicates[m]) for m in self._metrics()}

    def _reliability(self, held: pd.DataFrame) -> tuple[float, list[dict[str, Any]]]:
        """Row-weighted mean over folds of the split-half reliability of each fold's held-out HIS."""
        per_fold, weights = [], []
        for name, g in held.groupby("fold", sort=False):
            rows = g.drop_duplicates(list(KEY))
            rel = split_half_reliability(rows["n_correct"].to_numpy(), rows["n_responses"].to_numpy(),
                                         seed=self._boot_seed, n_splits=200, n_boot=200)
            per_fold.append({"fold": str(name), **rel.to_dict()})
            weights.append(len(g))
        est = np.array([f["estimate"] for f in per_fold], float)
        ok = np.isfinite(est)
        mean = float(np.average(est[ok], weights=np.asarray(weights, float)[ok])) if ok.any() else float("nan")
        return mean, per_fold

    def _extra(self, held: pd.DataFrame, pooled: dict[str, dict[str, float]]) -> dict[str, Any]:
        pred = held["prediction"].to_numpy(float)
        k, n = held["n_correct"].to_numpy(np.int64), held["n_responses"].to_numpy(np.int64)
        models = held["model"].to_numpy()
        everything = point_metrics(pred, k, n, models)
        worst = worst_model(pred, k / n, models)
        reliability, per_fold = self._reliability(held)
        per_model = {str(m): point_metrics(g["prediction"].to_numpy(float), g["n_correct"].to_numpy(np.int64),
                                           g["n_responses"].to_numpy(np.int64))["spearman"]
                     for m, g in held.groupby("model", sort=True)}
        return {"reliability": reliability, "reliability_per_fold": per_fold,
                "ceiling_normalised": {m: ceiling_normalised(pooled[m]["estimate"], reliability)
                                       for m in CORRELATIONS},
                "model_rank_tau": everything.get("model_rank_tau"), "worst_model": worst.value,
                "worst_model_name": worst.model, "per_model_spearman": per_model}
