"""Evaluation statistics: metrics against scipy/sklearn, bootstrap coverage, paired tests, rank intervals."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import special, stats
from sklearn.metrics import mean_absolute_error, r2_score

from imi_bench.errors import ImiBenchError
from imi_bench.eval import bootstrap as bs
from imi_bench.eval import metrics as M  # noqa: N812
from imi_bench.eval.compare import compare, rank_intervals


def _sig(x: np.ndarray) -> np.ndarray:
    return 0.5 + 0.5 / (1.0 + np.exp(-x))


def _population(rng: np.random.Generator, n_units: int, gap: float = 0.0):
    """Units with 1–3 rows each; two predictors of p(correct) (``b`` is noisier by ``gap``)."""
    sizes = rng.integers(1, 4, n_units)
    cluster = np.repeat(np.arange(n_units), sizes)
    rows = len(cluster)
    u = rng.normal(size=n_units)[cluster]
    n = rng.integers(20, 41, size=rows)
    k = rng.binomial(n, _sig(0.5 + u + 0.5 * rng.normal(size=rows)))
    a = _sig(0.5 + u + 0.8 * rng.normal(size=n_units)[cluster] + 0.3 * rng.normal(size=rows))
    b = _sig(0.5 + u + (0.8 + gap) * rng.normal(size=n_units)[cluster] + 0.3 * rng.normal(size=rows))
    return a, b, k, n, cluster


def _scipy(name: str, x: np.ndarray, y: np.ndarray) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy warns on constant input; we compare NaN with NaN
        if name == "spearman":
            return float(stats.spearmanr(x, y)[0])
        if name == "kendall":
            return float(stats.kendalltau(x, y, variant="b")[0])
        if name == "pearson":
            return float(stats.pearsonr(x, y)[0]) if len(x) > 1 else float("nan")
        if name == "r2":
            return float(r2_score(y, x)) if len(x) > 1 and np.ptp(y) > 0 else float("nan")
        return float(mean_absolute_error(y, x))


PAIR_METRICS = ("spearman", "kendall", "pearson", "r2", "mae")


# ---------------------------------------------------------------- point metrics


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("size", [2, 3, 7, 64, 333, 2000])
def test_point_metrics_equal_scipy_and_sklearn(size: int, ties: bool) -> None:
    rng = np.random.default_rng(size + 1000 * ties)
    x, y = rng.normal(size=size), rng.uniform(0.5, 1.0, size=size)
    if ties:
        x, y = np.round(x * 2) / 2, np.round(y * 10) / 10
    for name in PAIR_METRICS:
        assert getattr(M, name)(x, y) == pytest.approx(_scipy(name, x, y), abs=1e-12, nan_ok=True), name


def test_constant_inputs_give_nan_without_warnings() -> None:
    x, y = np.arange(6.0), np.full(6, 0.7)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for name in ("spearman", "kendall", "pearson"):
            assert np.isnan(getattr(M, name)(x, y)) and np.isnan(getattr(M, name)(y, x)), name
        assert np.isnan(M.r2(x, y)) and M.r2(y, x) == pytest.approx(r2_score(x, y))  # only a constant y is undefined
        assert np.isnan(M.spearman([1.0], [2.0]))
        assert np.isnan(M.kendall_batch(np.ones((3, 5)), np.ones((3, 5)))).all()
        assert M.mae(x, y) == pytest.approx(mean_absolute_error(y, x))


def test_loglik_equals_binomial_log_pmf_without_coefficients() -> None:
    rng = np.random.default_rng(3)
    n = rng.integers(1, 200, size=500)
    p = rng.uniform(0.5, 1.0, size=500)
    k = rng.binomial(n, rng.uniform(0.4, 1.0, size=500))
    pred = np.where(rng.random(500) < 0.1, rng.uniform(-1, 2, size=500), p)  # some need clipping
    clipped = np.clip(pred, 0.5, 1 - 1e-6)
    log_coef = special.gammaln(n + 1) - special.gammaln(k + 1) - special.gammaln(n - k + 1)
    expected = (stats.binom.logpmf(k, n, clipped) - log_coef).sum() / n.sum()
    assert M.loglik(pred, k, n) == pytest.approx(expected, rel=1e-10)
    assert M.loglik(np.ones(3), [5, 5, 5], [5, 5, 5]) == pytest.approx(np.log(1 - 1e-6))  # p = 1 is clipped


def test_model_rank_tau_and_worst_model_hand_worked() -> None:
    # model A: mean pred 0.2, mean y (0.6 + 0.8) / 2 = 0.7
    # model B: mean pred 0.5, mean y 0.9
    # model C: mean pred 0.4, mean y (1/2 + 8/10) / 2 = 0.65 (pooled responses would give 9/12 = 0.75)
    # pairs: A<B pred & y (concordant), A<C pred but A>C y (discordant), B>C both (concordant) → τ = 1/3
    pred = np.array([0.1, 0.3, 0.5, 0.3, 0.5])
    k, n = np.array([6, 8, 9, 1, 8]), np.array([10, 10, 10, 2, 10])
    model = np.array(["A", "A", "B", "C", "C"])
    assert M.model_rank_tau(pred, k / n, model) == pytest.approx(1 / 3)
    assert M.point_metrics(pred, k, n, model)["model_rank_tau"] == pytest.approx(1 / 3)
    # per model: A (2 rows) ρ = 1, C ρ = 1, B has one row (undefined); flip C → worst is C with ρ = -1
    assert M.worst_model(pred, k / n, model) == (1.0, "A")
    assert M.worst_model(np.array([0.1, 0.3, 0.5, 0.5, 0.3]), k / n, model) == (-1.0, "C")


def test_point_metrics_every_metric_and_directions() -> None:
    rng = np.random.default_rng(5)
    a, _, k, n, cluster = _population(rng, 40)
    model = np.array(["m1", "m2", "m3"])[cluster % 3]
    out = M.point_metrics(a, k, n, model)
    assert tuple(out) == M.METRICS
    y = k / n
    for name in PAIR_METRICS:
        assert out[name] == pytest.approx(_scipy(name, a, y), abs=1e-12)
    per_model = [_scipy("spearman", a[model == m], y[model == m]) for m in ("m1", "m2", "m3")]
    assert out["worst_model"] == pytest.approx(min(per_model))
    assert all(np.isnan(v) for key, v in M.point_metrics(a, k, n).items() if key in M.MODEL_METRICS)
    assert set(M.HIGHER_IS_BETTER) == set(M.METRICS) and not M.HIGHER_IS_BETTER["mae"]
    assert M.HIGHER_IS_BETTER["loglik"] and M.HIGHER_IS_BETTER["spearman"]


def test_ceiling_normalised() -> None:
    assert M.ceiling_normalised(0.45, 0.81) == pytest.approx(0.5)
    assert np.isnan(M.ceiling_normalised(0.3, 0.0)) and np.isnan(M.ceiling_normalised(0.3, -0.2))


def test_bad_rows_raise() -> None:
    with pytest.raises(ImiBenchError, match="k must lie"):
        M.point_metrics([0.6, 0.7], [3, 5], [4, 4])
    with pytest.raises(ImiBenchError, match="n must be"):
        M.point_metrics([0.6, 0.7], [0, 0], [0, 4])
    with pytest.raises(ImiBenchError, match="differ in length"):
        M.point_metrics([0.6, 0.7, 0.8], [1, 2], [4, 4])
    with pytest.raises(ImiBenchError, match="non-finite"):
        M.spearman([0.6, np.nan], [1, 2])
    with pytest.raises(ImiBenchError, match="unknown metric"):
        M.batch_metric("auc", np.ones((1, 3)), np.ones((1, 3)), np.ones((1, 3)))


# ---------------------------------------------------------------- batch kernels


@pytest.mark.parametrize("ties", [False, True])
def test_batch_versions_equal_point_versions_row_by_row(ties: bool) -> None:
    rng = np.random.default_rng(11 + ties)
    x, y = rng.normal(size=(25, 57)), rng.uniform(0.5, 1.0, size=(25, 57))
    if ties:
        x, y = np.round(x), np.round(y * 8) / 8
    x[3], y[4] = 1.0, 0.75  # constant rows
    n = rng.integers(1, 60, size=x.shape)
    k = rng.binomial(n, 0.8)
    mask = rng.random(x.shape) < 0.7
    mask[7, 2:] = False  # a row with two valid entries
    for name in PAIR_METRICS:
        batch, masked = getattr(M, f"{name}_batch")(x, y), getattr(M, f"{name}_batch")(x, y, mask)
        for i in range(len(x)):
            assert batch[i] == pytest.approx(getattr(M, name)(x[i], y[i]), abs=1e-12, nan_ok=True), (name, i)
            assert batch[i] == pytest.approx(_scipy(name, x[i], y[i]), abs=1e-12, nan_ok=True), (name, i)
            sub = _scipy(name, x[i][mask[i]], y[i][mask[i]])
            assert masked[i] == pytest.approx(sub, abs=1e-12, nan_ok=True), (name, i, "masked")
    p = np.clip(np.abs(x), 0, 1)
    ll, ll_masked = M.loglik_batch(p, k, n), M.loglik_batch(p, k, n, mask)
    for i in range(len(x)):
        assert ll[i] == pytest.approx(M.loglik(p[i], k[i], n[i]), rel=1e-12)
        assert ll_masked[i] == pytest.approx(M.loglik(p[i][mask[i]], k[i][mask[i]], n[i][mask[i]]), rel=1e-12)


def test_average_ranks_equal_scipy_rankdata() -> None:
    a = np.random.default_rng(2).integers(0, 6, size=(4, 30)).astype(float)
    np.testing.assert_array_equal(M.average_ranks(a), stats.rankdata(a, axis=1))


# ---------------------------------------------------------------- bootstrap


def test_resample_keeps_units_whole_and_counts() -> None:
    rng = np.random.default_rng(0)
    _, _, k, n, cluster = _population(rng, 30)
    codes, labels = M.codes_of(cluster, "cluster", len(k))
    n_clusters = len(labels)
    sizes = np.bincount(codes)
    for rep in bs.resample(k, n, codes, n_clusters, 20, seed=1):
        for i in range(rep.rows.shape[0]):
            rows = rep.rows[i][rep.mask[i]]
            drawn = np.bincount(codes[rows], minlength=n_clusters)
            assert (drawn % sizes == 0).all()  # whole units only
            assert (drawn // sizes).sum() == n_clusters  # as many units as the data has
            np.testing.assert_array_equal(rep.k[i][rep.mask[i]], k[rows])
    rep = next(bs.resample(k, n, codes, n_clusters, 400, seed=1, resample_responses=True))
    rows, kk = rep.rows[rep.mask], rep.k[rep.mask]
    assert (kk <= n[rows]).all() and not (kk == k[rows]).all()
    assert kk.sum() / k[rows].sum() == pytest.approx(1.0, abs=0.01)  # Binomial(n, k/n) is unbiased for k


def test_bootstrap_does_not_depend_on_chunking(monkeypatch: pytest.MonkeyPatch) -> None:
    a, _, k, n, cluster = _population(np.random.default_rng(1), 50)
    kwargs = dict(cluster=cluster, metrics=("spearman", "kendall", "loglik"), n_boot=40, seed=3,
                  resample_responses=True)
    whole = bs.hierarchical_bootstrap(a, k, n, **kwargs)
    monkeypatch.setattr(bs, "CHUNK_ELEMENTS", 3 * len(a))
    chunked = bs.hierarchical_bootstrap(a, k, n, **kwargs)
    for m in kwargs["metrics"]:  # the same resamples; sums over differently padded rows round differently
        np.testing.assert_allclose(whole.replicates[m], chunked.replicates[m], rtol=1e-13, atol=1e-15)
    point = M.point_metrics(a, k, n)
    assert whole.estimate == {m: point[m] for m in kwargs["metrics"]}


@pytest.mark.parametrize("ties", [False, True])
def test_copy_count_replicates_equal_expanded_replicates(monkeypatch: pytest.MonkeyPatch, ties: bool) -> None:
    """Kept responses are scored as copy counts of the original rows; the padded, expanded path must agree."""
    a, _, k, n, cluster = _population(np.random.default_rng(12), 70)
    a = np.round(a, 1) if ties else a
    model = np.array(["m1", "m2", "m3"])[cluster % 3]
    kwargs = dict(cluster=cluster, model=model, metrics=M.METRICS, n_boot=60, seed=4)
    counts = bs.replicate_metrics([a, a[::-1].copy()], k, n, **kwargs)
    monkeypatch.setattr(bs, "COUNTS_MAX_ROWS", 0)
    expanded = bs.replicate_metrics([a, a[::-1].copy()], k, n, **kwargs)
    assert np.isfinite(expanded).all()
    np.testing.assert_allclose(counts, expanded, rtol=1e-10, atol=1e-12)


def test_bootstrap_model_metrics_and_frame() -> None:
    a, _, k, n, cluster = _population(np.random.default_rng(2), 60)
    model = np.array(["m1", "m2", "m3", "m4"])[cluster % 4]
    res = bs.hierarchical_bootstrap(a, k, n, cluster=cluster, model=model, metrics=M.METRICS, n_boot=100, seed=0)
    frame = res.to_frame()
    assert list(frame["metric"]) == list(M.METRICS)
    assert (frame["ci_low"] <= frame["ci_high"]).all() and (frame["n_undefined"] == 0).all()
    assert res.estimate["worst_model"] == M.worst_model(a, k / n, model).value
    with pytest.raises(ImiBenchError, match="need the model"):
        bs.hierarchical_bootstrap(a, k, n, cluster=cluster, metrics=("worst_model",), n_boot=10, seed=0)


@pytest.mark.slow
def test_bootstrap_interval_covers_the_population_value() -> None:
    """400 simulated evaluations (~80 units, ~160 rows): 95% intervals cover the truth 95% ± 3 points."""
    rng = np.random.default_rng(20240601)
    big, _, k_big, n_big, _ = _population(rng, 300_000)
    y = k_big / n_big
    truth = {name: _scipy(name, big, y) for name in PAIR_METRICS}
    truth["loglik"] = float((k_big * np.log(big) + (n_big - k_big) * np.log1p(-big)).sum() / n_big.sum())
    runs, hits = 400, dict.fromkeys(truth, 0)
    for _ in range(runs):
        a, _, k, n, cluster = _population(rng, 80)
        res = bs.hierarchical_bootstrap(a, k, n, cluster=cluster, metrics=tuple(truth), n_boot=200, seed=rng)
        for m in truth:
            hits[m] += res.ci_low[m] <= truth[m] <= res.ci_high[m]
    coverage = {m: h / runs for m, h in hits.items()}
    assert all(0.92 <= c <= 0.98 for c in coverage.values()), coverage


def test_response_resampling_counts_response_noise_twice() -> None:
    """The opt-in binomial stage shrinks correlations: replicates centre below the estimate (documented bias)."""
    rng = np.random.default_rng(4)
    a, _, k, n, cluster = _population(rng, 400)
    n_small = np.full(len(k), 10)
    k_small = rng.binomial(n_small, k / n)
    kw = dict(cluster=cluster, metrics=("spearman",), n_boot=300, seed=0)
    plain = bs.hierarchical_bootstrap(a, k_small, n_small, **kw)
    double = bs.hierarchical_bootstrap(a, k_small, n_small, resample_responses=True, **kw)
    se = plain.replicates["spearman"].std()
    assert abs(plain.replicates["spearman"].mean() - plain.estimate["spearman"]) < 0.5 * se
    assert double.estimate["spearman"] - double.replicates["spearman"].mean() > 1.5 * se


# ---------------------------------------------------------------- paired comparison and ranks


@pytest.mark.slow
def test_paired_tests_hold_their_level_under_the_null() -> None:
    """Two exchangeable predictors: both p-values reject at α = 0.05 at a binomially plausible rate."""
    rng = np.random.default_rng(7)
    runs = 300
    rejected = np.zeros(2)
    for _ in range(runs):
        a, b, k, n, cluster = _population(rng, 50)
        c = compare(a, b, k, n, cluster=cluster, metric="spearman", n_boot=200, n_perm=200, seed=rng)
        rejected += [c.p_bootstrap < 0.05, c.p_permutation < 0.05]
    low, high = stats.binom.interval(0.998, runs, 0.05)
    assert ((rejected >= low) & (rejected <= high)).all(), rejected / runs


@pytest.mark.parametrize("metric", ["spearman", "mae"])
def test_paired_tests_detect_a_clearly_better_predictor(metric: str) -> None:
    a, b, k, n, cluster = _population(np.random.default_rng(8), 150, gap=2.5)
    c = compare(a, b, k, n, cluster=cluster, metric=metric, n_boot=500, n_perm=500, seed=0)
    assert c.a == pytest.approx(getattr(M, metric)(a, k / n)) and c.diff == pytest.approx(c.a - c.b)
    better = c.diff > 0 if M.HIGHER_IS_BETTER[metric] else c.diff < 0
    assert better and c.p_bootstrap < 0.05 and c.p_permutation < 0.05
    assert not c.ci_low <= 0 <= c.ci_high


def test_compare_refuses_entries_of_different_rows() -> None:
    a, b, k, n, cluster = _population(np.random.default_rng(9), 20)
    with pytest.raises(ImiBenchError, match="same held-out unit rows"):
        compare(a, b[:-1], k, n, cluster=cluster, seed=0)


def test_rank_intervals_sanity() -> None:
    rng = np.random.default_rng(10)
    a, b, k, n, cluster = _population(rng, 150, gap=2.5)
    y = k / n
    preds = {"oracle": y + 1e-3 * rng.normal(size=len(y)), "good": a, "good_copy": a.copy(), "weak": b,
             "noise": rng.normal(size=len(y))}
    frame = rank_intervals(preds, k, n, cluster=cluster, n_boot=300, seed=0)
    assert isinstance(frame, pd.DataFrame) and list(frame.columns) == ["entry", "estimate", "rank", "rank_low",
                                                                        "rank_high"]
    by = frame.set_index("entry")
    assert by.loc["oracle", ["rank", "rank_low", "rank_high"]].tolist() == [1, 1, 1]
    assert by.loc["good", "rank"] == by.loc["good_copy", "rank"] == 2  # ties share the better rank
    assert by.loc["good", "rank_high"] == 2 and by.loc["noise", "rank"] == 5
    assert (frame["rank_low"] <= frame["rank"]).all() and (frame["rank"] <= frame["rank_high"]).all()
    assert by.loc["weak", "estimate"] == pytest.approx(M.spearman(b, y))
    mae_frame = rank_intervals(preds, k, n, cluster=cluster, metric="mae", n_boot=50, seed=0).set_index("entry")
    assert mae_frame.loc["oracle", "rank"] == 1  # lower MAE is better


def test_stratified_compare_and_ranks_are_fold_averages() -> None:
    from imi_bench.eval.compare import compare, rank_intervals
    from imi_bench.eval.metrics import spearman

    rng = np.random.default_rng(11)
    n_rows = 120
    fold = np.repeat(["a", "b", "c"], [30, 40, 50])
    k_n = rng.integers(20, 40, n_rows)
    p = rng.uniform(0.5, 1, n_rows)
    k = rng.binomial(k_n, p)
    y = k / k_n
    pa, pb = p + rng.normal(0, 0.05, n_rows), p + rng.normal(0, 0.2, n_rows)
    pb[fold == "a"] = 0.7  # constant within a fold: correlation 0 there
    w = np.array([30, 40, 50]) / 120
    want_a = sum(wi * spearman(pa[fold == f], y[fold == f]) for wi, f in zip(w, "abc", strict=True))
    want_b = w[1] * spearman(pb[fold == "b"], y[fold == "b"]) + w[2] * spearman(pb[fold == "c"], y[fold == "c"])
    c = compare(pa, pb, k, k_n, cluster=np.arange(n_rows), strata=fold, n_boot=200, n_perm=200, seed=0)
    assert c.a == pytest.approx(want_a) and c.b == pytest.approx(want_b)
    ranks = rank_intervals({"a": pa, "b": pb}, k, k_n, cluster=np.arange(n_rows), strata=fold, n_boot=200, seed=0)
    assert ranks.set_index("entry")["estimate"].to_dict() == pytest.approx({"a": want_a, "b": want_b})
