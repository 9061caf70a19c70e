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
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from .._registry import Registry
from ..errors import ImiBenchError, ImiDataError, RegistryError
from ..predictors.table import add_model_metadata, model_metadata
from .split_kinds import _COMMON_PARAMS, KINDS, _NoFoldsError, _param

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
