"""reasoning: the F1 of what the <think> block names against a reference reasoning column,
the dataset column that feeds it, and the hedge it is there to stop."""

from __future__ import annotations

import os

import pytest
from PIL import Image

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from medground import rewards  # noqa: E402
from medground.data.schema import Sample  # noqa: E402
from medground.data.trl_dataset import grpo_dataset  # noqa: E402
from medground.errors import MedgroundError  # noqa: E402
from medground.rewards.reasoning import items_f1, reasoning_items  # noqa: E402


def think(text: str, answer: str = "[]") -> str:
    return f"<think>{text}</think><answer>{answer}</answer>"


def call(texts, references):
    f = rewards.get("reasoning")
    n = len(texts)
    return f(prompts=["p"] * n, completions=texts, completion_ids=[[0]] * n, reasoning=references)


def test_values_on_hand_built_reasonings():
    ref = "left upper mass, right lower mass"
    texts = [think("left upper mass, right lower mass"), think("Right lower mass and left upper mass."),
             think("left upper mass"), think("left upper mass, right lower mass, left lower mass"),
             think("no mass"), "<answer>[]</answer>", "<think>left upper mass"]
    # exact (any order, case, spacing, 'and'); half the items; one extra; nothing common; no (closed) think
    assert call(texts, [ref] * len(texts)) == pytest.approx([1.0, 1.0, 2 / 3, 0.8, 0.0, 0.0, 0.0])


def test_no_reference_is_not_applicable():
    assert call([think("no effusion")] * 3, [None, "", "  "]) == [None, None, None]
    # a dataset without the column: every sample is not applicable, nothing raises
    f = rewards.get("reasoning")
    assert f(prompts=["p"], completions=[think("x")], completion_ids=[[0]], boxes=[[]]) == [None]


def test_items_and_f1_helpers():
    assert reasoning_items(" Left  effusion ;right effusion,, ") == ["left effusion", "right effusion"]
    assert items_f1(["a", "a"], ["a"]) == 1.0  # a repeated item counts once
    assert items_f1([], ["a"]) == 0.0


def test_naming_every_finding_scores_below_naming_what_is_there():
    """The hedge the reward exists for: a reasoning that names both sides on every film
    (so that any side asked about gets a box) against one that names what each film shows."""
    truth = ["right pneumothorax", "no pneumothorax", "left pneumothorax", "right pneumothorax, left pneumothorax"]
    hedge = [think("right pneumothorax, left pneumothorax")] * len(truth)
    never = [think("no pneumothorax")] * len(truth)
    exact = [think(t) for t in truth]

    def mean(texts):
        return sum(call(texts, truth)) / len(truth)

    assert mean(exact) == 1.0
    assert mean(hedge) < 0.75 and mean(never) < 0.75


def test_the_grpo_dataset_fills_the_reference_from_each_samples_meta(tmp_path):
    Image.new("RGB", (40, 30)).save(tmp_path / "a.png")
    samples = [Sample(id="p", image=str(tmp_path / "a.png"), query="right effusion", boxes=[[1, 1, 9, 9]],
                      width=40, height=30, meta={"findings": "right effusion"}),
               Sample(id="n", image=str(tmp_path / "a.png"), query="left effusion", boxes=[], width=40, height=30,
                      meta={"findings": "right effusion"})]
    ds = grpo_dataset(samples, "r1_open", "pixels", reasoning="{findings}")
    assert ds["reasoning"] == ["right effusion", "right effusion"]
    assert "reasoning" not in grpo_dataset(samples, "r1_open", "pixels").column_names  # off by default
    with pytest.raises(MedgroundError, match=r"id=p.*'lesion'"):
        grpo_dataset(samples, "r1_open", "pixels", reasoning="{lesion}")


@pytest.mark.parametrize("think_text", [" " * 1_000_000, ("a " * 200_000) + "x", "," * 500_000, "and " * 200_000,
                                        ("\t \n" * 300_000) + ";"])
def test_hostile_reasonings_are_scored_quickly(think_text):
    import time

    start = time.perf_counter()
    assert call([think(think_text)], ["right effusion"]) == [0.0]
    assert time.perf_counter() - start < 2.0
