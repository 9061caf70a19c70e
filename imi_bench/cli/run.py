"""``imi-bench run`` (the main job) and ``imi-bench evaluate`` (external predictions)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from .._defaults import DEFAULT_FEATURES

__all__ = ["register"]


def _run(args: argparse.Namespace) -> int:
    from .._defaults import resolve_dataset
    from ..eval.harness import BASELINES, run_benchmark
    from ..eval.outputs import format_table, write_run
    from ..sim.cache import cache_dir

    t0 = time.perf_counter()
    release = resolve_dataset(args.dataset)
    predictors = [p.strip() for p in args.predictors.split(",")] if args.predictors else list(BASELINES)
    features = None if args.features == "none" else [f.strip() for f in args.features.split(",") if f.strip()]
    run = run_benchmark(release, split=args.split, predictors=predictors, features=features, seed=args.seed,
                        n_boot=args.n_boot,
                        device=args.device, cache_dir=args.cache or cache_dir() / "features",
                        dataset_id="imi-sim" if args.dataset == "imi-sim" else None, progress=not args.no_progress)
    written = write_run(run, args.out, args.split)
    print(format_table(run.summary(), args.split))
    print(f"{len(written)} files written to {Path(args.out) / args.split} in {time.perf_counter() - t0:.0f} s")
    return 0


def _read_predictions(path: Path) -> Any:
    import pandas as pd

    from ..errors import ImiDataError

    if not path.is_file():
        raise ImiDataError("no such predictions file", file=path)
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            return pd.read_parquet(path)
        return pd.read_csv(path)
    except Exception as e:
        raise ImiDataError(f"cannot read predictions: {e}", file=path) from None


def _evaluate(args: argparse.Namespace) -> int:
    import json

    from .._defaults import resolve_dataset
    from ..data.release import read_release
    from ..errors import ImiBenchError
    from ..eval.evaluator import Evaluator
    from ..predictors import unit_table

    preds = _read_predictions(Path(args.predictions))
    table = unit_table(read_release(resolve_dataset(args.dataset)).units())
    ev = Evaluator(args.split, n_boot=args.n_boot, seed=args.seed, probabilities=not args.scores)
    try:
        result = ev.eval(preds, table)
    except ImiBenchError as e:
        raise ImiBenchError(f"{args.predictions}: {e}") from None
    out = {"split": args.split, "folds": result.folds, "pooled": result.pooled, "extra": result.extra}
    for m, v in result.pooled.items():
        print(f"{m:<10} {v['estimate']:.4f}  [{v['ci_low']:.4f}, {v['ci_high']:.4f}]")
    cn = result.extra["ceiling_normalised"]["spearman"]
    print(f"ceiling-normalised Spearman {cn:.4f} (reliability {result.extra['reliability']:.3f})")
    if args.out:
        from .._io import atomic_write_text
        from ..eval.result import json_safe

        atomic_write_text(Path(args.out), json.dumps(json_safe(out), indent=2) + "\n")
    return 0


def register(sub: Any) -> None:
    """Add the ``run`` and ``evaluate`` commands."""
    p = sub.add_parser("run", help="the main job: featurize, train and evaluate every baseline under a split")
    p.add_argument("--dataset", default="imi-sim", help="'imi-sim' (default; built once, cached) or a release folder")
    p.add_argument("--split", default="leave-one-model-out", help="registered split scheme")
    p.add_argument("--out", default="build/run", help="output folder (results go to OUT/SPLIT/)")
    p.add_argument("--predictors", default=None, help="comma-separated predictor names (default: every baseline)")
    p.add_argument("--features", default=",".join(DEFAULT_FEATURES),
                   help="feature families to compute ('none': feature-free predictors only)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n-boot", type=int, default=1000, help="cluster-bootstrap resamples")
    p.add_argument("--device", default="cpu", help="featurizer device: cpu or cuda")
    p.add_argument("--cache", default=None, help="feature cache root (default: ~/.cache/imi-bench/features)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_run)

    e = sub.add_parser("evaluate", help="score external predictions (csv/parquet) under a split")
    e.add_argument("predictions", help="file with model, layer, channel, condition, difficulty, prediction[, fold]")
    e.add_argument("--dataset", default="imi-sim", help="'imi-sim' or a release folder")
    e.add_argument("--split", default="leave-one-model-out")
    e.add_argument("--scores", action="store_true", help="predictions are arbitrary scores, not probabilities")
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--n-boot", type=int, default=1000)
    e.add_argument("--out", default=None, help="write the metrics as JSON")
    e.set_defaults(func=_evaluate)
