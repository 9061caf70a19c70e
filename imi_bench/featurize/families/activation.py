"""Activation-statistic families computed in the shared hooked pass: IMI's B.4 measures and classical sparseness.

**IMI B.4** (``imi_b4``; IMI appendix B.4, featurizer-reference §2), over the
unit row's images, on the pre-activation map ``a`` (positions = H×W, or tokens
incl. CLS for ViTs):

* ``pixel_sparsity``: mean over images of the fraction of positions with ``a ≤ 0``;
* ``channel_sparsity``: fraction of images whose whole map is ``≤ 0``;
* ``local_contrast``: mean over images and positions of the *sum* of the four
  absolute differences to the 4-neighbours of the map zero-padded by one pixel
  (NaN for token layouts: no spatial grid);
* ``local_contrast_norm``: ``local_contrast / mean |a|`` (invariant to rescaling).

**Classical sparseness** (``sparseness``; reference §3): Treves–Rolls ``S``,
Hoyer, Gini and excess kurtosis (population moments),

* *lifetime* (across the row's images) of the unit's scalar response — on the
  spatial mean (``lifetime_*_mean``) and on the spatial max (``lifetime_*_max``);
  S, Hoyer and Gini use ``ReLU`` of the response, kurtosis the raw response;
* *spatial* (within each map, averaged over images): ``spatial_*``; S and Hoyer
  on ``ReLU(a)``, Gini on ``|a|``, kurtosis on ``a``.

Undefined values (an all-zero vector for S/Hoyer/Gini, zero variance for the
kurtosis, a single element) are NaN.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import torch

from ..base import HookFamily, register_family

__all__ = ["IMIB4", "Sparseness", "gini", "hoyer", "kurtosis", "local_contrast", "treves_rolls"]


# --------------------------------------------------------------------------- reducers: (B, C, …) → (B, C)
def local_contrast(x: torch.Tensor) -> torch.Tensor:
    """IMI's local contrast per (image, channel) of ``(B, C, H, W)`` maps (NaN without a 2-D grid).

    The mean over positions of the summed absolute differences to the 4 neighbours of the zero-padded
    map. Every interior difference is shared by two positions and every border position has one zero
    neighbour per border it touches, so the sum is ``2·(Σ|Δx| + Σ|Δy|) + Σ_border |a|`` — one pass
    over the map instead of four shifted copies.
    """
    if x.dim() != 4:
        return torch.full(x.shape[:2], float("nan"), device=x.device)
    a = x.float()
    inner = (a[..., :, 1:] - a[..., :, :-1]).abs().sum((2, 3)) + (a[..., 1:, :] - a[..., :-1, :]).abs().sum((2, 3))
    border = (a[..., :, 0].abs().sum(-1) + a[..., :, -1].abs().sum(-1) + a[..., 0, :].abs().sum(-1)
              + a[..., -1, :].abs().sum(-1))
    return (2 * inner + border) / (a.shape[-2] * a.shape[-1])


def _flat(x: torch.Tensor) -> torch.Tensor:
    return x.float().flatten(2)


def treves_rolls(r: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Treves–Rolls / Vinje–Gallant sparseness of non-negative ``r`` along ``dim`` (NaN if all zero or n = 1)."""
    n = r.shape[dim]
    m1, m2 = r.mean(dim), (r * r).mean(dim)
    with torch.no_grad():
        out = (1 - m1 * m1 / m2) / (1 - 1 / n) if n > 1 else torch.full_like(m1, float("nan"))
    return torch.where(m2 > 0, out, torch.full_like(out, float("nan")))


def hoyer(r: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Hoyer sparseness ``(√n − ‖r‖₁/‖r‖₂)/(√n − 1)`` along ``dim`` (NaN if all zero or n = 1)."""
    n = r.shape[dim]
    l1, l2 = r.abs().sum(dim), r.norm(dim=dim)
    out = (n**0.5 - l1 / l2) / (n**0.5 - 1) if n > 1 else torch.full_like(l1, float("nan"))
    return torch.where(l2 > 0, out, torch.full_like(out, float("nan")))


def gini(c: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Gini index (Hurley & Rickard) of ``|c|`` along ``dim``: 0 = uniform, 1 − 1/n = one-hot."""
    c = c.abs().movedim(dim, -1).sort(dim=-1).values
    n = c.shape[-1]
    k = torch.arange(1, n + 1, device=c.device, dtype=c.dtype)
    total = c.sum(-1)
    out = 1 - 2 * ((c / total.unsqueeze(-1)) * (n - k + 0.5) / n).sum(-1)
    return torch.where(total > 0, out, torch.full_like(out, float("nan")))


def kurtosis(a: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Excess kurtosis with population moments along ``dim`` (NaN for zero variance)."""
    d = a - a.mean(dim, keepdim=True)
    var = (d * d).mean(dim)
    out = (d**4).mean(dim) / (var * var) - 3
    return torch.where(var > 0, out, torch.full_like(out, float("nan")))


REDUCERS = {
    "mean": lambda x: _flat(x).mean(-1),
    "max": lambda x: _flat(x).amax(-1),
    "nonpos": lambda x: (_flat(x) <= 0).float().mean(-1),
    "abs_mean": lambda x: _flat(x).abs().mean(-1),
    "contrast": local_contrast,
    "sp_tr": lambda x: treves_rolls(_flat(x).clamp(min=0)),
    "sp_hoyer": lambda x: hoyer(_flat(x).clamp(min=0)),
    "sp_gini": lambda x: gini(_flat(x)),
    "sp_kurtosis": lambda x: kurtosis(_flat(x)),
}


_INDEX = {"tr": treves_rolls, "hoyer": hoyer, "gini": gini}


# --------------------------------------------------------------------------- NaN-aware column statistics
def _columns(v: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.asarray(v, dtype=np.float64))


def _lifetime(v: np.ndarray, fn: str) -> np.ndarray:
    """A sparseness index per column of ``(images, rows)``, ignoring NaN entries (each column on its own images)."""
    out = np.full(v.shape[1], np.nan)
    valid = ~np.isnan(v)
    for n in np.unique(valid.sum(0)):  # group columns by how many images they use: vectorised per group
        cols = np.flatnonzero(valid.sum(0) == n)
        if n == 0:
            continue
        if n == len(v):  # every image used by these rows (pool sources): no gathering needed
            block = v[:, cols]
        else:  # each column's own images, in image order (sorting a column's valid entries first)
            order = np.argsort(~valid[:, cols], axis=0, kind="stable")[:n]
            block = np.take_along_axis(v[:, cols], order, axis=0)
        x = _columns(block)
        out[cols] = (kurtosis(x, 0) if fn == "kurtosis" else _INDEX[fn](x.clamp(min=0), 0)).numpy()
    return out


def _nanmean(v: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # rows without any finite value → NaN
        return np.nanmean(v, axis=0)


@register_family
class IMIB4(HookFamily):
    """IMI appendix B.4: pixel-wise and channel-wise sparseness, local contrast (see the module docstring)."""

    name = "imi_b4"
    columns = ("pixel_sparsity", "channel_sparsity", "local_contrast", "local_contrast_norm")
    description = "IMI B.4: fraction ≤ 0 per map and per image, 4-neighbour local contrast (zero padding)"
    defaults: ClassVar[dict[str, Any]] = {}

    def reducers(self) -> dict:
        """Per-image statistics this family needs."""
        return {k: REDUCERS[k] for k in ("nonpos", "max", "contrast", "abs_mean")}

    def finalize(self, stats: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Average over each row's images."""
        lc = _nanmean(stats["contrast"])
        with np.errstate(invalid="ignore", divide="ignore"):
            norm = lc / _nanmean(stats["abs_mean"])
        allnonpos = np.where(np.isnan(stats["max"]), np.nan, stats["max"] <= 0)
        return {"pixel_sparsity": _nanmean(stats["nonpos"]), "channel_sparsity": _nanmean(allnonpos),
                "local_contrast": lc, "local_contrast_norm": norm}


@register_family
class Sparseness(HookFamily):
    """Treves–Rolls, Hoyer, Gini, kurtosis: lifetime (on spatial mean and max) and spatial (module docstring)."""

    name = "sparseness"
    columns = tuple(f"lifetime_{i}_{s}" for s in ("mean", "max") for i in ("tr", "hoyer", "gini", "kurtosis")) + \
        tuple(f"spatial_{i}" for i in ("tr", "hoyer", "gini", "kurtosis"))
    description = "classical sparseness: Treves–Rolls, Hoyer, Gini, kurtosis; lifetime and spatial"
    defaults: ClassVar[dict[str, Any]] = {}

    def reducers(self) -> dict:
        """Per-image statistics this family needs."""
        return {k: REDUCERS[k] for k in ("mean", "max", "sp_tr", "sp_hoyer", "sp_gini", "sp_kurtosis")}

    def finalize(self, stats: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Lifetime indices per row over its images; spatial indices averaged over its images."""
        out = {f"lifetime_{i}_{s}": _lifetime(stats[s], i) for s in ("mean", "max")
               for i in ("tr", "hoyer", "gini", "kurtosis")}
        out |= {f"spatial_{i}": _nanmean(stats[f"sp_{i}"]) for i in ("tr", "hoyer", "gini", "kurtosis")}
        return out
