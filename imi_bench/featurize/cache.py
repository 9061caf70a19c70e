"""Feature-table cache with provenance: content-hash keys, per-shard resume, atomic writes.

A run's key hashes everything that determines its output: the model id and a
digest of its weights, the layers and unit rows, the image source's digest, the
families and their parameters, the preprocessing, the dtype, the seed and the
imi-bench version. The key is also the ``feature_hash`` column of the table, so
users can cite exactly which features they used.

Layout: ``{root}/{key}/hook.npz`` (the shared pass's per-image statistics),
``{root}/{key}/{family}-{shard:04d}.parquet`` (custom families, in chunks of
unit rows), ``{root}/{key}/features.parquet`` and ``meta.json`` (the finished
table). Every file is written to a temporary name and renamed, so a killed run
leaves only complete shards, and a re-run computes just the missing ones.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from .._io import atomic_write_bytes, atomic_write_json

__all__ = ["FeatureCache", "run_key", "weights_digest"]


def weights_digest(model: torch.nn.Module) -> str:
    """SHA-256 over the model's state dict (names, dtypes, shapes and bytes, in order)."""
    h = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def run_key(parts: dict[str, Any]) -> str:
    """A stable 16-byte hex key of a JSON-serialisable description."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:32]


class FeatureCache:
    """Shards and finished tables of one run key under ``root`` (None: no caching)."""

    def __init__(self, root: str | Path | None, key: str) -> None:
        self.key = key
        self.folder = Path(root) / key if root is not None else None

    def _path(self, name: str) -> Path | None:
        return self.folder / name if self.folder is not None else None

    def load_table(self) -> pd.DataFrame | None:
        """The finished table, if this key was completed before."""
        path = self._path("features.parquet")
        return pd.read_parquet(path) if path is not None and path.is_file() else None

    def save_table(self, table: pd.DataFrame, meta: dict[str, Any]) -> None:
        """Store the finished table and its provenance."""
        path = self._path("features.parquet")
        if path is None:
            return
        buf = io.BytesIO()
        table.to_parquet(buf, index=False)
        atomic_write_bytes(path, buf.getvalue())
        atomic_write_json(path.with_name("meta.json"), meta)

    def load_stats(self) -> dict[str, np.ndarray] | None:
        """The shared pass's statistics, if computed before."""
        path = self._path("hook.npz")
        if path is None or not path.is_file():
            return None
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}

    def save_stats(self, stats: dict[str, np.ndarray]) -> None:
        """Store the shared pass's statistics."""
        path = self._path("hook.npz")
        if path is not None:
            buf = io.BytesIO()
            np.savez(buf, **stats)  # type: ignore[arg-type]
            atomic_write_bytes(path, buf.getvalue())

    def load_shard(self, family: str, shard: int) -> pd.DataFrame | None:
        """A finished shard of a custom family."""
        path = self._path(f"{family}-{shard:04d}.parquet")
        return pd.read_parquet(path) if path is not None and path.is_file() else None

    def save_shard(self, family: str, shard: int, frame: pd.DataFrame) -> None:
        """Store one shard (atomically)."""
        path = self._path(f"{family}-{shard:04d}.parquet")
        if path is not None:
            buf = io.BytesIO()
            frame.to_parquet(buf, index=False)
            atomic_write_bytes(path, buf.getvalue())
