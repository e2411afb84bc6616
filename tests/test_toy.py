"""The toy world: planted ground truth, the committed toy models, and the calibration on a reduced config."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from conftest import REPO, run_snakemake, write_config

from blindspot.cli import main
from blindspot.toy.checkpoints import CHECKPOINTS, specs
from blindspot.toy.items import make_item, planted_kinds, write_toy_benchmark
from blindspot.toy.scenes import draw_scene

CHECKPOINT_NAMES = [name for family in ("qwen2_5_vl", "llava_next") for name in specs(family)]


def test_planted_shares_are_exact_and_seeded(tmp_path: Path) -> None:
    shares = {"fine": 0.3, "coarse": 0.3, "prior": 0.2, "conflict": 0.2}
    kinds = planted_kinds(1000, shares, np.random.default_rng(0))
    assert {k: kinds.count(k) for k in shares} == {"fine": 300, "coarse": 300, "prior": 200, "conflict": 200}
    a = write_toy_benchmark(tmp_path / "a", 40, shares, seed=3)
    b = write_toy_benchmark(tmp_path / "b", 40, shares, seed=3)
    assert pl.read_parquet(a).equals(pl.read_parquet(b))


def test_items_carry_their_planted_truth(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    conflict = make_item("conflict", rng, colour="red", hint_matches=False)
    assert conflict.answer == "A" and conflict.prior != "A" and "Hint: it is usually" in conflict.question
    fine = make_item("fine", rng, orientation="vertical")
    assert fine.options == ("horizontal", "vertical") and fine.answer == "B" and fine.prior is None
    prior = make_item("prior", rng)
    assert prior.prior == prior.answer and f"The answer is {prior.answer}." in prior.question
    table = pl.read_parquet(write_toy_benchmark(tmp_path, 50, {"fine": 0.5, "conflict": 0.5}, seed=1))
    conflicts = table.filter(pl.col("kind") == "conflict")
    assert (conflicts["prior_answer"] != conflicts["answer"]).all()  # evaluation hints always mislead


def test_stripes_vanish_under_heavy_blur_but_colour_stays() -> None:
    import cv2

    image = draw_scene(np.random.default_rng(0), "blue", "vertical").astype(float)
    disc = (slice(44, 68), slice(44, 68))
    for k, visible in ((1, True), (25, False), (61, False)):
        blurred = image if k == 1 else cv2.GaussianBlur(image, (k, k), 0)
        amplitude = blurred[disc][..., 2].std(axis=1).mean()  # variation across columns: vertical stripes
        assert (amplitude > 10) == visible, (k, amplitude)
        assert blurred[disc][..., 2].mean() > blurred[disc][..., 0].mean() + 60  # still blue


def test_heavy_blur_leaves_no_orientation_cue() -> None:
    """Horizontal and vertical discs of the same colour and position are indistinguishable after heavy blur: at
    most 2 grey levels apart at k=25 (residual stripe amplitude and rounding), at most 1 (rounding) from k=35 on.
    Without the stripes' taper the disc's rim kept a direction cue of up to 7 grey levels."""
    import cv2

    from blindspot.toy.scenes import COLOUR_NAMES

    for seed in range(3):
        for colour in COLOUR_NAMES:
            h = draw_scene(np.random.default_rng(seed), colour, "horizontal")
            v = draw_scene(np.random.default_rng(seed), colour, "vertical")
            for k, bound in ((25, 2), (35, 1), (61, 1)):
                blur_h = cv2.GaussianBlur(h, (k, k), 0).astype(int)
                difference = np.abs(blur_h - cv2.GaussianBlur(v, (k, k), 0).astype(int))
                assert difference.max() <= bound, (seed, colour, k, difference.max())


@pytest.mark.parametrize("name", CHECKPOINT_NAMES)
def test_committed_checkpoints_match_their_training_record(name: str) -> None:
    import hashlib

    folder = CHECKPOINTS / name
    record = json.loads((folder / "training.json").read_text())
    assert hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest() == record["weights_sha256"]
    evaluation = record["evaluation"]
    assert record["evaluation_items_per_kind"] >= 1000
    assert min(evaluation[kind]["clean"] for kind in ("fine", "coarse", "prior")) >= 0.98
    if "base" in name:
        assert evaluation["conflict_follows_hint"]["clean"] >= 0.95
        assert evaluation["fine"]["blur61"] <= 0.5 + 0.06
        assert evaluation["coarse"]["blur61"] >= 0.95
        assert max(evaluation["coarse"]["grey"], evaluation["coarse"]["noise"]) <= 0.25 + 0.06
    else:
        assert evaluation["conflict"]["clean"] >= 0.95


@pytest.mark.slow
def test_calibration_on_a_reduced_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The whole pipeline on 240 toy items with both base models and their layer-0 donors: the measured classes
    must match the planted kinds within the tolerances of the full demo."""
    models = ["qwen_base", "qwen_donor_layer0", "llava_base", "llava_donor_layer0"]
    config = yaml_config(models)
    write_toy_benchmark(tmp_path / "data" / "toy", 240, config["toy"]["shares"], seed=5)
    write_config(tmp_path, config)
    run_snakemake(tmp_path, "--cores", "2", "--resources", "gpu=1")
    code = main(["calibrate", "--config", str(tmp_path / "config.yaml"), "--results", str(tmp_path / "results")])
    out = capsys.readouterr()
    print(out.out)
    assert code == 0, out.out + out.err
    assert "calibration checks within tolerance" in out.out
    assert "qwen_base: P(prior) overtakes P(gold) at layer" in out.out


def yaml_config(models: list[str]) -> dict:
    import yaml

    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["benchmarks"]["toy"]["path"] = "data/toy/items.parquet"
    config["models"] = {
        name: {**config["models"][name], "path": str(REPO / config["models"][name]["path"])} for name in models
    }
    config["toy"]["models"] = {name: config["toy"]["models"][name] for name in models}
    config["render"]["pixelate"] = {"enabled": False}
    config["decay"]["bootstrap"] = 200
    return config


@pytest.mark.slow
def test_retraining_reproduces_the_committed_weights(tmp_path: Path) -> None:
    """`make toy-models` reproduces the committed checkpoints bit for bit with the torch and transformers versions
    that trained them (2 threads). Another version may sum floats in another order, which changes the bits but
    not the behaviour: then the retrained donor must behave as planted (it follows the image on conflict items).
    The layer-0 donor is the cheapest to retrain: from the committed base, about a minute."""
    import hashlib

    import torch
    import transformers

    from blindspot.toy.evaluate import evaluate_toy_model
    from blindspot.toy.train import train_toy_model

    spec, parent = specs("qwen2_5_vl")["qwen_donor_layer0"]
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        train_toy_model(spec, tmp_path / "donor", init_from=CHECKPOINTS / parent, progress=False)
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(False)
    committed = json.loads((CHECKPOINTS / "qwen_donor_layer0" / "training.json").read_text())
    same_versions = (committed.get("torch"), committed.get("transformers")) == (
        torch.__version__,
        transformers.__version__,
    )
    if same_versions:
        digest = hashlib.sha256((tmp_path / "donor" / "model.safetensors").read_bytes()).hexdigest()
        assert digest == committed["weights_sha256"]
    else:
        results = evaluate_toy_model(str(tmp_path / "donor"), "qwen2_5_vl", n_per_kind=100)
        assert results["conflict"]["clean"] >= 0.95, results  # follows the image, as the committed donor does
        assert results["conflict_follows_hint"]["clean"] <= 0.05, results
