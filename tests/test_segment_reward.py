"""The `mask_dice` reward: registry name, Dice through the segmenter, one embedding per
group of completions, frames, samples without or with a broken mask."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from PIL import Image

from medground import rewards
from medground.errors import MedgroundError
from medground.models.segmenters.watershed import WatershedSegmenter


class CountingWatershed(WatershedSegmenter):
    def __init__(self, **kw):
        super().__init__(**kw)
        self.embeds = 0
        self.calls = 0

    def _embed(self, rgb):
        self.embeds += 1
        return super()._embed(rgb)

    def _segment(self, state, prompts):
        self.calls += 1
        return super()._segment(state, prompts)


def scene(h=80, w=120):
    yy, xx = np.mgrid[:h, :w]
    gt = ((yy - 40) / 20) ** 2 + ((xx - 60) / 30) ** 2 <= 1
    img = np.where(gt, 200, 50).astype(np.uint8)
    return Image.fromarray(img), gt


def answer(box, p1=None, p2=None):
    d = {"bbox": box}
    if p1 is not None:
        d.update(points_1=p1, points_2=p2)
    return [{"role": "assistant", "content": f"<think>ok</think><answer>{json.dumps(d)}</answer>"}]


def test_registered_and_listed():
    assert "mask_dice" in [s.name for s in rewards.available()]
    with pytest.raises(MedgroundError, match="no option"):
        rewards.get("mask_dice", nonsense=1)


def test_group_shares_one_embedding_and_one_batched_call():
    image, gt = scene()
    seg = CountingWatershed()
    f = rewards.get("mask_dice", segmenter=seg)
    completions = [
        answer([28, 18, 92, 62], [31, 40], [89, 40]),  # good
        answer([26, 16, 94, 64]),  # good box, no points
        answer([0, 0, 20, 20]),  # wrong place
        [{"role": "assistant", "content": "I cannot tell."}],  # nothing usable
    ]
    images = [image] * 4  # TRL repeats the same image for the G completions
    r = f(prompts=[None] * 4, completions=completions, image=images, mask=[gt] * 4, id=["a"] * 4)
    assert r[0] > 0.9 and r[1] > 0.9 and r[2] < 0.1 and r[3] == 0.0
    assert seg.embeds == 1 and seg.calls == 1
    # a new PIL object with the same pixels hits the cache too
    f(completions=completions[:1], image=[image.copy()], mask=[gt])
    assert seg.embeds == 1


def test_none_without_mask_and_for_wrong_size_mask():
    image, gt = scene()
    f = rewards.get("mask_dice")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        r = f(completions=[answer([28, 18, 92, 62])] * 3, image=[image] * 3, mask=[gt, None, gt[:-1]],
              id=["ok", "nomask", "badsize"])
    assert r[0] > 0.9 and r[1] is None and r[2] is None
    assert any("badsize" in str(w.message) and "does not match" in str(w.message) for w in caught)


def test_mask_column_as_png_path(tmp_path):
    from medground.data.masks import save_mask_png

    image, gt = scene()
    save_mask_png(gt, tmp_path / "m.png")
    f = rewards.get("mask_dice")
    r = f(completions=[answer([28, 18, 92, 62])], image=[image], mask=[str(tmp_path / "m.png")])
    assert r[0] > 0.9


def test_policy_frame_is_mapped_to_original_pixels():
    image, gt = scene()  # 120 x 80
    px = rewards.get("mask_dice")(completions=[answer([28, 18, 92, 62])], image=[image], mask=[gt])
    box_1000 = [28 / 120 * 1000, 18 / 80 * 1000, 92 / 120 * 1000, 62 / 80 * 1000]
    f = rewards.get("mask_dice", frame="norm1000")
    n1000 = f(completions=[answer(box_1000)], image=[image], mask=[gt])
    assert n1000[0] == pytest.approx(px[0], abs=0.02)
    # the same numbers read as pixels land elsewhere and score low
    assert rewards.get("mask_dice")(completions=[answer(box_1000)], image=[image], mask=[gt])[0] < 0.5


def test_malformed_completions_never_raise():
    image, gt = scene()
    f = rewards.get("mask_dice")
    texts = ['{"bbox": [NaN, 1, 2, 3]}', '{"bbox": [500, 500, 900, 900]}', '{"bbox": [10, 10, 10, 10]}',
             '{"bbox": "left"}', "", '{"bbox": [28, 18, 92, 62], "points_1": [1e9, 3], "points_2": [nan, 2]}']
    r = f(completions=texts, image=[image] * len(texts), mask=[gt] * len(texts))
    assert len(r) == len(texts) and all(v is not None and 0.0 <= v <= 1.0 for v in r)
    assert r[:5] == [0.0] * 5 and r[5] > 0.9


def test_missing_mask_column_is_a_dataset_error():
    image, _ = scene()
    with pytest.raises(MedgroundError, match="no 'mask' column"):
        rewards.get("mask_dice")(completions=[answer([1, 1, 5, 5])], image=[image])
