"""Validate, re-score and store a submission: what ``imi-bench validate`` and ``imi-bench submit`` run.

::

    with Store("leaderboard/leaderboard.db") as store:
        checked = validate("my-entry/", store)          # every check submit makes; writes nothing
        outcome = submit("my-entry/", store)            # validate → re-score → store (one transaction)
        print(outcome.rank, outcome.n_ranked)

Numbers in the meta are never trusted: every entry is re-scored by the
:class:`~imi_bench.eval.evaluator.Evaluator` on the benchmark's stored unit table and folds.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from .._version import __version__
from ..errors import ImiBenchError, ImiDataError
from ..eval.evaluator import KEY, EvalResult, Evaluator
from ..eval.result import json_safe
from ..eval.splits import Fold, get_split
from .entries import rank_of, score_rows
from .schema import DEFAULT_MAX_BYTES, Submission, load_submission
from .store import NewEntry, RateLimit, Store, utc_now

__all__ = ["DEFAULT_RATE_LIMIT", "Checked", "SubmitOutcome", "benchmark_folds", "check_submission", "entry_extra",
           "heldout_predictions", "score", "submit", "validate"]

log = logging.getLogger(__name__)

#: Default: two submissions per submitter per benchmark in any 7 days.
DEFAULT_RATE_LIMIT = RateLimit(2, 7)


@dataclass
class Checked:
    """A submission that passed every check against a store (nothing written yet).

    Attributes:
        submission: The submission as read.
        benchmark: The benchmark's row (:meth:`Store.benchmark`).
        units: The benchmark's unit table.
        folds: The benchmark's folds.
        heldout: Held-out rows joined with their predictions (``fold`` included).
    """

    submission: Submission
    benchmark: dict[str, Any]
    units: pd.DataFrame
    folds: list[Fold]
    heldout: pd.DataFrame


@dataclass
class SubmitOutcome:
    """What :func:`submit` did.

    Attributes:
        submission_id: The new entry's id (None for a dry run).
        benchmark_id: The benchmark.
        result: The Evaluator's result.
        rank: Rank of the headline Spearman among current submissions and baselines (1 = best).
        n_ranked: How many current submissions and baselines are ranked, this one included.
    """

    submission_id: int | None
    benchmark_id: int
    result: EvalResult
    rank: int
    n_ranked: int


def benchmark_folds(benchmark: dict[str, Any], units: pd.DataFrame) -> list[Fold]:
    """The benchmark's folds: its split scheme (checked against the registered digest) with its seed.

    Raises:
        ImiBenchError: The split is unknown here, or its definition changed since the benchmark was registered.
    """
    scheme = get_split(benchmark["split"])
    if scheme.config_digest() != benchmark["split_digest"]:
        raise ImiBenchError(f"split {benchmark['split']!r} here has config digest {scheme.config_digest()[:12]}…, "
                            f"but benchmark #{benchmark['id']} was registered with {benchmark['split_digest'][:12]}…: "
                            "the split definition changed; use the imi-bench version the benchmark names")
    return Evaluator(scheme, seed=int(benchmark["split_seed"])).folds(units)


def check_submission(sub: Submission, store: Store, *, rate_limit: RateLimit | None = DEFAULT_RATE_LIMIT,
                     now: datetime | None = None) -> Checked:
    """Check a read submission against the store: benchmark, split, predictions, duplicates, corrections, rate limit.

    Raises:
        ImiBenchError: The first check that fails (``ImiDataError`` naming the file for prediction problems).
    """
    meta = sub.meta
    bench = store.find_benchmark(meta.dataset, meta.split, meta.dataset_digest)
    units = store.benchmark_units(bench["id"])
    folds = benchmark_folds(bench, units)
    try:
        held = Evaluator(get_split(meta.split), seed=int(bench["split_seed"])).heldout(sub.predictions, units, folds)
    except ImiDataError:
        raise
    except ImiBenchError as e:
        raise ImiDataError(str(e), file=sub.predictions_path) from None
    store.check_new(bench["id"], sub.sha256, meta.submitter, supersedes=meta.supersedes, rate_limit=rate_limit,
                    now=now)
    return Checked(sub, bench, units, folds, held)


def validate(path: str | Path, store: Store, *, max_bytes: int = DEFAULT_MAX_BYTES,
             rate_limit: RateLimit | None = DEFAULT_RATE_LIMIT, now: datetime | None = None) -> Checked:
    """Every check :func:`submit` makes, without scoring or writing anything.

    Args:
        path: Submission folder or ``meta.yaml``.
        store: The leaderboard store.
        max_bytes: Size limit of the predictions file.
        rate_limit: Submissions allowed per submitter per benchmark (None: no limit).
        now: The time to check the rate limit at (default: now).
    """
    return check_submission(load_submission(path, max_bytes=max_bytes), store, rate_limit=rate_limit, now=now)


def score(checked: Checked, *, n_boot: int = 1000, seed: int | None = None) -> EvalResult:
    """Re-score a checked submission on the benchmark's units and folds (bootstrap seed: the meta's)."""
    seed = checked.submission.meta.seed if seed is None else seed
    ev = Evaluator(get_split(checked.benchmark["split"]), n_boot=n_boot, seed=seed)
    return ev.eval(checked.submission.predictions, checked.units, checked.folds)


def entry_extra(result: EvalResult, *, n_boot: int, seed: int) -> dict[str, Any]:
    """The ``extra_json`` stored with an entry: the Evaluator's ``extra``, per-fold metrics and scoring provenance."""
    return json_safe({**result.extra, "folds": result.folds,
                   "scoring": {"n_boot": n_boot, "seed": seed, "imi_bench_version": __version__}})


def heldout_predictions(result: EvalResult) -> pd.DataFrame:
    """The held-out predictions stored with an entry (key, ``fold``, ``prediction``)."""
    assert result.heldout is not None
    return result.heldout[[*KEY, "fold", "prediction"]].reset_index(drop=True)


def submit(path: str | Path, store: Store, *, n_boot: int = 1000, dry_run: bool = False,
           rate_limit: RateLimit | None = DEFAULT_RATE_LIMIT, max_bytes: int = DEFAULT_MAX_BYTES,
           now: datetime | None = None) -> SubmitOutcome:
    """Validate, re-score and store a submission (one transaction), and rank it.

    Args:
        path: Submission folder or ``meta.yaml``.
        store: The leaderboard store.
        n_boot: Bootstrap resamples for the CIs.
        dry_run: Validate and score, write nothing.
        rate_limit: Submissions allowed per submitter per benchmark (None: no limit).
        max_bytes: Size limit of the predictions file.
        now: Submission time (default: now).

    Raises:
        ImiBenchError: Any failed check; the store is then unchanged.
    """
    now = now or utc_now()
    checked = validate(path, store, max_bytes=max_bytes, rate_limit=rate_limit, now=now)
    meta, bid = checked.submission.meta, int(checked.benchmark["id"])
    result = score(checked, n_boot=n_boot)
    spearman = float(result.pooled["spearman"]["estimate"])
    if dry_run:
        rank, n = rank_of(store.entries(bid), spearman, exclude=meta.supersedes)
        return SubmitOutcome(None, bid, result, rank, n)
    entry = NewEntry(bid, "submission", meta.method, meta.submitter, meta.model_dump(mode="json"),
                     checked.submission.sha256, heldout_predictions(result), score_rows(result),
                     entry_extra(result, n_boot=n_boot, seed=meta.seed), meta.supersedes)
    sid = store.add_submission(entry, rate_limit=rate_limit, now=now)
    rank, n = rank_of(store.entries(bid), spearman, exclude=sid)
    return SubmitOutcome(sid, bid, result, rank, n)
