"""The static leaderboard site: rendering, escaping, exports, ranks and ties, staging, serving, a real browser."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from imi_bench.errors import ImiBenchError
from imi_bench.eval.compare import compare, rank_intervals
from imi_bench.leaderboard.ranking import KEYS, align_predictions, rank_entries
from imi_bench.leaderboard.serve import make_server, serve_in_thread
from imi_bench.leaderboard.site import SITE_MARKER, build_site

XSS = "<script>alert(1)</script>"
MODELS = ("efficientnet_lite0", "mobilenet_v2", "mobilenet_v2-random")
ARTIFACTS = Path(__file__).resolve().parents[1] / "build" / "test-artifacts"
METRICS = ("spearman", "kendall", "pearson", "r2", "mae", "loglik")


def make_units(seed: int = 11, per_model: int = 20) -> tuple[pd.DataFrame, np.ndarray]:
    """A small unit table (3 registered models × ``per_model`` unit rows) and the true p(correct) of each row."""
    rng = np.random.default_rng(seed)
    rows = []
    for m in MODELS:
        for i in range(per_model):
            unit = i // 2  # two conditions per unit
            layer = ("features.3", "features.12")[unit % 2]
            rows.append({"model": m, "layer": layer, "channel": unit, "condition": ("natural", "synthetic")[i % 2],
                         "difficulty": "easy", "unit_id": f"{m}/{layer}/{unit}",
                         "arch": "cnn", "training": "supervised", "trained": not m.endswith("random"),
                         "relative_depth": (0.2, 0.7)[unit % 2]})
    units = pd.DataFrame(rows)
    truth = rng.uniform(0.55, 0.98, len(units))
    units["n_responses"] = rng.integers(25, 45, len(units))
    units["n_correct"] = rng.binomial(units["n_responses"].to_numpy(), truth)
    units["his"] = units["n_correct"] / units["n_responses"]
    return units, truth


def lomo_predictions(units: pd.DataFrame, values: np.ndarray) -> pd.DataFrame:
    """Predictions in the store's layout; the fold of each row is its model (leave-one-model-out)."""
    out = units[list(KEYS)].copy()
    out["fold"] = out["model"]
    out["prediction"] = np.clip(values, 0.5, 0.999)
    return out


class FakeStore:
    """The read API of ``imi_bench.leaderboard.store.Store``, over in-memory tables."""

    def __init__(self, bench: dict[str, Any], units: pd.DataFrame) -> None:
        self.bench, self.units = bench, units
        self.rows: list[dict[str, Any]] = []
        self.preds: dict[int, pd.DataFrame] = {}
        self.subs: dict[int, dict[str, Any]] = {}

    def add(self, method: str, kind: str, prediction: np.ndarray | None, **extra: Any) -> int:
        sid = len(self.rows) + 1
        row: dict[str, Any] = {"id": sid, "kind": kind, "method": method, "authors": "A. Author, B. Author",
                               "code_url": "https://example.org/code", "paper_url": None, "description": "d",
                               "received": f"2026-01-{sid:02d}T10:00:00Z", "file_sha256": f"{sid:064x}",
                               "supersedes": None}
        for m in METRICS:
            row.update({m: np.nan, f"{m}_ci_low": np.nan, f"{m}_ci_high": np.nan})
        row.update(spearman_ceiling_norm=np.nan, model_rank_tau=np.nan, worst_model=np.nan, worst_model_name=None,
                   per_model={})
        folds = []
        if prediction is not None:
            pred = lomo_predictions(self.units, prediction)
            self.preds[sid] = pred
            per_model = {m: float(stats.spearmanr(pred.loc[g.index, "prediction"], g["his"])[0])
                         for m, g in self.units.groupby("model")}
            rho = float(np.nanmean(list(per_model.values())))
            row.update(spearman=rho, spearman_ci_low=rho - 0.1, spearman_ci_high=rho + 0.1,
                       spearman_ceiling_norm=rho / 0.9, loglik=-0.6 - 0.01 * sid, per_model=per_model,
                       worst_model=min(per_model.values()),
                       worst_model_name=min(per_model, key=lambda k: per_model[k]))
            folds = [{"name": m, "n_test": 20, "metrics": {"spearman": v}} for m, v in per_model.items()]
        row.update(extra)
        self.rows.append(row)
        self.subs[sid] = {"meta": {"method": method, "contact": "secret@example.org", "seed": 3,
                                   "training_data": {"human_data": "train-folds", "models": [], "notes": ""}},
                          "scores": {}, "extra": {"folds": folds}}
        return sid

    def benchmarks(self) -> pd.DataFrame:
        return pd.DataFrame([self.bench])

    def benchmark_units(self, benchmark_id: Any) -> pd.DataFrame:
        return self.units.copy()

    def entries(self, benchmark_id: Any, include_superseded: bool = False) -> pd.DataFrame:
        superseded = {r["supersedes"] for r in self.rows if r["supersedes"] is not None}
        return pd.DataFrame([r for r in self.rows if include_superseded or r["id"] not in superseded])

    def predictions(self, submission_id: Any) -> pd.DataFrame:
        return self.preds[int(submission_id)].copy()

    def submission(self, submission_id: Any) -> dict[str, Any]:
        return self.subs[int(submission_id)]


BENCH = {"id": 1, "dataset_id": "imi-sim", "dataset_digest": "a" * 64, "split": "leave-one-model-out",
         "split_digest": "b" * 64, "imi_bench_version": "0.1.0", "created": "2026-01-01T00:00:00Z"}


@pytest.fixture(scope="module")
def fake_store() -> FakeStore:
    units, truth = make_units()
    rng = np.random.default_rng(5)
    store = FakeStore(BENCH, units)
    store.add("good", "submission", truth + rng.normal(0, 0.03, len(truth)),
              paper_url="https://example.org/paper")
    old = store.add("good-v0", "submission", truth + rng.normal(0, 0.2, len(truth)))
    store.add("good-v1", "submission", truth + rng.normal(0, 0.05, len(truth)), supersedes=old)
    store.add(XSS, "submission", rng.uniform(0.5, 1, len(truth)), code_url="javascript:alert(2)")
    store.add("depth", "baseline", units["relative_depth"].to_numpy() * 0.3 + 0.6)
    store.add("random", "baseline", rng.uniform(0.5, 1, len(truth)))
    store.add("human ceiling", "ceiling", None, spearman=0.9, spearman_ci_low=0.85, spearman_ci_high=0.93)
    return store


@pytest.fixture(scope="module")
def fake_site(fake_store: FakeStore, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site") / "site"
    build_site(fake_store, out, n_boot=200, n_perm=200, seed=0)
    return out


def _bench_page(site: Path) -> str:
    return (site / "b" / "1" / "index.html").read_text(encoding="utf-8")


def test_site_files_and_escaping(fake_site: Path) -> None:
    assert (fake_site / SITE_MARKER).is_file()
    for name in ("index.html", "leaderboard.json", "leaderboard.csv", "b/1/index.html", "b/1/summary.png"):
        assert (fake_site / name).is_file(), name
    pages = sorted((fake_site / "b" / "1" / "e").glob("*.html"))
    assert len(pages) == 6  # current entries only: good-v0 is superseded
    assert len(list((fake_site / "b" / "1" / "e").glob("*.png"))) == 5  # every entry but the ceiling
    html = _bench_page(fake_site)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert XSS not in html and "javascript:" not in html
    assert html.count("<script>") == 1  # only the inline sorter, allowed by its hash in the CSP
    assert "script-src &#39;sha256-" in html
    assert 'href="https://example.org/paper"' in html
    for page in pages:
        text = page.read_text(encoding="utf-8")
        assert XSS not in text and "secret@example.org" not in text


def test_entry_page_provenance(fake_site: Path, fake_store: FakeStore) -> None:
    text = (fake_site / "b" / "1" / "e" / "3.html").read_text(encoding="utf-8")
    assert "good-v1" in text and f"{3:064x}" in text and "2026-01-03T10:00:00Z" in text
    assert "human_data: train-folds" in text  # declared training data
    assert "good-v0" in text and "<code>2</code>" in text  # supersedes chain
    assert 'id="folds"' in text and "mobilenet_v2-random" in text  # per-fold scores


def test_exports(fake_site: Path, fake_store: FakeStore) -> None:
    doc = json.loads((fake_site / "leaderboard.json").read_text())
    (bench,) = doc["benchmarks"]
    assert bench["id"] == 1 and bench["n_entries"] == 5 and bench["n_units"] == 30
    by_method = {e["method"]: e for e in bench["entries"]}
    assert set(by_method) == {"good", "good-v1", XSS, "depth", "random", "human ceiling"}
    assert by_method["human ceiling"]["rank"] is None and by_method["human ceiling"]["kendall"] is None
    first = min((e for e in by_method.values() if e["rank"] is not None), key=lambda e: e["rank"])
    assert first["rank"] == 1 and first["method"] in {"good", "good-v1"}  # the two near-truth entries
    assert by_method["good"]["tied_with_first"] is True and by_method["good-v1"]["tied_with_first"] is True
    assert by_method["random"]["tied_with_first"] is False
    assert by_method["good"]["spearman"] == pytest.approx(fake_store.rows[0]["spearman"])
    csv = pd.read_csv(fake_site / "leaderboard.csv")
    assert len(csv) == 6 and list(csv.columns[:3]) == ["benchmark_id", "dataset_id", "split"]
    assert set(csv["method"]) == set(by_method)
    good = csv.set_index("method").loc["good"]
    assert json.loads(good["per_model"]) == pytest.approx(fake_store.rows[0]["per_model"])
    assert good["rank"] in (1, 2) and good["rank_low"] >= 1


def test_ranks_and_ties_match_direct_calls(fake_store: FakeStore) -> None:
    units = fake_store.units
    live = [r for r in fake_store.entries(1).to_dict("records") if r["kind"] != "ceiling"]
    # predictions shuffled and with channel as float: alignment must not depend on either
    preds = {str(r["id"]): fake_store.predictions(r["id"]).sample(frac=1, random_state=r["id"]) for r in live}
    preds["1"]["channel"] = preds["1"]["channel"].astype(float)
    aligned = align_predictions(units, preds)
    assert len(aligned.rows) == len(units)
    ordered = units.sort_values(list(KEYS), kind="stable").reset_index(drop=True)
    np.testing.assert_array_equal(aligned.rows["n_correct"], ordered["n_correct"])
    for key in preds:
        direct = fake_store.predictions(int(key)).sort_values(list(KEYS), kind="stable")["prediction"]
        np.testing.assert_allclose(aligned.preds[key], direct.to_numpy())
    got = rank_entries(aligned, n_boot=200, n_perm=200, seed=0)
    k, n, cl = ordered["n_correct"], ordered["n_responses"], ordered["unit_id"]
    from imi_bench.data.scores import stable_seed

    folds = aligned.rows["fold"].to_numpy()
    ref = rank_intervals(aligned.preds, k, n, cluster=cl, n_boot=200, seed=stable_seed(0, "rank_intervals"),
                         strata=folds)
    pd.testing.assert_frame_equal(got[list(ref.columns)], ref)
    first = ref["entry"].iloc[0]
    for entry in ref["entry"].iloc[1:]:
        c = compare(aligned.preds[entry], aligned.preds[first], k, n, cluster=cl, n_boot=200, n_perm=200,
                    seed=stable_seed(0, "compare", entry, first), strata=folds)
        row = got.set_index("entry").loc[entry]
        assert row["p_vs_first"] == pytest.approx(c.p_permutation)
        assert bool(row["tied_with_first"]) == (c.p_permutation >= 0.05)
    assert bool(got.set_index("entry").loc[first, "tied_with_first"])
    assert got.set_index("entry").loc["6", "tied_with_first"] is np.False_  # the random baseline


def test_align_keeps_rows_every_entry_predicts() -> None:
    units, truth = make_units(per_model=4)
    a = lomo_predictions(units, truth)
    b = lomo_predictions(units, truth[::-1]).iloc[2:]
    aligned = align_predictions(units, {"a": a, "b": b})
    assert len(aligned.rows) == len(units) - 2
    assert rank_entries(align_predictions(units, {}))["entry"].tolist() == []


def test_staging_leaves_nothing_on_error(fake_store: FakeStore, tmp_path: Path) -> None:
    out = tmp_path / "site"
    build_site(fake_store, out, n_boot=50, n_perm=50)
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}

    class Broken(FakeStore):
        def predictions(self, submission_id: Any) -> pd.DataFrame:
            if int(submission_id) == 4:
                raise ImiBenchError("boom")
            return super().predictions(submission_id)

    broken = Broken(BENCH, fake_store.units)
    broken.rows, broken.preds, broken.subs = fake_store.rows, fake_store.preds, fake_store.subs
    with pytest.raises(ImiBenchError, match="boom"):
        build_site(broken, out, n_boot=50, n_perm=50)
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["site"]  # no staging folder left behind
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep")
    with pytest.raises(ImiBenchError, match="not an empty folder"):
        build_site(fake_store, other)
    assert (other / "notes.txt").read_text() == "keep"


def test_serve_binds_localhost(fake_site: Path) -> None:
    url, stop = serve_in_thread(fake_site)
    try:
        assert url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(url + "b/1/index.html", timeout=10) as r:
            assert r.status == 200 and b"leaderboard" in r.read()
    finally:
        stop()
    with pytest.raises(ImiBenchError, match="not a built site"):
        serve_in_thread(fake_site / "b" / "1" / "e")
    server = make_server(fake_site)
    try:
        assert server.server_address[0] == "127.0.0.1"
    finally:
        server.server_close()


def test_serve_cli_prints_localhost_url(fake_site: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "imi_bench", "leaderboard", "serve", str(fake_site)],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        match = re.search(r"http://127\.0\.0\.1:\d+/", line)
        assert match, line
        with urllib.request.urlopen(match.group(0) + "leaderboard.csv", timeout=10) as r:
            assert r.read().startswith(b"benchmark_id,")
    finally:
        proc.terminate()
        proc.wait(timeout=20)


# ---------------------------------------------------------------------------------------------- browser


def _chromium() -> tuple[str, str]:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not chromium or not driver:
        pytest.fail("headless Chromium and ChromeDriver are needed for the browser test but are not installed: "
                    "run 'apt-get install -y chromium chromium-driver' (make test installs them)", pytrace=False)
    return chromium, driver


def _driver(tmp_path: Path) -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, driver = _chromium()
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                 "--no-first-run", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--window-size=1700,1000", f"--user-data-dir={tmp_path / 'profile'}"):
        opts.add_argument(flag)
    return webdriver.Chrome(service=Service(executable_path=driver), options=opts)


def _column_values(browser: Any, col: int) -> list[str]:
    return browser.execute_script(
        "var col = arguments[0]; return Array.from(document.querySelectorAll('#leaderboard tbody tr'))"
        ".map(function (r) { return r.cells[col].getAttribute('data-v'); });", col)


def _assert_sorted(values: list[str], ascending: bool) -> None:
    numbers = [float(v) for v in values if v != ""]
    assert numbers == sorted(numbers, reverse=not ascending), values
    assert all(v == "" for v in values[len(numbers):]), values  # missing values last


def _check_no_alert(browser: Any) -> None:
    from selenium.common.exceptions import NoAlertPresentException

    with pytest.raises(NoAlertPresentException):
        browser.switch_to.alert  # noqa: B018 (the property raises when no alert is open)


def browse_site(site: Path, tmp_path: Path, n_rows: int, xss_method: str = XSS) -> Path:
    """Load the site in headless Chromium and check table, sorting, escaping and the detail page."""
    from selenium.webdriver.common.by import By

    url, stop = serve_in_thread(site)
    browser = _driver(tmp_path)
    try:
        browser.get(url)
        browser.find_element(By.CSS_SELECTOR, "#benchmarks tbody a").click()
        rows = browser.find_elements(By.CSS_SELECTOR, "#leaderboard tbody tr")
        assert len(rows) == n_rows
        assert rows[0].get_attribute("class").startswith("ceiling")
        methods = [r.find_element(By.CSS_SELECTOR, "td.method a").text for r in rows]
        assert xss_method in methods  # shown as literal text
        _check_no_alert(browser)
        shot = tmp_path / "leaderboard.png"
        browser.save_screenshot(str(shot))
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, ARTIFACTS / "leaderboard.png")
        print(f"screenshot: {ARTIFACTS / 'leaderboard.png'}")
        head = browser.find_elements(By.CSS_SELECTOR, "#leaderboard thead th")
        col = [h.text for h in head].index("Spearman ρ [95% CI]")
        before = _column_values(browser, col)
        head[col].click()
        assert head[col].get_attribute("aria-sort") == "ascending"
        _assert_sorted(_column_values(browser, col), ascending=True)
        head[col].click()
        after = _column_values(browser, col)
        _assert_sorted(after, ascending=False)
        assert sorted(after, key=str) == sorted(before, key=str) and len(after) == n_rows
        link = next(r for r in browser.find_elements(By.CSS_SELECTOR, "#leaderboard td.method a")
                    if r.text == xss_method)
        link.click()
        assert browser.find_element(By.ID, "method").text == xss_method
        assert browser.find_element(By.ID, "provenance").is_displayed()
        _check_no_alert(browser)
        return shot
    finally:
        browser.quit()
        stop()


# ---------------------------------------------------------------------------------------------- real store


def _submission_folder(root: Path, name: str, units: pd.DataFrame, values: np.ndarray, **meta: Any) -> Path:
    import yaml

    folder = root / f"sub{len(list(root.iterdir()))}"
    folder.mkdir()
    doc = {"method": name, "authors": ["A. Author"], "contact": f"{len(name)}@example.org",
           "code_url": "https://example.org/code", "description": f"entry {name}",
           "training_data": {"human_data": "train-folds", "models": [], "notes": ""},
           "imi_bench_version": "0.1.0", "dataset": "toy-units", "split": "leave-one-model-out", "seed": 0, **meta}
    (folder / "meta.yaml").write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    lomo_predictions(units, values).drop(columns="fold").to_csv(folder / "predictions.csv", index=False)
    return folder


@pytest.fixture(scope="module")
def real_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real store: one benchmark, three submissions (one superseded), two baselines and the ceiling row."""
    from imi_bench.eval.splits import get_split
    from imi_bench.leaderboard.entries import score_rows
    from imi_bench.leaderboard.seed import ceiling_entry
    from imi_bench.leaderboard.store import NewEntry, Store
    from imi_bench.leaderboard.submit import benchmark_folds, entry_extra, heldout_predictions, score, submit, validate

    root = tmp_path_factory.mktemp("store")
    units, truth = make_units()
    rng = np.random.default_rng(5)
    db = root / "leaderboard.db"
    with Store(db) as store:
        bid = store.add_benchmark("toy-units", "c" * 64, "leave-one-model-out",
                                  get_split("leave-one-model-out").config_digest(), units)
        sub = _submission_folder(root, "good", units, truth + rng.normal(0, 0.03, len(truth)),
                                 paper_url="https://example.org/paper")
        submit(sub, store, n_boot=200, rate_limit=None)
        old = submit(_submission_folder(root, "okay", units, truth + rng.normal(0, 0.2, len(truth))), store,
                     n_boot=200, rate_limit=None).submission_id
        submit(_submission_folder(root, "okay-v2", units, truth + rng.normal(0, 0.05, len(truth)),
                                  contact="4@example.org", supersedes=old), store, n_boot=200, rate_limit=None)
        submit(_submission_folder(root, XSS, units, rng.uniform(0.5, 1, len(truth))), store, n_boot=200,
               rate_limit=None)
        for name, values in (("depth", units["relative_depth"].to_numpy() * 0.3 + 0.6),
                             ("random", rng.uniform(0.5, 1, len(truth)))):
            checked = validate(_submission_folder(root, name, units, values), store, rate_limit=None)
            res = score(checked, n_boot=200)
            store.add_submission(NewEntry(bid, "baseline", name, "imi-bench", checked.submission.meta.model_dump(
                mode="json"), checked.submission.sha256, heldout_predictions(res), score_rows(res),
                entry_extra(res, n_boot=200, seed=0)))
        stored = store.benchmark_units(bid)
        store.add_submission(ceiling_entry(bid, stored, benchmark_folds(store.benchmark(bid), stored), n_boot=200))
    return db


@pytest.fixture(scope="module")
def real_site(real_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site of the real store, built by the CLI."""
    from imi_bench.cli import main

    out = tmp_path_factory.mktemp("real-site") / "site"
    assert main(["leaderboard", "build", "--db", str(real_db), "--out", str(out), "--n-boot", "200",
                 "--n-perm", "200"]) == 0
    return out


def test_real_store_exports(real_site: Path, real_db: Path) -> None:
    from imi_bench.leaderboard.store import Store

    doc = json.loads((real_site / "leaderboard.json").read_text())
    (bench,) = doc["benchmarks"]
    with Store(real_db, readonly=True) as store:
        entries = store.entries(1)
        history = store.entries(1, include_superseded=True)
    assert len(bench["entries"]) == len(entries) == 6 and len(history) == 7
    by_method = {e["method"]: e for e in bench["entries"]}
    for row in entries.itertuples():
        got = by_method[row.method]
        assert got["id"] == row.id and got["kind"] == row.kind
        assert (got["spearman"] is None and not np.isfinite(row.spearman)) or \
            got["spearman"] == pytest.approx(row.spearman)
    first = min((e for e in by_method.values() if e["rank"] is not None), key=lambda e: e["rank"])
    assert first["rank"] == 1 and first["method"] in {"good", "okay-v2"}  # the two near-truth entries
    assert by_method["good"]["tied_with_first"] is True
    ceiling = next(e for e in bench["entries"] if e["kind"] == "ceiling")
    assert ceiling["rank"] is None and ceiling["spearman"] is not None
    page = (real_site / by_method["okay-v2"]["page"]).read_text(encoding="utf-8")
    assert "okay" in page and f"<code>{by_method['okay-v2']['supersedes']}</code>" in page
    assert "4@example.org" not in page  # the contact is never published


def test_missing_chromium_fails_not_skips(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(pytest.fail.Exception, match="apt-get install -y chromium chromium-driver"):
        _chromium()


def test_browser_real_store(real_site: Path, tmp_path: Path) -> None:
    shot = browse_site(real_site, tmp_path, n_rows=6)
    assert shot.stat().st_size > 10_000
