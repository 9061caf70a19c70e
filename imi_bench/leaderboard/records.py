"""Plain records of the leaderboard store: score rows, new entries, the rate limit, timestamps."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, NamedTuple

import pandas as pd

from ..errors import ImiBenchError

__all__ = ["NewEntry", "RateLimit", "ScoreRow", "stamp", "utc_now"]

_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def utc_now() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(timezone.utc)


def stamp(t: datetime) -> str:
    """ISO-8601 UTC with microseconds and ``Z`` (sorts as text)."""
    return t.astimezone(timezone.utc).strftime(_TIME_FORMAT)


@dataclass(frozen=True)
class RateLimit:
    """At most ``n`` submissions per submitter per benchmark in any ``days``-day window."""

    n: int
    days: float

    @classmethod
    def parse(cls, text: str) -> RateLimit | None:
        """``"N/DAYS"`` (e.g. ``"2/7"``) → a limit; ``"off"`` or ``"none"`` → None (no limit)."""
        if text.strip().lower() in ("off", "none"):
            return None
        try:
            n, days = text.split("/")
            limit = cls(int(n), float(days))
        except ValueError:
            raise ImiBenchError(f"rate limit must look like N/DAYS (e.g. 2/7) or 'off', got {text!r}") from None
        if limit.n < 1 or not limit.days > 0:
            raise ImiBenchError(f"rate limit needs N >= 1 and DAYS > 0, got {text!r}")
        return limit


class ScoreRow(NamedTuple):
    """One row of the ``scores`` table (NaN: undefined; stored as NULL)."""

    metric: str
    value: float
    ci_low: float = math.nan
    ci_high: float = math.nan
    ceiling_normalised: float = math.nan


@dataclass
class NewEntry:
    """A row to insert into ``submissions`` with its scores (see :meth:`Store.add_submission`).

    Attributes:
        benchmark_id: The benchmark.
        kind: ``submission``, ``baseline`` or ``ceiling``.
        method: Display name.
        submitter: Who submitted (the contact, lower case); rate limits and corrections are per submitter.
        meta: The meta (JSON-safe dict).
        file_sha256: SHA-256 of the predictions file (unique per benchmark).
        predictions: Held-out predictions with ``fold`` (None for the ceiling row).
        scores: Score rows.
        extra: The Evaluator's ``extra`` and scoring provenance (JSON-safe dict).
        supersedes: Id of the entry this one corrects.
    """

    benchmark_id: int
    kind: str
    method: str
    submitter: str
    meta: dict[str, Any]
    file_sha256: str
    predictions: pd.DataFrame | None
    scores: Sequence[ScoreRow]
    extra: dict[str, Any] = field(default_factory=dict)
    supersedes: int | None = None
