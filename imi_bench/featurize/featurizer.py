"""``Featurizer``: per-unit statistics of one model over an image source, cached with provenance.

One forward pass over the source feeds every hook family (reduced inside the
hooks, kept per image and unit row); custom families (SIS, saliency, lesions,
simulated 2AFC) then run in shards of unit rows, each shard cached, so an
interrupted run resumes where it stopped. A unit whose response is constant
over its images keeps its row, with NaN features and ``constant_unit = True``.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from .._defaults import DEFAULT_FEATURES
from .._version import __version__
from ..errors import ImiBenchError, ImiDataError
from ..models.adapter import ModelAdapter
from ..stimuli.pool import ImagePool
from .base import FAMILIES, CustomFamily, FeatureContext, FeatureFamily, HookFamily
from .cache import FeatureCache, run_key, weights_digest
from .families.activation import REDUCERS
from .sources import ImageSource, PoolSource

__all__ = ["DEFAULT_FEATURES", "Featurizer", "as_source", "load_families"]

log = logging.getLogger(__name__)
CONSTANT_RANGE = 1e-8
ROW_KEY = ("layer", "channel", "condition", "difficulty")


def load_families() -> None:
    """Import the shipped families so that they register themselves."""
    from .families import activation, lesion, mis, saliency, sis  # noqa: F401


def as_source(source: Any) -> ImageSource:
    """An :class:`ImageSource` from a source, an :class:`ImagePool` or a 🤗 ``datasets.Dataset``."""
    if isinstance(source, ImageSource):
        return source
    if isinstance(source, ImagePool):
        return PoolSource(source)
    if type(source).__name__ == "Dataset" and hasattr(source, "features"):
        from ..stimuli.pool import HFImagePool

        return PoolSource(HFImagePool(source), name="hf-dataset")
    raise ImiBenchError(f"cannot use {type(source).__name__} as an image source (ImagePool, 🤗 Dataset or "
                        "imi_bench.featurize.sources.StimuliSource)")


def _family(spec: str | FeatureFamily, params: Mapping[str, Mapping[str, Any]]) -> FeatureFamily:
    if isinstance(spec, FeatureFamily):
        return spec
    load_families()
    return FAMILIES.get(spec)(**params.get(spec, {}))


class Featurizer:
    """Compute feature families for unit rows of one model.

    Args:
        adapter: The model.
        features: Family names (or instances); unknown names raise with the registered ones.
        device: ``cpu`` or ``cuda`` (default: the adapter's device); ``cuda`` without CUDA raises.
        batch_size: Images per forward pass.
        dtype: Forward dtype of the shared pass (``torch.float32``; ``bfloat16`` on GPU is allowed for
            the sign-based statistics). Gradient families always run in fp32.
        seed: Seed of every random choice.
        params: Family name → parameter overrides.
        cache_dir: Cache root (None: no caching).
        shard_rows: Unit rows per cached shard of a custom family.
        progress: Show progress bars.
    """

    def __init__(self, adapter: ModelAdapter, features: Sequence[str | FeatureFamily] = ("imi_b4", "sparseness"),
                 *, device: str | torch.device | None = None, batch_size: int = 32,
                 dtype: torch.dtype = torch.float32, seed: int = 0,
                 params: Mapping[str, Mapping[str, Any]] | None = None, cache_dir: str | Path | None = None,
                 shard_rows: int = 40, progress: bool = True) -> None:
        self.adapter = adapter.to(device) if device is not None else adapter
        self.families = [_family(f, params or {}) for f in features]
        self.batch_size, self.dtype, self.seed = batch_size, dtype, seed
        self.cache_dir, self.shard_rows, self.progress = cache_dir, shard_rows, progress

    # ------------------------------------------------------------------ rows and key
    def _rows(self, units: pd.DataFrame | None, source: ImageSource) -> pd.DataFrame:
        if units is None:
            rows_fn = getattr(source, "rows", None)
            if rows_fn is None:
                raise ImiBenchError("pass units (layer, channel) for a pool source")
            units = rows_fn()
        rows = units.reset_index(drop=True).copy()
        if not {"layer", "channel"} <= set(rows.columns):
            raise ImiBenchError(f"units need 'layer' and 'channel' columns; got {list(rows.columns)}")
        for layer, channel in zip(rows["layer"], rows["channel"], strict=True):
            info = self.adapter.layer(str(layer))
            if not 0 <= int(channel) < info.width:
                raise ImiBenchError(f"{self.adapter.name}: channel {channel} out of range for {layer} "
                                    f"(width {info.width})")
        rows["channel"] = rows["channel"].astype(int)
        return rows

    def _key(self, rows: pd.DataFrame, source: ImageSource) -> str:
        if "weights_digest" not in self.adapter.info:
            self.adapter.info["weights_digest"] = weights_digest(self.adapter.model)
        return run_key({
            "model": self.adapter.name, "weights": self.adapter.info["weights_digest"],
            "rows": rows[[c for c in ROW_KEY if c in rows.columns]].astype(str).to_dict("list"),
            "source": source.digest(), "families": [f.config() for f in self.families],
            "preprocessing": dataclasses.asdict(self.adapter.preprocessing), "dtype": str(self.dtype),
            "seed": self.seed, "imi_bench": __version__,
        })

    # ------------------------------------------------------------------ the shared pass
    def _reducers(self) -> dict[str, Any]:
        """Every hook family's reducers plus ``mean``/``max`` (a name is one function, whoever asks for it)."""
        reducers = {n: REDUCERS[n] for n in ("mean", "max")}
        for f in self.families:
            if isinstance(f, HookFamily):
                reducers.update({n: REDUCERS.get(n, r) for n, r in f.reducers().items() if n not in reducers})
        return dict(sorted(reducers.items()))

    def _hook_pass(self, rows: pd.DataFrame, source: ImageSource) -> dict[str, np.ndarray]:
        pool, reducers = source.pool(), self._reducers()
        layers = list(dict.fromkeys(rows["layer"]))
        where = {la: np.flatnonzero((rows["layer"] == la).to_numpy()) for la in layers}
        chans = {la: torch.tensor(rows["channel"].to_numpy()[where[la]], device=self.adapter.device) for la in layers}
        stats = {n: np.full((len(pool), len(rows)), np.nan, dtype=np.float32) for n in reducers}
        device_type = self.adapter.device.type
        autocast = torch.autocast(device_type, dtype=self.dtype, enabled=self.dtype != torch.float32)
        with self.adapter.recorder(layers, reducers, channels=chans) as rec, autocast:
            for index, x in pool.batches(self.adapter.preprocessing, self.batch_size, progress=self.progress,
                                         desc=f"{self.adapter.name} activations"):
                bad = ~torch.isfinite(x).flatten(1).all(1)
                if bad.any():
                    raise ImiDataError("image contains NaN or inf values", file=str(pool.meta["image_id"].iloc[
                        int(index[bad][0])]))
                self.adapter.forward(rec, x)
                idx = index.numpy()
                for layer, parts in rec.results.items():
                    for name, chunks in parts.items():
                        stats[name][np.ix_(idx, where[layer])] = chunks[0].float().cpu().numpy()
                rec.clear()
        member = source.membership(rows)
        if member is not None:
            for v in stats.values():
                v[~member] = np.nan
        return stats

    # ------------------------------------------------------------------ custom families
    def _custom(self, family: CustomFamily, rows: pd.DataFrame, source: ImageSource, responses: np.ndarray,
                cache: FeatureCache, extras: dict[Any, Any]) -> pd.DataFrame:
        parts = []
        for shard, start in enumerate(range(0, len(rows), self.shard_rows)):
            done = cache.load_shard(family.name, shard)
            if done is None:
                sub = rows.iloc[start:start + self.shard_rows].reset_index(drop=True)
                ctx = FeatureContext(self.adapter, sub, source, self.adapter.device, self.batch_size, self.seed,
                                     self.progress, responses[:, start:start + self.shard_rows], extras)
                done = family.compute(ctx).reset_index(drop=True)
                missing = [c for c in family.columns if c not in done.columns]
                if len(done) != len(sub) or missing:
                    raise ImiBenchError(f"family {family.name} returned {len(done)} rows for {len(sub)} unit rows "
                                        f"(missing columns {missing})")
                cache.save_shard(family.name, shard, done[list(family.columns)])
            parts.append(done[list(family.columns)])
        return pd.concat(parts, ignore_index=True)

    # ------------------------------------------------------------------ run
    def run(self, units: pd.DataFrame | None, image_source: Any) -> pd.DataFrame:
        """Features of every unit row: one row per unit (× condition/difficulty for stimuli sources).

        Args:
            units: ``layer``, ``channel`` rows (None for a stimuli source: its own unit rows).
            image_source: An :class:`ImagePool`, a 🤗 image dataset or an :class:`ImageSource`.

        Returns:
            ``model``, the unit row columns, one column per statistic, ``constant_unit`` and
            ``feature_hash`` (the cache key).
        """
        source = as_source(image_source)
        rows = self._rows(units, source)
        key = self._key(rows, source)
        cache = FeatureCache(self.cache_dir, key)
        cached = cache.load_table()
        if cached is not None:
            log.info("feature cache hit %s", key)
            return cached
        stats = cache.load_stats()
        if stats is None:
            stats = self._hook_pass(rows, source)
            cache.save_stats(stats)
        table = self._assemble(rows, source, stats, cache, key)
        cache.save_table(table, self._meta(rows, source, key))
        return table

    def _assemble(self, rows: pd.DataFrame, source: ImageSource, stats: dict[str, np.ndarray], cache: FeatureCache,
                  key: str) -> pd.DataFrame:
        table = rows.copy()
        table.insert(0, "model", self.adapter.name)
        extras: dict[Any, Any] = {}
        for family in self.families:
            if isinstance(family, HookFamily):
                for col, values in family.finalize({k: stats[k] for k in family.reducers()}).items():
                    table[col] = values
            else:
                computed = self._custom(family, rows, source, stats["mean"], cache, extras)  # type: ignore[arg-type]
                for col in family.columns:
                    table[col] = computed[col].to_numpy()
        with np.errstate(invalid="ignore"):
            spread = np.nanmax(stats["mean"], axis=0) - np.nanmin(stats["mean"], axis=0)
        constant = ~(spread >= CONSTANT_RANGE)
        feature_cols = [c for f in self.families for c in f.columns]
        table.loc[constant, feature_cols] = np.nan
        table["constant_unit"] = constant
        table["feature_hash"] = key
        return table

    def _meta(self, rows: pd.DataFrame, source: ImageSource, key: str) -> dict[str, Any]:
        return {"feature_hash": key, "model": self.adapter.name, "weights": self.adapter.weights,
                "weights_digest": self.adapter.info.get("weights_digest"), "source": source.name,
                "source_digest": source.digest(), "families": [f.config() for f in self.families],
                "preprocessing": dataclasses.asdict(self.adapter.preprocessing), "dtype": str(self.dtype),
                "device": self.adapter.device.type, "seed": self.seed, "imi_bench_version": __version__,
                "torch_version": torch.__version__, "n_rows": len(rows)}
