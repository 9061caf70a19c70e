"""The leaderboard store: one SQLite file (stdlib ``sqlite3``, WAL, foreign keys on, immutable history).

::

    with Store("leaderboard/leaderboard.db") as store:
        store.benchmarks()          # id, dataset_id, dataset_digest, split, split_digest, imi_bench_version, created
        store.entries(1)            # one row per current entry, with metrics and CIs
        store.submission(5)         # meta + scores + extra (detail pages)

Tables (schema in :mod:`imi_bench.leaderboard._sql`, versioned with ``PRAGMA user_version``):

* ``benchmarks``: a dataset version × split definition, with the benchmark's unit table stored as
  Parquet bytes (scoring and the site need no dataset folder).
* ``submissions``: submissions, baselines and the human ceiling row; held-out predictions (with
  ``fold``) as Parquet bytes, the meta and the Evaluator's ``extra`` as JSON. A correction is a new
  row whose ``supersedes`` names the old one.
* ``scores``: one row per metric of a submission (pooled metrics with CIs, ``model_rank_tau``,
  ``worst_model`` and ``spearman@<model>``).

Rows are never updated or deleted (triggers refuse it). Writers take ``BEGIN IMMEDIATE`` and wait
up to ``timeout`` seconds for each other, so concurrent submitters queue instead of failing.
"""

from __future__ import annotations

import io
import json
import logging
import math
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote

import pandas as pd

from .._version import __version__
from ..errors import ImiBenchError
from ._sql import MIGRATIONS, SCHEMA_VERSION
from .entries import build_entries
from .records import NewEntry, RateLimit, ScoreRow, stamp, utc_now

__all__ = ["DEFAULT_DB", "UNIT_COLUMNS", "NewEntry", "RateLimit", "ScoreRow", "Store", "utc_now"]

log = logging.getLogger(__name__)

#: Default store path (relative to the working directory).
DEFAULT_DB = Path("leaderboard") / "leaderboard.db"
#: Columns of a benchmark's stored unit table.
UNIT_COLUMNS = ("model", "layer", "channel", "condition", "difficulty", "unit_id", "n_correct", "n_responses",
                "his", "arch", "training", "trained", "relative_depth")
def _parquet(frame: pd.DataFrame) -> bytes:
    buf = io.BytesIO()
    frame.reset_index(drop=True).to_parquet(buf, index=False)
    return buf.getvalue()


def _unparquet(data: bytes) -> pd.DataFrame:
    return pd.read_parquet(io.BytesIO(data))


def _num(v: float | None) -> float | None:
    return None if v is None or not math.isfinite(float(v)) else float(v)


class Store:
    """The leaderboard database.

    Args:
        path: SQLite file; created (with its folder) and migrated when missing, unless ``readonly``.
        readonly: Open read-only (the file must exist and be at the current schema version).
        timeout: Seconds a writer waits for another writer's lock before failing.

    Raises:
        ImiBenchError: The file is not a store, or is newer than this code.
    """

    def __init__(self, path: str | Path = DEFAULT_DB, *, readonly: bool = False, timeout: float = 120.0) -> None:
        self.path, self.readonly = Path(path), readonly
        if readonly and not self.path.is_file():
            raise ImiBenchError(f"no leaderboard store at {self.path} (create one with `imi-bench leaderboard seed`)")
        if not readonly:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        target = f"file:{quote(str(self.path.absolute()))}?mode=ro" if readonly else str(self.path)
        self._conn = sqlite3.connect(target, timeout=timeout, isolation_level=None, uri=readonly,
                                     check_same_thread=False)
        try:
            self._conn.execute("PRAGMA foreign_keys = ON")
            self._conn.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
            if not readonly:
                self._conn.execute("PRAGMA journal_mode = WAL")
            self._migrate()
        except sqlite3.DatabaseError as e:
            self._conn.close()
            raise ImiBenchError(f"{self.path}: not a leaderboard store ({e})") from None
        except BaseException:
            self._conn.close()
            raise

    # ------------------------------------------------------------------ lifecycle
    def close(self) -> None:
        """Close the connection."""
        self._conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (``BEGIN IMMEDIATE``: writers queue on the lock), rolled back on any error."""
        if self.readonly:
            raise ImiBenchError(f"{self.path} is open read-only")
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield self._conn
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    def _version(self) -> int:
        return int(self._conn.execute("PRAGMA user_version").fetchone()[0])

    def _migrate(self) -> None:
        version = self._version()
        if version > SCHEMA_VERSION:
            raise ImiBenchError(f"{self.path} has schema version {version}; this imi-bench reads up to "
                                f"{SCHEMA_VERSION} (upgrade imi-bench)")
        if version == SCHEMA_VERSION:
            return
        if self.readonly:
            raise ImiBenchError(f"{self.path} has schema version {version}, not {SCHEMA_VERSION}: open it for "
                                "writing once (e.g. `imi-bench leaderboard seed`) to migrate it")
        with self._write() as conn:
            version = self._version()  # another process may have migrated meanwhile
            for number in range(version, SCHEMA_VERSION):
                statement = ""
                for line in MIGRATIONS[number].splitlines(keepends=True):
                    statement += line
                    if sqlite3.complete_statement(statement):
                        conn.execute(statement)
                        statement = ""
                conn.execute(f"PRAGMA user_version = {number + 1}")
                log.info("%s: migrated to schema version %d", self.path, number + 1)

    # ------------------------------------------------------------------ benchmarks
    def add_benchmark(self, dataset_id: str, dataset_digest: str, split: str, split_digest: str,
                      units: pd.DataFrame, *, split_seed: int = 0, imi_bench_version: str | None = None) -> int:
        """Register a benchmark (idempotent: an existing (dataset_digest, split, split_digest) returns its id).

        Args:
            dataset_id: Dataset name (e.g. ``imi-sim``).
            dataset_digest: :func:`~imi_bench.eval.result.dataset_digest` of the release.
            split: Split scheme name.
            split_digest: The scheme's ``config_digest()``.
            units: The unit table; :data:`UNIT_COLUMNS` are stored (frozen at registration).
            split_seed: Seed of the folds.
            imi_bench_version: Version that registered it (default: this one).

        Returns:
            The benchmark id.
        """
        missing = [c for c in UNIT_COLUMNS if c not in units.columns]
        if missing:
            raise ImiBenchError(f"the benchmark's unit table lacks columns {missing}")
        table = units[list(UNIT_COLUMNS)].reset_index(drop=True).copy()
        table["channel"] = table["channel"].astype("int64")
        table[["n_correct", "n_responses"]] = table[["n_correct", "n_responses"]].astype("int64")
        with self._write() as conn:
            row = conn.execute("SELECT id FROM benchmarks WHERE dataset_digest=? AND split=? AND split_digest=?",
                               (dataset_digest, split, split_digest)).fetchone()
            if row is not None:
                return int(row[0])
            cur = conn.execute(
                "INSERT INTO benchmarks (dataset_id, dataset_digest, split, split_digest, split_seed, "
                "imi_bench_version, created, units) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (dataset_id, dataset_digest, split, split_digest, int(split_seed), imi_bench_version or __version__,
                 stamp(utc_now()), _parquet(table)))
            log.info("registered benchmark %s / %s as #%d", dataset_id, split, cur.lastrowid)
            return int(cur.lastrowid or 0)

    def benchmarks(self) -> pd.DataFrame:
        """Every benchmark: ``id, dataset_id, dataset_digest, split, split_digest, imi_bench_version, created``."""
        return pd.read_sql_query(
            "SELECT id, dataset_id, dataset_digest, split, split_digest, imi_bench_version, created "
            "FROM benchmarks ORDER BY id", self._conn)

    def benchmark(self, benchmark_id: int) -> dict[str, Any]:
        """One benchmark's row (as :meth:`benchmarks`, plus ``split_seed``), without the units."""
        cur = self._conn.execute(
            "SELECT id, dataset_id, dataset_digest, split, split_digest, split_seed, imi_bench_version, created "
            "FROM benchmarks WHERE id=?", (int(benchmark_id),))
        row = cur.fetchone()
        if row is None:
            raise ImiBenchError(f"no benchmark #{benchmark_id}; known: {self._known()}")
        return dict(zip([d[0] for d in cur.description], row, strict=True))

    def benchmark_units(self, benchmark_id: int) -> pd.DataFrame:
        """A benchmark's unit table (:data:`UNIT_COLUMNS`), as registered."""
        row = self._conn.execute("SELECT units FROM benchmarks WHERE id=?", (int(benchmark_id),)).fetchone()
        if row is None:
            raise ImiBenchError(f"no benchmark #{benchmark_id}; known: {self._known()}")
        return _unparquet(row[0])

    def _known(self) -> str:
        rows = self._conn.execute("SELECT id, dataset_id, split, dataset_digest FROM benchmarks ORDER BY id").fetchall()
        return "; ".join(f"#{i} {d} / {s} (dataset digest {g[:12]})" for i, d, s, g in rows) or "none"

    def find_benchmark(self, dataset_id: str, split: str, dataset_digest: str | None = None) -> dict[str, Any]:
        """The benchmark of a dataset id and split (and digest, needed when several versions are registered).

        Raises:
            ImiBenchError: None matches (the known benchmarks are listed), or several do and no digest was given.
        """
        query = "SELECT id FROM benchmarks WHERE dataset_id=? AND split=?"
        args: tuple[Any, ...] = (dataset_id, split)
        if dataset_digest is not None:
            query, args = query + " AND dataset_digest=?", (*args, dataset_digest)
        ids = [r[0] for r in self._conn.execute(query, args).fetchall()]
        if not ids:
            digest = f" (dataset digest {dataset_digest})" if dataset_digest else ""
            raise ImiBenchError(f"the store {self.path} has no benchmark for dataset {dataset_id!r} and split "
                                f"{split!r}{digest}; known benchmarks: {self._known()}")
        if len(ids) > 1:
            raise ImiBenchError(f"several versions of dataset {dataset_id!r} are registered for split {split!r}; "
                                f"pin one with dataset_digest in meta.yaml. Known benchmarks: {self._known()}")
        return self.benchmark(ids[0])

    # ------------------------------------------------------------------ submissions: checks and writes
    def has_file(self, benchmark_id: int, file_sha256: str) -> int | None:
        """Id of the entry of ``benchmark_id`` with this predictions-file SHA-256, or None."""
        row = self._conn.execute("SELECT id FROM submissions WHERE benchmark_id=? AND file_sha256=?",
                                 (int(benchmark_id), file_sha256)).fetchone()
        return None if row is None else int(row[0])

    def check_new(self, benchmark_id: int, file_sha256: str, submitter: str, *, supersedes: int | None = None,
                  rate_limit: RateLimit | None = None, now: datetime | None = None) -> None:
        """Raise if a new entry would be refused: a duplicate file, a bad ``supersedes`` or over the rate limit.

        Read-only; :meth:`add_submission` repeats it inside its write transaction.
        """
        dup = self.has_file(benchmark_id, file_sha256)
        if dup is not None:
            raise ImiBenchError(f"this predictions file (SHA-256 {file_sha256[:16]}…) was already submitted to "
                                f"benchmark #{benchmark_id} as entry #{dup}")
        if supersedes is not None:
            self._check_supersedes(benchmark_id, submitter, supersedes)
        if rate_limit is not None:
            since = (now or utc_now()) - timedelta(days=rate_limit.days)
            (count,) = self._conn.execute(
                "SELECT COUNT(*) FROM submissions WHERE benchmark_id=? AND submitter=? AND kind='submission' "
                "AND received>=?", (int(benchmark_id), submitter, stamp(since))).fetchone()
            if count >= rate_limit.n:
                raise ImiBenchError(f"rate limit: {submitter} already has {count} submission(s) to benchmark "
                                    f"#{benchmark_id} in the last {rate_limit.days:g} days (limit {rate_limit.n})")

    def _check_supersedes(self, benchmark_id: int, submitter: str, old: int) -> None:
        row = self._conn.execute("SELECT benchmark_id, submitter, kind FROM submissions WHERE id=?",
                                 (int(old),)).fetchone()
        if row is None or int(row[0]) != int(benchmark_id) or row[2] != "submission":
            raise ImiBenchError(f"supersedes: there is no submission #{old} on benchmark #{benchmark_id}")
        if row[1] != submitter:
            raise ImiBenchError(f"supersedes: submission #{old} was made by another contact; only its "
                                "submitter can correct it")
        newer = self._conn.execute("SELECT id FROM submissions WHERE supersedes=?", (int(old),)).fetchone()
        if newer is not None:
            raise ImiBenchError(f"supersedes: submission #{old} is already superseded by #{newer[0]}; "
                                f"supersede #{newer[0]} instead")

    def add_submission(self, entry: NewEntry, *, rate_limit: RateLimit | None = None,
                       now: datetime | None = None) -> int:
        """Insert an entry and its scores in one transaction (after :meth:`check_new`, inside it).

        Returns:
            The new entry's id.
        """
        now = now or utc_now()
        preds = None if entry.predictions is None else _parquet(entry.predictions)
        with self._write() as conn:
            self.check_new(entry.benchmark_id, entry.file_sha256, entry.submitter, supersedes=entry.supersedes,
                           rate_limit=rate_limit if entry.kind == "submission" else None, now=now)
            cur = conn.execute(
                "INSERT INTO submissions (benchmark_id, kind, method, submitter, meta_json, file_sha256, received, "
                "supersedes, predictions, extra_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (int(entry.benchmark_id), entry.kind, entry.method, entry.submitter,
                 json.dumps(entry.meta, sort_keys=True), entry.file_sha256, stamp(now), entry.supersedes, preds,
                 json.dumps(entry.extra, sort_keys=True, allow_nan=False)))
            sid = int(cur.lastrowid or 0)
            conn.executemany(
                "INSERT INTO scores (submission_id, metric, value, ci_low, ci_high, ceiling_normalised) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [(sid, r.metric, _num(r.value), _num(r.ci_low), _num(r.ci_high), _num(r.ceiling_normalised))
                 for r in entry.scores])
        log.info("stored %s #%d (%s) on benchmark #%d", entry.kind, sid, entry.method, entry.benchmark_id)
        return sid

    # ------------------------------------------------------------------ reads for the site
    def entries(self, benchmark_id: int, include_superseded: bool = False) -> pd.DataFrame:
        """One row per entry of a benchmark, best headline Spearman first (NaN last).

        Columns: ``id, kind, method, authors, code_url, paper_url, description, received, file_sha256,
        supersedes``; for each metric m of ``spearman, kendall, pearson, r2, mae, loglik``: ``m, m_ci_low,
        m_ci_high``; ``spearman_ceiling_norm, model_rank_tau, worst_model, worst_model_name`` and
        ``per_model`` (dict model → Spearman). Undefined values are NaN (the ceiling row has only
        ``spearman``). Superseded entries are left out unless ``include_superseded``.
        """
        self.benchmark(benchmark_id)  # raises on an unknown id
        where = "" if include_superseded else \
            " AND NOT EXISTS (SELECT 1 FROM submissions t WHERE t.supersedes = s.id)"
        subs = pd.read_sql_query(
            "SELECT s.id, s.kind, s.method, s.meta_json, s.received, s.file_sha256, s.supersedes, s.extra_json "
            f"FROM submissions s WHERE s.benchmark_id=?{where} ORDER BY s.id", self._conn,
            params=(int(benchmark_id),))
        scores = pd.read_sql_query(
            "SELECT c.submission_id, c.metric, c.value, c.ci_low, c.ci_high, c.ceiling_normalised FROM scores c "
            "JOIN submissions s ON s.id = c.submission_id WHERE s.benchmark_id=?", self._conn,
            params=(int(benchmark_id),))
        return build_entries(subs, scores)

    def predictions(self, submission_id: int) -> pd.DataFrame:
        """An entry's held-out predictions (``model, layer, channel, condition, difficulty, fold, prediction``).

        Empty for the ceiling row.
        """
        row = self._conn.execute("SELECT predictions FROM submissions WHERE id=?", (int(submission_id),)).fetchone()
        if row is None:
            raise ImiBenchError(f"no submission #{submission_id}")
        if row[0] is None:
            return pd.DataFrame(columns=["model", "layer", "channel", "condition", "difficulty", "fold", "prediction"])
        return _unparquet(row[0])

    def submission(self, submission_id: int) -> dict[str, Any]:
        """One entry for a detail page.

        Returns:
            ``id, benchmark_id, kind, method, submitter, received, file_sha256, supersedes, superseded_by``,
            ``meta`` (dict), ``scores`` (metric → ``{value, ci_low, ci_high, ceiling_normalised}``, None
            where undefined) and ``extra`` (the Evaluator's extra and scoring provenance).
        """
        cur = self._conn.execute(
            "SELECT id, benchmark_id, kind, method, submitter, received, file_sha256, supersedes, meta_json, "
            "extra_json, (SELECT t.id FROM submissions t WHERE t.supersedes = s.id) AS superseded_by "
            "FROM submissions s WHERE id=?", (int(submission_id),))
        row = cur.fetchone()
        if row is None:
            raise ImiBenchError(f"no submission #{submission_id}")
        out = dict(zip([d[0] for d in cur.description], row, strict=True))
        out["meta"], out["extra"] = json.loads(out.pop("meta_json")), json.loads(out.pop("extra_json"))
        out["scores"] = {m: {"value": v, "ci_low": lo, "ci_high": hi, "ceiling_normalised": cn}
                         for m, v, lo, hi, cn in self._conn.execute(
                             "SELECT metric, value, ci_low, ci_high, ceiling_normalised FROM scores "
                             "WHERE submission_id=? ORDER BY metric", (int(submission_id),))}
        return out

    def counts(self) -> dict[str, int]:
        """Rows per table (``benchmarks``, ``submissions``, ``scores``)."""
        return {t: int(self._conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0])
                for t in ("benchmarks", "submissions", "scores")}
