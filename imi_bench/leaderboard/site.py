"""The static leaderboard site, built from a leaderboard store (docs/leaderboard.md).

:func:`build_site` writes, into a staging folder next to ``out`` that is renamed into place at the end:

* ``index.html``: every benchmark (dataset × split);
* ``b/<benchmark>/index.html``: the benchmark's sortable table (rank with its 95% interval, whether
  the entry is tied with #1, fold-averaged Spearman with its CI, ceiling-normalised value, per-model
  Spearman, worst model, log-likelihood, date, links), ``summary.png`` (every entry with CI bars) and
  per entry ``e/<entry>.html`` (provenance, scores, folds) and ``e/<entry>.png`` (predicted vs human);
* ``leaderboard.json`` and ``leaderboard.csv``: every current entry of every benchmark.

Every page is rendered by Jinja2 with autoescaping; the only script is the inline table sorter, allowed
by its hash in each page's Content-Security-Policy.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pandas as pd

from .._io import staged_directory
from .._version import __version__
from ..errors import ImiBenchError
from .pages import as_dict, entry_context, entry_record, fmt, id_text, slug, sort_value
from .plots import entry_plot, summary_plot
from .ranking import align_predictions, rank_entries

__all__ = ["SITE_MARKER", "LeaderboardStore", "build_site"]

log = logging.getLogger(__name__)

#: File that marks a folder as a built site (only such a folder, or an empty one, is replaced).
SITE_MARKER = ".imi-bench-site"
TEMPLATES = Path(__file__).parent / "templates"
_SORTER = TEMPLATES / "sorter.js"


class LeaderboardStore(Protocol):
    """The read API of :class:`imi_bench.leaderboard.store.Store` that the site uses."""

    def benchmarks(self) -> pd.DataFrame:
        """One row per benchmark."""

    def benchmark_units(self, benchmark_id: Any) -> pd.DataFrame:
        """The benchmark's unit table."""

    def entries(self, benchmark_id: Any, include_superseded: bool = False) -> pd.DataFrame:
        """One row per entry with its scores."""

    def predictions(self, submission_id: Any) -> pd.DataFrame:
        """An entry's stored predictions."""

    def submission(self, submission_id: Any) -> dict[str, Any]:
        """An entry's ``meta``, ``scores`` and ``extra``."""


@dataclass(frozen=True)
class SiteSettings:
    """How ranks are computed.

    Attributes:
        n_boot: Bootstrap replicates of the rank intervals and of each comparison with #1.
        n_perm: Permutations of each paired test against #1.
        seed: Seed of both.
    """

    n_boot: int = 500
    n_perm: int = 500
    seed: int = 0


def _environment() -> Any:
    import jinja2
    import markupsafe

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["num"] = fmt
    env.filters["sortkey"] = sort_value
    env.filters["wbr"] = lambda text: markupsafe.Markup("_<wbr>").join(markupsafe.escape(str(text)).split("_"))
    sorter = _SORTER.read_text(encoding="utf-8")
    digest = base64.b64encode(hashlib.sha256(sorter.encode()).digest()).decode()
    env.globals.update(
        version=__version__, sorter_js=sorter,
        csp=(f"default-src 'none'; script-src 'sha256-{digest}'; style-src 'unsafe-inline'; img-src 'self'; "
             "base-uri 'none'; form-action 'none'"))
    return env


def _check_target(out: Path) -> None:
    """``out`` must be missing, empty or a site built before (never replace someone's folder)."""
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / SITE_MARKER).is_file())):
        raise ImiBenchError(f"{out} exists and is not an empty folder or a leaderboard site built before "
                            f"(no {SITE_MARKER} file); choose another --out")


def build_site(store: LeaderboardStore, out_dir: str | Path, *, n_boot: int = 500, n_perm: int = 500,
               seed: int = 0) -> list[Path]:
    """Build the static site of every benchmark in ``store`` into ``out_dir``.

    The site is written into a staging folder next to ``out_dir`` and renamed into place: on any error
    ``out_dir`` is left as it was. An existing ``out_dir`` is replaced only when it is empty or holds a
    site built before.

    Args:
        store: The leaderboard store (:class:`~imi_bench.leaderboard.store.Store` or anything with its read API).
        out_dir: Folder of the site.
        n_boot: Bootstrap replicates of the rank intervals and of the comparisons with #1.
        n_perm: Permutations of each paired test against #1.
        seed: Seed of the rank intervals and tests.

    Returns:
        Every file written, under ``out_dir``, sorted.

    Raises:
        ImiBenchError: When ``out_dir`` is another kind of folder, or on bad store content.
    """
    out = Path(out_dir).absolute()
    _check_target(out)
    settings = SiteSettings(n_boot, n_perm, seed)
    with staged_directory(out, overwrite=True) as stage:
        _write_site(store, stage, settings)
        written = sorted(p.relative_to(stage) for p in stage.rglob("*") if p.is_file())
    log.info("leaderboard site: %d files in %s", len(written), out)
    return [out / p for p in written]


def _write_site(store: LeaderboardStore, stage: Path, settings: SiteSettings) -> None:
    env = _environment()
    benchmarks = store.benchmarks()
    if "id" in benchmarks.columns:
        benchmarks = benchmarks.sort_values("id", kind="stable")
    summaries, tables = [], []
    for bench in benchmarks.to_dict("records"):
        summary, table = _write_benchmark(store, env, stage, bench, settings)
        summaries.append(summary)
        tables.append(table)
    (stage / "index.html").write_text(env.get_template("index.html").render(root="", benchmarks=summaries),
                                      encoding="utf-8")
    _write_exports(stage, summaries, tables)
    (stage / SITE_MARKER).write_text(f"imi-bench {__version__} leaderboard site\n", encoding="utf-8")


def _ranked_entries(store: LeaderboardStore, bench_id: Any, units: pd.DataFrame, settings: SiteSettings
                    ) -> tuple[pd.DataFrame, Any]:
    """The benchmark's current entries with rank columns, in table order, and the aligned predictions."""
    entries = store.entries(bench_id).copy()
    entries["key"] = [id_text(i) for i in entries["id"]]
    live = entries[entries["kind"] != "ceiling"]
    aligned = align_predictions(units, {key: store.predictions(i) for key, i in zip(live["key"], live["id"],
                                                                                    strict=True)})
    ranks = rank_entries(aligned, n_boot=settings.n_boot, n_perm=settings.n_perm, seed=settings.seed)
    ranks = ranks.rename(columns={"entry": "key", "estimate": "pooled_spearman"})
    entries = entries.merge(ranks, on="key", how="left")
    entries["tied_with_first"] = entries["tied_with_first"].astype("boolean").fillna(False).astype(bool)
    entries[["rank", "rank_low", "rank_high"]] = entries[["rank", "rank_low", "rank_high"]].astype("Int64")
    entries["_ceiling_first"] = entries["kind"] != "ceiling"
    entries = entries.sort_values(["_ceiling_first", "rank", "spearman", "received"],
                                  ascending=[True, True, False, True], na_position="last", kind="stable")
    return entries.drop(columns="_ceiling_first").reset_index(drop=True), aligned


def _write_benchmark(store: LeaderboardStore, env: Any, stage: Path, bench: dict[str, Any],
                     settings: SiteSettings) -> tuple[dict[str, Any], pd.DataFrame]:
    """Write one benchmark's page, plots and entry pages; return its index summary and export table."""
    bench_id = bench["id"]
    folder = Path("b") / slug(bench_id)
    (stage / folder / "e").mkdir(parents=True)
    units = store.benchmark_units(bench_id)
    entries, aligned = _ranked_entries(store, bench_id, units, settings)
    models = sorted(units["model"].astype(str).unique())
    history = store.entries(bench_id, include_superseded=True)
    records = [entry_record(row, models) for row in entries.to_dict("records")]
    for record, row in zip(records, entries.to_dict("records"), strict=True):
        pred = aligned.preds.get(record["key"])
        if pred is not None:
            entry_plot(aligned.rows, pred, f"{record['method']}  ρ={fmt(record['pooled_spearman'], 2)}",
                       stage / folder / "e" / f"{record['slug']}.png", models)
        sub = _submission(store, row)
        context = entry_context(record, row, sub, history, has_plot=pred is not None)
        page = env.get_template("entry.html").render(root="../../../", bench=bench, e=context,
                                                     bench_href="../index.html")
        (stage / folder / "e" / f"{record['slug']}.html").write_text(page, encoding="utf-8")
    summary_plot(entries, stage / folder / "summary.png")
    info = {**bench, "href": f"{folder.as_posix()}/index.html", "n_units": int(units["unit_id"].nunique()),
            "n_rows": len(units), "n_entries": int((entries["kind"] != "ceiling").sum()),
            "n_shared_rows": len(aligned.rows), "first": next((r["method"] for r in records if r["rank"] == 1), None)}
    page = env.get_template("benchmark.html").render(root="../../", bench=info, entries=records, models=models,
                                                     settings=settings)
    (stage / folder / "index.html").write_text(page, encoding="utf-8")
    table = entries.assign(benchmark_id=bench_id, dataset_id=bench.get("dataset_id"), split=bench.get("split"),
                           page=[f"{folder.as_posix()}/e/{r['slug']}.html" for r in records])
    return info, table


def _submission(store: LeaderboardStore, row: dict[str, Any]) -> dict[str, Any]:
    """``store.submission`` of a row; a ceiling row without a stored submission gives an empty record."""
    try:
        return dict(store.submission(row["id"]))
    except (KeyError, LookupError, ImiBenchError):
        if row.get("kind") == "ceiling":
            return {}
        raise


def _json_safe(obj: Any) -> Any:
    """JSON-safe: NaN/inf/NA → None, numpy scalars → Python, timestamps → ISO text."""
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, pd.Timestamp):
        return obj.isoformat()
    if hasattr(obj, "item") and not isinstance(obj, str):
        obj = obj.item()
    if obj is pd.NA or obj is pd.NaT or (isinstance(obj, float) and not math.isfinite(obj)):
        return None
    return obj


def _write_exports(stage: Path, summaries: list[dict[str, Any]], tables: list[pd.DataFrame]) -> None:
    """``leaderboard.json`` (benchmarks with their entries) and ``leaderboard.csv`` (one row per entry)."""
    drop = ["key"]
    doc = {"imi_bench_version": __version__,
           "benchmarks": [{**s, "entries": t.drop(columns=drop).to_dict("records")}
                          for s, t in zip(summaries, tables, strict=True)]}
    (stage / "leaderboard.json").write_text(json.dumps(_json_safe(doc), indent=2, sort_keys=True, default=str) + "\n",
                                            encoding="utf-8")
    flat = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=["benchmark_id"])
    flat = flat.drop(columns=[c for c in drop if c in flat.columns])
    if "per_model" in flat.columns:
        flat["per_model"] = [json.dumps(_json_safe(as_dict(v)), sort_keys=True) for v in flat["per_model"]]
    front = [c for c in ("benchmark_id", "dataset_id", "split", "rank", "rank_low", "rank_high", "tied_with_first",
                         "id", "kind", "method") if c in flat.columns]
    flat[front + [c for c in flat.columns if c not in front]].to_csv(stage / "leaderboard.csv", index=False)
