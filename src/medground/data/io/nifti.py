"""NIfTI (and other nibabel volumes: Analyze ``.img`` / ``.hdr``, ``.mgz``) reader:
one slice of a volume reoriented to RAS+, shown in radiological convention.

Axis conventions
    The volume is reoriented to the closest canonical RAS+ orientation
    (``nibabel.as_closest_canonical``): array axis 0 runs patient left -> right, axis 1
    posterior -> anterior, axis 2 inferior -> superior.  ``axis`` chooses the slicing
    axis in that frame: ``0`` sagittal, ``1`` coronal, ``2`` axial (default).  Slices are
    shown in *radiological convention*: axial and coronal images have the patient's
    right on the image left (patient left on image right), axial images anterior at the
    top, coronal and sagittal superior at the top, sagittal anterior on the image left.
    ``slice_index`` is an index along ``axis`` in the RAS+ array (default: the middle
    slice).  Pixels are voxels (no resampling for anisotropic spacing; ``meta["spacing"]``
    gives the in-plane spacing ``(col_mm, row_mm)``).  4-D volumes: ``frame`` picks the
    volume (default 0).  ``window=None`` scales by the volume's 0.5–99.5 percentile range
    (the same brightness on every slice).  :func:`read_volume` and :func:`to_display`
    expose the same transform for converters that need voxel masks in the same frame.

>>> vol = np.zeros((3, 2, 1)); vol[2, 1, 0] = 1  # patient right-most and anterior-most voxel
>>> to_display(take_slice(vol, 2, 0)).tolist()  # axial: right on the image left, anterior on top
[[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]]
>>> from_display_index(0, 0, (3, 2))  # image pixel (col 0, row 0) is voxel (2, 1) of the slice
(2, 1)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...errors import MedgroundError
from .base import (
    AS_RGB,
    AXIS,
    FRAME,
    SLICE_INDEX,
    WINDOW,
    ImageData,
    ImageReader,
    check_exists,
    image_data,
    read_head,
    to_uint8,
)
from .window import no_file_window, resolve_window, window_gray

NIFTI_EXTS = (".nii", ".nii.gz", ".img", ".hdr", ".mgz")
PLANES = ("sagittal", "coronal", "axial")


@dataclass
class Volume:
    """A NIfTI volume reoriented to RAS+ (see the module docstring)."""

    data: np.ndarray  # (X, Y, Z[, T]) float / int array, RAS+ axes
    affine: np.ndarray
    spacing: tuple[float, float, float]
    orientation: str = "RAS"
    original_orientation: str = ""


def read_volume(path: str | os.PathLike, *, dtype=None) -> Volume:
    """Load a NIfTI (or other nibabel) volume reoriented to RAS+ (closest canonical)."""
    import nibabel as nib

    check_exists(path)
    img = _nib_load(path)
    if not hasattr(img, "affine") or img.affine is None or len(img.shape) < 2:
        raise MedgroundError(f"{path}: not a spatial image volume (shape {getattr(img, 'shape', '?')})")
    original = "".join(c or "?" for c in nib.aff2axcodes(img.affine))
    if len(img.shape) == 2:
        img = img.__class__(np.asanyarray(img.dataobj)[..., None], img.affine, img.header)
    try:
        canon = nib.as_closest_canonical(img)
        data = np.asanyarray(canon.dataobj)
    except Exception as exc:  # noqa: BLE001
        raise MedgroundError(f"{path}: cannot read volume data ({exc})") from None
    if dtype is not None:
        data = data.astype(dtype)
    zooms = canon.header.get_zooms()[:3]
    spacing = tuple(float(z) for z in zooms) + (1.0,) * (3 - len(zooms))
    return Volume(data=data, affine=canon.affine, spacing=spacing, orientation="RAS", original_orientation=original)


def to_display(slice2d: np.ndarray) -> np.ndarray:
    """A 2-D slice of a RAS+ volume (``vol[i]``, ``vol[:, j]`` or ``vol[:, :, k]``) as image
    rows × columns in radiological convention (see the module docstring).

    For every axis the first remaining array axis (R/L for axial and coronal, P/A for
    sagittal) becomes the columns, reversed, and the second (A/P or S/I) the rows,
    reversed: ``slice2d.T[::-1, ::-1]``.
    """
    return np.ascontiguousarray(np.asarray(slice2d).T[::-1, ::-1])


def from_display_index(col: float, row: float, shape2d: tuple[int, int]) -> tuple[float, float]:
    """Inverse of :func:`to_display` for one pixel: image ``(col, row)`` -> slice ``(i, j)``."""
    n0, n1 = shape2d
    return n0 - 1 - col, n1 - 1 - row


def take_slice(data: np.ndarray, axis: int, index: int) -> np.ndarray:
    """``data`` sliced at ``index`` along ``axis`` (0, 1 or 2) of a RAS+ volume."""
    return np.take(data, index, axis=axis)


def read_nifti(path, window=None, slice_index: int | None = None, axis: int = 2, frame: int | None = None,
               as_rgb: bool = True) -> ImageData:
    """Decode one slice of a volume to a display-ready :class:`ImageData`."""
    axis = _check_axis(path, axis)
    vol = read_volume(path)
    data = vol.data
    if data.ndim == 4:
        n_t = data.shape[3]
        t = 0 if frame is None else int(frame)
        if not 0 <= t < n_t:
            raise MedgroundError(f"{path}: frame {t} out of range (the volume has {n_t} time points)")
        data = data[..., t]
    elif data.ndim > 4:
        raise MedgroundError(f"{path}: {data.ndim}-D volumes are not supported")
    n = data.shape[axis]
    k = n // 2 if slice_index is None else int(slice_index)
    if not 0 <= k < n:
        raise MedgroundError(f"{path}: slice {k} out of range along axis {axis} (size {n})")
    plane = to_display(take_slice(data, axis, k)).astype(np.float64)
    w_arg = resolve_window(window)
    no_file_window(path, w_arg)
    default_range = None
    if w_arg is None:
        finite = np.asarray(data, dtype=np.float64)
        finite = finite[np.isfinite(finite)]
        if finite.size:
            default_range = tuple(np.percentile(finite, [0.5, 99.5]))
    unit, used, source = window_gray(plane, w_arg, default_range)
    in_plane = [vol.spacing[a] for a in range(3) if a != axis]
    meta = {
        "format": "nifti",
        "axis": axis,
        "plane": PLANES[axis],
        "slice_index": k,
        "n_slices": n,
        "orientation": "radiological",
        "original_orientation": vol.original_orientation,
        "spacing": [float(in_plane[0]), float(in_plane[1])],
        "window": used,
        "window_source": source,
    }
    return image_data(to_uint8(unit), as_rgb, meta)


def nifti_size(path, axis: int = 2) -> tuple[int, int]:
    """``(W, H)`` of a slice along ``axis``, from the header's shape and affine (no voxels read)."""
    import nibabel as nib

    axis = _check_axis(path, axis)
    img = _nib_load(path)
    shape = tuple(img.shape[:3]) + (1,) * max(0, 3 - len(img.shape))
    ornt = nib.orientations.io_orientation(img.affine)
    ras_shape = [0, 0, 0]
    for src_axis, (dst_axis, _flip) in enumerate(ornt[:3]):
        if np.isnan(dst_axis):
            dst_axis = src_axis
        ras_shape[int(dst_axis)] = shape[src_axis]
    rest = [ras_shape[a] for a in range(3) if a != axis]
    return int(rest[0]), int(rest[1])


def has_nifti_magic(path: Path, head: bytes) -> bool:
    """An uncompressed NIfTI-1 / NIfTI-2 header (``n+1`` / ``ni1`` / ``n+2`` / ``ni2`` at byte 344)."""
    return len(head) >= 348 and head[344:348] in (b"n+1\0", b"ni1\0", b"n+2\0", b"ni2\0")


NIFTI = ImageReader(
    "nifti", NIFTI_EXTS, read=read_nifti, size=nifti_size, sniff=has_nifti_magic,
    options={"window": WINDOW, "slice_index": SLICE_INDEX, "axis": AXIS, "frame": FRAME, "as_rgb": AS_RGB},
    description="NIfTI / Analyze / MGH volumes: one slice, RAS+, radiological convention",
)


# --------------------------------------------------------------------------- helpers


def _nib_load(path):
    import nibabel as nib

    try:
        if str(path).lower().endswith(NIFTI_EXTS):
            return nib.load(str(path))
        return _load_by_header(path)  # recognised by its magic bytes (nibabel goes by the name)
    except Exception as exc:  # noqa: BLE001
        raise MedgroundError(f"{path}: not a readable NIfTI / volume file ({exc})") from None


def _load_by_header(path):
    """A single-file NIfTI-1 / NIfTI-2 volume whose name has no NIfTI suffix."""
    import nibabel as nib

    magic = read_head(path)[344:348]
    image_class = {b"n+1\0": nib.Nifti1Image, b"n+2\0": nib.Nifti2Image}.get(magic)
    if image_class is None:
        raise ValueError(f"no single-file NIfTI header (magic {magic!r})")
    holder = nib.FileHolder(filename=str(path))
    return image_class.from_file_map({"header": holder, "image": holder})


def _check_axis(path, axis) -> int:
    if axis not in (0, 1, 2):
        raise MedgroundError(f"{path}: axis must be 0 (sagittal), 1 (coronal) or 2 (axial), got {axis!r}")
    return int(axis)
