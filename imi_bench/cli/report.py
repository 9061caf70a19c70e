"""``imi-bench report``: IMI's analyses of human interpretability scores, from any release."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["register"]


def _report(args: argparse.Namespace) -> int:
    from .._defaults import resolve_dataset
    from ..eval.report import build_report

    report = build_report(resolve_dataset(args.dataset), seed=args.seed, n_resamples=args.n_resamples)
    print(report.to_markdown())
    if args.out is not None:
        written = report.write(args.out)
        print(f"\n{len(written)} files written to {args.out}: {', '.join(p.name for p in written)}")
    return 0


def register(sub: Any) -> None:
    """Add the ``report`` command."""
    p = sub.add_parser("report", help="IMI's analyses (per-model HIS, Kruskal–Wallis + Conover–Holm, depth and "
                                      "natural-vs-synthetic Spearman) of a release")
    p.add_argument("--dataset", required=True, metavar="PATH|imi-sim",
                   help="'imi-sim' (the cached default study) or a release folder")
    p.add_argument("--out", default=None, metavar="DIR", help="folder for report.md, one CSV per table and PNG figures")
    p.add_argument("--seed", type=int, default=0, metavar="N", help="bootstrap seed (default 0)")
    p.add_argument("--n-resamples", type=int, default=2000, metavar="N", help="bootstrap resamples (default 2000)")
    p.set_defaults(func=_report)
