"""A submitter process for tests/test_leaderboard.py (kept apart so spawned children import little)."""

from __future__ import annotations

from typing import Any


def concurrent_submit(db: str, folder: str, barrier: Any) -> None:
    """Open the store, wait for every other submitter, then submit ``folder`` (raises on failure)."""
    from imi_bench.leaderboard.store import Store
    from imi_bench.leaderboard.submit import submit

    with Store(db) as store:
        barrier.wait(timeout=240)
        submit(folder, store, n_boot=10)
