"""Featurize every model of a release (IMI-sim or any release with a stimulus tree) on its own stimuli."""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from PIL import Image

from .._defaults import resolve_dataset
from ..data.release import Release, read_release
from ..errors import ImiBenchError
from ..models.registry import get_model
from .featurizer import DEFAULT_FEATURES, Featurizer
from .sources import StimuliSource

__all__ = ["featurize_release", "resolve_dataset"]

log = logging.getLogger(__name__)


def _study_seed(release: Path) -> int:
    """An IMI-sim study's seed (its ``-random`` twins were initialised with it), else 0."""
    manifest = release.parent / "sim_manifest.json"
    return int(json.loads(manifest.read_text())["seed"]) if manifest.is_file() else 0


def featurize_release(release: str | Path | Release, *, models: Sequence[str] | None = None,
                      features: Sequence[str] = DEFAULT_FEATURES, device: str = "cpu", batch_size: int = 32,
                      params: Mapping[str, Mapping[str, Any]] | None = None, cache_dir: str | Path | None = None,
                      progress: bool = True) -> pd.DataFrame:
    """Feature table of every unit × condition × difficulty of a release's stimulus tree.

    Each model is built with its registered weights (``-random`` twins with the study's seed), its
    preprocessing resized to the stimuli's image size, and featurized on each unit row's own stimuli.

    Args:
        release: A release folder or :class:`Release`.
        models: Model ids (default: every model with stimuli in the release).
        features: Family names.
        device: ``cpu`` or ``cuda``.
        batch_size: Images per forward pass.
        params: Family name → parameter overrides.
        cache_dir: Feature cache root (None: no caching).
        progress: Show progress bars.
    """
    rel = release if isinstance(release, Release) else read_release(release)
    stim = rel.trials[rel.trials["source"] == "stimuli"]
    available = sorted(stim["model"].dropna().unique())
    chosen = list(models) if models else available
    unknown = sorted(set(chosen) - set(available))
    if unknown:
        raise ImiBenchError(f"no stimuli for models {unknown} in {rel.root}; available: {available}")
    with Image.open(rel.root / stim["max_query"].iloc[0]) as im:
        size = im.size[0]
    seed = _study_seed(Path(rel.root))
    tables = []
    for name in chosen:
        adapter = get_model(name, seed=seed, device=device)
        adapter.preprocessing = dataclasses.replace(adapter.preprocessing, resize=size, crop=size)  # as shown
        featurizer = Featurizer(adapter, features, batch_size=batch_size, params=params, cache_dir=cache_dir,
                                seed=seed, progress=progress)
        tables.append(featurizer.run(None, StimuliSource(rel, name)))
        log.info("featurized %s: %d unit rows", name, len(tables[-1]))
        torch.cuda.empty_cache() if torch.cuda.is_available() else None
    return pd.concat(tables, ignore_index=True)
