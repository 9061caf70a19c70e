"""Featurizer speed, measured side by side in one run (issue 5's targets).

(a) IMI B.4 + classical sparseness reduced inside the hooks of one pass vs a bare forward, on the same
    images: all channels of every layer of interest, and the sampled units only (channel selection, as
    ``Featurizer`` runs it). Target ≤ 1.15×.
(b) Per-sample parameter saliency: ``vmap(grad)`` vs a batch-size-1 loop on the same images. Target ≥ 5×
    faster, equal to 1e-5 (relative to each filter's largest value).
(c) Batched-gradient vs exact BackSelect at 32×32 single-pixel features on a real unit (model calls =
    images through the network). Target ≥ 20× fewer calls, every SIS sufficient.
(d) Throughput of every family through ``Featurizer`` with its default parameters, in images·units/s
    (images a family reads per unit × units / seconds).

dtype rules: the hooked pass may run in bf16 on GPU for sign statistics only after they are validated
against fp32 (the default and the only dtype used here); gradients (SIS, saliency) always run in fp32.

Run: ``python benchmarks/featurize_bench.py [--device cpu] [--size 128] [--images 64] [--units 40]``.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import logging
import statistics
import time
from collections.abc import Callable

import numpy as np
import pandas as pd
import torch
from _timing import timed

from imi_bench.featurize import Featurizer
from imi_bench.featurize.base import FAMILIES, HookFamily
from imi_bench.featurize.families.saliency import benchmark_paths
from imi_bench.featurize.families.sis import count_model_calls, mask_value, unit_objective
from imi_bench.featurize.featurizer import load_families
from imi_bench.models import get_model
from imi_bench.models.hooks import run
from imi_bench.stimuli import bundled_photos


def _adapter(name: str, size: int, device: str):  # type: ignore[no-untyped-def]
    adapter = get_model(name, device=device)
    adapter.preprocessing = dataclasses.replace(adapter.preprocessing, resize=size, crop=size)
    return adapter


def _units(adapter, n: int, seed: int = 0) -> pd.DataFrame:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(seed)
    layers = [la for la in adapter.layers() if la.kind in ("conv", "norm", "block")]
    pick = rng.choice(len(layers), n)
    return pd.DataFrame({"layer": [layers[i].name for i in pick],
                         "channel": [int(rng.integers(layers[i].width)) for i in pick]})


def _double(adapter):  # type: ignore[no-untyped-def]
    twin = copy.deepcopy(adapter)
    twin.model.double()
    return twin


def hook_overhead(adapter, x: torch.Tensor, units: pd.DataFrame, batch: int, repeats: int,  # type: ignore[no-untyped-def]
                  device: str) -> dict[str, float]:
    """(a): bare, hooked on all channels, hooked on the sampled units' channels."""
    load_families()
    fams = [FAMILIES.get(n)() for n in ("imi_b4", "sparseness")]
    reducers = Featurizer(adapter, fams, progress=False)._reducers()
    chunks = list(torch.split(x, batch))
    layers = list(dict.fromkeys(units["layer"]))
    chans = {la: torch.tensor(units.loc[units["layer"] == la, "channel"].to_numpy(), device=x.device)
             for la in layers}

    def bare() -> None:
        with torch.inference_mode():
            for c in chunks:
                adapter.model(c)

    def hooked(names: list[str] | None, channels: dict | None) -> Callable[[], None]:  # type: ignore[type-arg]
        def go() -> None:
            with torch.inference_mode(), adapter.recorder(names, reducers, stop_early=False, channels=channels) as rec:
                for c in chunks:
                    run(adapter.model, rec, c)
                    rec.clear()
        return go

    every, sampled = hooked(None, None), hooked(layers, chans)
    bare(), every(), sampled()  # warm-up
    t = {"bare": [], "all": [], "units": []}  # type: ignore[var-annotated]
    for _ in range(repeats):  # alternate so that drifts in machine load hit all three equally
        t["bare"].append(timed(bare, repeats=1, sync=device == "cuda")[0])
        t["all"].append(timed(every, repeats=1, sync=device == "cuda")[0])
        t["units"].append(timed(sampled, repeats=1, sync=device == "cuda")[0])
    return {k: statistics.median(v) for k, v in t.items()}


def sis_calls(adapter, pool, device: str) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """(c) on a mid-network layer at 32×32 px, 8 exemplars, k = 4 pixels per step.

    Each exemplar is paired with the layer's channel that it drives furthest above the fully masked
    input (``f(x) − f(x̄)`` largest), so that every pair has a SIS to find.
    """
    layer = [la for la in adapter.layers() if la.kind == "block"][3]
    small = dataclasses.replace(adapter.preprocessing, resize=32, crop=32)
    x = torch.stack([small(pool.image(i)) for i in range(8)]).to(device)
    x_bar = mask_value(adapter.preprocessing).to(x)
    with torch.inference_mode(), adapter.recorder([layer.name]) as rec:
        adapter.forward(rec, torch.cat([x, x_bar.expand(1, *x.shape[1:])]))
        means = rec.collect()[layer.name]
    channels = (means[:-1] - means[-1:]).argmax(1).tolist()
    f = unit_objective(adapter, layer.name, channels)
    out = count_model_calls(f, x, x_bar, k=4)
    out["layer"] = layer.name  # type: ignore[assignment]
    return out


def throughput(adapter, pool, units: pd.DataFrame, batch: int) -> list[tuple[str, float, int, float]]:  # type: ignore[no-untyped-def]
    """(d): each family alone (the hook pass it needs included), default parameters."""
    load_families()
    rows = []
    for name in ("imi_b4", "sparseness", "mis", "sis", "param_saliency", "lesion"):
        fam = FAMILIES.get(name)()
        per_unit = {"sis": fam.params.get("n_exemplars"), "param_saliency": fam.params.get("n_images"),
                    "lesion": fam.params.get("n_images")}.get(name, len(pool))
        t0 = time.perf_counter()
        Featurizer(adapter, [fam], batch_size=batch, progress=False).run(units, pool)
        dt = time.perf_counter() - t0
        if name == "lesion":  # 1 + n_random lesions per unit, each over n_images
            per_unit = int(per_unit) * (1 + int(fam.params["n_random"]))
        kind = "hook" if isinstance(fam, HookFamily) else "custom"
        rows.append((f"{name} ({kind})", dt, int(per_unit), int(per_unit) * len(units) / dt))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mobilenet_v2")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--size", type=int, default=128, help="input side (IMI-sim stimuli are 128 px)")
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--units", type=int, default=40)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--saliency-images", type=int, default=16)
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    torch.manual_seed(0)
    adapter = _adapter(args.model, args.size, args.device)
    pool = bundled_photos(n=args.images, size=args.size)
    x = adapter.preprocess([pool.image(i) for i in range(len(pool))]).to(args.device)
    units = _units(adapter, args.units)
    print(f"{args.model} on {args.device}, {args.size} px, {args.images} images, batch {args.batch}, "
          f"{args.units} units, torch threads {torch.get_num_threads()}, fp32")

    t = hook_overhead(adapter, x, units, args.batch, args.repeats, args.device)
    for key, label in (("all", f"all channels of {len(adapter.layers())} layers"), ("units", "the sampled units")):
        r = t[key] / t["bare"]
        print(f"(a) B.4+classical hooked on {label:<28}: bare {t['bare']:.3f} s, hooked {t[key]:.3f} s, "
              f"ratio {r:.3f} (target <= 1.15: {'met' if r <= 1.15 else 'MISSED'})")

    s = benchmark_paths(adapter, x[:args.saliency_images], chunk_size=16)
    d = benchmark_paths(_double(adapter), x[:args.saliency_images].double(), chunk_size=16)
    ok = s["speedup"] >= 5 and d["max_rel_diff"] <= 1e-5
    print(f"(b) parameter saliency, {int(s['n_images'])} images, fp32: vmap {s['vmap_s']:.2f} s, loop "
          f"{s['loop_s']:.2f} s, speedup {s['speedup']:.2f}x; max per-filter rel diff fp32 {s['max_rel_diff']:.1e}, "
          f"fp64 {d['max_rel_diff']:.1e} (target >= 5x and <= 1e-5: {'met' if ok else 'MISSED'})")

    c = sis_calls(adapter, pool, args.device)
    ok = c["ratio"] >= 20 and c["sufficient_frac"] == 1.0
    print(f"(c) SIS at 32x32 (d={c['d']} pixels, k={c['k']}, layer {c['layer']}): exact {c['exact_forward']} calls, "
          f"batched {c['batched_forward']} fwd + {c['batched_backward']} bwd per image, {c['ratio']:.0f}x fewer; "
          f"sufficient {c['sufficient_frac']:.0%} of {c['n_with_sis']} (target >= 20x, 100%: "
          f"{'met' if ok else 'MISSED'})")

    print("(d) throughput per family (default parameters, hook pass included):")
    for name, dt, per_unit, rate in throughput(adapter, pool, units, args.batch):
        print(f"    {name:<24} {dt:7.2f} s  {per_unit:>4} images/unit  {rate:10.1f} images·units/s")


if __name__ == "__main__":
    main()
