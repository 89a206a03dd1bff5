"""MedReasoner's grounding reward (arXiv 2508.08177), reproduced exactly.

The policy answers ``<think>…</think><answer>{"bbox": [x1, y1, x2, y2],
"points_1": [x, y], "points_2": [x, y]}</answer>``.  The reward is the sum of

* two graded format scores (``format_think`` in {0, 0.2, 1}, ``format_seg`` in
  {0, 0.2, 0.4, 0.6, 1}),
* box rewards: IoU (log-smoothed), and in ``"hard"`` mode edge alignment and scale
  (exp-smoothed),
* point rewards: disc overlap (log-smoothed), and in ``"hard"`` mode endpoint
  alignment (exp-smoothed) and direction (log-smoothed),

each geometric reward damped by two validity factors in {0.5, 1} and rounded to 4
decimals.  The four validity factors are reported too, giving MedReasoner's 13 keys
(:data:`KEYS`).  This is a preset named after a paper: it reproduces the released code
(``verl/utils/reward_score/med_grounding.py`` of PRIS-CV/MedReasoner) value for value,
quirks included — see ``docs/medreasoner_reward.md`` for the formulas and the list of
quirks (its "dice" is ``2·|A∩B| / |A∪B|`` and reaches 2, the scale reward never falls
below ≈0.29, a hard-mode arithmetic error zeroes the whole box or point group, ``'``
is replaced by ``"`` before ``json.loads``, JSON ``true`` counts as the number 1...).

MedReasoner scores in whatever frame the ground truth is given in.
:class:`MedReasonerReward` (the TRL callable) instead maps the policy's answer
from its frame to original-image pixels (``medground.geometry``) before scoring, so
thresholds such as "points more than 10 px apart" are in original pixels.

>>> s = medreasoner_score(
...     '<think>left lung</think><answer>{"bbox": [10, 10, 50, 50], '
...     '"points_1": [20, 20], "points_2": [40, 40]}</answer>',
...     gt_bbox=[10, 10, 50, 50], gt_points=[[20, 20], [40, 40]])
>>> s["score"], s["format_think"], s["bbox_iou"], s["points_dice"]
(4.0, 1.0, 1.0, 1.0)
>>> medreasoner_score("no tags", [0, 0, 10, 10], [[2, 2], [8, 8]])["score"]
0.0
"""

from __future__ import annotations

import json
import math
import numbers
import re
from collections.abc import Callable, Sequence

from ..errors import MedgroundError
from ..parsing import tag_block
from ..registry import Option
from .base import FRAME_OPTIONS, Batch, Reward
from .registry import register

__all__ = [
    "KEYS",
    "MODES",
    "MedReasonerReward",
    "answer_format_score",
    "area_valid",
    "bbox_align_reward",
    "bbox_iou_reward",
    "bbox_rewards",
    "bbox_scale_reward",
    "box_edge_distance",
    "box_scale_distance",
    "diagonal_normalise",
    "disc_overlap",
    "extract_think_answer",
    "medreasoner_score",
    "parse_ground_truth",
    "penalize",
    "point_pair_cosine",
    "point_pair_distance",
    "points_align_reward",
    "points_angle_reward",
    "points_dice_reward",
    "points_inside",
    "points_rewards",
    "released_box_iou",
    "smooth_exp",
    "smooth_log",
    "spread_valid",
    "think_format_score",
]

#: The 13 keys of MedReasoner's ``compute_score`` result, in its order.
KEYS = (
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
)
#: ``"soft"``: format + box IoU + point disc overlap.  ``"hard"``: all eight terms.
MODES = ("soft", "hard")

ANSWER_KEYS = ("bbox", "points_1", "points_2")

SMOOTH_K = 3.0  # steepness of both smoothings
SMOOTH_FLOOR = 0.1  # smoothed rewards are rescaled to [0.1, 1]
PENALTY_K = 0.7  # share of a reward that validity cannot take away
INVALID = 0.5  # factor of a failed validity check
SPREAD_MIN = 10  # points at most this far apart (frame units) fail the spread check
ALIGN_MAX = 2.0  # alignment distances are capped at 2 box diagonals
SCALE_MAX = 1.0  # scale distances are capped at 1
IOU_EPS = 1e-5  # added to box unions, disc radii, disc unions, diagonals
AREA_EPS = 1e-6  # added to areas and aspect ratios in the scale distance
ANGLE_EPS = 1e-8  # added to vector lengths in the direction cosine

# MedReasoner's block patterns, the definition of :func:`extract_think_answer` (which finds the same
# blocks with :func:`medground.parsing.tag_block`, in linear time; tests/test_released_patterns.py).
THINK_BLOCK_RE = re.compile(r"<think>(.*?)</think>", re.DOTALL)
ANSWER_BLOCK_RE = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
_ARITHMETIC = (ArithmeticError, ValueError)  # what MedReasoner's broad ``except`` swallows here
_ZERO5 = (0.0, 0.0, 0.0, 0.0, 0.0)


# --------------------------------------------------------------------------- parsing


def extract_think_answer(text: str) -> tuple[str | None, str | None]:
    """Contents of the first ``<think>…</think>`` and ``<answer>…</answer>`` (shortest
    match, may span lines), or ``None`` when a block is absent.

    >>> extract_think_answer("<think> a </think><answer>{}</answer><answer>x</answer>")
    (' a ', '{}')
    """
    return tag_block(text, "think"), tag_block(text, "answer")


def _load_answer(answer: str):
    """``(True, obj)`` when the answer block is JSON after MedReasoner's clean-up
    (strip, every ``'`` replaced by ``"``), else ``(False, None)``."""
    try:
        return True, json.loads(answer.strip().replace("'", '"'))
    except Exception:  # JSONDecodeError, RecursionError on deep nesting, int-digit limit
        return False, None


def _is_numbers(value, n: int) -> bool:
    """A JSON list of exactly ``n`` numbers (``int``/``float``; ``true``/``false`` count,
    as they do in Python)."""
    return isinstance(value, list) and len(value) == n and all(isinstance(v, (int, float)) for v in value)


def think_format_score(think: str | None) -> float:
    """0 without a think block, 0.2 when it is blank, 1 otherwise.

    >>> think_format_score(None), think_format_score("  "), think_format_score("x")
    (0.0, 0.2, 1.0)
    """
    if think is None:
        return 0.0
    return 1.0 if think.strip() else 0.2


def answer_format_score(answer: str | None) -> float:
    """MedReasoner's graded answer-format score.

    0 no answer block · 0.2 not a JSON object · 0.4 a key of ``bbox``/``points_1``/
    ``points_2`` missing, or both the box and the points malformed · 0.6 one of them
    malformed · 1 all well-formed (box: 4 numbers, each point: 2 numbers).

    >>> answer_format_score('{"bbox": [1, 2, 3, 4], "points_1": [1, 2], "points_2": "x"}')
    0.6
    """
    if answer is None:
        return 0.0
    return _format_seg(*_load_answer(answer))


def _format_seg(ok: bool, obj) -> float:
    if not ok or not isinstance(obj, dict):
        return 0.2
    if not all(k in obj for k in ANSWER_KEYS):
        return 0.4
    box_ok = _is_numbers(obj["bbox"], 4)
    points_ok = _is_numbers(obj["points_1"], 2) and _is_numbers(obj["points_2"], 2)
    if not box_ok and not points_ok:
        return 0.4
    if not box_ok or not points_ok:
        return 0.6
    return 1.0


# --------------------------------------------------------------------------- smoothing


def smooth_log(value: float, k: float = SMOOTH_K) -> float:
    """``0.9 · ln(k·v + 1) / ln(k + 1) + 0.1`` — maps 0 → 0.1 and 1 → 1, concave.

    >>> smooth_log(0.0), smooth_log(1.0)
    (0.1, 1.0)
    """
    s = math.log(k * value + 1) / math.log(k + 1)
    return s * 0.9 + SMOOTH_FLOOR


def smooth_exp(value: float, k: float = SMOOTH_K, c: float = 1.0) -> float:
    """Decreasing logistic ``σ(-k(v - c))`` rescaled so that v=0 → 1 and v=2 → 0.1
    (the rescaling always uses 0 and 2, whatever the caller's cap on ``v``).

    >>> round(smooth_exp(0.0), 6), round(smooth_exp(2.0), 6)
    (1.0, 0.1)
    """
    raw = 1.0 / (1 + math.exp(k * (value - c)))
    lo = 1.0 / (1 + math.exp(k * (2 - c)))
    hi = 1.0 / (1 + math.exp(k * (0 - c)))
    s = (raw - lo) / (hi - lo + 1e-8)
    return s * 0.9 + SMOOTH_FLOOR


def diagonal_normalise(value: float, box: Sequence[float], max_value: float = ALIGN_MAX) -> float:
    """``value`` divided by the diagonal of ``box`` (+1e-5), clipped to ``[0, max_value]``."""
    w = box[2] - box[0]
    h = box[3] - box[1]
    diag = math.sqrt(w**2 + h**2)
    norm = value / (diag + IOU_EPS)
    return max(min(norm, max_value), 0.0)


def penalize(reward: float, valid1: float, valid2: float, k: float = PENALTY_K) -> float:
    """``k·r + (1-k)·r·mean(valid1, valid2)``, clipped to [0, 1], rounded to 4 decimals.

    >>> penalize(1.0, 1.0, 1.0), penalize(1.0, 0.5, 0.5), penalize(0.8, 0.25, 1.0)
    (1.0, 0.85, 0.71)
    """
    avg = (valid1 + valid2) / 2
    reward = k * reward + (1 - k) * reward * avg
    return round(min(max(reward, 0.0), 1.0), 4)


# --------------------------------------------------------------------------- validity


def points_inside(p1: Sequence[float], p2: Sequence[float], box: Sequence[float]) -> float:
    """1 per point inside ``box`` (edges included), 0.5 per point outside; the product.

    >>> points_inside([1, 1], [20, 20], [0, 0, 10, 10])
    0.5
    """
    v1 = 1.0 if box[0] <= p1[0] <= box[2] and box[1] <= p1[1] <= box[3] else INVALID
    v2 = 1.0 if box[0] <= p2[0] <= box[2] and box[1] <= p2[1] <= box[3] else INVALID
    return v1 * v2


def _area(box: Sequence[float]) -> float:
    return max(0.0, (box[2] - box[0])) * max(0.0, (box[3] - box[1]))


def area_valid(pred_box: Sequence[float], gt_box: Sequence[float]) -> float:
    """1 when the predicted area lies strictly between half and twice the true area, else 0.5."""
    a_pred, a_gt = _area(pred_box), _area(gt_box)
    return 1.0 if (0.5 * a_gt) < a_pred < (2 * a_gt) else INVALID


def spread_valid(p1: Sequence[float], p2: Sequence[float]) -> float:
    """1 when the two points are more than 10 units apart, else 0.5."""
    return 1.0 if math.dist(p1, p2) > SPREAD_MIN else INVALID


# --------------------------------------------------------------------------- box terms


def released_box_iou(pred: Sequence[float], gt: Sequence[float]) -> float:
    """The released MedReasoner box IoU: ``inter / (union + 1e-5)``, negative extents count as 0.

    Differs from :func:`medground.metrics.box_iou` by the 1e-5 (a perfect box scores
    ``1 - 1e-5/area``) and in how it treats NaN; kept separate for exactness.

    >>> round(released_box_iou([0, 0, 10, 10], [0, 0, 10, 10]), 8)
    0.9999999
    """
    x1 = max(pred[0], gt[0])
    y1 = max(pred[1], gt[1])
    x2 = min(pred[2], gt[2])
    y2 = min(pred[3], gt[3])
    inter = max(0, x2 - x1) * max(0, y2 - y1)
    area_p = max(0, (pred[2] - pred[0])) * max(0, (pred[3] - pred[1]))
    area_g = max(0, (gt[2] - gt[0])) * max(0, (gt[3] - gt[1]))
    union = area_p + area_g - inter
    return inter / (union + IOU_EPS)


def box_edge_distance(pred: Sequence[float], gt: Sequence[float]) -> float:
    """Mean absolute difference of the four box coordinates."""
    return sum(abs(a - b) for a, b in zip(pred, gt)) / 4


def box_scale_distance(pred: Sequence[float], gt: Sequence[float]) -> float:
    """``√(Δln(area)² + Δln(aspect)²)`` with 1e-6 added to areas and aspect ratios.
    Raises ``ZeroDivisionError`` for a zero height and ``ValueError`` for a negative area."""
    w1, h1 = pred[2] - pred[0], pred[3] - pred[1]
    w2, h2 = gt[2] - gt[0], gt[3] - gt[1]
    d_area = math.log((w1 * h1 + AREA_EPS) / (w2 * h2 + AREA_EPS))
    d_aspect = math.log((w1 / h1 + AREA_EPS) / (w2 / h2 + AREA_EPS))
    return math.sqrt(d_area**2 + d_aspect**2)


def bbox_iou_reward(pred: Sequence[float], gt: Sequence[float]) -> float:
    """``smooth_log(released_box_iou)`` — in [0.1, 1) before penalties."""
    return smooth_log(released_box_iou(pred, gt), k=SMOOTH_K)


def bbox_align_reward(pred: Sequence[float], gt: Sequence[float]) -> float:
    """``smooth_exp(min(edge distance / gt diagonal, 2), c=1)``."""
    return smooth_exp(diagonal_normalise(box_edge_distance(pred, gt), gt, ALIGN_MAX), k=SMOOTH_K, c=1.0)


def bbox_scale_reward(pred: Sequence[float], gt: Sequence[float]) -> float:
    """``smooth_exp(min(scale distance, 1), c=0.5)`` — in [≈0.29, 1]."""
    return smooth_exp(min(box_scale_distance(pred, gt), SCALE_MAX), k=SMOOTH_K, c=0.5)


def bbox_rewards(pred, gt_bbox, gt_points, mode: str = "soft") -> tuple[float, float, float, float, float]:
    """``(bbox_iou, bbox_align, bbox_scale, bbox_position_valid, bbox_area_valid)``.

    ``pred`` is the answer's ``bbox`` value; anything but a list of 4 numbers gives all
    zeros.  Position validity asks whether the *ground-truth* points lie in the
    *predicted* box; area validity compares areas.  In ``"soft"`` mode align and scale
    are 0.  An arithmetic error anywhere (zero-height box in hard mode, overflow) gives
    all zeros, as in MedReasoner.
    """
    if not _is_numbers(pred, 4):
        return _ZERO5
    try:
        position = points_inside(gt_points[0], gt_points[1], pred)
        area = area_valid(pred, gt_bbox)
        iou = penalize(bbox_iou_reward(pred, gt_bbox), position, area)
        if mode == "soft":
            return iou, 0.0, 0.0, position, area
        align = penalize(bbox_align_reward(pred, gt_bbox), position, area)
        scale = penalize(bbox_scale_reward(pred, gt_bbox), position, area)
        return iou, align, scale, position, area
    except _ARITHMETIC:
        return _ZERO5


# --------------------------------------------------------------------------- point terms


def _disc(p1, p2) -> tuple[float, float, float]:
    """Centre and radius (+1e-5) of the disc whose diameter is ``p1``–``p2``."""
    return (p1[0] + p2[0]) / 2, (p1[1] + p2[1]) / 2, math.dist(p1, p2) / 2 + IOU_EPS


def _disc_intersection(r1: float, r2: float, d: float) -> float:
    """Lens area of two discs at centre distance ``d``, with 1e-5 tolerances."""
    if d >= r1 + r2 - IOU_EPS:
        return 0.0
    if d <= abs(r1 - r2) + IOU_EPS:
        return math.pi * min(r1, r2) ** 2
    c1 = max(-1.0, min(1.0, (d * d + r1 * r1 - r2 * r2) / (2 * d * r1)))
    c2 = max(-1.0, min(1.0, (d * d + r2 * r2 - r1 * r1) / (2 * d * r2)))
    k = max(0.0, (-d + r1 + r2) * (d + r1 - r2) * (d - r1 + r2) * (d + r1 + r2))
    return r1 * r1 * math.acos(c1) + r2 * r2 * math.acos(c2) - 0.5 * math.sqrt(k)


def disc_overlap(pred_points, gt_points) -> float:
    """MedReasoner's point "dice": ``2·|A∩B| / (|A∪B| + 1e-5)`` for the discs A, B whose
    diameters are the point pairs (radius + 1e-5).  Note: this is twice the disc IoU,
    in [0, 2] — *not* the Dice of :func:`medground.metrics.disc_dice` (``2|A∩B|/(|A|+|B|)``).

    >>> round(disc_overlap([[0, 0], [2, 0]], [[0, 0], [2, 0]]), 4)
    2.0
    """
    pcx, pcy, pr = _disc(pred_points[0], pred_points[1])
    gcx, gcy, gr = _disc(gt_points[0], gt_points[1])
    d = math.dist((pcx, pcy), (gcx, gcy))
    inter = _disc_intersection(pr, gr, d)
    union = math.pi * pr**2 + math.pi * gr**2 - inter
    return (2 * inter) / (union + IOU_EPS)


def point_pair_distance(pred_points, gt_points) -> float:
    """Order-free endpoint distance: per point the mean of |dx| and |dy|, summed over the
    two points for the better of the two pairings, halved."""

    def l1(p, q):
        return (abs(p[0] - q[0]) + abs(p[1] - q[1])) / 2

    d1 = l1(pred_points[0], gt_points[0]) + l1(pred_points[1], gt_points[1])
    d2 = l1(pred_points[0], gt_points[1]) + l1(pred_points[1], gt_points[0])
    return min(d1, d2) / 2


def point_pair_cosine(pred_points, gt_points) -> float:
    """|cos| of the angle between the two point-pair directions (1e-8 added to lengths;
    a zero-length pair gives 0)."""
    vxg, vyg = gt_points[1][0] - gt_points[0][0], gt_points[1][1] - gt_points[0][1]
    vxp, vyp = pred_points[1][0] - pred_points[0][0], pred_points[1][1] - pred_points[0][1]
    len_g = math.hypot(vxg, vyg) + ANGLE_EPS
    len_p = math.hypot(vxp, vyp) + ANGLE_EPS
    return abs((vxg * vxp + vyg * vyp) / (len_g * len_p))


def points_dice_reward(pred_points, gt_points) -> float:
    """``smooth_log(disc_overlap)`` — reaches ≈1.36 before the penalty clips it to 1."""
    return smooth_log(disc_overlap(pred_points, gt_points), k=SMOOTH_K)


def points_align_reward(pred_points, gt_points, gt_bbox) -> float:
    """``smooth_exp(min(pair distance / gt box diagonal, 2), c=1)``."""
    return smooth_exp(diagonal_normalise(point_pair_distance(pred_points, gt_points), gt_bbox, ALIGN_MAX))


def points_angle_reward(pred_points, gt_points) -> float:
    """``smooth_log(|cos|)`` — parallel or anti-parallel pairs score 1, orthogonal 0.1."""
    return smooth_log(point_pair_cosine(pred_points, gt_points), k=SMOOTH_K)


def points_rewards(p1, p2, gt_bbox, gt_points, mode: str = "soft") -> tuple[float, float, float, float, float]:
    """``(points_dice, points_align, points_angle, points_position_valid, points_spread_valid)``.

    ``p1``/``p2`` are the answer's ``points_1``/``points_2``; unless both are lists of 2
    numbers, all zeros.  Position validity asks whether the *predicted* points lie in
    the *ground-truth* box; spread validity whether they are > 10 units apart.
    """
    if not (_is_numbers(p1, 2) and _is_numbers(p2, 2)):
        return _ZERO5
    try:
        position = points_inside(p1, p2, gt_bbox)
        spread = spread_valid(p1, p2)
        pred = [p1, p2]
        dice = penalize(points_dice_reward(pred, gt_points), position, spread)
        if mode == "soft":
            return dice, 0.0, 0.0, position, spread
        align = penalize(points_align_reward(pred, gt_points, gt_bbox), position, spread)
        angle = penalize(points_angle_reward(pred, gt_points), position, spread)
        return dice, align, angle, position, spread
    except _ARITHMETIC:
        return _ZERO5


# --------------------------------------------------------------------------- the score


def _check_mode(mode: str) -> str:
    if mode not in MODES:
        raise MedgroundError(f"medreasoner reward mode must be one of {MODES}, got {mode!r}")
    return mode


def medreasoner_score(
    solution_str: str,
    gt_bbox: Sequence[float],
    gt_points: Sequence[Sequence[float]],
    mode: str = "soft",
    *,
    map_box: Callable[[list], list] | None = None,
    map_point: Callable[[list], list] | None = None,
) -> dict[str, float]:
    """MedReasoner's reward for one completion; a dict with exactly :data:`KEYS`.

    ``gt_bbox`` is ``[x1, y1, x2, y2]`` and ``gt_points`` ``[[x, y], [x, y]]``, in the
    frame the answer is scored in (see :func:`parse_ground_truth` for validation).
    ``map_box`` / ``map_point`` optionally convert the *predicted* box / a predicted
    point to that frame after the answer's format is checked (used by the TRL reward).
    Never raises on any ``solution_str``; a non-string scores 0.
    """
    _check_mode(mode)
    text = solution_str if isinstance(solution_str, str) else ""
    think, answer = extract_think_answer(text)
    format_think = think_format_score(think)
    format_seg = 0.0
    box_terms = points_terms = _ZERO5
    if answer is not None:
        ok, obj = _load_answer(answer)
        format_seg = _format_seg(ok, obj)
        if ok and isinstance(obj, dict):
            box, p1, p2 = obj.get("bbox"), obj.get("points_1"), obj.get("points_2")
            if map_box is not None and _is_numbers(box, 4):
                try:
                    box = map_box(box)
                except _ARITHMETIC:  # e.g. an integer too large for a float: box group scores 0
                    box = None
            if map_point is not None and _is_numbers(p1, 2) and _is_numbers(p2, 2):
                try:
                    p1, p2 = map_point(p1), map_point(p2)
                except _ARITHMETIC:
                    p1 = p2 = None
            box_terms = bbox_rewards(box, gt_bbox, gt_points, mode)
            points_terms = points_rewards(p1, p2, gt_bbox, gt_points, mode)
    bbox_iou, bbox_align, bbox_scale, bbox_position, bbox_area = box_terms
    points_dice, points_align, points_angle, points_position, points_spread = points_terms
    # Summation order as in MedReasoner (floating-point addition is not associative).
    score = format_think + format_seg + bbox_iou + bbox_align + bbox_scale + points_align + points_angle + points_dice
    return {
        "score": score,
        "format_think": format_think,
        "format_seg": format_seg,
        "bbox_iou": bbox_iou,
        "points_dice": points_dice,
        "bbox_align": bbox_align,
        "bbox_scale": bbox_scale,
        "points_align": points_align,
        "points_angle": points_angle,
        "bbox_position_valid": bbox_position,
        "bbox_area_valid": bbox_area,
        "points_position_valid": points_position,
        "points_spread_valid": points_spread,
    }


def _finite_numbers(value, n: int) -> bool:
    return (
        isinstance(value, (list, tuple))
        and len(value) == n
        and all(isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v) for v in value)
    )


def _plain(values) -> list:
    """Python ``int``/``float`` kept as they are (exactness), other reals (numpy) as float."""
    return [v if type(v) in (int, float) else float(v) for v in values]


def parse_ground_truth(gt_bbox, gt_points, context: str = "") -> tuple[list[float], list[list[float]]]:
    """Check and normalise a ground truth: 4 finite numbers, and 2 points of 2 finite
    numbers.  Raises :class:`MedgroundError` (prefixed with ``context``) otherwise.

    MedReasoner itself silently scores 0 for a malformed ground truth; a data error
    here is reported instead.  Degenerate but numeric boxes are accepted and scored
    as MedReasoner scores them.
    """
    prefix = f"{context}: " if context else ""
    if hasattr(gt_bbox, "tolist"):
        gt_bbox = gt_bbox.tolist()
    if hasattr(gt_points, "tolist"):
        gt_points = gt_points.tolist()
    if not _finite_numbers(gt_bbox, 4):
        raise MedgroundError(f"{prefix}ground-truth box must be 4 finite numbers [x1, y1, x2, y2], got {gt_bbox!r}")
    if not (
        isinstance(gt_points, (list, tuple)) and len(gt_points) == 2 and all(_finite_numbers(p, 2) for p in gt_points)
    ):
        raise MedgroundError(
            f"{prefix}ground-truth points must be [[x, y], [x, y]] (finite numbers), got {gt_points!r}"
        )
    return _plain(gt_bbox), [_plain(p) for p in gt_points]


# --------------------------------------------------------------------------- TRL reward


def _mappers(batch: Batch, i: int, context: str):
    """``(map_box, map_point)`` from the policy frame to original pixels for sample ``i``
    (``(None, None)`` when nothing needs mapping)."""
    if batch.frame.kind == "pixels" and (
        batch.image_size(i) is None or batch.size(i) is None or tuple(batch.image_size(i)) == tuple(batch.size(i))
    ):
        return None, None
    if batch.image_size(i) is None:
        raise MedgroundError(
            f"{context}: frame {batch.frame.name!r} needs the image size (an image column or width/height columns)"
        )

    def map_box(box: list) -> list:
        return batch.to_original([box], i)[0].tolist()

    def map_point(point: list) -> list:
        return batch.points_to_original([point], i)[0].tolist()

    return map_box, map_point


@register(
    "medreasoner",
    description="MedReasoner's reward (format + box IoU/align/scale + point disc/align/angle), exact reproduction",
    options={
        "mode": Option("'soft' (format + box IoU + point disc overlap) or 'hard' (all eight terms)"),
        **FRAME_OPTIONS,
    },
)
class MedReasonerReward(Reward):
    """A TRL reward computing MedReasoner's total ``score`` per completion.

    The answer's box and points are mapped from the policy's ``frame`` to original
    pixels before scoring (MedReasoner scores in the ground truth's frame; here that
    frame is original pixels).  Columns used: ``boxes`` (the first box is the truth),
    ``points`` (``[[x, y], [x, y]]``), ``image`` and/or ``width``/``height``, ``id``.
    Every one of the 13 components' batch mean (:data:`KEYS`) goes to ``log_metric`` as
    ``"<name>/<component>"``.  ``__name__`` is ``"medreasoner"`` or
    ``"medreasoner_hard"`` (:func:`medground.rewards.get` renames it by options).

    Returns:
        list[float | None]: the total score per completion; None for a sample without
        a box or without points; a non-finite total (an answer with NaN coordinates)
        becomes 0.0.

    Example:
        >>> reward = MedReasonerReward(frame="norm1000")
        >>> done = '<think>x</think><answer>{"bbox": [100, 100, 500, 500], "points_1": [200, 200], "points_2": [400, 400]}</answer>'
        >>> reward(completions=[[{"role": "assistant", "content": done}], "junk"],
        ...        boxes=[[[20, 10, 100, 50]], [[20, 10, 100, 50]]], points=[[[40, 20], [80, 40]]] * 2,
        ...        width=[200, 200], height=[100, 100])
        [4.0, 0.0]
    """

    def __init__(self, mode: str = "soft", **frame_options):
        self.mode = _check_mode(mode)
        super().__init__(**frame_options)
        self.__name__ = "medreasoner" if mode == "soft" else "medreasoner_hard"

    def score(self, batch: Batch):
        rewards: list[float | None] = []
        components: dict[str, list[float]] = {key: [] for key in KEYS}
        for i, text in enumerate(batch.texts):
            context = f"reward {batch.name} [{batch.sample_id(i)}]"
            boxes = batch.gt_boxes(i)
            points = batch.column("points", i)
            if len(boxes) == 0 or points is None:
                rewards.append(None)  # MedReasoner's reward needs a box and a point pair
                continue
            gt_box, gt_points = parse_ground_truth(boxes[0].tolist(), points, context)
            map_box, map_point = _mappers(batch, i, context)
            result = medreasoner_score(text, gt_box, gt_points, self.mode, map_box=map_box, map_point=map_point)
            rewards.append(result["score"])
            for key in KEYS:
                components[key].append(result[key])
        return rewards, components
