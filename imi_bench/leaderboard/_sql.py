"""The leaderboard store's schema: migrations in order, applied by :class:`~imi_bench.leaderboard.store.Store`.

``MIGRATIONS[i]`` takes the database from ``PRAGMA user_version = i`` to ``i + 1``. Never edit a
released migration; append a new one. History is immutable: triggers refuse every UPDATE and
DELETE, so a correction is a new submission row that ``supersedes`` the old one.
"""

from __future__ import annotations

__all__ = ["MIGRATIONS", "SCHEMA_VERSION"]

_IMMUTABLE = "\n".join(
    f"CREATE TRIGGER {table}_no_{op.lower()} BEFORE {op} ON {table} "
    f"BEGIN SELECT RAISE(ABORT, 'leaderboard history is immutable: {op} on {table} refused'); END;"
    for table in ("benchmarks", "submissions", "scores") for op in ("UPDATE", "DELETE"))

_V1 = f"""
CREATE TABLE benchmarks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    dataset_id TEXT NOT NULL,
    dataset_digest TEXT NOT NULL,
    split TEXT NOT NULL,
    split_digest TEXT NOT NULL,
    split_seed INTEGER NOT NULL DEFAULT 0,
    imi_bench_version TEXT NOT NULL,
    created TEXT NOT NULL,
    units BLOB NOT NULL,
    UNIQUE (dataset_digest, split, split_digest)
);
CREATE TABLE submissions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    benchmark_id INTEGER NOT NULL REFERENCES benchmarks (id),
    kind TEXT NOT NULL CHECK (kind IN ('submission', 'baseline', 'ceiling')),
    method TEXT NOT NULL,
    submitter TEXT NOT NULL,
    meta_json TEXT NOT NULL,
    file_sha256 TEXT NOT NULL,
    received TEXT NOT NULL,
    supersedes INTEGER REFERENCES submissions (id),
    predictions BLOB,
    extra_json TEXT NOT NULL,
    UNIQUE (benchmark_id, file_sha256),
    UNIQUE (supersedes)
);
CREATE INDEX submissions_by_submitter ON submissions (benchmark_id, submitter, received);
CREATE TABLE scores (
    submission_id INTEGER NOT NULL REFERENCES submissions (id),
    metric TEXT NOT NULL,
    value REAL,
    ci_low REAL,
    ci_high REAL,
    ceiling_normalised REAL,
    PRIMARY KEY (submission_id, metric)
);
{_IMMUTABLE}
"""

#: Migration scripts; ``MIGRATIONS[i]`` upgrades ``user_version`` i → i + 1.
MIGRATIONS: tuple[str, ...] = (_V1,)
#: The schema version this code writes and reads.
SCHEMA_VERSION = len(MIGRATIONS)
