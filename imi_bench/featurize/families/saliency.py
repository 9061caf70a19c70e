"""Parameter-space saliency (featurizer-reference §5): which conv filters an image's loss is most sensitive to.

For an image ``x`` with label ``y`` (model in eval mode) and every 4-D conv weight ``W`` (``named_parameters``
order), filter ``j`` gets ``s_j(x) = mean_{c_in, kh, kw} |∂CE(f(x), y)/∂W_j|``; the *profile* ``s(x)`` is all
filters of all conv weights. Over the first ``n_images`` images of the source it is standardised per filter,
``ŝ_j = (s_j − μ_j) / σ_j`` (unbiased σ, fp64 Chan merges, σ ≤ 1e-14 → 1).

**Labels and the conditioning set.** Offline there are no ImageNet labels, so by default (``label="auto"``
without labels in the source) ``y`` is the model's own top-1 prediction on the unperturbed image
(*pseudo-labels*). Then no image is "wrong": the ``psal_z_wrong_*`` columns are conditioned instead on the
**least-confident** images, the ``ceil(low_conf_quantile · n)`` images with the lowest max softmax probability
(ties by image index). When the source provides true labels (a ``labels`` attribute of the source or pool, or
a ``label`` column of ``pool.meta``) they are used and the conditioning set is the **misclassified** images
(top-1 ≠ label), as in the paper. The rule in force is recorded in :meth:`ParamSaliency.config` and in
``ctx.extras["param_saliency_meta"]``.

**Unit mapping** (§5.3; :func:`unit_map`): unit (layer, c) → filter ``c`` of the conv weight producing the layer.
A conv layer maps to its own weight (depthwise convs included: filter ``c`` of the depthwise weight). A norm
layer maps to the conv whose output tensor *is* the norm module's input, found by a one-image forward probe
(fallback: the nearest earlier conv registered under the same parent); fused norm+activation layers hooked at
``….act`` input map by the norm module itself. A block unit maps to the mean over the block's last main-path
conv and its downsample/shortcut/skip convs (``block="last_conv"``), or, with ``block="strict"`` (the
reference's rule), only where a downsample conv exists. Everything else (linear, activation, ViT layers, width
mismatches) is NaN, with the reason logged and kept in the metadata.

Columns per unit row: ``psal_mean_raw`` (μ_u), ``psal_cv`` (σ_u/μ_u), ``psal_z_wrong_mean`` (E[ŝ_u | set]),
``psal_z_wrong_gt2_rate`` (P(ŝ_u > 2 | set)) and ``psal_z_wrong_layer_rank`` (average rank of E[ŝ_u | set]
among the layer's channels, scaled to 0..1). Multi-filter units average their filters' raw ``s`` and ``ŝ``
per image. Per-sample gradients come from ``torch.func`` (``vmap(grad(...))`` over chunks, only the conv
weights differentiable, reduced to the profile inside the vmapped function); :func:`saliency_loop` is the
batch-size-1 oracle. Nothing is random: the seed is unused.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch
from scipy.stats import rankdata
from torch import nn
from torch.func import functional_call, grad, vmap

from ...errors import ImiBenchError, ImiDataError
from ...models.adapter import ModelAdapter
from ..base import CustomFamily, FeatureContext, register_family
from .saliency_map import LayerMap, conv_weights, unit_map

__all__ = ["LayerMap", "ParamSaliency", "RunningMoments", "SaliencyProfile", "benchmark_paths", "compute_profile",
           "conv_weights", "input_saliency", "layer_features", "saliency_loop", "saliency_vmap", "unit_map"]

log = logging.getLogger(__name__)
SIGMA_FLOOR = 1e-14


# --------------------------------------------------------------------------- per-sample profiles
def _loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Cross-entropy against ``y``; ``y < 0`` means the model's own top-1 prediction (pseudo-label)."""
    target = torch.where(y < 0, logits.argmax(-1), y)
    return nn.functional.cross_entropy(logits, target)


def _reduce(grads: Sequence[torch.Tensor]) -> torch.Tensor:
    """Filter profile: mean |grad| over (c_in, kh, kw) of every conv weight, concatenated."""
    return torch.cat([g.abs().flatten(1).mean(1) for g in grads])


def _check_eval(model: nn.Module) -> None:
    if model.training:
        raise ImiBenchError("parameter saliency needs the model in eval mode (BatchNorm running statistics)")


def saliency_vmap(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *,
                  chunk_size: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample filter profiles with ``vmap(grad(...))``.

    Args:
        model: Eval-mode network.
        x: Images ``(N, 3, H, W)`` on the model's device.
        y: Labels ``(N,)`` (long); ``-1`` = the image's own top-1 prediction.
        chunk_size: Images per vmapped call (caps memory: one gradient set per image in flight).

    Returns:
        ``(profiles (N, F), logits (N, K))``, fp32.
    """
    _check_eval(model)
    names = conv_weights(model)
    params = {n: p.detach() for n, p in model.named_parameters()}
    conv = {n: params.pop(n) for n in names}
    buffers = dict(model.named_buffers())

    def one(w: dict[str, torch.Tensor], xi: torch.Tensor, yi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = functional_call(model, ({**params, **w}, buffers), (xi[None],))
        return _loss(logits, yi[None]), logits[0].detach()

    def profile(w: dict[str, torch.Tensor], xi: torch.Tensor, yi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        g, logits = grad(one, has_aux=True)(w, xi, yi)
        return _reduce([g[n] for n in names]), logits

    with torch.inference_mode(False), torch.enable_grad():
        out = vmap(profile, in_dims=(None, 0, 0), chunk_size=chunk_size)(conv, x, y)
    return out[0], out[1]


def saliency_loop(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Oracle path: one image at a time with ``torch.autograd.grad`` (same outputs as :func:`saliency_vmap`)."""
    _check_eval(model)
    params = dict(model.named_parameters())
    weights = [params[n] for n in conv_weights(model)]
    profiles, logits = [], []
    with torch.inference_mode(False), torch.enable_grad():
        for xi, yi in zip(x, y, strict=True):
            out = model(xi[None])
            profiles.append(_reduce(torch.autograd.grad(_loss(out, yi[None]), weights)))
            logits.append(out[0].detach())
    return torch.stack(profiles), torch.stack(logits)


@dataclass
class RunningMoments:
    """Per-filter mean and unbiased std over images, merged chunk by chunk in fp64 (Chan et al.)."""

    n: int = 0
    mean: torch.Tensor | None = None
    m2: torch.Tensor | None = None

    def update(self, batch: torch.Tensor) -> None:
        """Merge a chunk ``(B, F)``."""
        b = batch.detach().to("cpu", torch.float64)
        nb, mb = len(b), b.mean(0)
        m2b = ((b - mb) ** 2).sum(0)
        if self.mean is None or self.m2 is None:
            self.n, self.mean, self.m2 = nb, mb, m2b
            return
        total, delta = self.n + nb, mb - self.mean
        self.mean = self.mean + delta * (nb / total)
        self.m2 = self.m2 + m2b + delta**2 * (self.n * nb / total)
        self.n = total

    def std(self) -> torch.Tensor:
        """Unbiased std (NaN with fewer than 2 images)."""
        assert self.m2 is not None
        return (self.m2 / (self.n - 1)).sqrt() if self.n > 1 else torch.full_like(self.m2, math.nan)

    def scale(self) -> torch.Tensor:
        """The standardisation divisor: std, with σ ≤ 1e-14 (or undefined) replaced by 1."""
        s = self.std()
        return torch.where(torch.isfinite(s) & (s > SIGMA_FLOOR), s, torch.ones_like(s))


@dataclass
class SaliencyProfile:
    """Profiles of a model over an image set, their statistics and the conditioning set.

    Attributes:
        names: Conv weight names; ``offsets[name]`` is the profile column of its filter 0.
        raw: ``(N, F)`` fp32 raw profiles.
        moments: Per-filter mean/std (fp64).
        labels: ``(N,)`` labels used (-1: pseudo-label).
        p_max: ``(N,)`` max softmax probability; ``predicted``: top-1 class.
        condition: ``(N,)`` boolean conditioning set; ``rule``: its definition.
    """

    names: list[str]
    offsets: dict[str, int]
    raw: torch.Tensor
    moments: RunningMoments
    labels: np.ndarray
    p_max: np.ndarray
    predicted: np.ndarray
    condition: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    rule: str = ""

    def z(self, columns: np.ndarray) -> torch.Tensor:
        """Standardised profiles ``(N, …)`` (fp64) of the given columns."""
        assert self.moments.mean is not None
        cols = torch.from_numpy(columns)
        return (self.raw[:, cols].double() - self.moments.mean[cols]) / self.moments.scale()[cols]


def _set_condition(prof: SaliencyProfile, quantile: float) -> None:
    n = len(prof.labels)
    if (prof.labels >= 0).all():
        prof.condition = prof.predicted != prof.labels
        prof.rule = "misclassified images (top-1 prediction != true label)"
        return
    k = math.ceil(quantile * n)
    order = np.lexsort((np.arange(n), prof.p_max))  # ascending confidence, ties by index
    prof.condition = np.zeros(n, bool)
    prof.condition[order[:k]] = True
    prof.rule = (f"least-confident images: the {k} of {n} with the lowest max softmax probability "
                 f"(quantile {quantile}); pseudo-labels = own top-1, so 'wrong' is undefined")


def compute_profile(adapter: ModelAdapter, pool: Any, *, n_images: int = 128, chunk_size: int = 16,
                    labels: np.ndarray | None = None, low_conf_quantile: float = 0.25,
                    progress: bool = True) -> SaliencyProfile:
    """Profiles of the first ``n_images`` pool images (preprocessed with the adapter's preprocessing).

    Args:
        adapter: The model (its device is used).
        pool: An :class:`~imi_bench.stimuli.pool.ImagePool`.
        n_images: Images used (fewer if the pool is smaller).
        chunk_size: Images per vmapped call.
        labels: True class indices per pool image (None: pseudo-labels).
        low_conf_quantile: Fraction of least-confident images conditioned on under pseudo-labels.
        progress: Show a tqdm bar.
    """
    n = min(int(n_images), len(pool))
    if n < 1:
        raise ImiBenchError("parameter saliency needs at least one image")
    names = conv_weights(adapter.model)
    if not names:
        raise ImiBenchError(f"{adapter.name} has no 4-D conv weights: parameter saliency is undefined")
    y_all = np.full(n, -1, np.int64) if labels is None else np.asarray(labels[:n], np.int64)
    moments, raws, logits = RunningMoments(), [], []
    sub = pool.subset(range(n)) if n < len(pool) else pool
    for index, x in sub.batches(adapter.preprocessing, chunk_size, progress=progress,
                                desc=f"{adapter.name} parameter saliency"):
        y = torch.from_numpy(y_all[index.numpy()]).to(adapter.device)
        prof, out = saliency_vmap(adapter.model, x.to(adapter.device), y, chunk_size=chunk_size)
        moments.update(prof)
        raws.append(prof.float().cpu())
        logits.append(out.float().cpu())
    lg = torch.cat(logits)
    if (y_all >= lg.shape[1]).any():
        row = int(np.flatnonzero(y_all >= lg.shape[1])[0])
        raise ImiDataError(f"label {y_all[row]} is not a class of {adapter.name} ({lg.shape[1]} classes)",
                           row=row + 1, column="label")
    sizes = [p.shape[0] for p in (dict(adapter.model.named_parameters())[k] for k in names)]
    offsets = dict(zip(names, np.cumsum([0, *sizes[:-1]]).tolist(), strict=True))
    result = SaliencyProfile(names, offsets, torch.cat(raws), moments, y_all, lg.softmax(1).amax(1).numpy(),
                             lg.argmax(1).numpy())
    _set_condition(result, low_conf_quantile)
    return result


# --------------------------------------------------------------------------- unit features
def _rank01(v: np.ndarray) -> np.ndarray:
    out = np.full(len(v), np.nan)
    ok = np.isfinite(v)
    if ok.sum() == 1:
        out[ok] = 0.5
    elif ok.any():
        out[ok] = (rankdata(v[ok]) - 1) / (ok.sum() - 1)
    return out


def layer_features(prof: SaliencyProfile, params: Sequence[str], width: int) -> dict[str, np.ndarray]:
    """The five columns for every channel ``0..width-1`` of a layer mapped onto ``params``."""
    cols = ParamSaliency.columns
    if not params:
        return {c: np.full(width, np.nan) for c in cols}
    idx = np.stack([prof.offsets[p] + np.arange(width) for p in params])  # (k, width)
    raw = prof.raw[:, torch.from_numpy(idx)].double().mean(1)  # (N, width)
    z = prof.z(idx).mean(1)
    mu = raw.mean(0)
    sd = raw.std(0) if len(raw) > 1 else torch.full_like(mu, math.nan)
    cv = torch.where(mu > 0, sd / mu, torch.full_like(mu, math.nan))
    cond = torch.from_numpy(prof.condition)
    zc = z[cond]
    nan = torch.full_like(mu, math.nan)
    zmean = zc.mean(0) if len(zc) else nan
    gt2 = (zc > 2).double().mean(0) if len(zc) else nan
    values = [mu, cv, zmean, gt2]
    return {**{c: v.numpy() for c, v in zip(cols, values, strict=False)}, cols[4]: _rank01(zmean.numpy())}


def _labels(values: Any, column: str) -> np.ndarray:
    f = pd.to_numeric(pd.Series(np.asarray(values, dtype=object)), errors="coerce").to_numpy(float)
    bad = np.flatnonzero(~np.isfinite(f) | (f < 0) | (f != np.round(f)))
    if len(bad):
        raise ImiDataError("a true label must be a non-negative integer class index", row=int(bad[0]) + 1,
                           column=column)
    return f.astype(np.int64)


def source_labels(source: Any) -> np.ndarray | None:
    """True labels of a source's pool: ``source.labels``, ``pool.labels`` or ``pool.meta['label']`` (or None)."""
    pool = source.pool()
    for obj in (source, pool):
        if getattr(obj, "labels", None) is not None:
            return _labels(obj.labels, "labels")
    meta = pool.meta
    return _labels(meta["label"], "label") if "label" in meta.columns else None


# --------------------------------------------------------------------------- the family
@register_family
class ParamSaliency(CustomFamily):
    """Parameter-space saliency of each unit's conv filter (see the module docstring for every rule)."""

    name = "param_saliency"
    columns = ("psal_mean_raw", "psal_cv", "psal_z_wrong_mean", "psal_z_wrong_gt2_rate", "psal_z_wrong_layer_rank")
    description = "parameter-space saliency (Levin et al. 2022) of each unit's producing conv filter"
    defaults: ClassVar[dict[str, Any]] = {"n_images": 64, "chunk_size": 16, "label": "auto",
                                          "low_conf_quantile": 0.25, "block": "last_conv"}

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        p = self.params
        if p["label"] not in ("auto", "predicted", "true") or p["block"] not in ("last_conv", "strict") \
                or int(p["n_images"]) < 1 or int(p["chunk_size"]) < 1 or not 0 < p["low_conf_quantile"] <= 1:
            raise ImiBenchError(f"param_saliency: bad parameters {p} (label auto|predicted|true, block "
                                "last_conv|strict, n_images and chunk_size ≥ 1, 0 < low_conf_quantile ≤ 1)")

    def config(self) -> dict[str, Any]:
        """Parameters plus the conditioning rules (the recorded definition of the ``psal_z_wrong_*`` columns)."""
        return {**super().config(), "conditioning": {
            "true labels": "misclassified images (top-1 != label)",
            "pseudo-labels": f"least-confident {self.params['low_conf_quantile']} of images by max softmax "
                             "probability (labels = own top-1 on the unperturbed image)"}}

    def _profile(self, ctx: FeatureContext) -> SaliencyProfile:
        p = self.params
        key = ("param_saliency", ctx.adapter.name, int(p["n_images"]), p["label"], float(p["low_conf_quantile"]))
        if key not in ctx.extras:
            labels = None if p["label"] == "predicted" else source_labels(ctx.source)
            if labels is None and p["label"] == "true":
                raise ImiBenchError("param_saliency label='true' but the image source provides no labels")
            prof = compute_profile(ctx.adapter, ctx.source.pool(), n_images=int(p["n_images"]),
                                   chunk_size=int(p["chunk_size"]), labels=labels,
                                   low_conf_quantile=float(p["low_conf_quantile"]), progress=ctx.progress)
            if not prof.condition.any():
                log.warning("param_saliency: the conditioning set (%s) is empty; z columns are NaN", prof.rule)
            ctx.extras[key] = prof
            ctx.extras["param_saliency_meta"] = {
                "label_source": "predicted" if labels is None else "true", "conditioning": prof.rule,
                "n_images": len(prof.labels), "n_condition": int(prof.condition.sum()), "dtype": "float32",
                "n_filters": prof.raw.shape[1], "device": ctx.adapter.device.type}
            log.info("param_saliency %s: %d images, %d filters, conditioning on %s", ctx.adapter.name,
                     len(prof.labels), prof.raw.shape[1], prof.rule)
        return ctx.extras[key]

    def compute(self, ctx: FeatureContext) -> pd.DataFrame:
        """One row per unit row of ``ctx.units`` (profiles computed once per model, cached in ``ctx.extras``)."""
        prof = self._profile(ctx)
        maps: dict[str, LayerMap] = ctx.extras.setdefault(("param_saliency_map", self.params["block"]), {})
        feats: dict[str, dict[str, np.ndarray]] = ctx.extras.setdefault(
            ("param_saliency_layers", *sorted(self.params.items())), {})
        todo = [n for n in ctx.units["layer"].unique() if n not in maps]
        if todo:
            maps.update(unit_map(ctx.adapter, todo, block=self.params["block"]))
            ctx.extras.setdefault("param_saliency_meta", {})["unmapped"] = {
                n: m.note for n, m in maps.items() if not m.params}
        out = {c: np.full(len(ctx.units), np.nan) for c in self.columns}
        channels = ctx.units["channel"].to_numpy()
        for name, rows in ctx.units.groupby("layer", sort=False).indices.items():
            width = ctx.adapter.layer(name).width
            if name not in feats:
                feats[name] = layer_features(prof, maps[name].params, width)
            ch = channels[rows].astype(np.int64)
            if ((ch < 0) | (ch >= width)).any():
                raise ImiBenchError(f"{ctx.adapter.name} layer {name} has {width} channels; got {ch.max()}")
            for c in self.columns:
                out[c][rows] = feats[name][c][ch]
        return pd.DataFrame(out)


# --------------------------------------------------------------------------- input space and benchmarking
def input_saliency(adapter: ModelAdapter, image: Any, k: int = 10, *, label: int | None = None,
                   moments: RunningMoments | None = None, boost: float = 100.0) -> torch.Tensor:
    """Input-space saliency (§5.2): gradient of cos(ŝ(x), boosted ŝ(x)) w.r.t. the input (double backward).

    Args:
        adapter: Eval-mode model.
        image: A PIL image (preprocessed here) or a preprocessed ``(3, H, W)`` tensor.
        k: Top-k filters of ŝ(x) multiplied by ``boost`` in the (detached) target profile.
        label: True class (None: the image's own top-1 prediction).
        moments: Reference statistics for ŝ (None: the raw profile, μ = 0, σ = 1).
        boost: Boost factor of the top-k entries.

    Returns:
        ``(H, W)`` map: max over colour channels of the input gradient, then its absolute value.
    """
    _check_eval(adapter.model)
    x = adapter.preprocess([image])[0] if not isinstance(image, torch.Tensor) else image
    x = x.reshape(1, *x.shape[-3:]).to(adapter.device, torch.float32).clone().requires_grad_(True)
    params = dict(adapter.model.named_parameters())
    weights = [params[n] for n in conv_weights(adapter.model)]
    with torch.inference_mode(False), torch.enable_grad():
        logits = adapter.model(x)
        y = logits.argmax(1).detach() if label is None else torch.tensor([label], device=x.device)
        s = _reduce(torch.autograd.grad(nn.functional.cross_entropy(logits, y), weights, create_graph=True))
        if moments is not None and moments.mean is not None:
            s = (s - moments.mean.to(s)) / moments.scale().to(s)
        target = s.detach().clone()
        top = target.topk(min(k, len(target))).indices
        target[top] = target[top] * boost
        (gx,) = torch.autograd.grad(nn.functional.cosine_similarity(s, target, dim=0), x)
    return gx[0].amax(0).abs().detach()


def benchmark_paths(adapter: ModelAdapter, x: torch.Tensor, *, chunk_size: int = 16) -> dict[str, float]:
    """Time :func:`saliency_vmap` and :func:`saliency_loop` on the same images (pseudo-labels) and compare them.

    Returns:
        ``n_images``, ``vmap_s``, ``loop_s``, ``speedup`` (loop / vmap) and ``max_rel_diff``
        (max |vmap − loop| / max |loop|, per filter, maximised over filters).
    """
    x = x.to(adapter.device)
    y = torch.full((len(x),), -1, dtype=torch.long, device=x.device)
    saliency_vmap(adapter.model, x[:2], y[:2], chunk_size=chunk_size)  # warm-up
    t0 = time.perf_counter()
    pv, _ = saliency_vmap(adapter.model, x, y, chunk_size=chunk_size)
    t1 = time.perf_counter()
    pl, _ = saliency_loop(adapter.model, x, y)
    t2 = time.perf_counter()
    scale = pl.abs().amax(0).clamp_min(torch.finfo(pl.dtype).tiny)
    rel = ((pv - pl).abs().amax(0) / scale).max().item()
    return {"n_images": float(len(x)), "vmap_s": t1 - t0, "loop_s": t2 - t1, "speedup": (t2 - t1) / (t1 - t0),
            "max_rel_diff": rel}
