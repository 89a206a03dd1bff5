"""Binary masks: compact run-length encoding for prediction files, PNG files for datasets
(written atomically), and what a mask implies (its tight box, two key points inside it).

RLE follows COCO's uncompressed layout: ``{"size": [height, width], "counts": [...]}``
with alternating runs of 0 and 1 (starting with 0) over the mask in column-major
(Fortran) order, so files interoperate with ``pycocotools`` after ``frPyObjects``.

>>> import numpy as np
>>> m = np.zeros((3, 4), bool); m[1, 1:3] = True
>>> rle = encode_rle(m); rle
{'size': [3, 4], 'counts': [4, 1, 2, 1, 4]}
>>> bool((decode_rle(rle) == m).all())
True
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import MedgroundError
from ..fileio import atomic_path


def mask_box(mask) -> list[float] | None:
    """Tight ``xyxy`` box of a boolean (H, W) mask in pixel-edge coordinates
    (``x2 = last column + 1``); None for an empty mask.

    >>> m = np.zeros((5, 6), bool); m[1:3, 2:5] = True
    >>> mask_box(m)
    [2.0, 1.0, 5.0, 3.0]
    """
    m = np.asarray(mask, dtype=bool)
    if not m.any():
        return None
    rows = np.flatnonzero(m.any(axis=1))
    cols = np.flatnonzero(m.any(axis=0))
    return [float(cols[0]), float(rows[0]), float(cols[-1] + 1), float(rows[-1] + 1)]


def mask_key_points(mask) -> list[list[float]] | None:
    """Two distinct key points inside a mask (pixel centres, ``[[x, y], [x, y]]``).

    The first is the most interior pixel (maximum of the distance transform); the
    second the pixel, among those at least half as deep, farthest from the first —
    so the pair spans the region.  A one-pixel mask gives the same point twice.
    """
    from scipy import ndimage

    m = np.asarray(mask, dtype=bool)
    if not m.any():
        return None
    dist = ndimage.distance_transform_edt(np.pad(m, 1))[1:-1, 1:-1]
    r1, c1 = np.unravel_index(int(np.argmax(dist)), dist.shape)
    deep = dist >= max(dist.max() / 2.0, 1.0)
    rr, cc = np.nonzero(deep)
    d2 = (rr - r1) ** 2 + (cc - c1) ** 2
    k = int(np.argmax(d2))
    r2, c2 = rr[k], cc[k]
    return [[float(c1) + 0.5, float(r1) + 0.5], [float(c2) + 0.5, float(r2) + 0.5]]


def encode_rle(mask) -> dict:
    """Boolean (H, W) mask -> ``{"size": [H, W], "counts": [...]}``."""
    m = np.asarray(mask).astype(bool)
    if m.ndim != 2:
        raise ValueError(f"a mask must be 2-D, got shape {m.shape}")
    flat = m.ravel(order="F").astype(np.int8)
    change = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    counts = np.diff(bounds).tolist()
    if flat.size and flat[0] == 1:
        counts = [0] + counts
    return {"size": [int(m.shape[0]), int(m.shape[1])], "counts": [int(c) for c in counts]}


def decode_rle(rle: dict) -> np.ndarray:
    """Inverse of :func:`encode_rle`."""
    try:
        h, w = (int(v) for v in rle["size"])
        counts = np.asarray(rle["counts"], dtype=np.int64)
    except (KeyError, TypeError, ValueError) as exc:
        raise MedgroundError(f"malformed RLE mask ({exc})") from None
    if counts.sum() != h * w or (counts < 0).any():
        raise MedgroundError(f"malformed RLE mask: runs cover {counts.sum()} pixels, size is {h}x{w}")
    values = np.zeros(len(counts), dtype=bool)
    values[1::2] = True
    return np.repeat(values, counts).reshape((h, w), order="F")


def load_mask(mask, root: str | os.PathLike | None = None) -> np.ndarray:
    """A mask from an RLE dict, a boolean array, or an image path (relative to ``root``);
    any non-zero pixel is foreground."""
    if isinstance(mask, dict):
        return decode_rle(mask)
    if isinstance(mask, np.ndarray):
        return mask.astype(bool)
    path = Path(mask)
    if root is not None and not path.is_absolute():
        path = Path(root) / path
    if not path.exists():
        raise MedgroundError(f"{path}: mask file not found")
    try:
        from PIL import Image

        with Image.open(path) as im:
            arr = np.asarray(im)
    except Exception as exc:  # noqa: BLE001 - any decoder failure is a bad file
        raise MedgroundError(f"{path}: cannot decode mask ({exc})") from None
    if arr.ndim == 3:
        arr = arr[..., :3].max(axis=-1) if arr.shape[-1] >= 3 else arr[..., 0]
    return arr > 0


def save_png(array, path: str | os.PathLike) -> Path:
    """Write a ``uint8`` (H, W) or (H, W, 3) array as a PNG, atomically (through
    :func:`medground.fileio.atomic_path`), creating folders.  The bytes depend only on
    the array (no time stamp), so a rerun rewrites identical files."""
    from PIL import Image

    with atomic_path(path) as tmp:
        Image.fromarray(np.asarray(array)).save(tmp, format="PNG")
    return Path(path)


def save_mask_png(mask, path: str | os.PathLike) -> Path:
    """Write a boolean mask as an 8-bit PNG (0 / 255), atomically, creating folders."""
    return save_png(np.asarray(mask).astype(np.uint8) * 255, path)
