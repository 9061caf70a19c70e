"""SIS: the reference's BackSelect/FindSIS/collection oracles, the linear closed form, the family end to end."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from imi_bench.errors import ImiBenchError
from imi_bench.featurize import Featurizer
from imi_bench.featurize.families.sis import (
    backselect_auc,
    batched_backselect,
    bbox_fraction,
    count_model_calls,
    exact_backselect,
    find_sis,
    grid_components,
    grid_features,
    select_exemplars,
    sis_collection,
    sis_from_record,
    unit_objective,
)
from imi_bench.models import LayerSpec, ModelAdapter, Preprocessing, get_model
from imi_bench.stimuli import ArrayPool


def l2(z: torch.Tensor) -> torch.Tensor:
    return z.flatten(1).norm(dim=1)


def total(z: torch.Tensor) -> torch.Tensor:
    return z.flatten(1).sum(1)


def linear(theta: list[float]):
    w = torch.tensor(theta, dtype=torch.float64)
    return lambda z: z.flatten(1) @ w


# --------------------------------------------------------------------------- reference §4.6 table
@pytest.mark.parametrize(("f", "x", "tau", "order", "values", "collection"), [
    (l2, [0.1, 10, 5], 1.0, [0, 2, 1], [math.sqrt(125), 10, 0], [[1], [2]]),
    (l2, [3, 4], 4.5, [0, 1], [4, 0], [[1, 0]]),
    (total, [[10, 5], [2, 3]], 4.0, [2, 3, 1, 0], [18, 15, 10, 0], [[0], [1], [3, 2]]),
    (linear([1, 2, 0, 1]), [5, 1, 6, 3], 5.0, [2, 1, 3, 0], [10, 8, 5, 0], [[0], [3, 1]]),
])
def test_reference_backselect_oracles(f, x, tau, order, values, collection) -> None:
    x = torch.tensor(x, dtype=torch.float64)
    got_order, got_values = exact_backselect(f, x, torch.zeros(()))
    assert got_order.tolist() == order
    np.testing.assert_allclose(got_values.numpy(), values, atol=1e-12)
    assert sis_collection(f, x, torch.zeros(()), tau) == collection


def test_no_sis_when_f_below_tau() -> None:
    x = torch.tensor([0.1, 0.2], dtype=torch.float64)
    assert sis_collection(l2, x, torch.zeros(()), tau=5.0) == []
    order, values = exact_backselect(l2, x, torch.zeros(()))
    assert find_sis(values, order, tau=5.0, f_full=float(l2(x[None]))) is None


# --------------------------------------------------------------------------- linear closed form
@pytest.mark.parametrize("k", [1, 3, 7])
def test_batched_gradient_matches_exact_on_linear_f(k: int) -> None:
    rng = np.random.default_rng(k)
    d = 20
    w, x = torch.from_numpy(rng.normal(size=d)), torch.from_numpy(rng.normal(size=(3, d)))
    x_bar = torch.zeros(())
    f = lambda z: z @ w  # noqa: E731
    rec = batched_backselect(f, x, x_bar, torch.arange(d), k)
    c = (w * (x - x_bar)).numpy()  # masking feature i lowers f by c_i
    blocks = np.argsort(np.argsort(c, axis=1, kind="stable"), axis=1) // k
    np.testing.assert_array_equal(rec.masked_at.numpy(), blocks)
    if k == 1:  # and exact BackSelect takes the same order
        for p in range(3):
            order, values = exact_backselect(f, x[p], x_bar)
            np.testing.assert_array_equal(rec.masked_at[p].argsort().numpy(), order.numpy())
            np.testing.assert_allclose(rec.values[1:, p].numpy(), values.numpy(), atol=1e-10)
    assert rec.forwards == math.ceil(d / k) + 1 and rec.backwards == math.ceil(d / k)


def _linear_unit_adapter(side: int = 8) -> ModelAdapter:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 2, 3, padding=1)).eval()
    adapter = ModelAdapter("linear-conv", net, Preprocessing(resize=side, crop=side), [LayerSpec("conv", "0")],
                           weights="random")
    adapter.layers()  # probe the widths in fp32 before a test switches the model to fp64
    return adapter


def test_unit_adaptation_on_a_linear_conv_is_exact() -> None:
    adapter = _linear_unit_adapter()
    adapter.model.double()
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64)
    x_bar = torch.zeros(3, 1, 1, dtype=torch.float64)
    grid = grid_features(8, 8, 4)  # 16 super-pixels of 2×2, shared by colour channels
    f = unit_objective(adapter, "conv", [1])
    rec = batched_backselect(f, x, x_bar, grid, 1)
    for p in range(2):
        order, values = exact_backselect(f, x[p], x_bar, grid)
        np.testing.assert_array_equal(rec.masked_at[p].argsort().numpy(), order.numpy())
        np.testing.assert_allclose(rec.values[1:, p].detach().numpy(), values.numpy(), rtol=1e-9, atol=1e-9)


def test_affine_invariance_and_fraction_steps() -> None:
    rng = np.random.default_rng(3)
    x = torch.from_numpy(rng.normal(size=(5, 6, 6)) ** 2)
    f = lambda z: z.flatten(1).pow(2).sum(1).sqrt()  # noqa: E731
    g = lambda z: 3.0 * f(z) - 2.0  # noqa: E731
    grid, k = torch.arange(36).view(6, 6), 4
    tau = f(x) * 0.7
    a = sis_from_record(batched_backselect(f, x, torch.zeros(()), grid, k), tau)
    b = sis_from_record(batched_backselect(g, x, torch.zeros(()), grid, k), 3.0 * tau - 2.0)
    assert torch.equal(a["sis"], b["sis"])
    frac = a["frac"].numpy()
    assert ((frac >= 0) & (frac <= 1)).all()
    np.testing.assert_allclose(frac * 36 / k, np.round(frac * 36 / k))  # steps of k/d (36 = 9 blocks of 4)


def test_every_found_sis_is_sufficient() -> None:
    torch.manual_seed(1)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 1, 3, padding=1)).eval()
    f = lambda z: net(z).mean((1, 2, 3))  # noqa: E731
    x = torch.rand(6, 3, 12, 12) + 0.5
    got = count_model_calls(f, x, torch.zeros(3, 1, 1), k=4)
    assert got["d"] == 144 and got["exact_forward"] == 144 * 145 // 2 + 1
    assert got["batched_forward"] == 37 and got["batched_backward"] == 36
    assert got["ratio"] == pytest.approx(got["exact_forward"] / 73)
    assert got["n_with_sis"] > 0 and got["sufficient_frac"] == 1.0


def test_auc_is_one_half_for_linear_decay() -> None:
    d = 10
    w, x = torch.ones(d, dtype=torch.float64), torch.ones(1, d, dtype=torch.float64)
    rec = batched_backselect(lambda z: z @ w, x, torch.zeros(()), torch.arange(d), 1)
    assert backselect_auc(rec).item() == pytest.approx(0.5)
    flat = batched_backselect(lambda z: z @ w * 0, x, torch.zeros(()), torch.arange(d), 1)
    assert math.isnan(backselect_auc(flat).item())


def test_grid_compactness() -> None:
    m = torch.zeros(2, 4, 4, dtype=torch.bool)
    m[0, 0, 0] = m[0, 3, 3] = m[0, 0, 1] = True  # two components, bbox 4×4
    m[1, 1:3, 1:3] = True  # one 2×2 component
    assert grid_components(m).tolist() == [2, 1]
    assert bbox_fraction(m).tolist() == [1.0, 4 / 16]
    assert grid_components(torch.zeros(1, 3, 3, dtype=torch.bool)).tolist() == [0]


def test_select_exemplars_and_rank_threshold() -> None:
    r = np.array([[1.0, np.nan], [3.0, 2.0], [2.0, 5.0], [0.0, np.nan]])
    top, tau = select_exemplars(r, 3, 0.5)
    assert top.tolist() == [[1, 2, 0], [2, 1, -1]]
    assert tau.tolist() == [2.0, 5.0]  # ranks ⌈0.5·4⌉ = 2 and ⌈0.5·2⌉ = 1 from the top
    assert select_exemplars(r, 1, 1)[1].tolist() == [3.0, 5.0]
    assert select_exemplars(r, 1, 9)[1].tolist() == [0.0, 2.0]  # an absolute rank past the end: the lowest
    with pytest.raises(ImiBenchError, match="tau_rank"):
        select_exemplars(r, 1, 0)


# --------------------------------------------------------------------------- the family
def _pool(n: int = 12, size: int = 40) -> ArrayPool:
    rng = np.random.default_rng(0)
    return ArrayPool([rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for _ in range(n)])


def test_sis_family_through_the_featurizer() -> None:
    adapter = get_model("tiny-cnn", seed=2)
    units = pd.DataFrame({"layer": ["features_1", "features_3", "features_5"], "channel": [0, 1, 3]})
    table = Featurizer(adapter, ["sis"], progress=False, params={"sis": {"n_exemplars": 3}}).run(units, _pool())
    assert len(table) == 3
    ok = table.dropna(subset=["sis_frac_median"])
    assert len(ok) >= 2
    assert ok["sis_frac_median"].between(0, 1).all() and ok["sis_bbox_frac"].between(0, 1).all()
    assert table["sis_degenerate_frac"].between(0, 1).all()
    assert (ok["sis_n_components"] >= 1).all() and table["backselect_auc"].notna().all()
    # on a linear unit the batched search with k = 1 is exact: both methods give the same table
    lin = _linear_unit_adapter(side=16)
    cfg = {"n_exemplars": 3, "grid": 4, "k": 1}
    rows = pd.DataFrame({"layer": ["conv", "conv"], "channel": [0, 1]})
    exact = Featurizer(lin, ["sis"], progress=False, params={"sis": {**cfg, "method": "exact"}}).run(rows, _pool())
    grad = Featurizer(lin, ["sis"], progress=False, params={"sis": cfg}).run(rows, _pool())
    cols = ["sis_frac_median", "sis_frac_mean", "sis_degenerate_frac", "sis_n_components", "sis_bbox_frac"]
    pd.testing.assert_frame_equal(exact[cols], grad[cols])
    np.testing.assert_allclose(exact["backselect_auc"], grad["backselect_auc"], rtol=1e-4)
    assert exact["sis_frac_median"].notna().all()
    with pytest.raises(ImiBenchError, match="exact_max_features"):
        Featurizer(adapter, ["sis"], progress=False, params={"sis": {"method": "exact", "grid": 16}}).run(
            units, _pool())


def test_exact_backselect_costs_d_times_d_plus_1_over_2_calls() -> None:
    calls = []

    def f(z: torch.Tensor) -> torch.Tensor:
        calls.append(len(z))  # one image through the "network" = one call
        return z.flatten(1).pow(2).sum(1)

    d = 12
    x = torch.rand(d, dtype=torch.float64) + 0.1
    exact_backselect(f, x, torch.zeros(()), batch_size=5)
    assert sum(calls) == d * (d + 1) // 2  # + 1 for f(x), which count_model_calls adds
    calls.clear()
    rec = batched_backselect(f, x[None].repeat(3, 1), torch.zeros(()), torch.arange(d), 3)
    assert sum(calls) == 3 * rec.forwards == 3 * (d // 3 + 1)
