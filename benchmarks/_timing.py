"""Timing shared by the benchmark scripts (run them as ``python benchmarks/NAME.py``)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any


def timed(fn: Callable[..., Any], *args: Any, repeats: int, sync: bool = False) -> tuple[float, Any]:
    """Median wall time of ``repeats`` calls of ``fn(*args)`` and the last result.

    ``sync``: wait for queued CUDA work after each call (GPU runs).
    """
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn(*args)
        if sync:
            import torch

            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out
