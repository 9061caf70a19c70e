"""Parameter-space saliency: the softmax-regression closed form, vmap = loop, merged moments, unit mapping, family."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from imi_bench.errors import ImiBenchError, ImiDataError
from imi_bench.featurize import Featurizer
from imi_bench.featurize.families.saliency import (
    RunningMoments,
    conv_weights,
    input_saliency,
    saliency_loop,
    saliency_vmap,
    unit_map,
)
from imi_bench.models import LayerSpec, ModelAdapter, Preprocessing, get_model
from imi_bench.stimuli import ArrayPool


def _softmax_regression(c_in: int = 5, k: int = 4, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(c_in, k, 1, bias=False), nn.Flatten()).eval()


@pytest.mark.parametrize("path", [saliency_vmap, saliency_loop])
def test_softmax_regression_closed_form(path) -> None:
    net = _softmax_regression()
    x = torch.randn(6, 5, 1, 1)
    y = torch.tensor([0, 1, 2, 3, 0, 1])
    prof, logits = path(net, x, y)
    p = torch.softmax(net(x), 1)
    onehot = torch.eye(4)[y]
    want = (p - onehot).abs() * x.abs().mean((1, 2, 3))[:, None]  # s_j = |p_j − y_j|·mean|x|
    torch.testing.assert_close(prof, want.detach(), rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(logits, net(x).detach())


def test_confident_right_and_wrong_samples() -> None:
    net = _softmax_regression(c_in=2, k=2)
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[20.0, 0.0], [0.0, 20.0]]).view(2, 2, 1, 1))
    x = torch.tensor([[1.0, 0.0], [1.0, 0.0]]).view(2, 2, 1, 1)  # predicted class 0 with p ≈ 1
    prof, _ = saliency_vmap(net, x, torch.tensor([0, 1]))
    assert prof[0].max() < 1e-6  # confidently correct: small everywhere
    np.testing.assert_allclose(prof[1].numpy(), [0.5, 0.5], rtol=1e-5)  # wrong: ≈ mean|x| on both filters


def test_pseudo_label_is_the_top1_prediction() -> None:
    net = _softmax_regression()
    x = torch.randn(4, 5, 1, 1)
    a, _ = saliency_vmap(net, x, torch.full((4,), -1))
    b, _ = saliency_vmap(net, x, net(x).argmax(1))
    torch.testing.assert_close(a, b)


def test_vmap_equals_loop_on_a_small_cnn() -> None:
    adapter = get_model("tiny-cnn", seed=3)
    x = torch.randn(5, 3, 32, 32)
    y = torch.tensor([0, 1, -1, 3, -1])
    pv, lv = saliency_vmap(adapter.model, x, y, chunk_size=2)
    pl, ll = saliency_loop(adapter.model, x, y)
    assert pv.shape == (5, sum(dict(adapter.model.named_parameters())[n].shape[0] for n in conv_weights(
        adapter.model)))
    rel = ((pv - pl).abs().amax(0) / pl.abs().amax(0).clamp_min(1e-30)).max().item()
    assert rel <= 1e-5
    torch.testing.assert_close(lv, ll, rtol=1e-5, atol=1e-6)


def test_running_moments_equal_unbiased_std() -> None:
    data = torch.randn(37, 9, dtype=torch.float64) * torch.linspace(0, 3, 9)
    m = RunningMoments()
    for chunk in data.split(5):
        m.update(chunk)
    torch.testing.assert_close(m.mean, data.mean(0))
    torch.testing.assert_close(m.std(), data.std(0, unbiased=True))
    assert m.scale()[0].item() == 1.0  # σ = 0 → 1


def _pool(n: int = 10, labels: list[int] | None = None) -> ArrayPool:
    rng = np.random.default_rng(0)
    meta = None
    if labels is not None:
        meta = pd.DataFrame({"image_id": [str(i) for i in range(n)], "source": "memory", "licence": "unknown",
                             "label": labels})
    return ArrayPool([rng.integers(0, 256, (40, 40, 3), dtype=np.uint8) for _ in range(n)], meta)


def test_unit_map_of_mobilenet_layers() -> None:
    adapter = get_model("mobilenet_v2-random")
    maps = unit_map(adapter, ["features_1_conv_0_0", "features_1_conv_0_1", "features_1", "features_18_1"])
    assert maps["features_1_conv_0_0"].params == ("features.1.conv.0.0.weight",)
    assert maps["features_1_conv_0_1"].params == ("features.1.conv.0.0.weight",)  # BN: the conv feeding it
    assert maps["features_1"].params == ("features.1.conv.1.weight",)  # block: its last main-path conv
    assert maps["features_18_1"].params == ("features.18.0.weight",)
    strict = unit_map(adapter, ["features_1"], block="strict")["features_1"]
    assert strict.params == () and "identity skip" in strict.note
    vit = unit_map(get_model("tiny-vit"))
    assert all(m.params == () and m.note for m in vit.values() if "mlp_fc1" in m.note or "fc1" in m.note)
    assert any("linear layer" in m.note for m in vit.values())


def test_family_columns_and_conditioning_rules() -> None:
    adapter = get_model("tiny-cnn", seed=2)
    units = pd.DataFrame({"layer": ["features_3_conv1", "features_3_conv1", "features_1", "features_3",
                                    "features_5"], "channel": [0, 1, 2, 3, 4]})
    layers = {la.name: la.kind for la in adapter.layers()}
    units = units[units["layer"].isin(layers)].reset_index(drop=True)
    table = Featurizer(adapter, ["param_saliency"], progress=False,
                       params={"param_saliency": {"n_images": 10, "chunk_size": 4}}).run(units, _pool())
    convs = table[[layers[la] == "conv" for la in table["layer"]]]
    assert len(convs) and (convs["psal_mean_raw"] > 0).all()
    assert convs["psal_z_wrong_layer_rank"].between(0, 1).all()
    assert convs["psal_z_wrong_gt2_rate"].between(0, 1).all()
    # true labels switch the conditioning set to the misclassified images
    t = Featurizer(adapter, ["param_saliency"], progress=False,
                   params={"param_saliency": {"n_images": 10, "label": "true"}}).run(units, _pool(labels=[1] * 10))
    assert t["psal_mean_raw"].notna().any()
    with pytest.raises(ImiBenchError, match="provides no labels"):
        Featurizer(adapter, ["param_saliency"], progress=False,
                   params={"param_saliency": {"label": "true"}}).run(units, _pool())
    with pytest.raises(ImiDataError, match="label"):
        Featurizer(adapter, ["param_saliency"], progress=False).run(units, _pool(labels=[1] * 9 + [-3]))


def test_input_saliency_map() -> None:
    adapter = get_model("tiny-cnn", seed=2)
    img = _pool(1).image(0)
    m = input_saliency(adapter, img, k=3)
    side = adapter.preprocessing.crop
    assert m.shape == (side, side) and (m >= 0).all() and m.sum() > 0


def test_single_conv_adapter_profile_matches_manual_gradient() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten()).eval()
    adapter = ModelAdapter("one-conv", net, Preprocessing(resize=8, crop=8), [LayerSpec("conv", "0")],
                           weights="random")
    x = torch.randn(3, 3, 8, 8)
    prof, _ = saliency_vmap(adapter.model, x, torch.tensor([0, 1, 2]))
    for i in range(3):
        net.zero_grad()
        nn.functional.cross_entropy(net(x[i:i + 1]), torch.tensor([i])).backward()
        torch.testing.assert_close(prof[i], net[0].weight.grad.abs().flatten(1).mean(1))
