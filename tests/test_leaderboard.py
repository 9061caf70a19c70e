"""Leaderboard: submission format, SQLite store, validate / submit / seed, bad input, concurrency."""

from __future__ import annotations

import math
import multiprocessing as mp
import re
import sqlite3
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imi_bench.cli import main
from imi_bench.errors import ImiBenchError, ImiDataError
from imi_bench.eval.evaluator import KEY, Evaluator
from imi_bench.eval.result import RunResult, dataset_digest
from imi_bench.eval.splits import get_split
from imi_bench.leaderboard._sql import SCHEMA_VERSION
from imi_bench.leaderboard.entries import ENTRY_COLUMNS
from imi_bench.leaderboard.schema import SubmissionMeta, load_submission
from imi_bench.leaderboard.seed import CEILING_METHOD, seed_from_run
from imi_bench.leaderboard.store import RateLimit, Store, utc_now
from imi_bench.leaderboard.submit import submit, validate
from imi_bench.predictors import unit_table

MODELS = ("mobilenet_v2", "mobilenet_v2-random", "efficientnet_lite0")
SPLIT = "leave-one-model-out"
DIGEST = "d" * 64
N_BOOT = 30


def make_units(seed: int = 0) -> pd.DataFrame:
    """3 registry models × 10 units × 2 conditions; k ~ Binomial(n, p) with p per unit row."""
    rng = np.random.default_rng(seed)
    rows = []
    for m in MODELS:
        for ch in range(10):
            layer = f"features_{ch % 3}"
            for cond in ("natural", "synthetic"):
                n = int(rng.integers(20, 40))
                k = int(rng.binomial(n, rng.uniform(0.5, 1.0)))
                rows.append({"unit_id": f"{m}/{layer}/{ch}", "model": m, "layer": layer, "channel": ch,
                             "condition": cond, "difficulty": "easy", "n_responses": n, "n_correct": k,
                             "his": k / n, "relative_depth": (ch % 3) / 2})
    return unit_table(pd.DataFrame(rows))


UNITS = make_units()


def heldout_rows(units: pd.DataFrame = UNITS) -> pd.DataFrame:
    folds = Evaluator(SPLIT).folds(units)
    return pd.concat([units.iloc[f.test].assign(fold=f.name) for f in folds], ignore_index=True)


def predictions(noise_seed: int = 0, sd: float = 0.1) -> pd.DataFrame:
    held = heldout_rows()
    rng = np.random.default_rng(noise_seed)
    pred = np.clip(held["his"].to_numpy() + rng.normal(0, sd, len(held)), 0, 1)
    return held[[*KEY, "fold"]].assign(prediction=pred)


def base_meta(**changes: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "method": "noisy oracle", "authors": ["A. Author", "B. Author"], "contact": "a@example.org",
        "code_url": "https://example.org/code", "description": "HIS plus noise.",
        "training_data": {"human_data": "train-folds", "models": []}, "imi_bench_version": "0.1.0",
        "dataset": "synth", "split": SPLIT, "seed": 0}
    meta.update(changes)
    return {k: v for k, v in meta.items() if v is not None}


def write_submission(folder: Path, preds: pd.DataFrame | None = None, meta: dict[str, Any] | None = None,
                     fmt: str = "csv") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    preds = predictions() if preds is None else preds
    if fmt == "csv":
        preds.to_csv(folder / "predictions.csv", index=False)
    else:
        preds.to_parquet(folder / "predictions.parquet", index=False)
    (folder / "meta.yaml").write_text(yaml.safe_dump(base_meta() if meta is None else meta, allow_unicode=True))
    return folder


def new_store(path: Path) -> Path:
    with Store(path) as store:
        split = get_split(SPLIT)
        store.add_benchmark("synth", DIGEST, SPLIT, split.config_digest(), UNITS)
    return path


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return new_store(tmp_path / "lb.db")


def counts(db: Path) -> dict[str, int]:
    with Store(db, readonly=True) as store:
        return store.counts()


# ---------------------------------------------------------------------------------------------- happy paths
def test_submit_prints_rank_and_scores_equal_direct_evaluation(db: Path, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    folder = write_submission(tmp_path / "entry", predictions(1))
    assert main(["submit", str(folder), "--db", str(db), "--n-boot", str(N_BOOT)]) == 0
    out = capsys.readouterr().out
    assert "ranks 1 of 1 current entries" in out and "stored as entry #1" in out

    direct = Evaluator(SPLIT, n_boot=N_BOOT, seed=0).eval(predictions(1), UNITS)
    with Store(db, readonly=True) as store:
        rec = store.submission(1)
        entries = store.entries(1)
    for m, v in direct.pooled.items():
        assert rec["scores"][m]["value"] == pytest.approx(v["estimate"])
        assert rec["scores"][m]["ci_low"] == pytest.approx(v["ci_low"])
        assert rec["scores"][m]["ci_high"] == pytest.approx(v["ci_high"])
    assert entries.loc[0, "spearman_ceiling_norm"] == pytest.approx(direct.extra["ceiling_normalised"]["spearman"])
    assert entries.loc[0, "model_rank_tau"] == pytest.approx(direct.extra["model_rank_tau"])
    assert entries.loc[0, "worst_model"] == pytest.approx(direct.extra["worst_model"])
    assert entries.loc[0, "worst_model_name"] == direct.extra["worst_model_name"]
    assert entries.loc[0, "per_model"] == pytest.approx(direct.extra["per_model_spearman"])
    assert rec["extra"]["reliability"] == pytest.approx(direct.extra["reliability"])
    assert list(entries.columns) == list(ENTRY_COLUMNS)
    assert entries.loc[0, "authors"] == "A. Author, B. Author"
    stored = Store(db, readonly=True).predictions(1)
    assert len(stored) == len(heldout_rows()) and set(stored.columns) == {*KEY, "fold", "prediction"}


def test_parquet_and_predictions_field_and_no_fold_column(db: Path, tmp_path: Path) -> None:
    with Store(db) as store:
        a = submit(write_submission(tmp_path / "pq", predictions(2), fmt="parquet"), store, n_boot=N_BOOT,
                   rate_limit=None)
        # meta.yaml naming a file elsewhere; predictions without `fold` (each row is held out once)
        other = tmp_path / "files"
        other.mkdir()
        predictions(3).drop(columns="fold").to_csv(other / "p.csv", index=False)
        meta_dir = tmp_path / "meta-only"
        meta_dir.mkdir()
        (meta_dir / "meta.yaml").write_text(yaml.safe_dump(base_meta(predictions="../files/p.csv")))
        b = submit(meta_dir / "meta.yaml", store, n_boot=N_BOOT, rate_limit=None)
        assert a.submission_id == 1 and b.submission_id == 2
        assert set(store.predictions(2)["fold"]) == {f"heldout={m}" for m in MODELS}


def test_ranking_among_entries(db: Path, tmp_path: Path) -> None:
    with Store(db) as store:
        good = submit(write_submission(tmp_path / "g", predictions(0, sd=0.02)), store, n_boot=N_BOOT)
        bad = submit(write_submission(tmp_path / "b", predictions(0, sd=0.5), base_meta(contact="b@example.org")),
                     store, n_boot=N_BOOT)
        assert (good.rank, good.n_ranked) == (1, 1)
        assert (bad.rank, bad.n_ranked) == (2, 2)
        assert store.entries(1)["method"].tolist() == ["noisy oracle", "noisy oracle"]


def test_dry_run_and_validate_write_nothing(db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = write_submission(tmp_path / "entry")
    before, raw = counts(db), db.read_bytes()
    assert main(["submit", str(folder), "--db", str(db), "--dry-run", "--n-boot", str(N_BOOT)]) == 0
    assert "would rank 1 of 1" in capsys.readouterr().out
    assert main(["validate", str(folder), "--db", str(db)]) == 0
    assert "valid" in capsys.readouterr().out
    assert counts(db) == before and db.read_bytes() == raw
    with Store(db) as store:
        assert submit(folder, store, n_boot=N_BOOT, dry_run=True).submission_id is None
    assert counts(db) == before


def test_duplicate_file_is_refused_and_db_unchanged(db: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    folder = write_submission(tmp_path / "entry")
    with Store(db) as store:
        submit(folder, store, n_boot=N_BOOT)
    before = counts(db)
    copy = write_submission(tmp_path / "copy", meta=base_meta(contact="other@example.org", method="copycat"))
    assert main(["submit", str(copy), "--db", str(db)]) == 2
    assert "already submitted" in capsys.readouterr().err
    assert main(["validate", str(copy), "--db", str(db)]) == 2
    assert counts(db) == before


def test_correction_keeps_history(db: Path, tmp_path: Path) -> None:
    with Store(db) as store:
        first = submit(write_submission(tmp_path / "v1", predictions(1)), store, n_boot=N_BOOT, rate_limit=None)
        fix = write_submission(tmp_path / "v2", predictions(2), base_meta(supersedes=first.submission_id))
        second = submit(fix, store, n_boot=N_BOOT, rate_limit=None)
        assert store.entries(1)["id"].tolist() == [second.submission_id]
        history = store.entries(1, include_superseded=True)
        assert sorted(history["id"]) == [1, 2]
        assert history.set_index("id").loc[2, "supersedes"] == 1
        assert store.submission(1)["superseded_by"] == 2
        assert store.submission(1)["scores"]["spearman"]["value"] is not None  # old scores kept
        again = write_submission(tmp_path / "v3", predictions(3), base_meta(supersedes=1))
        with pytest.raises(ImiBenchError, match="already superseded by #2"):
            submit(again, store, n_boot=N_BOOT, rate_limit=None)
        stranger = write_submission(tmp_path / "v4", predictions(4), base_meta(supersedes=2, contact="x@example.org"))
        with pytest.raises(ImiBenchError, match="another contact"):
            submit(stranger, store, n_boot=N_BOOT, rate_limit=None)
        ghost = write_submission(tmp_path / "v5", predictions(5), base_meta(supersedes=99))
        with pytest.raises(ImiBenchError, match="no submission #99"):
            submit(ghost, store, n_boot=N_BOOT, rate_limit=None)
        assert store.counts()["submissions"] == 2


def test_rate_limit(db: Path, tmp_path: Path) -> None:
    now = utc_now()
    limit = RateLimit(2, 7)
    with Store(db) as store:
        for i in range(2):
            submit(write_submission(tmp_path / f"e{i}", predictions(i)), store, n_boot=N_BOOT, rate_limit=limit,
                   now=now + timedelta(hours=i))
        third = write_submission(tmp_path / "e2", predictions(2))
        before = store.counts()
        with pytest.raises(ImiBenchError, match="rate limit"):
            validate(third, store, rate_limit=limit, now=now + timedelta(days=1))
        with pytest.raises(ImiBenchError, match="rate limit"):
            submit(third, store, n_boot=N_BOOT, rate_limit=limit, now=now + timedelta(days=1))
        assert store.counts() == before
        other = write_submission(tmp_path / "o", predictions(3), base_meta(contact="Other@Example.org"))
        submit(other, store, n_boot=N_BOOT, rate_limit=limit, now=now + timedelta(days=1))   # another submitter
        submit(third, store, n_boot=N_BOOT, rate_limit=limit, now=now + timedelta(days=7, hours=1))  # window moved
    assert RateLimit.parse("3/1.5") == RateLimit(3, 1.5) and RateLimit.parse("off") is None
    with pytest.raises(ImiBenchError):
        RateLimit.parse("2 per week")


# ---------------------------------------------------------------------------------------------- bad input
def _drop(p: pd.DataFrame) -> pd.DataFrame:
    return p.drop(index=5)


def _extra(p: pd.DataFrame) -> pd.DataFrame:
    return pd.concat([p, p.iloc[[0]].assign(channel=999)])


def _dup(p: pd.DataFrame) -> pd.DataFrame:
    return pd.concat([p, p.iloc[[3]]])


def _set(column: str, value: Any, row: int = 4) -> Any:
    def f(p: pd.DataFrame) -> pd.DataFrame:
        p = p.astype({column: object})
        p.iloc[row, p.columns.get_loc(column)] = value
        return p
    return f


BAD_PREDICTIONS = {
    "missing row": (_drop, "have no prediction"),
    "extra row": (_extra, "not in the dataset"),
    "duplicate row": (_dup, "duplicate unit rows"),
    "NaN": (_set("prediction", "nan"), "finite"),
    "inf": (_set("prediction", "inf"), "finite"),
    "out of range": (_set("prediction", 1.5), r"\[0, 1\]"),
    "text prediction": (_set("prediction", "high"), "prediction must be a number"),
    "float channel": (_set("channel", "1.5"), "channel must be a non-negative integer"),
    "negative channel": (_set("channel", "-1"), "channel must be a non-negative integer"),
    "empty model": (_set("model", ""), "model is empty"),
    "unknown fold": (_set("fold", "heldout=nothing"), "unknown folds"),
    "missing column": (lambda p: p.drop(columns="difficulty"), "missing \\['difficulty'\\]"),
    "unknown column": (lambda p: p.assign(confidence=1.0), "unknown \\['confidence'\\]"),
    "no rows": (lambda p: p.iloc[:0], "no rows"),
}


@pytest.mark.parametrize("case", sorted(BAD_PREDICTIONS))
def test_bad_predictions(case: str, db: Path, tmp_path: Path) -> None:
    mutate, message = BAD_PREDICTIONS[case]
    folder = write_submission(tmp_path / "bad", mutate(predictions()))
    before = counts(db)
    with Store(db) as store:
        for call in (lambda: validate(folder, store), lambda: submit(folder, store, n_boot=N_BOOT)):
            with pytest.raises(ImiDataError, match=message) as err:
                call()
            assert str(folder / "predictions.csv") in str(err.value)
    assert counts(db) == before


def test_row_and_column_are_named(tmp_path: Path) -> None:
    folder = write_submission(tmp_path / "bad", _set("prediction", "high", row=7)(predictions()))
    with pytest.raises(ImiDataError) as err:
        load_submission(folder)
    assert (err.value.row, err.value.column) == (8, "prediction")
    assert "row 8 (line 9)" in str(err.value)


BAD_META = {
    "missing field": (base_meta(contact=None), "field 'contact': Field required"),
    "unknown field": (base_meta(score=0.99), "field 'score': unknown field"),
    "wrong type": (base_meta(seed="0"), "field 'seed'"),
    "bad url": (base_meta(code_url="ftp://x"), "field 'code_url'"),
    "bad email": (base_meta(contact="nobody"), "field 'contact'"),
    "no authors": (base_meta(authors=[]), "field 'authors'"),
    "external without notes": (base_meta(training_data={"human_data": "external", "models": []}),
                               "field 'training_data'"),
    "nested unknown": (base_meta(training_data={"human_data": "none", "models": [], "hidden": True}),
                       "field 'training_data.hidden'"),
    "unknown dataset": (base_meta(dataset="imi-real"), r"no benchmark for dataset 'imi-real'.*#1 synth"),
    "unknown split": (base_meta(split="random-units"), r"split 'random-units'.*known benchmarks: #1 synth"),
    "wrong digest": (base_meta(dataset_digest="e" * 64), "no benchmark"),
}


@pytest.mark.parametrize("case", sorted(BAD_META))
def test_bad_meta(case: str, db: Path, tmp_path: Path) -> None:
    meta, message = BAD_META[case]
    folder = write_submission(tmp_path / "bad", meta=meta)
    before = counts(db)
    with Store(db) as store, pytest.raises(ImiBenchError, match=message):
        submit(folder, store, n_boot=N_BOOT)
    assert counts(db) == before


def test_bad_files(db: Path, tmp_path: Path) -> None:
    before = counts(db)
    with Store(db) as store:
        big = write_submission(tmp_path / "big")
        with pytest.raises(ImiDataError, match="the limit is 1,000"):
            submit(big, store, max_bytes=1000)
        latin = write_submission(tmp_path / "latin")
        raw = (latin / "predictions.csv").read_bytes().replace(b"features_1", b"f\xe9atures_1", 1)
        (latin / "predictions.csv").write_bytes(raw)
        with pytest.raises(ImiDataError, match="not UTF-8: invalid byte 0xe9"):
            submit(latin, store)
        (latin / "meta.yaml").write_bytes("method: caf\u00e9\n".encode("latin-1"))
        with pytest.raises(ImiDataError, match=r"meta\.yaml: not UTF-8"):
            submit(latin, store)
        notyaml = write_submission(tmp_path / "notyaml")
        (notyaml / "meta.yaml").write_text("method: [unclosed\n")
        with pytest.raises(ImiDataError, match="not valid YAML at line"):
            submit(notyaml, store)
        (notyaml / "meta.yaml").write_text("- a list\n")
        with pytest.raises(ImiDataError, match="must be a mapping"):
            submit(notyaml, store)
        (notyaml / "meta.yaml").write_text("!!python/object:os.system {}\n")
        with pytest.raises(ImiDataError, match="not valid YAML"):
            submit(notyaml, store)
        both = write_submission(tmp_path / "both")
        predictions().to_parquet(both / "predictions.parquet")
        with pytest.raises(ImiDataError, match="exactly one of"):
            submit(both, store)
        typed = write_submission(tmp_path / "typed", predictions().astype({"channel": str}), fmt="parquet")
        with pytest.raises(ImiDataError, match="channel must have an integer type"):
            submit(typed, store)
        (typed / "predictions.parquet").write_bytes(b"PAR1 not really")
        with pytest.raises(ImiDataError, match="cannot read Parquet"):
            submit(typed, store)
    assert counts(db) == before


def test_store_rejects_updates_and_unknown_versions(db: Path, tmp_path: Path) -> None:
    with Store(db) as store:
        submit(write_submission(tmp_path / "e"), store, n_boot=N_BOOT)
    conn = sqlite3.connect(db, isolation_level=None)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    for sql in ("UPDATE scores SET value = 1", "DELETE FROM submissions", "UPDATE benchmarks SET split = 'x'"):
        with pytest.raises(sqlite3.IntegrityError, match="immutable"):
            conn.execute(sql)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(ImiBenchError, match="upgrade imi-bench"):
        Store(db)
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database" * 100)
    with pytest.raises(ImiBenchError, match="not a leaderboard store"):
        Store(junk)
    with pytest.raises(ImiBenchError, match="no leaderboard store"):
        Store(tmp_path / "missing.db", readonly=True)
    assert not (tmp_path / "missing.db").exists()


def test_benchmarks_api_and_idempotent_registration(db: Path) -> None:
    with Store(db) as store:
        frame = store.benchmarks()
        assert list(frame.columns) == ["id", "dataset_id", "dataset_digest", "split", "split_digest",
                                       "imi_bench_version", "created"]
        again = store.add_benchmark("synth", DIGEST, SPLIT, get_split(SPLIT).config_digest(), UNITS)
        assert again == 1 and len(store.benchmarks()) == 1
        units = store.benchmark_units(1)
        assert len(units) == len(UNITS) and units["channel"].dtype == np.int64
        assert store.entries(1).empty and list(store.entries(1).columns) == list(ENTRY_COLUMNS)
        with pytest.raises(ImiBenchError, match="lacks columns"):
            store.add_benchmark("x", "f" * 64, SPLIT, "s", UNITS.drop(columns="his"))


# ---------------------------------------------------------------------------------------------- seeding
def fake_run(root: Path, files: dict[str, str]) -> Path:
    """A run folder like `imi-bench run` writes, for two baselines, on UNITS."""
    split_dir = root / SPLIT
    (split_dir / "results").mkdir(parents=True)
    (split_dir / "predictions").mkdir()
    scheme = get_split(SPLIT)
    for name, pred in (("constant", predictions(0).assign(prediction=0.75)), ("family:noisy", predictions(9))):
        ev = Evaluator(SPLIT, n_boot=N_BOOT).eval(pred, UNITS)
        RunResult(dataset={"id": "synth", "digest": dataset_digest(files)},
                  split={"name": SPLIT, "config_digest": scheme.config_digest(), "seed": 0},
                  predictor={"name": name, "params": {}}, seed=0, folds=ev.folds, pooled=ev.pooled,
                  extra=ev.extra, hardware={}).write(split_dir / "results" / f"{name.replace(':', '-')}.json")
        pred.to_csv(split_dir / "predictions" / f"{name.replace(':', '-')}.csv", index=False)
    return split_dir


def test_seed_from_run(tmp_path: Path) -> None:
    files = {"responses_main.csv": "0" * 64}
    release = SimpleNamespace(files=files, units=lambda: UNITS.drop(columns=["arch", "training", "trained"]))
    split_dir = fake_run(tmp_path / "run", files)
    with Store(tmp_path / "lb.db") as store:
        out = seed_from_run(store, split_dir, release, n_boot=N_BOOT)
        assert sorted(out.added) == ["constant", "family:noisy"] and out.ceiling_id is not None
        before = store.counts()
        again = seed_from_run(store, split_dir, release, n_boot=N_BOOT)
        assert not again.added and sorted(again.skipped) == ["constant", "family:noisy"]
        assert again.ceiling_id is None and store.counts() == before
        entries = store.entries(out.benchmark_id)
        assert set(entries["kind"]) == {"baseline", "ceiling"}
        ceiling = entries[entries["kind"] == "ceiling"].iloc[0]
        assert ceiling["method"] == CEILING_METHOD and 0 < ceiling["spearman"] <= 1
        assert ceiling["spearman_ci_low"] <= ceiling["spearman"] <= ceiling["spearman_ci_high"]
        assert all(math.isnan(ceiling[m]) for m in ("kendall", "r2", "mae", "loglik", "model_rank_tau"))
        direct = Evaluator(SPLIT, n_boot=N_BOOT, seed=0).eval(predictions(9), UNITS)
        noisy = entries.set_index("method").loc["family:noisy"]
        assert noisy["spearman"] == pytest.approx(direct.pooled["spearman"]["estimate"])
        assert noisy["spearman_ci_low"] == pytest.approx(direct.pooled["spearman"]["ci_low"])
        assert entries.set_index("method").loc["constant", "spearman"] == 0.0
        # a submission is ranked among the baselines, not against the ceiling row
        res = submit(write_submission(tmp_path / "e", predictions(1, sd=0.01)), store, n_boot=N_BOOT)
        assert (res.rank, res.n_ranked) == (1, 3)
    other = SimpleNamespace(files={"x": "1" * 64}, units=release.units)
    with Store(tmp_path / "lb2.db") as store, pytest.raises(ImiDataError, match="not the run's dataset digest"):
        seed_from_run(store, split_dir, other)


# ---------------------------------------------------------------------------------------------- properties
_FIELDS = set(SubmissionMeta.model_fields)
_REQUIRED = sorted(n for n, f in SubmissionMeta.model_fields.items() if f.is_required())
_NOT_STRING = st.one_of(st.integers(), st.floats(), st.booleans(), st.lists(st.integers(), max_size=2),
                        st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))


def _not_a_probability(text: str) -> bool:
    value = pd.to_numeric(pd.Series([text.strip()]), errors="coerce").iloc[0]
    return not (np.isfinite(value) and 0 <= value <= 1)


def _prediction_mutation() -> st.SearchStrategy[Any]:
    row = st.integers(0, 59)
    bad_value = st.one_of(st.sampled_from(["nan", "inf", "-inf", "1.0001", "-0.1", "", "1e9", "NaN"]),
                          st.floats(allow_nan=True, allow_infinity=True).filter(lambda v: not 0 <= v <= 1),
                          st.text(max_size=8).filter(_not_a_probability))
    bad_channel = st.one_of(st.integers(10, 10**12).map(str), st.integers(-10**6, -1).map(str),
                            st.text(max_size=6).filter(lambda t: not re.fullmatch(r"\+?[0-9]{1,10}", t.strip())))
    bad_text = st.text(max_size=12)
    return st.one_of(
        st.tuples(st.just("drop"), st.lists(row, min_size=1, max_size=60, unique=True)),
        st.tuples(st.just("dup"), row),
        st.tuples(st.just("prediction"), row, bad_value),
        st.tuples(st.just("channel"), row, bad_channel),
        st.tuples(st.sampled_from(["model", "layer", "condition", "difficulty", "fold"]), row, bad_text),
        st.tuples(st.just("drop_column"), st.sampled_from([*KEY, "prediction"])),
        st.tuples(st.just("add_column"), st.text(min_size=1, max_size=8).filter(
            lambda c: c.strip() not in {*KEY, "prediction", "fold"} and c.strip() == c and "\x00" not in c)),
    )


def _meta_mutation() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.tuples(st.just("delete"), st.sampled_from(_REQUIRED)),
        st.tuples(st.just("unknown"), st.text(min_size=1, max_size=10).filter(lambda k: k not in _FIELDS),
                  st.integers()),
        st.tuples(st.just("set"), st.sampled_from(["method", "contact", "code_url", "description", "dataset", "split",
                                                   "imi_bench_version"]), _NOT_STRING),
        st.tuples(st.just("set"), st.just("seed"), st.one_of(st.text(max_size=4), st.floats(), st.booleans(),
                                                             st.integers(max_value=-1), st.integers(min_value=2**32))),
        st.tuples(st.just("set"), st.just("contact"), st.text(max_size=20).filter(lambda t: "@" not in t)),
        st.tuples(st.just("set"), st.sampled_from(["dataset", "split"]),
                  st.text(min_size=1, max_size=20).filter(lambda t: t not in ("synth", SPLIT))),
        st.tuples(st.just("set"), st.just("authors"), st.one_of(st.just([]), st.text(max_size=5), _NOT_STRING)),
        st.tuples(st.just("set"), st.just("training_data"),
                  st.one_of(st.just({"human_data": "all", "models": []}), st.just({"human_data": "none"}),
                            st.just({"human_data": "external", "models": []}), _NOT_STRING)),
        st.tuples(st.just("set"), st.just("dataset_digest"), st.text(max_size=64).filter(lambda t: t != DIGEST)),
    )


def _apply_prediction(p: pd.DataFrame, op: tuple[Any, ...]) -> pd.DataFrame:
    kind = op[0]
    if kind == "drop":
        return p.drop(index=p.index[op[1]])
    if kind == "dup":
        return pd.concat([p, p.iloc[[op[1]]]])
    if kind == "drop_column":
        return p.drop(columns=op[1])
    if kind == "add_column":
        return p.assign(**{op[1]: 1})
    _, row, value = op
    p = p.astype({kind: object})
    if kind in ("model", "layer", "condition", "difficulty", "fold") and value == p.iloc[row][kind]:
        value += "x"  # an unchanged value is not a mutation
    p.iloc[row, p.columns.get_loc(kind)] = value
    return p


def _apply_meta(meta: dict[str, Any], op: tuple[Any, ...]) -> dict[str, Any]:
    meta = dict(meta)
    if op[0] == "delete":
        del meta[op[1]]
    else:
        meta[op[1]] = op[2]
    return meta


@pytest.mark.slow
def test_malformed_submissions_only_raise_validation_errors(tmp_path: Path) -> None:
    db = new_store(tmp_path / "lb.db")
    base = predictions(0)
    with Store(db) as store:
        submit(write_submission(tmp_path / "seed-entry", predictions(1)), store, n_boot=N_BOOT)
        before = store.counts()

        @settings(max_examples=1000, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        @given(pred_op=st.one_of(st.none(), _prediction_mutation()), meta_op=st.one_of(st.none(), _meta_mutation()),
               also=st.booleans())
        def check(pred_op: Any, meta_op: Any, also: bool) -> None:
            if pred_op is None and meta_op is None:
                meta_op = ("delete", "method")
            pred = base if pred_op is None else _apply_prediction(base, pred_op)
            meta = base_meta() if meta_op is None else _apply_meta(base_meta(), meta_op)
            with tempfile.TemporaryDirectory(dir=tmp_path) as d:
                folder = write_submission(Path(d), pred, meta, fmt="parquet" if also and pred_op is None else "csv")
                with pytest.raises(ImiBenchError):
                    submit(folder, store, n_boot=5, rate_limit=None)
            assert store.counts() == before

        check()


# ---------------------------------------------------------------------------------------------- concurrency
@pytest.mark.slow
def test_parallel_submitters_all_land(tmp_path: Path) -> None:
    """20 spawned processes submit at once while the parent holds the write lock: writers queue, none fails."""
    from leaderboard_worker import concurrent_submit

    db = new_store(tmp_path / "lb.db")
    n = 20
    folders = [write_submission(tmp_path / f"e{i}", predictions(100 + i),
                                base_meta(contact=f"p{i}@example.org", method=f"entry {i}")) for i in range(n)]
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(n + 1)
    procs = [ctx.Process(target=concurrent_submit, args=(str(db), str(f), barrier)) for f in folders]
    for p in procs:
        p.start()
    lock = sqlite3.connect(db, isolation_level=None)
    try:
        lock.execute("BEGIN IMMEDIATE")  # every submitter's write has to wait for this one
        barrier.wait(timeout=240)
        time.sleep(2)
        lock.execute("COMMIT")
    finally:
        lock.close()
        for p in procs:
            p.join(timeout=240)
    assert [p.exitcode for p in procs] == [0] * n
    with Store(db, readonly=True) as store:
        entries = store.entries(1)
        assert sorted(entries["method"]) == sorted(f"entry {i}" for i in range(n))
        assert store.counts()["submissions"] == n and entries["file_sha256"].nunique() == n
