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
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from ...errors import ImiBenchError
from ...models.adapter import IMAGENET_MEAN, ModelAdapter, Preprocessing
from ...models.hooks import record, run
from ..base import CustomFamily, FeatureContext, register_family
from .backselect import (
    BackSelectRecord,
    Objective,
    backselect_auc,
    batched_backselect,
    bbox_fraction,
    count_model_calls,
    exact_backselect,
    find_sis,
    grid_components,
    grid_features,
    sis_collection,
    sis_from_record,
)

__all__ = ["SIS", "BackSelectRecord", "backselect_auc", "batched_backselect", "bbox_fraction", "count_model_calls",
           "exact_backselect", "find_sis", "grid_components", "grid_features", "mask_value", "select_exemplars",
           "sis_collection", "sis_from_record", "unit_objective"]

log = logging.getLogger(__name__)


def mask_value(preprocessing: Preprocessing) -> torch.Tensor:
    """The fully masked image ``x̄``: ImageNet mean RGB through the model's normalisation, ``(3, 1, 1)``."""
    return preprocessing.normalise(torch.tensor(IMAGENET_MEAN).view(3, 1, 1))


# --------------------------------------------------------------------------- the unit objective and exemplars
def unit_objective(adapter: ModelAdapter, layer: str, channels: Sequence[int] | torch.Tensor | np.ndarray) -> Objective:
    """``f_u`` for a batch: row ``i`` of the input → spatial mean of channel ``channels[i]`` at ``layer``.

    The network stops at the layer (stop early) and the graph is kept for gradients. One channel
    is broadcast to every row.
    """
    if any(m.training for m in adapter.model.modules()):
        raise ImiBenchError(f"{adapter.name}: SIS needs an eval-mode model (pairs must not interact)")
    site = adapter.layer(layer).hook_site()
    ch = torch.tensor(np.array(channels, dtype=np.int64), device=adapter.device).reshape(-1)

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
    res = sis_from_record(rec, torch.tensor(np.array(tau, dtype=np.float64)))
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
