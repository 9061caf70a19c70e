"""Data-layer benchmark: read + QC + HIS + model CIs + noise ceiling, vs a per-unit pandas loop.

Generates (once, cached under ``build/bench``) a toy release shaped like IMI —
767 distinct units of 9 models, 23 experiments (natural, synthetic, harder
queries; 1,915 unit × condition rows), 30 responses per unit and condition,
half of the HIT attempts failing a check and re-posted, ≈ 130,000 response
rows — then times, side by side in one run:

* **imi-bench**: ``read_release`` (pyarrow CSV, vectorised coercion, QC from the
  measured values), per-unit HIS with Wilson intervals, per-experiment BCa
  bootstrap (10,000 resamples), split-half ceiling (200 splits, 1,000 CI
  resamples);
* **baseline**: what one writes without thinking about speed, computing the
  same outputs — ``pd.read_csv``, per-HIT QC in ``groupby().apply``, a loop
  over units for HIS and Wilson, the same scipy bootstrap, and the same
  ceiling (per experiment, per condition, overall; 200 splits + 1,000 CI
  replicates each) by permuting each unit's responses in a loop. Its interval
  uses one split per bootstrap replicate where imi-bench averages five, so it
  does less work than imi-bench and the printed ratio understates the gap.

Targets (issue 2): whole pipeline ≤ 2 s and ≥ 20× faster than the baseline.
Run: ``python benchmarks/data_bench.py [--repeats 3]``.
"""

from __future__ import annotations

import argparse
import ast
import logging
from pathlib import Path

import numpy as np
import pandas as pd
from _timing import timed
from scipy import stats

from imi_bench.data import read_release
from imi_bench.data.toy import ToyExperiment, make_toy_release

BENCH_DIR = Path("build/bench/imi-like")
_MODELS = ["googlenet", "resnet50", "resnet50_l2", "clip_resnet50", "wide_resnet50", "densenet_201", "convnext_b",
           "in1k_vit_b32", "clip_vit_b32"]
_UNITS = dict(zip(_MODELS, [84, 84, 84, 84, 84, 84, 84, 88, 91], strict=True))  # 767 distinct units
#: IMI's design (imi-release.md §7): natural for all, synthetic for 7, hard conditions for two ResNets.
EXPERIMENTS = (
    [ToyExperiment(m, "natural", _UNITS[m]) for m in _MODELS]
    + [ToyExperiment(m, "optimized", _UNITS[m]) for m in _MODELS[:7]]
    + [ToyExperiment(f"{m}_{h}", "natural", 80) for m in ("resnet50", "clip_resnet50")
       for h in ("hard99", "hard95", "hard85")]
    + [ToyExperiment("resnet50_hard95", "optimized", 80)]
)


def ensure_release() -> Path:
    """The benchmark release: responses_all.csv only (the input of the QC step)."""
    target = BENCH_DIR / "responses_all.csv"
    if not target.exists():
        full = BENCH_DIR.with_name("imi-like-full")
        make_toy_release(full, experiments=EXPERIMENTS, responses_per_unit=30, fail_rate=0.5, seed=1,
                         overwrite=True)
        BENCH_DIR.mkdir(parents=True, exist_ok=True)
        (full / "responses_all.csv").rename(target)
        (full / "layer_order.json").rename(BENCH_DIR / "layer_order.json")
    return BENCH_DIR


def fast(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    release = read_release(folder)
    return release.units(), release.model_scores(seed=0), release.noise_ceiling(seed=0)


def _baseline_qc(df: pd.DataFrame) -> pd.Series:
    def per_hit(h: pd.DataFrame) -> bool:
        catch = ast.literal_eval(h["catch_trials_details"].iloc[0])["ratio"]
        total = ast.literal_eval(h["total_response_time_details"].iloc[0])["total_time"]
        instr = ast.literal_eval(h["instruction_time_details"].iloc[0])["total_time"]
        rows = ast.literal_eval(h["row_variability_details"].iloc[0])
        blocks = ast.literal_eval(h["demo_trials_details"].iloc[0])["n_demo_trials_blocks"]
        ok = (np.isnan(catch) or catch >= 0.8) and 135 <= total <= 2500 and instr >= 15 and blocks <= 3
        ok = ok and (rows["n_upper_row"] >= 5 and rows["n_lower_row"] >= 5)
        return bool(ok and not h["multi_participation"].any())

    keep = df.groupby(["participant_id", "task_id", "response_index"]).apply(per_hit, include_groups=False)
    keys = pd.MultiIndex.from_frame(df[["participant_id", "task_id", "response_index"]])
    return pd.Series(keep.reindex(keys).to_numpy(), index=df.index)


def baseline(folder: Path, n_splits: int = 200) -> tuple[pd.DataFrame, float]:
    df = pd.read_csv(folder / "responses_all.csv")
    df["keep"] = _baseline_qc(df)
    main = df[df["keep"] & ~df["is_demo"] & ~df["catch_trial"] & (df["model"] != "catch/manual")]
    rows = []
    for (model, mode, layer, channel) in main[["model", "mode", "layer", "channel"]].drop_duplicates().itertuples(
            index=False):
        u = main[(main["model"] == model) & (main["mode"] == mode) & (main["layer"] == layer)
                 & (main["channel"] == channel)]
        k, n = int(u["correct"].sum()), len(u)
        ci = stats.binomtest(k, n).proportion_ci(method="wilson")
        rows.append({"model": model, "mode": mode, "layer": layer, "channel": int(channel), "his": k / n,
                     "responses": u["correct"].to_numpy(), "lo": ci.low, "hi": ci.high})
    units = pd.DataFrame(rows)
    for _, g in units.groupby(["model", "mode"]):
        stats.bootstrap((g["his"].to_numpy(),), np.mean, n_resamples=10_000, rng=0)
    rng = np.random.default_rng(0)
    groups = [g for _, g in units.groupby(["model", "mode"])] + [g for _, g in units.groupby("mode")] + [units]
    ceilings = [_baseline_reliability(list(g["responses"]), rng, n_splits) for g in groups]
    return units, ceilings[-1]


def _split_half_r(responses: list[np.ndarray], rng: np.random.Generator) -> float:
    a, b = [], []
    for resp in responses:
        perm = rng.permutation(resp)
        a.append(perm[: len(resp) // 2].mean())
        b.append(perm[len(resp) // 2:].mean())
    r = stats.spearmanr(a, b).statistic
    return 2 * r / (1 + r)


def _baseline_reliability(responses: list[np.ndarray], rng: np.random.Generator, n_splits: int,
                          n_boot: int = 1000) -> float:
    """Same estimand and CI as imi-bench: mean over splits, units resampled with fresh splits for the CI."""
    estimate = float(np.mean([_split_half_r(responses, rng) for _ in range(n_splits)]))
    boot = [_split_half_r([responses[i] for i in rng.integers(0, len(responses), len(responses))], rng)
            for _ in range(n_boot)]
    np.percentile(boot, [2.5, 97.5])
    return estimate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    folder = ensure_release()
    with open(folder / "responses_all.csv", encoding="utf-8") as f:
        n_rows = sum(1 for _ in f) - 1
    t_fast, (units, _scores, ceiling) = timed(fast, folder, repeats=args.repeats)
    t_base, (base_units, base_ceiling) = timed(baseline, folder, repeats=1)
    mode = units["condition"].map({"natural": "natural", "synthetic": "optimized"})
    merged = units.drop(columns="model").rename(columns={"raw_model": "model"}).assign(mode=mode).merge(
        base_units, on=["model", "mode", "layer", "channel"], suffixes=("", "_base"))
    assert len(merged) == len(units) == len(base_units), (len(merged), len(units), len(base_units))
    np.testing.assert_allclose(merged["his"], merged["his_base"])
    np.testing.assert_allclose(merged["his_ci_low"], merged["lo"])
    overall = ceiling[(ceiling["model"] == "*") & (ceiling["condition"] == "*")]["estimate"].iloc[0]
    n_units = len(units[["model", "layer", "channel"]].drop_duplicates())
    print(f"release: {n_rows:,} response rows, {n_units} units, {len(units)} unit × condition rows")
    print(f"imi-bench  read+QC+HIS+CIs+ceiling: {t_fast:7.3f} s (median of {args.repeats})")
    print(f"baseline   per-unit pandas loop:     {t_base:7.3f} s")
    print(f"speed-up: {t_base / t_fast:.1f}x   (targets: <= 2 s -> {'met' if t_fast <= 2 else 'MISSED'}, "
          f">= 20x -> {'met' if t_base / t_fast >= 20 else 'MISSED'})")
    print(f"overall split-half ceiling: imi-bench {overall:.4f}, baseline {base_ceiling:.4f} (same estimand)")


if __name__ == "__main__":
    main()
