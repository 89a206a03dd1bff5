"""Overlap metrics, vectorised over N pairs (numpy).

All functions take *paired* inputs (row ``i`` of ``a`` against row ``i`` of ``b``) and
return float64 arrays of shape (N,).  Degenerate input (zero area, inverted box,
NaN, empty mask, zero-length point pair) scores 0 and never raises.

>>> box_iou([[0, 0, 10, 10]], [[5, 0, 15, 10]]).round(4).tolist()
[0.3333]
>>> box_iou([[0, 0, 10, 10]], [[5, 0, 15, 10]], variant="vlm-r1").round(4).tolist()
[0.3333]
>>> disc_dice([[[0, 0], [2, 0]]], [[[0, 0], [2, 0]]]).tolist()
[1.0]
"""

from __future__ import annotations

import functools

import numpy as np

from .geometry import as_boxes, as_points, box_area

IOU_VARIANTS = ("standard", "vlm-r1")


def _quiet(fn):
    """Run ``fn`` with numpy floating-point warnings silenced (degenerate input is expected)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with np.errstate(all="ignore"):
            return fn(*args, **kwargs)

    return wrapper


def _pair(a, b) -> tuple[np.ndarray, np.ndarray]:
    a, b = as_boxes(a), as_boxes(b)
    if len(a) != len(b):
        if len(a) == 1:
            a = np.repeat(a, len(b), axis=0)
        elif len(b) == 1:
            b = np.repeat(b, len(a), axis=0)
        else:
            raise ValueError(f"cannot pair {len(a)} boxes with {len(b)} boxes")
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


@_quiet
def box_iou(a, b, variant: str = "standard") -> np.ndarray:
    """IoU of paired ``xyxy`` boxes.

    ``variant="standard"``: continuous areas.
    ``variant="vlm-r1"``: the inclusive-pixel IoU of the VLM-R1 / MedGround-R1 code —
    the intersection is ``(min(x2)-1 - max(x1) + 1) * (min(y2)-1 - max(y1) + 1)`` only
    when ``max(x1) < min(x2)-1`` and ``max(y1) < min(y2)-1`` (strictly), the union uses
    the plain areas ``(x2-x1)*(y2-y1)``.  It can exceed 1 for tiny boxes, as there.
    """
    if variant not in IOU_VARIANTS:
        raise ValueError(f"IoU variant must be one of {IOU_VARIANTS}, got {variant!r}")
    a, b = _pair(a, b)
    ok = _finite_rows(a, b) & (a[:, 2] > a[:, 0]) & (a[:, 3] > a[:, 1]) & (b[:, 2] > b[:, 0]) & (b[:, 3] > b[:, 1])
    x1 = np.maximum(a[:, 0], b[:, 0])
    y1 = np.maximum(a[:, 1], b[:, 1])
    if variant == "standard":
        x2 = np.minimum(a[:, 2], b[:, 2])
        y2 = np.minimum(a[:, 3], b[:, 3])
        inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    else:
        x2 = np.minimum(a[:, 2] - 1, b[:, 2] - 1)
        y2 = np.minimum(a[:, 3] - 1, b[:, 3] - 1)
        inter = np.where((x1 < x2) & (y1 < y2), (x2 - x1 + 1) * (y2 - y1 + 1), 0.0)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    iou = _safe_div(inter, area_a + area_b - inter)
    return np.where(ok, iou, 0.0)


@_quiet
def box_giou(a, b) -> np.ndarray:
    """Generalised IoU of paired ``xyxy`` boxes, in [-1, 1]; degenerate pairs give 0."""
    a, b = _pair(a, b)
    ok = _finite_rows(a, b) & (box_area(a) > 0) & (box_area(b) > 0)
    iou = box_iou(a, b)
    area_a, area_b = box_area(a), box_area(b)
    inter = np.clip(np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0]), 0, None) * np.clip(
        np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1]), 0, None
    )
    union = area_a + area_b - inter
    hull = (np.maximum(a[:, 2], b[:, 2]) - np.minimum(a[:, 0], b[:, 0])) * (
        np.maximum(a[:, 3], b[:, 3]) - np.minimum(a[:, 1], b[:, 1])
    )
    giou = iou - _safe_div(hull - union, hull)
    return np.where(ok, giou, 0.0)


@_quiet
def circle_intersection(c1, r1, c2, r2) -> np.ndarray:
    """Area of intersection of paired discs (centres (N, 2), radii (N,))."""
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

    ``pred_points`` and ``gt_points`` have shape (N, 2, 2) — N pairs of ``(x, y)`` points
    (one pair of shape (2, 2) is accepted too).  The disc of a pair is centred at its
    midpoint with radius half the distance between the points; the overlap is exact
    (analytic circle intersection).  Zero-length pairs or NaN give 0.
    """
    p = np.asarray(pred_points, dtype=np.float64).reshape(-1, 2, 2)
    g = np.asarray(gt_points, dtype=np.float64).reshape(-1, 2, 2)
    if len(p) != len(g):
        if len(g) == 1:
            g = np.repeat(g, len(p), axis=0)
        elif len(p) == 1:
            p = np.repeat(p, len(g), axis=0)
        else:
            raise ValueError(f"cannot pair {len(p)} point pairs with {len(g)}")
    ok = _finite_rows(p, g)
    p, g = np.nan_to_num(p), np.nan_to_num(g)
    cp, cg = p.mean(axis=1), g.mean(axis=1)
    rp = np.hypot(*(p[:, 0] - p[:, 1]).T) / 2
    rg = np.hypot(*(g[:, 0] - g[:, 1]).T) / 2
    inter = circle_intersection(cp, rp, cg, rg)
    dice = _safe_div(2 * inter, np.pi * (rp**2 + rg**2))
    return np.where(ok & (rp > 0) & (rg > 0), np.clip(dice, 0, 1), 0.0)


def _masks(m) -> np.ndarray:
    arr = np.asarray(m)
    if arr.ndim == 2:
        arr = arr[None]
    return arr.astype(bool)


def mask_dice(pred, gt) -> np.ndarray:
    """Dice of paired boolean masks, shape (N, H, W) or (H, W).  Both empty gives 0;
    masks of different shapes give 0 (the caller reports the mismatch)."""
    p, g = _masks(pred), _masks(gt)
    if p.shape[1:] != g.shape[1:]:
        return np.zeros(max(len(p), len(g)))
    inter = (p & g).reshape(len(p), -1).sum(axis=1).astype(np.float64)
    total = p.reshape(len(p), -1).sum(axis=1) + g.reshape(len(g), -1).sum(axis=1)
    return _safe_div(2 * inter, total.astype(np.float64))


def mask_iou(pred, gt) -> np.ndarray:
    """IoU of paired boolean masks; conventions as :func:`mask_dice`."""
    p, g = _masks(pred), _masks(gt)
    if p.shape[1:] != g.shape[1:]:
        return np.zeros(max(len(p), len(g)))
    inter = (p & g).reshape(len(p), -1).sum(axis=1).astype(np.float64)
    union = (p | g).reshape(len(p), -1).sum(axis=1).astype(np.float64)
    return _safe_div(inter, union)
