"""Which conv filters produce a layer's channels (parameter-space saliency's unit mapping, reference §5.3).

See :mod:`imi_bench.featurize.families.saliency` for the rules; :func:`unit_map` applies them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ...models.adapter import LayerInfo, ModelAdapter

__all__ = ["LayerMap", "conv_weights", "unit_map"]

_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm, nn.GroupNorm, nn.LayerNorm,
          nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d)
_SKIP_PARTS = frozenset({"downsample", "shortcut", "skip"})


def conv_weights(model: nn.Module) -> list[str]:
    """Names of every 4-D parameter (conv weights) in ``named_parameters`` order."""
    return [n for n, p in model.named_parameters() if p.ndim == 4]


# --------------------------------------------------------------------------- unit mapping
@dataclass(frozen=True)
class LayerMap:
    """The conv weights whose filter ``c`` gives channel ``c`` of a layer (averaged); empty → NaN, see ``note``."""

    params: tuple[str, ...]
    note: str


def _parent(path: str) -> str:
    return path.rsplit(".", 1)[0] if "." in path else ""


def _conv_modules(model: nn.Module) -> dict[str, str]:
    """Module path → name of its own 4-D weight, in registration order."""
    names = set(conv_weights(model))
    out = {}
    for path, module in model.named_modules():
        name = f"{path}.weight" if path else "weight"
        if name in names and module._parameters.get("weight") is not None:
            out[path] = name
    return out


def _norm_inputs(adapter: ModelAdapter, convs: dict[str, str]) -> dict[str, str]:
    """Norm module path → the conv whose output tensor *is* its input (one zero-image forward probe)."""
    modules = dict(adapter.model.named_modules())
    produced: dict[int, tuple[str, torch.Tensor]] = {}  # references keep ids unique during the probe
    found: dict[str, str] = {}

    def on_conv(path: str) -> Any:
        return lambda _m, _i, out: produced.__setitem__(id(out), (path, out))

    def on_norm(path: str) -> Any:
        def hook(_m: nn.Module, inputs: tuple[Any, ...]) -> None:
            hit = produced.get(id(inputs[0])) if inputs else None
            if hit is not None and hit[1] is inputs[0]:
                found[path] = hit[0]
        return hook

    handles = [modules[p].register_forward_hook(on_conv(p)) for p in convs]
    handles += [m.register_forward_pre_hook(on_norm(p)) for p, m in modules.items() if isinstance(m, _NORMS)]
    try:
        side = adapter.preprocessing.crop
        with torch.no_grad():
            adapter.model(torch.zeros(1, 3, side, side, device=adapter.device))
    finally:
        for h in handles:
            h.remove()
    return found


def _map_norm(layer: LayerInfo, modules: dict[str, nn.Module], convs: dict[str, str],
              probed: dict[str, str]) -> LayerMap:
    path = _parent(layer.module) if layer.site == "input" else layer.module  # fused norm+act: the norm module
    if not isinstance(modules.get(path), _NORMS):
        return LayerMap((), f"no norm module at {path!r}")
    if path in probed:
        return LayerMap((convs[probed[path]],), f"probe: input of {path} is the output of {probed[path]}")
    paths, parent = list(modules), _parent(path)
    for p in reversed(paths[:paths.index(path)]):
        if p in convs and (not parent or p.startswith(parent + ".")):
            return LayerMap((convs[p],), f"registration order: {p} precedes {path} under {parent or 'the root'}")
    return LayerMap((), f"no conv feeds {path}")


def _map_block(path: str, convs: dict[str, str], width: int, out: dict[str, int], block: str) -> LayerMap:
    if path and not any(p.startswith(path + ".") for p in convs):
        path = _parent(path)  # a parameter-free sum node (IMI's `shortcut` Identity): its block
    inside = [p for p in convs if p.startswith(path + ".")]
    skips = [p for p in inside if set(p[len(path) + 1:].split(".")) & _SKIP_PARTS]
    main = [p for p in inside if p not in skips]
    if not main:
        return LayerMap((), f"block {path} has no conv")
    skips = [p for p in skips if out[convs[p]] == width]
    if block == "strict" and not skips:
        return LayerMap((), f"block {path}: identity skip, no downsample conv (block='strict', reference §5.3)")
    chosen = (main[-1], *skips)
    return LayerMap(tuple(convs[p] for p in chosen), f"block {path}: mean of {', '.join(chosen)}")


def unit_map(adapter: ModelAdapter, layers: Sequence[str] | None = None, *,
             block: str = "last_conv") -> dict[str, LayerMap]:
    """Layer name → :class:`LayerMap` (which conv filters its channels map to; see the module docstring).

    Args:
        adapter: The model.
        layers: Layer names (default: all layers of interest).
        block: ``last_conv`` (block units: mean of the last main-path conv and any downsample conv) or
            ``strict`` (only blocks with a downsample conv; identity-skip blocks are NaN).
    """
    convs = _conv_modules(adapter.model)
    modules = dict(adapter.model.named_modules())
    out = {name: p.shape[0] for name, p in adapter.model.named_parameters() if name in set(convs.values())}
    probed = _norm_inputs(adapter, convs)
    result = {}
    for layer in adapter.layers() if layers is None else [adapter.layer(n) for n in layers]:
        if layer.kind == "conv":
            m = LayerMap((convs[layer.module],), "own weight") if layer.module in convs else \
                LayerMap((), "conv layer without a 4-D weight")
        elif layer.kind == "norm":
            m = _map_norm(layer, modules, convs, probed)
        elif layer.kind == "block":
            m = _map_block(layer.module, convs, layer.width, out, block)
        else:
            m = LayerMap((), f"{layer.kind} layer: no conv filter produces its channels")
        bad = [p for p in m.params if out[p] != layer.width]
        result[layer.name] = LayerMap((), f"width {layer.width} != filters of {bad}") if bad else m
    return result
