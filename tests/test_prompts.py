"""The prompt text before any chat template: instructions are added once, never stacked."""

from __future__ import annotations

import pytest

from blindspot.prompts import PROMPTS, carries_instruction, question_text


@pytest.mark.parametrize(
    "question",
    [
        "Is there a dog in this image? Please answer yes or no.",  # MME
        "How many cars are there? Please answer directly with a single number.",  # RealWorldQA
        "What is shown?\nAnswer with the option's letter from the given choices directly.",
        "Is the cup red? Answer yes/no.",
        "What is the man holding? Answer the question using a single word or phrase.",
    ],
)
def test_a_question_with_its_own_instruction_gets_none_added(question: str) -> None:
    assert carries_instruction(question)
    answer_type = "yes_no" if "yes" in question else "open"
    assert question_text(question, None, answer_type, "v2") == question
    # v1 (lmms-eval's layout) always adds its instruction
    assert question_text(question, None, answer_type, "v1") == f"{question}\n{PROMPTS['v1'].instruction(answer_type)}"


@pytest.mark.parametrize(
    "question",
    [
        "Is there a dog in this image?",
        "What number is on the bus?",  # a form word, but no request to answer
        "Which option would you choose for dinner?",  # no answer form after the question mark
        "Answer: what colour is the car?",  # the verb, but before the question
        "Should he reply yes or no to the letter?",
    ],
)
def test_a_bare_question_gets_the_instruction(question: str) -> None:
    assert not carries_instruction(question)
    instruction = "\nAnswer the question using a single word: yes or no."
    assert question_text(question, None, "yes_no", "v2").endswith(instruction)
