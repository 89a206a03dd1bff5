"""set_f1 / set_iou / negative: values on hand-built cases, negatives in the old rewards,
and reward hacking on a batch that mixes negatives, single- and multi-target samples."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from PIL import Image

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from medground import rewards  # noqa: E402


def answer(boxes, think="located"):
    return f"<think>{think}</think><answer>{json.dumps([list(map(int, b)) for b in boxes])}</answer>"


def call(f, completions, **columns):
    n = len(completions)
    columns = {k: (v if isinstance(v, list) and len(v) == n else [v] * n) for k, v in columns.items()}
    return f(prompts=["p"] * n, completions=completions, completion_ids=[[0]] * n, **columns)


A, B = [10, 10, 30, 30], [70, 60, 90, 80]


# --------------------------------------------------------------------------- values


def test_set_f1_and_set_iou_on_hand_built_answers():
    f1, soft = rewards.get("set_f1"), rewards.get("set_iou")
    texts = [answer([A, B]), answer([B, A]), answer([A]), answer([A, B, [40, 40, 60, 60]]),
             answer([[10, 10, 30, 20], B]), "<think>x</think><answer>[]</answer>", "no answer"]
    # [10, 10, 30, 20] has IoU 0.5 with A: a hit (IoU >= 0.5)
    assert call(f1, texts, boxes=[[A, B]]) == pytest.approx([1.0, 1.0, 2 / 3, 0.8, 1.0, 0.0, 0.0])
    # soft: (sum of matched IoU) / max(P, G)
    assert call(soft, texts, boxes=[[A, B]]) == pytest.approx([1.0, 1.0, 0.5, 2 / 3, 0.75, 0.0, 0.0])


def test_the_order_of_the_answer_boxes_does_not_matter_but_one_box_answers_one_target():
    f1 = rewards.get("set_f1")
    same_twice = answer([A, A])  # two copies of one target's box: one hit, one false positive
    assert call(f1, [answer([A, B]), answer([B, A]), same_twice], boxes=[[A, B]]) == pytest.approx([1.0, 1.0, 0.5])


def test_single_target_with_one_box_is_the_hit_and_the_iou():
    f1, soft = rewards.get("set_f1"), rewards.get("set_iou")
    iou_hit, iou_soft = rewards.get("iou"), rewards.get("iou", soft=True)
    boxes = [A, [10, 10, 30, 26], [15, 10, 35, 30], [50, 50, 70, 70]]
    texts = [answer([b]) for b in boxes]
    assert call(f1, texts, boxes=[[A]]) == [1.0, 1.0, 1.0, 0.0]
    assert call(soft, texts, boxes=[[A]]) == pytest.approx(call(iou_soft, texts, boxes=[[A]]))
    assert call(f1, texts, boxes=[[A]]) == call(iou_hit, texts, boxes=[[A]])  # no IoU exactly 0.5 here


def test_negatives_reward_the_explicit_empty_answer_only():
    empty = ["<think>x</think><answer>[]</answer>", '<answer>{"bbox_2d": []}</answer>', '<answer>{"bbox": null}</answer>']
    others = [answer([A]), "<think>x</think><answer>none</answer>", "<think>x</think>"]
    texts = empty + others
    for name in ("set_f1", "set_iou", "negative"):
        assert call(rewards.get(name), texts, boxes=[[]]) == [1.0] * 3 + [0.0] * 3, name
    # beside the negative reward the set rewards can leave negatives alone
    assert call(rewards.get("set_f1", negatives=False), texts, boxes=[[]]) == [None] * 6


def test_negative_is_the_presence_decision():
    neg = rewards.get("negative")
    texts = [answer([A]), answer([[0, 0, 5, 5]]), "<answer>[]</answer>", "garbage"]
    assert call(neg, texts, boxes=[[A]]) == [1.0, 1.0, 0.0, 0.0]  # on a positive: a box (any box) is the right call
    assert call(rewards.get("negative", positives=False), texts, boxes=[[A]]) == [None] * 4
    assert call(neg, texts, boxes=[[]]) == [0.0, 0.0, 1.0, 0.0]


def test_boxes_are_mapped_from_the_policy_frame():
    f1 = rewards.get("set_f1", frame="norm1000")
    assert call(f1, [answer([[100, 100, 300, 300], [700, 600, 900, 800]])], boxes=[[A, B]], width=100,
                height=100) == [1.0]


# --------------------------------------------------------------------------- the older rewards on negatives


def test_format_accepts_an_explicit_empty_answer_on_a_negative_only():
    f = rewards.get("format")
    texts = ["<think>x</think><answer>[]</answer>", answer([A]), "<think>x</think><answer>none</answer>"]
    assert call(f, texts, boxes=[[]]) == [1.0, 1.0, 0.0]
    assert call(f, texts, boxes=[[A]]) == [0.0, 1.0, 0.0]  # on a positive: as before, a box is needed
    assert call(f, texts) == [0.0, 1.0, 0.0]  # without the boxes column: as before


def test_iou_and_giou_leave_negatives_out():
    for name in ("iou", "giou"):
        assert call(rewards.get(name), [answer([A]), "<answer>[]</answer>"], boxes=[[]]) == [None, None]


class Brightness:
    """A toy encoder: an image embeds as (mean grey - 0.5, 0.5) normalised; "bright ..." as (1, 0)."""

    def encode_images(self, images):
        grey = torch.tensor([float(np.asarray(im.convert("L")).mean()) / 255 for im in images])
        return torch.nn.functional.normalize(torch.stack([grey - 0.5, torch.full_like(grey, 0.5)], 1), dim=1)

    def encode_texts(self, texts):
        return torch.tensor([[1.0, 0.0] if t.startswith("bright") else [-1.0, 0.0] for t in texts])


def test_semantic_gives_no_reward_for_a_crop_on_a_negative():
    """A box on a bright region agrees with "bright lesion" — on a negative sample that is a
    false positive, so the semantic reward leaves negatives out (None)."""
    image = Image.new("L", (100, 100))
    image.paste(255, (60, 0, 100, 100))
    sem = rewards.get("semantic", encoder=Brightness())
    texts = [answer([[60, 10, 90, 40]]), "<answer>[]</answer>"]
    on_positive = call(sem, texts, image=image, query="bright lesion", boxes=[[[60, 10, 90, 40]]])
    assert on_positive[0] > 0.8 and on_positive[1] == 0.0
    assert call(sem, texts, image=image, query="bright lesion", boxes=[[]]) == [None, None]


# --------------------------------------------------------------------------- reward hacking


W = H = 100
BATCH = [  # (true boxes) of a mixed batch: negatives, single and multi-target samples
    [A], [A, B], [], [[60, 20, 90, 50]], [], [[20, 60, 40, 80], [55, 55, 75, 85], [5, 40, 25, 55]],
]
GRID = [[x, y, x + 20, y + 20] for x in range(0, 100, 20) for y in range(0, 100, 20)]


def policy(name: str, gt: list) -> str:
    if name == "correct":
        return answer(gt)
    if name == "none":
        return "<think>located</think><answer>[]</answer>"
    if name == "whole image":
        return answer([[0, 0, W, H]])
    if name == "many boxes":  # the true boxes hidden among a grid of others
        return answer(gt + GRID)
    raise ValueError(name)


HACKS = ("none", "whole image", "many boxes")


def open_recipe() -> list[tuple[str, float, dict]]:
    """The GRPO rewards of configs/demo_open_cpu.yaml (the demo adds the semantic reward)."""
    from medground.demo import DEFAULT_RECIPE, load_demo_config
    from medground.train.config import parse_rewards

    cfg = load_demo_config(DEFAULT_RECIPE.parent / "demo_open_cpu.yaml")
    return [(r.name, r.weight, r.options) for r in parse_rewards(cfg.grpo["rewards"])]


def batch_score(name: str, options: dict, who: str) -> float:
    """The policy's mean reward over the batch; None counts 0, as TRL's nansum does."""
    f = rewards.get(name, **options)
    values = call(f, [policy(who, gt) for gt in BATCH], boxes=BATCH, width=W, height=H)
    return float(np.mean([0.0 if v is None else v for v in values]))


@pytest.mark.parametrize("name", ["set_f1", "set_iou", "negative"])
def test_each_new_reward_ranks_the_correct_policy_above_every_hack(name):
    correct = batch_score(name, {}, "correct")
    assert correct == 1.0
    for hack in HACKS:
        assert batch_score(name, {}, hack) < correct, hack


def test_the_open_set_recipe_ranks_the_correct_policy_above_every_hack():
    recipe = open_recipe()
    assert {"set_f1", "negative"} <= {name for name, _, _ in recipe}

    def total(who):
        return sum(w * batch_score(name, opts, who) for name, w, opts in recipe)

    correct = total("correct")
    assert correct >= 2.5  # format 0.5 + set_f1 1 + set_iou 1, + the presence reward on the negatives
    assert all(total(hack) < correct - 0.5 for hack in HACKS), {h: total(h) for h in HACKS}


def test_the_guards_keep_working_on_the_set_rewards():
    # max_area_frac: a whole-image box scores 0 wherever no true box is that large
    assert batch_score("set_iou", {"max_area_frac": 0.5}, "whole image") == 0.0
    assert batch_score("negative", {"max_area_frac": 0.5}, "whole image") == 0.0
    # max_boxes="gt": more boxes than targets score 0 (the spray hack gets nothing)
    assert batch_score("set_f1", {"max_boxes": "gt"}, "many boxes") == 0.0
    assert batch_score("set_f1", {"max_boxes": "gt"}, "correct") == 1.0
    # single_answer: a repeated box scores 0, an explicit [] is an answer, not an empty one
    dup = call(rewards.get("set_f1", single_answer=True), [answer([A, A]), "<answer>[]</answer>"], boxes=[[A], []])
    assert dup == [0.0, 1.0]
    # the old iou reward: first K boxes matched greedily; the spray hack is stopped by max_boxes
    iou = rewards.get("iou", max_boxes="gt")
    assert call(iou, [answer([A, B] + GRID)], boxes=[[A, B]]) == [0.0]
