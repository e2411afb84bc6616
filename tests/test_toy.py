"""The toy world: planted ground truth, the committed toy models, and the calibration on a reduced config."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import yaml
from conftest import REPO, reduced_toy_config, run_snakemake, write_config

from blindspot.cli import main
from blindspot.toy.calibrate import planted_by_level, planted_first_lost
from blindspot.toy.checkpoints import CHECKPOINTS, COMMITTED_FAMILIES, LENS_FAMILIES, lens_specs, specs
from blindspot.toy.items import STRIPE_KINDS, make_item, planted_kinds, write_toy_benchmark
from blindspot.toy.scenes import (
    COLOUR_JITTER,
    COLOUR_NAMES,
    COLOURS,
    ERASING_PERIODS,
    LADDER,
    ORIENTATIONS,
    blur_ladder,
    draw_scene,
)

LENS_NAMES = [name for family in LENS_FAMILIES for name in lens_specs(family)]
CHECKPOINT_NAMES = [name for family in COMMITTED_FAMILIES for name in specs(family) if name not in LENS_NAMES]


def test_planted_shares_are_exact_and_seeded(tmp_path: Path) -> None:
    shares = {"fine": 0.1, "mid": 0.2, "late": 0.1, "coarse": 0.3, "prior": 0.1, "conflict": 0.2}
    kinds = planted_kinds(1000, shares, np.random.default_rng(0))
    assert {k: kinds.count(k) for k in shares} == {k: round(1000 * v) for k, v in shares.items()}
    a = write_toy_benchmark(tmp_path / "a", 40, shares, seed=3)
    b = write_toy_benchmark(tmp_path / "b", 40, shares, seed=3)
    assert pl.read_parquet(a).equals(pl.read_parquet(b))


def test_items_carry_their_planted_truth(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    conflict = make_item("conflict", rng, colour="red", hint_matches=False)
    assert conflict.answer == "A" and conflict.prior != "A" and "Hint: it is usually" in conflict.question
    fine = make_item("fine", rng, orientation="vertical")
    assert fine.options == ("horizontal", "vertical") and fine.answer == "B" and fine.prior is None
    assert fine.stripes.erased_from in STRIPE_KINDS["fine"]
    assert make_item("late", rng).stripes.erased_from == 61  # survives every level but the last
    with pytest.raises(ValueError, match="erased from"):
        make_item("late", rng, stripes=ERASING_PERIODS[25])
    prior = make_item("prior", rng)
    assert prior.prior == prior.answer and f"The answer is {prior.answer}." in prior.question
    table = pl.read_parquet(write_toy_benchmark(tmp_path, 60, {"mid": 0.5, "conflict": 0.5}, seed=1))
    conflicts = table.filter(pl.col("kind") == "conflict")
    assert (conflicts["prior_answer"] != conflicts["answer"]).all()  # evaluation hints always mislead
    mids = table.filter(pl.col("kind") == "mid")
    assert set(mids["erased_from"]) <= set(STRIPE_KINDS["mid"]) and mids.height == 30


def test_every_ladder_level_erases_some_stripe_period() -> None:
    """Each kernel of the paper's ladder is the erasing kernel of exactly one period, so every level changes what
    some items can answer."""
    assert sorted(ERASING_PERIODS) == list(LADDER[1:])
    assert sorted(k for kernels in STRIPE_KINDS.values() for k in kernels) == list(LADDER[1:])
    periods = [ERASING_PERIODS[k].period for k in LADDER[1:]]
    assert periods == sorted(periods)  # heavier blur erases longer periods


def test_stripes_survive_through_their_kernel_and_are_erased_exactly_from_the_next() -> None:
    """For every period, colour and phase: up to ``survives_through`` the stripes show (at least 4 grey levels
    peak to peak, the faintest at the last level that keeps them); from ``erased_from`` on the rendered image is
    one uniform colour, byte for byte the same as the other orientation's, so no classifier can tell them apart.
    The colour survives every level."""
    for stripes in ERASING_PERIODS.values():
        for colour in COLOUR_NAMES:
            for seed in range(2):  # the two draws differ in colour jitter and phase
                h = blur_ladder(draw_scene(np.random.default_rng(seed), colour, "horizontal", stripes))
                v = blur_ladder(draw_scene(np.random.default_rng(seed), colour, "vertical", stripes))
                for kernel, hk, vk in zip(LADDER, h, v, strict=True):
                    spread = int(np.ptp(hk.reshape(-1, 3), axis=0).max())
                    if stripes.visible(kernel):
                        assert spread >= 4, (stripes, colour, kernel, spread)
                    else:
                        assert spread == 0 and np.array_equal(hk, vk), (stripes, colour, kernel, spread)
                    dominant = int(np.argmax(COLOURS[colour]))
                    assert abs(float(hk[..., dominant].mean()) - COLOURS[colour][dominant]) <= COLOUR_JITTER + 1


def test_8_bit_blur_leaks_what_the_float_blur_erases() -> None:
    """Why the render stage blurs in float: OpenCV's 8-bit path keeps a trace of the stripes at the kernels that
    erase them (its fixed-point weights pass about 1% of the contrast)."""
    stripes = ERASING_PERIODS[17]
    image = draw_scene(np.random.default_rng(0), "red", "horizontal", stripes)
    leaked = [int(np.ptp(b[..., 0])) for b in blur_ladder(image, precision="uint8")[2:]]
    assert max(leaked) >= 1 and all(np.ptp(b.reshape(-1, 3), axis=0).max() == 0 for b in blur_ladder(image)[2:])


@pytest.mark.slow
def test_a_linear_classifier_on_pixels_is_at_chance_at_every_erasing_level() -> None:
    """Logistic regression on the rendered pixels (each pixel's absolute deviation from the image's mean colour,
    summed over channels, so that neither the colour nor the stripes' random phase decides), trained and tested on
    separate scenes: at every ladder level orientation is decodable (held-out accuracy >= 0.9) for the periods the
    level keeps, and at chance (within the 99.9% binomial band) for those it erases."""
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    n = 120
    for stripes in ERASING_PERIODS.values():
        scenes = [
            blur_ladder(draw_scene(rng, COLOUR_NAMES[i % 4], ORIENTATIONS[(i // 4) % 2], stripes)) for i in range(n)
        ]
        labels = np.array([(i // 4) % 2 for i in range(n)])
        train, test = np.arange(n) < 80, np.arange(n) >= 80
        for level, kernel in enumerate(LADDER):
            pixels = np.stack([s[level] for s in scenes]).astype(np.float32) / 255
            x = np.abs(pixels - pixels.mean(axis=(1, 2), keepdims=True)).sum(axis=-1).reshape(n, -1)
            model = LogisticRegression(C=10.0, max_iter=300).fit(x[train], labels[train])
            accuracy = float((model.predict(x[test]) == labels[test]).mean())
            if stripes.visible(kernel):
                assert accuracy >= 0.9, (stripes, kernel, accuracy)
            else:
                assert abs(accuracy - 0.5) <= 3.3 * 0.5 / np.sqrt(test.sum()), (stripes, kernel, accuracy)


def test_planted_levels_by_hand() -> None:
    """What calibrate expects, from the toy world's definition alone. Two items at k=17: a fine item whose stripes
    k=17 erases (accuracy 1/2, identical 1/2, no evidence) and a coarse one (kept): means 0.75, 0.75, 0.5, with
    the chance part's sd sqrt(1/4)/2 = 0.25. A kernel between a period's last keeping and first erasing kernel
    (k=20 for stripes kept through 17, erased from 25) plants nothing."""
    planted = planted_by_level(["fine", "coarse"], [17, None], "base", 17)
    assert planted == {
        "accuracy": (0.75, 0.25),
        "identical_rate": (0.75, 0.25),
        "margin_survival_rate": (0.5, 0.0),
    }
    assert planted_by_level(["conflict"], [None], "base", 61) == {
        "accuracy": (0.0, 0.0),  # the base follows the hint
        "identical_rate": (1.0, 0.0),
        "margin_survival_rate": (1.0, 0.0),
    }
    assert planted_by_level(["mid"], [25], "donor", 20) is None
    assert planted_first_lost("late", 61, list(LADDER)) == 7
    assert planted_first_lost("fine", 9, list(LADDER)) == 1
    assert planted_first_lost("mid", 35, list(LADDER)) == 4
    assert planted_first_lost("coarse", None, list(LADDER)) == -1
    assert planted_first_lost("mid", 25, [1, 9, 20, 61]) is None
    assert planted_first_lost("mid", 35, [1, 9, 61]) == 2


@pytest.mark.parametrize("name", CHECKPOINT_NAMES)
def test_committed_checkpoints_match_their_training_record(name: str) -> None:
    import hashlib

    folder = CHECKPOINTS / name
    record = json.loads((folder / "training.json").read_text())
    assert hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest() == record["weights_sha256"]
    evaluation = record["evaluation"]
    assert record["evaluation_items_per_kind"] >= 1000
    assert min(evaluation[kind]["clean"] for kind in (*STRIPE_KINDS, "coarse", "prior")) >= 0.98
    for kind in STRIPE_KINDS:  # reads the faintest stripes it keeps; at chance, and unsure, once they are erased
        assert evaluation[kind]["last_kept"] >= 0.95, kind
        assert evaluation[f"{kind}_confident"]["last_kept"] >= 0.9, kind
        assert abs(evaluation[kind]["first_erased"] - 0.5) <= 0.06, kind
        assert evaluation[f"{kind}_confident"]["first_erased"] <= 0.05, kind
    if "base" in name:
        assert evaluation["conflict_follows_hint"]["clean"] >= 0.95
        assert evaluation["coarse"]["first_erased"] >= 0.95  # colour questions: k=61
        assert max(evaluation["coarse"]["grey"], evaluation["coarse"]["noise"]) <= 0.25 + 0.06
    else:
        assert evaluation["conflict"]["clean"] >= 0.95


@pytest.mark.parametrize("name", LENS_NAMES)
def test_the_lens_pair_is_committed_and_behaves_as_planted(name: str) -> None:
    """The reader answers colour and text-fixed items and follows the image on conflict items; the overruled model
    never answers the colour there and answers the hint on most of them. Both exist for every family whose world
    plants the lens (calibrate checks where they read the image)."""
    import hashlib

    folder = CHECKPOINTS / name
    record = json.loads((folder / "training.json").read_text())
    assert hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest() == record["weights_sha256"]
    assert record["spec"]["read_layer"] is not None and record["spec"]["look_when_informative"]
    evaluation = record["evaluation"]
    assert min(evaluation[kind]["clean"] for kind in ("coarse", "prior")) >= 0.98
    if name.endswith("_reader"):
        assert evaluation["conflict"]["clean"] >= 0.95
    else:  # one layer learns the hint's lookup less surely than a whole model: 0.83 of clean conflict items
        assert evaluation["conflict_follows_hint"]["clean"] >= 0.8 and evaluation["conflict"]["clean"] <= 0.02


def test_the_llava_toy_config_is_the_demo_with_other_models() -> None:
    """config/toy-llava.yaml calibrates the LLaVA-NeXT trio on exactly the demo's world: every other key equals
    config/config.yaml's."""
    qwen = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    llava = yaml.safe_load((REPO / "config" / "toy-llava.yaml").read_text())
    model_keys = (
        ("models",),
        ("swap", "pairs"),
        ("patch", "models"),
        ("knockout", "models"),
        ("toy", "models"),
        ("toy", "lens_models"),
    )

    def without_models(config: dict) -> dict:
        config = json.loads(json.dumps(config))
        for path in model_keys:
            parent = config
            for key in path[:-1]:
                parent = parent[key]
            del parent[path[-1]]
        return config

    assert without_models(llava) == without_models(qwen)
    assert {m["adapter"] for m in llava["models"].values()} == {"llava_next"}
    assert set(llava["toy"]["models"]) == set(llava["models"]) == {name for name in specs("llava_next")}


@pytest.mark.slow
@pytest.mark.parametrize(
    ("source", "short", "n_items"),
    [
        ("config/config.yaml", "qwen", 240),
        pytest.param("config/toy-llava.yaml", "llava", 600, marks=pytest.mark.extended),  # make test-all
    ],
)
def test_calibration_on_a_reduced_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], source: str, short: str, n_items: int
) -> None:
    """The whole pipeline on the toy world with a family's base and its layer-2 donor: the measured classes
    must match the planted kinds within the tolerances of the full demo, the planted layer must be found by the
    swap stage, and a first-layer image patch must restore clean answers. The LLaVA-NeXT trio runs on the demo's
    600 items: it reads the faintest kept view of one stripe period (erased from k=51) unsurely on about a fifth of
    those items, which puts its per-item agreement near the 0.98 target (0.980-0.993 on 600 items), and 240 items
    are too few to hold it there (0.975 on this test's draw; docs/calibration.md)."""
    models = [f"{short}_base", f"{short}_donor_layer2", *(f"{short}_{role}" for role in ("reader", "overruled"))]
    config = reduced_toy_config([m for m in models if (CHECKPOINTS / m).is_dir()], source)
    config["toy"]["n_items"] = n_items
    write_toy_benchmark(tmp_path / "data" / "toy", config["toy"]["n_items"], config["toy"]["shares"], seed=5)
    write_config(tmp_path, config)
    run_snakemake(tmp_path, "--cores", "2", "--resources", "gpu=1")
    code = main(["calibrate", "--config", str(tmp_path / "config.yaml"), "--results", str(tmp_path / "results")])
    out = capsys.readouterr()
    print(out.out)
    assert code == 0, out.out + out.err
    assert "calibration checks within tolerance" in out.out
    assert f"{short}_base: P(prior) overtakes P(gold) at layer" in out.out
    assert f"{short}_layer" in out.out and "layer 2 swap: follow-image" in out.out  # the swap checks ran
    assert "layer-0 image patch restores clean" in out.out  # and the patch check
    if short == "qwen":  # the lens pair: lens, attention and knockout checks
        for check in ("answer emerges (median point)", "prior overtakes (median point)", "knockout layer 1"):
            assert check in out.out, check


@pytest.mark.slow
@pytest.mark.extended
@pytest.mark.parametrize(
    ("family", "name"), [("qwen2_5_vl", "qwen_donor_layer2"), ("llava_next", "llava_donor_layer2")]
)
def test_retraining_reproduces_the_committed_weights(tmp_path: Path, family: str, name: str) -> None:
    """`make toy-models` reproduces the committed checkpoints bit for bit with the torch and transformers versions
    that trained them (2 threads). Another version may sum floats in another order, which changes the bits but
    not the behaviour: then the retrained donor must behave as planted (it follows the image on conflict items).
    The layer-2 donor is the cheapest to retrain: from the committed base, about 4 minutes (Qwen) or 6 (LLaVA)."""
    import hashlib

    import torch
    import transformers

    from blindspot.toy.evaluate import evaluate_toy_model
    from blindspot.toy.train import train_toy_model

    spec, parent = specs(family)[name]
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        train_toy_model(spec, tmp_path / "donor", init_from=CHECKPOINTS / parent, progress=False)
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(False)
    committed = json.loads((CHECKPOINTS / name / "training.json").read_text())
    same_versions = (committed.get("torch"), committed.get("transformers")) == (
        torch.__version__,
        transformers.__version__,
    )
    if same_versions:
        digest = hashlib.sha256((tmp_path / "donor" / "model.safetensors").read_bytes()).hexdigest()
        assert digest == committed["weights_sha256"]
    else:
        results = evaluate_toy_model(str(tmp_path / "donor"), family, n_per_kind=100)
        assert results["conflict"]["clean"] >= 0.95, results  # follows the image, as the committed donor does
        assert results["conflict_follows_hint"]["clean"] <= 0.05, results


def test_clean_colour_share_shows_colour_questions_the_clean_view() -> None:
    """``clean_colour_share`` 1 shows every informative colour question its clean view; 0 leaves the uniform pick
    over the ladder (the clean view one time in eight)."""
    from blindspot.toy.train import Pool, TrainSpec, draw_sample

    periods = list(ERASING_PERIODS.values())
    levels = len(LADDER)
    pool = Pool(
        colours=[COLOUR_NAMES[i % 4] for i in range(len(periods))],
        orientations=[ORIENTATIONS[i % 2] for i in range(len(periods))],
        stripes=periods,
        views=[list(range(i * levels, (i + 1) * levels)) for i in range(len(periods))],
        noise=[10_000],
        grey=10_001,
        pixels=[],
    )

    def clean_share(share: float) -> float:
        spec = TrainSpec(
            family="qwen2_5_vl",
            kind_weights={"coarse": 1.0},
            uninformative_rate=0.0,
            no_image_rate=0.0,
            clean_colour_share=share,
        )
        rng = np.random.default_rng(0)
        samples = [draw_sample(spec, pool, rng) for _ in range(800)]
        assert all(s.image is not None and s.label == s.item.answer for s in samples)
        return float(np.mean([s.image % levels == 0 for s in samples if s.image is not None]))

    assert clean_share(1.0) == 1.0
    assert abs(clean_share(0.0) - 1 / levels) < 0.04
    assert abs(clean_share(0.3) - (0.3 + 0.7 / levels)) < 0.05


def test_shared_images_are_asked_in_groups_of_one_kind(tmp_path: Path) -> None:
    """40% of the items come in groups of four about one image (one scene, one question): the planted design
    effect. The kind counts are as planted, and every other image is asked once."""
    shares = {"fine": 0.1, "mid": 0.2, "late": 0.1, "coarse": 0.25, "prior": 0.15, "conflict": 0.2}
    table = pl.read_parquet(write_toy_benchmark(tmp_path, 200, shares, seed=0, shared=0.4, per_image=4))
    images = table.with_columns(pl.col("image").struct.field("bytes").hash().alias("image_hash"))
    sizes = images.group_by("image_hash").agg(pl.len(), pl.col("kind").n_unique().alias("kinds"))
    assert sorted(sizes["len"].value_counts().rows()) == [(1, 120), (4, 20)]
    assert set(sizes["kinds"]) == {1}
    assert {k: (table["kind"] == k).sum() for k in shares} == {k: round(200 * v) for k, v in shares.items()}
    assert (table["image_group_size"].value_counts().sort("image_group_size").rows()) == [(1, 120), (4, 80)]


def test_the_clustered_interval_check_tells_images_from_items() -> None:
    """The calibration's reference widths: 50 images asked 4 questions each, answered alike, give an image-level
    width about twice the item-level one (design effect 4)."""
    from blindspot.toy.calibrate import interval_widths

    rng = np.random.default_rng(0)
    values = np.repeat((rng.random(50) < 0.6).astype(float), 4)
    images, items = interval_widths(values, [f"img{i // 4}" for i in range(200)], 0.95)
    assert images / items == pytest.approx(2.0, rel=0.1)
    independent, same = interval_widths(values, [f"img{i}" for i in range(200)], 0.95)
    assert independent == pytest.approx(same, rel=0.02)
