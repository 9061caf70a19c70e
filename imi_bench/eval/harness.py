"""The main job: featurize a release, train every baseline under a split, evaluate, write results.

:func:`run_benchmark` is what ``imi-bench run`` calls; :func:`cross_validate` is the piece users
call with their own predictor.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from .._defaults import DEFAULT_FEATURES
from ..data.release import Release, read_release
from ..predictors import Predictor, get_predictor, unit_table
from .evaluator import KEY, EvalResult, Evaluator
from .result import RunResult, dataset_digest
from .splits import Fold

__all__ = ["BASELINES", "BenchmarkRun", "cross_validate", "load_unit_table", "run_benchmark"]

log = logging.getLogger(__name__)
#: The baselines ``imi-bench run`` trains, in table order.
BASELINES = ("constant", "random", "depth", "family:imi_b4", "family:sparseness", "family:sis",
             "family:param_saliency", "family:lesion", "family:mis", "mis", "ridge", "lightgbm")


def cross_validate(predictor: Predictor | str, table: pd.DataFrame, folds: Sequence[Fold],
                   params: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """Fit on each fold's training rows, predict its test rows.

    Args:
        predictor: A predictor or a registered name (a fresh clone is fitted per fold).
        table: The unit table.
        folds: The split's folds.
        params: Constructor parameters when ``predictor`` is a name.

    Returns:
        Predictions: the key columns, ``fold`` and ``prediction``.
    """
    from sklearn.base import clone

    proto = get_predictor(predictor, **(params or {})) if isinstance(predictor, str) else predictor
    parts = []
    for fold in folds:
        train, test = table.iloc[fold.train], table.iloc[fold.test]
        model = clone(proto).fit(train, train["his"].to_numpy(float), train["n_responses"].to_numpy(float))
        parts.append(test[list(KEY)].assign(fold=fold.name, prediction=np.asarray(model.predict(test), float)))
    return pd.concat(parts, ignore_index=True)


def load_unit_table(release: Release, *, features: Sequence[str] | None = DEFAULT_FEATURES, device: str = "cpu",
                    cache_dir: str | Path | None = None, progress: bool = True) -> tuple[pd.DataFrame, dict[str, str]]:
    """The release's unit table joined with feature families (featurized through the cache; None: no features).

    Returns:
        The table and model → feature hash.
    """
    from ..featurize.dataset import featurize_release

    units = release.units()
    if not features:
        return unit_table(units), {}
    feats = featurize_release(release, features=features, device=device, cache_dir=cache_dir, progress=progress)
    hashes = feats.groupby("model")["feature_hash"].first().to_dict()
    return unit_table(units, feats.drop(columns=["feature_hash"])), hashes


@dataclass
class BenchmarkRun:
    """Results of :func:`run_benchmark`: one :class:`RunResult` and one :class:`EvalResult` per predictor."""

    results: dict[str, RunResult]
    evals: dict[str, EvalResult]
    table: pd.DataFrame

    def summary(self) -> pd.DataFrame:
        """One row per predictor: pooled metrics with CIs, ceiling-normalised Spearman, model ranking."""
        rows = []
        for name, r in self.results.items():
            p, e = r.pooled, r.extra
            rows.append({
                "predictor": name,
                "spearman": p["spearman"]["estimate"], "spearman_lo": p["spearman"]["ci_low"],
                "spearman_hi": p["spearman"]["ci_high"], "spearman_ceiling_norm": e["ceiling_normalised"]["spearman"],
                "kendall": p["kendall"]["estimate"], "pearson": p["pearson"]["estimate"], "r2": p["r2"]["estimate"],
                "mae": p["mae"]["estimate"], "loglik": p["loglik"]["estimate"],
                "model_rank_tau": e["model_rank_tau"], "worst_model_spearman": e["worst_model"],
                "worst_model": e["worst_model_name"]})
        return pd.DataFrame(rows)


def run_benchmark(release: str | Path | Release, *, split: str = "leave-one-model-out",
                  predictors: Sequence[str] = BASELINES, features: Sequence[str] | None = DEFAULT_FEATURES,
                  seed: int = 0, n_boot: int = 1000, device: str = "cpu",
                  cache_dir: str | Path | None = None, dataset_id: str | None = None,
                  progress: bool = True) -> BenchmarkRun:
    """Featurize (cached), then cross-validate and evaluate every predictor under ``split``.

    Args:
        release: A release folder or :class:`Release`.
        split: Registered split scheme.
        predictors: Registered predictor names.
        features: Feature families to compute (None: none; feature-free predictors only).
        seed: Seed of the split and the bootstrap.
        n_boot: Bootstrap resamples.
        device: Featurizer device.
        cache_dir: Feature cache root.
        dataset_id: Name recorded in the results (default: the release folder's name).
        progress: Progress bars.
    """
    rel = release if isinstance(release, Release) else read_release(release)
    table, hashes = load_unit_table(rel, features=features, device=device, cache_dir=cache_dir, progress=progress)
    evaluator = Evaluator(split, n_boot=n_boot, seed=seed)
    folds = evaluator.folds(table)
    dataset = {"id": dataset_id or Path(rel.root).name, "digest": dataset_digest(rel.files)}
    split_info = {"name": evaluator.scheme.name, "config_digest": evaluator.scheme.config_digest(), "seed": seed,
                  "folds": [f.name for f in folds]}
    results, evals = {}, {}
    for name in tqdm(predictors, desc=f"baselines under {split}", disable=not progress):
        t0 = time.perf_counter()
        proto = get_predictor(name)
        preds = cross_validate(proto, table, folds)
        ev = evaluator.eval(preds, table, folds)
        uses_features = name not in ("constant", "random", "depth")
        results[name] = RunResult(
            dataset=dataset, split=split_info, predictor={"name": name, "params": proto.get_params()}, seed=seed,
            folds=ev.folds, pooled=ev.pooled, extra=ev.extra, feature_hash=hashes if uses_features else {},
            runtime_s=time.perf_counter() - t0)
        evals[name] = ev
        log.info("%s: spearman %.3f", name, ev.pooled["spearman"]["estimate"])
    return BenchmarkRun(results, evals, table)
