"""Split-scheme kinds: strict YAML value checks and the fold-assignment algorithms behind each kind.

:mod:`imi_bench.eval.splits` loads schemes from YAML and turns a kind's masks into folds; this
module holds the generic kinds (``kfold-units``, ``leave-one-group-out``, ``group-transfer``,
``threshold-holdout``, ``row-transfer``) and the deterministic, seed-keyed unit assignment.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from itertools import permutations
from typing import Any

import numpy as np
import pandas as pd

from ..errors import ImiDataError

__all__ = ["KINDS", "Masks", "Selector"]

log = logging.getLogger(__name__)
_REQUIRED = object()
Selector = dict[str, list[Any]]
Masks = list[tuple[str, np.ndarray, np.ndarray]]


# --------------------------------------------------------------------------- YAML value checks
def _check(expected: str, ok: Callable[[Any], bool], cast: Callable[[Any], Any] = lambda v: v) -> Callable[[Any], Any]:
    def check(v: Any) -> Any:
        if not ok(v):
            raise ValueError(f"expected {expected}, got {v!r}")
        return cast(v)
    return check


_str = _check("a non-empty string", lambda v: isinstance(v, str) and bool(v))
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_scheme_name = _check("letters, digits, '.', '_' or '-'", lambda v: isinstance(v, str) and bool(_NAME_RE.fullmatch(v)))
_k = _check("an integer >= 2", lambda v: type(v) is int and v >= 2)
_seed = _check("an integer >= 0", lambda v: type(v) is int and v >= 0)
_number = _check("a finite number", lambda v: type(v) in (int, float) and math.isfinite(v), float)
_bool = _check("true or false", lambda v: isinstance(v, bool))


def _str_list(v: Any) -> list[str]:
    return [_str(x) for x in (v if isinstance(v, list) else [v])]


def _values(v: Any) -> list[Any]:
    vals = v if isinstance(v, list) else [v]
    bad = [x for x in vals if not isinstance(x, (str, int, float, bool))]
    if bad or not vals:
        raise ValueError(f"expected a value or a non-empty list of strings, numbers or booleans, got {v!r}")
    return vals


def _selector(v: Any) -> Selector:
    if not isinstance(v, Mapping) or not v:
        raise ValueError(f"expected a non-empty mapping column -> value(s), got {v!r}")
    return {_str(k): sorted(_values(x), key=json.dumps) for k, x in sorted(v.items())}


def _fold_specs(v: Any) -> list[dict[str, Any]]:
    if not isinstance(v, list) or not v:
        raise ValueError(f"expected a non-empty list of {{train: ..., test: ...}} mappings, got {v!r}")
    out = []
    for i, spec in enumerate(v):
        if not isinstance(spec, Mapping):
            raise ValueError(f"folds[{i}]: expected a mapping, got {spec!r}")
        unknown = sorted(set(spec) - {"name", "train", "test"})
        missing = sorted({"train", "test"} - set(spec))
        if unknown or missing:
            raise ValueError(f"folds[{i}]: unknown key(s) {unknown} / missing key(s) {missing} "
                             "(allowed: name, train, test)")
        out.append({"train": _selector(spec["train"]), "test": _selector(spec["test"]),
                    **({"name": _str(spec["name"])} if "name" in spec else {})})
    return out


def _optional(check: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return lambda v: None if v is None else check(v)


# --------------------------------------------------------------------------- fold assignment
def _fmt(value: Any) -> str:
    return json.dumps(bool(value)) if isinstance(value, (bool, np.bool_)) else str(value)


def _hash_key(seed: int) -> str:
    return hashlib.sha256(f"imi-bench-splits/{seed}".encode()).hexdigest()[:16]


def _unit_folds(units: pd.DataFrame, k: int, seed: int, strata: pd.DataFrame | None = None) -> np.ndarray:
    """Fold of every row: units in seeded-hash order, dealt round-robin within strata (per-unit max)."""
    codes, uniques = pd.factorize(units["unit_id"].astype(str), sort=True)
    key = pd.util.hash_array(np.asarray(uniques, dtype=object), hash_key=_hash_key(seed), categorize=False)
    stratum = np.zeros(len(uniques), dtype=np.int64)
    if strata is not None and strata.shape[1]:
        per_unit = strata.groupby(codes, sort=True).max()
        stratum = per_unit.groupby(list(per_unit.columns), sort=True, dropna=False).ngroup().to_numpy()
    unit_fold = np.empty(len(uniques), dtype=np.int64)
    unit_fold[np.lexsort((key, stratum))] = np.arange(len(uniques)) % k
    return unit_fold[codes]


def _select(units: pd.DataFrame, selector: Selector) -> np.ndarray:
    mask = np.ones(len(units), dtype=bool)
    for col, vals in selector.items():
        mask &= units[col].isin(vals).to_numpy()
    return mask


def _name(selector: Selector) -> str:
    return ",".join(f"{c}={'|'.join(map(_fmt, v))}" for c, v in selector.items())


class _NoFoldsError(Exception):
    """The table does not allow any fold of the scheme (message says why)."""


def _groups(col: pd.Series, values: list[Any] | None, need: int) -> list[Any]:
    present = sorted(pd.unique(col.dropna()), key=_fmt)
    groups = present if values is None else [v for v in values if col.eq(v).any()]
    if values is not None and len(groups) < len(values):
        log.info("values of %r absent from the table are skipped: %s", col.name,
                 [v for v in values if v not in groups])
    if len(groups) < need:
        found = [_fmt(g) for g in groups]
        raise _NoFoldsError(f"needs at least {need} value(s) of {col.name!r} in the table, found {found}")
    return groups


def _kfold_masks(units: pd.DataFrame, p: Mapping[str, Any], seed: int) -> Masks:
    fold = _unit_folds(units, p["k"], seed, units[p["stratify_by"]])
    return [(f"fold={i}", fold != i, fold == i) for i in range(p["k"])]


def _logo_masks(units: pd.DataFrame, p: Mapping[str, Any], seed: int) -> Masks:
    col = units[p["group_by"]]
    return [(f"heldout={_fmt(g)}", (col.notna() & col.ne(g)).to_numpy(), col.eq(g).to_numpy())
            for g in _groups(col, p["values"], 1)]


def _transfer_masks(units: pd.DataFrame, p: Mapping[str, Any], seed: int) -> Masks:
    if p["folds"] is not None:
        return [(f.get("name") or f"{_name(f['train'])}->{_name(f['test'])}",
                 _select(units, f["train"]), _select(units, f["test"])) for f in p["folds"]]
    g, col = p["group_by"], units[p["group_by"]]
    return [(f"{g}={_fmt(a)}->{g}={_fmt(b)}", col.eq(a).to_numpy(), col.eq(b).to_numpy())
            for a, b in permutations(_groups(col, p["values"], 2), 2)]


def _threshold_masks(units: pd.DataFrame, p: Mapping[str, Any], seed: int) -> Masks:
    c, t = p["column"], p["threshold"]
    col = pd.to_numeric(units[c], errors="coerce")
    below, above = (col < t).to_numpy(), (col >= t).to_numpy()
    out = [(f"{c}<{t:g}->{c}>={t:g}", below, above)]
    return [*out, (f"{c}>={t:g}->{c}<{t:g}", above, below)] if p["reverse"] else out


def _row_transfer_masks(units: pd.DataFrame, p: Mapping[str, Any], seed: int) -> Masks:
    train, test = _select(units, p["train_rows"]), _select(units, p["test_rows"])
    fold = _unit_folds(units, p["k"], seed, pd.DataFrame({"train": train, "test": test}))
    return [(f"fold={i}", train & (fold != i), test & (fold == i)) for i in range(p["k"])]


def _selector_columns(p: Mapping[str, Any]) -> list[str]:
    sels = [p[k] for k in ("train_rows", "test_rows") if k in p]
    sels += [s for f in (p.get("folds") or []) for s in (f["train"], f["test"])]
    return [c for s in sels for c in s]


@dataclass(frozen=True)
class _Kind:
    params: Mapping[str, tuple[Callable[[Any], Any], Any]]  # key -> (check, default or _REQUIRED)
    masks: Callable[[pd.DataFrame, Mapping[str, Any], int], Masks]
    columns: Callable[[Mapping[str, Any]], list[str]]
    by_group: bool = False  # folds hold out whole groups: model-level if the columns are


#: The built-in kinds a YAML scheme can name, with their parameters (check, default).
KINDS: dict[str, _Kind] = {
    "kfold-units": _Kind({"k": (_k, 5), "stratify_by": (_str_list, [])}, _kfold_masks,
                         lambda p: list(p["stratify_by"])),
    "leave-one-group-out": _Kind({"group_by": (_str, "model"), "values": (_optional(_values), None)}, _logo_masks,
                                 lambda p: [p["group_by"]], by_group=True),
    "group-transfer": _Kind({"group_by": (_str, "trained"), "values": (_optional(_values), None),
                             "folds": (_optional(_fold_specs), None)}, _transfer_masks,
                            lambda p: _selector_columns(p) if p["folds"] is not None else [p["group_by"]],
                            by_group=True),
    "threshold-holdout": _Kind({"column": (_str, "relative_depth"), "threshold": (_number, 0.5),
                                "reverse": (_bool, True)}, _threshold_masks, lambda p: [p["column"]]),
    "row-transfer": _Kind({"k": (_k, 5), "train_rows": (_selector, _REQUIRED),
                           "test_rows": (_selector, _REQUIRED)}, _row_transfer_masks, _selector_columns),
}


_COMMON_PARAMS: dict[str, tuple[Callable[[Any], Any], Any]] = {
    "name": (_scheme_name, _REQUIRED), "description": (_str, ""), "kind": (_str, _REQUIRED), "seed": (_seed, 0),
    "model_level": (_optional(_bool), None)}


def _param(config: Mapping[str, Any], key: str, check: Callable[[Any], Any], default: Any, where: str | None) -> Any:
    if key not in config and default is _REQUIRED:
        raise ImiDataError(f"key {key!r}: missing required key", file=where)
    try:
        return check(config[key]) if key in config else copy.deepcopy(default)
    except (TypeError, ValueError) as e:
        raise ImiDataError(f"key {key!r}: {e}", file=where) from None
