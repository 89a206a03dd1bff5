"""What every image reader shares: the decoded :class:`ImageData`, the
:class:`ImageReader` record the format table holds, and the last step from a
``[0, 1]`` array to a display-ready 8-bit ``PIL.Image``.

A reader answers "is this file mine?" (by suffix, then by magic bytes), decodes a
file into an :class:`ImageData` and reads its ``(W, H)`` from the header:

>>> tiny = ImageReader(
...     "tiny", (".tiny",), read=lambda path: ImageData(to_pil(np.zeros((2, 3), np.uint8), False), 3, 2),
...     size=lambda path: (3, 2), sniff=lambda path, head: head.startswith(b"TINY"))
>>> tiny.has_extension("scan.TINY"), tiny.has_magic("scan", b"TINY...")
(True, True)
>>> tiny.read("scan.tiny").size
(3, 2)
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ...errors import MedgroundError
from ...registry import Option

#: How many leading bytes the magic-byte checks see (a NIfTI-1 header is 348 bytes).
HEAD_BYTES = 352

# The options a reader may take (documented once; each reader lists the ones it uses).
WINDOW = Option("(center, width), a preset name (WINDOW_PRESETS), 'minmax' or 'file' (DICOM); None: the format's "
                "default window", default=None)
FRAME = Option("frame of a multi-frame file / time point of a 4-D volume / page of a TIFF", default=None)
AS_RGB = Option("return gray images as RGB (False: mode 'L'); colour images stay RGB", default=True)
AXIS = Option("slicing axis of a volume in RAS+: 0 sagittal, 1 coronal, 2 axial", default=2)
SLICE_INDEX = Option("slice along `axis` (default: the middle slice)", default=None)


@dataclass
class ImageData:
    """A decoded 2-D image: display-ready ``image``, original ``width``/``height``
    (pixels of the 2-D image shown) and ``meta`` about how it was made."""

    image: Image.Image
    width: int
    height: int
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def size(self) -> tuple[int, int]:
        return self.width, self.height


@dataclass(frozen=True)
class ImageReader:
    """One image format in the reader table (:data:`medground.data.io.READERS`).

    ``extensions``  lower-case suffixes that claim a file by name (``".nii.gz"`` works);
    ``read``        ``read(path, **options) -> ImageData`` (only the ``options`` it lists);
    ``size``        ``size(path, **options) -> (W, H)`` of the image ``read`` returns, cheaply;
    ``sniff``       ``sniff(path, head) -> bool`` on the first :data:`HEAD_BYTES` bytes, for
                    files whose name says nothing (None: by suffix only);
    ``options``     the options ``read`` / ``size`` take, with their help;
    ``priority``    sniffing order (lower first): a costly or permissive check goes last.
    """

    name: str
    extensions: tuple[str, ...]
    read: Callable[..., ImageData] = field(repr=False)
    size: Callable[..., tuple[int, int]] = field(repr=False)
    sniff: Callable[[Path, bytes], bool] | None = field(default=None, repr=False)
    options: Mapping[str, Option] = field(default_factory=dict, repr=False)
    description: str = ""
    priority: int = 0

    def has_extension(self, path: str | os.PathLike) -> bool:
        return str(path).lower().endswith(self.extensions)

    def has_magic(self, path: str | os.PathLike, head: bytes) -> bool:
        return self.sniff is not None and bool(self.sniff(Path(path), head))

    def can_read(self, path: str | os.PathLike) -> bool:
        """True when the name has one of :attr:`extensions` or the content passes :attr:`sniff`."""
        return self.has_extension(path) or (self.sniff is not None and self.has_magic(path, read_head(path)))

    def pick(self, options: Mapping[str, Any]) -> dict[str, Any]:
        """The subset of ``options`` this reader takes (the others do not apply to its format)."""
        return {k: v for k, v in options.items() if k in self.options}


def read_head(path: str | os.PathLike, n: int = HEAD_BYTES) -> bytes:
    """The first ``n`` bytes of ``path``; an unreadable file raises :class:`MedgroundError`."""
    try:
        with open(path, "rb") as fh:
            return fh.read(n)
    except OSError as exc:
        raise MedgroundError(f"{path}: cannot read image ({exc.strerror or exc})") from None


def check_exists(path: str | os.PathLike) -> Path:
    p = Path(path)
    if not p.is_file():
        raise MedgroundError(f"{path}: image file not found")
    return p


def to_uint8(unit: np.ndarray) -> np.ndarray:
    """``[0, 1]`` values -> ``uint8`` (rounded, clipped)."""
    return np.round(np.clip(unit, 0.0, 1.0) * 255.0).astype(np.uint8)


def to_pil(gray_or_rgb: np.ndarray, as_rgb: bool) -> Image.Image:
    """A ``uint8`` (H, W) or (H, W, 3) array as ``L`` (``RGB`` when ``as_rgb``) or ``RGB``."""
    if gray_or_rgb.ndim == 2:
        img = Image.fromarray(gray_or_rgb, mode="L")
        return img.convert("RGB") if as_rgb else img
    return Image.fromarray(gray_or_rgb, mode="RGB")


def image_data(pixels: np.ndarray, as_rgb: bool, meta: dict[str, Any], size: tuple[int, int] | None = None) -> ImageData:
    """:class:`ImageData` of a ``uint8`` array; ``size`` defaults to the array's ``(W, H)``."""
    width, height = size if size is not None else (pixels.shape[1], pixels.shape[0])
    return ImageData(to_pil(pixels, as_rgb), width, height, meta)
