"""BackSelect and FindSIS (featurizer-reference §4): exact (the oracle) and batched-gradient, on any objective.

Objectives map a batch of inputs ``(N, *shape)`` to ``(N,)``; features are ids on the trailing dims
(``mask_grid``), masked jointly across leading dims (colour channels) by setting them to ``x̄``.
:mod:`imi_bench.featurize.families.sis` applies these to single units.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from tqdm.auto import tqdm

from ...errors import ImiBenchError

__all__ = ["BackSelectRecord", "Objective", "backselect_auc", "batched_backselect", "bbox_fraction",
           "count_model_calls", "exact_backselect", "find_sis", "grid_components", "grid_features", "sis_collection",
           "sis_from_record"]

Objective = Callable[[torch.Tensor], torch.Tensor]


def grid_features(height: int, width: int, grid: int, device: torch.device | None = None) -> torch.Tensor:
    """Feature id of every pixel of an ``height × width`` image on a ``grid × grid`` partition (row-major)."""
    if not 1 <= grid <= min(height, width):
        raise ImiBenchError(f"SIS grid must be between 1 and the image side {min(height, width)}; got {grid}")
    rows = torch.arange(height, device=device) * grid // height
    cols = torch.arange(width, device=device) * grid // width
    return rows[:, None] * grid + cols[None]


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
