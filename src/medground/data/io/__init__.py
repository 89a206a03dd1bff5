"""Medical image reading: DICOM, NIfTI, PNG / JPEG / TIFF (incl. 16-bit) -> display-ready image.

Entry points:

* :func:`load_image` returns a display-ready 8-bit ``PIL.Image`` (``RGB`` by default,
  ``L`` with ``as_rgb=False``; colour DICOM/PNG stay ``RGB``).
* :func:`read_image` returns an :class:`ImageData` with the image, its original size
  ``(width, height)`` in pixels of the 2-D image shown, and ``meta`` (format, window
  used, photometric interpretation, slice / frame, orientation, spacing...).
* :func:`image_size` returns ``(W, H)`` cheaply (header only for DICOM, NIfTI, PNG...).

The formats are a table of readers, :data:`READERS` (MONAI's ``SUPPORTED_READERS``
idea): each :class:`~medground.data.io.base.ImageReader` has a name, the suffixes it
claims, a magic-byte check, ``read`` and ``size``.  A file goes to the reader whose
suffix it has; a file whose name says nothing goes to the first reader (by
``priority``) that recognises its first bytes (``DICM`` preamble, NIfTI header, then
anything Pillow opens); otherwise :class:`MedgroundError` names the file.  Each call
is dispatched once (:func:`reader_for`).  A new format is one module defining an
``ImageReader`` plus one line in :data:`READERS`.

========  ======================================  =====================================
reader    module                                  suffixes
========  ======================================  =====================================
dicom     :mod:`medground.data.io.dicom`           .dcm .dicom .dic .ima
nifti     :mod:`medground.data.io.nifti`           .nii .nii.gz .img .hdr .mgz
raster    :mod:`medground.data.io.raster`          .png .jpg .jpeg .tif .tiff .bmp ...
========  ======================================  =====================================

Windowing (``window=``; :mod:`medground.data.io.window`; ``meta["window"]`` reports the
``[center, width]`` used and ``meta["window_source"]`` one of ``given``, ``file``,
``voi_lut``, ``minmax``, ``percentile``)
    ``None``  DICOM: the file's Window Center / Width (first value when several; VOI LUT
              Sequence when there is no window), else min–max.  NIfTI: the volume's
              0.5–99.5 percentile range (same brightness on every slice).  PNG / JPEG /
              TIFF: 8-bit images unchanged, 16-bit / float ones scaled by their min–max
              (never truncated to the low byte).
    ``(center, width)``  DICOM linear VOI function (PS3.3 C.11.2.1.2) on modality values
              (Hounsfield units for CT after rescale slope / intercept).
    a preset name  one of :data:`WINDOW_PRESETS` (``"lung"``, ``"mediastinum"``,
              ``"abdomen"``, ``"bone"``, ``"brain"``, ...).
    ``"minmax"``   the image's own min–max.   ``"file"`` = DICOM file window (error if none).

The per-format modules document the rest: DICOM modality LUT, MONOCHROME1 and frames
(:mod:`~medground.data.io.dicom`); NIfTI's RAS+ axes, radiological display and 4-D
volumes (:mod:`~medground.data.io.nifti`, with :func:`read_volume` and
:func:`to_display` for converters that need voxel masks in the same frame); 16-bit
rasters and EXIF (:mod:`~medground.data.io.raster`).

>>> detect_format("scan.DCM"), detect_format("brain.nii.gz"), detect_format("cxr.png")
('dicom', 'nifti', 'raster')
>>> READERS.names()
['dicom', 'nifti', 'raster']
"""

from __future__ import annotations

import os
from pathlib import Path

from PIL import Image

from ...errors import MedgroundError
from ...registry import Registry
from .base import ImageData, ImageReader, check_exists, read_head
from .dicom import DICOM
from .nifti import NIFTI, Volume, from_display_index, read_volume, take_slice, to_display
from .raster import RASTER
from .window import WINDOW_PRESETS, apply_window, minmax, resolve_window

#: The reader table: format name -> :class:`ImageReader`.
READERS = Registry("image reader", hint="see medground.data.io.READERS")


def register_reader(reader: ImageReader) -> ImageReader:
    """Add ``reader`` to :data:`READERS` (its options and description documented there)."""
    READERS.register(reader.name, reader, description=reader.description, options=reader.options)
    return reader


for _reader in (DICOM, NIFTI, RASTER):
    register_reader(_reader)


def readers() -> list[ImageReader]:
    """The registered readers in dispatch order (``priority``, then name)."""
    return sorted((READERS.get(name) for name in READERS.names()), key=lambda r: (r.priority, r.name))


def reader_for(path: str | os.PathLike) -> ImageReader:
    """The reader for ``path``: by suffix, else by the file's first bytes.

    A file no reader recognises raises :class:`MedgroundError` naming it."""
    table = readers()
    for reader in table:
        if reader.has_extension(path):
            return reader
    head = read_head(path)
    for reader in table:
        if reader.has_magic(path, head):
            return reader
    suffix = Path(path).suffix or "(none)"
    claimed = " ".join(ext for r in table for ext in r.extensions)
    raise MedgroundError(
        f"{path}: unknown image format: no reader takes the suffix {suffix} and none recognises the content "
        f"(readers: {', '.join(r.name for r in table)}; suffixes: {claimed})"
    )


def detect_format(path: str | os.PathLike) -> str:
    """``"dicom"``, ``"nifti"`` or ``"raster"`` (the reader's name) from the suffix, else from
    the magic bytes; an unrecognised file raises :class:`MedgroundError`."""
    return reader_for(path).name


def read_image(
    path: str | os.PathLike,
    *,
    window=None,
    slice_index: int | None = None,
    axis: int = 2,
    frame: int | None = None,
    as_rgb: bool = True,
) -> ImageData:
    """Decode any supported medical image to an 8-bit display-ready :class:`ImageData`.

    See the module docstring for ``window``, ``slice_index``, ``axis`` and ``frame``
    (each format uses the ones that apply to it).  Bad or missing files raise
    :class:`MedgroundError` naming the file.
    """
    check_exists(path)
    reader = reader_for(path)
    options = dict(window=window, slice_index=slice_index, axis=axis, frame=frame, as_rgb=as_rgb)
    data = reader.read(path, **reader.pick(options))
    data.meta["path"] = str(path)
    return data


def load_image(path: str | os.PathLike, **options) -> Image.Image:
    """Display-ready 8-bit ``PIL.Image`` (``RGB`` unless ``as_rgb=False`` for gray images):
    :func:`read_image`'s ``image``, with the same keyword options.

    >>> import tempfile, os, numpy as np
    >>> p = os.path.join(tempfile.mkdtemp(), "x.png")
    >>> Image.fromarray(np.array([[0, 4000]], dtype=np.uint16)).save(p)
    >>> load_image(p, as_rgb=False).getpixel((1, 0))
    255
    """
    return read_image(path, **options).image


def image_size(path: str | os.PathLike, *, axis: int = 2) -> tuple[int, int]:
    """``(W, H)`` of the 2-D image :func:`load_image` would return, from the header only
    (DICOM Rows / Columns, NIfTI dims after RAS+ reorientation, PIL's lazy open)."""
    check_exists(path)
    reader = reader_for(path)
    return reader.size(path, **reader.pick({"axis": axis}))


__all__ = [
    "READERS",
    "WINDOW_PRESETS",
    "ImageData",
    "ImageReader",
    "Volume",
    "apply_window",
    "detect_format",
    "from_display_index",
    "image_size",
    "load_image",
    "minmax",
    "read_image",
    "read_volume",
    "reader_for",
    "readers",
    "register_reader",
    "resolve_window",
    "take_slice",
    "to_display",
]
