"""Running lesions: silence channels of a layer's tensor for every consumer, many lesions per forward pass.

:func:`apply_lesion` and :func:`lesion_hook` define the lesion; :class:`LayerLesioner` evaluates many
lesions of one layer on the intact model's images, on a traced prefix/suffix split
(:mod:`~imi_bench.featurize.families.lesion_split`) or, where that is impossible, with full forward
passes through the hook. :mod:`~imi_bench.featurize.families.lesion` builds the family on top.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from ...errors import ImiBenchError
from ...models.adapter import LayerInfo, ModelAdapter
from ...models.hooks import channels_first, spatial_mean
from .lesion_split import Split

__all__ = ["Baseline", "LayerLesioner", "LesionState", "apply_lesion", "compute_baseline", "lesion_hook"]

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- the lesion itself
def _restore(x_cf: torch.Tensor, layout: str) -> torch.Tensor:
    """Inverse of :func:`~imi_bench.models.hooks.channels_first`."""
    if layout in ("NCHW", "NC"):
        return x_cf
    if layout == "NHWC":
        return x_cf.permute(0, *range(2, x_cf.dim()), 1)
    if layout == "NLD":
        return x_cf.transpose(1, 2)
    return x_cf.permute(2, 0, 1)  # LND


def apply_lesion(x: torch.Tensor, layout: str, mask: torch.Tensor, fill: torch.Tensor | None = None) -> torch.Tensor:
    """``x`` with the masked channels replaced by ``fill`` (default 0), out of place.

    Args:
        x: A layer tensor in its declared ``layout``.
        layout: ``NCHW``, ``NHWC``, ``NLD``, ``LND`` or ``NC``.
        mask: ``(C,)`` or per-sample ``(N, C)`` booleans: channels to silence.
        fill: ``(C,)`` replacement values (mean-ablation), or None for zeros.
    """
    cf = channels_first(x, layout)
    mask = mask.to(cf.device).expand(cf.shape[0], cf.shape[1]).reshape(*cf.shape[:2], *[1] * (cf.dim() - 2))
    value = torch.zeros((), dtype=cf.dtype, device=cf.device) if fill is None else \
        fill.to(cf.device, cf.dtype).reshape(1, -1, *[1] * (cf.dim() - 2))
    return _restore(torch.where(mask, value, cf), layout)


@dataclass
class LesionState:
    """What :func:`lesion_hook` writes; change ``mask`` between forward passes to change the lesion."""

    mask: torch.Tensor
    fill: torch.Tensor | None = None


@contextmanager
def lesion_hook(model: nn.Module, layer: LayerInfo, state: LesionState) -> Iterator[LesionState]:
    """Silence channels of ``layer``'s tensor for every consumer during the block.

    ``site="output"``: a forward hook returns the lesioned output (first element of a tuple);
    ``site="input"``: a forward pre-hook returns the lesioned first input.
    """
    module = model.get_submodule(layer.module)
    if layer.site == "input":
        def pre(_m: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...]:
            return (apply_lesion(args[0], layer.layout, state.mask, state.fill), *args[1:])

        handle = module.register_forward_pre_hook(pre)
    else:
        def post(_m: nn.Module, _args: tuple[Any, ...], out: Any) -> Any:
            if isinstance(out, tuple):
                return (apply_lesion(out[0], layer.layout, state.mask, state.fill), *out[1:])
            return apply_lesion(out, layer.layout, state.mask, state.fill)

        handle = module.register_forward_hook(post)
    try:
        yield state
    finally:
        handle.remove()


# --------------------------------------------------------------------------- running lesions
@dataclass
class Baseline:
    """The intact model on the lesion images (shared by every layer of a model)."""

    images: torch.Tensor  # (N, 3, H, W) on the model's device
    labels: torch.Tensor  # (N,) long, same device
    logp: torch.Tensor  # (N, K) intact log-probabilities
    correct: np.ndarray  # (N,) 1.0 where the intact model is right
    label_logp: np.ndarray  # (N,) intact log-probability of the label
    kind: str  # "pseudo" (intact top-1) or "true" (the pool's label column)


def _cl(x: torch.Tensor) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x


def _labels(meta: pd.DataFrame, n: int, classes: int) -> np.ndarray | None:
    if "label" not in meta.columns:
        return None
    lab = pd.to_numeric(meta["label"].iloc[:n], errors="coerce").to_numpy(dtype=float)
    if np.isfinite(lab).all() and (lab == np.round(lab)).all() and (lab >= 0).all() and (lab < classes).all():
        return lab.astype(np.int64)
    log.warning("lesion: the pool's label column is not a valid class index for every image; using the intact "
                "model's top-1 predictions as labels")
    return None


def compute_baseline(adapter: ModelAdapter, pool: Any, n_images: int, batch_size: int, progress: bool) -> Baseline:
    """Preprocess the first ``n_images`` of ``pool`` and run the intact model (labels: pool's or top-1)."""
    n = min(int(n_images), len(pool))
    if n < 1:
        raise ImiBenchError("lesion: the image source is empty")
    chunks = [x for _, x in pool.subset(range(n)).batches(adapter.preprocessing, batch_size, progress=progress,
                                                          desc=f"{adapter.name} lesion images")]
    images = _cl(torch.cat(chunks).to(adapter.device))
    with torch.inference_mode():
        logits = torch.cat([adapter.model(images[s:s + batch_size]) for s in range(0, n, batch_size)]).float()
    logp = torch.log_softmax(logits, 1)
    true = _labels(pool.meta, n, logits.shape[1])
    labels = logits.argmax(1) if true is None else torch.as_tensor(true, device=logits.device)
    return Baseline(images, labels, logp, (logits.argmax(1) == labels).double().cpu().numpy(),
                    logp.gather(1, labels[:, None])[:, 0].double().cpu().numpy(), "pseudo" if true is None else "true")


class LayerLesioner:
    """Many lesions of one layer on the baseline images, (lesion, image) pairs batched.

    Args:
        adapter: The model.
        layer: The layer whose channels are lesioned.
        base: The intact model's images and labels.
        batch_size: (lesion, image) pairs per forward pass.
        split: A prefix/suffix split of the layer (None: full forward passes with :func:`lesion_hook`).
    """

    def __init__(self, adapter: ModelAdapter, layer: LayerInfo, base: Baseline, batch_size: int,
                 split: Split | None = None) -> None:
        self.adapter, self.layer, self.base, self.batch_size, self.split = adapter, layer, base, batch_size, split
        self.bd = 1 if layer.layout == "LND" else 0
        self.values: torch.Tensor | None = None
        self.frontier: list[torch.Tensor] = []
        self.acts = self._prepare_split() if split is not None else None
        if self.acts is None:
            self.split = None
            self.acts = self._prepare_hook()

    @property
    def engine(self) -> str:
        """``split`` or ``hook``."""
        return "hook" if self.split is None else "split"

    def _prepare_hook(self) -> torch.Tensor:
        out = []
        with self.adapter.recorder([self.layer.name], {"mean": spatial_mean}) as rec:
            for s in range(0, len(self.base.images), self.batch_size):
                self.adapter.forward(rec, self.base.images[s:s + self.batch_size])
                out.append(rec.collect()[self.layer.name].cpu())
                rec.clear()
        return torch.cat(out)

    def _prepare_split(self) -> torch.Tensor | None:
        """Run the prefix once; None (→ hook engine) if the frontier is not batch-shaped or the suffix disagrees."""
        assert self.split is not None
        n, x = len(self.base.images), self.base.images
        with torch.inference_mode():
            outs = [self.split.prefix(x[s:s + self.batch_size]) for s in range(0, n, self.batch_size)]
        parts = list(zip(*outs, strict=True))
        ok = all(isinstance(t, torch.Tensor) and t.dim() > self.bd for p in parts for t in p)
        tensors = [torch.cat(p, dim=self.bd) for p in parts] if ok else []
        if not ok or any(t.shape[self.bd] != n for t in tensors):
            log.warning("lesion: %s: the split's frontier is not batch-shaped; using full forward passes",
                        self.layer.name)
            return None
        self.values, self.frontier = _cl(tensors[0]), [_cl(t) for t in tensors[1:]]
        check = torch.arange(min(n, 4), device=x.device)
        got = torch.log_softmax(self._forward(check, torch.zeros(len(check), 1, dtype=torch.bool), None).float(), 1)
        if not torch.allclose(got, self.base.logp[check], atol=1e-3, rtol=1e-3):
            log.warning("lesion: %s: the traced suffix does not reproduce the model; using full forward passes",
                        self.layer.name)
            self.values, self.frontier = None, []
            return None
        return spatial_mean(channels_first(self.values, self.layer.layout)).cpu()

    def _forward(self, img: torch.Tensor, mask: torch.Tensor, fill: torch.Tensor | None) -> torch.Tensor:
        with torch.inference_mode():
            if self.split is None:
                with lesion_hook(self.adapter.model, self.layer, LesionState(mask, fill)):
                    return self.adapter.model(self.base.images.index_select(0, img))
            assert self.values is not None
            v = _cl(apply_lesion(self.values.index_select(self.bd, img), self.layer.layout, mask, fill))
            return self.split.suffix(v, *(_cl(t.index_select(self.bd, img)) for t in self.frontier))

    def outcomes(self, masks: torch.Tensor, fill: torch.Tensor | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Correctness and label log-probability ``(R, N)`` of ``R`` lesions given as ``(R, C)`` channel masks."""
        n, device = len(self.base.images), self.base.images.device
        pairs = torch.arange(len(masks) * n, device=device)
        masks = masks.to(device)
        correct, logp = [], []
        for chunk in pairs.split(self.batch_size):
            img = chunk % n
            logits = self._forward(img, masks[chunk // n], fill).float()
            labels = self.base.labels[img]
            logp.append(torch.log_softmax(logits, 1).gather(1, labels[:, None])[:, 0].double().cpu())
            correct.append((logits.argmax(1) == labels).cpu())
        return torch.cat(correct).view(-1, n).numpy(), torch.cat(logp).view(-1, n).numpy()
