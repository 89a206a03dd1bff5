"""Raster reader (PNG, JPEG, TIFF, BMP, GIF, WebP, PGM / PPM... through Pillow),
16-bit and float images included.

``window=None``: 8-bit images unchanged, 16-bit / 32-bit / float ones scaled by their
min–max (never truncated to the low byte).  A ``(center, width)`` window or
``"minmax"`` applies to any image.  ``frame`` picks a page of a multi-page TIFF.  EXIF
orientation of JPEGs is *not* applied: boxes in the public releases refer to the
stored pixel grid.

>>> import tempfile, os
>>> p = os.path.join(tempfile.mkdtemp(), "x16.png")
>>> Image.fromarray(np.array([[0, 1000, 4000]], dtype=np.uint16)).save(p)
>>> d = read_raster(p, as_rgb=False)
>>> np.asarray(d.image).tolist(), d.meta["bits"], raster_size(p)
([[0, 64, 255]], 16, (3, 1))
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ...errors import MedgroundError
from .base import AS_RGB, FRAME, WINDOW, ImageData, ImageReader, image_data, to_uint8
from .window import no_file_window, resolve_window, window_gray

RASTER_EXTS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif", ".webp", ".pgm", ".ppm")
EIGHT_BIT_MODES = ("RGB", "RGBA", "P", "PA", "CMYK", "YCbCr", "LAB", "HSV", "LA", "1", "L")
GRAY_MODES = ("L", "LA", "1")


def read_raster(path, window=None, frame: int | None = None, as_rgb: bool = True) -> ImageData:
    """Decode a Pillow-readable image (page ``frame`` of a multi-page file) to :class:`ImageData`."""
    try:
        img = Image.open(path)
        if frame:
            n = getattr(img, "n_frames", 1)
            if not 0 <= int(frame) < n:
                raise MedgroundError(f"{path}: frame {frame} out of range (the file has {n} page(s))")
            img.seek(int(frame))
        img.load()
    except MedgroundError:
        raise
    except Exception as exc:  # noqa: BLE001 - PIL raises many types
        raise MedgroundError(f"{path}: not a readable image ({exc})") from None
    mode = img.mode
    meta: dict[str, Any] = {"format": (img.format or "raster").lower(), "mode": mode, "frame": int(frame or 0)}
    w_arg = resolve_window(window)
    no_file_window(path, w_arg)
    scale = isinstance(w_arg, tuple) or w_arg == "minmax"
    if mode in EIGHT_BIT_MODES and not scale:
        out = np.asarray(img.convert("L" if mode in GRAY_MODES else "RGB"))
        meta["window"] = None
        return image_data(out, as_rgb, meta, (img.width, img.height))
    # 16-bit, 32-bit int and float images, or an explicit window: scale by range.
    if mode in GRAY_MODES:
        arr = np.asarray(img.convert("L")).astype(np.float64)
    elif mode in EIGHT_BIT_MODES:
        arr = np.asarray(img.convert("RGB")).astype(np.float64)
    else:  # I;16, I;16B, I;16L, I;16N, I, F
        arr = np.asarray(img).astype(np.float64)
        meta["bits"] = 16 if mode.startswith("I;16") else 32
    unit, meta["window"], meta["window_source"] = window_gray(arr, w_arg)
    return image_data(to_uint8(unit), as_rgb, meta, (img.width, img.height))


def raster_size(path) -> tuple[int, int]:
    """``(W, H)`` from Pillow's lazy open (pixels not decoded)."""
    try:
        with Image.open(path) as img:
            return int(img.width), int(img.height)
    except Exception as exc:  # noqa: BLE001
        raise MedgroundError(f"{path}: not a readable image ({exc})") from None


def pillow_can_open(path: Path, head: bytes) -> bool:
    """Pillow recognises the file (its lazy open reads the header only)."""
    try:
        with Image.open(path):
            return True
    except Exception:  # noqa: BLE001 - "not an image Pillow knows", whatever the type
        return False


RASTER = ImageReader(
    "raster", RASTER_EXTS, read=read_raster, size=raster_size, sniff=pillow_can_open,
    options={"window": WINDOW, "frame": FRAME, "as_rgb": AS_RGB},
    description="PNG / JPEG / TIFF / BMP / GIF / WebP / PGM through Pillow, incl. 16-bit and float",
    priority=1,  # Pillow's open is the costliest check: asked after the magic bytes of the others
)
