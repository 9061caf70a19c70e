"""`imi-bench report`: Conover–Iman and Holm against hand-worked cases, the analyses against scipy, files, CLI."""

from __future__ import annotations

import logging
import math
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from imi_bench.cli import main
from imi_bench.data import read_release
from imi_bench.errors import ImiBenchError, ImiDataError
from imi_bench.eval.posthoc import conover_iman, holm, kruskal_h
from imi_bench.eval.report import (
    build_report,
    depth_correlations,
    kruskal_conover,
    markdown_table,
    natural_vs_synthetic,
)


# --------------------------------------------------------------------------- Holm
def holm_by_definition(p: np.ndarray) -> np.ndarray:
    """Holm (1979) literally: p_(i) → max over j ≤ i of min(1, (m − j + 1) p_(j)), NaN ignored."""
    out = np.full(len(p), np.nan)
    idx = [i for i in range(len(p)) if not math.isnan(p[i])]
    m = len(idx)
    order = sorted(idx, key=lambda i: (p[i], i))
    for pos, i in enumerate(order):
        out[i] = max(min(1.0, (m - j) * p[order[j]]) for j in range(pos + 1))
    return out


def test_holm_hand_worked() -> None:
    # m = 4; sorted: 0.005 (#3), 0.01 (#0), 0.03 (#2), 0.04 (#1)
    # scaled: 4·0.005 = 0.02, 3·0.01 = 0.03, 2·0.03 = 0.06, 1·0.04 = 0.04
    # running max (monotone): 0.02, 0.03, 0.06, 0.06  → back in input order:
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    # cap at 1: 2·0.7 = 1.4 → 1; then max(1, 0.8) = 1
    assert holm([0.7, 0.8]) == pytest.approx([1.0, 1.0])
    # NaN stays NaN and does not count: m = 2, 2·0.02 = 0.04, max(0.04, 0.03) = 0.04
    assert np.allclose(holm([0.02, np.nan, 0.03]), [0.04, np.nan, 0.04], equal_nan=True)
    assert holm([]).size == 0 and np.isnan(holm([np.nan])).all()


def test_holm_matches_definition() -> None:
    rng = np.random.default_rng(0)
    for _ in range(200):
        m = int(rng.integers(1, 12))
        p = rng.choice([0.001, 0.01, 0.02, 0.04, 0.2, 0.5, 0.9], size=m) if rng.random() < 0.5 else rng.random(m)
        p[rng.random(m) < 0.1] = np.nan
        got = holm(p)
        np.testing.assert_allclose(got, holm_by_definition(p), equal_nan=True)
        ok = ~np.isnan(p)
        assert (got[ok] >= p[ok]).all() and (got[ok] <= 1).all()
        order = np.argsort(p[ok], kind="stable")
        assert (np.diff(got[ok][order]) >= -1e-15).all()  # monotone in the raw p-values


# --------------------------------------------------------------------------- Conover–Iman
def test_conover_hand_worked_with_ties() -> None:
    # A = [1, 2, 2], B = [3, 4], C = [2, 5]; N = 7, k = 3.
    # Sorted: 1(A) 2(A) 2(A) 2(C) 3(B) 4(B) 5(C) → ranks 1, 3, 3, 3, 5, 6, 7 (the three 2s share (2+3+4)/3 = 3).
    # Mean ranks: A = (1+3+3)/3 = 7/3, B = (5+6)/2 = 5.5, C = (3+7)/2 = 5.
    # ΣR² = 1+9+9+9+25+36+49 = 138; N(N+1)²/4 = 7·64/4 = 112; S² = (138 − 112)/6 = 13/3.
    # Σ nᵢR̄ᵢ² = 3·49/9 + 2·30.25 + 2·25 = 761/6; H = (761/6 − 112)/S² = (89/6)/(13/3) = 89/26.
    # Within mean square: S²(N − 1 − H)/(N − k) = (13/3)(6 − 89/26)/4 = (13/3)(67/26)/4 = 67/24.
    #   (check: Σ(R − R̄ᵢ)² = A: 16/9 + 4/9 + 4/9 = 8/3, B: 0.25 + 0.25, C: 4 + 4 → 67/6; / 4 = 67/24)
    # A–B: |7/3 − 5.5| = 19/6, se = sqrt(67/24 · (1/3 + 1/2)) = sqrt(335/144) ≈ 1.525242 → t ≈ 3.166667/1.525242
    # A–C: |7/3 − 5| = 8/3,   same se                                    → t ≈ 2.666667/1.525242
    # B–C: |5.5 − 5| = 1/2,   se = sqrt(67/24 · (1/2 + 1/2)) ≈ 1.670828   → t ≈ 0.5/1.670828
    values = [1, 2, 2, 3, 4, 2, 5]
    groups = ["A", "A", "A", "B", "B", "C", "C"]
    assert kruskal_h(values, groups) == pytest.approx(89 / 26)
    assert kruskal_h(values, groups) == pytest.approx(stats.kruskal([1, 2, 2], [3, 4], [2, 5]).statistic)
    res = conover_iman(values, groups)
    assert list(zip(res["group_a"], res["group_b"], strict=True)) == [("A", "B"), ("A", "C"), ("B", "C")]
    expected_t = [(19 / 6) / math.sqrt(335 / 144), (8 / 3) / math.sqrt(335 / 144), 0.5 / math.sqrt(67 / 24)]
    assert res["t"].to_numpy() == pytest.approx(expected_t)
    assert expected_t == pytest.approx([2.076162, 1.748347, 0.299253], abs=1e-6)
    assert (res["df"] == 4).all()
    assert res["mean_rank_a"].tolist() == pytest.approx([7 / 3, 7 / 3, 5.5])
    # two-sided: P(|T₄| ≥ t) = 2·(1 − F₄(t))
    assert res["p_value"].to_numpy() == pytest.approx([2 * (1 - stats.t.cdf(t, 4)) for t in expected_t])


def test_conover_is_a_t_test_on_pooled_ranks() -> None:
    """Independent route: the denominator is the within-group mean square of the pooled ranks (ANOVA on ranks)."""
    rng = np.random.default_rng(3)
    for _ in range(20):
        sizes = rng.integers(2, 9, size=int(rng.integers(2, 6)))
        groups = np.repeat([f"g{i}" for i in range(len(sizes))], sizes)
        values = rng.integers(0, 6, size=len(groups)) / 5  # plenty of ties, like HIS
        ranks = stats.rankdata(values)
        frame = pd.DataFrame({"g": groups, "r": ranks})
        mean = frame.groupby("g")["r"].mean()
        n = frame.groupby("g").size()
        msw = ((frame["r"] - frame["g"].map(mean)) ** 2).sum() / (len(values) - len(sizes))
        res = conover_iman(values, groups)
        for row in res.itertuples():
            t = abs(mean[row.group_a] - mean[row.group_b]) / math.sqrt(msw * (1 / n[row.group_a] + 1 / n[row.group_b]))
            assert row.t == pytest.approx(t)
            assert row.p_value == pytest.approx(2 * stats.t.sf(t, len(values) - len(sizes)))
        assert kruskal_h(values, groups) == pytest.approx(stats.kruskal(*[values[groups == g] for g in n.index])[0])


def test_conover_degenerate_cases() -> None:
    same = conover_iman([0.5] * 6, list("aabbcc"))
    assert (same["t"] == 0).all() and (same["p_value"] == 1).all()
    apart = conover_iman([0.1, 0.1, 0.9, 0.9], list("aabb"))  # no within-group spread
    assert apart["p_value"].iloc[0] == pytest.approx(0, abs=1e-12)
    with pytest.raises(ValueError, match="two groups"):
        conover_iman([1, 2, 3], list("aaa"))
    with pytest.raises(ValueError, match="more observations"):
        conover_iman([1, 2], list("ab"))


# --------------------------------------------------------------------------- analyses on hand-made unit tables
def make_units(rows: list[tuple[str, str, int, str, float, float]], difficulty: str = "easy") -> pd.DataFrame:
    """(model, layer, channel, condition, relative_depth, his) → a units-shaped table."""
    df = pd.DataFrame(rows, columns=["model", "layer", "channel", "condition", "relative_depth", "his"])
    return df.assign(difficulty=difficulty)


def test_kruskal_skips_models_with_one_unit(caplog: pytest.LogCaptureFixture) -> None:
    a, b, c = [0.9, 0.8, 0.85, 0.95], [0.5, 0.6, 0.55], [0.7]
    units = make_units([("a", "l0", i, "natural", 0.0, h) for i, h in enumerate(a)]
                       + [("b", "l0", i, "natural", 0.0, h) for i, h in enumerate(b)]
                       + [("c", "l0", 0, "natural", 0.0, c[0])]
                       + [("a", "l0", i, "synthetic", 0.0, h) for i, h in enumerate(b)])
    with caplog.at_level(logging.WARNING, logger="imi_bench.eval.report"):
        kw, pairs, notes = kruskal_conover(units)
    assert "skipped c" in caplog.text and any("skipped c" in n for n in notes)
    nat = kw[kw["condition"] == "natural"].iloc[0]
    ref = stats.kruskal(a, b)
    assert nat["H"] == pytest.approx(ref.statistic) and nat["p_value"] == pytest.approx(ref.pvalue)
    assert nat["models"] == "a, b" and nat["skipped"] == "c" and nat["n_units"] == 7
    assert np.isnan(kw.loc[kw["condition"] == "synthetic", "H"]).all()  # one model: not tested, noted
    assert any("synthetic/easy: not tested" in n for n in notes)
    assert list(pairs[["model_a", "model_b"]].itertuples(index=False, name=None)) == [("a", "b")]
    assert pairs["p_holm"].iloc[0] == pytest.approx(pairs["p_value"].iloc[0])  # one comparison: no adjustment


def test_holm_family_is_one_condition() -> None:
    rng = np.random.default_rng(1)
    rows = [(m, "l0", i, cond, 0.0, float(rng.integers(0, 11) / 10 + 0.1 * k))
            for cond in ("natural", "synthetic") for k, m in enumerate("abc") for i in range(8)]
    _, pairs, _ = kruskal_conover(make_units(rows))
    for _, grp in pairs.groupby("condition"):
        assert len(grp) == 3
        np.testing.assert_allclose(grp["p_holm"], holm(grp["p_value"].to_numpy()))


def test_depth_correlation_against_scipy() -> None:
    # model a: layers at depth 0, 0.5, 1 with HIS means 0.6, 0.7, 0.9 (two units each) → rho = 1
    rows = [("a", f"l{k}", i, "natural", d, h + (0.05 if i else -0.05))
            for k, (d, h) in enumerate([(0.0, 0.6), (0.5, 0.7), (1.0, 0.9)]) for i in range(2)]
    rows += [("b", f"l{k}", 0, "natural", d, h) for k, (d, h) in enumerate([(0.0, 0.9), (1.0, 0.6)])]
    rows += [("b", "lx", 1, "natural", np.nan, 0.5)]  # unknown depth: left out
    depth, notes = depth_correlations(make_units(rows))
    a = depth[depth["model"] == "a"].iloc[0]
    assert a["n_layers"] == 3 and a["n_units"] == 6 and a["spearman_rho"] == pytest.approx(1.0)
    assert a["p_value"] == pytest.approx(stats.spearmanr([0, 0.5, 1], [0.6, 0.7, 0.9]).pvalue)
    b = depth[depth["model"] == "b"].iloc[0]
    assert b["n_layers"] == 2 and np.isnan(b["spearman_rho"])  # < 3 layers
    assert any("unknown depth" in n for n in notes) and any("depth b/natural/easy" in n for n in notes)


def test_natural_vs_synthetic_pairs_units() -> None:
    nat = {("a", 0): 0.9, ("a", 1): 0.5, ("a", 2): 0.7, ("a", 3): 0.6, ("b", 0): 0.8, ("b", 1): 0.6, ("b", 2): 0.55}
    syn = {("a", 0): 0.8, ("a", 1): 0.55, ("a", 2): 0.75, ("b", 0): 0.7, ("b", 1): 0.5, ("b", 2): 0.6, ("b", 9): 1.0}
    rows = [(m, "l0", c, "natural", 0.0, h) for (m, c), h in nat.items()]
    rows += [(m, "l0", c, "synthetic", 0.0, h) for (m, c), h in syn.items()]
    table, _ = natural_vs_synthetic(make_units(rows))
    both = sorted(set(nat) & set(syn))
    pooled = table[table["model"] == "*"].iloc[0]
    assert pooled["n_units"] == 6
    ref = stats.spearmanr([nat[k] for k in both], [syn[k] for k in both])
    assert pooled["spearman_rho"] == pytest.approx(ref.statistic) and pooled["p_value"] == pytest.approx(ref.pvalue)
    a = table[table["model"] == "a"].iloc[0]
    assert a["n_units"] == 3 and a["spearman_rho"] == pytest.approx(stats.spearmanr([0.9, 0.5, 0.7],
                                                                                    [0.8, 0.55, 0.75]).statistic)
    assert a["natural_mean"] == pytest.approx(0.7)
    empty, notes = natural_vs_synthetic(make_units([("a", "l0", 0, "natural", 0.0, 0.5)]))
    assert empty.empty and notes


def test_markdown_table_formats() -> None:
    text = markdown_table(pd.DataFrame({"model": ["a|b"], "his": [0.71234], "p_value": [0.000123], "n": [3],
                                        "rho": [np.nan]}))
    assert text.splitlines()[2] == "| a\\|b | 0.712 | 0.000123 | 3 | – |"
    assert markdown_table(pd.DataFrame(columns=["a"])) == "_(no rows)_"


# --------------------------------------------------------------------------- whole reports
def test_report_on_toy_release(toy_release: Path, tmp_path: Path) -> None:
    release = read_release(toy_release)
    report = build_report(release, seed=3, n_resamples=500)
    pd.testing.assert_frame_equal(report.model_scores, release.model_scores(seed=3, n_resamples=500))
    assert set(report.kruskal["condition"] + "/" + report.kruskal["difficulty"]) == \
        {"natural/easy", "natural/hard", "synthetic/easy"}
    assert len(report.conover) == 1 and len(report.depth) == 4
    out = tmp_path / "out"
    before = set(os.listdir(tmp_path))
    written = report.write(out)
    assert set(os.listdir(tmp_path)) == before | {"out"}
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in written)  # no temp files left
    assert {p.name for p in written} >= {"report.md", "model_scores.csv", "kruskal.csv", "conover.csv", "depth.csv",
                                         "natural_synthetic.csv", "fig_model_his.png", "fig_depth.png",
                                         "fig_natural_vs_synthetic.png"}
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in written if p.suffix == ".png")
    pd.testing.assert_frame_equal(pd.read_csv(out / "depth.csv"), report.depth, check_dtype=False)
    md = (out / "report.md").read_text()
    assert "## 2. Kruskal–Wallis" in md and "(fig_depth.png)" in md
    assert build_report(toy_release, seed=3, n_resamples=500).to_markdown() == report.to_markdown()


def test_report_errors(tmp_path: Path, toy_release_with_images: Path) -> None:
    with pytest.raises(ImiDataError, match="no IMI release files"):
        build_report(tmp_path)
    with pytest.raises(ImiBenchError, match="n_resamples"):
        build_report(tmp_path, n_resamples=0)
    stimuli_only = tmp_path / "stim"
    shutil.copytree(toy_release_with_images / "stimuli", stimuli_only / "stimuli")
    with pytest.raises(ImiDataError, match="no response tables"):
        build_report(stimuli_only)
    (tmp_path / "file").write_text("x")
    with pytest.raises(ImiBenchError, match="not a directory"):
        build_report(toy_release_with_images, n_resamples=100).write(tmp_path / "file")


def test_cli_bad_dataset(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["report", "--dataset", str(tmp_path / "missing")]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "imi-bench: error:" in err and "neither 'imi-sim' nor a release folder" in err


@pytest.fixture(scope="module")
def tiny_study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from imi_bench.sim import generate

    return generate(tmp_path_factory.mktemp("reportsim") / "tiny", preset="tiny", seed=2, progress=False)


@pytest.mark.slow
def test_cli_report_on_tiny_study(capsys: pytest.CaptureFixture[str], tiny_study: Path, tmp_path: Path) -> None:
    release = tiny_study / "release"
    code = main(["report", "--dataset", str(release), "--out", str(tmp_path / "r"), "--seed", "1",
                 "--n-resamples", "300"])
    out, _ = capsys.readouterr()
    assert code == 0 and "## 1. Per-model mean HIS" in out and "mobilenet_v2-random" in out
    units = read_release(release).units()
    nat = units[(units["condition"] == "natural") & (units["difficulty"] == "easy")]
    ref = stats.kruskal(*[g.to_numpy() for _, g in nat.groupby("model")["his"]])
    kw = pd.read_csv(tmp_path / "r" / "kruskal.csv")
    assert kw.loc[kw["condition"] == "natural", "H"].iloc[0] == pytest.approx(ref.statistic)
    assert (tmp_path / "r" / "fig_natural_vs_synthetic.png").is_file()
    ns = pd.read_csv(tmp_path / "r" / "natural_synthetic.csv")
    assert ns.loc[ns["model"] == "mobilenet_v2", "n_units"].iloc[0] == 6  # the tiny preset's synthetic units
