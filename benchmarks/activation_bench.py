"""Hook overhead: one hooked pass over *all* layers of interest vs a bare forward, on the same images.

For mobilenet_v2 and efficientnet_lite0 (offline ImageNet weights), the same
preprocessed batch of bundled photos is run through the bare model and through
the model with every layer of interest hooked (reduced to per-unit spatial
means inside the hooks, kept on device), alternating the two, and the median
times are compared. Target (issue 3): hooked / bare ≤ 1.15.

Run: ``python benchmarks/activation_bench.py [--images 64] [--batch 32] [--repeats 5] [--device cpu]``.
"""

from __future__ import annotations

import argparse
import logging
import statistics

import torch
from _timing import timed

from imi_bench.models import get_model
from imi_bench.models.hooks import run
from imi_bench.stimuli import bundled_photos


def bench(name: str, images: list, batch: int, repeats: int, device: str) -> tuple[float, float, int]:  # type: ignore[type-arg]
    adapter = get_model(name, device=device)
    x = adapter.preprocess(images).to(device)
    chunks = list(torch.split(x, batch))

    def bare() -> None:
        with torch.inference_mode():
            for c in chunks:
                adapter.model(c)

    def hooked() -> None:
        with torch.inference_mode(), adapter.recorder(stop_early=False) as rec:
            for c in chunks:
                run(adapter.model, rec, c)
                rec.clear()

    bare(), hooked()  # warm-up
    t_bare, t_hooked = [], []
    for _ in range(repeats):  # alternate so that drifts in machine load hit both equally
        t_bare.append(timed(bare, repeats=1, sync=torch.cuda.is_available())[0])
        t_hooked.append(timed(hooked, repeats=1, sync=torch.cuda.is_available())[0])
    return statistics.median(t_bare), statistics.median(t_hooked), len(adapter.layers())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    pool = bundled_photos(n=args.images, size=256)
    images = [pool.image(i) for i in range(len(pool))]
    print(f"{args.images} images at 224 px, batch {args.batch}, device {args.device}, "
          f"torch threads {torch.get_num_threads()}, median of {args.repeats}")
    for name in ("mobilenet_v2", "efficientnet_lite0"):
        t_bare, t_hooked, n_layers = bench(name, images, args.batch, args.repeats, args.device)
        ratio = t_hooked / t_bare
        print(f"{name:<20} {n_layers:>4} layers hooked: bare {t_bare:6.3f} s ({args.images / t_bare:5.1f} img/s), "
              f"hooked {t_hooked:6.3f} s, ratio {ratio:.3f} (target <= 1.15: {'met' if ratio <= 1.15 else 'MISSED'})")


if __name__ == "__main__":
    main()
