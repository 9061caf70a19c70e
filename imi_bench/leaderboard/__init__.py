"""The leaderboard: submission format, SQLite store, validate/submit/seed, and the static site.

Names are loaded lazily, so importing the package (e.g. by the CLI) stays cheap.

* :mod:`~imi_bench.leaderboard.schema`: ``meta.yaml`` (:class:`SubmissionMeta`) and the predictions file.
* :mod:`~imi_bench.leaderboard.store`: :class:`Store` (SQLite, immutable history, the read API of the site).
* :mod:`~imi_bench.leaderboard.submit`: ``validate`` and ``submit`` (import them from the module: the
  package attribute ``submit`` is the module).
* :mod:`~imi_bench.leaderboard.seed`: :func:`seed_from_run` (benchmark, baselines, human ceiling row).

See ``leaderboard/README.md`` for how to submit and the rules.
"""

from __future__ import annotations

from .._lazy import lazy_attributes

__all__ = [
    "DEFAULT_DB",
    "RateLimit",
    "Store",
    "SubmissionMeta",
    "load_submission",
    "seed_from_run",
]

_LAZY = {
    "DEFAULT_DB": "store",
    "RateLimit": "store",
    "Store": "store",
    "SubmissionMeta": "schema",
    "load_submission": "schema",
    "seed_from_run": "seed",
}


__getattr__, __dir__ = lazy_attributes(__name__, {k: f"{__name__}.{v}" for k, v in _LAZY.items()}, __all__)
