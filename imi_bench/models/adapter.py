"""``ModelAdapter``: one network, its preprocessing and its layers of interest, IMI-named.

An adapter answers the questions a benchmark needs answered the same way for
every model: which layers hold units (in network order, with index, relative
depth, kind and width), which tensor of that layer is the unit (module output
or, for fused norm+activation modules, the activation's input — always
pre-activation), how that tensor is laid out, and how images are
preprocessed.
"""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from PIL import Image
from torch import nn

from ..errors import ImiBenchError
from .hooks import HookSite, Recorder, Reducer, record, run, spatial_mean

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "LayerInfo", "LayerSpec", "ModelAdapter", "Preprocessing"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
Kind = Literal["conv", "norm", "block", "linear", "act"]


@dataclass(frozen=True)
class Preprocessing:
    """Image → model input: RGB, resize the short side, centre crop, scale to [0,1], normalise.

    Attributes:
        resize: Short-side resize (pixels).
        crop: Centre-crop side (the model's input size).
        mean: Per-channel mean subtracted from [0,1] pixels.
        std: Per-channel divisor.
        interpolation: ``bilinear`` or ``bicubic``.
    """

    resize: int = 256
    crop: int = 224
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    interpolation: str = "bilinear"

    def __call__(self, image: Image.Image) -> torch.Tensor:
        """Preprocess one PIL image (grayscale, RGBA, palette and odd sizes are fine)."""
        from torchvision.transforms.v2 import functional as tf

        mode = tf.InterpolationMode(self.interpolation)
        x = tf.pil_to_tensor(image.convert("RGB"))
        x = tf.center_crop(tf.resize(x, [self.resize], interpolation=mode, antialias=True), [self.crop])
        return self.normalise(x.float() / 255.0)

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        """Map [0,1] RGB tensors (``(..., 3, H, W)``) to model input."""
        mean = torch.tensor(self.mean, dtype=x.dtype, device=x.device).view(3, 1, 1)
        std = torch.tensor(self.std, dtype=x.dtype, device=x.device).view(3, 1, 1)
        return (x - mean) / std


@dataclass(frozen=True)
class LayerSpec:
    """A layer of interest as declared by a model definition (before probing widths).

    Attributes:
        name: IMI-style name (module path joined by ``_``, or IMI's name for the tensor).
        module: Dotted module path in the torch model.
        site: ``output`` or ``input`` (pre-hook: the module's first input).
        layout: Tensor layout (see :mod:`imi_bench.models.hooks`).
        kind: ``conv``, ``norm``, ``block``, ``linear`` or ``act``.
        note: What this tensor is, where it may differ from IMI's recorded tensor.
    """

    name: str
    module: str
    site: Literal["output", "input"] = "output"
    layout: Literal["NCHW", "NHWC", "NLD", "LND", "NC"] = "NCHW"
    kind: Kind = "conv"
    note: str = ""


@dataclass(frozen=True)
class LayerInfo(LayerSpec):
    """A layer of interest with its position and width.

    Attributes:
        width: Channels (units) in the layer.
        layer_index: Position among the model's layers of interest (network order).
        relative_depth: ``layer_index / (n_layers - 1)`` over *all* layers of interest
            (the units table's ``relative_depth`` divides by the deepest *sampled* layer, as IMI did).
    """

    width: int = 0
    layer_index: int = 0
    relative_depth: float = 0.0

    def hook_site(self) -> HookSite:
        """Where to hook this layer."""
        return HookSite(self.name, self.module, self.site, self.layout)


class ModelAdapter:
    """An eval-mode network with IMI-style layers of interest.

    Args:
        name: Registered model id.
        model: The network (put in eval mode; in-place activations already disabled).
        preprocessing: Image preprocessing.
        layers: Layers of interest in network order.
        weights: Description of the weights (source, file, or ``random(seed=…)``).
        info: Extra metadata (family, training regime, architecture source, …).
    """

    def __init__(self, name: str, model: nn.Module, preprocessing: Preprocessing, layers: Sequence[LayerSpec], *,
                 weights: str, info: Mapping[str, Any] | None = None) -> None:
        self.name = name
        self.model = model.eval()
        self.preprocessing = preprocessing
        self.weights = weights
        self.info = dict(info or {})
        self._specs = list(layers)
        self._layers: list[LayerInfo] | None = None
        names = [s.name for s in self._specs]
        if len(set(names)) != len(names):
            raise ImiBenchError(f"{name}: duplicate layer names in its layer list")

    @property
    def device(self) -> torch.device:
        """Device of the model's parameters (CPU for a parameter-free model)."""
        return next(self.model.parameters(), torch.empty(0)).device

    def to(self, device: str | torch.device) -> ModelAdapter:
        """Move the model to ``device`` (``cuda`` without CUDA raises a clear error)."""
        device = torch.device(device)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ImiBenchError("device 'cuda' requested but torch.cuda.is_available() is False on this machine")
        self.model.to(device)
        return self

    def layers(self, pattern: str = "*") -> list[LayerInfo]:
        """Layers of interest in network order (optionally filtered by an fnmatch pattern)."""
        if self._layers is None:
            self._layers = self._probe()
        return [layer for layer in self._layers if fnmatch.fnmatchcase(layer.name, pattern)]

    def layer(self, name: str) -> LayerInfo:
        """One layer of interest by name; unknown names raise with the closest valid names."""
        found = {layer.name: layer for layer in self.layers()}
        if name not in found:
            close = difflib.get_close_matches(name, list(found), n=5, cutoff=0.4)
            hint = f"closest: {', '.join(close)}" if close else f"valid layers: {', '.join(list(found)[:20])}, …"
            raise ImiBenchError(f"{self.name} has no layer of interest {name!r}; {hint}")
        return found[name]

    def _probe(self) -> list[LayerInfo]:
        """Widths from one forward pass of a single image (stops after the deepest layer)."""
        sites = [HookSite(s.name, s.module, s.site, s.layout) for s in self._specs]
        x = torch.zeros(1, 3, self.preprocessing.crop, self.preprocessing.crop, device=self.device)
        shape_of = {"shape": lambda t: torch.tensor(t.shape[:2])}
        with torch.inference_mode(), record(self.model, sites, shape_of, stop_early=True) as rec:
            run(self.model, rec, x)
        widths = {name: int(parts["shape"][0][1]) for name, parts in rec.results.items()}
        last = max(len(self._specs) - 1, 1)
        return [LayerInfo(**vars(s), width=widths[s.name], layer_index=i, relative_depth=i / last)
                for i, s in enumerate(self._specs)]

    def preprocess(self, images: Sequence[Image.Image] | torch.Tensor) -> torch.Tensor:
        """PIL images → a model-input batch (a tensor is passed through unchanged)."""
        if isinstance(images, torch.Tensor):
            return images
        return torch.stack([self.preprocessing(im) for im in images])

    def recorder(self, layers: Sequence[str] | None = None, reducers: Mapping[str, Reducer] | None = None, *,
                 keep_maps: bool = False, stop_early: bool = True,
                 channels: Mapping[str, torch.Tensor] | None = None) -> Any:
        """A :func:`~imi_bench.models.hooks.record` context over the named layers of interest."""
        chosen = self.layers() if layers is None else [self.layer(n) for n in layers]
        return record(self.model, [layer.hook_site() for layer in chosen], reducers, keep_maps=keep_maps,
                      stop_early=stop_early, channels=channels)

    def forward(self, recorder: Recorder, x: torch.Tensor) -> torch.Tensor | None:
        """Run one batch through the model for ``recorder`` (inference mode, on the model's device)."""
        with torch.inference_mode():
            return run(self.model, recorder, x.to(self.device, non_blocking=True))

    def unit_activations(self, images: Sequence[Image.Image] | torch.Tensor, layers: Sequence[str] | None = None,
                         *, batch_size: int = 32) -> dict[str, torch.Tensor]:
        """Scalar responses of every unit: ``{layer: Tensor[N, C]}`` (spatial/token mean, fp32, CPU).

        Args:
            images: PIL images (preprocessed here) or a preprocessed batch.
            layers: Layer names (default: all layers of interest).
            batch_size: Images per forward pass.
        """
        x = self.preprocess(images)
        out: dict[str, list[torch.Tensor]] = {}
        with self.recorder(layers, {"mean": spatial_mean}) as rec:
            for start in range(0, len(x), batch_size):
                self.forward(rec, x[start:start + batch_size])
                for name, tensor in rec.collect().items():
                    out.setdefault(name, []).append(tensor.cpu())
                rec.clear()
        return {name: torch.cat(parts) for name, parts in out.items()}

    def with_layers(self, layers: Sequence[LayerSpec]) -> ModelAdapter:
        """A copy of this adapter with another layer list (same model object)."""
        return ModelAdapter(self.name, self.model, self.preprocessing, layers, weights=self.weights, info=self.info)

    def __repr__(self) -> str:
        return f"ModelAdapter({self.name!r}, {len(self._specs)} layers, weights={self.weights!r})"

