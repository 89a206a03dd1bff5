"""Overlay PNGs a person can read at a glance: image, boxes, key points and masks.

Prediction in orange, ground truth in sky blue (Okabe-Ito colours, distinguishable
with the common colour-vision deficiencies); masks are semi-transparent fills with a
solid outline, the ground-truth box is dashed, predicted points are filled discs and
true points rings, each numbered 1 / 2.  Small images are enlarged (nearest
neighbour) so the drawing stays legible; a legend strip below the image names every
element drawn and, when both masks are given, their Dice.  A prediction with nothing
to draw (``pred_box=[]``: the answer had no box) is named in the legend too, so an
overlay never looks as if the prediction had been forgotten.

>>> import numpy as np
>>> m = np.zeros((64, 64), bool); m[20:40, 20:40] = True
>>> im = draw_overlay(np.zeros((64, 64), np.uint8), pred_box=[18, 18, 42, 42], pred_mask=m, gt_mask=m)
>>> im.mode, im.width >= 512
('RGB', True)
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont

PRED = (230, 159, 0)  # orange
GT = (86, 180, 233)  # sky blue
MASK_ALPHA = 0.38
FAINT_ALPHA = 110  # opacity (of 255) of each sampled box
MIN_SIDE = 512
MAX_SIDE = 1024


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def _as_rgb(image) -> Image.Image:
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    from .models.segmenters.base import image_array

    return Image.fromarray(image_array(image))


def _valid_box(box) -> list[float] | None:
    if box is None:
        return None
    b = np.asarray(box, dtype=np.float64).reshape(-1)
    if b.size < 4:
        return None
    b = b[:4]
    if not np.isfinite(b).all() or b[2] <= b[0] or b[3] <= b[1]:
        return None
    return b.tolist()


def _valid_points(points) -> list[tuple[float, float]]:
    if points is None:
        return []
    try:
        p = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    except (TypeError, ValueError):
        return []
    return [tuple(q) for q in p if np.isfinite(q).all()]


def _mask_layer(mask, size_hw) -> np.ndarray | None:
    if mask is None:
        return None
    m = np.asarray(mask).astype(bool)
    if m.shape != tuple(size_hw):
        return None
    return m


def _blend(canvas: np.ndarray, mask: np.ndarray, color) -> None:
    c = np.asarray(color, dtype=np.float32)
    canvas[mask] = canvas[mask] * (1 - MASK_ALPHA) + c * MASK_ALPHA


def _outline(mask: np.ndarray) -> np.ndarray:
    from scipy import ndimage as ndi

    return mask & ~ndi.binary_erosion(mask, border_value=0)


def _dashed_rect(draw: ImageDraw.ImageDraw, box, color, width: int, dash: int) -> None:
    x1, y1, x2, y2 = box
    for (a, b) in (((x1, y1), (x2, y1)), ((x2, y1), (x2, y2)), ((x2, y2), (x1, y2)), ((x1, y2), (x1, y1))):
        length = float(np.hypot(b[0] - a[0], b[1] - a[1]))
        n = max(1, int(length // (2 * dash)))
        for i in range(n + 1):
            t0, t1 = (2 * i * dash) / max(length, 1e-9), min(1.0, (2 * i + 1) * dash / max(length, 1e-9))
            if t0 >= 1:
                break
            draw.line([(a[0] + (b[0] - a[0]) * t0, a[1] + (b[1] - a[1]) * t0),
                       (a[0] + (b[0] - a[0]) * t1, a[1] + (b[1] - a[1]) * t1)], fill=color, width=width)


def draw_overlay(image, pred_box=None, pred_points=None, pred_mask=None, gt_box=None, gt_points=None, gt_mask=None,
                 title: str | None = None, sample_boxes=None) -> Image.Image:
    """An RGB overlay of prediction and ground truth on ``image`` (PIL / array / path).

    Coordinates are original-image pixels; boxes are one ``xyxy`` box (or a list of
    them: every box is drawn; ``[]``: none was predicted); points are ``[[x, y], ...]``;
    masks boolean (H, W) of the image's size.  ``sample_boxes`` (a list of boxes, e.g. the
    answers of N sampled completions) are drawn thin and faint under the prediction.
    Anything missing, NaN or of the wrong size is left out and named in the legend instead
    of raising."""
    base = _as_rgb(image)
    W, H = base.size
    scale = max(1.0, MIN_SIDE / max(W, H))
    if max(W, H) > MAX_SIDE:
        scale = MAX_SIDE / max(W, H)
    notes: list[str] = []

    canvas = np.asarray(base, dtype=np.float32).copy()
    pm, gm = _mask_layer(pred_mask, (H, W)), _mask_layer(gt_mask, (H, W))
    if pred_mask is not None and pm is None:
        notes.append(f"pred mask {np.shape(pred_mask)} != image {H}x{W}, not drawn")
    if gt_mask is not None and gm is None:
        notes.append(f"true mask {np.shape(gt_mask)} != image {H}x{W}, not drawn")
    for m, color in ((gm, GT), (pm, PRED)):
        if m is not None:
            _blend(canvas, m, color)
    im = Image.fromarray(np.clip(canvas, 0, 255).astype(np.uint8))
    sw, sh = max(1, round(W * scale)), max(1, round(H * scale))
    im = im.resize((sw, sh), Image.Resampling.NEAREST if scale >= 1 else Image.Resampling.LANCZOS)
    # mask outlines at display resolution (crisp)
    arr = np.asarray(im).copy()
    for m, color in ((gm, GT), (pm, PRED)):
        if m is not None:
            big = np.asarray(Image.fromarray(m.astype(np.uint8) * 255).resize((sw, sh), Image.Resampling.NEAREST)) > 127
            arr[_outline(big)] = color
    im = Image.fromarray(arr)
    draw = ImageDraw.Draw(im)
    lw = max(2, round(min(sw, sh) / 200))
    font = _font(max(12, round(min(sw, sh) / 36)))

    def sbox(b):
        return [b[0] * scale, b[1] * scale, b[2] * scale, b[3] * scale]

    def boxes_of(value, label):
        if value is None or (isinstance(value, (list, tuple)) and not len(value)):
            return []
        try:
            rows = np.asarray(value, dtype=np.float64)
            rows = rows.reshape(1, -1) if rows.ndim == 1 else rows.reshape(len(rows), -1)
        except (TypeError, ValueError):
            notes.append(f"{label} box {value!r} malformed, not drawn")
            return []
        out = []
        for b in rows:
            vb = _valid_box(b)
            if vb is None:
                notes.append(f"{label} box {np.round(b, 1).tolist()} invalid, not drawn")
            else:
                out.append(vb)
        return out

    gt_boxes, pred_boxes = boxes_of(gt_box, "true"), boxes_of(pred_box, "pred")
    faint = boxes_of(sample_boxes, "sampled") if sample_boxes is not None and len(sample_boxes) else []
    if faint:  # on a transparent layer, so that overlapping samples add up where they agree
        layer = Image.new("RGBA", im.size, (0, 0, 0, 0))
        faint_draw = ImageDraw.Draw(layer)
        for b in faint:
            faint_draw.rectangle(sbox(b), outline=PRED + (FAINT_ALPHA,), width=max(1, lw // 2))
        im = Image.alpha_composite(im.convert("RGBA"), layer).convert("RGB")
        draw = ImageDraw.Draw(im)
    for b in gt_boxes:
        _dashed_rect(draw, sbox(b), GT, lw, dash=max(4, lw * 3))
    for b in pred_boxes:
        draw.rectangle(sbox(b), outline=PRED, width=lw)
    r = max(4, lw * 2.5)
    for pts, color, filled in ((_valid_points(gt_points), GT, False), (_valid_points(pred_points), PRED, True)):
        for k, (x, y) in enumerate(pts, 1):
            cx, cy = x * scale, y * scale
            if filled:
                draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=color, outline=(0, 0, 0), width=1)
            else:
                draw.ellipse([cx - r, cy - r, cx + r, cy + r], outline=color, width=lw)
            draw.text((cx + r + 1, cy - r - 1), str(k), fill=color, font=font, stroke_width=2, stroke_fill=(0, 0, 0))

    # legend strip (and title) around the picture
    entries = []
    if pred_boxes or _valid_points(pred_points) or pm is not None:
        parts = [n for n, ok in (("box", pred_boxes), ("points", _valid_points(pred_points)), ("mask", pm is not None)) if ok]
        entries.append((PRED, "prediction: " + ", ".join(parts)))
    elif pred_box is not None or pred_points is not None or pred_mask is not None:
        entries.append((PRED, "prediction: nothing to draw (no box in the answer)"))
    if faint:
        entries.append((tuple(int(c * 0.6 + 20 * 0.4) for c in PRED), f"{len(faint)} sampled boxes (faint)"))
    if gt_boxes or _valid_points(gt_points) or gm is not None:
        parts = [n for n, ok in (("box (dashed)", gt_boxes), ("points (rings)", _valid_points(gt_points)), ("mask", gm is not None)) if ok]
        entries.append((GT, "ground truth: " + ", ".join(parts)))
    if pm is not None and gm is not None:
        from .metrics import mask_dice, mask_iou

        entries.append(((255, 255, 255), f"mask Dice {float(mask_dice(pm, gm)[0]):.3f}   IoU {float(mask_iou(pm, gm)[0]):.3f}"))
    entries += [((200, 200, 200), n) for n in notes]
    line_h = round(font.size * 1.5) if hasattr(font, "size") else 18
    top = line_h + 6 if title else 0
    bottom = line_h * len(entries) + 8 if entries else 0
    out = Image.new("RGB", (sw, sh + top + bottom), (20, 20, 20))
    out.paste(im, (0, top))
    d = ImageDraw.Draw(out)
    if title:
        d.text((6, 3), str(title), fill=(255, 255, 255), font=font)
    y = top + sh + 4
    for color, text in entries:
        d.rectangle([6, y + 3, 6 + line_h - 6, y + line_h - 3], fill=color)
        d.text((6 + line_h, y), text, fill=(235, 235, 235), font=font)
        y += line_h
    return out
