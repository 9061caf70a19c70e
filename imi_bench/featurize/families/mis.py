"""MIS-style simulated 2AFC (featurizer-reference §7): can an embedding tell the max query from the min query?

For each trial of a unit row (its own IMI stimulus sets, or trials built from
the pool with IMI's protocol), with ``sim = cos(φ(a), φ(b))``:

    s(q, E) = mean_{e∈E} sim(q, e);   Δ(q) = s(q, E⁺) − s(q, E⁻);   p = σ(α · [Δ(q⁺) − Δ(q⁻)])

Columns: ``mis`` (mean p over trials at the given α — α is *fitted* by the
predictors, not here; the default α = 20 only sets a scale), ``mis_hard`` (α →
∞: the fraction of trials with Δ(q⁺) > Δ(q⁻), ties counting ½),
``mis_alpha``, and ``mis_delta_mean`` / ``mis_delta_sd`` (the per-trial
evidence that α multiplies, so a predictor can refit α without re-embedding).

The embedding φ is pluggable: by default the penultimate layer (the input of
the last ``Linear``) of a registered model, L2-normalised; any callable
``images → (N, D)`` works (e.g. DreamSim when its weights are available).
Every image is embedded once per run.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch

from ...errors import ImiBenchError
from ..base import CustomFamily, FeatureContext, register_family

__all__ = ["MIS", "embed_pool", "mis_from_embeddings", "pool_trials"]


def _last_linear(model: torch.nn.Module) -> str:
    name = next((n for n, m in reversed(list(model.named_modules())) if isinstance(m, torch.nn.Linear)), None)
    if name is None:
        raise ImiBenchError("the embedding model has no Linear layer to take the penultimate features from")
    return name


def embed_pool(embedder: str, pool: Any, *, batch_size: int, device: torch.device, seed: int,
               progress: bool, size: int | None = None) -> np.ndarray:
    """L2-normalised penultimate-layer embeddings of every pool image (one pass).

    ``size``: input side of the embedder (None: its own preprocessing, e.g. 256 → 224 crop).
    """
    import dataclasses

    from ...models import get_model
    from ...models.hooks import HookSite, record, run

    adapter = get_model(embedder, seed=seed).to(device)
    if size is not None:
        adapter.preprocessing = dataclasses.replace(adapter.preprocessing, resize=size, crop=size)
    site = HookSite("embedding", _last_linear(adapter.model), site="input", layout="NC")
    out = []
    with record(adapter.model, [site], {"x": lambda x: x.flatten(1).float()}, stop_early=True) as rec:
        for _, x in pool.batches(adapter.preprocessing, batch_size, progress=progress, desc=f"{embedder} embeddings"):
            with torch.inference_mode():
                run(adapter.model, rec, x.to(device))
            out.append(torch.nn.functional.normalize(rec.collect("x")["embedding"], dim=1).cpu())
            rec.clear()
    return torch.cat(out).numpy()


def mis_from_embeddings(emb: np.ndarray, trials: np.ndarray, alpha: float) -> dict[str, float]:
    """MIS of one unit row from its trials ``(n, 20)``: [q⁺, q⁻, 9 × E⁺, 9 × E⁻] indices into ``emb``."""
    e = torch.from_numpy(emb)[torch.from_numpy(trials)]  # (n, 20, D)
    q, pos, neg = e[:, :2], e[:, 2:11], e[:, 11:20]
    s_pos = torch.einsum("nqd,nkd->nqk", q, pos).mean(-1)  # (n, 2): query × E⁺
    s_neg = torch.einsum("nqd,nkd->nqk", q, neg).mean(-1)
    delta = (s_pos - s_neg)  # Δ(q⁺), Δ(q⁻)
    d = (delta[:, 0] - delta[:, 1]).double().numpy()
    hard = np.where(d > 0, 1.0, np.where(d < 0, 0.0, 0.5))
    return {"mis": float(np.mean(1 / (1 + np.exp(-alpha * d)))), "mis_hard": float(hard.mean()),
            "mis_alpha": float(alpha), "mis_delta_mean": float(d.mean()), "mis_delta_sd": float(d.std())}


def pool_trials(responses: np.ndarray, n_batches: int, seed: int) -> list[np.ndarray]:
    """IMI-protocol trials per unit row from its pool responses (refs = top/bottom 9t, queries the next t)."""
    from ...data.scores import stable_seed
    from ...stimuli.exemplars import N_REFERENCES, fair_batches

    out = []
    t = n_batches
    for j in range(responses.shape[1]):
        r = responses[:, j]
        valid = np.flatnonzero(~np.isnan(r))
        if len(valid) < 2 * (N_REFERENCES + 1) * t:
            raise ImiBenchError(f"MIS needs {2 * (N_REFERENCES + 1) * t} images per unit row; row {j} has {len(valid)}")
        order = valid[np.lexsort((valid, -r[valid]))]  # descending response, ties by index
        rng = stable_seed(seed, "mis-trials", j)
        top = fair_batches(order[:9 * t].tolist(), order[9 * t:10 * t].tolist(), t, rng)
        low = order[::-1]
        bottom = fair_batches(low[:9 * t].tolist(), low[9 * t:10 * t].tolist(), t, rng)
        out.append(np.array([[a[9], b[9], *a[:9], *b[:9]] for a, b in zip(top, bottom, strict=True)]))
    return out


@register_family
class MIS(CustomFamily):
    """Simulated 2AFC in an embedding space (see the module docstring)."""

    name = "mis"
    columns = ("mis", "mis_hard", "mis_alpha", "mis_delta_mean", "mis_delta_sd")
    description = "MIS-style simulated 2AFC: σ(α·Δ) of embedding similarities, and its α→∞ limit"
    defaults: ClassVar[dict[str, Any]] = {"embedder": "mobilenet_v2", "alpha": 20.0, "n_batches": 2,
                                          "embed_size": "model"}

    def compute(self, ctx: FeatureContext) -> pd.DataFrame:
        """One row per unit row."""
        pool = ctx.source.pool()
        size = self.params["embed_size"]
        size = ctx.adapter.preprocessing.crop if size == "model" else (None if size is None else int(size))
        key = ("mis_embeddings", self.params["embedder"], size)
        if key not in ctx.extras:
            ctx.extras[key] = embed_pool(self.params["embedder"], pool, batch_size=ctx.batch_size,
                                         device=ctx.device, seed=ctx.seed, progress=ctx.progress, size=size)
        trials = ctx.source.trials(ctx.units)
        if trials is None:
            assert ctx.responses is not None
            trials = pool_trials(ctx.responses, int(self.params["n_batches"]), ctx.seed)
        return pd.DataFrame([mis_from_embeddings(ctx.extras[key], t, float(self.params["alpha"])) for t in trials])
