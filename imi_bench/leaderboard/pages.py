"""What the site's templates show of an entry: the table row and the detail page's provenance.

Values stay raw (numbers, text); the templates format them and Jinja2 escapes every one.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlparse

import numpy as np
import pandas as pd

__all__ = ["METRICS", "as_dict", "entry_context", "entry_record", "fmt", "id_text", "safe_url", "slug", "sort_value"]

#: Metrics stored with a CI per entry, in display order.
METRICS: tuple[str, ...] = ("spearman", "kendall", "pearson", "r2", "mae", "loglik")
#: Meta fields never shown on the public site (personal data).
_PRIVATE = frozenset({"contact", "email"})
#: Declared-provenance fields: label → keys looked up in the submission's meta, extra and scores.
_PROVENANCE: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Training data declared", ("training_data", "trained_on", "training_datasets", "train_data")),
    ("Featurizer hash", ("featurizer_hash", "feature_hash", "features_hash", "featurizer")),
    ("imi-bench version", ("imi_bench_version",)),
    ("Seed", ("seed",)),
    ("Scored with", ("scoring",)),
)


def slug(text: object) -> str:
    """A file-name-safe, collision-resistant name for ``text`` (ids may hold any character).

    >>> slug("imi-sim_lomo.v1"), slug("../x y")
    ('imi-sim_lomo.v1', 'x-y-46c740c6')
    """
    raw = str(text)
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", raw).strip(".-")[:60]
    if safe == raw and safe:
        return safe
    return f"{safe}-{hashlib.sha256(raw.encode()).hexdigest()[:8]}".lstrip("-")


def safe_url(value: object) -> str | None:
    """``value`` when it is an http(s) URL with a host, else ``None`` (so no ``javascript:`` links).

    >>> safe_url("https://x.org/a"), safe_url("javascript:alert(1)"), safe_url(None)
    ('https://x.org/a', None, None)
    """
    if not isinstance(value, str):
        return None
    url = value.strip()
    parsed = urlparse(url)
    return url if parsed.scheme.lower() in ("http", "https") and parsed.netloc else None


def _finite(value: Any) -> float | None:
    """``value`` as a finite float, else ``None``."""
    if value is None or isinstance(value, bool | str):
        return None
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def fmt(value: Any, digits: int = 3) -> str:
    """A number for display; ``–`` for missing or non-finite values."""
    if isinstance(value, bool) or (value is not None and not isinstance(value, int | float | np.number)):
        return str(value)
    f = _finite(value)
    if f is None:
        return "–"
    return str(int(f)) if isinstance(value, int | np.integer) else f"{f:.{digits}f}"


def sort_value(value: Any) -> str:
    """The ``data-v`` sort key of a numeric cell: a plain number, or empty (sorted last) when missing."""
    f = _finite(value)
    return "" if f is None else repr(f)


def as_dict(value: Any) -> dict[str, Any]:
    """A ``per_model``-style cell as a dict (a dict, a JSON object string, or missing → empty)."""
    if isinstance(value, dict):
        return value
    if isinstance(value, str) and value.strip().startswith("{"):
        loaded = json.loads(value)
        return loaded if isinstance(loaded, dict) else {}
    return {}


def _text(value: Any) -> str:
    """Display text of a cell; missing → empty; a list → its items joined by commas."""
    if isinstance(value, list | tuple | np.ndarray):
        return ", ".join(_text(v) for v in value)
    if value is None or (isinstance(value, float) and not math.isfinite(value)) or value is pd.NA:
        return ""
    return str(value)


def id_text(value: Any) -> str:
    """An entry id as text: ``2``, ``2.0`` (an id column with gaps read as float) and ``"2"`` all give ``"2"``."""
    f = _finite(value)
    if f is not None and f == int(f):
        return str(int(f))
    return _text(value)


def _rank(value: Any) -> int | None:
    f = _finite(value)
    return None if f is None else int(f)


def entry_record(row: dict[str, Any], models: Sequence[str]) -> dict[str, Any]:
    """One row of a benchmark table.

    Args:
        row: The entry (``Store.entries`` columns plus the rank columns of
            :func:`~imi_bench.leaderboard.ranking.rank_entries` and ``key``).
        models: The benchmark's models, in column order.
    """
    per_model = as_dict(row.get("per_model"))
    key = id_text(row["id"])
    name = slug(key)
    record: dict[str, Any] = {
        "key": key, "id": key, "slug": name, "href": f"e/{name}.html",
        "kind": _text(row.get("kind")) or "submission", "method": _text(row.get("method")),
        "authors": _text(row.get("authors")), "description": _text(row.get("description")),
        "rank": _rank(row.get("rank")), "rank_low": _rank(row.get("rank_low")),
        "rank_high": _rank(row.get("rank_high")),
        "tied": bool(row.get("tied_with_first")), "p_vs_first": _finite(row.get("p_vs_first")),
        "pooled_spearman": _finite(row.get("pooled_spearman")),
        "ceiling_norm": _finite(row.get("spearman_ceiling_norm")),
        "model_rank_tau": _finite(row.get("model_rank_tau")),
        "per_model": [_finite(per_model.get(m)) for m in models],
        "worst_model": _finite(row.get("worst_model")), "worst_model_name": _text(row.get("worst_model_name")),
        "received": _text(row.get("received")), "date": _text(row.get("received"))[:10],
        "code_url": safe_url(row.get("code_url")), "paper_url": safe_url(row.get("paper_url")),
    }
    for m in METRICS:
        record[m] = _finite(row.get(m))
        record[f"{m}_ci_low"] = _finite(row.get(f"{m}_ci_low"))
        record[f"{m}_ci_high"] = _finite(row.get(f"{m}_ci_high"))
    return record


def _lookup(sub: dict[str, Any], keys: Sequence[str]) -> Any:
    """First of ``keys`` present in the submission's meta, then extra, then scores."""
    for part in ("meta", "extra", "scores"):
        section = sub.get(part)
        if isinstance(section, dict):
            for key in keys:
                if section.get(key) not in (None, ""):
                    return section[key]
    return None


def _display(value: Any) -> str:
    """Text of a metadata value: a mapping as ``key: value; …``, a list joined by commas."""
    if isinstance(value, dict):
        return "; ".join(f"{k}: {_display(v) or '–'}" for k, v in value.items())
    return _text(value)


def _chain(row: dict[str, Any], history: pd.DataFrame) -> list[dict[str, str]]:
    """The entries this one supersedes, newest first (follows ``supersedes`` links; cycles stop)."""
    by_id = {id_text(r["id"]): r for r in history.to_dict("records")} if len(history) else {}
    chain, seen = [], {id_text(row["id"])}
    current = id_text(row.get("supersedes"))
    while current and current not in seen:
        seen.add(current)
        prev = by_id.get(current, {})
        chain.append({"id": current, "method": _text(prev.get("method")), "received": _text(prev.get("received")),
                      "file_sha256": _text(prev.get("file_sha256"))})
        current = id_text(prev.get("supersedes"))
    return chain


def _metric_value(value: Any) -> Any:
    return value.get("estimate") if isinstance(value, dict) else value


def _folds(sub: dict[str, Any]) -> tuple[list[str], list[dict[str, Any]]]:
    """Per-fold scores from the submission (``folds`` / ``per_fold`` in extra or scores): columns and rows."""
    raw = _lookup({"extra": sub.get("extra"), "scores": sub.get("scores")}, ("folds", "per_fold", "fold_scores"))
    if isinstance(raw, dict):
        raw = [{"name": k, **(v if isinstance(v, dict) else {"value": v})} for k, v in raw.items()]
    if not isinstance(raw, list):
        return [], []
    rows = []
    for item in raw:
        if not isinstance(item, dict):
            continue
        metrics = item.get("metrics")
        if not isinstance(metrics, dict):
            metrics = {k: v for k, v in item.items() if k not in ("name", "fold", "n_test", "n_train")}
        rows.append({"fold": _text(item.get("name", item.get("fold"))), "n_test": item.get("n_test"),
                     **{str(k): _metric_value(v) for k, v in metrics.items()}})
    found = [c for c in dict.fromkeys(k for r in rows for k in r) if c not in ("fold", "n_test")]
    found = [c for c in found if any(_finite(r.get(c)) is not None for r in rows)]  # drop all-undefined columns
    order = [*METRICS, "model_rank_tau", "worst_model"]
    columns = [c for c in order if c in found] + [c for c in found if c not in order]
    return columns, rows


def entry_context(record: dict[str, Any], row: dict[str, Any], sub: dict[str, Any], history: pd.DataFrame, *,
                  has_plot: bool) -> dict[str, Any]:
    """Everything the entry page shows.

    Args:
        record: The entry's :func:`entry_record`.
        row: The entry's store row.
        sub: ``Store.submission`` of the entry (``meta``, ``scores``, ``extra``; may be empty for a ceiling).
        history: Every entry of the benchmark, superseded ones included.
        has_plot: Whether the predicted-vs-human plot exists.
    """
    provenance = [(label, _display(_lookup(sub, keys))) for label, keys in _PROVENANCE]
    meta = sub.get("meta")
    meta = meta if isinstance(meta, dict) else {}
    columns, folds = _folds(sub)
    return {
        **record, "has_plot": has_plot, "plot": f"{record['slug']}.png",
        "file_sha256": _text(row.get("file_sha256")), "supersedes": _chain(row, history),
        "provenance": provenance,
        "meta": [(str(k), _display(v)) for k, v in sorted(meta.items(), key=lambda kv: str(kv[0]))
                 if str(k) not in _PRIVATE and _display(v)],
        "metrics": [(m, record[m], record[f"{m}_ci_low"], record[f"{m}_ci_high"]) for m in METRICS],
        "fold_columns": columns, "folds": folds,
    }
