import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torchvision.ops import box_iou as tv_box_iou
from torchvision.ops import generalized_box_iou

from medground.metrics import box_giou, box_giou_matrix, box_iou, box_iou_matrix, disc_dice, mask_dice, mask_iou


def vlm_r1_iou(box1, box2):
    """The released VLM-R1 / MedGround-R1 scalar IoU, as described in shared/reference/README.md."""
    inter_x1, inter_y1 = max(box1[0], box2[0]), max(box1[1], box2[1])
    inter_x2, inter_y2 = min(box1[2] - 1, box2[2] - 1), min(box1[3] - 1, box2[3] - 1)
    if inter_x1 < inter_x2 and inter_y1 < inter_y2:
        inter = (inter_x2 - inter_x1 + 1) * (inter_y2 - inter_y1 + 1)
    else:
        inter = 0
    union = (box1[2] - box1[0]) * (box1[3] - box1[1]) + (box2[2] - box2[0]) * (box2[3] - box2[1]) - inter
    return float(inter) / union


def random_boxes(rng, n, scale=100):
    xy = rng.uniform(0, scale, (n, 2))
    wh = rng.uniform(1, scale / 2, (n, 2))
    return np.concatenate([xy, xy + wh], axis=1)


def test_iou_matches_torchvision():
    rng = np.random.default_rng(1)
    a, b = random_boxes(rng, 200), random_boxes(rng, 200)
    ref = tv_box_iou(torch.tensor(a), torch.tensor(b)).diagonal().numpy()
    np.testing.assert_allclose(box_iou(a, b), ref, rtol=1e-12)


def test_giou_matches_torchvision():
    rng = np.random.default_rng(2)
    a, b = random_boxes(rng, 200), random_boxes(rng, 200)
    ref = generalized_box_iou(torch.tensor(a), torch.tensor(b)).diagonal().numpy()
    np.testing.assert_allclose(box_giou(a, b), ref, rtol=1e-12, atol=1e-12)


def test_vlm_r1_variant_is_the_released_inclusive_pixel_iou():
    rng = np.random.default_rng(3)
    a = np.round(random_boxes(rng, 500, 640))
    b = np.round(random_boxes(rng, 500, 640))
    b[:50] = a[:50]  # identical boxes: inclusive IoU is not 1
    ref = [vlm_r1_iou(x, y) for x, y in zip(a, b)]
    np.testing.assert_allclose(box_iou(a, b, variant="vlm-r1"), ref, rtol=1e-12)
    # boundary of the strict test: touching after the -1 shift gives 0
    assert box_iou([[0, 0, 10, 10]], [[9, 0, 20, 10]], variant="vlm-r1")[0] == 0.0


def test_matrices_match_torchvision():
    rng = np.random.default_rng(4)
    a, b = random_boxes(rng, 30), random_boxes(rng, 45)
    assert box_iou_matrix(a, b).shape == (30, 45)
    np.testing.assert_allclose(box_iou_matrix(a, b), tv_box_iou(torch.tensor(a), torch.tensor(b)).numpy(), rtol=1e-12)
    np.testing.assert_allclose(box_giou_matrix(a, b), generalized_box_iou(torch.tensor(a), torch.tensor(b)).numpy(),
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("variant", ["standard", "vlm-r1"])
def test_matrix_entries_equal_the_paired_values_bit_for_bit(variant):
    rng = np.random.default_rng(5)
    a, b = np.round(random_boxes(rng, 40, 640)), np.round(random_boxes(rng, 25, 640))
    a[:3] = [[0, 0, 0, 0], [5, 5, 1, 1], [np.nan, 0, 1, 1]]  # degenerate rows
    b[:5] = a[5:10]  # identical boxes
    rows, cols = np.repeat(a, len(b), axis=0), np.tile(b, (len(a), 1))
    np.testing.assert_array_equal(box_iou_matrix(a, b, variant), box_iou(rows, cols, variant).reshape(40, 25))
    np.testing.assert_array_equal(box_giou_matrix(a, b), box_giou(rows, cols).reshape(40, 25))
    assert (box_iou_matrix(a, b, variant)[:3] == 0).all() and (box_giou_matrix(a, b)[:3] == 0).all()


def test_matrices_of_empty_sets_and_bad_variant():
    assert box_iou_matrix(np.zeros((0, 4)), [[0, 0, 1, 1]]).shape == (0, 1)
    assert box_giou_matrix([[0, 0, 1, 1]], []).shape == (1, 0)
    with pytest.raises(ValueError, match="variant"):
        box_iou_matrix([[0, 0, 1, 1]], [[0, 0, 1, 1]], variant="inclusive")


def test_iou_broadcasts_one_against_many():
    assert box_iou([[0, 0, 10, 10]], [[0, 0, 10, 10], [0, 0, 5, 10]]).tolist() == [1.0, 0.5]


@pytest.mark.parametrize("variant", ["standard", "vlm-r1"])
def test_degenerate_and_nan_give_zero(variant):
    a = [[0, 0, 0, 0], [5, 5, 1, 1], [np.nan, 0, 1, 1], [0, 0, np.inf, 1], [0, 0, 10, 10]]
    b = [[0, 0, 0, 0], [5, 5, 1, 1], [0, 0, 1, 1], [0, 0, 1, 1], [np.nan] * 4]
    assert box_iou(a, b, variant=variant).tolist() == [0.0] * 5
    assert box_giou(a, b).tolist() == [0.0] * 5


def rasterised_disc_dice(p, g, n=1500):
    ys, xs = np.mgrid[0:n, 0:n] / n * 20 - 5
    def disc(pair):
        c = np.mean(pair, axis=0)
        r = np.hypot(*(np.subtract(pair[0], pair[1]))) / 2
        return (xs - c[0]) ** 2 + (ys - c[1]) ** 2 <= r**2
    a, b = disc(p), disc(g)
    return 2 * (a & b).sum() / (a.sum() + b.sum())


@pytest.mark.parametrize(
    "p,g",
    [
        ([[0, 0], [4, 0]], [[1, 0], [5, 0]]),
        ([[0, 0], [6, 6]], [[2, 2], [3, 3]]),
        ([[0, 0], [2, 0]], [[8, 8], [9, 9]]),
        ([[1, 1], [5, 3]], [[2, 0], [4, 6]]),
    ],
)
def test_disc_dice_matches_rasterised_discs(p, g):
    assert disc_dice([p], [g])[0] == pytest.approx(rasterised_disc_dice(p, g), abs=5e-3)


def test_disc_dice_symmetric_identity_and_degenerate():
    pairs = np.array([[[0, 0], [4, 0]], [[1, 1], [5, 3]]], dtype=float)
    np.testing.assert_allclose(disc_dice(pairs, pairs), [1.0, 1.0])
    swapped = pairs[:, ::-1]  # point order does not matter
    np.testing.assert_allclose(disc_dice(pairs, swapped), [1.0, 1.0])
    assert disc_dice([[[1, 1], [1, 1]]], [[[1, 1], [1, 1]]]).tolist() == [0.0]
    assert disc_dice([[[np.nan, 1], [1, 1]]], [[[0, 0], [2, 2]]]).tolist() == [0.0]


def test_mask_dice_and_iou():
    a = np.zeros((2, 8, 8), bool)
    b = np.zeros((2, 8, 8), bool)
    a[0, :4] = True
    b[0, 2:6] = True
    np.testing.assert_allclose(mask_dice(a, b), [0.5, 0.0])
    np.testing.assert_allclose(mask_iou(a, b), [1 / 3, 0.0])
    assert mask_dice(np.ones((4, 4)), np.ones((5, 5))).tolist() == [0.0]
    # one mask against several: one value per pair
    np.testing.assert_allclose(mask_dice(a[0], b), [0.5, 0.0])
    np.testing.assert_allclose(mask_iou(a[0], b), [1 / 3, 0.0])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(allow_nan=True, allow_infinity=True, width=32), min_size=8, max_size=8))
def test_metrics_never_raise_and_stay_in_range(vals):
    a, b = [vals[:4]], [vals[4:]]
    for variant in ("standard", "vlm-r1"):
        out = box_iou(a, b, variant=variant)
        assert np.isfinite(out).all()
    assert np.isfinite(box_giou(a, b)).all()
    d = disc_dice(np.reshape(vals[:4], (1, 2, 2)), np.reshape(vals[4:], (1, 2, 2)))
    assert np.isfinite(d).all() and 0 <= d[0] <= 1
    assert 0 <= box_iou(a, b)[0] <= 1
