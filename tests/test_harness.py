"""The harness on the tiny IMI-sim study: baselines under a split, the oracle vs the ceiling, outputs, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from imi_bench.cli import main
from imi_bench.data.release import read_release
from imi_bench.errors import ImiBenchError
from imi_bench.eval.evaluator import Evaluator
from imi_bench.eval.harness import BASELINES, cross_validate, run_benchmark
from imi_bench.eval.outputs import write_run
from imi_bench.eval.result import RunResult
from imi_bench.predictors import get_predictor, unit_table
from imi_bench.sim.truth import load_ground_truth

FEATURES = ("imi_b4", "sparseness", "mis")
PREDICTORS = ["constant", "random", "depth", "family:imi_b4", "family:mis", "mis", "ridge", "lightgbm"]


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from imi_bench.sim import generate

    return generate(tmp_path_factory.mktemp("harness") / "tiny", preset="tiny", seed=2, progress=False)


@pytest.fixture(scope="module")
def bench(study: Path, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    cache = tmp_path_factory.mktemp("featcache")
    return run_benchmark(study / "release", split="leave-one-model-out", predictors=PREDICTORS, features=FEATURES,
                         n_boot=200, cache_dir=cache, progress=False)


def _oracle(study: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    units = unit_table(read_release(study / "release").units())
    truth = load_ground_truth(study).units
    preds = units[["model", "layer", "channel", "condition", "difficulty"]].merge(
        truth[["model", "layer", "channel", "condition", "difficulty", "latent_p"]],
        on=["model", "layer", "channel", "condition", "difficulty"], how="left")
    return units, preds.rename(columns={"latent_p": "prediction"})


def test_every_predictor_is_scored_with_cis(bench) -> None:  # type: ignore[no-untyped-def]
    summary = bench.summary()
    assert summary["predictor"].tolist() == PREDICTORS
    for name, r in bench.results.items():
        assert [f["name"] for f in r.folds] == ["heldout=mobilenet_v2", "heldout=mobilenet_v2-random"]
        sp = r.pooled["spearman"]
        assert sp["ci_low"] <= sp["estimate"] <= sp["ci_high"], name
        assert set(r.extra["concatenated"]) == set(r.pooled)
        assert r.split["config_digest"] and r.dataset["digest"]
        assert bool(r.feature_hash) == (name not in ("constant", "random", "depth"))
    constant = bench.results["constant"]
    assert constant.pooled["spearman"]["estimate"] == 0.0  # constant predictions rank nothing
    assert constant.pooled["spearman"]["ci_low"] == constant.pooled["spearman"]["ci_high"] == 0.0
    assert constant.pooled["r2"]["estimate"] <= 0.05


def test_oracle_scores_near_the_ceiling_and_beats_constant(study: Path) -> None:
    units, preds = _oracle(study)
    res = Evaluator("leave-one-model-out", n_boot=300).eval(preds, units)
    cn = res.extra["ceiling_normalised"]["spearman"]
    assert 0.75 <= cn <= 1.25, cn  # the true p correlates with observed HIS about as well as HIS with itself
    assert res.pooled["spearman"]["estimate"] > 0.5
    const = preds.assign(prediction=float(units["his"].mean()))
    assert res.pooled["loglik"]["estimate"] > Evaluator("leave-one-model-out", n_boot=50).eval(
        const, units).pooled["loglik"]["estimate"]


def test_bad_predictions_are_named(study: Path) -> None:
    units, preds = _oracle(study)
    ev = Evaluator("leave-one-model-out", n_boot=20)
    with pytest.raises(ImiBenchError, match="have no prediction"):
        ev.eval(preds.iloc[1:], units)
    with pytest.raises(ImiBenchError, match="duplicate unit rows: row"):
        ev.eval(pd.concat([preds, preds.iloc[:1]]), units)
    with pytest.raises(ImiBenchError, match="finite"):
        ev.eval(preds.assign(prediction=np.where(np.arange(len(preds)) == 3, np.nan, preds["prediction"])), units)
    with pytest.raises(ImiBenchError, match=r"in \[0, 1\]"):
        ev.eval(preds.assign(prediction=preds["prediction"] + 1), units)
    extra = pd.concat([preds, preds.iloc[:1].assign(layer="nope")])
    with pytest.raises(ImiBenchError, match=r"not in the dataset: row .*layer=nope"):
        ev.eval(extra, units)
    with pytest.raises(ImiBenchError, match="lack columns"):
        ev.eval(preds.drop(columns="prediction"), units)


def test_outputs_and_round_trip(bench, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    written = write_run(bench, tmp_path, "leave-one-model-out")
    out = tmp_path / "leave-one-model-out"
    assert {"results.md", "results.csv", "leave-one-model-out.png", "results/ridge.json",
            "unit_table.parquet"} <= set(written)
    assert (out / "leave-one-model-out.png").read_bytes()[:4] == b"\x89PNG"
    back = RunResult.read(out / "results" / "family-mis.json")
    assert back.pooled["spearman"]["estimate"] == pytest.approx(bench.results["family:mis"].pooled["spearman"][
        "estimate"])
    assert "| ridge |" in (out / "results.md").read_text()
    assert not list(tmp_path.glob(".staging*"))
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"schema_version": 99}))
    with pytest.raises(ImiBenchError, match="schema_version"):
        RunResult.read(bad)


def test_cross_validate_never_sees_the_held_out_model(study: Path) -> None:
    units = unit_table(read_release(study / "release").units())
    ev = Evaluator("leave-one-model-out")
    seen: list[set[str]] = []

    class Spy(type(get_predictor("constant"))):  # type: ignore[misc]
        def fit(self, X, y, sample_weight=None):  # type: ignore[no-untyped-def]  # noqa: N803
            seen.append(set(X["model"]))
            return super().fit(X, y, sample_weight)

    preds = cross_validate(Spy(), units, ev.folds(units))
    assert seen == [{"mobilenet_v2-random"}, {"mobilenet_v2"}]
    assert preds["fold"].value_counts().to_dict() == {"heldout=mobilenet_v2": 12, "heldout=mobilenet_v2-random": 6}


def test_evaluate_cli(study: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, preds = _oracle(study)
    path = tmp_path / "preds.csv"
    preds.to_csv(path, index=False)
    assert main(["evaluate", str(path), "--dataset", str(study / "release"), "--n-boot", "50",
                 "--out", str(tmp_path / "m.json")]) == 0
    assert "spearman" in capsys.readouterr().out and json.loads((tmp_path / "m.json").read_text())["pooled"]
    preds.iloc[2:].to_csv(path, index=False)
    assert main(["evaluate", str(path), "--dataset", str(study / "release")]) == 2
    assert "have no prediction" in capsys.readouterr().err


def test_baseline_configs_match_the_registry() -> None:
    root = Path(__file__).resolve().parents[1] / "baselines"
    configs = {c["name"]: c for c in (yaml.safe_load(p.read_text()) for p in sorted(root.glob("*.yaml")))}
    assert set(configs) == set(BASELINES)
    for name, cfg in configs.items():
        def norm(params: dict) -> dict:  # type: ignore[type-arg]
            return {k: tuple(v) if isinstance(v, list | tuple) else v for k, v in params.items()}

        est = get_predictor(cfg["predictor"], **cfg["params"])
        assert norm(est.get_params()) == norm(get_predictor(cfg["predictor"]).get_params()), name  # = the defaults


def test_run_cli_writes_results(study: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["run", "--dataset", str(study / "release"), "--features", "none", "--predictors",
                 "constant,random,depth", "--n-boot", "100", "--out", str(tmp_path), "--no-progress"])
    assert code == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "| depth |" in out and "leave-one-model-out" in out
    assert (tmp_path / "leave-one-model-out" / "predictions" / "depth.csv").is_file()
    assert main(["run", "--dataset", str(study / "release"), "--split", "leave-one-modle-out", "--features",
                 "none", "--out", str(tmp_path)]) == 2
    assert "did you mean" in capsys.readouterr().err
