"""``RunResult``: one predictor under one split, with everything needed to cite and reproduce it.

Serialised as JSON (``RunResult.write`` / ``RunResult.read``); the schema is versioned and the
reader rejects unknown versions and missing fields with a clear error.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
from dataclasses import MISSING, asdict, dataclass, field
from pathlib import Path
from typing import Any

from .._io import atomic_write_text
from .._version import __version__
from ..errors import ImiDataError

__all__ = ["SCHEMA_VERSION", "RunResult", "dataset_digest", "hardware", "json_safe"]

SCHEMA_VERSION = 1


def dataset_digest(files: dict[str, str]) -> str:
    """SHA-256 over a release's ``relative path → file SHA-256`` map (``Release.files``)."""
    h = hashlib.sha256()
    for path in sorted(files):
        h.update(f"{path}\0{files[path]}\n".encode())
    return h.hexdigest()


def hardware() -> dict[str, Any]:
    """Where a run ran: platform, CPUs, torch and device."""
    import torch

    cuda = torch.cuda.is_available()
    return {"platform": platform.platform(), "python": platform.python_version(), "cpu_count": os.cpu_count(),
            "torch": torch.__version__, "cuda": torch.cuda.get_device_name(0) if cuda else None}


def json_safe(obj: Any) -> Any:
    """JSON-safe: NaN/inf → None, numpy scalars → Python."""
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_safe(v) for v in obj]
    if hasattr(obj, "item") and not isinstance(obj, str):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


@dataclass
class RunResult:
    """A predictor's evaluation under a split.

    Attributes:
        dataset: ``{"id": …, "digest": …}`` (digest: :func:`dataset_digest` of the release files).
        split: ``{"name": …, "config_digest": …, "seed": …}``.
        feature_hash: Feature-table hashes used (model → hash), empty for feature-free predictors.
        predictor: ``{"name": …, "params": {…}}``.
        seed: Seed of the bootstrap.
        folds: Per fold: ``name``, ``n_train``, ``n_test``, ``metrics`` (point values).
        pooled: Metric → ``{"estimate", "ci_low", "ci_high"}`` over all held-out rows.
        extra: Ceiling-normalised correlations, worst model, model ranking, per-model scores.
        runtime_s: Wall-clock seconds of fit + evaluation.
        hardware: :func:`hardware`.
        schema_version, imi_bench_version: Provenance of the file format and the library.
    """

    dataset: dict[str, Any]
    split: dict[str, Any]
    predictor: dict[str, Any]
    seed: int
    folds: list[dict[str, Any]]
    pooled: dict[str, dict[str, float]]
    extra: dict[str, Any] = field(default_factory=dict)
    feature_hash: dict[str, str] = field(default_factory=dict)
    runtime_s: float = 0.0
    hardware: dict[str, Any] = field(default_factory=hardware)
    schema_version: int = SCHEMA_VERSION
    imi_bench_version: str = __version__

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (NaN → null)."""
        return json_safe(asdict(self))

    def write(self, path: str | Path) -> Path:
        """Write atomically as indented JSON."""
        path = Path(path)
        atomic_write_text(path, json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")
        return path

    @classmethod
    def read(cls, path: str | Path) -> RunResult:
        """Read a result written by :meth:`write` (raises naming the file on a bad schema)."""
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise ImiDataError(f"cannot read run result: {e}", file=path) from None
        if not isinstance(data, dict) or data.get("schema_version") != SCHEMA_VERSION:
            got = data.get("schema_version") if isinstance(data, dict) else None
            raise ImiDataError(f"unsupported run-result schema_version {got!r} (expected {SCHEMA_VERSION})",
                               file=path)
        fields = cls.__dataclass_fields__
        names = set(fields)
        missing = sorted(n for n, f in fields.items() if n not in data and f.default is MISSING
                         and f.default_factory is MISSING)
        if missing:
            raise ImiDataError(f"run result lacks fields {missing}", file=path)
        return cls(**{k: v for k, v in data.items() if k in names})
