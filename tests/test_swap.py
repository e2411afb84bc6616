"""The swap stage: specs, in-place swaps that restore the base bit for bit, the identities (an identical donor
changes nothing, every unit swapped is the donor), a LoRA donor against PEFT, the metrics by hand, and the stage
end to end with its resume shards."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch
from conftest import slice_json

from blindspot.config import ConfigError, ModelConfig, SwapConfig, SwapSpecs, parse_config
from blindspot.models.families import get_family
from blindspot.models.loading import LoadedModel, load_model
from blindspot.models.tiny import build_tiny_model
from blindspot.stages.slices import SwapSlice
from blindspot.stages.swap import (
    SwapError,
    SwapSpec,
    WeightSwap,
    build_specs,
    spec_parameters,
    swap_benchmark,
    swap_metrics,
)

FAMILIES = ("qwen2_5_vl", "llava_next")


def test_build_specs_four_layers():
    specs = build_specs(
        SwapSpecs(first_n=[1, 2], last_n=[1], windows=[1, 2], units=["projector"]), 4, get_family("qwen2_5_vl")
    )
    by_name = {s.name: s for s in specs}
    assert [s.name for s in specs] == [
        "base", "first_1", "first_2", "last_1", "layer_0", "layer_1", "layer_2", "layer_3",
        "layers_0-1", "layers_1-2", "layers_2-3", "projector", "donor",
    ]  # fmt: skip
    assert by_name["first_2"].layers == (0, 1) and by_name["last_1"].layers == (3,)
    assert by_name["layers_2-3"].layers == (2, 3) and by_name["base"].layers == ()
    assert by_name["donor"].everything
    with pytest.raises(SwapError, match=r"swap.specs.last_n: 5 exceeds the model's 4 decoder layers"):
        build_specs(SwapSpecs(last_n=[5]), 4, get_family("qwen2_5_vl"))
    with pytest.raises(SwapError, match=r"the auto family has no swap unit 'projector'"):
        build_specs(SwapSpecs(units=["projector"]), 4, get_family("auto"))


def test_specs_on_a_model_with_twelve_layers_never_mix_layer_1_with_10_and_11():
    """Parameter names of layer 1 are a string prefix of layers 10 and 11's: a spec of layer 1 must take only
    layer 1, last_2 layers 10 and 11, and a two-layer window at 9 layers 9 and 10."""
    family = get_family("qwen2_5_vl")
    names = [
        f"{family.layer_prefix(i)}.{part}"
        for i in range(12)
        for part in ("mlp.up_proj.weight", "input_layernorm.weight")
    ]
    names += ["model.language_model.embed_tokens.weight", "lm_head.weight"]
    specs = {s.name: s for s in build_specs(SwapSpecs(first_n=[2], last_n=[2], windows=[1, 2], units=[]), 12, family)}
    layer_of = lambda name: int(name.removeprefix(family.layer_prefix(0)[:-1]).split(".")[0])  # noqa: E731
    assert {layer_of(n) for n in spec_parameters(specs["layer_1"], family, names)} == {1}
    assert len(spec_parameters(specs["layer_1"], family, names)) == 2
    assert {layer_of(n) for n in spec_parameters(specs["last_2"], family, names)} == {10, 11}
    assert {layer_of(n) for n in spec_parameters(specs["layers_9-10"], family, names)} == {9, 10}
    assert {layer_of(n) for n in spec_parameters(specs["first_2"], family, names)} == {0, 1}
    assert "layer_11" in specs and "layers_10-11" in specs and "layer_12" not in specs
    assert len(spec_parameters(specs["donor"], family, names)) == len(names)


def _state_digest(model: torch.nn.Module) -> str:
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


@pytest.fixture(scope="module")
def pairs(tmp_path_factory: pytest.TempPathFactory, tiny_models: dict[str, Path]) -> dict[str, tuple[Path, Path]]:
    """Per family: the tiny model and a donor of the same architecture with other weights."""
    root = tmp_path_factory.mktemp("donors")
    return {f: (tiny_models[f], build_tiny_model(f, root / f, seed=5)) for f in FAMILIES}  # type: ignore[arg-type]


def _load(family: str, path: Path) -> LoadedModel:
    return load_model(ModelConfig(adapter=family, path=str(path)))  # type: ignore[arg-type]


def _logits(loaded: LoadedModel) -> torch.Tensor:
    ids = loaded.tokenizer("What color is it?", return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        return loaded.model(input_ids=ids).logits[:, -1].float()


@pytest.mark.parametrize("family", FAMILIES)
def test_every_parameter_has_a_unit(family: str, tiny_models: dict[str, Path]):
    """Units and decoder layers together cover every parameter, so swapping them all is the donor."""
    loaded = _load(family, tiny_models[family])
    names = [n for n, _ in loaded.model.named_parameters(remove_duplicate=False)]
    family_record = get_family(family)
    spec = SwapSpec("all_units", "unit", tuple(range(len(loaded.layers))), tuple(u for u, _ in family_record.units))
    assert set(spec_parameters(spec, family_record, names)) == set(names)
    for unit, _ in family_record.units:  # each unit places at least one parameter
        assert spec_parameters(SwapSpec(unit, "unit", units=(unit,)), family_record, names)


@pytest.mark.parametrize("family", FAMILIES)
def test_swap_identities(family: str, pairs: dict[str, tuple[Path, Path]]):
    base_path, donor_path = pairs[family]
    base, donor, twin = _load(family, base_path), _load(family, donor_path), _load(family, base_path)
    record = get_family(family)
    before, base_logits, donor_logits = _state_digest(base.model), _logits(base), _logits(donor)
    assert not torch.allclose(base_logits, donor_logits)
    donor_params = {n: p.detach() for n, p in donor.model.named_parameters(remove_duplicate=False)}
    swap = WeightSwap(base.model, donor_params, ("base", "donor"))
    same = WeightSwap(base.model, {n: p.detach() for n, p in twin.model.named_parameters()}, ("base", "twin"))
    specs = build_specs(SwapSpecs(windows=[1, 2]), len(base.layers), record)
    for spec in specs:
        names = spec_parameters(spec, record, swap.names)
        with same.swapped(names):  # a swap from an identical checkpoint changes nothing
            assert torch.equal(_logits(base), base_logits), spec.name
        with swap.swapped(names):
            hybrid = _logits(base)
            if spec.name == "base":
                assert torch.equal(hybrid, base_logits)
            elif spec.name == "donor":
                assert torch.equal(hybrid, donor_logits)
            elif spec.kind == "window" and spec.layers == (1,):
                assert not torch.allclose(hybrid, base_logits)  # one decoder layer of another model changes the answer
    every_unit = SwapSpec("units", "unit", tuple(range(len(base.layers))), tuple(u for u, _ in record.units))
    with swap.swapped(spec_parameters(every_unit, record, swap.names)):
        assert torch.equal(_logits(base), donor_logits)
    assert _state_digest(base.model) == before  # the base is bit-identical after the sweep


def test_architecture_mismatch(tmp_path: Path, tiny_models: dict[str, Path]):
    small = _load("qwen2_5_vl", tiny_models["qwen2_5_vl"])
    wider = _load("qwen2_5_vl", build_tiny_model("qwen2_5_vl", tmp_path / "w", hidden=32))
    params = {n: p.detach() for n, p in wider.model.named_parameters()}
    with pytest.raises(
        SwapError, match=r"base 'a' and donor 'b' differ: 'model\.[^']+' is \(\d+(, \d+)*\) in the base"
    ):
        WeightSwap(small.model, params, ("a", "b"))
    llava = _load("llava_next", tiny_models["llava_next"])
    with pytest.raises(SwapError, match=r"base 'a' and donor 'b' differ: the donor has no '"):
        WeightSwap(small.model, {n: p.detach() for n, p in llava.model.named_parameters()}, ("a", "b"))


def test_config_pairs(tiny_models: dict[str, Path]):
    models = {
        "q": {"adapter": "qwen2_5_vl", "path": "x"},
        "l": {"adapter": "llava_next", "path": "y"},
    }
    base = {"benchmarks": {"b": {"adapter": "generic", "path": "p", "answer_type": "open"}}, "models": models}
    with pytest.raises(ConfigError, match=r"swap.pairs.p: base 'q' \(qwen2_5_vl\) and donor 'l' \(llava_next\) do not"):
        parse_config(base | {"swap": {"pairs": {"p": {"base": "q", "donor": "l"}}}})
    with pytest.raises(ConfigError, match=r"swap.pairs.p.donor: 'z' is not one of the models"):
        parse_config(base | {"swap": {"pairs": {"p": {"base": "q", "donor": "z"}}}})
    with pytest.raises(ConfigError, match=r"exactly one of donor .* or adapter"):
        parse_config(base | {"swap": {"pairs": {"p": {"base": "q"}}}})


def test_lora_donor_equals_peft(tmp_path: Path, tiny_models: dict[str, Path]):
    """A LoRA adapter merged on load gives what PEFT gives running the adapter unmerged."""
    peft = pytest.importorskip("peft")
    from blindspot.config import SwapPair
    from blindspot.stages.swap import load_donor

    config = ModelConfig(adapter="qwen2_5_vl", path=str(tiny_models["qwen2_5_vl"]))
    torch.manual_seed(0)
    lora = peft.LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    adapted = peft.get_peft_model(load_model(config).model, lora)
    adapted.save_pretrained(tmp_path / "adapter")
    base = load_model(config)
    with torch.inference_mode():
        expected = _logits(LoadedModel(adapted, base.processor, base.family, config, base.device, base.dtype))
    merged = load_donor(SwapPair(base="q", adapter=str(tmp_path / "adapter")), config, None)
    swap = WeightSwap(base.model, merged, ("q", "adapter"))
    base_logits = _logits(base)
    with swap.swapped(swap.names):
        torch.testing.assert_close(_logits(base), expected, rtol=0, atol=1e-5)
    assert not torch.allclose(base_logits, expected, atol=1e-3)  # the adapter changes the model


def test_swap_metrics_by_hand():
    items = [
        {"item_id": f"i{k}", "answer_type": "multiple_choice", "answer": "A", "image_keys": [f"img{k}"],
         "metadata": json.dumps({"prior_answer": prior})}
        for k, prior in enumerate(["B", "B", None, "A"])
    ]  # fmt: skip
    answers = {  # spec -> the four items' parsed answers
        "base": ["B", "B", "A", "A"],
        "donor": ["A", "A", "A", "C"],
        "layer_1": ["A", "B", "C", "A"],
    }
    rows = [
        {"spec": spec, "item_id": f"i{k}", "family": "blur", "level": 0, "param": 1.0, "parsed": a,
         "score": float(a == "A")}
        for spec, values in answers.items()
        for k, a in enumerate(values)
    ]  # fmt: skip
    specs = [
        SwapSpec("base", "reference"),
        SwapSpec("layer_1", "window", (1,)),
        SwapSpec("donor", "reference", everything=True),
    ]
    out = {
        r["spec"]: r
        for r in swap_metrics(pl.DataFrame(rows), items, specs, "prior_answer", SwapConfig(bootstrap=50), 0)
    }
    hybrid = out["layer_1"]
    assert hybrid["accuracy"] == pytest.approx(2 / 4)
    assert hybrid["flip_vs_base"] == pytest.approx(2 / 4)  # i0 (B -> A) and i2 (A -> C)
    assert hybrid["flip_vs_donor"] == pytest.approx(3 / 4)  # i1, i2, i3
    # prior differs from gold on i0 and i1 only (i2 has none, i3's prior is the gold)
    assert hybrid["n_prior_differs"] == 2
    assert hybrid["follow_prior"] == pytest.approx(1 / 2) and hybrid["follow_image"] == pytest.approx(1 / 2)
    assert out["base"]["follow_prior"] == 1.0 and out["donor"]["follow_image"] == 1.0
    assert out["base"]["flip_vs_base"] == 0.0 and out["donor"]["flip_vs_donor"] == 0.0
    for r in out.values():  # intervals never collapse, even at 0 and 1
        assert r["flip_vs_base_ci_low"] < r["flip_vs_base_ci_high"]


def test_swap_stage(pairs: dict[str, tuple[Path, Path]], small_benchmark: dict[str, Path], tmp_path: Path, monkeypatch):
    import blindspot.stages.swap as swap_module

    base_path, donor_path = pairs["qwen2_5_vl"]
    config = SwapSlice.model_validate_json(
        slice_json(
            "swap",
            pair={"base": "b", "donor": "d"},
            base={"adapter": "qwen2_5_vl", "path": str(base_path), "batch_size": 4, "max_new_tokens": 2},
            donor={"adapter": "qwen2_5_vl", "path": str(donor_path)},
            swap={"specs": {"first_n": [1, 2], "last_n": [2], "windows": [1], "units": ["projector"]},
                  "conditions": ["blur/0", "none"], "bootstrap": 20},
            prompt={},
            prior_field="prior_answer",
            seed=0,
        )
    )  # fmt: skip
    outputs = {"swaps": tmp_path / "s.parquet", "answers": tmp_path / "s.answers.parquet"}
    real, calls = swap_module.predict_units, []

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(swap_module, "predict_units", failing)
    with pytest.raises(KeyboardInterrupt):
        swap_benchmark("p", "small", config, small_benchmark["items"], small_benchmark["render"], outputs)
    assert not outputs["swaps"].exists()
    calls.clear()
    monkeypatch.setattr(swap_module, "predict_units", lambda *a, **k: calls.append(1) or real(*a, **k))
    rows = swap_benchmark("p", "small", config, small_benchmark["items"], small_benchmark["render"], outputs)
    specs = ["base", "first_1", "first_2", "last_2", "layer_0", "layer_1", "projector", "donor"]
    # resumed after the first two specs (base, first_1); last_2 = first_2 (the tiny model's two layers) and
    # layer_0 = first_1 are evaluated once: first_2, layer_1, projector and donor remain
    assert len(calls) == 4
    table = pl.read_parquet(outputs["swaps"])
    assert table["spec"].unique(maintain_order=True).to_list() == specs
    assert table.height == len(specs) * 2
    answers = pl.read_parquet(outputs["answers"])
    assert answers.height == len(specs) * 2 * 6
    first_2 = answers.filter(pl.col("spec") == "first_2").drop("spec")
    assert first_2.equals(answers.filter(pl.col("spec") == "last_2").drop("spec"))
    base_rows = table.filter(pl.col("spec") == "base")
    assert base_rows["flip_vs_base"].to_list() == [0.0, 0.0]
    assert np.all(table.filter(pl.col("spec") == "donor")["flip_vs_donor"].to_numpy() == 0.0)
    assert {r["spec"] for r in rows} == set(specs)


def test_lora_without_peft_is_a_one_line_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    import sys

    from blindspot.config import SwapPair
    from blindspot.stages.swap import load_donor

    monkeypatch.setitem(sys.modules, "peft", None)  # import peft now raises ImportError
    config = ModelConfig(adapter="qwen2_5_vl", path="unused")
    with pytest.raises(SwapError, match=r"^pair.adapter: a LoRA adapter donor needs peft: pip install"):
        load_donor(SwapPair(base="q", adapter=str(tmp_path)), config, None)


def width(estimate_row: dict, metric: str) -> float:
    return estimate_row[f"{metric}_ci_high"] - estimate_row[f"{metric}_ci_low"]


def test_swap_intervals_cluster_items_by_source_image() -> None:
    """Forty images, five questions each, answered alike per image: the swap's accuracy interval rests on forty
    images. Clustered by item (a wrong cluster key), it would be about sqrt(5) narrower."""
    rng = np.random.default_rng(0)
    right = np.repeat(rng.random(40) < 0.6, 5)
    rows = [
        {"spec": spec, "item_id": f"i{k}", "family": "blur", "level": 0, "param": 1.0, "parsed": "A" if r else "B",
         "score": float(r)}
        for spec in ("base", "donor")
        for k, r in enumerate(right)
    ]  # fmt: skip
    specs = [SwapSpec("base", "reference"), SwapSpec("donor", "reference", everything=True)]

    def accuracy_width(image_of: Callable[[int], str]) -> float:
        items = [{"item_id": f"i{k}", "answer_type": "multiple_choice", "answer": "A", "image_keys": [image_of(k)],
                  "metadata": "{}"} for k in range(200)]  # fmt: skip
        (base,) = [r for r in swap_metrics(pl.DataFrame(rows), items, specs, None, SwapConfig(bootstrap=400), 0)
                   if r["spec"] == "base"]  # fmt: skip
        return width(base, "accuracy")

    assert accuracy_width(lambda k: f"img{k // 5}") > 1.6 * accuracy_width(lambda k: f"img{k}")
