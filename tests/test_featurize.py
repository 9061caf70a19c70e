"""Featurizer: reference oracles (IMI B.4, classical sparseness, MIS), hook-path equivalence, caching, resume."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from imi_bench.cli import main
from imi_bench.errors import ImiBenchError, ImiDataError, RegistryError
from imi_bench.featurize import FAMILIES, CustomFamily, FeatureContext, Featurizer, StimuliSource, register_family
from imi_bench.featurize.families.activation import (
    IMIB4,
    Sparseness,
    gini,
    hoyer,
    kurtosis,
    local_contrast,
    treves_rolls,
)
from imi_bench.featurize.families.mis import mis_from_embeddings
from imi_bench.models import LayerSpec, ModelAdapter, Preprocessing, get_model
from imi_bench.stimuli import ArrayPool


def _pool(n: int = 48, seed: int = 0, size: int = 40) -> ArrayPool:
    rng = np.random.default_rng(seed)
    return ArrayPool([rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for _ in range(n)])


UNITS = pd.DataFrame({"layer": ["features_1", "features_3", "features_3_bn2", "features_5"], "channel": [0, 1, 2, 3]})


# --------------------------------------------------------------------------- reference oracles
@pytest.mark.parametrize(("a", "want"), [
    (torch.ones(7, 7), 28 / 49), (torch.ones(14, 14), 56 / 196), (torch.zeros(7, 7).index_put_(
        (torch.tensor(3), torch.tensor(3)), torch.tensor(1.0)), 8 / 49),
    (torch.zeros(7, 7).index_put_((torch.tensor(0), torch.tensor(0)), torch.tensor(1.0)), 6 / 49),
    ((torch.arange(4)[:, None] + torch.arange(4)[None]).remainder(2).float() * 2 - 1, 7.0),
])
def test_local_contrast_oracles(a: torch.Tensor, want: float) -> None:
    assert local_contrast(a[None, None]).item() == pytest.approx(want, rel=1e-6)


def test_local_contrast_scaling_and_tokens() -> None:
    a = torch.randn(2, 3, 5, 6)
    torch.testing.assert_close(local_contrast(3 * a), 3 * local_contrast(a))
    torch.testing.assert_close(local_contrast(-a), local_contrast(a))
    assert torch.isnan(local_contrast(torch.randn(2, 3, 10))).all()


@pytest.mark.parametrize(("v", "want"), [
    (torch.eye(10)[3], (1.0, 1.0, 0.9, 5.1111)), (torch.ones(10), (0.0, 0.0, 0.0, float("nan"))),
    (torch.tensor([1.0, 1, 0, 0]), (0.6667, 0.5858, 0.5, -2.0)),
])
def test_classical_sparseness_oracles(v: torch.Tensor, want: tuple[float, ...]) -> None:
    got = [float(f(v)) for f in (treves_rolls, hoyer, gini, kurtosis)]
    np.testing.assert_allclose(got, want, atol=1e-4)


def _identity_adapter() -> ModelAdapter:
    return ModelAdapter("identity", nn.Sequential(nn.Identity()), Preprocessing(resize=8, crop=8, mean=(0, 0, 0),
                                                                                 std=(1, 1, 1)),
                        [LayerSpec("x", "0", kind="block")], weights="none")


def test_sparsity_oracles_through_the_featurizer() -> None:
    adapter = _identity_adapter()
    maps = torch.stack([torch.full((3, 8, 8), -1.0), torch.full((3, 8, 8), -1.0).index_put_(
        (torch.tensor(1), torch.tensor(2), torch.tensor(2)), torch.tensor(1.0)), torch.zeros(3, 8, 8)])
    stats = {"nonpos": [], "max": []}
    for m in maps:  # per-image oracle values, computed with the family's reducers
        for k in stats:
            stats[k].append(IMIB4().reducers()[k](m[None])[0].numpy())
    assert stats["nonpos"][0][0] == 1.0 and stats["max"][0][0] <= 0  # all −1: PS = CS = 1
    assert stats["max"][1][1] > 0  # one positive value: CS = 0 for that channel
    assert stats["nonpos"][2][0] == 1.0 and stats["max"][2][0] <= 0  # all zero counts as non-positive
    assert adapter.layers()[0].width == 3


# --------------------------------------------------------------------------- hook path
def test_hook_path_equals_brute_force_recomputation() -> None:
    adapter, pool = get_model("tiny-cnn", seed=2), _pool()
    table = Featurizer(adapter, ["imi_b4", "sparseness"], progress=False, batch_size=7).run(UNITS, pool)
    x = adapter.preprocess([pool.image(i) for i in range(len(pool))])
    with adapter.recorder(list(UNITS["layer"].unique()), keep_maps=True, stop_early=False) as rec:
        adapter.forward(rec, x)
    for row in table.itertuples():
        a = rec.maps[row.layer][0][:, row.channel]  # (N, H, W)
        assert row.pixel_sparsity == pytest.approx((a <= 0).float().mean().item(), rel=1e-5)
        assert row.channel_sparsity == pytest.approx((a.flatten(1).amax(1) <= 0).float().mean().item(), abs=1e-6)
        lc = local_contrast(a[:, None]).mean().item()
        assert row.local_contrast == pytest.approx(lc, rel=1e-5)
        assert row.local_contrast_norm == pytest.approx(lc / a.abs().mean().item(), rel=1e-5)
        mean = a.flatten(1).mean(1).double()
        assert row.lifetime_kurtosis_mean == pytest.approx(kurtosis(mean).item(), rel=1e-4, nan_ok=True)
        assert row.lifetime_gini_max == pytest.approx(gini(a.flatten(1).amax(1).double().clamp(min=0)).item(),
                                                      rel=1e-4, nan_ok=True)


def test_in_place_relu_does_not_leak_into_bn_units() -> None:
    import torchvision

    torch.manual_seed(0)
    net = torchvision.models.resnet50(weights=None).eval()  # stock: ReLU(inplace=True) after bn1
    adapter = ModelAdapter("stock-resnet50", net, Preprocessing(resize=64, crop=64),
                           [LayerSpec("layer1_0_bn1", "layer1.0.bn1", kind="norm")], weights="random")
    pool = _pool(8, size=70)
    table = Featurizer(adapter, ["imi_b4"], progress=False).run(
        pd.DataFrame({"layer": ["layer1_0_bn1"] * 4, "channel": [0, 1, 2, 3]}), pool)
    got: dict[str, torch.Tensor] = {}  # oracle: a copy of bn1's output taken before the ReLU overwrites it
    handle = net.layer1[0].bn1.register_forward_hook(lambda _m, _i, o: got.__setitem__("a", o.clone()))
    with torch.no_grad():
        net(adapter.preprocess([pool.image(i) for i in range(len(pool))]))
    handle.remove()
    a = got["a"][:, :4]
    want = local_contrast(a).mean(0)
    np.testing.assert_allclose(table["local_contrast"], want.numpy(), rtol=1e-5)
    assert (a < 0).any()  # post-ReLU values would differ: the check can fail


# --------------------------------------------------------------------------- MIS oracles
def _trials(n: int = 6) -> np.ndarray:
    return np.array([[0, 1, *range(2, 11), *range(11, 20)]] * n)


def test_mis_identical_embeddings_give_one_half() -> None:
    emb = np.tile(np.array([[1.0, 0.0, 0.0]]), (20, 1))
    got = mis_from_embeddings(emb, _trials(), alpha=5.0)
    assert got["mis"] == 0.5 and got["mis_hard"] == 0.5


def test_mis_linear_unit_sign_flip_and_limit() -> None:
    rng = np.random.default_rng(0)
    v = rng.normal(size=8)
    emb = rng.normal(size=(20, 8))
    emb[[0, *range(2, 11)]] += 2 * v  # max side aligned with v
    emb[[1, *range(11, 20)]] -= 2 * v
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    low, high = (mis_from_embeddings(emb, _trials(), a)["mis"] for a in (1.0, 10.0))
    assert 0.5 < low < high
    flipped = _trials()[:, [1, 0, *range(11, 20), *range(2, 11)]]  # f → −f swaps queries and sides
    assert mis_from_embeddings(emb, flipped, 10.0)["mis"] == pytest.approx(high)
    assert mis_from_embeddings(emb, _trials(), 1e6)["mis"] == pytest.approx(
        mis_from_embeddings(emb, _trials(), 1.0)["mis_hard"])


def test_mis_batched_equals_per_trial_loop() -> None:
    rng = np.random.default_rng(1)
    emb = rng.normal(size=(40, 5))
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    trials = np.stack([rng.permutation(40)[:20] for _ in range(7)])
    want = []
    for t in trials:
        sim = emb[t[:2]] @ emb[t[2:]].T
        d = (sim[:, :9].mean(1) - sim[:, 9:].mean(1))
        want.append(1 / (1 + np.exp(-3.0 * (d[0] - d[1]))))
    assert mis_from_embeddings(emb, trials, 3.0)["mis"] == pytest.approx(np.mean(want), abs=1e-6)


# --------------------------------------------------------------------------- bad input, constant units
def test_unknown_family_nan_image_and_cuda() -> None:
    with pytest.raises(RegistryError, match="did you mean: sparseness"):
        Featurizer(get_model("tiny-cnn"), ["sparsenes"])
    images = [np.zeros((40, 40, 3), np.uint8)] * 3
    adapter = get_model("tiny-cnn")
    adapter.preprocessing = Preprocessing(resize=36, crop=32, mean=(0, 0, 0), std=(0, 1, 1))  # 0/0 → NaN
    with pytest.raises(ImiDataError, match="NaN or inf"):
        Featurizer(adapter, ["imi_b4"], progress=False).run(UNITS, ArrayPool(images))
    if not torch.cuda.is_available():
        with pytest.raises(ImiBenchError, match="cuda"):
            Featurizer(get_model("tiny-cnn"), ["imi_b4"], device="cuda")


def test_constant_unit_keeps_its_row_with_nan_features() -> None:
    adapter = get_model("tiny-cnn")
    with torch.no_grad():
        adapter.model.features[4].weight[5] = 0  # channel 5 of the strided conv is constant (no bias)
    units = pd.DataFrame({"layer": ["features_4", "features_4"], "channel": [5, 6]})
    table = Featurizer(adapter, ["imi_b4", "sparseness"], progress=False).run(units, _pool(12))
    assert table["constant_unit"].tolist() == [True, False]
    assert table.loc[0, list(IMIB4.columns + Sparseness.columns)].isna().all()
    assert table.loc[1, "pixel_sparsity"] == table.loc[1, "pixel_sparsity"]


# --------------------------------------------------------------------------- caching and resume
@register_family
class _Counting(CustomFamily):
    name = "test_counting"
    columns = ("test_value",)
    defaults: ClassVar[dict[str, Any]] = {"fail_on_shard": -1}
    calls: ClassVar[list[int]] = []

    def compute(self, ctx: FeatureContext) -> pd.DataFrame:
        type(self).calls.append(len(type(self).calls))
        if self.params["fail_on_shard"] == len(type(self).calls) - 1:
            raise KeyboardInterrupt  # the run is killed while computing this shard
        return pd.DataFrame({"test_value": np.nanmean(ctx.responses, axis=0)})


def test_cache_hit_and_resume_after_kill(tmp_path: Path) -> None:
    adapter, pool = get_model("tiny-cnn", seed=4), _pool()
    reference = Featurizer(adapter, ["imi_b4", _Counting()], progress=False, shard_rows=2).run(UNITS, pool)
    _Counting.calls.clear()
    killed = Featurizer(adapter, ["imi_b4", _Counting(fail_on_shard=1)], progress=False, shard_rows=2,
                        cache_dir=tmp_path)
    with pytest.raises(KeyboardInterrupt):
        killed.run(UNITS, pool)
    assert len(list(tmp_path.rglob("test_counting-0000.parquet"))) == 1  # the finished shard survived
    _Counting.calls.clear()
    # same families and parameters as the killed run → same key; the failure would hit a later call only
    resumed = Featurizer(adapter, ["imi_b4", _Counting(fail_on_shard=1)], progress=False, shard_rows=2,
                         cache_dir=tmp_path)
    table = resumed.run(UNITS, pool)
    assert _Counting.calls == [0]  # only the missing shard was computed
    pd.testing.assert_frame_equal(table.drop(columns="feature_hash"), reference.drop(columns="feature_hash"))
    _Counting.calls.clear()
    again = resumed.run(UNITS, pool)
    assert _Counting.calls == [] and again.equals(table)  # a complete run is a cache hit
    other = Featurizer(adapter, ["imi_b4", _Counting()], progress=False, shard_rows=2, cache_dir=tmp_path)
    assert other.run(UNITS, pool)["feature_hash"].iloc[0] != table["feature_hash"].iloc[0]  # params change the key


def test_family_registry_lists_every_shipped_family() -> None:
    from imi_bench.featurize import load_families

    load_families()
    assert {"imi_b4", "sparseness", "sis", "param_saliency", "lesion", "mis"} <= set(FAMILIES)


# --------------------------------------------------------------------------- the tiny IMI-sim study
@pytest.fixture(scope="module")
def tiny_study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from imi_bench.sim import generate

    return generate(tmp_path_factory.mktemp("featsim") / "tiny", preset="tiny", seed=2, progress=False)


def test_featurize_the_tiny_imi_sim_study(tiny_study: Path, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "features.parquet"
    code = main(["featurize", "--dataset", str(tiny_study / "release"), "--all-models", "--features",
                 "imi_b4,sparseness,mis", "--out", str(out), "--cache", str(tmp_path / "cache"), "--no-progress"])
    assert code == 0, capsys.readouterr().err
    table = pd.read_parquet(out)
    assert len(table) == 18 and set(table["model"]) == {"mobilenet_v2", "mobilenet_v2-random"}
    assert set(table["condition"]) == {"natural", "synthetic"}
    live = ~table["constant_unit"].astype(bool)  # a random net's dead unit keeps its row, flagged, NaN features
    assert live.sum() >= 16
    assert table.loc[live, ["pixel_sparsity", "mis_hard"]].notna().all().all()
    assert table.loc[~live, ["pixel_sparsity", "mis_hard"]].isna().all().all()
    source = StimuliSource(tiny_study / "release", "mobilenet_v2")
    member = source.membership(source.rows())
    assert member.sum(0).min() >= 20 and member.any(1).all()
    assert main(["featurize", "--list"]) == 0 and "param_saliency" in capsys.readouterr().out


def test_local_contrast_equals_the_four_shifted_copies() -> None:
    x = torch.randn(3, 5, 9, 7)
    p = torch.nn.functional.pad(x, (1, 1, 1, 1))
    c = p[..., 1:-1, 1:-1]
    ref = ((p[..., :-2, 1:-1] - c).abs() + (p[..., 2:, 1:-1] - c).abs() + (p[..., 1:-1, :-2] - c).abs()
           + (p[..., 1:-1, 2:] - c).abs()).mean((2, 3))
    torch.testing.assert_close(local_contrast(x), ref)
    assert local_contrast(torch.full((1, 1, 1, 1), -2.0)).item() == 8.0  # 1×1: four zero neighbours


def test_featurize_a_hf_image_dataset_equals_the_same_pool() -> None:
    import datasets

    pool = _pool(12)
    ds = datasets.Dataset.from_dict({"image": [pool.image(i) for i in range(len(pool))]}).cast_column(
        "image", datasets.Image())
    adapter = get_model("tiny-cnn", seed=2)
    a = Featurizer(adapter, ["imi_b4"], progress=False).run(UNITS, ds)
    b = Featurizer(adapter, ["imi_b4"], progress=False).run(UNITS, pool)
    cols = ["pixel_sparsity", "channel_sparsity", "local_contrast", "local_contrast_norm"]
    pd.testing.assert_frame_equal(a[cols], b[cols], rtol=1e-6)
    with pytest.raises(ImiBenchError, match="cannot use"):
        Featurizer(adapter, ["imi_b4"], progress=False).run(UNITS, [1, 2, 3])
