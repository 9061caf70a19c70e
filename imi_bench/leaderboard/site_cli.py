"""``imi-bench leaderboard build`` and ``imi-bench leaderboard serve``: the static site of the leaderboard.

Registered into the ``imi-bench leaderboard`` parser by :func:`register_site`; heavy imports happen
inside the handlers.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

__all__ = ["register_site"]


def _build(args: argparse.Namespace) -> int:
    from .site import build_site
    from .store import DEFAULT_DB, Store

    db = DEFAULT_DB if args.db is None else Path(args.db)
    with Store(db, readonly=True) as store:
        written = build_site(store, args.out, n_boot=args.n_boot, n_perm=args.n_perm, seed=args.seed)
    out = Path(args.out).absolute()
    print(f"{len(written)} files written to {out}: open {out / 'index.html'}, "
          f"or run 'imi-bench leaderboard serve {args.out}'")
    return 0


def _serve(args: argparse.Namespace) -> int:
    from .serve import serve_forever

    def ready(url: str) -> None:
        print(f"serving {args.dir} at {url} (127.0.0.1 only; Ctrl-C stops)", flush=True)

    try:
        serve_forever(args.dir, args.port, on_ready=ready)
    except KeyboardInterrupt:
        print("stopped")
    return 0


def register_site(sub: Any) -> None:
    """Add ``build`` and ``serve`` to the subparsers ``sub`` of ``imi-bench leaderboard``."""
    p = sub.add_parser("build", help="build the static leaderboard site (HTML, PNG plots, leaderboard.json/.csv)")
    p.add_argument("--db", default=None, metavar="PATH", help="leaderboard store (default leaderboard/leaderboard.db)")
    p.add_argument("--out", type=Path, required=True, metavar="DIR",
                   help="site folder; replaced only if it is empty or holds a site built before")
    p.add_argument("--n-boot", type=int, default=500, metavar="N",
                   help="bootstrap replicates of rank intervals and comparisons with #1 (default 500)")
    p.add_argument("--n-perm", type=int, default=500, metavar="N",
                   help="permutations of each paired test against #1 (default 500)")
    p.add_argument("--seed", type=int, default=0, metavar="N", help="seed of ranks and tests (default 0)")
    p.set_defaults(func=_build)
    s = sub.add_parser("serve", help="serve a built site on 127.0.0.1 (http.server)")
    s.add_argument("dir", type=Path, metavar="DIR", help="the built site")
    s.add_argument("--port", type=int, default=0, metavar="N", help="port (default 0: any free port)")
    s.set_defaults(func=_serve)
