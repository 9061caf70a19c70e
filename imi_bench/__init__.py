"""imi-bench: a benchmark of proxy predictors of human interpretability of vision-network units.

The top-level names are loaded lazily, so ``import imi_bench`` is cheap and
never touches the network.

Example:
    >>> import imi_bench
    >>> imi_bench.__version__  # doctest: +ELLIPSIS
    '...'
"""

from __future__ import annotations

from ._lazy import lazy_attributes
from ._version import __version__

__all__ = [
    "ImiBenchError",
    "ImiDataError",
    "__version__",
    "apply_quality_checks",
    "export_dataset",
    "load_dataset",
    "read_release",
    "resolve_dataset",
]

_LAZY = {
    "ImiBenchError": "imi_bench.errors",
    "ImiDataError": "imi_bench.errors",
    "apply_quality_checks": "imi_bench.data",
    "export_dataset": "imi_bench.data",
    "load_dataset": "imi_bench.data",
    "read_release": "imi_bench.data",
    "resolve_dataset": "imi_bench._defaults",
}


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY, __all__)
