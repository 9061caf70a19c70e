"""Predictors: the protocol, calibration, the unit table, every baseline on data with known structure."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.special import expit
from sklearn.base import clone

from imi_bench.errors import ImiBenchError, RegistryError
from imi_bench.predictors import Calibration, get_predictor, list_predictors, register_predictor, unit_table
from imi_bench.predictors.baselines import RandomPredictor, signed_rank_score
from imi_bench.predictors.mis import MISPredictor, mis_probability


def _table(n_units: int = 120, seed: int = 0) -> pd.DataFrame:
    """Unit rows whose latent p depends on a sparsity feature (−), SIS size (+) and depth; counts drawn."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=n_units)
    p = 0.5 + 0.45 * expit(1.5 * z)
    n = rng.integers(20, 40, n_units)
    k = rng.binomial(n, p)
    models = np.array(["mobilenet_v2", "efficientnet_lite0", "mobilenet_v2-random"])[np.arange(n_units) % 3]
    return pd.DataFrame({
        "unit_id": [f"{m}/l{i % 7}/{i}" for i, m in enumerate(models)], "model": models,
        "layer": [f"l{i % 7}" for i in range(n_units)], "channel": np.arange(n_units),
        "condition": "natural", "difficulty": "hard", "relative_depth": (np.arange(n_units) % 7) / 6,
        "n_correct": k, "n_responses": n, "his": k / n,
        "pixel_sparsity": -z + 0.3 * rng.normal(size=n_units), "channel_sparsity": rng.normal(size=n_units),
        "sis_frac_median": z + 0.5 * rng.normal(size=n_units),
        "mis_delta_mean": 0.05 * z + 0.02, "mis_delta_sd": np.full(n_units, 0.03), "p_true": p})


def test_registry_lists_every_baseline_and_suggests_names() -> None:
    names = list_predictors()
    for want in ("constant", "random", "depth", "family:imi_b4", "family:sis", "ridge", "lightgbm", "mis"):
        assert want in names
    with pytest.raises(RegistryError, match="did you mean"):
        get_predictor("ridg")
    with pytest.raises(RegistryError, match="already registered"):
        register_predictor("ridge")(RandomPredictor)


def test_calibration_is_weighted_least_squares_clipped() -> None:
    rng = np.random.default_rng(1)
    s, w = rng.normal(size=50), rng.uniform(1, 5, 50)
    y = 0.75 + 0.05 * s + 0.01 * rng.normal(size=50)
    cal = Calibration().fit(s, y, w)
    b, a = np.polyfit(s, y, 1, w=np.sqrt(w))  # polyfit weights multiply residuals: sqrt of WLS weights
    assert cal.b_ == pytest.approx(b) and cal.a_ == pytest.approx(a)
    out = cal(np.array([-100.0, 0.0, 100.0, np.nan]))
    assert out[0] == 0.5 and out[2] == pytest.approx(1 - 1e-6) and out[3] == pytest.approx(np.clip(cal.mean_, .5, 1))


def test_signed_rank_score_learns_the_sign() -> None:
    t = _table()
    train, test = t.iloc[:80], t.iloc[80:]
    _, score, signs = signed_rank_score(train, train["his"].to_numpy(), test, ["pixel_sparsity", "sis_frac_median"])
    assert signs == {"pixel_sparsity": -1.0, "sis_frac_median": 1.0}
    assert stats.spearmanr(score, test["p_true"]).statistic > 0.6


@pytest.mark.parametrize("name", ["family:imi_b4", "family:sis", "ridge", "lightgbm", "depth", "mis"])
def test_baselines_fit_and_predict_probabilities(name: str) -> None:
    t = _table(240)
    train, test = t.iloc[:160], t.iloc[160:]
    est = get_predictor(name)
    fitted = clone(est).fit(train, train["his"], train["n_responses"])
    p = fitted.predict(test)
    assert p.shape == (80,) and ((p >= 0.5) & (p < 1)).all()
    rho = stats.spearmanr(p, test["p_true"]).statistic
    if name != "depth":  # depth carries no signal in this table
        assert rho > 0.5, (name, rho)


def test_constant_and_random() -> None:
    t = _table()
    c = get_predictor("constant").fit(t, t["his"], t["n_responses"])
    assert c.predict(t[:3]).tolist() == [pytest.approx(t["n_correct"].sum() / t["n_responses"].sum())] * 3
    r = get_predictor("random", seed=3).fit(t, t["his"])
    a = r.predict(t)
    b = r.predict(t.iloc[::-1])[::-1]
    np.testing.assert_array_equal(a, b)  # depends on the row's identity, not its position
    assert not np.array_equal(a, get_predictor("random", seed=4).predict(t))
    assert ((a >= 0.5) & (a < 1)).all()


def test_mis_probability_and_alpha_recovery() -> None:
    assert mis_probability(7.0, np.array([0.0]), np.array([0.0]))[0] == pytest.approx(0.5)
    np.testing.assert_allclose(mis_probability(5.0, np.array([0.2, -0.1]), np.zeros(2)), expit([1.0, -0.5]))
    # E[σ(αΔ)] over N(μ, σ²) vs Monte Carlo
    draws = np.random.default_rng(0).normal(0.1, 0.2, 400_000)
    assert mis_probability(6.0, np.array([0.1]), np.array([0.2]))[0] == pytest.approx(expit(6 * draws).mean(),
                                                                                        abs=2e-3)
    rng = np.random.default_rng(5)
    mean, sd = rng.uniform(-0.05, 0.3, 600), rng.uniform(0.0, 0.1, 600)
    n = np.full(600, 60)
    k = rng.binomial(n, mis_probability(12.0, mean, sd))
    X = pd.DataFrame({"mis_delta_mean": mean, "mis_delta_sd": sd})  # noqa: N806
    fitted = MISPredictor().fit(X, k / n, n)
    assert fitted.alpha_ == pytest.approx(12.0, rel=0.1)
    with pytest.raises(ImiBenchError, match="mis_delta_mean"):
        MISPredictor().fit(X.drop(columns="mis_delta_mean"), k / n, n)


def test_unit_table_joins_features_and_metadata() -> None:
    units = _table(6)[["unit_id", "model", "layer", "channel", "condition", "difficulty", "n_correct",
                       "n_responses", "his", "relative_depth"]]
    feats = units[["model", "layer", "channel"]].assign(pixel_sparsity=np.arange(6.0))  # pool source: no condition
    t = unit_table(units, feats)
    assert t["pixel_sparsity"].tolist() == list(np.arange(6.0))
    assert t.loc[t["model"] == "mobilenet_v2-random", "trained"].eq(False).all()
    assert set(t["arch"]) == {"cnn"}
    with pytest.raises(ImiBenchError, match="duplicate"):
        unit_table(units, pd.concat([feats, feats.iloc[:1]]))
    with pytest.raises(ImiBenchError, match="matches none"):
        unit_table(units, feats.assign(model="other"))


def test_unknown_family_and_missing_columns() -> None:
    t = _table()
    with pytest.raises(ImiBenchError, match="none of its feature columns"):
        get_predictor("family:lesion").fit(t, t["his"], t["n_responses"])
    from imi_bench.predictors import feature_columns

    with pytest.raises(ImiBenchError, match="unknown feature families"):
        feature_columns(t, ["nope"])
