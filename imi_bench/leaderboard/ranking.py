"""Rank intervals and the set of entries tied with #1, from the stored predictions of a benchmark.

Every non-ceiling entry's predictions are joined to the benchmark's unit table on the unit-row key
(``model, layer, channel, condition, difficulty``); a held-out row is identified by its key and its
``fold``, so a row held out in two folds counts twice, exactly as in the Evaluator. Only rows that
every entry predicts are used, ordered identically for every entry (by key, then fold), with the
unit (``unit_id``) as the bootstrap and permutation cluster.

* :func:`rank_entries` gives each entry its rank (1 = best fold-averaged Spearman over those rows — the
  Evaluator's headline, each fold's Spearman averaged with row weights) with a
  percentile interval over bootstrap replicates shared by all entries
  (:func:`~imi_bench.eval.compare.rank_intervals`), and marks the entries *tied with #1*: #1 itself
  and every entry whose paired permutation test against #1
  (:func:`~imi_bench.eval.compare.compare`) has ``p ≥ 0.05``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..data.scores import stable_seed
from ..errors import ImiBenchError
from ..eval.compare import compare, rank_intervals

__all__ = ["KEYS", "AlignedRows", "align_predictions", "rank_entries"]

log = logging.getLogger(__name__)

#: The unit-row key shared by unit tables and predictions.
KEYS: tuple[str, ...] = ("model", "layer", "channel", "condition", "difficulty")
#: Significance level of the paired test against #1.
ALPHA = 0.05


@dataclass(frozen=True)
class AlignedRows:
    """Held-out rows predicted by every entry, in one shared order.

    Attributes:
        rows: ``model, layer, channel, condition, difficulty, fold, unit_id, n_correct, n_responses, his``.
        preds: Entry id → predictions of ``rows``, in the same order.
    """

    rows: pd.DataFrame
    preds: dict[str, np.ndarray]


def _keyed(frame: pd.DataFrame, with_fold: bool) -> pd.DataFrame:
    """``frame`` with its key columns as strings (units and predictions may store them with different dtypes)."""
    cols = [*KEYS, "fold"] if with_fold else list(KEYS)
    missing = [c for c in cols if c not in frame.columns]
    if missing:
        raise ImiBenchError(f"table lacks the columns {missing}")
    out = frame.copy()
    for c in cols:
        out[c] = _key_text(out[c])
    return out


def _key_text(values: pd.Series) -> pd.Series:
    """Key values as text; integral numbers without a decimal part (``3`` and ``3.0`` both give ``"3"``)."""
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        v = values.to_numpy(dtype=float)
        if np.isfinite(v).all() and (v == np.round(v)).all():
            return pd.Series(v.astype(np.int64).astype(str), index=values.index)
    return values.astype(str)


def align_predictions(units: pd.DataFrame, predictions: Mapping[str, pd.DataFrame]) -> AlignedRows:
    """Join each entry's predictions to the unit table and keep the rows every entry predicts.

    Args:
        units: The benchmark's unit table (``Store.benchmark_units``).
        predictions: Entry id → its stored predictions (``Store.predictions``: key columns, ``fold``,
            ``prediction``).

    Returns:
        The shared rows (sorted by key, then fold) and each entry's predictions of them.

    Raises:
        ImiBenchError: When a table lacks key columns or the unit table has duplicate keys.
    """
    u = _keyed(units, with_fold=False)
    if u.duplicated(list(KEYS)).any():
        raise ImiBenchError("the benchmark's unit table has duplicate unit rows")
    u = u[[*KEYS, "unit_id", "n_correct", "n_responses", "his"]]
    index: pd.MultiIndex | None = None
    series: dict[str, pd.Series] = {}
    for entry, frame in predictions.items():
        p = _keyed(frame, with_fold=True).drop_duplicates([*KEYS, "fold"], keep="first")
        s = p.set_index([*KEYS, "fold"])["prediction"].astype(float)
        series[entry] = s
        index = s.index if index is None else index.intersection(s.index)
    if index is None:
        return AlignedRows(u.assign(fold=pd.Series(dtype=str)).iloc[:0], {})
    rows = pd.DataFrame(index=index).reset_index().merge(u, on=list(KEYS), how="inner")
    rows = rows.sort_values([*KEYS, "fold"], kind="stable").reset_index(drop=True)
    lost = {e: len(s) - len(rows) for e, s in series.items() if len(s) != len(rows)}
    if lost:
        log.warning("rank intervals use the %d held-out rows every entry predicts; rows left out per entry: %s",
                    len(rows), lost)
    idx = pd.MultiIndex.from_frame(rows[[*KEYS, "fold"]])
    preds = {e: s.reindex(idx).to_numpy(dtype=float) for e, s in series.items()}
    return AlignedRows(rows, preds)


def _empty_ranks(entries: list[str]) -> pd.DataFrame:
    return pd.DataFrame({"entry": entries, "estimate": np.nan, "rank": np.nan, "rank_low": np.nan,
                         "rank_high": np.nan, "p_vs_first": np.nan, "tied_with_first": False})


def rank_entries(aligned: AlignedRows, *, n_boot: int = 500, n_perm: int = 500, seed: int = 0,
                 metric: str = "spearman") -> pd.DataFrame:
    """Rank intervals of every entry and whether each is tied with #1.

    Args:
        aligned: Rows and predictions from :func:`align_predictions`.
        n_boot: Bootstrap replicates of the rank intervals and of each paired comparison.
        n_perm: Permutations of each paired test against #1.
        seed: Seed; each comparison draws from a generator derived from it and the two entry ids.
        metric: Metric to rank on.

    Returns:
        ``entry, estimate, rank, rank_low, rank_high, p_vs_first, tied_with_first`` sorted by rank
        (ties by entry id); ``p_vs_first`` is the permutation p-value against #1 (NaN for #1 itself,
        and when the metric is undefined, e.g. for constant predictions: never tied). Without shared
        rows, every value is NaN and nothing is tied.
    """
    entries = list(aligned.preds)
    rows = aligned.rows
    if not entries or len(rows) < 3:
        return _empty_ranks(entries)
    k, n, cluster = rows["n_correct"].to_numpy(), rows["n_responses"].to_numpy(), rows["unit_id"].to_numpy()
    folds = rows["fold"].to_numpy()  # fold-averaged, like the headline
    ranks = rank_intervals(aligned.preds, k, n, cluster=cluster, metric=metric, n_boot=n_boot,
                           seed=stable_seed(seed, "rank_intervals"), strata=folds)
    first = str(ranks["entry"].iloc[0])
    p_values = {first: np.nan}
    for entry in ranks["entry"].iloc[1:]:
        c = compare(aligned.preds[entry], aligned.preds[first], k, n, cluster=cluster, metric=metric,
                    n_boot=n_boot, n_perm=n_perm, seed=stable_seed(seed, "compare", entry, first), strata=folds)
        p_values[str(entry)] = c.p_permutation
    ranks["p_vs_first"] = ranks["entry"].map(p_values).astype(float)
    defined = np.isfinite(ranks["estimate"].iloc[0])
    ranks["tied_with_first"] = bool(defined) & ((ranks["entry"] == first) | (ranks["p_vs_first"] >= ALPHA))
    return ranks
