"""Every registered reward is a picklable object (multiprocess data loading and
`accelerate` pickle the reward functions): it survives pickle.dumps / loads with the
same name and the same values, and a reward holding a model keeps building it once."""

from __future__ import annotations

import json
import os
import pickle

import numpy as np
import pytest
import torch
from PIL import Image

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from medground import rewards  # noqa: E402
from medground.rewards.base import Reward  # noqa: E402


class MeanColourEncoder:
    """A picklable stand-in encoder: an image is its normalised mean colour, a text the
    colour it names."""

    COLOURS = {"red": (1.0, 0.0, 0.0), "blue": (0.0, 0.0, 1.0)}

    def encode_images(self, images):
        x = torch.tensor(np.stack([np.asarray(im, dtype=np.float32).reshape(-1, 3).mean(0) for im in images]))
        return torch.nn.functional.normalize(x + 1e-3, dim=-1)

    def encode_texts(self, texts):
        return torch.tensor([self.COLOURS[t.split()[0]] for t in texts])


def scene():
    """A 120 x 80 image, red on the left, with a bright ellipse on the right half, and its mask."""
    yy, xx = np.mgrid[:80, :120]
    mask = ((yy - 40) / 20) ** 2 + ((xx - 80) / 25) ** 2 <= 1
    rgb = np.zeros((80, 120, 3), np.uint8)
    rgb[:, :60] = (220, 30, 30)
    rgb[mask] = (230, 230, 230)
    return Image.fromarray(rgb), mask


def answer(box, p1=(60, 40), p2=(100, 40), think="the region [55, 20, 105, 60]"):
    body = json.dumps({"bbox": list(box), "points_1": list(p1), "points_2": list(p2)})
    return f"<think>{think}</think><answer>{body}</answer>"


def batch():
    """A fixed batch every reward can score: completions of different quality on one
    image, with boxes, points, a mask, a query, sizes and ids; the last sample is a
    negative (no true box) answered with an explicit empty answer."""
    image, mask = scene()
    completions = [
        answer([55, 20, 105, 60]),
        answer([0, 0, 60, 80], p1=(10, 10), p2=(50, 70), think="left [0, 0, 60, 80]"),
        answer([50, 15, 110, 65], think="no box here"),
        [{"role": "assistant", "content": "<think>x</think><answer>[55, 20, 105, 60]</answer>"}],
        "I cannot tell.",
        "<think>no such finding</think><answer>[]</answer>",
    ]
    n = len(completions)
    return dict(
        prompts=["where?"] * n,
        completions=completions,
        completion_ids=[[1]] * n,
        image=[image] * n,
        boxes=[[[55, 20, 105, 60]]] * (n - 1) + [[]],
        points=[[[55, 40], [105, 40]]] * (n - 1) + [None],
        mask=[mask] * (n - 1) + [None],
        query=["red finding", "blue finding", "red finding", "blue finding", "red finding", "blue finding"],
        width=[120] * n,
        height=[80] * n,
        solution=[[55, 20, 105, 60]] * n,
        id=[f"s{i}" for i in range(n)],
        reasoning=["the region [55, 20, 105, 60]"] * (n - 1) + ["no such finding"],
    )


#: Options to build each of medground's rewards with (a reward missing here fails the test below).
OPTIONS = {
    "format": [{}, {"require_think": False}],
    "iou": [{}, {"threshold": 0.7, "soft": True, "variant": "vlm-r1", "max_area_frac": 0.5}],
    "giou": [{"single_answer": True}],
    "chain_of_box": [{"soft": True, "agree_iou": 0.3}],
    "semantic": [{"encoder": MeanColourEncoder()}, {"encoder": MeanColourEncoder(), "mode": "threshold", "margin": 0.2}],
    "mask_dice": [{}, {"prompt": "box", "cache_size": 2}],
    "medground_r1_accuracy": [{}],
    "medground_r1_format": [{}],
    "medreasoner": [{}, {"mode": "hard"}],
    "set_f1": [{}, {"threshold": 0.3, "negatives": False, "max_boxes": "gt"}],
    "set_iou": [{}, {"variant": "vlm-r1", "max_area_frac": 0.5}],
    "negative": [{}, {"positives": False, "single_answer": True}],
    "reasoning": [{}, {"column": "reasoning"}],
}


def ours():
    return sorted(e.name for e in rewards.available() if str(getattr(e.target, "__module__", "")).startswith("medground."))


def test_every_reward_of_medground_is_covered():
    assert set(ours()) == set(OPTIONS)


@pytest.mark.parametrize("name, options", [(n, o) for n in OPTIONS for o in OPTIONS[n]])
def test_reward_survives_pickling_with_the_same_name_and_values(name, options):
    reward = rewards.get(name, **options)
    assert isinstance(reward, Reward)
    before = reward(**batch())
    assert any(v not in (None, 0.0) for v in before), before  # the batch exercises the reward
    copy = pickle.loads(pickle.dumps(reward))
    assert copy is not reward and type(copy) is type(reward)
    assert copy.__name__ == reward.__name__
    assert copy(**batch()) == before
    assert reward(**batch()) == before  # pickling left the original as it was


def test_a_closure_is_not_a_picklable_reward():
    """What the test above guards against: a reward written as a closure in a factory."""

    def factory():
        def score(completions, **kwargs):
            return [0.0] * len(completions)

        return score

    with pytest.raises((pickle.PicklingError, AttributeError)):
        pickle.dumps(factory())


def test_unpickled_segmentation_reward_starts_with_empty_caches():
    reward = rewards.get("mask_dice")
    reward(**batch())
    assert len(reward.segmenter.cache) == 1 and reward.reported == set()
    copy = pickle.loads(pickle.dumps(reward))
    assert len(copy.segmenter.cache) == 0 and len(copy.masks.items) == 0
    assert copy.segmenter is not reward.segmenter and copy.segmenter.name == "watershed"
