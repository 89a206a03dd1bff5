"""The embedded watershed segmenter: accuracy on shapes it must get right, determinism,
fallbacks, points-only prompts."""

from __future__ import annotations

import numpy as np
import pytest

from medground.metrics import mask_dice
from medground.models.segmenters.watershed import WatershedSegmenter


def ellipse_image(h=120, w=160, cy=60, cx=70, ry=25, rx=40, fg=190, bg=60, noise=12, seed=0):
    yy, xx = np.mgrid[:h, :w]
    mask = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
    rng = np.random.default_rng(seed)
    img = np.where(mask, fg, bg) + rng.normal(0, noise, (h, w))
    return np.clip(img, 0, 255).astype(np.uint8), mask


def tight_box(mask, pad=0):
    ys, xs = np.nonzero(mask)
    return [xs.min() - pad, ys.min() - pad, xs.max() + 1 + pad, ys.max() + 1 + pad]


@pytest.mark.parametrize("fg,bg", [(190, 60), (40, 170)])
def test_bright_and_dark_objects_from_box(fg, bg):
    img, mask = ellipse_image(fg=fg, bg=bg)
    pred = WatershedSegmenter().segment_image(img, tight_box(mask, pad=4))
    assert mask_dice(pred, mask)[0] > 0.9


def test_object_among_distractors_from_points():
    img, mask = ellipse_image()
    img[5:25, 120:155] = 190  # a second bright object outside the box
    seg = WatershedSegmenter()
    box = tight_box(mask, pad=4)
    pts = [[35, 60], [105, 60]]  # ends of the major axis, as the data sets define key points
    with_points = seg.segment_image(img, [box], [pts])[0]
    assert mask_dice(with_points, mask)[0] > 0.9
    assert not with_points[5:25, 120:155].any()
    points_only = seg.segment_image(img, None, [pts])[0]
    assert mask_dice(points_only, mask)[0] > 0.8


def test_mask_stays_inside_box_and_is_deterministic():
    img, mask = ellipse_image()
    box = [50, 40, 90, 80]  # a box cutting the object
    a = WatershedSegmenter().segment_image(img, box)
    b = WatershedSegmenter().segment_image(img, box)
    assert (a == b).all()
    ys, xs = np.nonzero(a)
    assert xs.min() >= 50 and xs.max() < 90 and ys.min() >= 40 and ys.max() < 80


def test_whole_image_box_and_large_image_subsampling():
    img, mask = ellipse_image(h=600, w=700, cy=300, cx=350, ry=150, rx=220)
    seg = WatershedSegmenter()
    assert mask_dice(seg.segment_image(img, [0, 0, 700, 600]), mask)[0] > 0.85
    assert mask_dice(seg.segment_image(img, tight_box(mask, pad=10)), mask)[0] > 0.9


def test_flat_image_falls_back_to_a_non_empty_mask_in_the_box():
    img = np.full((64, 64), 100, np.uint8)
    pred = WatershedSegmenter().segment_image(img, [10, 20, 50, 40])
    assert pred.any() and not pred[:20].any() and not pred[:, 50:].any()


def test_batched_prompts_equal_single_calls():
    img, mask = ellipse_image()
    seg = WatershedSegmenter()
    boxes = [tight_box(mask, 3), [10, 10, 60, 50], [90, 70, 150, 115]]
    batched = seg.segment_image(img, boxes)
    for b, m in zip(boxes, batched):
        assert (seg.segment_image(img, b) == m).all()
