"""Overlay PNGs: prediction and truth drawn where they belong, legible size, bad input tolerated."""

from __future__ import annotations

import numpy as np

from medground.overlay import GT, PRED, draw_overlay


def base(h=100, w=100):
    return np.full((h, w), 0, np.uint8)


def near(pixel, color, tol=40):
    return all(abs(int(a) - int(b)) <= tol for a, b in zip(pixel, color))


def test_masks_are_tinted_and_boxes_drawn_in_place():
    pm = np.zeros((100, 100), bool)
    pm[10:40, 10:40] = True
    gm = np.zeros((100, 100), bool)
    gm[60:90, 60:90] = True
    im = draw_overlay(base(), pred_box=[10, 10, 40, 40], pred_mask=pm, gt_mask=gm, gt_box=[60, 60, 90, 90],
                      pred_points=[[15, 25], [35, 25]], gt_points=[[62, 75], [88, 75]])
    s = im.width / 100  # enlarged to >= 512 px, no title: image starts at row 0
    assert im.width >= 512
    px = im.load()
    inside_pred = px[int(25 * s), int(15 * s)]  # filled region away from the points
    inside_gt = px[int(75 * s), int(70 * s)]
    outside = px[int(50 * s), int(50 * s)]
    assert outside == (0, 0, 0)
    assert inside_pred[0] > inside_pred[2] and inside_pred[0] > 50  # orange tint
    assert inside_gt[2] > inside_gt[0] and inside_gt[2] > 50  # blue tint
    assert near(px[int(10 * s) + 1, int(25 * s)], PRED)  # left edge of the predicted box
    assert near(px[int(15 * s), int(25 * s)], PRED)  # predicted point 1 is a filled disc
    assert im.height > im.width  # legend strip below the picture


def test_title_and_legend_grow_the_canvas():
    plain = draw_overlay(base())
    titled = draw_overlay(base(), title="sample-1: left lung", gt_box=[1, 1, 50, 50])
    assert plain.size == (512, 512)
    assert titled.height > plain.height and titled.width == plain.width


def test_bad_inputs_are_left_out_not_raised():
    wrong = np.ones((10, 10), bool)
    im = draw_overlay(base(), pred_box=[np.nan, 1, 2, 3], gt_box=[5, 5, 5, 5], pred_points=[[np.nan, 3], [1e9, 1e9]],
                      pred_mask=wrong, gt_mask=np.ones((100, 100), bool))
    assert im.mode == "RGB"
    px = im.load()
    assert near(px[256, 256], tuple(int(c * 0.38) for c in GT), tol=8)  # the valid truth mask is still drawn
    large = draw_overlay(np.zeros((2000, 1500, 3), np.uint8), pred_box=[100, 100, 900, 900])
    assert max(large.size) <= 1024 + 200  # large images are shrunk to a readable size


def test_rgb_and_pil_inputs():
    from PIL import Image

    rgb = np.zeros((60, 80, 3), np.uint8)
    rgb[..., 1] = 120
    a = draw_overlay(rgb)
    b = draw_overlay(Image.fromarray(rgb))
    assert a.size == b.size and a.load()[10, 10] == (0, 120, 0)
