"""The leaderboard table of one benchmark, built from its ``submissions`` and ``scores`` rows.

Also the conversion the other way: an :class:`~imi_bench.eval.evaluator.EvalResult` to the score
rows that are stored (:func:`score_rows`).
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pandas as pd

from ..eval.evaluator import BOOTSTRAP_METRICS, EvalResult
from .records import ScoreRow

__all__ = ["ENTRY_COLUMNS", "METRICS", "build_entries", "rank_of", "score_rows"]

#: Pooled metrics with CIs, in table order.
METRICS = BOOTSTRAP_METRICS
#: Prefix of the per-model Spearman metrics (``spearman@<model>``).
PER_MODEL = "spearman@"
ENTRY_COLUMNS = (
    "id", "kind", "method", "authors", "code_url", "paper_url", "description", "received", "file_sha256",
    "supersedes", *[c for m in METRICS for c in (m, f"{m}_ci_low", f"{m}_ci_high")], "spearman_ceiling_norm",
    "model_rank_tau", "worst_model", "worst_model_name", "per_model")


def _float(v: Any) -> float:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return math.nan
    return f if math.isfinite(f) else math.nan


def score_rows(result: EvalResult) -> list[ScoreRow]:
    """The rows stored in ``scores`` for an evaluation.

    Every pooled metric with its CI (correlations with their ceiling-normalised value),
    ``model_rank_tau``, ``worst_model`` (its value; the name stays in ``extra``) and
    ``spearman@<model>`` per held-out model.
    """
    cn = result.extra.get("ceiling_normalised", {})
    nan = math.nan
    rows = [ScoreRow(m, _float(v["estimate"]), _float(v["ci_low"]), _float(v["ci_high"]), _float(cn.get(m, nan)))
            for m, v in result.pooled.items()]
    rows.append(ScoreRow("model_rank_tau", _float(result.extra.get("model_rank_tau"))))
    rows.append(ScoreRow("worst_model", _float(result.extra.get("worst_model"))))
    rows += [ScoreRow(f"{PER_MODEL}{m}", _float(v))
             for m, v in sorted(result.extra.get("per_model_spearman", {}).items())]
    return rows


def _meta_columns(meta_json: str) -> dict[str, Any]:
    meta = json.loads(meta_json)
    authors = meta.get("authors") or []
    return {"authors": ", ".join(authors) if isinstance(authors, list) else str(authors),
            "code_url": meta.get("code_url"), "paper_url": meta.get("paper_url"),
            "description": meta.get("description")}


def build_entries(subs: pd.DataFrame, scores: pd.DataFrame) -> pd.DataFrame:
    """One row per submission (see :meth:`~imi_bench.leaderboard.store.Store.entries` for the columns).

    Args:
        subs: ``submissions`` rows (``id, kind, method, meta_json, received, file_sha256, supersedes, extra_json``).
        scores: ``scores`` rows of those submissions.
    """
    if subs.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in ENTRY_COLUMNS})
    out = subs[["id", "kind", "method"]].copy()
    meta = pd.DataFrame([_meta_columns(m) for m in subs["meta_json"]], index=subs.index)
    out = pd.concat([out, meta, subs[["received", "file_sha256"]]], axis=1)
    out["supersedes"] = subs["supersedes"].astype("Int64")
    scores = scores[scores["submission_id"].isin(subs["id"])].astype({"value": float, "ci_low": float,
                                                                      "ci_high": float, "ceiling_normalised": float})
    by = scores.set_index(["submission_id", "metric"])
    ids = subs["id"].to_numpy()

    def pick(metric: str, column: str) -> np.ndarray:
        key = pd.MultiIndex.from_arrays([ids, [metric] * len(ids)])
        return by[column].reindex(key).to_numpy(float)

    for m in METRICS:
        out[m], out[f"{m}_ci_low"], out[f"{m}_ci_high"] = (pick(m, "value"), pick(m, "ci_low"), pick(m, "ci_high"))
    out["spearman_ceiling_norm"] = pick("spearman", "ceiling_normalised")
    out["model_rank_tau"] = pick("model_rank_tau", "value")
    out["worst_model"] = pick("worst_model", "value")
    out["worst_model_name"] = [json.loads(e).get("worst_model_name") for e in subs["extra_json"]]
    per = scores[scores["metric"].str.startswith(PER_MODEL)]
    per_model = {sid: {m[len(PER_MODEL):]: _float(v) for m, v in zip(g["metric"], g["value"], strict=True)}
                 for sid, g in per.groupby("submission_id")}
    out["per_model"] = [per_model.get(i, {}) for i in ids]
    out = out.sort_values(["spearman", "id"], ascending=[False, True], na_position="last", kind="stable")
    return out[list(ENTRY_COLUMNS)].reset_index(drop=True)


def rank_of(entries: pd.DataFrame, spearman: float, *, exclude: int | None = None) -> tuple[int, int]:
    """Rank (1 = best; ties share the better rank) of a headline Spearman among the ranked entries.

    Ranked entries are submissions and baselines (not the ceiling row), other than ``exclude``.

    Returns:
        ``(rank, n)`` where ``n`` counts the ranked entries including this one.
    """
    ranked = entries[(entries["kind"] != "ceiling") & (entries["id"] != exclude)]
    values = ranked["spearman"].to_numpy(float)
    better = int(np.sum(np.isfinite(values) & (values > spearman))) if math.isfinite(spearman) else \
        int(np.isfinite(values).sum())
    return better + 1, len(ranked) + 1
