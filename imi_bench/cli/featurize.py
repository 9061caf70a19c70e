"""``imi-bench featurize``: per-unit feature tables, cached with provenance."""

from __future__ import annotations

import argparse
import io
from pathlib import Path
from typing import Any

from .._defaults import DEFAULT_FEATURES

__all__ = ["register"]



def _featurize(args: argparse.Namespace) -> int:
    from .._io import atomic_write_bytes
    from ..errors import ImiBenchError
    from ..featurize.base import FAMILIES
    from ..featurize.featurizer import load_families

    load_families()
    if args.list:
        for name in FAMILIES:
            fam = FAMILIES.get(name)
            print(f"{name:<16} {fam.description}\n{'':<16} columns: {', '.join(fam.columns)}")
        return 0
    if args.dataset is None or args.out is None:
        raise ImiBenchError("featurize needs --dataset and --out (or --list)")
    if args.model is None and not args.all_models:
        raise ImiBenchError("choose --model NAME or --all-models")
    from .._defaults import resolve_dataset
    from ..featurize.dataset import featurize_release
    from ..sim.cache import cache_dir

    features = [f.strip() for f in args.features.split(",") if f.strip()]
    for name in features:
        FAMILIES.get(name)  # unknown names raise with the registered ones
    table = featurize_release(resolve_dataset(args.dataset), models=None if args.all_models else [args.model],
                              features=features, device=args.device, batch_size=args.batch_size,
                              cache_dir=None if args.no_cache else (args.cache or cache_dir() / "features"),
                              progress=not args.no_progress)
    buf = io.BytesIO()
    table.to_parquet(buf, index=False)
    atomic_write_bytes(Path(args.out), buf.getvalue())
    print(f"{len(table)} unit rows × {len(table.columns)} columns written to {args.out} "
          f"(feature hashes: {', '.join(sorted(table['feature_hash'].unique()))})")
    return 0


def register(sub: Any) -> None:
    """Add the ``featurize`` command."""
    p = sub.add_parser("featurize", help="per-unit feature tables (activation statistics, SIS, saliency, lesions, "
                                         "simulated 2AFC)")
    p.add_argument("--dataset", default=None, help="'imi-sim' (the cached default study) or a release folder")
    p.add_argument("--model", default=None, help="one registered model id with stimuli in the dataset")
    p.add_argument("--all-models", action="store_true", help="every model with stimuli in the dataset")
    p.add_argument("--features", default=",".join(DEFAULT_FEATURES), help="comma-separated families")
    p.add_argument("--out", default=None, help="output Parquet file")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--cache", default=None, help="feature cache root (default: ~/.cache/imi-bench/features)")
    p.add_argument("--no-cache", action="store_true", help="do not read or write the feature cache")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--list", action="store_true", help="list the registered feature families and exit")
    p.set_defaults(func=_featurize)
