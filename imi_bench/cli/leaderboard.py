"""``imi-bench validate``, ``submit`` and ``leaderboard seed`` (the site adds ``leaderboard build``/``serve``)."""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

from ..leaderboard.site_cli import register_site

__all__ = ["register"]

_DEFAULT_DB = "leaderboard/leaderboard.db"


def _fmt(v: float) -> str:
    return f"{v:.4f}" if math.isfinite(v) else "–"


def _limits(args: argparse.Namespace) -> tuple[Any, int]:
    from ..leaderboard.store import RateLimit

    if args.max_mb <= 0:
        from ..errors import ImiBenchError

        raise ImiBenchError(f"--max-mb must be positive, got {args.max_mb}")
    return RateLimit.parse(args.rate_limit), int(args.max_mb * 1024 * 1024)


def _validate(args: argparse.Namespace) -> int:
    from ..leaderboard.store import Store
    from ..leaderboard.submit import validate

    rate_limit, max_bytes = _limits(args)
    with Store(args.db, readonly=True) as store:
        checked = validate(args.submission, store, max_bytes=max_bytes, rate_limit=rate_limit)
    b, sub = checked.benchmark, checked.submission
    print(f"{sub.meta_path}: valid. {len(checked.heldout)} held-out unit rows of benchmark #{b['id']} "
          f"({b['dataset_id']} / {b['split']}, {len(checked.folds)} folds); predictions SHA-256 {sub.sha256}")
    return 0


def _print_outcome(outcome: Any, dry_run: bool) -> None:
    res = outcome.result
    for m, v in res.pooled.items():
        print(f"{m:<10} {_fmt(v['estimate'])}  [{_fmt(v['ci_low'])}, {_fmt(v['ci_high'])}]")
    print(f"ceiling-normalised Spearman {_fmt(float(res.extra['ceiling_normalised']['spearman']))}")
    where = "would rank" if dry_run else "ranks"
    print(f"{where} {outcome.rank} of {outcome.n_ranked} current entries of benchmark #{outcome.benchmark_id} "
          "(by fold-averaged Spearman)")
    print("dry run: nothing written" if dry_run else f"stored as entry #{outcome.submission_id}")


def _submit(args: argparse.Namespace) -> int:
    from ..leaderboard.store import Store
    from ..leaderboard.submit import submit

    rate_limit, max_bytes = _limits(args)
    with Store(args.db, readonly=args.dry_run) as store:
        outcome = submit(args.submission, store, n_boot=args.n_boot, dry_run=args.dry_run, rate_limit=rate_limit,
                         max_bytes=max_bytes)
    _print_outcome(outcome, args.dry_run)
    return 0


def _seed(args: argparse.Namespace) -> int:
    from .._defaults import resolve_dataset
    from ..data.release import read_release
    from ..leaderboard.seed import run_splits, seed_from_run
    from ..leaderboard.store import Store

    splits = run_splits(args.run)
    release = read_release(resolve_dataset(args.dataset))
    predictors = [p.strip() for p in args.predictors.split(",")] if args.predictors else None
    with Store(args.db) as store:
        for split_dir in splits:
            out = seed_from_run(store, split_dir, release, n_boot=args.n_boot, predictors=predictors)
            ceiling = f"ceiling row #{out.ceiling_id}" if out.ceiling_id else "ceiling row already there"
            print(f"{split_dir}: benchmark #{out.benchmark_id}: {len(out.added)} baseline(s) added, "
                  f"{len(out.skipped)} already stored; {ceiling}")
    print(f"store: {Path(args.db).absolute()}")
    return 0


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("submission", help="submission folder (meta.yaml + predictions.csv|parquet) or a meta.yaml")
    p.add_argument("--db", default=_DEFAULT_DB, metavar="PATH", help=f"leaderboard store (default {_DEFAULT_DB})")
    p.add_argument("--rate-limit", default="2/7", metavar="N/DAYS",
                   help="submissions per contact per benchmark in any DAYS days (default 2/7; 'off' disables)")
    p.add_argument("--max-mb", type=float, default=50.0, metavar="MB", help="size limit of the predictions file")


def register(sub: Any) -> None:
    """Add ``validate``, ``submit`` and ``leaderboard`` (``seed``, and the site's ``build``/``serve``)."""
    v = sub.add_parser("validate", help="check a leaderboard submission exactly as submit would, writing nothing")
    _common(v)
    v.set_defaults(func=_validate)

    s = sub.add_parser("submit", help="validate, re-score and store a leaderboard submission; print its rank")
    _common(s)
    s.add_argument("--dry-run", action="store_true", help="validate and score, write nothing")
    s.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples for the CIs")
    s.set_defaults(func=_submit)

    lb = sub.add_parser("leaderboard", help="the leaderboard store and site")
    lsub = lb.add_subparsers(dest="leaderboard_command", metavar="COMMAND", required=True)
    sd = lsub.add_parser("seed", help="register a benchmark from an `imi-bench run` folder, with its baselines "
                                      "and the human ceiling row (idempotent)")
    sd.add_argument("--run", required=True, metavar="DIR", help="run output folder (DIR/<split>/ or one split folder)")
    sd.add_argument("--db", default=_DEFAULT_DB, metavar="PATH", help=f"leaderboard store (default {_DEFAULT_DB})")
    sd.add_argument("--dataset", default="imi-sim", help="the release the run used: 'imi-sim' or a release folder")
    sd.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples for the CIs")
    sd.add_argument("--predictors", default=None, help="comma-separated baselines to seed (default: all in the run)")
    sd.set_defaults(func=_seed)
    register_site(lsub)
