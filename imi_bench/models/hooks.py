"""Record many layers in one forward pass, reducing each unit on device inside the hook.

A unit's scalar response is a reduction of its layer's output channel (spatial
mean for CNN maps, token mean for ViT features). Reducing *inside* the hook
has two effects that matter:

* memory: only ``(batch, channels)`` tensors are kept, never full maps of every
  layer (unless ``keep_maps`` is asked for);
* honesty: the reduction runs on the tensor as it is when the module returns,
  so an in-place operation later in the network (``ReLU(inplace=True)``,
  ``out += identity``) cannot change what was recorded.

Layouts are declared per layer, never guessed from shapes: ``NCHW`` maps,
``NHWC`` channels-last maps (timm ConvNeXt norms/MLPs), ``NLD`` batch-first
tokens (timm ViTs), ``LND`` sequence-first tokens (older open_clip), ``NC``
vectors. Every tensor is viewed as ``(N, C, *rest)`` before reducing.

Handles are always removed, also when the forward pass raises.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

__all__ = ["LAYOUTS", "HookSite", "Recorder", "StopForward", "channels_first", "record", "run", "spatial_mean"]

Layout = Literal["NCHW", "NHWC", "NLD", "LND", "NC"]
LAYOUTS: tuple[str, ...] = ("NCHW", "NHWC", "NLD", "LND", "NC")
Reducer = Callable[[torch.Tensor], torch.Tensor]


class StopForward(Exception):  # noqa: N818 - a control-flow signal, not an error
    """Raised from the last needed hook to skip the rest of the network."""


@dataclass(frozen=True)
class HookSite:
    """Where a layer's tensor is read.

    Attributes:
        name: The layer's (IMI-style) name.
        module: Dotted path of the module in the torch model.
        site: ``output`` (forward hook) or ``input`` (forward pre-hook, first
            positional input: used for pre-activation values of fused
            norm+activation modules, where the activation module's input is the
            norm's raw output).
        layout: Declared layout of the tensor.
    """

    name: str
    module: str
    site: Literal["output", "input"] = "output"
    layout: Layout = "NCHW"


def channels_first(x: torch.Tensor, layout: str) -> torch.Tensor:
    """View a tensor of the given layout as ``(N, C, *rest)`` (no copy)."""
    if layout in ("NCHW", "NC"):
        return x
    if layout == "NHWC":
        return x.permute(0, x.dim() - 1, *range(1, x.dim() - 1))
    if layout == "NLD":
        return x.transpose(1, 2)
    if layout == "LND":
        return x.permute(1, 2, 0)
    raise ValueError(f"unknown layout {layout!r}; expected one of {LAYOUTS}")


def spatial_mean(x: torch.Tensor) -> torch.Tensor:
    """A unit's scalar response: mean over every dimension after ``(N, C)`` (fp32 accumulation)."""
    if x.dim() == 2:
        return x.float()
    return x.float().mean(dim=tuple(range(2, x.dim())))


class Recorder:
    """Results of a recording: ``results[layer][reducer]`` is a list of per-batch ``(N, C)`` tensors."""

    def __init__(self, sites: Sequence[HookSite], reducers: Mapping[str, Reducer], keep_maps: bool,
                 detach: bool = True, channels: Mapping[str, torch.Tensor] | None = None) -> None:
        self.sites = list(sites)
        self.detach = detach
        self.channels = dict(channels or {})
        self.reducers = dict(reducers)
        self.keep_maps = keep_maps
        self.results: dict[str, dict[str, list[torch.Tensor]]] = {s.name: {r: [] for r in reducers} for s in sites}
        self.maps: dict[str, list[torch.Tensor]] = {s.name: [] for s in sites}
        self._pending: set[str] = set()
        self.stop_early = False

    def _store(self, site: HookSite, tensor: torch.Tensor) -> None:
        x = channels_first(tensor.detach() if self.detach else tensor, site.layout)
        if site.name in self.channels:  # reduce only the channels asked for
            x = x.index_select(1, self.channels[site.name].to(x.device))
        for key, reduce in self.reducers.items():
            self.results[site.name][key].append(reduce(x))
        if self.keep_maps:
            self.maps[site.name].append(x.clone())
        self._pending.discard(site.name)
        if self.stop_early and not self._pending:
            raise StopForward

    def begin_batch(self) -> None:
        """Mark every layer as still to be seen in the next forward pass."""
        self._pending = {s.name for s in self.sites}

    def missing(self) -> list[str]:
        """Layers whose hook did not fire during the last forward pass."""
        return sorted(self._pending)

    def collect(self, reducer: str | None = None) -> dict[str, torch.Tensor]:
        """Concatenate the per-batch results of one reducer (default: the first) per layer."""
        key = reducer or next(iter(self.reducers))
        return {name: torch.cat(parts[key]) if parts[key] else torch.empty(0) for name, parts in
                self.results.items()}

    def clear(self) -> None:
        """Drop stored results (e.g. between batches of a streaming pass)."""
        for per_layer in self.results.values():
            for parts in per_layer.values():
                parts.clear()
        for parts in self.maps.values():
            parts.clear()


def _hook(recorder: Recorder, site: HookSite, module: nn.Module) -> torch.utils.hooks.RemovableHandle:
    if site.site == "input":
        def pre(_m: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
            recorder._store(site, args[0])

        return module.register_forward_pre_hook(pre)

    def post(_m: nn.Module, _args: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        recorder._store(site, out[0] if isinstance(out, tuple) else out)

    return module.register_forward_hook(post)


@contextmanager
def record(
    model: nn.Module,
    sites: Sequence[HookSite],
    reducers: Mapping[str, Reducer] | None = None,
    *,
    keep_maps: bool = False,
    stop_early: bool = False,
    detach: bool = True,
    channels: Mapping[str, torch.Tensor] | None = None,
) -> Iterator[Recorder]:
    """Hook ``sites`` of ``model`` for the duration of the block.

    Args:
        model: The network.
        sites: Layers to record.
        reducers: Name → function of the ``(N, C, ...)`` tensor returning ``(N, C)``;
            default ``{"mean": spatial_mean}``.
        keep_maps: Also keep full (channels-first) maps — memory-heavy, for tests and small runs.
        stop_early: Raise :class:`StopForward` once every site has been recorded; call the
            model through :func:`run` (or catch it) to skip the rest of the network.
        detach: Reduce detached tensors (default). ``False`` keeps the autograd graph, for
            objectives that are differentiated (feature visualisation).
        channels: Layer name → channel indices: reduce only those channels (results are
            ``(N, len(indices))``, in the given order). Default: every channel.

    Yields:
        The :class:`Recorder` holding the results.

    Example:
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
        >>> with record(net, [HookSite("conv", "0")]) as rec:
        ...     _ = net(torch.zeros(2, 3, 8, 8))
        >>> rec.collect()["conv"].shape
        torch.Size([2, 4])
    """
    recorder = Recorder(sites, reducers or {"mean": spatial_mean}, keep_maps, detach, channels)
    recorder.stop_early = stop_early
    modules = dict(model.named_modules())
    handles = []
    try:
        for site in sites:
            if site.module not in modules:
                raise KeyError(f"model has no module {site.module!r} (layer {site.name!r})")
            handles.append(_hook(recorder, site, modules[site.module]))
        yield recorder
    finally:
        for h in handles:
            h.remove()


def run(model: nn.Module, recorder: Recorder, x: torch.Tensor) -> torch.Tensor | None:
    """Forward ``x`` through ``model`` for ``recorder``; returns the output, or None if stopped early.

    Raises:
        RuntimeError: A recorded layer's hook did not fire (the layer is not on the forward path).
    """
    recorder.begin_batch()
    try:
        out = model(x)
    except StopForward:
        return None
    if recorder.missing():
        raise RuntimeError(f"hooks did not fire for layers {recorder.missing()[:5]} during the forward pass")
    return out
