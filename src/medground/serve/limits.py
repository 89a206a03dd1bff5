"""What the web app refuses before it decodes anything: oversized uploads, images
with more pixels than a documented limit (decompression bombs), empty or overlong
queries.

Every refusal is a :class:`~medground.errors.MedgroundError` whose message the page
shows; the app keeps running.  The defaults (:class:`Limits`) are documented in
``docs/serve.md`` and set from the command line (``--max-upload-mb``,
``--max-image-pixels``, ``--max-query-chars``).

>>> limits = Limits(max_query_chars=30)
>>> check_query("  left pleural effusion  ", limits)
'left pleural effusion'
>>> check_query("x" * 31, limits)
Traceback (most recent call last):
...
medground.errors.MedgroundError: the query has 31 characters; the limit is 30
>>> parse_size("50MB"), parse_size("512kb"), parse_size("1000")
(52428800, 524288, 1000)
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import MedgroundError

MB = 1024 * 1024
#: Default upload limit: a large CT slice or a chest radiograph in DICOM fits; a volume of 100 MB does too.
MAX_UPLOAD_BYTES = 100 * MB
#: Default limit on the pixels of the 2-D image shown (width x height): 64 MP, above any radiograph
#: or mammogram (~ 4 000 x 5 000) and far below a decompression bomb (30 000 x 30 000 = 900 MP).
MAX_IMAGE_PIXELS = 64_000_000
#: Default limit on the voxels of a NIfTI volume (every slice is decoded to pick one).
MAX_VOLUME_VOXELS = 256_000_000
#: Default limit on the length of a query (phrases and clinical questions are far shorter).
MAX_QUERY_CHARS = 1000


@dataclass(frozen=True)
class Limits:
    """Refusal thresholds of the web app (see the module docstring)."""

    max_upload_bytes: int = MAX_UPLOAD_BYTES
    max_image_pixels: int = MAX_IMAGE_PIXELS
    max_volume_voxels: int = MAX_VOLUME_VOXELS
    max_query_chars: int = MAX_QUERY_CHARS

    def __post_init__(self):
        for name in ("max_upload_bytes", "max_image_pixels", "max_volume_voxels", "max_query_chars"):
            if int(getattr(self, name)) < 1:
                raise MedgroundError(f"{name} must be at least 1, got {getattr(self, name)}")

    def describe(self) -> str:
        """One line for the page: what is accepted."""
        return (f"uploads up to {self.max_upload_bytes / MB:g} MB, images up to {self.max_image_pixels / 1e6:g} "
                f"megapixels, queries up to {self.max_query_chars} characters")


def check_query(query: str | None, limits: Limits = Limits()) -> str:
    """The query stripped of surrounding blanks; empty or too long raises."""
    text = (query or "").strip()
    if not text:
        raise MedgroundError("type a phrase or a clinical question first")
    if len(text) > limits.max_query_chars:
        raise MedgroundError(f"the query has {len(text)} characters; the limit is {limits.max_query_chars}")
    return text


def check_upload(path: str | os.PathLike | None, limits: Limits = Limits()) -> Path:
    """An uploaded file that exists and is not larger than the upload limit, checked
    *before* it is decoded; then :func:`check_pixels` on its header."""
    if path is None or str(path) == "":
        raise MedgroundError("upload an image first (PNG, JPEG, TIFF, DICOM or NIfTI)")
    p = Path(path)
    if not p.is_file():
        raise MedgroundError(f"{p.name}: the upload is missing on the server; upload it again")
    size = p.stat().st_size
    if size > limits.max_upload_bytes:
        raise MedgroundError(f"{p.name}: the file is {size / MB:.1f} MB; uploads are limited to "
                             f"{limits.max_upload_bytes / MB:g} MB")
    if size == 0:
        raise MedgroundError(f"{p.name}: the file is empty")
    check_pixels(p, limits)
    return p


def check_pixels(path: str | os.PathLike, limits: Limits = Limits()) -> tuple[int, int]:
    """``(W, H)`` from the header (nothing decoded); refuses an image above
    ``max_image_pixels`` and a NIfTI volume above ``max_volume_voxels``."""
    from ..data.io import detect_format, image_size

    name = Path(path).name
    fmt = detect_format(path)  # unknown formats raise here, naming the file
    try:
        w, h = image_size(path)
    except MedgroundError as exc:
        bomb = re.search(r"Image size \((\d+) pixels\) exceeds limit", str(exc))  # Pillow refuses to open it
        if bomb:
            raise MedgroundError(_too_many(name, int(bomb.group(1)), limits)) from None
        raise
    except Exception as exc:  # noqa: BLE001 - any header failure is a bad file
        raise MedgroundError(f"{name}: not a readable image ({type(exc).__name__}: {exc})") from None
    if int(w) * int(h) > limits.max_image_pixels:
        raise MedgroundError(_too_many(name, int(w) * int(h), limits, f"{w} x {h} = "))
    if fmt == "nifti":
        voxels = volume_voxels(path)
        if voxels > limits.max_volume_voxels:
            raise MedgroundError(f"{name}: the volume has {voxels / 1e6:.0f} million voxels; the limit is "
                                 f"{limits.max_volume_voxels / 1e6:g} million")
    return int(w), int(h)


def _too_many(name: str, pixels: int, limits: Limits, dims: str = "") -> str:
    return (f"{name}: the image is {dims}{pixels / 1e6:.0f} megapixels; the limit is {limits.max_image_pixels / 1e6:g} "
            "megapixels (a decompression bomb, or too large to show)")


def volume_voxels(path: str | os.PathLike) -> int:
    """Voxels of a NIfTI volume from its header (all dimensions multiplied)."""
    import nibabel as nib

    try:
        shape = nib.load(str(path)).shape
    except Exception as exc:  # noqa: BLE001
        raise MedgroundError(f"{Path(path).name}: not a readable NIfTI file ({exc})") from None
    n = 1
    for d in shape:
        n *= max(1, int(d))
    return n


def parse_size(text: str | int) -> int:
    """Bytes from ``"50MB"``, ``"512kb"``, ``"2GB"`` or a plain number of bytes."""
    if isinstance(text, int):
        return text
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?i?b?)\s*", str(text).lower())
    if not m:
        raise MedgroundError(f"not a size: {text!r} (examples: 50MB, 512kb, 1000)")
    unit = m.group(2).rstrip("b").rstrip("i")
    factor = {"": 1, "k": 1024, "m": MB, "g": 1024 * MB, "t": 1024 * 1024 * MB}[unit]
    return int(float(m.group(1)) * factor)
