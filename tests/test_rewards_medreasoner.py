"""MedReasoner's reward: exact reproduction, every branch, and the TRL callable."""

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from medground.errors import MedgroundError
from medground.metrics import disc_dice
from medground.rewards.medreasoner import (
    KEYS,
    MedReasonerReward,
    answer_format_score,
    disc_overlap,
    medreasoner_score,
    penalize,
    smooth_exp,
    smooth_log,
    think_format_score,
)

GT_BOX = [0, 0, 100, 100]
GT_POINTS = [[25, 50], [75, 50]]


def answer(box, p1, p2, think="t"):
    body = json.dumps({"bbox": box, "points_1": p1, "points_2": p2})
    return f"<think>{think}</think><answer>{body}</answer>"


PERFECT = answer(GT_BOX, *GT_POINTS)

# Expected outputs of MedReasoner's own compute_score (PRIS-CV/MedReasoner@558cc78,
# verl/utils/reward_score/med_grounding.py), run on exactly these inputs with
# ground truth {"bbox_2d": [0, 0, 100, 100], "point_2d": [[25, 50], [75, 50]]} in a
# throwaway script outside this repository (their code is not committed here).
REFERENCE = [
    (
        '<think>t</think><answer>{"bbox": [0, 0, 100, 50], "points_1": [25, 25], "points_2": [75, 25]}</answer>',
        "soft",
        {
            "score": 3.3267,
            "format_think": 1.0,
            "format_seg": 1.0,
            "bbox_iou": 0.6428,
            "points_dice": 0.6839,
            "bbox_align": 0.0,
            "bbox_scale": 0.0,
            "points_align": 0.0,
            "points_angle": 0.0,
            "bbox_position_valid": 1.0,
            "bbox_area_valid": 0.5,
            "points_position_valid": 1.0,
            "points_spread_valid": 1.0,
        },
    ),
    (
        '<think>t</think><answer>{"bbox": [0, 0, 100, 50], "points_1": [25, 25], "points_2": [75, 25]}</answer>',
        "hard",
        {
            "score": 6.5046,
            "format_think": 1.0,
            "format_seg": 1.0,
            "bbox_iou": 0.6428,
            "points_dice": 0.6839,
            "bbox_align": 0.9126,
            "bbox_scale": 0.2787,
            "points_align": 0.9866,
            "points_angle": 1.0,
            "bbox_position_valid": 1.0,
            "bbox_area_valid": 0.5,
            "points_position_valid": 1.0,
            "points_spread_valid": 1.0,
        },
    ),
    (  # zero-height box, single quotes: soft keeps the IoU, hard zeroes the whole box group
        "<think>t</think><answer>{'bbox': [10, 10, 90, 10], 'points_1': [30, 40], 'points_2': [70, 60]}</answer>",
        "soft",
        {
            "score": 3.0812,
            "format_think": 1.0,
            "format_seg": 1.0,
            "bbox_iou": 0.0812,
            "points_dice": 1.0,
            "bbox_align": 0.0,
            "bbox_scale": 0.0,
            "points_align": 0.0,
            "points_angle": 0.0,
            "bbox_position_valid": 0.25,
            "bbox_area_valid": 0.5,
            "points_position_valid": 1.0,
            "points_spread_valid": 1.0,
        },
    ),
    (
        "<think>t</think><answer>{'bbox': [10, 10, 90, 10], 'points_1': [30, 40], 'points_2': [70, 60]}</answer>",
        "hard",
        {
            "score": 4.938700000000001,
            "format_think": 1.0,
            "format_seg": 1.0,
            "bbox_iou": 0.0,
            "points_dice": 1.0,
            "bbox_align": 0.0,
            "bbox_scale": 0.0,
            "points_align": 0.9923,
            "points_angle": 0.9464,
            "bbox_position_valid": 0.0,
            "bbox_area_valid": 0.0,
            "points_position_valid": 1.0,
            "points_spread_valid": 1.0,
        },
    ),
    (  # coincident points
        '<think>t</think><answer>{"bbox": [5, 5, 95, 95], "points_1": [50, 50], "points_2": [50, 50]}</answer>',
        "hard",
        {
            "score": 5.8664000000000005,
            "format_think": 1.0,
            "format_seg": 1.0,
            "bbox_iou": 0.9002,
            "points_dice": 0.0925,
            "bbox_align": 0.995,
            "bbox_scale": 0.8736,
            "points_align": 0.9126,
            "points_angle": 0.0925,
            "bbox_position_valid": 1.0,
            "bbox_area_valid": 1.0,
            "points_position_valid": 1.0,
            "points_spread_valid": 0.5,
        },
    ),
    (  # out-of-range box and points
        '<think>t</think><answer>{"bbox": [-50, -50, 500, 500], "points_1": [-10, 20], "points_2": [150, 60]}</answer>',
        "hard",
        {
            "score": 4.6591000000000005,
            "format_think": 1.0,
            "format_seg": 1.0,
            "bbox_iou": 0.1493,
            "points_dice": 0.3418,
            "bbox_align": 0.1824,
            "bbox_scale": 0.2694,
            "points_align": 0.8417,
            "points_angle": 0.8745,
            "bbox_position_valid": 1.0,
            "bbox_area_valid": 0.5,
            "points_position_valid": 0.25,
            "points_spread_valid": 1.0,
        },
    ),
    (  # tiny box and points
        '<think>t</think><answer>{"bbox": [40, 40, 41, 41], "points_1": [40, 40], "points_2": [41, 41]}</answer>',
        "hard",
        {
            "score": 4.8469999999999995,
            "format_think": 1.0,
            "format_seg": 1.0,
            "bbox_iou": 0.0814,
            "points_dice": 0.0954,
            "bbox_align": 0.7502,
            "bbox_scale": 0.2367,
            "points_align": 0.9073,
            "points_angle": 0.776,
            "bbox_position_valid": 0.25,
            "bbox_area_valid": 0.5,
            "points_position_valid": 1.0,
            "points_spread_valid": 0.5,
        },
    ),
    (  # blank think; JSON true counts as the number 1
        '<think> </think><answer>{"bbox": [true, 0, 100, 100], "points_1": [25, 50], "points_2": [75, 50]}</answer>',
        "hard",
        {
            "score": 7.1877,
            "format_think": 0.2,
            "format_seg": 1.0,
            "bbox_iou": 0.9951,
            "points_dice": 1.0,
            "bbox_align": 0.9998,
            "bbox_scale": 0.9928,
            "points_align": 1.0,
            "points_angle": 1.0,
            "bbox_position_valid": 1.0,
            "bbox_area_valid": 1.0,
            "points_position_valid": 1.0,
            "points_spread_valid": 1.0,
        },
    ),
    (  # perpendicular point pair still gets the full disc reward (2·IoU saturates)
        '<think>t</think><answer>{"bbox": [20, 20, 80, 80], "points_1": [50, 30], "points_2": [50, 70.5]}</answer>',
        "hard",
        {
            "score": 5.7783999999999995,
            "format_think": 1.0,
            "format_seg": 1.0,
            "bbox_iou": 0.5323,
            "points_dice": 1.0,
            "bbox_align": 0.9036,
            "bbox_scale": 0.2694,
            "points_align": 0.9731,
            "points_angle": 0.1,
            "bbox_position_valid": 1.0,
            "bbox_area_valid": 0.5,
            "points_position_valid": 1.0,
            "points_spread_valid": 1.0,
        },
    ),
]


@pytest.mark.parametrize("text, mode, expected", REFERENCE)
def test_equals_medreasoner_reference(text, mode, expected):
    got = medreasoner_score(text, GT_BOX, GT_POINTS, mode)
    assert list(got) == list(expected)
    assert got == expected  # exact, not approximate


def test_keys_are_medreasoner_keys_in_order():
    assert list(medreasoner_score(PERFECT, GT_BOX, GT_POINTS)) == [
        "score",
        "format_think",
        "format_seg",
        "bbox_iou",
        "points_dice",
        "bbox_align",
        "bbox_scale",
        "points_align",
        "points_angle",
        "bbox_position_valid",
        "bbox_area_valid",
        "points_position_valid",
        "points_spread_valid",
    ]
    assert list(KEYS) == list(medreasoner_score("", GT_BOX, GT_POINTS, "hard"))


@pytest.mark.parametrize("mode, maximum", [("soft", 4.0), ("hard", 8.0)])
def test_perfect_answer_gets_the_maximum(mode, maximum):
    got = medreasoner_score(PERFECT, GT_BOX, GT_POINTS, mode)
    assert got["score"] == maximum
    assert all(
        got[k] == 1.0
        for k in ("bbox_position_valid", "bbox_area_valid", "points_position_valid", "points_spread_valid")
    )


def test_hand_computed_values():
    # Predicted box covers the top half of the truth (IoU 1/2, area exactly half -> area check
    # fails), predicted points are the truth shifted up by 25 px.
    got = medreasoner_score(answer([0, 0, 100, 50], [25, 25], [75, 25]), GT_BOX, GT_POINTS, "hard")
    damp = 0.7 + 0.3 * (1.0 + 0.5) / 2  # position valid 1, area valid 0.5
    iou = 5000 / (10000 + 1e-5)
    assert got["bbox_iou"] == round(damp * (0.9 * math.log(3 * iou + 1) / math.log(4) + 0.1), 4) == 0.6428

    def exp_smooth(v, c):
        sig = lambda x: 1 / (1 + math.exp(3 * (x - c)))  # noqa: E731
        return 0.9 * (sig(v) - sig(2)) / (sig(0) - sig(2)) + 0.1

    diag = math.hypot(100, 100)
    assert got["bbox_align"] == round(damp * exp_smooth(12.5 / diag, 1.0), 4)  # mean edge error 50/4
    scale = math.hypot(math.log(0.5), math.log(2.0))  # half the area, twice the aspect ratio
    assert got["bbox_scale"] == round(damp * exp_smooth(scale, 0.5), 4)
    # Two discs of radius 25 whose centres are 25 apart: lens = 2r²·acos(d/2r) − (d/2)·√(4r² − d²).
    r, d = 25.0, 25.0
    lens = 2 * r * r * math.acos(d / (2 * r)) - d / 2 * math.sqrt(4 * r * r - d * d)
    overlap = 2 * lens / (2 * math.pi * r * r - lens)
    assert got["points_dice"] == round(0.9 * math.log(3 * overlap + 1) / math.log(4) + 0.1, 4)
    assert got["points_align"] == round(exp_smooth(12.5 / diag, 1.0), 4)  # each point 25 px off in y
    assert got["points_angle"] == 1.0  # both pairs horizontal
    assert got["score"] == pytest.approx(2 + sum(got[k] for k in KEYS[3:9]))


def test_missing_think_and_empty_think():
    body = json.dumps({"bbox": GT_BOX, "points_1": GT_POINTS[0], "points_2": GT_POINTS[1]})
    no_think = medreasoner_score(f"<answer>{body}</answer>", GT_BOX, GT_POINTS)
    assert no_think["format_think"] == 0.0 and no_think["format_seg"] == 1.0 and no_think["score"] == 3.0
    assert medreasoner_score(f"<think>\n </think><answer>{body}</answer>", GT_BOX, GT_POINTS)["format_think"] == 0.2


def test_missing_answer_scores_only_the_think_block():
    got = medreasoner_score("<think>the left lung</think> bbox [0, 0, 100, 100]", GT_BOX, GT_POINTS, "hard")
    assert got["score"] == 1.0 and got["format_seg"] == 0.0
    assert all(got[k] == 0.0 for k in KEYS[3:])


@pytest.mark.parametrize(
    "body, expected",
    [
        ("not json", 0.2),
        ("[1, 2, 3]", 0.2),  # JSON, but not an object
        ('{"bbox": [1, 2, 3, 4], "points_1": [1, 2]}', 0.4),  # a key missing
        ('{"bbox": [1, 2, 3], "points_1": [1], "points_2": [1, 2]}', 0.4),  # box and points malformed
        ('{"bbox": "1,2,3,4", "points_1": [1, 2], "points_2": [3, 4]}', 0.6),  # box malformed
        ('{"bbox": [1, 2, 3, 4], "points_1": [1, 2], "points_2": ["3", 4]}', 0.6),  # a point malformed
        ("{'bbox': [1, 2, 3, 4], 'points_1': [1, 2], 'points_2': [3, 4]}", 1.0),  # ' becomes "
        ("{'bbox': [1, 2, 3, 4], 'points_1': [1, 2], 'points_2': [3, 4], 'note': \"it's\"}", 0.2),  # ...everywhere
    ],
)
def test_graded_answer_format(body, expected):
    assert answer_format_score(body) == expected
    assert medreasoner_score(f"<think>t</think><answer>{body}</answer>", GT_BOX, GT_POINTS)["format_seg"] == expected


def test_format_helpers():
    assert answer_format_score(None) == 0.0
    assert (think_format_score(None), think_format_score(""), think_format_score("x")) == (0.0, 0.2, 1.0)


def test_bad_json_zeroes_geometry():
    got = medreasoner_score('<think>t</think><answer>{"bbox": [0, 0, 100, 100],</answer>', GT_BOX, GT_POINTS)
    assert got["score"] == 1.2 and got["format_seg"] == 0.2
    assert all(got[k] == 0.0 for k in KEYS[3:])


def test_malformed_box_still_scores_the_points():
    got = medreasoner_score(answer([0, 0, 100], *GT_POINTS), GT_BOX, GT_POINTS, "hard")
    assert got["format_seg"] == 0.6
    assert got["bbox_iou"] == got["bbox_align"] == got["bbox_position_valid"] == 0.0
    assert got["points_dice"] == got["points_align"] == got["points_angle"] == 1.0


def test_out_of_range_and_inverted_boxes():
    outside = medreasoner_score(answer([200, 200, 300, 300], [250, 250], [290, 290]), GT_BOX, GT_POINTS)
    assert outside["bbox_iou"] == round(0.1 * (0.7 + 0.3 * (0.25 + 1.0) / 2), 4)  # IoU 0 -> smoothed 0.1
    assert outside["bbox_position_valid"] == 0.25 and outside["points_position_valid"] == 0.25
    inverted = medreasoner_score(answer([100, 100, 0, 0], *GT_POINTS), GT_BOX, GT_POINTS)
    assert inverted["bbox_area_valid"] == 0.5 and inverted["bbox_position_valid"] == 0.25
    # IoU 0 (area 0): 0.7·0.1 + (1 − 0.7)·0.1·0.375 = 0.08124999… in floating point, as in MedReasoner.
    assert inverted["bbox_iou"] == 0.0812


def test_coincident_points_fail_the_spread_check():
    got = medreasoner_score(answer(GT_BOX, [50, 50], [50, 50]), GT_BOX, GT_POINTS, "hard")
    assert got["points_spread_valid"] == 0.5
    assert got["points_angle"] == round(0.1 * (0.7 + 0.3 * 0.75), 4)  # zero-length direction: cos 0
    near = medreasoner_score(answer(GT_BOX, [50, 50], [60, 50]), GT_BOX, GT_POINTS)  # exactly 10 apart: not > 10
    assert near["points_spread_valid"] == 0.5


def test_hard_adds_terms_that_soft_reports_as_zero():
    text = answer([10, 5, 90, 95], [30, 45], [70, 55])
    soft, hard = (medreasoner_score(text, GT_BOX, GT_POINTS, m) for m in ("soft", "hard"))
    for k in ("bbox_align", "bbox_scale", "points_align", "points_angle"):
        assert soft[k] == 0.0 and 0.0 < hard[k] <= 1.0
    for k in ("format_think", "format_seg", "bbox_iou", "points_dice", *KEYS[9:]):
        assert soft[k] == hard[k]
    assert hard["score"] > soft["score"]


def test_unknown_mode_is_an_error():
    with pytest.raises(MedgroundError, match="soft"):
        medreasoner_score(PERFECT, GT_BOX, GT_POINTS, mode="medium")
    with pytest.raises(MedgroundError):
        MedReasonerReward(mode="base")


def test_smoothing_and_penalty():
    assert smooth_log(0.0) == 0.1 and smooth_log(1.0) == 1.0
    assert smooth_exp(0.0) == pytest.approx(1.0, abs=1e-7) and smooth_exp(2.0) == pytest.approx(0.1)
    assert smooth_exp(1.0, c=0.5) == pytest.approx(0.2913, abs=1e-4)  # the scale reward's floor
    assert penalize(1.0, 1.0, 1.0) == 1.0 and penalize(1.0, 0.5, 0.5) == 0.85 and penalize(1.3, 1, 1) == 1.0


def test_disc_overlap_is_twice_the_iou_not_metrics_dice():
    same = [[0, 0], [10, 0]]
    assert disc_overlap(same, same) == pytest.approx(2.0, abs=1e-5)
    assert disc_dice([same], [same])[0] == 1.0
    inner = [[3, 0], [7, 0]]  # radius 2 inside radius 5: IoU 4/25
    assert disc_overlap(inner, same) == pytest.approx(2 * 4 / 25, rel=1e-4)
    assert disc_dice([inner], [same])[0] == pytest.approx(2 * 4 / 29)


def test_nan_and_huge_numbers_never_raise():
    nan_box = medreasoner_score(
        '<think>t</think><answer>{"bbox": [NaN, 0, 100, 100], "points_1": [25, 50], "points_2": [75, 50]}</answer>',
        GT_BOX,
        GT_POINTS,
        "hard",
    )
    assert math.isnan(nan_box["score"]) and nan_box["bbox_iou"] == 0.0812  # as MedReasoner
    huge = medreasoner_score(answer([0, 0, 10**400, 100], [1, 2], [3, 4]), GT_BOX, GT_POINTS, "hard")
    assert huge["bbox_iou"] == 0.0 and huge["format_seg"] == 1.0


answers = st.fixed_dictionaries(
    {},
    optional={
        "bbox": st.one_of(st.lists(st.one_of(st.integers(-(10**6), 10**6), st.floats()), max_size=5), st.text()),
        "points_1": st.lists(st.one_of(st.integers(), st.floats(), st.booleans()), max_size=3),
        "points_2": st.lists(st.one_of(st.integers(), st.floats(), st.none()), max_size=3),
    },
)


@settings(max_examples=300, deadline=None)
@given(text=st.text(), obj=answers, think=st.text(max_size=20), mode=st.sampled_from(["soft", "hard"]))
def test_never_raises_and_stays_in_range(text, obj, think, mode):
    for completion in (
        text,
        f"<think>{think}</think><answer>{json.dumps(obj)}</answer>{text}",
        f"<answer>{text}</answer><think>{text}</think>",
    ):
        got = medreasoner_score(completion, GT_BOX, GT_POINTS, mode)
        assert list(got) == list(KEYS)
        assert got["format_think"] in (0.0, 0.2, 1.0) and got["format_seg"] in (0.0, 0.2, 0.4, 0.6, 1.0)
        for k in KEYS[3:]:
            assert math.isnan(got[k]) or 0.0 <= got[k] <= 1.0
        assert math.isnan(got["score"]) or got["score"] <= (4.0 if mode == "soft" else 8.0)


def test_non_string_completion_scores_zero():
    assert medreasoner_score(None, GT_BOX, GT_POINTS)["score"] == 0.0


# --------------------------------------------------------------------------- TRL callable


def columns(n=1, **extra):
    base = {
        "boxes": [[GT_BOX]] * n,
        "points": [GT_POINTS] * n,
        "width": [100] * n,
        "height": [100] * n,
        "id": [f"s{i}" for i in range(n)],
    }
    base.update(extra)
    return base


def test_trl_names_and_completion_kinds():
    soft, hard = MedReasonerReward(), MedReasonerReward(mode="hard")
    assert soft.__name__ == "medreasoner" and hard.__name__ == "medreasoner_hard"
    conversational = [{"role": "assistant", "content": PERFECT}]
    assert soft(prompts=["p"] * 2, completions=[PERFECT, conversational], **columns(2)) == [4.0, 4.0]
    assert hard(completions=[conversational], **columns()) == [8.0]


def test_trl_returns_none_without_ground_truth():
    reward = MedReasonerReward()
    cols = columns(3, boxes=[[GT_BOX], [], [GT_BOX]], points=[GT_POINTS, GT_POINTS, None])
    assert reward(completions=[PERFECT] * 3, **cols) == [4.0, None, None]


def test_trl_logs_the_mean_of_every_component():
    logged = {}
    reward = MedReasonerReward(mode="hard")
    out = reward(
        completions=[PERFECT, "junk"], log_metric=lambda name, value: logged.__setitem__(name, value), **columns(2)
    )
    assert out == [8.0, 0.0]
    assert set(logged) == {f"medreasoner_hard/{k}" for k in KEYS}
    assert logged["medreasoner_hard/score"] == 4.0 and logged["medreasoner_hard/bbox_iou"] == 0.5


@pytest.mark.parametrize(
    "frame, width, height, scale",
    [("norm1000", 200, 100, (5.0, 10.0)), ("norm1", 200, 100, (1 / 200, 1 / 100)), ("fixed:400", 200, 100, (2.0, 4.0))],
)
def test_trl_maps_the_policy_frame_to_original_pixels(frame, width, height, scale):
    gt_box, gt_pts = [20, 10, 100, 50], [[40, 20], [80, 40]]
    pred_box, pred_pts = [30, 10, 110, 60], [[50, 30], [90, 30]]  # in original pixels
    sx, sy = scale
    in_frame = answer(
        [pred_box[0] * sx, pred_box[1] * sy, pred_box[2] * sx, pred_box[3] * sy],
        *[[x * sx, y * sy] for x, y in pred_pts],
    )
    reward = MedReasonerReward(mode="hard", frame=frame)
    got = reward(completions=[in_frame], boxes=[[gt_box]], points=[gt_pts], width=[width], height=[height])
    want = medreasoner_score(answer(pred_box, *pred_pts), gt_box, gt_pts, "hard")["score"]
    assert got[0] == pytest.approx(want, abs=1e-9)
    # Scored in the policy's own frame (what MedReasoner would do) the value differs.
    assert medreasoner_score(in_frame, gt_box, gt_pts, "hard")["score"] != pytest.approx(want, abs=1e-3)


def test_trl_qwen_frame_uses_the_image_size():
    image = Image.new("RGB", (1000, 500))  # Qwen2.5-VL resizes it to 1008 x 504
    gt_box, gt_pts = [100, 100, 300, 200], [[150, 150], [250, 150]]
    k = 1008 / 1000
    in_frame = answer([v * k for v in gt_box], *[[x * k, y * k] for x, y in gt_pts])
    reward = MedReasonerReward(frame="qwen2.5-vl")
    assert reward(completions=[in_frame], boxes=[[gt_box]], points=[gt_pts], image=[image]) == [4.0]


def test_trl_non_finite_total_becomes_zero():
    text = '<think>t</think><answer>{"bbox": [NaN, 0, 100, 100], "points_1": [25, 50], "points_2": [75, 50]}</answer>'
    assert MedReasonerReward(mode="hard")(completions=[text], **columns()) == [0.0]
    # An integer too large for a float zeroes the box group only; the points are still mapped and scored.
    huge = answer([0, 0, 10**400, 100], *GT_POINTS)
    got = MedReasonerReward(frame="norm1000")(completions=[huge], **columns())
    points_only = medreasoner_score(answer(GT_BOX, [2.5, 5.0], [7.5, 5.0]), GT_BOX, GT_POINTS)["points_dice"]
    assert got == [2.0 + points_only] and points_only > 0


def test_trl_dataset_problems_are_clear_errors():
    reward = MedReasonerReward()
    with pytest.raises(MedgroundError, match="boxes"):
        reward(completions=[PERFECT], points=[GT_POINTS])
    with pytest.raises(MedgroundError, match="id=bad"):
        reward(completions=[PERFECT], boxes=[[GT_BOX]], points=[[[1, 2]]], id=["bad"])
    with pytest.raises(MedgroundError, match="image size"):
        MedReasonerReward(frame="norm1000")(completions=[PERFECT], boxes=[[GT_BOX]], points=[GT_POINTS])


def test_registered_in_the_reward_registry():
    from medground import rewards

    assert {"mode", "frame", "min_pixels", "max_pixels"} <= set(rewards.spec("medreasoner").options)
    reward = rewards.get("medreasoner", mode="hard", frame="pixels")
    logged = []
    # the extra keyword arguments TRL 1.16's GRPOTrainer passes to every reward function
    trl_kwargs = {
        "trainer_state": object(),
        "log_extra": lambda column, values: None,
        "log_metric": lambda name, value: logged.append(name),
    }
    assert reward(
        prompts=[[{"role": "user", "content": "q"}]],
        completions=[PERFECT],
        completion_ids=[[1, 2]],
        **trl_kwargs,
        **columns(),
    ) == [8.0]
    assert f"{reward.__name__}/bbox_scale" in logged


def test_trl_resized_image_is_mapped_back_to_original_pixels():
    # The stored image is half the original size; the policy answers in the pixels it saw.
    seen = Image.new("RGB", (50, 50))
    half = answer([v / 2 for v in GT_BOX], *[[x / 2, y / 2] for x, y in GT_POINTS])
    reward = MedReasonerReward(mode="hard")
    assert reward(completions=[half], image=[seen], **columns()) == [8.0]
