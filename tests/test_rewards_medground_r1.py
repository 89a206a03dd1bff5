"""The faithful presets of the released MedGround-R1 rewards, traced by hand through
`iou_reward` / `format_reward` of open-r1-multimodal/src/open_r1/grpo_rec.py."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from medground import rewards  # noqa: E402

LOGS = Path(__file__).resolve().parents[2] / "shared" / "reference" / "medground-r1-eval-logs"


def conv(text):
    return [{"role": "assistant", "content": text}]


def acc(texts, solution):
    f = rewards.get("medground_r1_accuracy")
    return f(prompts=[None] * len(texts), completions=[conv(t) for t in texts], solution=[solution] * len(texts))


SOL = [10, 20, 110, 220]


@pytest.mark.parametrize(
    "text, expected, why",
    [
        ('<think>x</think><answer>{"bbox_2d": [10, 20, 110, 220]}</answer>', 1.0, "exact box"),
        ("<think>x</think><answer>[10, 20, 110, 220]</answer>", 1.0, "no JSON needed for the IoU reward"),
        ('<answer>\n{"bbox": [10,20,110,220]}\n</answer>', 1.0, "answer tag search is DOTALL; no think needed"),
        ('<answer>{"bbox_2d": [10.0, 20, 110, 220]}</answer>', 0.0, "float coordinate: integer-only regex"),
        ('<answer>{"bbox_2d": [-5, 20, 110, 220]}</answer>', 0.0, "negative coordinate: \\d+ only"),
        ('<answer>{"bbox_2d": [10, 20, 110, 220 ]}</answer>', 0.0, "space before ']' breaks (\\d+)]"),
        ("<think>[10, 20, 110, 220]</think><answer>none</answer>", 0.0, "box only in think"),
        ("<answer>[300, 300, 400, 400] or [10, 20, 110, 220]</answer>", 0.0, "first box of the answer"),
        ("<answer>none</answer><answer>[10, 20, 110, 220]</answer>", 0.0, "first answer block"),
        ("[10, 20, 110, 220]", 0.0, "no answer tag"),
    ],
)
def test_accuracy_literal_examples(text, expected, why):
    assert acc([text], SOL) == [expected], why


def test_accuracy_threshold_is_strict_and_iou_is_inclusive_pixel():
    # [0,0,10,10] vs [0,0,10,20]: inter (9-0+1)*(9-0+1) = 100, union 100 + 200 - 100 = 200 -> 0.5 -> not > 0.5
    assert acc(["<answer>[0, 0, 10, 10]</answer>"], [0, 0, 10, 20]) == [0.0]
    # [0,0,10,11]: 100 / 110 > 0.5
    assert acc(["<answer>[0, 0, 10, 11]</answer>"], [0, 0, 10, 11 + 0]) == [1.0]
    # identical 1-pixel boxes: inter_x1 = 5, inter_x2 = min(6-1, 6-1) = 5, 5 < 5 is false -> inter 0 -> 0.0
    assert acc(["<answer>[5, 5, 6, 6]</answer>"], [5, 5, 6, 6]) == [0.0]
    # ... while our `iou` scores the same pair 1.0
    assert rewards.get("iou")(completions=["<answer>[5, 5, 6, 6]</answer>"], boxes=[[[5, 5, 6, 6]]]) == [1.0]


def test_accuracy_compares_raw_coordinates_without_frame_mapping():
    # a Qwen2-VL-style answer in 0-1000 for a 1280 x 1280 image whose truth is [640, 640, 1280, 1280]
    text = "<answer>[500, 500, 1000, 1000]</answer>"
    gt = [640, 640, 1280, 1280]
    # raw: inter (999-640+1)^2 = 129600, union 250000 + 409600 - 129600 = 530000 -> 0.245 -> 0
    assert acc([text], gt) == [0.0]
    ours = rewards.get("iou", frame="norm1000")
    assert ours(completions=[text], boxes=[[gt]], width=[1280], height=[1280]) == [1.0]


def test_accuracy_reads_solution_column_else_first_true_box():
    f = rewards.get("medground_r1_accuracy")
    text = "<answer>[10, 20, 110, 220]</answer>"
    assert f(completions=[text], boxes=[[SOL, [0, 0, 5, 5]]]) == [1.0]
    assert f(completions=[text], boxes=[[SOL]], solution=[[300, 300, 400, 400]]) == [0.0]
    assert f(completions=[text], boxes=[[]]) == [None]
    assert f(completions=[text], solution=[SOL]) == [1.0]  # plain string completions too


FMT_CASES = [
    ('<think>a</think><answer>{"bbox_2d": [1, 2, 3, 4]}</answer>', 1.0, 1.0),
    ('<think>a\nb</think>\n\n<answer>[{"bbox_2d": [1,2,3,4], "label": "x"}]</answer>', 1.0, 1.0),
    ('<think>a</think><answer>{"bbox_2d": [1, 2, 3, 4]}</answer>\n', 0.0, 1.0),  # fullmatch: trailing newline
    (' <think>a</think><answer>{"bbox_2d": [1, 2, 3, 4]}</answer>', 0.0, 1.0),  # leading space
    ("<think>a</think><answer>[1, 2, 3, 4]</answer>", 0.0, 1.0),  # no braces around the box
    ('<think>a</think><answer>{"bbox_2d": [1.5, 2, 3, 4]}</answer>', 0.0, 1.0),  # float
    ('<think>a</think><answer>{"bbox_2d": [1, 2, 3, 4 ]}</answer>', 0.0, 1.0),  # space before ]
    ('<think>a</think><answer>{"label": "none"}</answer>', 0.0, 0.0),  # no box at all
    ('<answer>{"bbox_2d": [1, 2, 3, 4]}</answer>', 0.0, 0.0),  # no think
    # DOTALL: '.*' runs across two answer blocks, so this duplicated answer still matches
    ('<think>a</think><answer>{"x": 1}</answer><answer>{"bbox_2d": [1, 2, 3, 4]}</answer>', 1.0, 1.0),
]


@pytest.mark.parametrize("text, released, ours", FMT_CASES)
def test_format_preset_is_the_released_fullmatch_and_differs_from_ours(text, released, ours):
    assert rewards.get("medground_r1_format")(completions=[conv(text)]) == [released]
    if "</answer><answer>" not in text:
        assert rewards.get("format")(completions=[conv(text)]) == [ours]


@pytest.mark.skipif(not LOGS.is_dir(), reason="released evaluation logs not beside the checkout")
def test_accuracy_agrees_with_every_row_of_the_released_logs():
    """The release's eval scripts extract the box with a regex that needs '{…}'; its
    training reward does not.  Every row agrees except where the eval extractor found
    no box ([0, 0, 0, 0]) and the training reward did."""
    f = rewards.get("medground_r1_accuracy")
    checked = 0
    for path in sorted(LOGS.glob("*.json")):
        log = json.loads(path.read_text())
        rows = log["results"]
        out = f(completions=[conv(r["model_output"]) for r in rows], solution=[r["ground_truth"] for r in rows])
        for r, got in zip(rows, out):
            if got != float(r["correct"]):
                assert r["extracted_answer"] == [0, 0, 0, 0] and got == 1.0, (path.name, r["model_output"])
            checked += 1
        if "cxr" in path.name:  # MS-CXR logs: accuracy reproduced exactly
            assert 100 * sum(out) / len(out) == pytest.approx(log["accuracy"], abs=1e-9), path.name
    assert checked >= 3000
