"""Crop rectangles of predicted boxes, with margins: what the semantic reward and the
semantic encoder's training both cut out of an image.

>>> crop_rects((100, 50), [[10, 10, 30, 20], [200, 0, 300, 10]], margin=0.5)
[(0, 5, 40, 25), None]
"""

from __future__ import annotations

import math

import numpy as np

from .geometry import as_boxes, clip_boxes


def crop_rects(size, boxes, margin: float = 0.0) -> list[tuple[int, int, int, int] | None]:
    """Whole-pixel crop rectangles ``(x1, y1, x2, y2)`` of ``xyxy`` boxes in an image of
    ``size = (W, H)``: each side widened by ``margin`` × the box's width (x) or height
    (y), clipped to the image and snapped outwards; ``None`` when nothing is left."""
    W, H = size
    b = as_boxes(boxes).copy()
    w, h = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
    b += float(margin) * np.stack([-w, -h, w, h], axis=1)
    b = clip_boxes(b, W, H)
    out = []
    for x1, y1, x2, y2 in b:
        if not all(math.isfinite(v) for v in (x1, y1, x2, y2)):
            out.append(None)
            continue
        x1, y1, x2, y2 = math.floor(x1), math.floor(y1), math.ceil(x2), math.ceil(y2)
        out.append((x1, y1, x2, y2) if x2 > x1 and y2 > y1 else None)
    return out


def crop_regions(image, boxes, margin: float = 0.0) -> list:
    """PIL crops of ``xyxy`` pixel boxes (see :func:`crop_rects`); ``None`` for a box
    with no area inside the image.

    >>> from PIL import Image
    >>> [c.size for c in crop_regions(Image.new("RGB", (100, 50)), [[10, 10, 30, 20]], margin=0.5)]
    [(40, 20)]
    """
    return [None if r is None else image.crop(r) for r in crop_rects(image.size, boxes, margin)]
