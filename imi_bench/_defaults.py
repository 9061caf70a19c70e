"""Defaults shared across layers that must stay importable without torch (the CLI's parser, the harness).

* :data:`DEFAULT_FEATURES`: the feature families the featurizer and the harness compute by default.
* :func:`resolve_dataset`: ``imi-sim`` → the cached default study's release; a folder → itself.
"""

from __future__ import annotations

from pathlib import Path

from .errors import ImiBenchError

__all__ = ["DEFAULT_FEATURES", "resolve_dataset"]

#: Feature families computed by default (``imi-bench featurize``, ``imi-bench run``).
DEFAULT_FEATURES = ("imi_b4", "sparseness", "sis", "param_saliency", "lesion", "mis")


def resolve_dataset(spec: str | Path) -> Path:
    """``imi-sim`` → the cached default IMI-sim release (built on first use); a folder → itself.

    Only ``imi-sim`` imports the simulator (and with it torch).

    Raises:
        ImiBenchError: ``spec`` is neither ``imi-sim`` nor an existing folder.
    """
    if str(spec) == "imi-sim":
        from .sim import default_study

        return default_study() / "release"
    path = Path(spec)
    if not path.is_dir():
        raise ImiBenchError(f"dataset {spec!r} is neither 'imi-sim' nor a release folder")
    return path
