"""Evaluation-statistics benchmark: hierarchical bootstrap + noise ceiling, vs a per-unit pandas loop.

Builds (with numpy, in memory) an IMI-sized evaluation: 767 unit rows of 9
models, each unit owning 1–3 rows (conditions), ≈ 170 responses per row
(≈ 130,000 responses), and a predictor of p(correct). Then times, side by
side in one run:

* **imi-bench**: ``hierarchical_bootstrap`` (units resampled with all their
  rows, vectorised over replicates) with 1,000 replicates of Spearman,
  Pearson, Kendall τ-b and the binomial log-likelihood, plus the split-half
  noise ceiling ``imi_bench.data.ceiling.noise_ceiling`` as it is, over all
  rows (200 splits, 1,000 CI resamples); the per-model + pooled variant (10
  groups) is timed too and printed apart;
* **baseline**: the same bootstrap written as a loop — per replicate, draw
  units, ``pd.concat`` their row groups from ``groupby``, score with scipy —
  run for ``--naive-reps`` replicates and extrapolated linearly to 1,000
  (both numbers are printed). The baseline has no ceiling; the ceiling's own
  loop comparison is in ``benchmarks/data_bench.py``.

Targets (issue 5): imi-bench bootstrap + ceiling ≤ 2 s, bootstrap ≥ 20× faster than the loop.
Run: ``python benchmarks/eval_bench.py [--boot 1000] [--naive-reps 50] [--repeats 3]``.
"""

from __future__ import annotations

import argparse
import logging

import numpy as np
import pandas as pd
from _timing import timed
from scipy import stats

from imi_bench.data.ceiling import noise_ceiling
from imi_bench.eval.bootstrap import hierarchical_bootstrap

METRICS = ("spearman", "pearson", "kendall", "loglik")
MODELS = ["googlenet", "resnet50", "resnet50-l2", "clip_resnet50", "wide_resnet50", "densenet_201", "convnext_b",
          "in1k_vit_b32", "clip_vit_b32"]


def make_evaluation(rows: int = 767, seed: int = 0) -> pd.DataFrame:
    """Unit rows with ``cluster``, ``model``, ``pred``, ``k``, ``n`` (units own 1–3 rows)."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 4, size=rows)
    sizes = sizes[: int(np.searchsorted(np.cumsum(sizes), rows)) + 1]
    sizes[-1] -= sizes.sum() - rows
    cluster = np.repeat(np.arange(len(sizes)), sizes)
    model = np.asarray(MODELS)[rng.integers(0, len(MODELS), size=len(sizes))][cluster]
    latent = rng.normal(size=len(sizes))[cluster]
    p = 0.5 + 0.5 / (1 + np.exp(-(0.8 + latent + 0.5 * rng.normal(size=rows))))
    n = rng.integers(150, 191, size=rows)
    pred = 0.5 + 0.5 / (1 + np.exp(-(0.8 + latent + 0.7 * rng.normal(size=rows))))
    return pd.DataFrame({"cluster": [f"u{c}" for c in cluster], "model": model, "pred": pred,
                         "k": rng.binomial(n, p), "n": n})


def fast_bootstrap(df: pd.DataFrame, n_boot: int) -> pd.DataFrame:
    return hierarchical_bootstrap(df["pred"].to_numpy(), df["k"].to_numpy(), df["n"].to_numpy(),
                                  cluster=df["cluster"].to_numpy(), metrics=METRICS, n_boot=n_boot,
                                  seed=0).to_frame()


def fast_ceiling(df: pd.DataFrame, per_model: bool) -> pd.DataFrame:
    """``noise_ceiling`` on the unit rows: over all rows (one group), or per model plus pooled."""
    units = df.rename(columns={"k": "n_correct", "n": "n_responses"}).assign(scope="*")
    return noise_ceiling(units, seed=0, by=("model",)) if per_model else noise_ceiling(units, seed=0, by=("scope",),
                                                                                       pooled=False)


def naive_bootstrap(df: pd.DataFrame, n_boot: int) -> pd.DataFrame:
    """What one writes without thinking about speed: a Python loop over replicates and drawn units."""
    rng = np.random.default_rng(0)
    groups = dict(tuple(df.groupby("cluster")))
    names = list(groups)
    out = []
    for _ in range(n_boot):
        rep = pd.concat([groups[u] for u in rng.choice(names, size=len(names))], ignore_index=True)
        y = rep["k"] / rep["n"]
        p = rep["pred"].clip(0.5, 1 - 1e-6)
        out.append({"spearman": stats.spearmanr(rep["pred"], y).statistic,
                    "pearson": stats.pearsonr(rep["pred"], y).statistic,
                    "kendall": stats.kendalltau(rep["pred"], y).statistic,
                    "loglik": float((rep["k"] * np.log(p) + (rep["n"] - rep["k"]) * np.log1p(-p)).sum()
                                    / rep["n"].sum())})
    boot = pd.DataFrame(out)
    return pd.DataFrame({"metric": list(METRICS), "ci_low": boot[list(METRICS)].quantile(0.025).to_numpy(),
                         "ci_high": boot[list(METRICS)].quantile(0.975).to_numpy()})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--boot", type=int, default=1000)
    parser.add_argument("--naive-reps", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    df = make_evaluation()
    print(f"evaluation: {len(df)} unit rows, {df['cluster'].nunique()} units, {df['model'].nunique()} models, "
          f"{int(df['n'].sum()):,} responses; {args.boot} replicates of {', '.join(METRICS)}")
    t_boot, frame = timed(fast_bootstrap, df, args.boot, repeats=args.repeats)
    t_ceil, ceiling = timed(fast_ceiling, df, False, repeats=args.repeats)
    t_ceil_models, _ = timed(fast_ceiling, df, True, repeats=args.repeats)
    t_naive, naive = timed(naive_bootstrap, df, args.naive_reps, repeats=1)
    t_naive_full = t_naive * args.boot / args.naive_reps
    total = t_boot + t_ceil
    median = f"(median of {args.repeats})"
    for label, seconds, note in [
        (f"imi-bench  hierarchical bootstrap ({args.boot})", t_boot, median),
        ("imi-bench  noise ceiling (all rows)", t_ceil, median),
        ("imi-bench  total", total, ""),
        ("           ceiling per model + pooled (10 groups)", t_ceil_models, f"{median}, not in the total"),
        (f"baseline   per-unit pandas loop ({args.naive_reps} replicates)", t_naive,
         f"measured, {t_naive_full:.1f} s extrapolated to {args.boot}"),
    ]:
        print(f"{label:<52}{seconds:7.3f} s {note}")
    ratio = t_naive_full / t_boot
    print(f"speed-up (bootstrap vs bootstrap): {ratio:.0f}x   (targets: total <= 2 s -> "
          f"{'met' if total <= 2 else 'MISSED'}, >= 20x -> {'met' if ratio >= 20 else 'MISSED'})")
    merged = frame.merge(naive, on="metric", suffixes=("", "_loop"))
    for r in merged.itertuples(index=False):
        print(f"  {r.metric:<9} estimate {r.estimate:8.4f}  CI imi-bench [{r.ci_low:.4f}, {r.ci_high:.4f}]  "
              f"loop ({args.naive_reps} reps) [{r.ci_low_loop:.4f}, {r.ci_high_loop:.4f}]")
    overall = ceiling.iloc[0]
    print(f"  overall split-half ceiling {overall['estimate']:.4f} [{overall['ci_low']:.4f}, {overall['ci_high']:.4f}]")


if __name__ == "__main__":
    main()
