"""Predictions of an example leaderboard entry: "sparser units are less interpretable", zero-shot.

The score of a unit row is minus its lifetime kurtosis (``lifetime_kurtosis_mean``, from the
imi-bench featurizer, over the unit row's own stimuli), mapped to [0.5, 1] by its rank among the
held-out rows of each fold. Nothing is fitted to human data, so every fold's held-out rows get the
same rule (``training_data.human_data: none`` in meta.yaml).

Run (after ``make demo``, which builds the study, caches its features and writes the unit table)::

    python leaderboard/examples/lifetime-kurtosis/make_predictions.py \
        [build/demo/leave-one-model-out/unit_table.parquet]
    imi-bench submit leaderboard/examples/lifetime-kurtosis
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
from scipy.stats import rankdata

from imi_bench import resolve_dataset
from imi_bench.data.release import read_release
from imi_bench.eval.evaluator import Evaluator
from imi_bench.eval.harness import load_unit_table
from imi_bench.sim.cache import cache_dir

KEY = ["model", "layer", "channel", "condition", "difficulty"]


def main() -> None:
    """Write ``predictions.csv`` next to this script."""
    if len(sys.argv) > 1:  # the unit table `imi-bench run` wrote
        table = pd.read_parquet(sys.argv[1])
    else:  # the default feature families: the cache entry `make demo` filled, so nothing is recomputed
        release = read_release(resolve_dataset("imi-sim"))
        table, _ = load_unit_table(release, cache_dir=cache_dir() / "features", progress=False)
    parts = []
    for fold in Evaluator("leave-one-model-out").folds(table):
        held = table.iloc[fold.test]
        score = -held["lifetime_kurtosis_mean"].fillna(held["lifetime_kurtosis_mean"].median())
        p = 0.5 + 0.5 * (rankdata(score) - 0.5) / len(score)
        parts.append(held[KEY].assign(fold=fold.name, prediction=p))
    out = Path(__file__).with_name("predictions.csv")
    tmp = out.with_suffix(".tmp")
    pd.concat(parts).to_csv(tmp, index=False)
    tmp.replace(out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
