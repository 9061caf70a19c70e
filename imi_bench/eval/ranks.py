"""Vectorised rank and tie kernels over rows of ``(B, N)`` arrays (with masks), shared by the batch metrics.

Average ranks match ``scipy.stats.rankdata(method="average")`` row by row; Kendall's discordant pairs
are counted by merge-sort inversions, so τ-b costs O(N log N) per row.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["average_ranks"]


def _rows(a: ArrayLike) -> np.ndarray:
    arr = np.asarray(a, dtype=float)
    return arr[None, :] if arr.ndim == 1 else arr


def _mask(mask: ArrayLike | None, shape: tuple[int, ...]) -> np.ndarray:
    return np.ones(shape, dtype=bool) if mask is None else np.broadcast_to(np.asarray(mask, dtype=bool), shape)


def _sorted_runs(a: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sort order of each row (masked entries as +inf, hence last) and flags marking each new value."""
    a = np.where(mask, a, np.inf)
    order = np.argsort(a, axis=1)  # tie order is irrelevant to every use
    s = np.take_along_axis(a, order, axis=1)
    new = np.ones(s.shape, dtype=bool)
    new[:, 1:] = s[:, 1:] != s[:, :-1]
    return order, new


def _run_start(new: np.ndarray) -> np.ndarray:
    """Index (in sorted order) of the first element of each element's run of equal values."""
    return np.maximum.accumulate(np.where(new, np.arange(new.shape[1]), 0), axis=1)


def _tied_pairs(new: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Pairs of valid elements with equal values, per row (the masked +inf run is removed)."""
    pairs = (np.arange(new.shape[1]) - _run_start(new)).sum(axis=1)
    m = (~mask).sum(axis=1)
    return pairs - m * (m - 1) // 2


def average_ranks(a: ArrayLike, mask: ArrayLike | None = None) -> np.ndarray:
    """1-based average ranks along the last axis, as ``scipy.stats.rankdata(method="average")``.

    Masked entries rank after every valid entry, so the ranks of valid entries
    are their ranks among the valid entries only.
    """
    arr = _rows(a)
    valid = _mask(mask, arr.shape)
    order, new = _sorted_runs(arr, valid)
    idx = np.arange(arr.shape[1])
    last = np.ones_like(new)
    last[:, :-1] = new[:, 1:]
    end = np.minimum.accumulate(np.where(last, idx, arr.shape[1] - 1)[:, ::-1], axis=1)[:, ::-1]
    out = np.empty(arr.shape)
    np.put_along_axis(out, order, (_run_start(new) + end) / 2.0 + 1.0, axis=1)
    return out


def _dense_codes(a: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Dense integer codes of each row's values (masked entries get the largest) and the run flags."""
    order, new = _sorted_runs(a, mask)
    codes = np.empty(a.shape, dtype=np.int64)
    np.put_along_axis(codes, order, np.cumsum(new, axis=1) - 1, axis=1)
    return codes, new


def _inversions(seq: np.ndarray, brute: int = 16) -> np.ndarray:
    """Pairs ``i < j`` with ``seq[i] > seq[j]`` in each row of non-negative integer codes.

    Vectorised over rows and blocks: pairs within blocks of ``brute`` elements
    are compared directly; then a bottom-up merge sort, where a stable sort of
    each pair of sorted blocks tells every right-block element how many
    left-block elements precede it (equal ones first, so only strictly larger
    ones count). O(N log N) work per row, plus a small O(N · brute) start.
    """
    b, length = seq.shape
    width = 1 << max(1, int(np.ceil(np.log2(max(length, 2)))))
    a = np.full((b, width), int(seq.max(initial=0)) + 1, dtype=np.int64)  # padding: largest, last: no inversions
    a[:, :length] = seq
    t = min(width, brute)
    blocks = a.reshape(b, -1, t)
    out = ((blocks[..., :, None] > blocks[..., None, :]) & np.triu(np.ones((t, t), bool), 1)).sum(axis=(1, 2, 3))
    a = np.sort(blocks, axis=-1).reshape(b, width)
    s = t
    while s < width:
        blocks = a.reshape(b, -1, 2 * s)
        order = np.argsort(blocks, axis=-1, kind="stable")
        a = np.take_along_axis(blocks, order, axis=-1).reshape(b, width)
        # a right element from index j = order - s, now at q, follows q - j left elements <= it: order - q are larger
        out += np.where(order >= s, order - np.arange(2 * s), 0).sum(axis=(1, 2))
        s *= 2
    return out


def _constant(a: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return np.where(mask, a, -np.inf).max(axis=1) == np.where(mask, a, np.inf).min(axis=1)
