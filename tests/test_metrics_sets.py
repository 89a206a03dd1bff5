"""Box-set matching (Hungarian on IoU), Center-Acc and the laterality check, on hand-built cases."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medground.metrics import SET_IOU, box_iou_matrix, centers_inside, match_boxes, query_side, wrong_side

A, B, C = [0, 0, 10, 10], [20, 0, 30, 10], [40, 0, 50, 10]


def test_perfect_partial_extra_and_missed_boxes():
    perfect = match_boxes([B, A], [A, B])
    assert perfect.pairs == ((0, 1), (1, 0)) and perfect.ious == (1.0, 1.0)
    assert (perfect.tp, perfect.precision, perfect.recall, perfect.f1, perfect.matched_iou) == (2, 1.0, 1.0, 1.0, 1.0)
    # one of two found, one extra box: P 1/2, R 1/2, F1 2*1/(2+2), matched IoU (1 + 0) / 2
    half = match_boxes([A, C], [A, B])
    assert (half.tp, half.precision, half.recall, half.f1, half.matched_iou) == (1, 0.5, 0.5, 0.5, 0.5)
    # a half-overlapping box: IoU 1/3 is matched (it is the best pair) but is no hit
    shifted = match_boxes([[5, 0, 15, 10]], [A])
    assert shifted.ious == pytest.approx((1 / 3,)) and shifted.tp == 0 and shifted.f1 == 0.0
    assert shifted.matched_iou == pytest.approx(1 / 3)
    # many boxes for one target: F1 = 2 / (P + 1), matched IoU = 1 / P
    spray = match_boxes([A, B, C, [60, 0, 70, 10]], [A])
    assert (spray.tp, spray.f1, spray.matched_iou) == (1, 0.4, 0.25)


def test_the_hit_threshold_is_inclusive():
    half = [0, 0, 10, 20]  # IoU with A is exactly 0.5
    assert match_boxes([A], [half]).tp == 1 and SET_IOU == 0.5
    assert match_boxes([A], [half], threshold=0.51).tp == 0


def test_empty_sets():
    assert match_boxes([], []).f1 == 1.0 and match_boxes([], []).matched_iou == 1.0  # a negative answered empty
    none_found = match_boxes([], [A, B])
    assert (none_found.precision, none_found.recall, none_found.f1, none_found.matched_iou) == (0.0, 0.0, 0.0, 0.0)
    false_alarm = match_boxes([A], [])
    assert (false_alarm.precision, false_alarm.f1, false_alarm.matched_iou) == (0.0, 0.0, 0.0)


def test_one_to_one_where_greedy_matching_loses():
    """The middle box overlaps both targets equally (IoU 3/7); the left box only the first.
    Greedy matching (best pair first) gives the middle box the first target and the left box
    nothing; the Hungarian matching pairs each box with a target of its own."""
    gt = [[0, 0, 10, 10], [8, 0, 18, 10]]
    pred = [[4, 0, 14, 10], [-4, 0, 6, 10]]
    from medground.rewards.grounding import greedy_match

    assert greedy_match(box_iou_matrix(pred, gt)) == [(0, 0), (1, 1)]
    m = match_boxes(pred, gt)
    assert m.pairs == ((0, 1), (1, 0)) and m.ious == pytest.approx((3 / 7, 3 / 7))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 60), st.integers(0, 60), st.integers(1, 30), st.integers(1, 30)),
                min_size=0, max_size=5),
       st.lists(st.tuples(st.integers(0, 60), st.integers(0, 60), st.integers(1, 30), st.integers(1, 30)),
                min_size=0, max_size=5))
def test_matching_is_optimal_and_scores_stay_in_range(pred, gt):
    """The summed IoU equals the best over every one-to-one assignment (brute force)."""
    pred = [[x, y, x + w, y + h] for x, y, w, h in pred]
    gt = [[x, y, x + w, y + h] for x, y, w, h in gt]
    m = match_boxes(pred, gt)
    assert len(m.pairs) == min(len(pred), len(gt))
    assert len({p for p, _ in m.pairs}) == len({g for _, g in m.pairs}) == len(m.pairs)
    if pred and gt:
        iou = box_iou_matrix(pred, gt)
        if len(pred) <= len(gt):  # every injective map of the smaller set into the larger
            best = max(sum(iou[i, g] for i, g in enumerate(gs)) for gs in itertools.permutations(range(len(gt)), len(pred)))
        else:
            best = max(sum(iou[p, j] for j, p in enumerate(ps)) for ps in itertools.permutations(range(len(pred)), len(gt)))
        assert sum(m.ious) == pytest.approx(best)
    for v in (m.precision, m.recall, m.f1, m.matched_iou):
        assert 0.0 <= v <= 1.0


def test_center_inside_the_true_box():
    inside = centers_inside([[0, 0, 10, 10], [8, 8, 30, 30], [30, 30, 40, 40]], [[4, 4, 20, 20], [0, 0, 5, 5]])
    assert inside.tolist() == [[True, True], [True, False], [False, False]]
    assert centers_inside([[0, 0, 10, 10]], [[5, 5, 9, 9]]).tolist() == [[True]]  # the border counts


@pytest.mark.parametrize("text, side", [
    ("left pleural effusion", "left"), ("Small RIGHT apical pneumothorax", "right"),
    ("After a central line on the left, the patient is breathless.", "left"),
    ("bilateral pleural effusions", None), ("the right and left lungs", None), ("both lung fields", None),
    ("enlarged cardiac silhouette", None), ("leftover contrast", None), ("", None), (None, None),
])
def test_the_side_a_phrase_names(text, side):
    assert query_side(text) == side


def test_wrong_side_follows_the_radiological_convention():
    # a 100-px image: the patient's left is the image's right half
    assert not wrong_side([[60, 10, 90, 40]], "left", 100) and wrong_side([[60, 10, 90, 40]], "right", 100)
    assert wrong_side([[10, 10, 40, 40]], "left", 100) and not wrong_side([[10, 10, 40, 40]], "right", 100)
    assert not wrong_side([[40, 10, 60, 40]], "left", 100)  # centred on the midline: neither side
    assert wrong_side([[60, 10, 90, 40], [10, 10, 20, 20]], "left", 100)  # any box on the wrong side
    assert not wrong_side([], "left", 100) and not wrong_side(np.zeros((0, 4)), "right", 100)
