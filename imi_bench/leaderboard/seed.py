"""Seed a store from an ``imi-bench run`` output folder: the benchmark, every baseline, the human ceiling row.

::

    from imi_bench.data import read_release
    with Store() as store:
        seed_from_run(store, "build/demo/leave-one-model-out", read_release(path))

Idempotent: a baseline whose predictions file is already stored (same SHA-256) is skipped, and the
ceiling row is added once per benchmark.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from .._io import file_digest
from ..data.ceiling import split_half_reliability
from ..errors import ImiBenchError, ImiDataError
from ..eval.evaluator import KEY, Evaluator
from ..eval.result import RunResult, dataset_digest, json_safe
from ..eval.splits import Fold, get_split
from .entries import ScoreRow, score_rows
from .schema import read_predictions
from .store import NewEntry, Store
from .submit import benchmark_folds, entry_extra, heldout_predictions

__all__ = ["CEILING_METHOD", "SeedOutcome", "ceiling_digest", "ceiling_entry", "run_splits", "seed_from_run"]

log = logging.getLogger(__name__)

CEILING_METHOD = "human split-half agreement"
_BASELINE_META = {"authors": ["imi-bench"], "contact": "imi-bench",
                  "code_url": None, "paper_url": None}


class ReleaseLike(Protocol):
    """What seeding needs of a :class:`~imi_bench.data.release.Release`."""

    files: dict[str, str]

    def units(self) -> pd.DataFrame:
        """Per-unit HIS table."""
        ...


@dataclass
class SeedOutcome:
    """What :func:`seed_from_run` did.

    Attributes:
        benchmark_id: The benchmark (new or existing).
        added: Baselines stored now (name → entry id).
        skipped: Baselines already stored (same predictions file).
        ceiling_id: Id of the ceiling row added now (None if it existed).
    """

    benchmark_id: int
    added: dict[str, int] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    ceiling_id: int | None = None


def run_splits(run_dir: str | Path) -> list[Path]:
    """The split folders of a run: ``run_dir`` itself if it has ``results/``, else its subfolders that do."""
    run_dir = Path(run_dir)
    if (run_dir / "results").is_dir():
        return [run_dir]
    found = sorted(p for p in run_dir.iterdir() if (p / "results").is_dir()) if run_dir.is_dir() else []
    if not found:
        raise ImiDataError("not an `imi-bench run` output folder (no results/ in it or its subfolders)", file=run_dir)
    return found


def _read_results(split_dir: Path) -> list[RunResult]:
    results = [RunResult.read(p) for p in sorted((split_dir / "results").glob("*.json"))]
    if not results:
        raise ImiDataError("no run results (results/*.json)", file=split_dir)
    first = results[0]
    for r in results[1:]:
        if (r.dataset.get("digest"), r.split.get("name"), r.split.get("config_digest"), r.split.get("seed")) != (
                first.dataset.get("digest"), first.split.get("name"), first.split.get("config_digest"),
                first.split.get("seed")):
            raise ImiDataError("run results disagree on the dataset or the split "
                               f"({r.predictor.get('name')} vs {first.predictor.get('name')})", file=split_dir)
    return results


def _fold_weighted(rels: list[dict[str, Any]], weights: list[int], key: str) -> float:
    v = np.array([r[key] for r in rels], float)
    ok = np.isfinite(v)
    return float(np.average(v[ok], weights=np.asarray(weights, float)[ok])) if ok.any() else float("nan")


def ceiling_digest(benchmark_id: int) -> str:
    """The ``file_sha256`` key of a benchmark's ceiling row (one per benchmark)."""
    return hashlib.sha256(f"imi-bench/ceiling/split-half/v1/{benchmark_id}".encode()).hexdigest()


def ceiling_entry(benchmark_id: int, units: pd.DataFrame, folds: Sequence[Fold], *, seed: int = 0,
                  n_boot: int = 1000) -> NewEntry:
    """The human ceiling row: split-half agreement of the held-out HIS, on the headline's footing.

    Its ``spearman`` is the split-half reliability (Spearman–Brown corrected) of each fold's
    held-out rows, averaged over folds with the Evaluator's row weights (like the headline, which
    averages per-fold correlations); ``ci_low``/``ci_high`` average the per-fold interval ends
    (conservative). The reliability over all rows at once is kept in ``extra``. Other metrics are
    undefined (NaN).
    """
    per_fold, weights = [], []
    for f in folds:
        rows = units.iloc[f.test].drop_duplicates(list(KEY))
        rel = split_half_reliability(rows["n_correct"].to_numpy(), rows["n_responses"].to_numpy(), seed=seed,
                                     n_splits=200, n_boot=n_boot)
        per_fold.append({"fold": f.name, **rel.to_dict()})
        weights.append(len(f.test))
    rows = units.drop_duplicates(list(KEY))
    overall = split_half_reliability(rows["n_correct"].to_numpy(), rows["n_responses"].to_numpy(), seed=seed,
                                     n_splits=200, n_boot=n_boot)
    score = ScoreRow("spearman", *(_fold_weighted(per_fold, weights, k) for k in ("estimate", "ci_low", "ci_high")))
    extra = json_safe({"reliability_per_fold": per_fold, "reliability_all_rows": overall.to_dict(),
                    "scoring": {"n_boot": n_boot, "seed": seed, "n_splits": 200}})
    meta = {**_BASELINE_META, "method": CEILING_METHOD,
            "description": "Split-half reliability (Spearman–Brown) of the held-out human scores: how well an "
                           "independent replication of the human experiment would agree with it."}
    return NewEntry(benchmark_id, "ceiling", CEILING_METHOD, "imi-bench", meta, ceiling_digest(benchmark_id), None,
                    [score], extra)


def _baseline_entry(result: RunResult, path: Path, bid: int, units: pd.DataFrame, folds: list[Fold],
                    n_boot: int) -> NewEntry:
    """A baseline's entry: its predictions re-read, type-checked and re-scored."""
    name = str(result.predictor.get("name"))
    preds, sha = read_predictions(path)
    ev = Evaluator(get_split(str(result.split["name"])), n_boot=n_boot, seed=int(result.seed))
    try:
        res = ev.eval(preds, units, folds)
    except ImiDataError:
        raise
    except ImiBenchError as e:
        raise ImiDataError(f"baseline predictions do not fit the benchmark: {e}", file=path) from None
    meta = {**_BASELINE_META, "method": name,
            "description": f"imi-bench baseline `{name}` (defined in baselines/ of the imi-bench repository)",
            "params": json_safe(result.predictor.get("params", {})), "seed": int(result.seed)}
    extra = entry_extra(res, n_boot=n_boot, seed=int(result.seed))
    return NewEntry(bid, "baseline", name, "imi-bench", meta, sha, heldout_predictions(res), score_rows(res), extra)


def seed_from_run(store: Store, run_dir: str | Path, release: ReleaseLike, *, dataset_id: str | None = None,
                  n_boot: int = 1000, predictors: Sequence[str] | None = None) -> SeedOutcome:
    """Register a run's benchmark and store its baselines and the human ceiling row.

    Args:
        store: The store (opened for writing).
        run_dir: One split folder of an ``imi-bench run`` output (``OUT/<split>``, with ``results/*.json``
            and ``predictions/*.csv``).
        release: The release the run used (its file digest must equal the run's ``dataset.digest``).
        dataset_id: Dataset id to register (default: the run's).
        n_boot: Bootstrap resamples for the CIs.
        predictors: Only these baselines (default: every result in the folder).

    Raises:
        ImiDataError: Missing or inconsistent run files, or a release that is not the run's.
    """
    split_dir = Path(run_dir)
    results = _read_results(split_dir)
    first = results[0]
    digest = dataset_digest(release.files)
    if digest != first.dataset.get("digest"):
        raise ImiDataError(f"the release's digest {digest[:12]}… is not the run's dataset digest "
                           f"{str(first.dataset.get('digest'))[:12]}…: seed with the dataset the run used",
                           file=split_dir)
    from ..predictors import unit_table

    units = unit_table(release.units())
    bid = store.add_benchmark(dataset_id or str(first.dataset.get("id")), digest, str(first.split["name"]),
                              str(first.split["config_digest"]), units, split_seed=int(first.split.get("seed", 0)))
    units = store.benchmark_units(bid)
    folds = benchmark_folds(store.benchmark(bid), units)
    out = SeedOutcome(bid)
    for result in results:
        name = str(result.predictor.get("name"))
        if predictors is not None and name not in predictors:
            continue
        path = split_dir / "predictions" / f"{name.replace(':', '-')}.csv"
        if not path.is_file():
            raise ImiDataError(f"no predictions file for baseline {name!r}", file=path)
        if store.has_file(bid, file_digest(path)) is not None:
            out.skipped.append(name)
            continue
        out.added[name] = store.add_submission(_baseline_entry(result, path, bid, units, folds, n_boot))
    if store.has_file(bid, ceiling_digest(bid)) is None:
        out.ceiling_id = store.add_submission(
            ceiling_entry(bid, units, folds, seed=int(first.split.get("seed", 0)), n_boot=n_boot))
    return out
