"""The segmenter interface, prompt sanitising and the per-image state cache.

A segmenter turns prompts (a box, key points, or both) into boolean masks in
*original-image pixels*.  Work that depends only on the image (a ViT embedding, a
smoothed gradient) happens once in :meth:`Segmenter.embed`; every prompt on that
image reuses it through :meth:`Segmenter.segment`, which is batched over prompts.
In GRPO the G completions of one prompt share an image, so one embedding serves the
whole group.

>>> import numpy as np
>>> p = prepare_prompts([[-5, 2, 8, 9], [3, 3, 3, 9]], [[[4, 4], [50, 50]], None], (10, 10))
>>> p.boxes.tolist()[0], p.points[0].tolist(), p.usable.tolist()
([0.0, 2.0, 8.0, 9.0], [[4.0, 4.0]], [True, False])
"""

from __future__ import annotations

import functools
import hashlib
from abc import ABC, abstractmethod
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ...errors import MedgroundError
from ...geometry import as_boxes, clip_boxes
from ...registry import Option, Registry

#: name -> segmenter class; each module of this package registers its class here.
SEGMENTERS = Registry("segmenter")
#: options several segmenters share (declared once)
CACHE_OPTION = {"cache_size": Option("images whose state is kept (LRU by pixel hash)", changes_result=False)}
DEVICE_OPTION = {"device": Option("torch device: cpu, cuda, cuda:1...", changes_result=False)}
HF_CHECKPOINT_OPTION = {"checkpoint": Option("local transformers folder (config.json and weights); required")}

PROMPT_KINDS = ("box", "points", "box+points")


# --------------------------------------------------------------------------- images


def image_array(image) -> np.ndarray:
    """Any image (PIL, path, (H, W) / (H, W, C) array of any dtype) as ``uint8`` RGB (H, W, 3).

    Grey and 16-bit / float images are scaled to 0-255 by their min / max."""
    if isinstance(image, (str, bytes)) or hasattr(image, "__fspath__"):
        from ...data.io import load_image

        image = load_image(image)
    if hasattr(image, "convert") and hasattr(image, "size"):  # PIL
        image = np.asarray(image.convert("RGB"))
    arr = np.asarray(image)
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim == 3 and arr.shape[-1] == 4:
        arr = arr[..., :3]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[-1] != 3) or min(arr.shape[:2]) < 1:
        raise MedgroundError(f"expected an image of shape (H, W) or (H, W, 3), got {arr.shape}")
    if arr.dtype != np.uint8:
        a = np.nan_to_num(arr.astype(np.float64))
        lo, hi = float(a.min()), float(a.max())
        arr = ((a - lo) / (hi - lo) * 255).round().astype(np.uint8) if hi > lo else np.zeros(a.shape, np.uint8)
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=-1)
    return np.ascontiguousarray(arr)


def image_key(arr: np.ndarray) -> str:
    """Content hash of an image array (shape, dtype and bytes): equal pixels, equal key."""
    h = hashlib.blake2b(digest_size=16)
    h.update(repr((arr.shape, str(arr.dtype))).encode())
    h.update(np.ascontiguousarray(arr).data)
    return h.hexdigest()


def to_gray(rgb: np.ndarray) -> np.ndarray:
    """ITU-R 601 luminance of a uint8 RGB array as float32 in [0, 1]."""
    rgb = rgb.astype(np.float32)
    return (rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114) / 255.0


# --------------------------------------------------------------------------- prompts


@dataclass
class Prompts:
    """Sanitised prompts for one image: ``boxes`` (N, 4) clipped to the image, a row of
    NaN where the box is unusable; ``points[i]`` a (K, 2) array (K may be 0) of points
    that are finite, inside the image and inside the box; ``issues[i]`` says what was
    clipped or dropped (None when nothing)."""

    boxes: np.ndarray
    points: list[np.ndarray]
    issues: list[str | None]

    @property
    def has_box(self) -> np.ndarray:
        return np.isfinite(self.boxes).all(axis=1)

    @property
    def has_points(self) -> np.ndarray:
        return np.array([len(p) > 0 for p in self.points], dtype=bool)

    @property
    def usable(self) -> np.ndarray:
        return self.has_box | self.has_points

    def __len__(self) -> int:
        return len(self.boxes)


def _is_point_set(points) -> bool:
    """True for one prompt's points ``[[x, y], ...]`` (as opposed to a list of them)."""
    try:
        return np.asarray(points, dtype=np.float64).ndim == 2
    except (TypeError, ValueError):
        return False


def _as_point_list(points, n: int) -> list[np.ndarray | None]:
    """``points`` as n entries, each None or a float (K, 2) array."""
    if points is None:
        return [None] * n
    if isinstance(points, np.ndarray) and points.dtype != object:
        arr = points.astype(np.float64)
        if arr.ndim == 2 and n == 1:
            arr = arr[None]
        if arr.ndim != 3 or arr.shape[0] != n or arr.shape[-1] != 2:
            raise MedgroundError(f"points must have shape (N, K, 2) for N={n} prompts, got {arr.shape}")
        return list(arr)
    seq = [points] if n == 1 and _is_point_set(points) else list(points)
    if len(seq) != n:
        raise MedgroundError(f"got {len(seq)} point sets for {n} boxes")
    out = []
    for p in seq:
        if p is None:
            out.append(None)
            continue
        try:
            a = np.asarray(p, dtype=np.float64).reshape(-1, 2)
        except (TypeError, ValueError):
            a = np.full((1, 2), np.nan)  # malformed -> dropped below with an issue
        out.append(a)
    return out


def prepare_prompts(boxes, points, size: tuple[int, int]) -> Prompts:
    """Clip and check prompts for an image of ``size = (W, H)``; never raises on values.

    * boxes are clipped to the image; a box that is NaN / infinite, inverted or has
      less than one pixel of width or height after clipping becomes unusable (NaN row);
    * points that are NaN, outside the image or outside their (usable) box are dropped.

    ``boxes`` may be None (points-only prompts); then ``points`` fixes N."""
    W, H = size
    if boxes is None:
        if points is None:
            raise MedgroundError("a prompt needs a box, points or both")
        n = 1 if _is_point_set(points) else len(points)
        b = np.full((n, 4), np.nan)
    else:
        try:
            b = as_boxes(boxes).copy()
        except (TypeError, ValueError):
            raise MedgroundError(f"boxes must be numbers of shape (N, 4), got {boxes!r}") from None
    n = len(b)
    pts = _as_point_list(points, n)
    issues: list[str | None] = []
    finite = np.isfinite(b).all(axis=1)
    clipped = clip_boxes(np.nan_to_num(b), W, H)
    out_boxes = np.full_like(b, np.nan)
    out_points: list[np.ndarray] = []
    for i in range(n):
        notes = []
        if boxes is not None and not finite[i]:
            notes.append("box has NaN/infinite coordinates")
        elif boxes is not None:
            c = clipped[i]
            if (c[2] - c[0]) < 1 or (c[3] - c[1]) < 1:
                notes.append(f"box {np.round(b[i], 1).tolist()} has no area inside the {W}x{H} image")
            else:
                if not np.allclose(c, b[i]):
                    notes.append(f"box {np.round(b[i], 1).tolist()} clipped to the image")
                out_boxes[i] = c
        p = pts[i]
        keep = np.zeros((0, 2))
        if p is not None and len(p):
            ok = np.isfinite(p).all(axis=1)
            if not ok.all():
                notes.append("NaN point(s) dropped")
            inside = ok & (p[:, 0] >= 0) & (p[:, 0] <= W) & (p[:, 1] >= 0) & (p[:, 1] <= H)
            if (ok & ~inside).any():
                notes.append("point(s) outside the image dropped")
            if np.isfinite(out_boxes[i]).all():
                bx = out_boxes[i]
                in_box = inside & (p[:, 0] >= bx[0]) & (p[:, 0] <= bx[2]) & (p[:, 1] >= bx[1]) & (p[:, 1] <= bx[3])
                if (inside & ~in_box).any():
                    notes.append("point(s) outside the box dropped")
                inside = in_box
            keep = np.clip(p[inside], 0, [W - 1e-6, H - 1e-6])
        out_points.append(keep)
        if not np.isfinite(out_boxes[i]).all() and not len(keep):
            notes.append("no usable box or point")
        issues.append("; ".join(notes) or None)
    return Prompts(out_boxes, out_points, issues)


# --------------------------------------------------------------------------- state cache


@dataclass
class ImageState:
    """What :meth:`Segmenter.embed` computed for one image; ``data`` is segmenter-specific."""

    key: str
    width: int
    height: int
    data: Any = None
    meta: dict = field(default_factory=dict)

    @property
    def size(self) -> tuple[int, int]:
        return self.width, self.height


class StateCache:
    """Least-recently-used cache of :class:`ImageState` by image content hash."""

    def __init__(self, maxsize: int = 8):
        self.maxsize = max(0, int(maxsize))
        self._items: OrderedDict[str, ImageState] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, key: str) -> ImageState | None:
        state = self._items.get(key)
        if state is None:
            self.misses += 1
            return None
        self.hits += 1
        self._items.move_to_end(key)
        return state

    def put(self, state: ImageState) -> None:
        if self.maxsize == 0:
            return
        self._items[state.key] = state
        self._items.move_to_end(state.key)
        while len(self._items) > self.maxsize:
            self._items.popitem(last=False)

    def clear(self) -> None:
        self._items.clear()

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: str) -> bool:
        return key in self._items


# --------------------------------------------------------------------------- interface


class Segmenter(ABC):
    """Box / point prompts -> boolean masks in original pixels.

    Subclasses implement :meth:`_embed` (image -> state data) and :meth:`_segment`
    (state, sanitised prompts -> (N, H, W) bool).  ``prompts`` lists the prompt kinds
    the model was built for; others raise :class:`MedgroundError` up front.

    A segmenter pickles as its class and constructor arguments: unpickling builds it
    again (a neural one reloads its weights from its local checkpoint) with an empty
    image cache, so a reward holding one survives multiprocess data loading."""

    name: str = "segmenter"
    prompts: tuple[str, ...] = PROMPT_KINDS

    def __new__(cls, *args, **kwargs):
        self = super().__new__(cls)
        self._init_args = (args, kwargs)  # what __reduce__ builds it again from
        return self

    def __reduce__(self):
        args, kwargs = self._init_args
        return functools.partial(type(self), **kwargs), args

    def __init__(self, cache_size: int = 8):
        self.cache = StateCache(cache_size)

    # -- public API ------------------------------------------------------------------
    def embed(self, image) -> ImageState:
        """The image state, computed once per distinct image (content hash, LRU cache)."""
        if isinstance(image, ImageState):
            return image
        arr = image_array(image)
        key = image_key(arr)
        state = self.cache.get(key)
        if state is None:
            h, w = arr.shape[:2]
            state = ImageState(key=key, width=w, height=h, data=self._embed(arr))
            self.cache.put(state)
        return state

    def segment(self, state, boxes=None, points=None) -> np.ndarray:
        """Masks for N prompts on one image: ``boxes`` (N, 4) ``xyxy`` original pixels
        (or one box), ``points`` N entries of (K, 2) points or None.  Returns bool
        (N, H, W), or (H, W) when a single box ``[x1, y1, x2, y2]`` was given.

        Unusable prompts (see :func:`prepare_prompts`; for a box-only segmenter, a
        prompt without a usable box) give empty masks; call :func:`prepare_prompts`
        yourself to learn why."""
        state = self.embed(state)
        single = boxes is not None and np.ndim(boxes) == 1
        if boxes is None and points is None:
            raise MedgroundError("segment() needs boxes, points or both")
        if boxes is None and "points" not in self.prompts:
            raise MedgroundError(f"segmenter {self.name!r} needs a box prompt (it takes: {', '.join(self.prompts)})")
        p = prepare_prompts(boxes, points, state.size)
        masks = np.zeros((len(p), state.height, state.width), dtype=bool)
        use = p.usable if "points" in self.prompts else p.has_box
        if use.any():
            idx = np.flatnonzero(use)
            sub = Prompts(p.boxes[idx], [p.points[i] for i in idx], [p.issues[i] for i in idx])
            masks[idx] = self._segment(state, sub)
        return masks[0] if single else masks

    def segment_image(self, image, boxes=None, points=None) -> np.ndarray:
        """:meth:`embed` then :meth:`segment`."""
        return self.segment(self.embed(image), boxes, points)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, cached_images={len(self.cache)})"

    # -- to implement ----------------------------------------------------------------
    @abstractmethod
    def _embed(self, rgb: np.ndarray) -> Any:
        """uint8 (H, W, 3) -> state data."""

    @abstractmethod
    def _segment(self, state: ImageState, prompts: Prompts) -> np.ndarray:
        """Usable prompts only (each has a box, points or both) -> bool (N, H, W)."""


def prompt_groups(prompts: Prompts) -> dict[tuple[bool, int], np.ndarray]:
    """Indices of prompts grouped by ``(has_box, number_of_points)``, so that each group
    runs as one batch without padding tokens (which would change SAM's output)."""
    keys = [(bool(b), len(p)) for b, p in zip(prompts.has_box, prompts.points)]
    groups: dict[tuple[bool, int], list[int]] = {}
    for i, k in enumerate(keys):
        groups.setdefault(k, []).append(i)
    return {k: np.asarray(v) for k, v in groups.items()}


def resize_longest(size: tuple[int, int], longest: int) -> tuple[int, int]:
    """``(W, H)`` scaled so that the longest side is ``longest`` (SAM's rule, rounded)."""
    w, h = size
    scale = longest / max(w, h)
    return int(w * scale + 0.5), int(h * scale + 0.5)
