"""Per-sample scores: join prediction records to ground truth and score each sample.

Rules (documented in ``docs/evaluation.md``):

* **Box IoU** — the *first* predicted box (the model's primary answer) against the
  *best-matching* ground-truth box (max IoU over the sample's targets); a missing,
  failed or unparseable prediction scores 0.  Only for positive samples (at least one
  true box); a negative (``boxes: []``) has no IoU.
* **Sets of boxes** — every predicted box against every true box, matched one to one
  (:func:`medground.metrics.match_boxes`, Hungarian on IoU, a hit at IoU >= 0.5): the
  per-sample ``precision``, ``recall``, ``f1`` and ``matched_iou``; ``hit`` (some predicted
  box matches some true box, for sensitivity); ``sample_f1`` counts every sample (a negative
  answered with an explicit empty answer scores 1, anything else 0).
* **Center** — the first predicted box's centre lies inside a true box (Center-Acc).
* **Wrong side** — for a positive sample whose query names one side, whether a predicted
  box's centre lies on the wrong half of the image (radiological convention).
* **pDice** — only for samples whose ground truth has two key points; a prediction
  without points scores 0.  Reported only when some prediction carries points.
* **Mask Dice / IoU** — only for samples with a ground-truth mask; a prediction without
  a mask scores 0.  Reported only when some prediction carries a mask.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..data.masks import load_mask
from ..data.schema import Sample
from ..errors import MedgroundError, where
from ..geometry import PIXELS, Frame, map_boxes, map_points
from ..metrics import (
    SET_IOU,
    box_iou,
    box_iou_matrix,
    centers_inside,
    disc_dice,
    mask_dice,
    mask_iou,
    match_boxes,
    query_side,
    wrong_side,
)
from ..parsing import parse_completion
from ..progress import progress as progress_bar
from .readers import PredRecord


def score_against_dataset(
    records: list[PredRecord],
    samples: list[Sample],
    *,
    variant: str,
    pred_path,
    data_path,
    frame: str | None = None,
    convert_frame: bool = False,
    progress: bool = False,
) -> tuple[list[dict], list[str]]:
    """Join records to dataset samples by id; returns ``(rows, extra_ids)``.

    Every dataset sample yields one row (no prediction -> status ``missing``);
    predictions whose id is not in the dataset are returned as ``extra_ids``.
    ``convert_frame`` maps foreign boxes / points from ``frame`` to original pixels
    (medground records carry boxes in pixels already and parse completions with their
    own ``frame`` field, ``frame`` being the fallback).
    """
    by_id: dict[str, PredRecord] = {}
    for rec in records:
        if rec.id in by_id:
            first = by_id[rec.id].line
            raise MedgroundError(f"{where(pred_path, rec.line, rec.id)}: duplicate prediction (first at line {first})")
        by_id[rec.id] = rec
    known = {s.id for s in samples}
    extra = [r.id for r in records if r.id not in known]
    pairs = []
    for s in samples:
        if not s.annotated:
            raise MedgroundError(f"{where(data_path, None, s.id)}: sample has no 'boxes' field to score against "
                                 "(list its target boxes, or write \"boxes\": [] for a negative)")
        rec = by_id.get(s.id)
        if rec is not None:
            rec = _resolve_record(rec, s, pred_path=pred_path, frame=frame, convert_frame=convert_frame)
        pairs.append((rec, s))
    rows = score_pairs(pairs, variant=variant, pred_path=pred_path, data_path=data_path, progress=progress)
    _drop_unreported(rows, records)
    return rows, extra


def score_with_embedded_truth(
    records: list[PredRecord],
    *,
    variant: str,
    samples: list[Sample] | None = None,
    pred_path=None,
    data_path=None,
    frame: str | None = None,
    image_size: tuple[int, int] | None = None,
) -> list[dict]:
    """Rows for a log that carries its own ground truth (``vlm-r1``).  With ``samples``
    (same length, same order) the rows take id, category and super-category from them.
    With ``frame`` (e.g. ``qwen2.5-vl``) predicted boxes are mapped from that frame to the
    pixels of the ground truth, for images of ``image_size`` (or the samples' size)."""
    if samples is not None and len(samples) != len(records):
        raise MedgroundError(
            f"{pred_path}: {len(records)} results but {data_path} has {len(samples)} samples; "
            "a VLM-R1 log is joined to the dataset by position, so both must list the same samples"
        )
    src = _frame(frame, pred_path, None) if frame else None
    if src is not None and src.kind == "pixels":
        src = None
    rows = []
    for k, rec in enumerate(records):
        s = samples[k] if samples is not None else None
        box = rec.box
        if box is not None and src is not None:
            size = image_size or (_sample_size(s) if s is not None else None)
            if size is None:
                raise MedgroundError(f"{pred_path}: --frame {frame} needs the image size (--image-size WxH or --data)")
            box = map_boxes([box], size, src=src, dst=PIXELS)[0].tolist()
        iou = best_iou(box, rec.gt_boxes or [], variant) if box is not None else 0.0
        truth = Sample(id=str(rec.id), image="", query=rec.query or "", boxes=list(rec.gt_boxes or []))
        width = image_size[0] if image_size else (s.width if s is not None else None)
        rows.append(
            {
                "id": s.id if s else rec.id,
                "line": rec.line,
                "status": rec.status,
                "iou": iou,
                "category": s.category if s else rec.category,
                "supercategory": s.supercategory if s else rec.supercategory,
                "pred_box": box,
                **set_fields([box] if box is not None else [], False, truth, width),
            }
        )
    return rows


def rows_from_stored_scores(records: list[PredRecord]) -> list[dict]:
    """Rows for a MedReasoner output file scored with its stored ``iou`` / ``pdice`` /
    ``dice_joint``.  Its stored pDice is ``2·I/(A+B−I)`` (twice the disc IoU, 0–2); it is
    converted to the Dice of the discs, ``2p/(2+p)``, so it compares with ours."""
    rows = []
    has_points = any(r.stored.get("pdice") is not None for r in records)
    has_dice = any("dice_joint" in r.stored for r in records)
    for rec in records:
        p = rec.stored.get("pdice", 0.0) if has_points else None
        rows.append(
            {
                "id": rec.id,
                "line": rec.line,
                "status": rec.status,
                "iou": rec.stored.get("iou", 0.0),
                "pdice": medreasoner_pdice_to_dice(p) if p is not None else None,
                "pdice_medreasoner": p,
                "dice": rec.stored.get("dice_joint", 0.0) if has_dice else None,
                "category": rec.category,
                "supercategory": rec.supercategory,
            }
        )
    return rows


def score_pairs(pairs, *, variant: str, pred_path, data_path, progress: bool = False) -> list[dict]:
    """Rows for ``(resolved record | None, sample)`` pairs.  Box IoU and pDice are computed
    in one vectorised call each; masks are loaded and scored one sample at a time."""
    rows = []
    box_pairs: list[tuple[int, list[float], list[float]]] = []  # (row, predicted box, target box)
    point_pairs: list[tuple[int, list, list]] = []
    for k, (rec, s) in enumerate(pairs):
        ok = rec is not None and rec.status == "ok"
        rows.append(
            {
                "id": s.id,
                "line": rec.line if rec else None,
                "status": "missing" if rec is None else rec.status,
                "iou": 0.0,
                "pdice": None if s.points is None else 0.0,
                "dice": None if not s.mask else 0.0,
                "mask_iou": None if not s.mask else 0.0,
                "category": s.category,
                "supercategory": s.supercategory,
                "pred_box": rec.box if ok else None,
                "pred_points": rec.points if ok else None,
                **set_fields(rec.predicted_boxes() if ok else [], bool(ok and rec.empty), s, _width(s)),
            }
        )
        if ok and rec.box is not None:
            box_pairs.extend((k, rec.box, gt) for gt in s.boxes)
        if ok and s.points is not None and rec.points:
            point_pairs.append((k, rec.points, s.points))
    if box_pairs:
        ious = box_iou([b for _, b, _ in box_pairs], [g for _, _, g in box_pairs], variant=variant)
        for (k, _, _), v in zip(box_pairs, ious):
            rows[k]["iou"] = max(rows[k]["iou"], float(v))
    if point_pairs:
        dice = disc_dice([p for _, p, _ in point_pairs], [g for _, _, g in point_pairs])
        for (k, _, _), v in zip(point_pairs, dice):
            rows[k]["pdice"] = float(v)
    with_masks = [(k, rec, s) for k, (rec, s) in enumerate(pairs) if s.mask and rec is not None and rec.status == "ok"]
    with_masks = [(k, rec, s) for k, rec, s in with_masks if rec.mask is not None]
    for k, rec, s in progress_bar(with_masks, desc="masks", unit="sample", leave=False, enabled=progress):
        rows[k]["dice"], rows[k]["mask_iou"] = _mask_scores(rec, s, pred_path=pred_path, data_path=data_path)
    return rows


def _resolve_record(rec: PredRecord, s: Sample, *, pred_path, frame, convert_frame) -> PredRecord:
    """Parse a completion-only record and map foreign coordinates to original pixels."""
    if rec.needs_parse:
        fr = rec.frame or frame
        if not fr:
            raise MedgroundError(
                f"{where(pred_path, rec.line, rec.id)}: completion without boxes needs a 'frame' field "
                "(or pass --frame) to map its coordinates to original pixels"
            )
        parsed = parse_completion(rec.completion)
        rec.needs_parse = False
        if not parsed.boxes:
            if parsed.empty:  # "[]": the answer "not in this image"
                rec.boxes, rec.empty, rec.status = [], True, "ok"
            else:
                rec.status = "unparseable"
            return rec
        size = _sample_size(s)
        src = _frame(fr, pred_path, rec)
        rec.boxes = map_boxes(parsed.boxes, size, src=src, dst=PIXELS).tolist()
        rec.box = rec.boxes[0]
        if parsed.points and rec.points is None:
            rec.points = map_points(parsed.points[0], size, src=src, dst=PIXELS).tolist()
        rec.status = "ok"
    elif convert_frame and frame and Frame.parse(frame).kind != "pixels":
        size = _sample_size(s)
        src = _frame(frame, pred_path, rec)
        if rec.box is not None:
            rec.box = map_boxes([rec.box], size, src=src, dst=PIXELS)[0].tolist()
        if rec.boxes:
            rec.boxes = map_boxes(rec.boxes, size, src=src, dst=PIXELS).tolist()
        if rec.points is not None:
            rec.points = map_points(rec.points, size, src=src, dst=PIXELS).tolist()
    return rec


def _frame(spec: str, pred_path, rec: PredRecord | None) -> Frame:
    try:
        return Frame.parse(spec)
    except ValueError as exc:
        loc = where(pred_path, rec.line, rec.id) if rec is not None else str(pred_path)
        raise MedgroundError(f"{loc}: {exc}") from None


def _sample_size(s: Sample) -> tuple[int, int]:
    if s.width and s.height:
        return int(s.width), int(s.height)
    from ..data.io import image_size

    try:
        return tuple(image_size(s.image))  # type: ignore[return-value]
    except MedgroundError:
        raise
    except Exception as exc:  # noqa: BLE001 - any decoder failure names the sample
        raise MedgroundError(f"{where(s.image, None, s.id)}: cannot read the image size ({exc})") from None


def _mask_scores(rec: PredRecord, s: Sample, *, pred_path, data_path) -> tuple[float, float]:
    root = Path(pred_path).resolve().parent
    try:
        pm = load_mask(rec.mask, root=root)
    except MedgroundError as exc:
        raise MedgroundError(f"{where(pred_path, rec.line, rec.id)}: predicted mask: {exc}") from None
    try:
        gm = load_mask(s.mask)
    except MedgroundError as exc:
        raise MedgroundError(f"{where(data_path, None, s.id)}: ground-truth mask: {exc}") from None
    if pm.shape != gm.shape:
        raise MedgroundError(
            f"{where(pred_path, rec.line, rec.id)}: predicted mask is {pm.shape[1]}x{pm.shape[0]}, "
            f"the ground-truth mask is {gm.shape[1]}x{gm.shape[0]}"
        )
    return float(mask_dice(pm, gm)[0]), float(mask_iou(pm, gm)[0])


def _drop_unreported(rows: list[dict], records: list[PredRecord]) -> None:
    """pDice / mask metrics are reported only when some prediction carries points / a mask."""
    if not any(r.points is not None for r in records):
        for row in rows:
            row["pdice"] = None
    if not any(r.mask is not None for r in records):
        for row in rows:
            row["dice"] = row["mask_iou"] = None


# --------------------------------------------------------------------------- pure functions


def set_fields(pred: list, empty: bool, sample: Sample, width: float | None = None, threshold: float = SET_IOU) -> dict:
    """The zero/one/many-target fields of one row: ``kind`` (``negative`` | ``single`` |
    ``multi``), ``n_pred``, ``empty`` (an explicit empty answer), the one-to-one set scores
    ``precision`` / ``recall`` / ``f1`` / ``matched_iou`` (positives), ``hit`` and ``center``
    (positives), ``sample_f1`` (every sample) and ``side`` / ``wrong_side`` (positives whose
    query names one side; needs the image ``width``, default the sample's).  ``pred``: the
    predicted boxes of an ``ok`` prediction (original pixels), [] otherwise.

    >>> s = Sample(id="a", image="x.png", query="left effusion", boxes=[[60, 0, 90, 20]], width=100, height=100)
    >>> f = set_fields([[10, 0, 40, 20]], False, s)
    >>> f["kind"], f["sample_f1"], f["hit"], f["center"], f["wrong_side"]
    ('single', 0.0, False, False, True)
    >>> set_fields([], True, Sample(id="n", image="x.png", query="right effusion", boxes=[]))["sample_f1"]
    1.0
    """
    gt = sample.boxes
    out: dict = {"kind": sample.kind, "n_pred": len(pred), "empty": bool(empty and not pred)}
    if not gt:  # a negative: right only when answered "not in this image"
        out["sample_f1"] = 1.0 if out["empty"] else 0.0
        return out
    match = match_boxes(pred, gt, threshold)
    hit = bool(pred) and float(box_iou_matrix(pred, gt).max()) >= threshold  # any pair, matched or not
    out.update(precision=match.precision, recall=match.recall, f1=match.f1, matched_iou=match.matched_iou,
               sample_f1=match.f1, hit=hit, center=bool(pred and centers_inside(pred[:1], gt).any()))
    side = query_side(sample.query)
    width = width or sample.width
    if side is not None:
        out["side"] = side
        out["wrong_side"] = wrong_side(pred, side, width) if pred and width else None
    return out


def _width(s: Sample) -> int | None:
    """The image width for the laterality check: the sample's, else the image's when a query
    names a side (None when the image cannot be read: the check is then left out)."""
    if s.width or not s.boxes or query_side(s.query) is None:
        return s.width
    try:
        return _sample_size(s)[0]
    except MedgroundError:
        return None


def best_iou(box, gt_boxes, variant: str = "standard") -> float:
    """IoU of one predicted box with the best-matching of several ground-truth boxes.

    >>> best_iou([0, 0, 10, 10], [[50, 50, 60, 60], [0, 0, 10, 20]])
    0.5
    """
    if box is None or not len(gt_boxes):
        return 0.0
    return float(np.max(box_iou([box], gt_boxes, variant=variant)))


def medreasoner_pdice_to_dice(p: float) -> float:
    """MedReasoner's stored pDice ``2I/(A+B-I)`` converted to the disc Dice ``2I/(A+B)``.

    >>> medreasoner_pdice_to_dice(2.0), medreasoner_pdice_to_dice(0.0)
    (1.0, 0.0)
    """
    p = float(p)
    return 2 * p / (2 + p) if p > 0 else 0.0
