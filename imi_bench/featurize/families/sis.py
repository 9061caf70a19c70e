"""Sufficient Input Subsets of single units (featurizer-reference §4): how much of an exemplar a unit needs.

For a unit's scalar response ``f_u`` (spatial mean of its pre-activation map, on the
network truncated at its layer), an exemplar ``x``, the dataset-mean image ``x̄``
(ImageNet mean RGB through the model's own normalisation, so masking means the same
colour for every model) and a threshold τ, a SIS is a minimal set of super-pixels
(cells of a ``grid × grid`` partition, masked jointly across colour channels) whose
pixels alone keep ``f_u ≥ τ``. BackSelect masks features greedily, keeping ``f`` as
high as possible; FindSIS takes the features masked after the *last* step still ≥ τ.

Per unit row, over its top-``n_exemplars`` images by response:

* ``sis_frac_median`` / ``sis_frac_mean``: median / mean SIS size as a fraction of the
  grid's features (= of pixels when ``grid`` divides the crop), over exemplars with
  ``f(x) ≥ τ`` that are not degenerate. NaN when no exemplar qualifies.
* ``sis_degenerate_frac``: fraction of exemplars with ``f(x) ≥ τ`` whose fully masked
  input already reaches τ (``f(x̄) ≥ τ``: the SIS is empty). With one mask colour this is
  in effect a per-unit flag (0 or 1).
* ``backselect_auc``: mean over exemplars of the area under the BackSelect curve of
  ``(f − f(x̄)) / (f(x) − f(x̄))`` against the fraction masked (1 at nothing masked, 0 at
  everything). Normalising by ``f(x) − f(x̄)`` rather than by ``f(x)`` alone keeps the value
  invariant to ``f → a·f + b`` (pre-activations may be ≤ 0); NaN when ``f(x) ≤ f(x̄)``.
  Large: the unit's response survives heavy masking; 0.5: linear decay.
* ``sis_n_components``: mean number of 4-connected components of the SIS on the grid.
* ``sis_bbox_frac``: mean area of the SIS's bounding box on the grid, as a fraction of the grid.

Threshold (``tau_rank``): τ_u is the response of the row's image at a rank among the
images the row uses: ``tau_rank < 1`` is a fraction of them (rank ⌈tau_rank·n⌉), an integer
``≥ 1`` an absolute rank (1 = top). The default 0.5 (the median) is the reference's
"lower edge of the reference+query pool" for IMI stimuli sources, whose rows use as many
max- as min-side images; it also leaves every top exemplar above τ in small pools. For a
large shared pool use an absolute rank (e.g. 200, the IMI pool edge on ImageNet). Being
rank-based, τ makes the features invariant to unit scale and offset.

Search: batched-gradient BackSelect (reference §4.3/§4.5) with an fp32 mask leaf per
(exemplar, unit) pair, all pairs of a layer in one batch; ``method="exact"`` runs exact
BackSelect (O(d²) forwards, only for ``grid² ≤ exact_max_features``). Defaults
(``grid=8``, ``k=4``, ``n_exemplars=4``) cost 16 forward+backward passes per pair.

Example:
    >>> f = lambda z: z.norm(dim=-1)
    >>> order, values = exact_backselect(f, torch.tensor([0.1, 10.0, 5.0]), torch.zeros(3))
    >>> order.tolist(), [round(v, 3) for v in values.tolist()]
    ([0, 2, 1], [11.18, 10.0, 0.0])
    >>> find_sis(values, order, tau=1.0)
    [1]
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F  # noqa: N812
from tqdm.auto import tqdm

from ...errors import ImiBenchError
from ...models.adapter import IMAGENET_MEAN, ModelAdapter, Preprocessing
from ...models.hooks import record, run
from ..base import CustomFamily, FeatureContext, register_family

__all__ = ["SIS", "BackSelectRecord", "backselect_auc", "batched_backselect", "bbox_fraction", "count_model_calls",
           "exact_backselect", "find_sis", "grid_components", "grid_features", "mask_value", "select_exemplars",
           "sis_collection", "sis_from_record", "unit_objective"]

log = logging.getLogger(__name__)
Objective = Callable[[torch.Tensor], torch.Tensor]


# --------------------------------------------------------------------------- features and masking
def grid_features(height: int, width: int, grid: int, device: torch.device | None = None) -> torch.Tensor:
    """Feature id of every pixel of an ``height × width`` image on a ``grid × grid`` partition (row-major)."""
    if not 1 <= grid <= min(height, width):
        raise ImiBenchError(f"SIS grid must be between 1 and the image side {min(height, width)}; got {grid}")
    rows = torch.arange(height, device=device) * grid // height
    cols = torch.arange(width, device=device) * grid // width
    return rows[:, None] * grid + cols[None]


def mask_value(preprocessing: Preprocessing) -> torch.Tensor:
    """The fully masked image ``x̄``: ImageNet mean RGB through the model's normalisation, ``(3, 1, 1)``."""
    return preprocessing.normalise(torch.tensor(IMAGENET_MEAN).view(3, 1, 1))


def _feature_ids(x: torch.Tensor, mask_grid: torch.Tensor | None) -> tuple[torch.Tensor, int]:
    grid = torch.arange(x.numel(), device=x.device).view(x.shape) if mask_grid is None else mask_grid.long()
    if grid.dim() > x.dim() or grid.shape != x.shape[x.dim() - grid.dim():]:
        raise ValueError(f"mask_grid shape {tuple(grid.shape)} must match the trailing dims of {tuple(x.shape)}")
    d = int(grid.max()) + 1
    if int(grid.min()) < 0 or bool((torch.bincount(grid.flatten(), minlength=d) == 0).any()):
        raise ValueError("mask_grid must use every feature id 0..d-1")
    return grid.to(x.device), d


def _compose(x: torch.Tensor, x_bar: torch.Tensor, grid: torch.Tensor, masked: torch.Tensor) -> torch.Tensor:
    """Inputs with the features flagged in ``masked`` (``(N, d)`` bool) set to ``x̄`` → ``(N, *x.shape)``."""
    lead = x.dim() - grid.dim()
    pix = masked[:, grid].view(len(masked), *([1] * lead), *grid.shape)
    return torch.where(pix, x_bar, x)


# --------------------------------------------------------------------------- exact BackSelect (oracle)
@torch.no_grad()
def exact_backselect(f: Objective, x: torch.Tensor, x_bar: torch.Tensor, mask_grid: torch.Tensor | None = None,
                     *, masked: torch.Tensor | None = None, batch_size: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact BackSelect: repeatedly mask the feature whose masking leaves ``f`` largest (ties: lowest index).

    Args:
        f: Batched objective ``(N, *x.shape) → (N,)``.
        x: One input.
        x_bar: The fully masked input (broadcastable to ``x``).
        mask_grid: Feature id of each element of ``x``'s trailing dims (broadcast over leading dims,
            e.g. colour channels); default: every element is a feature.
        masked: ``(d,)`` bool, features masked from the start (SIS collection).
        batch_size: Candidate inputs per call of ``f``.

    Returns:
        ``order`` (features in masking order) and ``values`` (``f`` after each masking step).
    """
    grid, d = _feature_ids(x, mask_grid)
    x_bar = torch.as_tensor(x_bar, dtype=x.dtype, device=x.device).expand_as(x)
    state = torch.zeros(d, dtype=torch.bool, device=x.device) if masked is None else masked.clone().bool()
    order, values = [], []
    while not bool(state.all()):
        cand = torch.nonzero(~state).flatten()  # ascending: argmax's first maximum is the lowest index
        trial = state.expand(len(cand), d).clone()
        trial[torch.arange(len(cand)), cand] = True
        out = torch.cat([f(_compose(x, x_bar, grid, trial[i:i + batch_size])).reshape(-1)
                         for i in range(0, len(cand), batch_size)])
        best = int(torch.argmax(out))
        state[cand[best]] = True
        order.append(int(cand[best]))
        values.append(out[best])
    return torch.tensor(order, dtype=torch.long), torch.stack(values) if values else torch.empty(0)


def find_sis(values: Sequence[float] | torch.Tensor | np.ndarray, order: Sequence[int] | torch.Tensor | np.ndarray,
             tau: float, f_full: float | None = None) -> list[int] | None:
    """FindSIS on a BackSelect path: the features masked after the *last* step whose value is ≥ τ.

    Args:
        values: ``f`` after each masking step.
        order: Features in masking order.
        tau: Threshold.
        f_full: ``f(x)``; when given and below τ there is no SIS (returns None).

    Returns:
        The SIS, most important (masked last) first; all features if no step reaches τ;
        empty if the fully masked value reaches τ.
    """
    if f_full is not None and f_full < tau:
        return None
    vals, ordr = np.asarray(values, dtype=float), np.asarray(order, dtype=int)
    above = np.flatnonzero(vals >= tau)
    start = int(above[-1]) + 1 if len(above) else 0
    return ordr[start:][::-1].tolist()


def sis_collection(f: Objective, x: torch.Tensor, x_bar: torch.Tensor, tau: float,
                   mask_grid: torch.Tensor | None = None) -> list[list[int]]:
    """Disjoint SIS: find one, mask it for good, re-run BackSelect on the rest until ``f < τ``.

    Returns an empty list when ``f(x) < τ``; stops early when the remainder's fully masked value reaches τ.
    """
    grid, d = _feature_ids(x, mask_grid)
    x_bar = torch.as_tensor(x_bar, dtype=x.dtype, device=x.device).expand_as(x)
    state = torch.zeros(d, dtype=torch.bool, device=x.device)
    out: list[list[int]] = []
    while not bool(state.all()):
        with torch.no_grad():
            current = float(f(_compose(x, x_bar, grid, state[None])).reshape(-1)[0])
        if current < tau:
            break
        order, values = exact_backselect(f, x, x_bar, grid, masked=state)
        sis = find_sis(values, order, tau)
        if not sis:
            break
        out.append(sis)
        state[sis] = True
    return out


# --------------------------------------------------------------------------- batched-gradient BackSelect
@dataclass(frozen=True)
class BackSelectRecord:
    """A batched BackSelect run over ``P`` pairs and ``d`` features.

    Attributes:
        values: ``(T+1, P)``: ``f`` with ``n_masked[t]`` features masked (row ``t`` is the state
            before update ``t``; the last row is the fully masked input, evaluated explicitly).
        n_masked: ``(T+1,)`` features masked at each row.
        masked_at: ``(P, d)`` update at which each feature was masked.
        forwards: Forward passes per pair (``T + 1``; exact: ``d(d+1)/2 + 1``); ``backwards``: per pair (``T``).
    """

    values: torch.Tensor
    n_masked: torch.Tensor
    masked_at: torch.Tensor
    forwards: int
    backwards: int


def batched_backselect(f: Objective, x: torch.Tensor, x_bar: torch.Tensor, mask_grid: torch.Tensor, k: int, *,
                       progress: bool = False) -> BackSelectRecord:
    """Batched-gradient BackSelect: per step, mask the ``k`` unmasked features with the largest ``∂f/∂m``.

    Args:
        f: Objective ``(P, *shape) → (P,)``, differentiable; pairs must not interact (eval-mode BatchNorm).
        x: ``(P, *shape)`` inputs, one per pair.
        x_bar: Fully masked input, broadcastable to ``x[0]``.
        mask_grid: Feature id of each element of the trailing dims of ``x[0]``.
        k: Features masked per step (the last step masks the rest).
        progress: Show a progress bar over steps.
    """
    grid, d = _feature_ids(x[0], mask_grid)
    n_pairs, steps = len(x), math.ceil(d / k)
    dtype = torch.promote_types(x.dtype, torch.float32)
    x_bar = torch.as_tensor(x_bar, dtype=x.dtype, device=x.device).expand_as(x[0])
    delta, lead = x_bar - x, x.dim() - 1 - grid.dim()
    state = torch.zeros(n_pairs, d, dtype=torch.bool, device=x.device)
    masked_at = torch.full((n_pairs, d), steps, dtype=torch.long, device=x.device)
    values = torch.empty(steps + 1, n_pairs, dtype=dtype, device=x.device)
    big = torch.finfo(dtype).max
    for t in tqdm(range(steps), desc="BackSelect", leave=False, disable=not progress):
        with torch.enable_grad():
            m = state.to(dtype).requires_grad_(True)
            pix = m[:, grid].view(n_pairs, *([1] * lead), *grid.shape)
            # forward value is exactly the masked image; the gradient is that of (1 − m)·x + m·x̄
            z = torch.where(pix.detach().bool(), x_bar, x) + (pix - pix.detach()) * delta
            out = f(z).reshape(-1)
            (grad,) = torch.autograd.grad(out.sum(), m, allow_unused=True, materialize_grads=True)
        values[t] = out.detach()
        key = torch.nan_to_num(-grad.detach(), nan=big, posinf=big, neginf=-big).masked_fill(state, math.inf)
        pick = torch.sort(key, dim=1, stable=True).indices[:, :min(k, d - t * k)]  # ties → lowest index
        state.scatter_(1, pick, True)
        masked_at.scatter_(1, pick, t)
    with torch.no_grad():
        values[steps] = f(x_bar.expand_as(x).contiguous()).reshape(-1)
    n_masked = torch.clamp(torch.arange(steps + 1) * k, max=d)
    return BackSelectRecord(values, n_masked, masked_at, steps + 1, steps)


def sis_from_record(rec: BackSelectRecord, tau: torch.Tensor | float) -> dict[str, torch.Tensor]:
    """FindSIS for every pair at once (τ scalar or per pair).

    Returns:
        ``valid`` (``f(x) ≥ τ``), ``degenerate`` (valid and ``f(x̄) ≥ τ``), ``t_star`` (last row ≥ τ,
        −1 if none), ``sis`` (``(P, d)`` bool: masked at updates ≥ t*, empty when not valid) and
        ``frac`` (SIS size / d, NaN when not valid).
    """
    v = rec.values
    tau_t = torch.as_tensor(tau, dtype=v.dtype, device=v.device).expand(v.shape[1])
    ok = v >= tau_t
    steps = torch.arange(len(v), device=v.device)[:, None].expand_as(ok)
    t_star = torch.where(ok, steps, -1).amax(0)
    valid = ok[0]
    sis = (rec.masked_at >= t_star[:, None]) & valid[:, None]
    d = rec.masked_at.shape[1]
    frac = torch.where(valid, sis.sum(1).to(v.dtype) / d, torch.nan)
    return {"valid": valid, "degenerate": valid & ok[-1], "t_star": t_star, "sis": sis, "frac": frac}


def backselect_auc(rec: BackSelectRecord) -> torch.Tensor:
    """Area under ``(f − f(x̄)) / (f(x) − f(x̄))`` vs fraction masked, per pair (NaN if ``f(x) ≤ f(x̄)``)."""
    v = rec.values
    span = v[0] - v[-1]
    frac = (rec.n_masked.to(v) / rec.masked_at.shape[1])[:, None].expand_as(v)
    auc = torch.trapezoid((v - v[-1]) / span, frac, dim=0)
    return torch.where(span > 0, auc, torch.nan)


# --------------------------------------------------------------------------- compactness on the grid
def grid_components(mask: torch.Tensor) -> torch.Tensor:
    """4-connected components of each ``(P, h, w)`` boolean map (min-label propagation, batched)."""
    n, h, w = mask.shape
    idx = torch.arange(h * w, device=mask.device).view(1, h, w).expand(n, h, w)
    label = torch.where(mask, idx, h * w)
    while True:
        pad = F.pad(label, (1, 1, 1, 1), value=h * w)
        nb = torch.stack([label, pad[:, :-2, 1:-1], pad[:, 2:, 1:-1], pad[:, 1:-1, :-2], pad[:, 1:-1, 2:]]).amin(0)
        new = torch.where(mask, nb, h * w)
        if torch.equal(new, label):
            break
        label = new
    return ((label == idx) & mask).sum((1, 2))


def bbox_fraction(mask: torch.Tensor) -> torch.Tensor:
    """Bounding-box area of each ``(P, h, w)`` boolean map as a fraction of ``h·w`` (0 when empty)."""

    def extent(a: torch.Tensor) -> torch.Tensor:
        pos = torch.arange(a.shape[1], device=a.device)
        first = torch.where(a, pos, a.shape[1]).amin(1)
        return (torch.where(a, pos, -1).amax(1) - first + 1).clamp(min=0)

    return (extent(mask.any(2)) * extent(mask.any(1))).double() / (mask.shape[1] * mask.shape[2])


# --------------------------------------------------------------------------- the unit objective and exemplars
def unit_objective(adapter: ModelAdapter, layer: str, channels: Sequence[int] | torch.Tensor) -> Objective:
    """``f_u`` for a batch: row ``i`` of the input → spatial mean of channel ``channels[i]`` at ``layer``.

    The network stops at the layer (stop early) and the graph is kept for gradients. One channel
    is broadcast to every row.
    """
    if any(m.training for m in adapter.model.modules()):
        raise ImiBenchError(f"{adapter.name}: SIS needs an eval-mode model (pairs must not interact)")
    site = adapter.layer(layer).hook_site()
    ch = torch.as_tensor(channels, dtype=torch.long, device=adapter.device).reshape(-1)

    def reduce(t: torch.Tensor) -> torch.Tensor:
        rows = torch.arange(len(t), device=t.device)
        sel = t[rows, ch.expand(len(t))]
        return sel.reshape(len(t), -1).to(torch.promote_types(t.dtype, torch.float32)).mean(1, keepdim=True)

    def f(z: torch.Tensor) -> torch.Tensor:
        with record(adapter.model, [site], {"unit": reduce}, stop_early=True, detach=False) as rec:
            run(adapter.model, rec, z)
        return rec.collect("unit")[layer][:, 0]

    return f


def select_exemplars(responses: np.ndarray, n_exemplars: int, tau_rank: float) -> tuple[np.ndarray, np.ndarray]:
    """Each row's top images (``(rows, n)``, −1 padded) and τ (its response at rank ``tau_rank``, see module doc)."""
    if tau_rank <= 0:
        raise ImiBenchError(f"sis: tau_rank must be > 0 (fraction < 1 or rank ≥ 1); got {tau_rank}")
    key = np.where(np.isnan(responses), np.inf, -responses)
    order = np.argsort(key, axis=0, kind="stable")  # descending response, ties by image index
    n_valid = (~np.isnan(responses)).sum(0)
    top = order[:n_exemplars].T.copy()
    top[np.arange(top.shape[1])[None] >= n_valid[:, None]] = -1
    rank = np.ceil(tau_rank * n_valid) if tau_rank < 1 else np.full(len(n_valid), int(tau_rank))
    rank = np.clip(rank.astype(int), 1, np.maximum(n_valid, 1)) - 1
    tau = -np.take_along_axis(key, order, axis=0)[rank, np.arange(len(n_valid))]
    return top, np.where(n_valid > 0, tau, np.nan)


# --------------------------------------------------------------------------- the family
def _exact_record(adapter: ModelAdapter, layer: str, channels: np.ndarray, x: torch.Tensor, x_bar: torch.Tensor,
                  grid: torch.Tensor) -> BackSelectRecord:
    d = int(grid.max()) + 1
    values, masked_at = torch.empty(d + 1, len(x)), torch.empty(len(x), d, dtype=torch.long)
    for p in range(len(x)):
        f = unit_objective(adapter, layer, [int(channels[p])])
        with torch.no_grad():
            full = f(x[p:p + 1])
        order, vals = exact_backselect(f, x[p], x_bar, grid)
        values[:, p] = torch.cat([full, vals]).cpu()
        masked_at[p, order] = torch.arange(d)
    return BackSelectRecord(values, torch.arange(d + 1), masked_at, d * (d + 1) // 2 + 1, 0)


def _pair_metrics(adapter: ModelAdapter, layer: str, channels: np.ndarray, x: torch.Tensor, tau: np.ndarray,
                  params: dict[str, Any], progress: bool) -> dict[str, np.ndarray]:
    g = int(params["grid"])
    grid = grid_features(x.shape[-2], x.shape[-1], g, x.device)
    x_bar = mask_value(adapter.preprocessing).to(x)
    if params["method"] == "exact":
        rec = _exact_record(adapter, layer, channels, x, x_bar, grid)
    else:
        rec = batched_backselect(unit_objective(adapter, layer, channels), x, x_bar, grid, int(params["k"]),
                                 progress=progress)
    res = sis_from_record(rec, torch.as_tensor(tau))
    maps = res["sis"].view(len(x), g, g)
    keep = (res["valid"] & ~res["degenerate"]).cpu().numpy()
    return {"valid": res["valid"].cpu().numpy(), "degenerate": res["degenerate"].cpu().numpy(),
            "frac": np.where(keep, res["frac"].double().cpu().numpy(), np.nan),
            "auc": backselect_auc(rec).double().cpu().numpy(),
            "components": np.where(keep, grid_components(maps).cpu().numpy(), np.nan),
            "bbox": np.where(keep, bbox_fraction(maps).cpu().numpy(), np.nan)}


@register_family
class SIS(CustomFamily):
    """Sufficient Input Subsets of each unit row's top exemplars (see the module docstring)."""

    name = "sis"
    columns = ("sis_frac_median", "sis_frac_mean", "sis_degenerate_frac", "backselect_auc", "sis_n_components",
               "sis_bbox_frac")
    description = "SIS of top exemplars: size fraction, degenerate fraction, BackSelect AUC, compactness"
    defaults: ClassVar[dict[str, Any]] = {"n_exemplars": 4, "grid": 8, "k": 4, "tau_rank": 0.5,
                                          "method": "gradient", "exact_max_features": 64}

    def compute(self, ctx: FeatureContext) -> pd.DataFrame:
        """One row per unit row (NaN columns for rows without images)."""
        p = self.params
        if p["method"] not in ("gradient", "exact"):
            raise ImiBenchError(f"sis: method must be 'gradient' or 'exact'; got {p['method']!r}")
        if p["method"] == "exact" and int(p["grid"]) ** 2 > int(p["exact_max_features"]):
            raise ImiBenchError(f"sis: exact BackSelect on {int(p['grid']) ** 2} features exceeds "
                                f"exact_max_features={p['exact_max_features']}")
        if ctx.responses is None:
            raise ImiBenchError("sis needs ctx.responses (the hooked pass's unit responses)")
        top, tau = select_exemplars(ctx.responses, int(p["n_exemplars"]), float(p["tau_rank"]))
        rows, slots = np.nonzero(top >= 0)
        pairs = pd.DataFrame({"row": rows, "image": top[rows, slots], "tau": tau[rows],
                              "layer": ctx.units["layer"].to_numpy()[rows],
                              "channel": ctx.units["channel"].to_numpy()[rows].astype(int)})
        images = self._images(ctx, np.unique(pairs["image"]))
        chunks = [(layer, g.index[i:i + ctx.batch_size]) for layer, g in pairs.groupby("layer", sort=False)
                  for i in range(0, len(g), ctx.batch_size)]
        metrics: list[pd.DataFrame] = []
        for layer, index in tqdm(chunks, desc=f"SIS {ctx.adapter.name}", disable=not ctx.progress):
            sub = pairs.loc[index]
            x = torch.stack([images[i] for i in sub["image"]]).to(ctx.device)
            got = _pair_metrics(ctx.adapter, str(layer), sub["channel"].to_numpy(), x, sub["tau"].to_numpy(),
                                p, progress=False)
            metrics.append(pd.DataFrame(got, index=index))
        return self._aggregate(pairs.join(pd.concat(metrics)) if metrics else pairs, len(ctx.units))

    @staticmethod
    def _images(ctx: FeatureContext, indices: np.ndarray) -> dict[int, torch.Tensor]:
        pool = ctx.source.pool()
        return {int(i): ctx.adapter.preprocessing(pool.image(int(i))) for i in indices}

    def _aggregate(self, pairs: pd.DataFrame, n_rows: int) -> pd.DataFrame:
        out = pd.DataFrame(np.nan, index=range(n_rows), columns=list(self.columns))
        if pairs.empty or "valid" not in pairs:
            return out
        valid = pairs[pairs["valid"].astype(bool)].assign(degenerate=lambda t: t["degenerate"].astype(float))
        by_valid, by_all = valid.groupby("row"), pairs.groupby("row")
        out.loc[:, "sis_frac_median"] = by_valid["frac"].median()
        out.loc[:, "sis_frac_mean"] = by_valid["frac"].mean()
        out.loc[:, "sis_degenerate_frac"] = by_valid["degenerate"].mean()
        out.loc[:, "backselect_auc"] = by_all["auc"].mean()
        out.loc[:, "sis_n_components"] = by_valid["components"].mean()
        out.loc[:, "sis_bbox_frac"] = by_valid["bbox"].mean()
        return out


def count_model_calls(f: Objective, x: torch.Tensor, x_bar: torch.Tensor, k: int, *,
                      mask_grid: torch.Tensor | None = None, rho: float = 0.9) -> dict[str, float]:
    """Model calls (one image through the network = one call) of batched-gradient vs exact BackSelect.

    Runs the batched search on the ``(P, *shape)`` images ``x`` (default features: single pixels of the
    trailing two dims), with the scale-free τ = f(x̄) + ρ·(f(x) − f(x̄)) (reference §4.4.5), and checks
    every SIS by a fresh forward pass: ``f(x_S) ≥ τ``. Exact BackSelect costs ``d(d+1)/2 + 1`` calls
    per image (``f(x)`` and one per candidate per step; checked against :func:`exact_backselect` in the tests).

    Returns:
        ``d``, ``k``, per-image ``batched_forward``, ``batched_backward``, ``exact_forward``, ``ratio``
        (exact / batched forward+backward), ``n_with_sis`` and ``sufficient_frac``.
    """
    grid = torch.arange(x.shape[-2] * x.shape[-1], device=x.device).view(x.shape[-2:]) if mask_grid is None \
        else mask_grid
    _, d = _feature_ids(x[0], grid)
    rec = batched_backselect(f, x, x_bar, grid, k)
    f_x, f_bar = rec.values[0], rec.values[-1]
    tau = torch.where(f_x > f_bar, f_bar + rho * (f_x - f_bar), torch.inf)
    res = sis_from_record(rec, tau)
    drop = (~res["sis"])[:, grid].view(len(x), *([1] * (x.dim() - 1 - grid.dim())), *grid.shape)
    with torch.no_grad():
        f_s = f(torch.where(drop, torch.as_tensor(x_bar, dtype=x.dtype, device=x.device), x)).reshape(-1)
    ok = res["valid"]
    exact = d * (d + 1) // 2 + 1
    batched = rec.forwards + rec.backwards
    return {"d": d, "k": k, "batched_forward": rec.forwards, "batched_backward": rec.backwards,
            "exact_forward": exact, "ratio": exact / batched, "n_with_sis": int(ok.sum()),
            "sufficient_frac": float((f_s[ok] >= tau[ok]).double().mean()) if bool(ok.any()) else float("nan")}
