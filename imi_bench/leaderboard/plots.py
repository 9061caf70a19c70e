"""PNG figures of the leaderboard site (matplotlib, Agg backend).

* :func:`entry_plot`: one entry's predictions against human HIS, one point per held-out unit row,
  coloured by model.
* :func:`summary_plot`: every entry's headline metric with its 95% CI, the human ceiling as a line.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["entry_plot", "summary_plot"]

_KIND_COLOURS = {"submission": "#1f5fa8", "baseline": "#8a8a8a", "ceiling": "#b5651d"}


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def entry_plot(rows: pd.DataFrame, prediction: np.ndarray, title: str, path: Path,
               models: Sequence[str]) -> None:
    """Scatter of one entry's predictions against human HIS, coloured by model.

    Args:
        rows: Held-out rows (``model`` and ``his`` columns).
        prediction: The entry's prediction of each row.
        title: Figure title (drawn as plain text).
        path: PNG to write.
        models: Every model of the benchmark, in legend order (colours stay the same across entries).
    """
    plt = _pyplot()
    colours = {m: plt.get_cmap("tab10")(i % 10) for i, m in enumerate(models)}
    fig, ax = plt.subplots(figsize=(4.6, 3.8))
    model_of = rows["model"].astype(str).to_numpy()
    his = rows["his"].to_numpy(dtype=float)
    for m in models:
        sel = model_of == m
        if sel.any():
            ax.scatter(prediction[sel], his[sel], s=9, alpha=0.65, color=colours[m], label=m)
    ax.set_xlabel("predicted p(correct)", fontsize=8)
    ax.set_ylabel("human HIS (fraction correct)", fontsize=8)
    ax.set_title(_short(title, 70), fontsize=9)
    ax.tick_params(labelsize=7)
    if len(rows):
        ax.legend(fontsize=7, frameon=False, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def summary_plot(entries: pd.DataFrame, path: Path, metric: str = "spearman") -> None:
    """Every entry's ``metric`` with its CI bars, best at the top; ceilings as dashed vertical lines.

    Args:
        entries: ``method``, ``kind``, ``metric``, ``metric_ci_low``, ``metric_ci_high`` per entry.
        path: PNG to write.
        metric: Metric column to plot.
    """
    plt = _pyplot()
    ceiling = entries[entries["kind"] == "ceiling"]
    rows = entries[(entries["kind"] != "ceiling") & np.isfinite(entries[metric].astype(float))]
    rows = rows.sort_values(metric, ascending=True, kind="stable")
    fig, ax = plt.subplots(figsize=(6.4, max(1.6, 0.34 * len(rows) + 1.0)))
    y = np.arange(len(rows))
    est = rows[metric].to_numpy(dtype=float)
    low = np.nan_to_num(est - rows[f"{metric}_ci_low"].to_numpy(dtype=float), nan=0.0)
    high = np.nan_to_num(rows[f"{metric}_ci_high"].to_numpy(dtype=float) - est, nan=0.0)
    colours = [_KIND_COLOURS.get(str(k), "#1f5fa8") for k in rows["kind"]]
    ax.hlines(y, est - np.clip(low, 0, None), est + np.clip(high, 0, None), colors=colours, linewidth=1.4)
    ax.scatter(est, y, c=colours, s=18, zorder=3)
    ax.set_yticks(y, [_short(str(m)) for m in rows["method"]], fontsize=7)
    for value in ceiling[metric].astype(float):
        if math.isfinite(value):
            ax.axvline(value, color=_KIND_COLOURS["ceiling"], linestyle="--", linewidth=1, label="human ceiling")
    ax.axvline(0, color="#cccccc", linewidth=0.8, zorder=0)
    ax.set_xlabel(f"{metric} (fold-averaged, 95% CI)", fontsize=8)
    ax.tick_params(axis="x", labelsize=7)
    if len(ceiling):
        ax.legend(fontsize=7, frameon=False, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _short(text: str, width: int = 40) -> str:
    """A label cut to ``width`` characters, with ``$`` escaped so mathtext never parses a method name."""
    text = text if len(text) <= width else text[: width - 1] + "…"
    return text.replace("$", r"\$")
