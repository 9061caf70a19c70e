"""Writing a benchmark run: one RunResult JSON per predictor, the results table (Markdown + CSV), a plot.

Everything is staged in a temporary folder next to ``out`` and moved into place at the end, so an
interrupted run leaves no half-written results.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import pandas as pd

from .._io import atomic_write_text
from .harness import BenchmarkRun

__all__ = ["format_table", "write_run"]


def _fmt(v: object, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)) or (isinstance(v, str) and v == "nan"):
        return "–"
    return f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def format_table(summary: pd.DataFrame, split: str) -> str:
    """The results table as Markdown (Spearman with its 95% CI, ceiling-normalised beside it)."""
    head = ("| predictor | Spearman [95% CI] | ρ / √rel | Kendall τ | Pearson | R² | MAE | log-lik / resp. "
            "| model-rank τ | worst model (ρ) |")
    lines = [f"Held-out unit rows under `{split}`: metrics averaged over folds (row-weighted); 95% CIs from a "
             "cluster bootstrap over units (1,000 resamples by default); ρ / √rel: Spearman over the square root "
             "of the held-out HIS's split-half reliability.", "",
             head, "|" + "---|" * 10]
    for r in summary.itertuples(index=False):
        lines.append(
            f"| {r.predictor} | {_fmt(r.spearman)} [{_fmt(r.spearman_lo)}, {_fmt(r.spearman_hi)}] "
            f"| {_fmt(r.spearman_ceiling_norm)} | {_fmt(r.kendall)} | {_fmt(r.pearson)} | {_fmt(r.r2)} "
            f"| {_fmt(r.mae)} | {_fmt(r.loglik, 4)} | {_fmt(r.model_rank_tau)} "
            f"| {_fmt(r.worst_model)} ({_fmt(r.worst_model_spearman)}) |")
    return "\n".join(lines) + "\n"


def _plot(run: BenchmarkRun, path: Path, split: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(run.evals)
    cols = min(4, len(names))
    rows = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.0 * rows), squeeze=False, sharey=True)
    models = sorted(run.table["model"].unique())
    colours = {m: plt.get_cmap("tab10")(i % 10) for i, m in enumerate(models)}
    for ax, name in zip(axes.flat, names, strict=False):
        held = run.evals[name].heldout
        assert held is not None
        for m, g in held.groupby("model"):
            ax.scatter(g["prediction"], g["his"], s=6, alpha=0.6, color=colours[str(m)], label=str(m))
        rho = run.evals[name].pooled["spearman"]["estimate"]
        ax.set_title(f"{name}  ρ={rho:.2f}", fontsize=9)
        ax.set_xlabel("predicted p(correct)", fontsize=8)
    for ax in axes[:, 0]:
        ax.set_ylabel("human HIS", fontsize=8)
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(len(models), 4), fontsize=8, frameon=False)
    fig.suptitle(f"Predicted vs human, held-out unit rows ({split})", fontsize=10)
    fig.tight_layout(rect=(0, 0.06, 1, 0.97))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_run(run: BenchmarkRun, out: str | Path, split: str) -> dict[str, Path]:
    """Write a run's results, predictions, table and plot into ``out/<split>``.

    Files: ``results/<predictor>.json``, ``predictions/<predictor>.csv``, ``results.md``, ``results.csv``,
    ``unit_table.parquet`` (the unit table with every feature column) and ``<split>.png``. Files of the
    same names are replaced; other files are left alone.
    """
    out = Path(out) / split
    out.mkdir(parents=True, exist_ok=True)
    stage = Path(out.parent / f".staging-{split}")
    shutil.rmtree(stage, ignore_errors=True)
    (stage / "results").mkdir(parents=True)
    (stage / "predictions").mkdir()
    try:
        for name, result in run.results.items():
            result.write(stage / "results" / f"{name.replace(':', '-')}.json")
            held = run.evals[name].heldout
            if held is not None:  # the exact rows a leaderboard submission of this baseline would hold
                held[["model", "layer", "channel", "condition", "difficulty", "fold", "prediction"]].to_csv(
                    stage / "predictions" / f"{name.replace(':', '-')}.csv", index=False)
        summary = run.summary()
        summary.to_csv(stage / "results.csv", index=False)
        run.table.to_parquet(stage / "unit_table.parquet", index=False)  # what the predictors saw: build on it
        atomic_write_text(stage / "results.md", format_table(summary, split))
        _plot(run, stage / f"{split}.png", split)
        written = {}
        for item in sorted(stage.rglob("*")):
            if item.is_file():
                target = out / item.relative_to(stage)
                target.parent.mkdir(parents=True, exist_ok=True)
                item.replace(target)
                written[str(item.relative_to(stage))] = target
        return written
    finally:
        shutil.rmtree(stage, ignore_errors=True)
