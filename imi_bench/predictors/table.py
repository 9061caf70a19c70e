"""The unit table predictors learn from: the data layer's per-unit HIS joined with featurizer columns.

One row per unit row (``model, layer, channel, condition, difficulty``), with the human counts
(``n_correct``, ``n_responses``, ``his``), depth, model metadata (``arch``, ``training``,
``trained``) and every feature column. Feature columns are recognised through the feature-family
registry, so a family a user registers is picked up like the shipped ones.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping

import pandas as pd

from ..errors import ImiBenchError

__all__ = ["KEY", "META_COLUMNS", "add_model_metadata", "family_columns", "feature_columns", "model_metadata",
           "unit_table"]
_META_COLUMNS = ("arch", "training", "trained")

log = logging.getLogger(__name__)
#: A unit row's identity.
KEY = ("model", "layer", "channel", "condition", "difficulty")
#: Non-feature columns of a unit table (never used as features).
META_COLUMNS = frozenset({
    *KEY, "unit_id", "raw_model", "layer_index", "relative_depth", "n_responses", "n_correct", "n_participants",
    "his", "his_ci_low", "his_ci_high", "arch", "training", "trained", "constant_unit", "feature_hash",
    "mis_alpha",
})


def family_columns() -> dict[str, tuple[str, ...]]:
    """Feature family name → its columns (every registered family)."""
    from ..featurize.base import FAMILIES
    from ..featurize.featurizer import load_families

    load_families()
    return {name: tuple(FAMILIES.get(name).columns) for name in FAMILIES.list()}


def feature_columns(table: pd.DataFrame, families: Iterable[str] | None = None) -> list[str]:
    """Numeric feature columns of ``table`` (of the given families; default: every family present)."""
    known = family_columns()
    chosen = list(known) if families is None else list(families)
    unknown = [f for f in chosen if f not in known]
    if unknown:
        raise ImiBenchError(f"unknown feature families {unknown}; registered: {sorted(known)}")
    cols = [c for f in chosen for c in known[f] if c in table.columns and c not in META_COLUMNS]
    return [c for c in dict.fromkeys(cols) if pd.api.types.is_numeric_dtype(table[c])]


def model_metadata(models: Iterable[str], overrides: Mapping[str, Mapping[str, str]] | None = None) -> pd.DataFrame:
    """Architecture and training regime of models, from the model registry.

    Args:
        models: Model ids (duplicates are ignored).
        overrides: ``{model: {"arch": ..., "training": ...}}`` for models the registry lacks or
            to correct it; takes precedence over the registry.

    Returns:
        One row per model: ``model``, ``arch`` (``cnn``/``vit``), ``training``, ``trained``
        (``training != "random"``). Unknown models get ``"unknown"`` (and a warning).
    """
    from ..models.registry import MODELS, list_models

    known, overrides = set(list_models()), overrides or {}
    rows = []
    for name in dict.fromkeys(map(str, models)):  # per model, not per row
        meta = {"arch": "unknown", "training": "unknown"}
        if name in known:
            entry = MODELS.get(name)
            meta = {"arch": entry.family, "training": entry.training}
        elif name not in overrides:
            log.warning("model %r is not registered: arch and training set to 'unknown' (pass overrides)", name)
        extra = set(overrides.get(name, {})) - {"arch", "training"}
        if extra:
            raise ImiBenchError(f"metadata override of {name!r}: unknown key(s) {sorted(extra)}; use arch, training")
        rows.append({"model": name, **meta, **overrides.get(name, {})})
    out = pd.DataFrame(rows, columns=["model", "arch", "training"])
    out["trained"] = out["training"] != "random"
    return out


def add_model_metadata(units: pd.DataFrame, overrides: Mapping[str, Mapping[str, str]] | None = None) -> pd.DataFrame:
    """Return ``units`` with ``arch``, ``training``, ``trained`` (replaced if present) from :func:`model_metadata`."""
    if "model" not in units.columns:
        raise ImiBenchError("the unit table lacks column 'model'")
    models = units["model"].astype(str)
    meta = model_metadata(pd.unique(models), overrides).set_index("model")
    idx = meta.index.get_indexer(models)
    return units.drop(columns=[c for c in _META_COLUMNS if c in units.columns]).assign(
        **{c: meta[c].to_numpy()[idx] for c in _META_COLUMNS})


def unit_table(units: pd.DataFrame, features: pd.DataFrame | None = None, *,
               metadata: Mapping[str, Mapping[str, str]] | None = None) -> pd.DataFrame:
    """Join per-unit HIS (``Release.units()``) with a feature table and model metadata.

    Args:
        units: The data layer's unit table.
        features: A featurizer table (``model, layer, channel[, condition, difficulty]`` + columns);
            feature tables from a pool source (no condition) broadcast to every condition.
        metadata: Model → ``{"arch": …, "training": …}`` overrides (models not in the registry).

    Returns:
        One row per unit row of ``units`` (same order), feature columns NaN where missing.

    Raises:
        ImiBenchError: A feature table with duplicate unit rows, or no overlap at all with ``units``.
    """
    table = units.copy()
    table["channel"] = table["channel"].astype("int64")
    table = add_model_metadata(table, metadata)
    if features is None:
        return table
    feats = features.copy()
    feats["channel"] = feats["channel"].astype("int64")
    key = [k for k in KEY if k in feats.columns]
    dup = feats.duplicated(key)
    if dup.any():
        raise ImiBenchError(f"feature table has duplicate unit rows, first: {feats.loc[dup, key].iloc[0].to_dict()}")
    drop = [c for c in feats.columns if c in table.columns and c not in key]
    out = table.merge(feats.drop(columns=drop), on=key, how="left", validate="many_to_one")
    matched = out[feature_columns(out)].notna().any(axis=1) if feature_columns(out) else pd.Series(False)
    if len(out) and not matched.any():
        raise ImiBenchError("the feature table matches none of the units (check models, layers and conditions)")
    if not matched.all():
        log.warning("%d of %d unit rows have no features", int((~matched).sum()), len(out))
    return out
