"""Split schemes: every registered scheme applies without leaks, partitions as documented, YAML without code."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from imi_bench.errors import ImiBenchError, RegistryError
from imi_bench.eval import splits as sp
from imi_bench.eval.splits import (
    SplitScheme,
    add_model_metadata,
    check_no_leak,
    get_split,
    list_splits,
    load_scheme,
    model_metadata,
    register_scheme_dir,
    register_scheme_file,
)

MODELS = ["mobilenet_v2", "mobilenet_v2-random", "efficientnet_lite0", "efficientnet_lite0-random", "fake_vit"]
FAKE = {"fake_vit": {"arch": "vit", "training": "clip"}}
LAYERS = {"early": 0.0, "mid": 0.5, "late": 1.0}


def make_units(models: list[str] = MODELS, channels: int = 5) -> pd.DataFrame:
    """Every unit: natural/easy; trained CNNs: synthetic/easy; mobilenet_v2 and fake_vit: natural/medium, hard."""
    grid = pd.MultiIndex.from_product([models, list(LAYERS), range(channels)], names=["model", "layer", "channel"])
    base = grid.to_frame(index=False)
    base["unit_id"] = base["model"] + "/" + base["layer"] + "/" + base["channel"].astype(str)
    base["relative_depth"] = base["layer"].map(LAYERS)
    trained_cnn = base["model"].isin(["mobilenet_v2", "efficientnet_lite0"])
    harder = base["model"].isin(["mobilenet_v2", "fake_vit"])
    parts = [base.assign(condition="natural", difficulty="easy"),
             base[trained_cnn].assign(condition="synthetic", difficulty="easy"),
             base[harder].assign(condition="natural", difficulty="medium"),
             base[harder].assign(condition="natural", difficulty="hard")]
    units = pd.concat(parts, ignore_index=True).sample(frac=1.0, random_state=3).reset_index(drop=True)
    return add_model_metadata(units, FAKE)


@pytest.fixture(scope="module")
def units() -> pd.DataFrame:
    return make_units()


@pytest.fixture
def clean_registry():
    """Restore the split registry after a test that registers user schemes."""
    items, loaded = dict(sp.SPLITS._items), set(sp._LOADED)
    yield sp.SPLITS
    sp.SPLITS._items.clear()
    sp.SPLITS._items.update(items)
    sp._LOADED.clear()
    sp._LOADED.update(loaded)


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# --------------------------------------------------------------------------- metadata
def test_model_metadata_reads_registry_and_overrides(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="imi_bench.eval.splits"):
        meta = model_metadata(["mobilenet_v2", "efficientnet_lite0-random", "fake_vit", "mystery"], FAKE)
    assert meta.to_dict("records") == [
        {"model": "mobilenet_v2", "arch": "cnn", "training": "supervised", "trained": True},
        {"model": "efficientnet_lite0-random", "arch": "cnn", "training": "random", "trained": False},
        {"model": "fake_vit", "arch": "vit", "training": "clip", "trained": True},
        {"model": "mystery", "arch": "unknown", "training": "unknown", "trained": True},
    ]
    assert "mystery" in caplog.text and "fake_vit" not in caplog.text
    with pytest.raises(ImiBenchError, match="unknown key"):
        model_metadata(["fake_vit"], {"fake_vit": {"family": "vit"}})


def test_add_model_metadata_per_row(units: pd.DataFrame) -> None:
    assert (units.loc[units["model"] == "fake_vit", "arch"] == "vit").all()
    assert set(units.loc[~units["trained"], "model"]) == {"mobilenet_v2-random", "efficientnet_lite0-random"}
    again = add_model_metadata(units, FAKE)  # replaces, does not duplicate
    assert list(again.columns) == list(units.columns)


# --------------------------------------------------------------------------- every registered scheme
def test_shipped_schemes() -> None:
    assert list_splits() == sorted([
        "random-units", "leave-one-model-out", "model-group-transfer", "arch-transfer", "training-transfer",
        "depth-holdout", "condition-transfer", "difficulty-transfer"])


@pytest.mark.parametrize("name", list_splits())
def test_every_scheme_applies_without_leak(units: pd.DataFrame, name: str) -> None:
    scheme = get_split(name)
    folds = scheme.folds(units)
    assert folds and len({f.name for f in folds}) == len(folds)
    for f in folds:
        assert len(f.train) and len(f.test)
        assert np.all(np.diff(f.train) > 0) and np.all(np.diff(f.test) > 0)
        assert np.intersect1d(f.train, f.test).size == 0
        assert list(f.test_units) == sorted(set(units["unit_id"].iloc[f.test]))
    check_no_leak(units, folds, scheme)
    if scheme.model_level:
        for f in folds:
            assert not set(units["model"].iloc[f.test]) & set(units["model"].iloc[f.train])


def test_fold_names_on_the_table(units: pd.DataFrame) -> None:
    names = {n: [f.name for f in get_split(n).folds(units)] for n in list_splits()}
    assert names["leave-one-model-out"] == [f"heldout={m}" for m in sorted(MODELS)]
    assert names["model-group-transfer"] == ["trained=true->trained=false", "trained=false->trained=true"]
    assert names["arch-transfer"] == ["arch=cnn->arch=vit", "arch=vit->arch=cnn"]
    assert names["training-transfer"] == ["training=supervised->training=clip", "training=clip->training=supervised"]
    low, high = "relative_depth<0.5", "relative_depth>=0.5"
    assert names["depth-holdout"] == [f"{low}->{high}", f"{high}->{low}"]
    assert names["random-units"] == names["condition-transfer"] == [f"fold={i}" for i in range(5)]


# --------------------------------------------------------------------------- partitions
def test_leave_one_model_out_tests_each_row_once(units: pd.DataFrame) -> None:
    folds = get_split("leave-one-model-out").folds(units)
    tested = np.concatenate([f.test for f in folds])
    assert np.array_equal(np.sort(tested), np.arange(len(units)))
    for f in folds:
        assert np.array_equal(np.sort(np.concatenate([f.train, f.test])), np.arange(len(units)))
        assert units["model"].iloc[f.test].nunique() == 1


def test_random_units_partition_and_balance(units: pd.DataFrame) -> None:
    folds = get_split("random-units").folds(units)
    assert np.array_equal(np.sort(np.concatenate([f.test for f in folds])), np.arange(len(units)))
    for f in folds:
        assert np.array_equal(np.sort(np.concatenate([f.train, f.test])), np.arange(len(units)))
    # stratified by model and balanced: per model, the fold sizes in units differ by at most one
    per_unit = units.drop_duplicates("unit_id").set_index("unit_id")["model"]
    counts = pd.DataFrame({f.name: per_unit.loc[f.test_units].value_counts() for f in folds}).fillna(0)
    assert (counts.max(axis=1) - counts.min(axis=1) <= 1).all()
    sizes = [len(f.test_units) for f in folds]
    assert max(sizes) - min(sizes) <= 1


def test_random_units_seed(units: pd.DataFrame) -> None:
    scheme = get_split("random-units")
    a, b = scheme.folds(units), scheme.folds(units)
    assert all(np.array_equal(x.test, y.test) for x, y in zip(a, b, strict=True))
    assert [x.digest() for x in a] == [y.digest() for y in b]
    c = scheme.folds(units, seed=1)
    assert any(not np.array_equal(x.test_units, y.test_units) for x, y in zip(a, c, strict=True))
    # the assignment depends on the units, not on row order
    shuffled = units.sample(frac=1.0, random_state=11).reset_index(drop=True)
    assert [x.digest() for x in scheme.folds(shuffled)] == [x.digest() for x in a]


def test_row_transfer_partition(units: pd.DataFrame) -> None:
    folds = get_split("condition-transfer").folds(units)
    synthetic = np.flatnonzero(((units["condition"] == "synthetic") & (units["difficulty"] == "easy")).to_numpy())
    assert np.array_equal(np.sort(np.concatenate([f.test for f in folds])), synthetic)
    for f in folds:
        train = units.iloc[f.train]
        assert set(train["condition"]) == {"natural"} and set(train["difficulty"]) == {"easy"}
        assert set(units["condition"].iloc[f.test]) == {"synthetic"}
        assert not set(f.train_units) & set(f.test_units)
    hard = get_split("difficulty-transfer").folds(units)
    assert set(units["difficulty"].iloc[np.concatenate([f.test for f in hard])]) == {"medium", "hard"}


def test_depth_holdout_partition(units: pd.DataFrame) -> None:
    low, high = get_split("depth-holdout").folds(units)
    assert np.array_equal(low.train, high.test) and np.array_equal(low.test, high.train)
    assert (units["relative_depth"].iloc[low.train] < 0.5).all()
    assert (units["relative_depth"].iloc[low.test] >= 0.5).all()
    assert len(low.train) + len(low.test) == len(units)


def test_group_transfer_sides(units: pd.DataFrame) -> None:
    first = get_split("model-group-transfer").folds(units)[0]
    assert units["trained"].iloc[first.train].all() and not units["trained"].iloc[first.test].any()
    vit_to_cnn = get_split("arch-transfer").folds(units)[1]
    assert set(units["model"].iloc[vit_to_cnn.train]) == {"fake_vit"}


# --------------------------------------------------------------------------- validation
def test_empty_fold_names_the_fold() -> None:
    cnn_only = make_units(MODELS[:4], channels=2)
    with pytest.raises(ImiBenchError, match=r"'arch-transfer'.*fold 'arch=cnn->arch=vit'.*empty test"):
        get_split("arch-transfer").folds(cnn_only)
    with pytest.raises(ImiBenchError, match=r"'training-transfer'.*at least 2 value"):
        get_split("training-transfer").folds(cnn_only)


def test_missing_columns_named(units: pd.DataFrame) -> None:
    with pytest.raises(ImiBenchError, match=r"lacks column\(s\) arch .*add_model_metadata"):
        get_split("arch-transfer").folds(units.drop(columns=["arch"]))
    with pytest.raises(ImiBenchError, match=r"lacks column\(s\) unit_id"):
        get_split("random-units").folds(units.drop(columns=["unit_id"]))


def test_check_no_leak_detects_units_and_models(units: pd.DataFrame) -> None:
    lomo = get_split("leave-one-model-out")
    fold = lomo.folds(units)[0]
    row = units.index[(units["model"] == units["model"].iloc[fold.test[0]])][0]
    leaky = sp.Fold("bad", np.sort(np.r_[fold.train, row]), fold.test[fold.test != row],
                    fold.train_units, fold.test_units)
    with pytest.raises(ImiBenchError, match=r"'leave-one-model-out'.*fold 'bad' leaks.*unit_id"):
        check_no_leak(units, [leaky], lomo)
    # another unit of the held-out model in train: no unit leak, but a model leak
    unit = units["unit_id"].iloc[row]
    same_model_other_unit = units.index[(units["model"] == units["model"].iloc[row]) & (units["unit_id"] != unit)]
    test = np.flatnonzero((units["unit_id"] == unit).to_numpy())
    train = np.sort(np.r_[fold.train, same_model_other_unit])
    model_leak = sp.Fold("m", train, test, fold.train_units, fold.test_units)
    check_no_leak(units, [model_leak])  # unit-level check passes
    with pytest.raises(ImiBenchError, match=r"fold 'm' leaks.*model"):
        check_no_leak(units, [model_leak], lomo)


# --------------------------------------------------------------------------- YAML without code
LOLO = """\
name: leave-one-layer-out
description: One fold per layer name.
kind: leave-one-group-out
group_by: layer
"""


def test_user_scheme_file(units: pd.DataFrame, tmp_path: Path, clean_registry) -> None:
    scheme = register_scheme_file(write(tmp_path / "lolo.yaml", LOLO))
    assert get_split("leave-one-layer-out") is scheme and "leave-one-layer-out" in list_splits()
    assert not scheme.model_level
    folds = scheme.folds(units)
    assert [f.name for f in folds] == [f"heldout={layer}" for layer in sorted(LAYERS)]
    assert all(set(units["layer"].iloc[f.test]) == {f.name.split("=")[1]} for f in folds)
    with pytest.raises(RegistryError, match=r"lolo2.yaml: split scheme 'leave-one-layer-out' is already registered"):
        register_scheme_file(write(tmp_path / "lolo2.yaml", LOLO))
    with pytest.raises(RegistryError, match="already registered"):
        register_scheme_file(sp._SCHEMES_DIR / "random-units.yaml")


def test_user_scheme_dir_and_env(tmp_path: Path, clean_registry, monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    write(a / "one.yaml", LOLO.replace("leave-one-layer-out", "one"))
    write(a / "notes.txt", "ignored")
    write(b / "two.yml", LOLO.replace("leave-one-layer-out", "two"))
    assert [s.name for s in register_scheme_dir(a)] == ["one"]
    monkeypatch.setenv(sp.ENV_VAR, str(b))
    assert {"one", "two"} <= set(list_splits())
    monkeypatch.setenv(sp.ENV_VAR, str(tmp_path / "missing"))
    with pytest.raises(ImiBenchError, match="does not exist"):
        list_splits()


def test_unknown_split_suggests() -> None:
    with pytest.raises(RegistryError, match=r"unknown split scheme 'random-unit'; did you mean: random-units"):
        get_split("random-unit")
    with pytest.raises(RegistryError, match=r"known: arch-transfer, .*training-transfer"):
        get_split("zzz")


@pytest.mark.parametrize(("text", "pattern"), [
    ("name: x\nkind: leave-one-group-out\ngroup_by: layer\nthreshold: 0.5\n",
     r"bad.yaml: key 'threshold': unknown key for kind 'leave-one-group-out'"),
    ("name: x\nkind: leave-one-layer-out\n", r"bad.yaml: key 'kind': unknown kind 'leave-one-layer-out'; known kinds"),
    ("kind: kfold-units\n", r"key 'name': missing required key"),
    ("name: x\n", r"key 'kind': missing"),
    ("name: x\nkind: [kfold-units]\n", r"key 'kind': unknown kind"),
    ("name: x\nkind: group-transfer\nmodel_level: maybe\n", r"key 'model_level': expected true or false"),
    ("name: x\nkind: row-transfer\ntrain_rows: {condition: natural}\n", r"key 'test_rows': missing required key"),
    ("name: x\nkind: kfold-units\nk: 1\n", r"key 'k': expected an integer >= 2"),
    ("name: x\nkind: kfold-units\nk: true\n", r"key 'k': expected an integer"),
    ("name: x\nkind: threshold-holdout\nthreshold: high\n", r"key 'threshold': expected a finite number"),
    ("name: x y\nkind: kfold-units\n", r"key 'name': expected letters, digits.*got 'x y'"),
    ("name: x\nkind: group-transfer\nfolds: [{train: {arch: cnn}, tset: {arch: vit}}]\n",
     r"key 'folds': folds\[0\]: unknown key\(s\) \['tset'\]"),
    ("name: x\nkind: row-transfer\ntrain_rows: {condition: [natural, {a: 1}]}\ntest_rows: {condition: x}\n",
     r"key 'train_rows': expected a value"),
    ("- just\n- a list\n", r"must be a YAML mapping"),
    ("name: [unclosed\n", r"bad.yaml: invalid YAML"),
    ("name: x\nkind: kfold-units\nseed: !!python/object/apply:os.getcwd []\n", r"invalid YAML"),
])
def test_strict_yaml(tmp_path: Path, text: str, pattern: str) -> None:
    with pytest.raises(ImiBenchError, match=pattern):
        load_scheme(write(tmp_path / "bad.yaml", text))


def test_config_digest_stable(tmp_path: Path) -> None:
    shipped = get_split("depth-holdout")
    explicit = load_scheme(write(tmp_path / "d.yaml", "name: other\ndescription: words\nkind: threshold-holdout\n"
                                 "column: relative_depth\nthreshold: 0.5\nreverse: true\nseed: 0\n"))
    defaults = SplitScheme.from_dict({"name": "d", "kind": "threshold-holdout", "threshold": 0.5})
    assert shipped.config_digest() == explicit.config_digest() == defaults.config_digest()
    assert len(shipped.config_digest()) == 64
    changed = SplitScheme.from_dict({"name": "d", "kind": "threshold-holdout", "threshold": 0.4})
    assert changed.config_digest() != shipped.config_digest()
    # pinned: a change here changes every citation of the scheme
    assert shipped.config_digest() == "0217efc1c8b9c112ae25aaf266eb9b05341476bc6ef6adb9463d77a90982ce42"
    assert SplitScheme.from_dict(shipped.to_dict()).config_digest() == shipped.config_digest()


def test_group_transfer_pairs_and_values(units: pd.DataFrame) -> None:
    pairs = SplitScheme.from_dict({"name": "p", "kind": "group-transfer", "group_by": "arch"})
    assert [f.name for f in pairs.folds(units)] == ["arch=cnn->arch=vit", "arch=vit->arch=cnn"]
    assert pairs.model_level
    lomo = SplitScheme.from_dict({"name": "l", "kind": "leave-one-group-out", "values": ["fake_vit", "absent"]})
    assert [f.name for f in lomo.folds(units)] == ["heldout=fake_vit"]
