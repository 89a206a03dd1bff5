"""Overlap metrics (numpy), after ``torchvision.ops.boxes``.

*Paired* functions compare row ``i`` of the first input with row ``i`` of the second
(one row is broadcast against N) and return float64 ``(N,)``; the ``*_matrix``
functions compare every row with every row and return ``(N, M)``.  Boxes are ``xyxy``
(anything :func:`numpy.asarray` takes: ``Tensor[N, 4]``, ``ndarray``, nested lists).
Degenerate input (zero area, inverted box, NaN, empty mask, zero-length point pair)
scores 0 and never raises.

>>> box_iou([[0, 0, 10, 10]], [[5, 0, 15, 10]]).round(4).tolist()
[0.3333]
>>> box_iou([[0, 0, 10, 10]], [[5, 0, 15, 10]], variant="vlm-r1").round(4).tolist()
[0.3333]
>>> box_iou_matrix([[0, 0, 10, 10], [0, 0, 5, 10]], [[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]]).round(4).tolist()
[[1.0, 0.3333, 0.0], [0.5, 0.0, 0.0]]
>>> disc_dice([[[0, 0], [2, 0]]], [[[0, 0], [2, 0]]]).tolist()
[1.0]
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

import numpy as np

from .geometry import as_boxes, as_points

IOU_VARIANTS = ("standard", "vlm-r1")


def _quiet(fn):
    """Run ``fn`` with numpy floating-point warnings silenced (degenerate input is expected)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with np.errstate(all="ignore"):
            return fn(*args, **kwargs)

    return wrapper


# --------------------------------------------------------------------------- boxes


def box_iou(boxes1, boxes2, variant: str = "standard") -> np.ndarray:
    """IoU of paired ``xyxy`` boxes.

    Args:
        boxes1 (Tensor[N, 4] | ndarray): first boxes (one box is paired with every row of ``boxes2``).
        boxes2 (Tensor[N, 4] | ndarray): second boxes (one box is paired with every row of ``boxes1``).
        variant (str): ``"standard"`` (continuous areas) or ``"vlm-r1"``: the
            inclusive-pixel IoU of the VLM-R1 / MedGround-R1 code — the intersection is
            ``(min(x2)-1 - max(x1) + 1) * (min(y2)-1 - max(y1) + 1)`` only when
            ``max(x1) < min(x2)-1`` and ``max(y1) < min(y2)-1`` (strictly), the union uses
            the plain areas ``(x2-x1)*(y2-y1)``.  It can exceed 1 for tiny boxes, as there.

    Returns:
        ndarray[N]: the IoU of each pair (float64), 0 for a degenerate pair.
    """
    return _iou(*_paired(as_boxes(boxes1), as_boxes(boxes2), "boxes"), _check_variant(variant))


def box_iou_matrix(boxes1, boxes2, variant: str = "standard") -> np.ndarray:
    """IoU of every box of ``boxes1`` with every box of ``boxes2``.

    Args:
        boxes1 (Tensor[N, 4] | ndarray): first set of ``xyxy`` boxes.
        boxes2 (Tensor[M, 4] | ndarray): second set of ``xyxy`` boxes.
        variant (str): ``"standard"`` or ``"vlm-r1"``, as in :func:`box_iou`.

    Returns:
        ndarray[N, M]: entry ``[i, j]`` equals ``box_iou(boxes1[i], boxes2[j], variant)``
        bit for bit.
    """
    a, b = as_boxes(boxes1), as_boxes(boxes2)
    return _iou(a[:, None], b[None], _check_variant(variant))


def box_giou(boxes1, boxes2) -> np.ndarray:
    """Generalised IoU of paired ``xyxy`` boxes.

    Args:
        boxes1 (Tensor[N, 4] | ndarray): first boxes (one box is paired with every row of ``boxes2``).
        boxes2 (Tensor[N, 4] | ndarray): second boxes.

    Returns:
        ndarray[N]: GIoU in [-1, 1] of each pair; a degenerate pair gives 0.
    """
    return _giou(*_paired(as_boxes(boxes1), as_boxes(boxes2), "boxes"))


def box_giou_matrix(boxes1, boxes2) -> np.ndarray:
    """Generalised IoU of every box of ``boxes1`` with every box of ``boxes2``.

    Args:
        boxes1 (Tensor[N, 4] | ndarray): first set of ``xyxy`` boxes.
        boxes2 (Tensor[M, 4] | ndarray): second set of ``xyxy`` boxes.

    Returns:
        ndarray[N, M]: entry ``[i, j]`` equals ``box_giou(boxes1[i], boxes2[j])``.
    """
    a, b = as_boxes(boxes1), as_boxes(boxes2)
    return _giou(a[:, None], b[None])


def _check_variant(variant: str) -> str:
    if variant not in IOU_VARIANTS:
        raise ValueError(f"IoU variant must be one of {IOU_VARIANTS}, got {variant!r}")
    return variant


@_quiet
def _iou(boxes1: np.ndarray, boxes2: np.ndarray, variant: str) -> np.ndarray:
    """IoU of broadcastable ``(..., 4)`` arrays: (N, 4) with (N, 4), or (N, 1, 4) with (1, M, 4)."""
    inter, union = _box_inter_union(boxes1, boxes2, variant)
    return np.where(_valid(boxes1) & _valid(boxes2), _safe_div(inter, union), 0.0)


@_quiet
def _giou(boxes1: np.ndarray, boxes2: np.ndarray) -> np.ndarray:
    """GIoU of broadcastable ``(..., 4)`` arrays; the IoU comes from the same intersection and union."""
    inter, union = _box_inter_union(boxes1, boxes2, "standard")
    hull = (np.maximum(boxes1[..., 2], boxes2[..., 2]) - np.minimum(boxes1[..., 0], boxes2[..., 0])) * (
        np.maximum(boxes1[..., 3], boxes2[..., 3]) - np.minimum(boxes1[..., 1], boxes2[..., 1])
    )
    giou = _safe_div(inter, union) - _safe_div(hull - union, hull)
    return np.where(_valid(boxes1) & _valid(boxes2), giou, 0.0)


def _box_inter_union(boxes1: np.ndarray, boxes2: np.ndarray, variant: str) -> tuple[np.ndarray, np.ndarray]:
    """Intersection and union areas of broadcastable ``(..., 4)`` box arrays (``variant``
    as in :func:`box_iou`; the union always uses the plain areas)."""
    x1 = np.maximum(boxes1[..., 0], boxes2[..., 0])
    y1 = np.maximum(boxes1[..., 1], boxes2[..., 1])
    if variant == "standard":
        x2 = np.minimum(boxes1[..., 2], boxes2[..., 2])
        y2 = np.minimum(boxes1[..., 3], boxes2[..., 3])
        inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    else:
        x2 = np.minimum(boxes1[..., 2] - 1, boxes2[..., 2] - 1)
        y2 = np.minimum(boxes1[..., 3] - 1, boxes2[..., 3] - 1)
        inter = np.where((x1 < x2) & (y1 < y2), (x2 - x1 + 1) * (y2 - y1 + 1), 0.0)
    area1 = (boxes1[..., 2] - boxes1[..., 0]) * (boxes1[..., 3] - boxes1[..., 1])
    area2 = (boxes2[..., 2] - boxes2[..., 0]) * (boxes2[..., 3] - boxes2[..., 1])
    return inter, area1 + area2 - inter


def _valid(boxes: np.ndarray) -> np.ndarray:
    """``(...,)`` bool: finite coordinates and a positive width, height and area."""
    w = boxes[..., 2] - boxes[..., 0]
    h = boxes[..., 3] - boxes[..., 1]
    return np.isfinite(boxes).all(axis=-1) & (w > 0) & (h > 0) & (w * h > 0)


# --------------------------------------------------------------------------- box sets

#: IoU at or above which a predicted box counts as a match of a true box in the set metrics
#: (COCO's ``>=``; Acc@t keeps the published ``IoU > t``).
SET_IOU = 0.5


@dataclass(frozen=True)
class BoxSetScore:
    """How a set of ``n_pred`` predicted boxes answers ``n_true`` true boxes after one-to-one
    matching (:func:`match_boxes`): ``pairs`` ``(pred, true)`` with their ``ious``, ``tp`` the
    pairs with IoU >= ``threshold``.

    * ``precision = tp / n_pred`` and ``recall = tp / n_true`` (0 when the denominator is 0);
    * ``f1 = 2 tp / (n_pred + n_true)``: 1.0 when both sets are empty (a negative answered
      with no box);
    * ``matched_iou = sum(ious) / max(n_pred, n_true)``: the mean IoU over matched pairs with
      every unmatched box, on either side, counting 0 (1.0 when both sets are empty).
    """

    n_pred: int
    n_true: int
    pairs: tuple[tuple[int, int], ...]
    ious: tuple[float, ...]
    threshold: float = SET_IOU

    @property
    def tp(self) -> int:
        return sum(1 for v in self.ious if v >= self.threshold)

    @property
    def precision(self) -> float:
        return self.tp / self.n_pred if self.n_pred else 0.0

    @property
    def recall(self) -> float:
        return self.tp / self.n_true if self.n_true else 0.0

    @property
    def f1(self) -> float:
        total = self.n_pred + self.n_true
        return 2 * self.tp / total if total else 1.0

    @property
    def matched_iou(self) -> float:
        most = max(self.n_pred, self.n_true)
        return float(sum(self.ious)) / most if most else 1.0


def match_boxes(pred, true, threshold: float = SET_IOU, variant: str = "standard") -> BoxSetScore:
    """Match predicted to true ``xyxy`` boxes one to one: the Hungarian algorithm
    (``scipy.optimize.linear_sum_assignment``) on the ``(P, G)`` IoU matrix, maximising the
    summed IoU; ``min(P, G)`` pairs (a pair may have IoU 0).  Either set may be empty.

    Args:
        pred (Tensor[P, 4] | ndarray): predicted boxes.
        true (Tensor[G, 4] | ndarray): true boxes.
        threshold (float): IoU at or above which a pair is a true positive.
        variant (str): IoU formula, as in :func:`box_iou`.

    Returns:
        BoxSetScore: the pairs and their IoU, with precision, recall, F1 and matched IoU.

    >>> s = match_boxes([[0, 0, 10, 10], [20, 0, 30, 10], [50, 50, 60, 60]], [[20, 0, 30, 10], [0, 0, 10, 20]])
    >>> s.pairs, s.ious, s.tp, round(s.f1, 3), round(s.matched_iou, 3)
    (((0, 1), (1, 0)), (0.5, 1.0), 2, 0.8, 0.5)
    >>> match_boxes([], []).f1, match_boxes([[0, 0, 1, 1]], []).f1
    (1.0, 0.0)
    """
    p, g = as_boxes(pred), as_boxes(true)
    if not len(p) or not len(g):
        return BoxSetScore(len(p), len(g), (), (), float(threshold))
    from scipy.optimize import linear_sum_assignment

    iou = box_iou_matrix(p, g, variant=variant)
    rows, cols = linear_sum_assignment(iou, maximize=True)
    order = np.argsort(rows, kind="stable")
    pairs = tuple((int(rows[k]), int(cols[k])) for k in order)
    return BoxSetScore(len(p), len(g), pairs, tuple(float(iou[i, j]) for i, j in pairs), float(threshold))


def centers_inside(pred, true) -> np.ndarray:
    """``(P, G)`` bool: the centre of predicted box ``i`` lies inside true box ``j`` (borders
    included) — lmms-eval's Center-Acc test.

    >>> centers_inside([[0, 0, 10, 10], [8, 8, 30, 30]], [[4, 4, 20, 20]]).tolist()
    [[True], [True]]
    """
    p, g = as_boxes(pred), as_boxes(true)
    cx = (p[:, 0] + p[:, 2])[:, None] / 2
    cy = (p[:, 1] + p[:, 3])[:, None] / 2
    return (cx >= g[None, :, 0]) & (cx <= g[None, :, 2]) & (cy >= g[None, :, 1]) & (cy <= g[None, :, 3])


# --------------------------------------------------------------------------- laterality

SIDE_WORD_RE = re.compile(r"\b(left|right)\b", re.IGNORECASE)
BOTH_SIDES_RE = re.compile(r"\b(bilateral(ly)?|both)\b", re.IGNORECASE)


def query_side(text: str | None) -> str | None:
    """The patient side a phrase names (``"left"`` / ``"right"``), or None when it names
    neither, both (``"left and right"``) or says ``bilateral`` / ``both``.

    >>> query_side("small Left apical pneumothorax"), query_side("bilateral effusions"), query_side("the heart")
    ('left', None, None)
    """
    if not text or BOTH_SIDES_RE.search(text):
        return None
    sides = {m.group(1).lower() for m in SIDE_WORD_RE.finditer(text)}
    return sides.pop() if len(sides) == 1 else None


def wrong_side(boxes, side: str, width: float) -> bool:
    """Whether any box's centre lies on the wrong half of an image ``width`` pixels wide for
    the patient ``side``, radiological convention (the patient's left is on the image's
    right): ``left`` is wrong left of the midline, ``right`` is wrong right of it (a centre on
    the midline is on neither side).

    >>> wrong_side([[10, 0, 30, 10]], "left", 100), wrong_side([[60, 0, 90, 10]], "left", 100)
    (True, False)
    """
    b = as_boxes(boxes)
    if not len(b) or side not in ("left", "right"):
        return False
    cx = (b[:, 0] + b[:, 2]) / 2
    mid = float(width) / 2
    return bool((cx < mid).any() if side == "left" else (cx > mid).any())


# --------------------------------------------------------------------------- discs


@_quiet
def circle_intersection(c1, r1, c2, r2) -> np.ndarray:
    """Area of intersection of paired discs.

    Args:
        c1 (ndarray[N, 2]): centres of the first discs; ``r1 (ndarray[N])`` their radii.
        c2 (ndarray[N, 2]): centres of the second discs; ``r2 (ndarray[N])`` their radii.

    Returns:
        ndarray[N]: the exact (analytic) area of each pair's intersection.
    """
    c1, c2 = as_points(c1).reshape(-1, 2), as_points(c2).reshape(-1, 2)
    r1 = np.asarray(r1, dtype=np.float64).reshape(-1)
    r2 = np.asarray(r2, dtype=np.float64).reshape(-1)
    d = np.hypot(*(c1 - c2).T)
    out = np.zeros_like(d)
    contained = d <= np.abs(r1 - r2)
    out[contained] = np.pi * np.minimum(r1, r2)[contained] ** 2
    part = ~contained & (d < r1 + r2) & (d > 0)
    if part.any():
        dd, a, b = d[part], r1[part], r2[part]
        cos1 = np.clip((dd**2 + a**2 - b**2) / (2 * dd * a), -1, 1)
        cos2 = np.clip((dd**2 + b**2 - a**2) / (2 * dd * b), -1, 1)
        k = (-dd + a + b) * (dd + a - b) * (dd - a + b) * (dd + a + b)
        out[part] = a**2 * np.arccos(cos1) + b**2 * np.arccos(cos2) - 0.5 * np.sqrt(np.clip(k, 0, None))
    return np.nan_to_num(out, nan=0.0)


@_quiet
def disc_dice(pred_points, gt_points) -> np.ndarray:
    """MedReasoner's pDice: Dice of the two discs whose diameters are the point pairs.

    The disc of a pair is centred at its midpoint with radius half the distance between
    the points; the overlap is exact (:func:`circle_intersection`).

    Args:
        pred_points (ndarray[N, 2, 2]): N pairs of ``(x, y)`` points (one pair of shape
            (2, 2) is accepted and paired with every row of ``gt_points``).
        gt_points (ndarray[N, 2, 2]): the true pairs.

    Returns:
        ndarray[N]: Dice in [0, 1]; zero-length pairs or NaN give 0.
    """
    p, g = _paired(np.asarray(pred_points, dtype=np.float64).reshape(-1, 2, 2),
                   np.asarray(gt_points, dtype=np.float64).reshape(-1, 2, 2), "point pairs")
    ok = _finite_rows(p, g)
    p, g = np.nan_to_num(p), np.nan_to_num(g)
    cp, cg = p.mean(axis=1), g.mean(axis=1)
    rp = np.hypot(*(p[:, 0] - p[:, 1]).T) / 2
    rg = np.hypot(*(g[:, 0] - g[:, 1]).T) / 2
    inter = circle_intersection(cp, rp, cg, rg)
    dice = _safe_div(2 * inter, np.pi * (rp**2 + rg**2))
    return np.where(ok & (rp > 0) & (rg > 0), np.clip(dice, 0, 1), 0.0)


# --------------------------------------------------------------------------- masks


def mask_dice(pred, gt) -> np.ndarray:
    """Dice of paired boolean masks.

    Args:
        pred (ndarray[N, H, W] | ndarray[H, W]): predicted masks.
        gt (ndarray[N, H, W] | ndarray[H, W]): true masks.

    Returns:
        ndarray[N]: ``2|P∩G| / (|P| + |G|)``; both empty gives 0, and masks of
        different shapes give 0 (the caller reports the mismatch).
    """
    inter, total = _mask_sums(pred, gt)
    return _safe_div(2 * inter, total)


def mask_iou(pred, gt) -> np.ndarray:
    """IoU of paired boolean masks, ``|P∩G| / |P∪G|``; shapes and conventions as :func:`mask_dice`."""
    inter, total = _mask_sums(pred, gt)
    return _safe_div(inter, total - inter)


def _mask_sums(pred, gt) -> tuple[np.ndarray, np.ndarray]:
    """Per pair ``|P∩G|`` and ``|P| + |G|`` (float64; exact integer counts); zeros when
    the mask shapes differ."""
    p, g = _masks(pred), _masks(gt)
    if p.shape[1:] != g.shape[1:]:
        zero = np.zeros(max(len(p), len(g)))
        return zero, zero
    both = p & g
    inter = both.reshape(len(both), -1).sum(axis=1).astype(np.float64)
    total = p.reshape(len(p), -1).sum(axis=1) + g.reshape(len(g), -1).sum(axis=1)
    return inter, total.astype(np.float64)


def _masks(m) -> np.ndarray:
    arr = np.asarray(m)
    if arr.ndim == 2:
        arr = arr[None]
    return arr.astype(bool)


# --------------------------------------------------------------------------- helpers


def _paired(a: np.ndarray, b: np.ndarray, what: str) -> tuple[np.ndarray, np.ndarray]:
    """``a`` and ``b`` with the same number of rows: a single row is repeated to match."""
    if len(a) != len(b):
        if len(a) == 1:
            a = np.repeat(a, len(b), axis=0)
        elif len(b) == 1:
            b = np.repeat(b, len(a), axis=0)
        else:
            raise ValueError(f"cannot pair {len(a)} {what} with {len(b)} {what}")
    return a, b


def _safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)
    return np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0)


def _finite_rows(*arrays: np.ndarray) -> np.ndarray:
    ok = np.ones(len(arrays[0]), dtype=bool)
    for arr in arrays:
        ok &= np.isfinite(arr.reshape(len(arr), -1)).all(axis=1)
    return ok
