"""Box formats and coordinate frames.

Canonical boxes in medground are ``xyxy`` floats in *original-image pixels*.  A
vision-language model answers in its own frame:

* ``pixels``      – original pixels (no conversion),
* ``qwen2.5-vl``  – absolute pixels of the image as resized by Qwen2.5-VL's
  ``smart_resize`` (factor 28, ``min_pixels`` / ``max_pixels``),
* ``norm1``       – 0–1 relative coordinates,
* ``norm1000``    – 0–1000 relative coordinates (Qwen2-VL, Qwen3-VL),
* ``fixed``       – pixels of an image pre-resized to a fixed ``width`` × ``height``
  (e.g. the 640-px MedRPG / MedGround-R1 release).

Two named modifiers, written after a ``+``, say what else a model family does with
its numbers (neither applies to ``pixels``, the canonical frame):

* ``+yx``     – y before x: boxes ``[y1, x1, y2, x2]``, points ``[y, x]`` (Gemini /
  Gemma 3 / MedGemma ``box_2d``);
* ``+square`` – relative to the image padded to a square of its longer side, centred
  (LLaVA's ``expand2square``, ``LlavaOnevisionImageProcessor.pad_to_square``).

Every conversion between frames goes through :func:`map_boxes` /
:func:`map_points`; nothing else in the package rescales coordinates.

>>> f = Frame.parse("norm1000")
>>> map_boxes([[0, 0, 500, 500]], (200, 100), src=f, dst=PIXELS).tolist()
[[0.0, 0.0, 100.0, 50.0]]
>>> map_boxes([[100, 0, 500, 1000]], (200, 100), src="norm1000+yx", dst=PIXELS).tolist()  # box_2d
[[0.0, 10.0, 200.0, 50.0]]
>>> map_boxes([[0, 0, 200, 100]], (200, 100), src=PIXELS, dst="norm1+square").tolist()
[[0.0, 0.25, 1.0, 0.75]]
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

BOX_FORMATS = ("xyxy", "xywh", "cxcywh")

#: Defaults of the released Qwen2.5-VL processors (preprocessor_config.json).
QWEN_FACTOR = 28
QWEN_MIN_PIXELS = 56 * 56
QWEN_MAX_PIXELS = 28 * 28 * 16384  # 12 845 056


def as_boxes(boxes) -> np.ndarray:
    """Any box-like input (one box or many) as a float64 array of shape (N, 4)."""
    arr = np.asarray(boxes, dtype=np.float64)
    if arr.size == 0:
        return arr.reshape(0, 4)
    return arr.reshape(-1, 4)


def as_points(points) -> np.ndarray:
    """Any point-like input as a float64 array of shape (..., 2)."""
    arr = np.asarray(points, dtype=np.float64)
    if arr.size == 0:
        return arr.reshape(0, 2)
    return arr.reshape(*arr.shape[:-1], 2) if arr.ndim > 1 else arr.reshape(-1, 2)


def convert_boxes(boxes, src: str = "xyxy", dst: str = "xyxy") -> np.ndarray:
    """Convert (N, 4) boxes between ``xyxy``, ``xywh`` and ``cxcywh``.

    >>> convert_boxes([[10, 20, 30, 40]], "xywh", "xyxy").tolist()
    [[10.0, 20.0, 40.0, 60.0]]
    """
    if src not in BOX_FORMATS or dst not in BOX_FORMATS:
        raise ValueError(f"box format must be one of {BOX_FORMATS}, got {src!r} -> {dst!r}")
    b = as_boxes(boxes).copy()
    if src == dst:
        return b
    if src == "xywh":
        b = np.stack([b[:, 0], b[:, 1], b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]], axis=1)
    elif src == "cxcywh":
        hw, hh = b[:, 2] / 2, b[:, 3] / 2
        b = np.stack([b[:, 0] - hw, b[:, 1] - hh, b[:, 0] + hw, b[:, 1] + hh], axis=1)
    if dst == "xywh":
        return np.stack([b[:, 0], b[:, 1], b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]], axis=1)
    if dst == "cxcywh":
        return np.stack(
            [(b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2, b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]],
            axis=1,
        )
    return b


def smart_resize(
    height: int,
    width: int,
    factor: int = QWEN_FACTOR,
    min_pixels: int = QWEN_MIN_PIXELS,
    max_pixels: int = QWEN_MAX_PIXELS,
) -> tuple[int, int]:
    """Qwen2-VL / Qwen2.5-VL image resizing rule; returns ``(height, width)``.

    Both sides become multiples of ``factor``, the aspect ratio is kept as well as
    possible and the pixel count lands in ``[min_pixels, max_pixels]``.  Same
    arithmetic as ``transformers``' ``Qwen2VLImageProcessor``.

    >>> smart_resize(1000, 700)
    (1008, 700)
    """
    if height <= 0 or width <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    if max(height, width) / min(height, width) > 200:
        raise ValueError(f"aspect ratio must be below 200, got {width}x{height}")
    h_bar = round(height / factor) * factor
    w_bar = round(width / factor) * factor
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


@dataclass(frozen=True)
class Frame:
    """A coordinate frame a model answers in (see the module docstring).

    ``order`` is ``"xy"`` or ``"yx"`` (y first); ``square`` makes the numbers refer to
    the image padded to a centred square of its longer side."""

    kind: str = "pixels"
    factor: int = QWEN_FACTOR
    min_pixels: int = QWEN_MIN_PIXELS
    max_pixels: int = QWEN_MAX_PIXELS
    width: int | None = None
    height: int | None = None
    order: str = "xy"
    square: bool = False

    KINDS = ("pixels", "qwen2.5-vl", "norm1", "norm1000", "fixed")
    ORDERS = ("xy", "yx")
    MODIFIERS = ("yx", "square")

    def __post_init__(self):
        if self.kind not in self.KINDS:
            raise ValueError(f"unknown coordinate frame {self.kind!r}; choose one of {self.KINDS}")
        if self.kind == "fixed" and not (self.width and self.height):
            raise ValueError("frame 'fixed' needs width and height")
        if self.order not in self.ORDERS:
            raise ValueError(f"coordinate order must be one of {self.ORDERS}, got {self.order!r}")
        if self.kind == "pixels" and (self.order != "xy" or self.square):
            raise ValueError("'pixels' is the canonical frame and takes no modifier; use e.g. 'fixed:WxH+yx'")

    @classmethod
    def parse(cls, spec: str | Frame | None, **options) -> Frame:
        """``"qwen2.5-vl"``, ``"norm1000"``, ``"norm1"``, ``"pixels"``, ``"fixed:640"``,
        ``"fixed:640x480"``, any of them with ``+yx`` / ``+square`` (``"norm1000+yx"``),
        or a :class:`Frame` (returned as is)."""
        if isinstance(spec, Frame):
            return spec
        base, *mods = (spec or "pixels").strip().lower().split("+")
        unknown = sorted(set(mods) - set(cls.MODIFIERS))
        if unknown:
            raise ValueError(f"unknown frame modifier(s) {', '.join(unknown)}; choose from {', '.join(cls.MODIFIERS)}")
        if mods:
            options = {**options, "order": "yx" if "yx" in mods else "xy", "square": "square" in mods}
        base = base.strip()
        aliases = {
            "qwen2_5_vl": "qwen2.5-vl",
            "qwen25vl": "qwen2.5-vl",
            "resized": "qwen2.5-vl",
            "original": "pixels",
            "abs": "pixels",
            "0-1": "norm1",
            "0-1000": "norm1000",
        }
        base = aliases.get(base, base)
        if base.startswith("fixed:"):
            dims = base.split(":", 1)[1].split("x")
            w = int(dims[0])
            h = int(dims[1]) if len(dims) > 1 else w
            mods_only = {k: v for k, v in options.items() if k in ("order", "square")}
            return cls("fixed", width=w, height=h, **mods_only)
        return cls(base, **options)

    @property
    def name(self) -> str:
        base = f"fixed:{self.width}x{self.height}" if self.kind == "fixed" else self.kind
        return base + ("+yx" if self.order == "yx" else "") + ("+square" if self.square else "")

    def reference(self, width: float, height: float) -> tuple[float, float, float, float]:
        """``(ref_w, ref_h, off_x, off_y)``: the image this frame's numbers refer to (the
        original, or its centred square with ``square``) and where the original's origin
        sits in it (LLaVA pastes at ``((side - w) // 2, (side - h) // 2)``)."""
        if not self.square:
            return float(width), float(height), 0.0, 0.0
        side = max(width, height)
        return float(side), float(side), float(math.floor((side - width) / 2)), float(math.floor((side - height) / 2))

    def size(self, width: float, height: float) -> tuple[float, float]:
        """The extent ``(w, h)`` of an image of original size ``width × height`` in this
        frame (with ``square``: of its padded square), in ``x, y`` order."""
        width, height, _, _ = self.reference(width, height)
        if self.kind == "pixels":
            return float(width), float(height)
        if self.kind == "qwen2.5-vl":
            h, w = smart_resize(int(height), int(width), self.factor, self.min_pixels, self.max_pixels)
            return float(w), float(h)
        if self.kind == "norm1":
            return 1.0, 1.0
        if self.kind == "norm1000":
            return 1000.0, 1000.0
        return float(self.width), float(self.height)

    def describe(self, width: float, height: float) -> str:
        """Human words for the frame, used in prompt templates."""
        if self.kind == "norm1":
            text = "relative coordinates between 0 and 1"
        elif self.kind == "norm1000":
            text = "relative coordinates between 0 and 1000"
        else:
            w, h = self.size(width, height)
            text = f"absolute pixel coordinates of the {int(w)}x{int(h)} image"
        if self.square:
            text += " of the image padded to a centred square"
        if self.order == "yx":
            text += ", y before x: boxes as [y1, x1, y2, x2], points as [y, x]"
        return text


PIXELS = Frame("pixels")


def _affine(size, src: Frame, dst: Frame) -> tuple[tuple[float, float], tuple[float, float]]:
    """``((sx, sy), (ox, oy))`` with ``dst = src * s + o`` per axis (both in ``x, y`` order)
    for an image of original ``size = (width, height)``."""
    width, height = size
    sw, sh = src.size(width, height)
    dw, dh = dst.size(width, height)
    if src.square == dst.square:
        sx, sy = dw / sw, dh / sh  # same reference image: the ratio of the extents
    else:
        rsw, rsh, _, _ = src.reference(width, height)
        rdw, rdh, _, _ = dst.reference(width, height)
        sx, sy = (dw / rdw) * (rsw / sw), (dh / rdh) * (rsh / sh)
    _, _, sox, soy = src.reference(width, height)
    rdw, rdh, dox, doy = dst.reference(width, height)  # dst = (p + o_dst) * dw / rdw
    ox = (dox - sox) * dw / rdw if (dox or sox) else 0.0
    oy = (doy - soy) * dh / rdh if (doy or soy) else 0.0
    return (sx, sy), (ox, oy)


def _in_xy(arr: np.ndarray, frame: Frame) -> np.ndarray:
    """Coordinates (last axis ``x, y`` pairs) written in ``frame``'s order, as ``x, y``."""
    if frame.order == "xy":
        return arr
    idx = [1, 0, 3, 2] if arr.shape[-1] == 4 else [1, 0]
    return arr[..., idx]


def map_boxes(boxes, size, src: Frame | str = PIXELS, dst: Frame | str = PIXELS) -> np.ndarray:
    """Map boxes from frame ``src`` to frame ``dst`` for an image of original
    ``size = (width, height)``.  Boxes are ``[x1, y1, x2, y2]`` (``[y1, x1, y2, x2]`` in a
    ``+yx`` frame).  Returns float64 (N, 4)."""
    src, dst = Frame.parse(src), Frame.parse(dst)
    (sx, sy), (ox, oy) = _affine(size, src, dst)
    out = _in_xy(as_boxes(boxes), src) * np.array([sx, sy, sx, sy])
    if ox or oy:
        out = out + np.array([ox, oy, ox, oy])
    return _in_xy(out, dst)


def map_points(points, size, src: Frame | str = PIXELS, dst: Frame | str = PIXELS) -> np.ndarray:
    """Map ``(x, y)`` points (``(y, x)`` in a ``+yx`` frame; any leading shape) from
    ``src`` to ``dst``; see :func:`map_boxes`."""
    src, dst = Frame.parse(src), Frame.parse(dst)
    (sx, sy), (ox, oy) = _affine(size, src, dst)
    out = _in_xy(as_points(points), src) * np.array([sx, sy])
    if ox or oy:
        out = out + np.array([ox, oy])
    return _in_xy(out, dst)


def clip_boxes(boxes, width: float, height: float) -> np.ndarray:
    """Clip ``xyxy`` boxes to the image ``[0, width] × [0, height]``."""
    b = as_boxes(boxes).copy()
    b[:, [0, 2]] = np.clip(b[:, [0, 2]], 0, width)
    b[:, [1, 3]] = np.clip(b[:, [1, 3]], 0, height)
    return b


def box_area(boxes) -> np.ndarray:
    """Area of ``xyxy`` boxes; negative extents and NaN give 0."""
    b = as_boxes(boxes)
    area = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    return np.nan_to_num(area, nan=0.0)


def valid_boxes(boxes, width: float | None = None, height: float | None = None) -> np.ndarray:
    """Boolean mask: finite, positive area and (when the size is given) inside the image."""
    b = as_boxes(boxes)
    ok = np.isfinite(b).all(axis=1) & (b[:, 2] > b[:, 0]) & (b[:, 3] > b[:, 1])
    if width is not None and height is not None:
        ok &= (b[:, 0] >= 0) & (b[:, 1] >= 0) & (b[:, 2] <= width) & (b[:, 3] <= height)
    return ok
