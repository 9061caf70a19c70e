"""Named, frozen split schemes declared in YAML: ``get_split(name).folds(units)``.

A scheme is a YAML file (data only) naming one of the generic kinds in :data:`KINDS` (``kfold-units``,
``leave-one-group-out``, ``group-transfer``, ``threshold-holdout``, ``row-transfer``) and its parameters.
The package ships ``imi_bench/eval/schemes/*.yaml``; users add schemes without code with
:func:`register_scheme_file`, :func:`register_scheme_dir` or ``IMI_BENCH_SPLITS`` (``os.pathsep``-separated
folders). Folds are row positions into the unit table and depend only on the table, the scheme and the
seed; :meth:`SplitScheme.config_digest` identifies a scheme's definition for citation. See ``docs/splits.md``.

Example:
    >>> from imi_bench.eval.splits import get_split
    >>> get_split("leave-one-model-out").kind
    'leave-one-group-out'
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import math
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from itertools import permutations
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from .._registry import Registry
from ..errors import ImiBenchError, ImiDataError, RegistryError
from ..predictors.table import add_model_metadata, model_metadata

__all__ = [
    "ALGORITHM_VERSION", "ENV_VAR", "KINDS", "MODEL_COLUMNS", "SPLITS", "Fold", "SplitScheme",
    "add_model_metadata", "check_no_leak", "get_split", "list_splits", "load_scheme", "model_metadata",
    "register_scheme_dir", "register_scheme_file",
]

log = logging.getLogger(__name__)

#: Version of the fold-assignment algorithm; part of every config digest, bumped if assignment changes.
ALGORITHM_VERSION = 1
#: Environment variable: ``os.pathsep``-separated folders of user ``*.yaml`` schemes.
ENV_VAR = "IMI_BENCH_SPLITS"
#: Columns constant within a model: a scheme grouping only by these is model-level.
MODEL_COLUMNS = frozenset({"model", "arch", "training", "trained"})
_META_COLUMNS = ("arch", "training", "trained")
_SCHEMES_DIR = Path(__file__).with_name("schemes")
_REQUIRED = object()
Selector = dict[str, list[Any]]
Masks = list[tuple[str, np.ndarray, np.ndarray]]


# --------------------------------------------------------------------------- model metadata
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


# --------------------------------------------------------------------------- folds and schemes
@dataclass(frozen=True, eq=False)
class Fold:
    """One train/test split of a unit table.

    Attributes:
        name: Fold name, e.g. ``heldout=mobilenet_v2`` or ``fold=0``.
        train: Sorted row positions (``iloc``) of the training rows.
        test: Sorted row positions of the test rows.
        train_units: Sorted unique ``unit_id`` of the training rows.
        test_units: Sorted unique ``unit_id`` of the test rows.
    """

    name: str
    train: np.ndarray
    test: np.ndarray
    train_units: np.ndarray
    test_units: np.ndarray

    def digest(self) -> str:
        """SHA-256 of the fold's name and unit lists: cite-able frozen unit membership."""
        payload = [self.name, self.train_units.tolist(), self.test_units.tolist()]
        return hashlib.sha256(json.dumps(payload, separators=(",", ":")).encode()).hexdigest()


@dataclass(frozen=True)
class SplitScheme:
    """A named split scheme (from YAML).

    Attributes:
        name: Registered name.
        description: One paragraph for humans.
        kind: One of :data:`KINDS`.
        seed: Default seed of seeded kinds (``kfold-units``, ``row-transfer``).
        params: The kind's parameters, defaults filled in.
        model_level: Test models must not appear in train (checked by :func:`check_no_leak`);
            by default true when the scheme groups only by :data:`MODEL_COLUMNS`.
        source: The file it was read from.
    """

    name: str
    description: str
    kind: str
    seed: int
    params: dict[str, Any] = field(default_factory=dict)
    model_level: bool = False
    source: str | None = None

    @classmethod
    def from_dict(cls, config: Any, source: str | Path | None = None) -> SplitScheme:
        """Validate a parsed YAML mapping strictly; errors name ``source`` and the key."""
        where = None if source is None else str(source)
        if not isinstance(config, Mapping):
            raise ImiDataError(f"a split scheme must be a YAML mapping, got {type(config).__name__}", file=where)
        kind_name = config.get("kind")
        kind = KINDS.get(kind_name) if isinstance(kind_name, str) else None
        if kind is None:
            why = f"unknown kind {kind_name!r}; known kinds: {', '.join(KINDS)}" if "kind" in config else "missing"
            raise ImiDataError(f"key 'kind': {why}", file=where)
        checks = {**_COMMON_PARAMS, **kind.params}
        unknown = [str(k) for k in config if k not in checks]
        if unknown:
            raise ImiDataError(f"key {unknown[0]!r}: unknown key for kind {kind_name!r} "
                               f"(allowed: {', '.join(checks)})", file=where)
        v = {key: _param(config, key, check, default, where) for key, (check, default) in checks.items()}
        params = {k: v[k] for k in kind.params}
        if v["model_level"] is None:
            v["model_level"] = kind.by_group and set(kind.columns(params)) <= MODEL_COLUMNS
        return cls(v["name"], v["description"], v["kind"], v["seed"], params, v["model_level"], where)

    def to_dict(self) -> dict[str, Any]:
        """The full configuration (defaults filled in), as it could be written back to YAML."""
        return {"name": self.name, "description": self.description, "kind": self.kind, "seed": self.seed,
                "model_level": self.model_level, **copy.deepcopy(self.params)}

    def config_digest(self) -> str:
        """SHA-256 of the canonical JSON of what determines the folds (not name or description)."""
        config = {k: v for k, v in self.to_dict().items() if k not in ("name", "description")}
        config["algorithm"] = ALGORITHM_VERSION
        text = json.dumps(config, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
        return hashlib.sha256(text.encode()).hexdigest()

    def required_columns(self) -> list[str]:
        """Columns the unit table needs for this scheme."""
        return list(dict.fromkeys(["unit_id", *(["model"] if self.model_level else []),
                                   *KINDS[self.kind].columns(self.params)]))

    def folds(self, units: pd.DataFrame, seed: int | None = None) -> list[Fold]:
        """Split ``units`` (one row per unit × condition × difficulty) into folds.

        Args:
            units: The unit table (see ``docs/splits.md`` for the columns).
            seed: Overrides the scheme's seed (seeded kinds only).

        Raises:
            ImiBenchError: Missing columns, a fold with an empty train or test set (naming the
                fold), a table the scheme cannot apply to, or a leak.
        """
        missing = [c for c in self.required_columns() if c not in units.columns]
        if missing:
            hint = " (add_model_metadata adds arch, training, trained)" if set(missing) & set(_META_COLUMNS) else ""
            raise ImiBenchError(f"split {self.name!r}: the unit table lacks column(s) {', '.join(missing)}{hint}")
        if units["unit_id"].isna().any():
            raise ImiBenchError(f"split {self.name!r}: the unit table has null unit_id values")
        try:
            masks = KINDS[self.kind].masks(units, self.params, self.seed if seed is None else seed)
        except _NoFoldsError as e:
            raise ImiBenchError(f"split {self.name!r}: {e}") from None
        uid = units["unit_id"].astype(str).to_numpy()
        folds = []
        for name, train_mask, test_mask in masks:
            train, test = np.flatnonzero(train_mask), np.flatnonzero(test_mask)
            if not len(train) or not len(test):
                raise ImiBenchError(f"split {self.name!r}: fold {name!r} has an empty "
                                    f"{'train' if not len(train) else 'test'} set on this table "
                                    f"({len(train)} train rows, {len(test)} test rows)")
            folds.append(Fold(name, train, test, np.unique(uid[train]), np.unique(uid[test])))
        check_no_leak(units, folds, self)
        log.debug("split %s: %d folds", self.name, len(folds))
        return folds


def check_no_leak(units: pd.DataFrame, folds: Iterable[Fold], scheme: SplitScheme | None = None) -> None:
    """Raise if a test unit (or, for model-level schemes, a test model) also appears in train.

    Args:
        units: The unit table the folds index.
        folds: Folds of ``units``.
        scheme: The scheme; its ``model_level`` adds the model check.

    Raises:
        ImiBenchError: Naming the scheme, the fold and a few leaked ids.
    """
    label = f"split {scheme.name!r}: " if scheme is not None else ""
    columns = ["unit_id", *(["model"] if scheme is not None and scheme.model_level else [])]
    for col in columns:
        values = units[col].astype(str).to_numpy()
        for fold in folds:
            both = np.intersect1d(values[fold.train], values[fold.test])
            if both.size:
                raise ImiBenchError(f"{label}fold {fold.name!r} leaks: {both.size} test {col} value(s) also in "
                                    f"train, e.g. {both[:3].tolist()}")


# --------------------------------------------------------------------------- registry
#: Registered split schemes (loaded lazily: use :func:`get_split` / :func:`list_splits`).
SPLITS: Registry[SplitScheme] = Registry("split scheme")
_LOADED: set[str] = set()


def load_scheme(path: str | Path) -> SplitScheme:
    """Read and validate one YAML scheme file (``yaml.safe_load``) without registering it."""
    path = Path(path)
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise ImiDataError(f"cannot read split scheme: {e}", file=path) from None
    except yaml.YAMLError as e:
        raise ImiDataError(f"invalid YAML: {e}", file=path) from None
    return SplitScheme.from_dict(config, source=path)


def _register_files(paths: Iterable[Path]) -> list[SplitScheme]:
    schemes = [load_scheme(p) for p in paths]  # validate every file before registering any
    for scheme in schemes:
        if scheme.name in SPLITS:
            raise RegistryError(f"{scheme.source}: split scheme {scheme.name!r} is already registered "
                                f"(from {SPLITS.get(scheme.name).source})")
        SPLITS.register(scheme.name, scheme)
    return schemes


def _scheme_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise ImiBenchError(f"split scheme folder {folder} does not exist or is not a folder")
    return sorted(p for p in folder.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())


def _ensure_loaded() -> None:
    folders = {"<package>": _SCHEMES_DIR}
    folders.update({f"{ENV_VAR}:{f}": Path(f) for f in os.environ.get(ENV_VAR, "").split(os.pathsep) if f})
    for key, folder in folders.items():
        if key not in _LOADED:
            _register_files(_scheme_files(folder))
            _LOADED.add(key)
            log.debug("split schemes loaded from %s", key)


def register_scheme_file(path: str | Path) -> SplitScheme:
    """Validate and register one YAML scheme; a name already registered raises :class:`RegistryError`."""
    _ensure_loaded()
    return _register_files([Path(path)])[0]


def register_scheme_dir(path: str | Path) -> list[SplitScheme]:
    """Register every ``*.yaml``/``*.yml`` scheme in a folder (sorted by file name)."""
    _ensure_loaded()
    return _register_files(_scheme_files(Path(path)))


def get_split(name: str) -> SplitScheme:
    """The registered scheme ``name``; unknown names raise with close names and the registered schemes."""
    _ensure_loaded()
    try:
        return SPLITS.get(name)
    except RegistryError as e:
        if "known:" in str(e):
            raise
        raise RegistryError(f"{e} (registered: {', '.join(SPLITS.list())})") from None


def list_splits(pattern: str = "*") -> list[str]:
    """Sorted registered scheme names matching an fnmatch ``pattern``."""
    _ensure_loaded()
    return SPLITS.list(pattern)
