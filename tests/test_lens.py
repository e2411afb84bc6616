"""The lens stage's pieces: the logit lens equals the model's own final norm and unembedding at every point, the
tuned lens's dual-form translator equals the primal ridge regression, and the per-item measures (emergence,
overtaking) follow their definitions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from blindspot.config import ModelConfig
from blindspot.models.inference import Request, encode_batch, option_token_ids
from blindspot.models.loading import load_model
from blindspot.models.prompts import render_prompt
from blindspot.stages.lens import LensItems, Readout, as_label, fit_translators, item_measures, item_rows

LABELS = ("A", "B", "C")


@pytest.mark.parametrize("family", ["qwen2_5_vl", "llava_next"])
def test_the_logit_lens_is_the_models_own_norm_and_unembedding_at_every_point(
    tiny_models: dict[str, Path], family: str
) -> None:
    loaded = load_model(ModelConfig(adapter=family, path=str(tiny_models[family])))
    prompt = render_prompt(loaded.processor, "Which?\nA. one\nB. two\nC. three", 0)
    inputs = encode_batch(loaded, [Request(prompt, (), None)])
    with torch.inference_mode():
        out = loaded.model(**inputs, output_hidden_states=True)
    readout = Readout(loaded, [LABELS])
    ids = option_token_ids(loaded.tokenizer, LABELS)
    n_points = len(out.hidden_states)
    for point, hidden in enumerate(out.hidden_states):
        last = point == n_points - 1
        state = hidden[:, -1].float().numpy()
        ours = readout.option_logprobs(readout.token_logits(readout.normed(state, last=last)), LABELS)
        with torch.inference_mode():  # independently: the model's own modules on the state
            normed = hidden[:, -1] if last else loaded.final_norm(hidden[:, -1])
            logits = loaded.model.lm_head(normed).float()
        per_label = torch.stack([torch.logsumexp(logits[:, ids[label]], dim=-1) for label in LABELS], dim=-1)
        expected = torch.log_softmax(per_label, dim=-1).numpy()
        np.testing.assert_allclose(ours, expected, atol=1e-5, err_msg=f"point {point}")
    final = torch.log_softmax(
        torch.stack([torch.logsumexp(out.logits[:, -1, ids[label]].float(), -1) for label in LABELS], -1), -1
    )
    np.testing.assert_allclose(ours, final.numpy(), atol=1e-5)  # the last point is the model's answer


class _Head:
    def __init__(self, weight: torch.Tensor) -> None:
        self.weight = weight


def test_the_dual_form_translator_equals_the_primal_ridge_regression() -> None:
    rng = np.random.default_rng(0)
    n, hidden, tokens, ridge = 40, 12, 5, 0.3
    x = torch.as_tensor(rng.normal(size=(n, hidden)))
    y = x @ torch.as_tensor(rng.normal(size=(hidden, hidden))) * 0.5 + torch.as_tensor(rng.normal(size=(n, hidden)))
    weight = torch.as_tensor(rng.normal(size=(tokens, hidden)))
    readout = Readout.__new__(Readout)
    readout.weight = weight.float()
    mx, q, c = fit_translators(x.float(), y.float(), readout, ridge)
    # primal: residual r = y - x regressed on centred x with penalty ridge * mean squared norm of centred x
    xc = x - x.mean(0)
    r = y - x
    penalty = ridge * float((xc**2).sum(1).mean())
    beta = torch.linalg.solve(xc.T @ xc + penalty * torch.eye(hidden, dtype=x.dtype), xc.T @ (r - r.mean(0)))
    translated = x + xc @ beta + r.mean(0)
    held_out = torch.as_tensor(rng.normal(size=(7, hidden)))
    expected = (held_out + (held_out - x.mean(0)) @ beta + r.mean(0)) @ weight.T
    ours = held_out.float() @ weight.T.float() + (held_out.float() - mx) @ q + c
    np.testing.assert_allclose(ours.numpy(), expected.numpy(), atol=1e-3)
    np.testing.assert_allclose(((x.float() - mx) @ q + c).numpy(), ((translated - x) @ weight.T).numpy(), atol=1e-3)


def _lp(tops: list[int], strength: float = 3.0) -> np.ndarray:
    """Log-probabilities over three options whose top option at each point is ``tops[point]``."""
    logits = np.zeros((len(tops), 3))
    for point, top in enumerate(tops):
        logits[point, top] = strength
    return logits - np.log(np.exp(logits).sum(-1, keepdims=True))


def test_emergence_is_the_first_point_from_which_the_final_answer_stays_on_top() -> None:
    assert item_measures(_lp([1, 0, 1, 2, 2]), LABELS, "C", None)["emergence"] == 3
    assert item_measures(_lp([2, 2, 2]), LABELS, "C", None)["emergence"] == 0
    assert item_measures(_lp([0, 2, 0, 0]), LABELS, "A", None)["emergence"] == 2
    measures = item_measures(_lp([1, 0, 2]), LABELS, "A", None)
    assert measures["final"] == "C" and measures["top"] == ["B", "A", "C"]
    np.testing.assert_allclose(measures["margin_gold"], [-3.0, 3.0, -3.0])
    np.testing.assert_allclose(measures["margin_final"], [-3.0, -3.0, 3.0])
    assert measures["overtaken"] is None and measures["margin_gold_prior"] is None


def test_the_prior_overtakes_a_gold_answer_that_led() -> None:
    gold, prior = "A", "B"
    led = item_measures(_lp([2, 0, 0, 1, 1]), LABELS, gold, prior)  # gold leads at 1-2, the prior wins from 3
    assert led["overtaken"] is True and led["overtake_layer"] == 3
    np.testing.assert_allclose(led["margin_gold_prior"], [0.0, 3.0, 3.0, -3.0, -3.0])
    never = item_measures(_lp([2, 1, 1, 1]), LABELS, gold, prior)  # the prior all along: nothing was overtaken
    assert never["overtaken"] is False and never["overtake_layer"] is None
    kept = item_measures(_lp([1, 0, 0]), LABELS, gold, prior)  # gold wins in the end
    assert kept["overtaken"] is False
    third = item_measures(_lp([0, 2, 1]), LABELS, gold, prior)  # gold led, then C, then the prior
    assert third["overtaken"] is True and third["overtake_layer"] == 2
    assert item_measures(_lp([0, 1]), LABELS, gold, gold)["overtaken"] is None  # prior = gold: not counted


def test_a_prior_answer_is_read_as_a_label_or_an_options_text() -> None:
    assert as_label("b", LABELS, None) == "B"
    assert as_label(" Blue ", LABELS, ["red", "blue", "green"]) == "B"
    assert as_label("purple", LABELS, ["red", "blue", "green"]) is None
    assert as_label(None, LABELS, None) is None


def test_item_rows_label_each_point_from_the_embeddings_up() -> None:
    items = LensItems(np.array([0]), ["i"], ["g"], [LABELS], ["A"], ["B"])
    rows = item_rows("blur/0", "logit", items, [item_measures(_lp([1, 0, 1]), LABELS, "A", "B")])
    assert [r["layer"] for r in rows] == [0, 1, 2]  # point 0 is the embeddings, the last the final norm
    assert [r["top"] for r in rows] == ["B", "A", "B"] and {r["final"] for r in rows} == {"B"}
    assert [r["margin_gold_prior"] for r in rows] == pytest.approx([-3.0, 3.0, -3.0])
