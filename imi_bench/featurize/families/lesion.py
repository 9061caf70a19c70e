"""Lesion importance of single units and of their activation clusters (featurizer-reference §6).

A *lesion* silences channels of a layer's unit tensor (the same tensor every
family reads, see :class:`~imi_bench.models.adapter.LayerInfo`): ``mode="zero"``
writes 0, ``mode="mean"`` the channel's mean over the images and positions
(0 is not the resting value of pre-ReLU or BN units). Every consumer of the
tensor sees the silenced channel; for ``site="input"`` layers only the hooked
module's input is replaced, exactly like its forward pre-hook.

**Labels.** No ImageNet labels are available offline, so by default the labels
are the *un-lesioned model's own top-1 predictions*: "accuracy" is agreement
with the intact network, and the baseline accuracy is 1 by construction. A
pool whose ``meta`` has an integer ``label`` column (valid class indices)
supplies true labels instead.

**Statistics** over the first ``n_images`` images of the source, with classes
= the labels present and ``Δ_c`` = class-wise accuracy after minus before:

* ``lesion_acc_drop``: ``mean_c Δ_c`` (class-balanced; **signed** as in the
  reference, negative when the lesion hurts);
* ``lesion_class_range``: ``max_c − min_c`` of ``Δ_c / mean_c Δ_c`` (NaN when
  the mean is 0);
* ``lesion_logit_drop``: class-balanced mean increase of the label's
  cross-entropy, ``log p_before − log p_after`` (positive when it hurts; the
  smooth companion of the 0/1 accuracy);
* ``lesion_acc_pct`` / ``lesion_range_pct``: :func:`percentile` of the unit
  against ``n_random`` random *other* units of its layer (left side for
  accuracy, right side for range). The controls of a layer come from one
  seeded permutation of its channels (seed, model, layer), so units of a layer
  share most controls and a row's result never depends on the other rows;
* ``lesion_acc_effect2x`` / ``lesion_range_effect2x``: :func:`effect2x`
  against the controls' mean (NaN controls ignored);
* ``lesion_cluster_acc_drop`` (``cluster=True``): accuracy change when the
  unit's spectral cluster is lesioned (activation graph: squared Spearman
  correlation of spatial-mean responses over the images, diagonal 0); NaN when
  off or when the cluster is outside the size limits (≥ 2, ≤ 0.99 × width).

**Speed.** Images and baseline predictions are computed once per model and
shared through ``ctx.extras``. Each layer is split with ``torch.fx`` into a
prefix (run once: the layer's tensor plus every other tensor the rest of the
network needs, e.g. a skip connection) and a suffix that is the only part run
per lesion; (lesion, image) pairs are batched along the batch dimension with
per-sample channel masks. Models that cannot be traced, and layers whose
module runs more than once, use full forward passes with a lesion hook
(``engine="hook"``) — same numbers, more time. Lesion outcomes are cached per
(layer, channel set), so shared controls are evaluated once.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd
import torch

from ...data.scores import stable_seed
from ...errors import ImiBenchError
from ...models.adapter import LayerInfo
from ..base import CustomFamily, FeatureContext, register_family
from .lesion_engine import Baseline, LayerLesioner, LesionState, apply_lesion, compute_baseline, lesion_hook
from .lesion_split import split_at, trace_model

__all__ = ["Lesion", "LayerLesioner", "LesionState", "activation_clusters", "apply_lesion", "class_stats",
           "effect2x", "fisher_statistic", "lesion_hook", "percentile", "split_at", "trace_model"]

log = logging.getLogger(__name__)
ArrayLike = float | Sequence[float] | np.ndarray


# --------------------------------------------------------------------------- statistics (pure)
def percentile(true: float, randoms: ArrayLike, side: Literal["left", "right"]) -> float:
    """``(r + 1)/(n + 1)``: r counts randoms smaller (``left``) or larger (``right``) than ``true``.

    NaN randoms count as neither; NaN when ``true`` is NaN or there are no randoms.

    >>> percentile(-1.0, [0.0] * 19, "left"), percentile(1.0, [0.0] * 19, "left")
    (0.05, 1.0)
    """
    r = np.asarray(randoms, dtype=float).ravel()
    if r.size == 0 or np.isnan(true):
        return float("nan")
    count = np.sum(r < true) if side == "left" else np.sum(r > true)
    return float((count + 1) / (r.size + 1))


def effect2x(x: ArrayLike, mu: ArrayLike, kind: Literal["accuracy", "range"]) -> np.ndarray:
    """The doubled effect measure ``2x/(x + μ)`` (1 = like random, > 1 = stronger than random).

    For ``accuracy`` it is defined only when ``x`` and ``μ`` are both negative (else 0); NaN becomes 0.
    """
    x, mu = np.asarray(x, dtype=float), np.asarray(mu, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        e = 2 * x / (x + mu)
    if kind == "accuracy":
        e = np.where((x < 0) & (mu < 0), e, 0.0)
    return np.nan_to_num(e, nan=0.0, posinf=np.inf, neginf=-np.inf)


def fisher_statistic(percentiles: ArrayLike, n: int) -> float:
    """``F = −mean log(p − 1/(2(n+1)))`` over groups' percentiles against ``n`` randoms (F > 1: above random)."""
    p = np.asarray(percentiles, dtype=float).ravel()
    return float(-np.mean(np.log(p - 1 / (2 * (n + 1)))))


def class_stats(labels: np.ndarray, base_correct: np.ndarray, base_logp: np.ndarray, correct: np.ndarray,
                logp: np.ndarray) -> dict[str, np.ndarray]:
    """Class-balanced lesion statistics of ``R`` lesions.

    Args:
        labels: ``(N,)`` class of each image.
        base_correct: ``(N,)`` 1 where the intact model is right.
        base_logp: ``(N,)`` intact log-probability of the label.
        correct: ``(R, N)`` the same after each lesion.
        logp: ``(R, N)`` the same after each lesion.

    Returns:
        ``acc`` (mean ``Δ_c``), ``range`` (max − min of ``Δ_c / mean Δ_c``, NaN if the mean is 0) and
        ``logit`` (class-balanced mean of ``base_logp − logp``), each ``(R,)``.
    """
    _, inverse = np.unique(labels, return_inverse=True)
    onehot = np.eye(inverse.max() + 1)[inverse]  # (N, K)
    weights = onehot / onehot.sum(0)  # class means as a matrix product
    delta = (np.atleast_2d(correct).astype(float) - base_correct) @ weights  # (R, K)
    acc = delta.mean(1)
    with np.errstate(divide="ignore", invalid="ignore"):
        scaled = delta / acc[:, None]
    rng = np.where(acc != 0, scaled.max(1) - scaled.min(1), np.nan)
    logit = ((base_logp - np.atleast_2d(logp)) @ weights).mean(1)
    return {"acc": acc, "range": rng, "logit": logit}


# --------------------------------------------------------------------------- clusters
def activation_clusters(acts: np.ndarray, n_clusters: int, seed: int) -> np.ndarray:
    """Spectral clusters of a layer's channels from their ``(images, channels)`` responses.

    Adjacency: squared Spearman correlation over images (constant channels: 0), diagonal 0.
    """
    from scipy.stats import rankdata
    from sklearn.cluster import SpectralClustering

    ranks = rankdata(np.asarray(acts, dtype=float), axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        adjacency = np.nan_to_num(np.corrcoef(ranks, rowvar=False), nan=0.0) ** 2
    np.fill_diagonal(adjacency, 0.0)
    k = max(1, min(int(n_clusters), adjacency.shape[0]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "graph is not fully connected"
        return SpectralClustering(k, affinity="precomputed", random_state=seed).fit_predict(adjacency)


def _cluster_of(clusters: np.ndarray, channel: int) -> tuple[int, ...] | None:
    members = np.flatnonzero(clusters == clusters[channel])
    return tuple(int(c) for c in members) if 2 <= len(members) <= 0.99 * len(clusters) else None


# --------------------------------------------------------------------------- the family
def _nanmean(x: np.ndarray) -> float:
    x = x[~np.isnan(x)]
    return float(x.mean()) if x.size else float("nan")


@register_family
class Lesion(CustomFamily):
    """Single-unit (and cluster) lesion importance against random same-layer controls (see the module docstring).

    Parameters: ``n_images`` (first images of the source), ``n_random`` (controls per unit), ``mode``
    (``zero`` or ``mean``), ``cluster`` / ``n_clusters`` (the unit's spectral cluster), ``engine``
    (``auto``: traced prefix/suffix split where possible; ``split``; ``hook``: full forward passes).
    """

    name = "lesion"
    columns = ("lesion_acc_drop", "lesion_class_range", "lesion_acc_pct", "lesion_range_pct", "lesion_acc_effect2x",
               "lesion_range_effect2x", "lesion_logit_drop", "lesion_cluster_acc_drop")
    description = "lesion importance: class-balanced agreement change, class-wise range, percentiles vs random units"
    defaults: ClassVar[dict[str, Any]] = {"n_images": 64, "n_random": 4, "mode": "zero", "cluster": False,
                                          "n_clusters": 8, "engine": "auto"}

    def compute(self, ctx: FeatureContext) -> pd.DataFrame:
        """One row per unit row (same order as ``ctx.units``)."""
        from tqdm.auto import tqdm

        if self.params["mode"] not in ("zero", "mean") or self.params["engine"] not in ("auto", "split", "hook"):
            raise ImiBenchError(f"lesion: mode must be 'zero' or 'mean' and engine 'auto', 'split' or 'hook'; got "
                                f"{self.params['mode']!r}, {self.params['engine']!r}")
        model_key = ("lesion", ctx.adapter.name, id(ctx.adapter.model), int(self.params["n_images"]))
        if model_key not in ctx.extras:
            ctx.extras[model_key] = compute_baseline(ctx.adapter, ctx.source.pool(), self.params["n_images"],
                                                     ctx.batch_size, ctx.progress)
        base: Baseline = ctx.extras[model_key]
        store = ctx.extras.setdefault((*model_key, self.params["mode"], "outcomes"), {})
        out = np.full((len(ctx.units), len(self.columns)), np.nan)
        groups = ctx.units.groupby("layer", sort=False).indices
        with tqdm(total=len(ctx.units), desc=f"{ctx.adapter.name} lesions", unit="unit",
                  disable=not ctx.progress) as bar:
            for layer, idx in groups.items():
                channels = ctx.units["channel"].to_numpy()[idx].astype(int)
                out[idx] = self._layer(ctx, ctx.adapter.layer(str(layer)), base, channels, store)
                bar.update(len(idx))
        return pd.DataFrame(out, columns=list(self.columns))

    def _layer(self, ctx: FeatureContext, layer: LayerInfo, base: Baseline, channels: np.ndarray,
               store: dict[Any, Any]) -> np.ndarray:
        """The rows of one layer's units."""
        order = stable_seed(ctx.seed, "lesion-controls", ctx.adapter.name, layer.name).permutation(layer.width)
        controls = {c: tuple(int(o) for o in order if o != c)[:int(self.params["n_random"])] for c in channels}
        wanted: set[tuple[int, ...]] = {(int(c),) for c in channels} | {(o,) for cs in controls.values() for o in cs}
        lesioner: list[LayerLesioner] = []  # built at most once, only if something is not cached

        def get() -> LayerLesioner:
            lesioner.append(lesioner[0] if lesioner else self._lesioner(ctx, layer, base))
            return lesioner[0]

        clusters = self._clusters(ctx, layer, get, store) if self.params["cluster"] else None
        cluster_of = {c: _cluster_of(clusters, c) if clusters is not None else None for c in channels}
        wanted |= {g for g in cluster_of.values() if g is not None}
        missing = [g for g in sorted(wanted) if (layer.name, g) not in store]
        if missing:
            self._evaluate(get(), layer, missing, store)
        rows = []
        for c in channels:
            got = [store[(layer.name, g)] for g in [(int(c),), *[(o,) for o in controls[c]]]]
            s = class_stats(base.labels.cpu().numpy(), base.correct, base.label_logp,
                            np.stack([g[0] for g in got]), np.stack([g[1] for g in got]))
            acc, rng = s["acc"], s["range"]
            group = cluster_of[c]
            cluster_acc = float("nan") if group is None else float(class_stats(
                base.labels.cpu().numpy(), base.correct, base.label_logp, *store[(layer.name, group)])["acc"][0])
            rows.append([acc[0], rng[0], percentile(acc[0], acc[1:], "left"), percentile(rng[0], rng[1:], "right"),
                         effect2x(acc[0], _nanmean(acc[1:]), "accuracy"), effect2x(rng[0], _nanmean(rng[1:]), "range"),
                         s["logit"][0], cluster_acc])
        return np.array(rows, dtype=float)

    def _lesioner(self, ctx: FeatureContext, layer: LayerInfo, base: Baseline) -> LayerLesioner:
        split = None
        if self.params["engine"] != "hook":
            key = ("lesion", "trace", ctx.adapter.name, id(ctx.adapter.model))
            if key not in ctx.extras:
                try:
                    ctx.extras[key] = trace_model(ctx.adapter)
                except Exception as e:  # any tracing failure: use full forward passes
                    log.warning("lesion: %s cannot be traced (%s); using full forward passes", ctx.adapter.name, e)
                    ctx.extras[key] = None
            if ctx.extras[key] is not None:
                graph, calls = ctx.extras[key]
                split = split_at(ctx.adapter.model, graph, calls, layer)
        lesioner = LayerLesioner(ctx.adapter, layer, base, ctx.batch_size, split)
        if self.params["engine"] == "split" and lesioner.engine != "split":
            raise ImiBenchError(f"lesion: layer {layer.name} of {ctx.adapter.name} cannot be split (engine='split')")
        return lesioner

    def _clusters(self, ctx: FeatureContext, layer: LayerInfo, get: Any, store: dict[Any, Any]) -> np.ndarray:
        key = ("clusters", layer.name, int(self.params["n_clusters"]))
        if key not in store:
            seed = int(stable_seed(ctx.seed, "lesion-clusters", ctx.adapter.name, layer.name).integers(2**31))
            store[key] = activation_clusters(get().acts.numpy(), int(self.params["n_clusters"]), seed)
        return store[key]

    def _evaluate(self, lesioner: LayerLesioner, layer: LayerInfo, groups: list[tuple[int, ...]],
                  store: dict[Any, Any]) -> None:
        masks = torch.zeros(len(groups), layer.width, dtype=torch.bool)
        for i, g in enumerate(groups):
            masks[i, list(g)] = True
        fill = lesioner.acts.mean(0) if self.params["mode"] == "mean" and lesioner.acts is not None else None
        correct, logp = lesioner.outcomes(masks, fill)
        for i, g in enumerate(groups):
            store[(layer.name, g)] = (correct[i], logp[i])
