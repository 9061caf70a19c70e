"""Lesions: percentile / effect / Fisher oracles, class statistics, the toy network, split = hook engines."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats
from torch import nn

from imi_bench.errors import ImiBenchError
from imi_bench.featurize import Featurizer
from imi_bench.featurize.families.lesion import (
    activation_clusters,
    apply_lesion,
    class_stats,
    effect2x,
    fisher_statistic,
    percentile,
)
from imi_bench.models import LayerSpec, ModelAdapter, Preprocessing, get_model
from imi_bench.stimuli import ArrayPool


# --------------------------------------------------------------------------- reference §6.7
def test_percentile_oracles() -> None:
    assert percentile(-1.0, [0.0] * 19, "left") == pytest.approx(0.05)
    assert percentile(1.0, [0.0] * 19, "left") == pytest.approx(1.0)
    assert percentile(1.0, [0.0] * 19, "right") == pytest.approx(0.05)
    assert percentile(0.5, [0.0, 1.0, np.nan], "left") == pytest.approx(2 / 4)  # NaN counts as neither
    assert np.isnan(percentile(np.nan, [1.0], "left")) and np.isnan(percentile(1.0, [], "left"))


def test_effect2x_oracles() -> None:
    assert effect2x(-0.2, -0.2, "accuracy") == pytest.approx(1.0)
    assert effect2x(-0.3, -0.1, "accuracy") == pytest.approx(1.5)  # x = 3μ, both negative
    assert effect2x(0.3, -0.1, "accuracy") == 0.0  # accuracy: only when both are negative
    assert effect2x(3.0, 1.0, "range") == pytest.approx(1.5)
    assert effect2x(0.0, 0.0, "range") == 0.0  # NaN → 0


def test_fisher_statistic_under_uniform_ranks() -> None:
    p = np.arange(1, 21) / 20
    assert fisher_statistic(p, 19) == pytest.approx(0.98278, abs=5e-6)
    shifted = p - 1 / 40  # the same shift, through scipy's combined test statistic: 2·n·F
    assert stats.combine_pvalues(shifted, method="fisher").statistic == pytest.approx(2 * 20 * fisher_statistic(p, 19))


def test_class_stats_by_hand() -> None:
    labels = np.array([0, 0, 1, 1, 1, 2])
    base = np.ones(6)
    after = np.array([[0, 1, 1, 1, 1, 1], [1, 1, 0, 0, 0, 0]], dtype=float)
    logp0 = np.log(np.full(6, 0.5))
    logp = np.log(np.array([[0.25, 0.5, 0.5, 0.5, 0.5, 0.5], [0.5] * 6]))
    got = class_stats(labels, base, logp0, after, logp)
    # lesion 0: Δ = (−0.5, 0, 0), mean −1/6, scaled (3, 0, 0) → range 3
    # lesion 1: Δ = (0, −1, −1), mean −2/3, scaled (0, 1.5, 1.5) → range 1.5
    np.testing.assert_allclose(got["acc"], [-1 / 6, -2 / 3])
    np.testing.assert_allclose(got["range"], [3.0, 1.5])
    np.testing.assert_allclose(got["logit"], [np.log(2) / 2 / 3, 0.0])
    unchanged = class_stats(labels, base, logp0, base[None], logp0[None])
    assert unchanged["acc"][0] == 0 and np.isnan(unchanged["range"][0])


def test_apply_lesion_layouts() -> None:
    x = torch.arange(24.0).view(2, 3, 2, 2)
    mask = torch.tensor([False, True, False])
    out = apply_lesion(x, "NCHW", mask)
    assert (out[:, 1] == 0).all() and torch.equal(out[:, [0, 2]], x[:, [0, 2]])
    nhwc = apply_lesion(x.permute(0, 2, 3, 1), "NHWC", mask)
    torch.testing.assert_close(nhwc.permute(0, 3, 1, 2), out)
    tokens = torch.randn(2, 5, 3)
    nld = apply_lesion(tokens, "NLD", mask, fill=torch.tensor([0.0, 7.0, 0.0]))
    assert (nld[..., 1] == 7).all() and torch.equal(nld[..., 0], tokens[..., 0])
    per_sample = apply_lesion(x, "NCHW", torch.tensor([[True, False, False], [False, False, True]]))
    assert (per_sample[0, 0] == 0).all() and (per_sample[1, 2] == 0).all() and (per_sample[1, 0] != 0).any()


def test_activation_clusters_recover_two_groups() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(200, 1)), rng.normal(size=(200, 1))
    acts = np.hstack([a + 0.1 * rng.normal(size=(200, 4)), b + 0.1 * rng.normal(size=(200, 4))])
    labels = activation_clusters(acts, 2, seed=0)
    assert len(set(labels[:4])) == 1 and len(set(labels[4:])) == 1 and labels[0] != labels[4]


# --------------------------------------------------------------------------- the toy network
class _Toy(nn.Module):
    """conv 1×1: ch0 = R, ch1 = R (the class-A evidence), ch2 = ch3 = B (duplicated class-B evidence)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 1, bias=False)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(4, 2)
        with torch.no_grad():
            self.conv.weight.copy_(torch.tensor([[1.0, 0, 0], [1, 0, 0], [0, 0, 1], [0, 0, 1]]).view(4, 3, 1, 1))
            self.head.weight.copy_(torch.tensor([[2.0, 4, 0, 0], [0, 0, 2, 2]]))
            self.head.bias.copy_(torch.tensor([-2.0, -2.0]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.conv(x)).flatten(1))


def _toy_data(n: int = 40, seed: int = 0) -> ArrayPool:
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for i in range(2 * n):
        img = np.zeros((8, 8, 3), dtype=np.uint8)
        if i % 2 == 0:  # class A: red, with a random amount of blue
            img[..., 0], img[..., 2] = 255, int(rng.integers(0, 256))
        else:  # class B: blue, with a little red
            img[..., 2], img[..., 0] = 255, int(rng.integers(0, 60))
        images.append(img)
        labels.append(i % 2)
    meta = pd.DataFrame({"image_id": [str(i) for i in range(2 * n)], "source": "memory", "licence": "unknown",
                         "label": labels})
    return ArrayPool(images, meta)


def _toy_adapter() -> ModelAdapter:
    prep = Preprocessing(resize=8, crop=8, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
    return ModelAdapter("toy", _Toy().eval(), prep, [LayerSpec("conv", "conv")], weights="random")


@pytest.mark.parametrize("engine", ["split", "hook"])
def test_toy_lesion_class_range_and_redundancy(engine: str) -> None:
    units = pd.DataFrame({"layer": ["conv", "conv"], "channel": [1, 3]})
    table = Featurizer(_toy_adapter(), ["lesion"], progress=False,
                       params={"lesion": {"n_images": 80, "n_random": 3, "engine": engine}}).run(units, _toy_data())
    a, dup = table.iloc[0], table.iloc[1]
    # lesioning ch1 leaves class A at chance (blue > 1/2 wins) and class B untouched
    assert -0.35 < a["lesion_acc_drop"] < -0.15
    assert a["lesion_class_range"] == pytest.approx(2.0)
    assert a["lesion_logit_drop"] > 0
    assert dup["lesion_acc_drop"] == 0.0 and np.isnan(dup["lesion_class_range"])  # the duplicate is redundant
    assert a["lesion_acc_pct"] == pytest.approx(1 / 4)  # stronger than its 3 controls (ch0, ch2, ch3)


def test_split_and_hook_engines_agree_on_a_residual_network() -> None:
    adapter = get_model("mobilenet_v2-random")
    rng = np.random.default_rng(0)
    pool = ArrayPool([rng.integers(0, 256, (64, 64, 3), dtype=np.uint8) for _ in range(6)])
    units = pd.DataFrame({"layer": ["features_2_conv_0_0", "features_3", "features_16_conv_2"],
                          "channel": [3, 5, 7]})
    params = {"n_images": 6, "n_random": 2, "mode": "mean"}
    split = Featurizer(adapter, ["lesion"], progress=False, batch_size=8,
                       params={"lesion": {**params, "engine": "split"}}).run(units, pool)
    hook = Featurizer(adapter, ["lesion"], progress=False, batch_size=8,
                      params={"lesion": {**params, "engine": "hook"}}).run(units, pool)
    cols = ["lesion_acc_drop", "lesion_class_range", "lesion_acc_pct", "lesion_range_pct"]
    pd.testing.assert_frame_equal(split[cols], hook[cols])
    np.testing.assert_allclose(split["lesion_logit_drop"], hook["lesion_logit_drop"], rtol=1e-3, atol=1e-5)


def test_cluster_lesion_and_bad_parameters() -> None:
    adapter = get_model("tiny-cnn", seed=2)
    rng = np.random.default_rng(1)
    pool = ArrayPool([rng.integers(0, 256, (40, 40, 3), dtype=np.uint8) for _ in range(16)])
    units = pd.DataFrame({"layer": ["features_4", "features_4"], "channel": [0, 5]})
    table = Featurizer(adapter, ["lesion"], progress=False,
                       params={"lesion": {"n_images": 16, "cluster": True, "n_clusters": 3}}).run(units, pool)
    assert table["lesion_cluster_acc_drop"].notna().any()
    assert table["lesion_acc_pct"].between(0, 1).all()
    with pytest.raises(ImiBenchError, match="mode"):
        Featurizer(adapter, ["lesion"], progress=False, params={"lesion": {"mode": "noise"}}).run(units, pool)
