"""Feature families: the registry and the two kinds of family a :class:`~imi_bench.featurize.Featurizer` runs.

* A :class:`HookFamily` contributes *reducers*: functions of a layer's
  channels-first tensor ``(B, C, …)`` returning per-image, per-channel
  statistics ``(B, C)``. Every hook family of a run shares **one** forward pass
  over the image source; the featurizer keeps each statistic for every (image,
  unit row) the unit row uses, then calls :meth:`HookFamily.finalize`.
* A :class:`CustomFamily` computes its columns itself from a
  :class:`FeatureContext` (model, unit rows, image source, device, seed): SIS,
  parameter saliency, lesions, simulated 2AFC.

Add a family with the decorator::

    @register_family
    class MyFamily(HookFamily):
        name = "my_family"
        columns = ("my_stat",)
        def reducers(self): return {"max": lambda x: x.flatten(2).amax(-1)}
        def finalize(self, stats): return {"my_stat": np.nanmean(stats["max"], axis=0)}
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch

from .._registry import Registry
from ..models.adapter import ModelAdapter

__all__ = ["FAMILIES", "CustomFamily", "FeatureContext", "FeatureFamily", "HookFamily", "register_family"]

Reducer = Callable[[torch.Tensor], torch.Tensor]


class FeatureFamily:
    """Base of every family.

    Attributes:
        name: Registry name (``imi_b4``, ``sparseness``, ``sis``, …).
        columns: Output columns, in order.
        description: One line for ``imi-bench featurize --list``.
        params: Tunable parameters and their defaults (recorded in the cache key).
    """

    name: ClassVar[str] = ""
    columns: ClassVar[tuple[str, ...]] = ()
    description: ClassVar[str] = ""
    defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self, **params: Any) -> None:
        defaults = dict(self.defaults)
        unknown = sorted(set(params) - set(defaults))
        if unknown:
            from ..errors import ImiBenchError

            raise ImiBenchError(f"{self.name}: unknown parameter(s) {unknown}; known: {sorted(defaults)}")
        self.params: dict[str, Any] = {**defaults, **params}

    def config(self) -> dict[str, Any]:
        """What determines this family's output (for the cache key)."""
        return {"family": self.name, "params": self.params}


class HookFamily(FeatureFamily):
    """A family computed from per-image statistics in the shared hooked pass."""

    def reducers(self) -> dict[str, Reducer]:
        """Statistic name → reducer ``(B, C, …) → (B, C)`` (names are shared across families: same name = same fn)."""
        raise NotImplementedError

    def finalize(self, stats: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Columns from statistics: each ``stats[name]`` is ``(images, unit rows)`` with NaN where unused."""
        raise NotImplementedError


@dataclass
class FeatureContext:
    """Everything a :class:`CustomFamily` may use.

    Attributes:
        adapter: The model (eval mode, on ``device``).
        units: Unit rows: ``layer``, ``channel`` (and ``condition``/``difficulty`` for stimuli sources).
        source: The image source (see :mod:`imi_bench.featurize.sources`).
        device: Torch device.
        batch_size: Images per forward pass.
        seed: Seed of everything random.
        progress: Show progress bars.
        responses: ``(images, unit rows)`` scalar responses (spatial means) from the hooked pass,
            NaN where a row does not use an image; filled before custom families run.
        extras: Free-form cache shared between families of one run.
    """

    adapter: ModelAdapter
    units: pd.DataFrame
    source: Any
    device: torch.device
    batch_size: int = 32
    seed: int = 0
    progress: bool = True
    responses: np.ndarray | None = None
    extras: dict[Any, Any] = field(default_factory=dict)


class CustomFamily(FeatureFamily):
    """A family that computes its own columns."""

    def compute(self, ctx: FeatureContext) -> pd.DataFrame:
        """One row per unit row (same order as ``ctx.units``), columns :attr:`columns`."""
        raise NotImplementedError


FAMILIES: Registry[type[FeatureFamily]] = Registry("feature family")


def register_family(cls: type[FeatureFamily]) -> type[FeatureFamily]:
    """Class decorator: register a family under ``cls.name`` (duplicates raise)."""
    if not cls.name or not cls.columns:
        raise ValueError(f"{cls.__name__} needs a name and columns")
    return FAMILIES.register(cls.name, cls)
