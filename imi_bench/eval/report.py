"""``build_report``: IMI's analyses of human interpretability scores, from any release.

Four analyses of the canonical ``units`` table (one row per unit × condition × difficulty):

1. per-experiment mean HIS with seeded 95% BCa bootstrap CIs over units (``Release.model_scores``);
2. Kruskal–Wallis across models of per-unit HIS, per condition × difficulty, followed by
   Conover–Iman pairwise tests with Holm's adjustment (:mod:`imi_bench.eval.posthoc`);
3. Spearman correlation of relative layer depth with per-layer mean HIS, per experiment;
4. Spearman correlation of natural with synthetic HIS over units tested in both conditions,
   per model and pooled (``model == "*"``), per difficulty.

:meth:`Report.write` writes ``report.md``, one CSV per table and PNG figures into a folder.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from scipy import stats

from .._io import atomic_write_bytes, atomic_write_text
from ..data.release import Release, read_release
from ..errors import ImiBenchError
from .posthoc import conover_iman, holm

__all__ = [
    "Report",
    "build_report",
    "depth_correlations",
    "kruskal_conover",
    "markdown_table",
    "natural_vs_synthetic",
    "paired_conditions",
]

log = logging.getLogger(__name__)

#: Fewest units a model needs to enter the Kruskal–Wallis test of a condition.
MIN_UNITS_KW = 2
#: Fewest points (layers or paired units) for a Spearman correlation to be reported.
MIN_POINTS_SPEARMAN = 3
_CELL = ["condition", "difficulty"]
_EXPERIMENT = ["model", "condition", "difficulty"]
_TABLES = {"model_scores": "Per-model mean HIS (95% BCa bootstrap CI over units)",
           "kruskal": "Kruskal–Wallis test across models, per condition",
           "conover": "Conover–Iman pairwise tests (Holm-adjusted within each condition)",
           "depth": "Spearman: relative layer depth vs per-layer mean HIS",
           "natural_synthetic": "Spearman: natural vs synthetic HIS of the same units"}
_FIGURES = {"model_his": "fig_model_his.png", "depth": "fig_depth.png",
            "natural_synthetic": "fig_natural_vs_synthetic.png"}


def _skip(notes: list[str], message: str) -> None:
    log.warning("%s", message)
    notes.append(message)


def _kw_cell(cell: pd.DataFrame, key: tuple[str, str], notes: list[str]) -> tuple[dict, pd.DataFrame | None]:
    """Kruskal–Wallis + Conover–Holm for one condition × difficulty."""
    label = "/".join(key)
    sizes = cell.groupby("model").size()
    small = sorted(sizes.index[sizes < MIN_UNITS_KW])
    if small:
        _skip(notes, f"Kruskal–Wallis {label}: skipped {', '.join(small)} (fewer than {MIN_UNITS_KW} units)")
    cell = cell[~cell["model"].isin(small)]
    models = sorted(cell["model"].unique())
    row = {"condition": key[0], "difficulty": key[1], "n_models": len(models), "n_units": len(cell),
           "models": ", ".join(models), "skipped": ", ".join(small), "H": np.nan, "df": len(models) - 1,
           "p_value": np.nan}
    if len(models) < 2:
        log.info("Kruskal–Wallis %s: fewer than two models", label)
        notes.append(f"Kruskal–Wallis {label}: not tested ({len(models)} model(s) with ≥ {MIN_UNITS_KW} units)")
        return row, None
    values = cell["his"].to_numpy(float)
    if np.ptp(values) == 0:
        notes.append(f"Kruskal–Wallis {label}: every unit has the same HIS; no test")
        return row, None
    res = stats.kruskal(*[g.to_numpy(float) for _, g in cell.groupby("model", sort=True)["his"]])
    row.update(H=float(res.statistic), p_value=float(res.pvalue))
    pairs = conover_iman(values, cell["model"].to_numpy(str)).rename(columns={"group_a": "model_a",
                                                                               "group_b": "model_b"})
    pairs["p_holm"] = holm(pairs["p_value"].to_numpy())
    pairs.insert(0, "difficulty", key[1])
    pairs.insert(0, "condition", key[0])
    return row, pairs


def kruskal_conover(units: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """Kruskal–Wallis across models of per-unit HIS and Conover–Holm pairwise tests, per condition.

    A *condition* here is a condition × difficulty (models are only compared on the same task).
    Models with fewer than :data:`MIN_UNITS_KW` units are left out, with a logged warning and a note.

    Args:
        units: Canonical units table (``model``, ``condition``, ``difficulty``, ``his``).

    Returns:
        ``(kruskal, conover, notes)``: one row per condition (``H``, ``df``, ``p_value``, the
        models tested and skipped); one row per pair of models (``t``, ``df``, ``p_value``,
        ``p_holm``; Holm's family is the pairs of one condition); notes on what was skipped.
    """
    notes: list[str] = []
    rows, pairs = [], []
    for key, cell in units.groupby(_CELL, sort=True):
        row, cell_pairs = _kw_cell(cell, (str(key[0]), str(key[1])), notes)
        rows.append(row)
        if cell_pairs is not None:
            pairs.append(cell_pairs)
    cols = [*_CELL, "model_a", "model_b", "n_a", "n_b", "mean_rank_a", "mean_rank_b", "t", "df", "p_value",
            "p_holm"]
    conover = pd.concat(pairs, ignore_index=True)[cols] if pairs else pd.DataFrame(columns=cols)
    return pd.DataFrame(rows), conover, notes


def _spearman(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    if len(x) < MIN_POINTS_SPEARMAN or np.ptp(x) == 0 or np.ptp(y) == 0:
        return np.nan, np.nan
    res = stats.spearmanr(x, y)
    return float(res.statistic), float(res.pvalue)


def depth_correlations(units: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Spearman correlation of ``relative_depth`` with per-layer mean HIS, per experiment.

    Args:
        units: Canonical units table.

    Returns:
        ``(table, notes)``: one row per model × condition × difficulty with ``n_layers`` (layers
        of known depth), ``n_units``, ``spearman_rho`` and ``p_value`` (NaN with fewer than
        :data:`MIN_POINTS_SPEARMAN` layers or a constant input).
    """
    notes: list[str] = []
    known = units[units["relative_depth"].notna()]
    if len(known) < len(units):
        notes.append(f"depth: {len(units) - len(known)} unit rows of layers with unknown depth left out")
    layers = known.groupby([*_EXPERIMENT, "layer"], sort=True).agg(
        depth=("relative_depth", "mean"), his=("his", "mean"), n=("his", "size")).reset_index()
    rows = []
    for key, grp in layers.groupby(_EXPERIMENT, sort=True):
        rho, p = _spearman(grp["depth"].to_numpy(float), grp["his"].to_numpy(float))
        if np.isnan(rho):
            notes.append(f"depth {'/'.join(map(str, key))}: no correlation ({len(grp)} layer(s) or constant input)")
        rows.append({**dict(zip(_EXPERIMENT, key, strict=True)), "n_layers": len(grp), "n_units": int(grp["n"].sum()),
                     "spearman_rho": rho, "p_value": p})
    cols = [*_EXPERIMENT, "n_layers", "n_units", "spearman_rho", "p_value"]
    return pd.DataFrame(rows, columns=cols), notes


def paired_conditions(units: pd.DataFrame) -> pd.DataFrame:
    """Units tested in both conditions: one row per model/layer/channel/difficulty, ``natural`` and ``synthetic``."""
    wide = units.pivot_table(index=["model", "layer", "channel", "difficulty"], columns="condition", values="his",
                             observed=True)
    if not {"natural", "synthetic"} <= set(wide.columns):
        return pd.DataFrame(columns=["model", "layer", "channel", "difficulty", "natural", "synthetic"])
    return wide[["natural", "synthetic"]].dropna().reset_index().rename_axis(columns=None)


def natural_vs_synthetic(units: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Spearman correlation of natural with synthetic HIS of the same units.

    Args:
        units: Canonical units table.

    Returns:
        ``(table, notes)``: one row per model × difficulty and one pooled row per difficulty
        (``model == "*"``), with ``n_units``, both mean HIS, ``spearman_rho`` and ``p_value``.
    """
    pairs = paired_conditions(units)
    cols = ["model", "difficulty", "n_units", "natural_mean", "synthetic_mean", "spearman_rho", "p_value"]
    if pairs.empty:
        return pd.DataFrame(columns=cols), ["natural vs synthetic: no unit was tested in both conditions"]
    rows, notes = [], []
    for (model, difficulty), grp in pd.concat([pairs, pairs.assign(model="*")]).groupby(["model", "difficulty"]):
        rho, p = _spearman(grp["natural"].to_numpy(float), grp["synthetic"].to_numpy(float))
        if np.isnan(rho):
            notes.append(f"natural vs synthetic {model}/{difficulty}: no correlation ({len(grp)} unit(s) or "
                         "constant input)")
        rows.append({"model": model, "difficulty": difficulty, "n_units": len(grp),
                     "natural_mean": float(grp["natural"].mean()), "synthetic_mean": float(grp["synthetic"].mean()),
                     "spearman_rho": rho, "p_value": p})
    return pd.DataFrame(rows, columns=cols), notes

# --------------------------------------------------------------------------- rendering
def _cell(value: object, column: str) -> str:
    if isinstance(value, (float, np.floating)):
        if np.isnan(value):
            return "–"
        return f"{value:.3g}" if column.startswith("p_") else f"{value:.3f}"
    return str(value).replace("|", "\\|")


def markdown_table(table: pd.DataFrame) -> str:
    """A DataFrame as a GitHub Markdown table (p-values to 3 significant digits, other floats to 3 decimals)."""
    if table.empty:
        return "_(no rows)_"
    head = ["| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
    body = ["| " + " | ".join(_cell(v, c) for c, v in zip(table.columns, row, strict=True)) + " |"
            for row in table.itertuples(index=False, name=None)]
    return "\n".join(head + body)


def _markdown(report: Report, figures: dict[str, str]) -> str:
    u = report.units
    lines = [f"# IMI analyses: `{report.source}`", "",
             f"{len(u)} unit × condition rows, {u['model'].nunique()} models "
             f"({', '.join(sorted(u['model'].unique()))}); bootstrap seed {report.seed}, "
             f"{report.n_resamples} resamples.", ""]
    if report.notes:
        lines += ["## Notes", "", *[f"- {n}" for n in report.notes], ""]
    for i, (name, title) in enumerate(_TABLES.items(), start=1):
        lines += [f"## {i}. {title}", "", markdown_table(report.tables()[name]), ""]
        fig = {"model_scores": "model_his"}.get(name, name)
        if fig in figures:
            lines += [f"![{title}]({figures[fig]})", ""]
    return "\n".join(lines)


def _series(df: pd.DataFrame) -> pd.Series:
    return df["condition"].astype(str) + "/" + df["difficulty"].astype(str)


def _fig_model_his(report: Report) -> Figure:
    ms = report.model_scores.assign(series=_series(report.model_scores))
    models, series = sorted(ms["model"].unique()), sorted(ms["series"].unique())
    fig = Figure(figsize=(max(5.0, 1.2 * len(models) + 2), 4))
    ax = fig.add_subplot()
    width = 0.6 / len(series)
    for i, (name, grp) in enumerate(ms.groupby("series", sort=True)):
        x = np.searchsorted(models, grp["model"].to_numpy(str)) + (i - (len(series) - 1) / 2) * width
        mean = grp["his_mean"].to_numpy(float)
        err = np.nan_to_num(np.vstack([mean - grp["ci_low"].to_numpy(float), grp["ci_high"].to_numpy(float) - mean]))
        ax.errorbar(x, mean, yerr=err, fmt="o", capsize=3, label=name)
    ax.axhline(0.5, color="grey", lw=0.8, ls="--")
    ax.set_xticks(range(len(models)), models, rotation=30, ha="right")
    ax.set_xlim(-0.6, len(models) - 0.4)
    ax.set_ylabel("mean HIS (95% CI)")
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1))
    fig.tight_layout()
    return fig


def _fig_depth(report: Report) -> Figure:
    u = report.units[report.units["relative_depth"].notna()]
    models = sorted(u["model"].unique())
    ncols = min(3, len(models))
    nrows = -(-len(models) // ncols)
    rho = dict(zip(zip(report.depth["model"], _series(report.depth), strict=True), report.depth["spearman_rho"],
                   strict=True))
    fig = Figure(figsize=(4 * ncols, 3.2 * nrows))
    axes = fig.subplots(nrows, ncols, squeeze=False, sharey=True)
    for ax, model in zip(axes.flat, models, strict=False):
        sub = u[u["model"] == model].assign(series=lambda d: _series(d))
        for name, grp in sub.groupby("series", sort=True):
            ax.scatter(grp["relative_depth"], grp["his"], s=12, alpha=0.6, label=f"{name} (ρ={rho[(model, name)]:.2f})")
        ax.set_title(model, fontsize="medium")
        ax.set_xlabel("relative depth")
        ax.legend(fontsize="x-small")
    for ax in axes[:, 0]:
        ax.set_ylabel("HIS")
    for ax in list(axes.flat)[len(models):]:
        ax.set_visible(False)
    fig.tight_layout()
    return fig


def _fig_natural_synthetic(report: Report) -> Figure:
    pairs = paired_conditions(report.units)
    fig = Figure(figsize=(4.5, 4.5))
    ax = fig.add_subplot()
    for (model, difficulty), grp in pairs.groupby(["model", "difficulty"], sort=True):
        ax.scatter(grp["natural"], grp["synthetic"], s=14, alpha=0.7, label=f"{model} ({difficulty})")
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--")
    ax.set(xlim=(0, 1.02), ylim=(0, 1.02), xlabel="natural HIS", ylabel="synthetic HIS")
    ax.legend(fontsize="x-small")
    fig.tight_layout()
    return fig


def _figures(report: Report) -> dict[str, Figure]:
    """The report's figures (natural vs synthetic only when some unit was tested in both)."""
    out = {"model_his": _fig_model_his(report)}
    if report.units["relative_depth"].notna().any():
        out["depth"] = _fig_depth(report)
    if not paired_conditions(report.units).empty:
        out["natural_synthetic"] = _fig_natural_synthetic(report)
    for fig in out.values():
        FigureCanvasAgg(fig)
    return out


@dataclass
class Report:
    """IMI's analyses of one release (see the module docstring).

    Attributes:
        source: What was analysed (the release folder).
        seed: Bootstrap seed.
        n_resamples: Bootstrap resamples.
        units: The canonical units table the analyses ran on.
        model_scores: Per experiment: ``n_units``, ``his_mean``, ``ci_low``, ``ci_high``.
        kruskal: Per condition × difficulty: Kruskal–Wallis ``H``, ``df``, ``p_value``.
        conover: Per pair of models within a condition: Conover–Iman ``t``, ``p_value``, ``p_holm``.
        depth: Per experiment: Spearman of relative depth vs per-layer mean HIS.
        natural_synthetic: Per model × difficulty and pooled: Spearman of natural vs synthetic HIS.
        notes: Analyses skipped or restricted, and the release's own findings.
    """

    source: str
    seed: int
    n_resamples: int
    units: pd.DataFrame
    model_scores: pd.DataFrame
    kruskal: pd.DataFrame
    conover: pd.DataFrame
    depth: pd.DataFrame
    natural_synthetic: pd.DataFrame
    notes: list[str] = field(default_factory=list)

    def tables(self) -> dict[str, pd.DataFrame]:
        """Table name (also the CSV stem) → table, in report order."""
        return {name: getattr(self, name) for name in _TABLES}

    def to_markdown(self, *, figures: bool = False) -> str:
        """The report as Markdown: header, notes, one section per table (and figure links)."""
        return _markdown(self, _FIGURES if figures else {})

    def write(self, out_dir: str | Path) -> list[Path]:
        """Write ``report.md``, one CSV per table and the PNG figures into ``out_dir``.

        Every file is written to a temporary file inside ``out_dir`` and renamed into place;
        nothing is written outside ``out_dir`` (created if missing).

        Returns:
            The files written.
        """
        out = Path(out_dir)
        if out.exists() and not out.is_dir():
            raise ImiBenchError(f"{out} exists and is not a directory")
        out.mkdir(parents=True, exist_ok=True)
        written = []
        for name, table in self.tables().items():
            atomic_write_text(out / f"{name}.csv", table.to_csv(index=False, lineterminator="\n"))
            written.append(out / f"{name}.csv")
        drawn = _figures(self)
        for key, fig in drawn.items():
            buf = io.BytesIO()
            fig.savefig(buf, format="png", dpi=110, metadata={"Software": None})
            atomic_write_bytes(out / _FIGURES[key], buf.getvalue())
            written.append(out / _FIGURES[key])
        atomic_write_text(out / "report.md", _markdown(self, {k: v for k, v in _FIGURES.items() if k in drawn}))
        return [out / "report.md", *written]


def build_report(release: Release | str | Path, *, seed: int = 0, n_resamples: int = 2000) -> Report:
    """Run IMI's analyses on a release.

    Args:
        release: A :class:`Release` or a release folder (read with :func:`read_release`).
        seed: Bootstrap seed (each experiment's generator derives from it and the experiment key).
        n_resamples: Bootstrap resamples for the per-model CIs.

    Returns:
        A :class:`Report`.

    Raises:
        ImiBenchError: A bad release, one without response tables or unit scores, or a
            non-positive ``n_resamples``.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ImiBenchError(f"seed must be an integer, got {seed!r}")
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, (int, np.integer)) or n_resamples < 1:
        raise ImiBenchError(f"n_resamples must be a positive integer, got {n_resamples!r}")
    rel = release if isinstance(release, Release) else read_release(release)
    units = rel.units()
    if units.empty:
        raise ImiBenchError(f"{rel.root}: no unit scores (no included main-trial responses); nothing to report")
    notes = [f"release finding: {f}" for f in rel.findings]
    kruskal, conover, kw_notes = kruskal_conover(units)
    depth, depth_notes = depth_correlations(units)
    nat_syn, ns_notes = natural_vs_synthetic(units)
    return Report(source=str(rel.root), seed=int(seed), n_resamples=int(n_resamples), units=units,
                  model_scores=rel.model_scores(seed=int(seed), n_resamples=int(n_resamples)), kruskal=kruskal,
                  conover=conover, depth=depth, natural_synthetic=nat_syn,
                  notes=[*kw_notes, *depth_notes, *ns_notes, *notes])
