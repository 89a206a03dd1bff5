"""Medical image reading: DICOM, NIfTI, PNG / JPEG / TIFF (incl. 16-bit) -> display-ready image.

Two entry points:

* :func:`load_image` returns a display-ready 8-bit ``PIL.Image`` (``RGB`` by default,
  ``L`` with ``as_rgb=False``; colour DICOM/PNG stay ``RGB``).
* :func:`read_image` returns an :class:`ImageData` with the image, its original size
  ``(width, height)`` in pixels of the 2-D image shown, and ``meta`` (format, window
  used, photometric interpretation, slice / frame, orientation, spacing...).
* :func:`image_size` returns ``(W, H)`` cheaply (header only for DICOM, NIfTI, PNG...).

Windowing (``window=``; ``meta["window"]`` reports the ``[center, width]`` used and
``meta["window_source"]`` one of ``given``, ``file``, ``voi_lut``, ``minmax``, ``percentile``)
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

DICOM
    Modality LUT (rescale slope / intercept or Modality LUT Sequence, per-frame functional
    groups for enhanced multi-frame objects), then window, then MONOCHROME1 is inverted so
    that higher values are always brighter.  ``frame`` picks a frame of a multi-frame
    object (default 0).  RGB / YBR are converted to RGB, PALETTE COLOR through its LUT.

NIfTI axis conventions
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
    volume (default 0).  :func:`read_volume` and :func:`to_display` expose the same
    transform for converters that need voxel masks in the same frame.

EXIF orientation of JPEGs is *not* applied: boxes in the public releases refer to the
stored pixel grid.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..errors import MedgroundError

#: Named windows ``(center, width)`` in Hounsfield units (CT) — common radiology presets.
WINDOW_PRESETS: dict[str, tuple[float, float]] = {
    "lung": (-600.0, 1500.0),
    "mediastinum": (50.0, 350.0),
    "soft_tissue": (40.0, 400.0),
    "abdomen": (40.0, 400.0),
    "liver": (60.0, 160.0),
    "bone": (400.0, 1800.0),
    "brain": (40.0, 80.0),
    "subdural": (75.0, 215.0),
    "stroke": (40.0, 40.0),
    "angio": (300.0, 600.0),
}

DICOM_EXTS = (".dcm", ".dicom", ".dic", ".ima")
NIFTI_EXTS = (".nii", ".nii.gz", ".img", ".hdr", ".mgz")
RASTER_EXTS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif", ".webp", ".pgm", ".ppm")

Window = "tuple[float, float] | str | None"


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


@dataclass
class Volume:
    """A NIfTI volume reoriented to RAS+ (see the module docstring)."""

    data: np.ndarray  # (X, Y, Z[, T]) float / int array, RAS+ axes
    affine: np.ndarray
    spacing: tuple[float, float, float]
    orientation: str = "RAS"
    original_orientation: str = ""


# --------------------------------------------------------------------------- helpers


def detect_format(path: str | os.PathLike) -> str:
    """``"dicom"``, ``"nifti"`` or ``"raster"`` from the name, else from the magic bytes."""
    name = str(path).lower()
    if name.endswith(DICOM_EXTS):
        return "dicom"
    if name.endswith(NIFTI_EXTS):
        return "nifti"
    if name.endswith(RASTER_EXTS):
        return "raster"
    try:
        with open(path, "rb") as fh:
            head = fh.read(352)
    except OSError as exc:
        raise MedgroundError(f"{path}: cannot read image ({exc.strerror or exc})") from None
    if len(head) >= 132 and head[128:132] == b"DICM":
        return "dicom"
    if len(head) >= 348 and (head[344:348] in (b"n+1\0", b"ni1\0", b"n+2\0", b"ni2\0")):
        return "nifti"
    return "raster"  # let PIL decide (and fail clearly)


def _check_exists(path) -> Path:
    p = Path(path)
    if not p.is_file():
        raise MedgroundError(f"{path}: image file not found")
    return p


def resolve_window(window) -> tuple[float, float] | str | None:
    """Normalise a ``window`` argument to ``(center, width)``, ``"minmax"``, ``"file"`` or None."""
    if window is None:
        return None
    if isinstance(window, str):
        if "," in window:  # "40,400" / "-600,1500" from the command line
            try:
                c, w = (float(v) for v in window.split(","))
                return _check_width(c, w)
            except ValueError:
                pass
        key = window.strip().lower().replace("-", "_").replace(" ", "_")
        if key in ("minmax", "min_max", "auto", "file"):
            return "minmax" if key in ("minmax", "min_max") else ("file" if key == "file" else None)
        if key in WINDOW_PRESETS:
            return WINDOW_PRESETS[key]
        raise MedgroundError(
            f"unknown window {window!r}; give (center, width), 'minmax', 'file' or one of {sorted(WINDOW_PRESETS)}"
        )
    try:
        c, w = window
        return _check_width(float(c), float(w))
    except (TypeError, ValueError):
        raise MedgroundError(f"window must be (center, width) or a preset name, got {window!r}") from None


def _check_width(c: float, w: float) -> tuple[float, float]:
    if not (np.isfinite(c) and np.isfinite(w)) or w < 1:
        raise MedgroundError(f"window width must be >= 1 and finite, got center={c}, width={w}")
    return c, w


def apply_window(arr, center: float, width: float, function: str = "LINEAR") -> np.ndarray:
    """Map values to ``[0, 1]`` with a DICOM VOI window (PS3.3 C.11.2.1.2).

    ``LINEAR`` (default), ``LINEAR_EXACT`` or ``SIGMOID``.

    >>> apply_window(np.array([-1000., 40., 1000.]), 40, 400).round(3).tolist()
    [0.0, 0.501, 1.0]
    """
    x = np.asarray(arr, dtype=np.float64)
    function = (function or "LINEAR").upper()
    if function == "SIGMOID":
        return 1.0 / (1.0 + np.exp(-4.0 * (x - center) / width))
    if function == "LINEAR_EXACT":
        y = (x - (center - width / 2.0)) / width
    else:
        if width < 1:
            raise MedgroundError(f"window width must be >= 1 for a LINEAR window, got {width}")
        if width == 1:
            return (x > center - 0.5).astype(np.float64)
        y = (x - (center - 0.5)) / (width - 1.0) + 0.5
    return np.clip(y, 0.0, 1.0)


def minmax(arr, lo: float | None = None, hi: float | None = None) -> np.ndarray:
    """Scale to ``[0, 1]`` by ``[lo, hi]`` (default the array's finite min–max)."""
    x = np.asarray(arr, dtype=np.float64)
    finite = x[np.isfinite(x)]
    if lo is None:
        lo = float(finite.min()) if finite.size else 0.0
    if hi is None:
        hi = float(finite.max()) if finite.size else 1.0
    if hi <= lo:
        return np.zeros_like(x) if not finite.size or lo <= 0 else np.ones_like(x) * (x >= lo)
    out = (x - lo) / (hi - lo)
    return np.clip(np.nan_to_num(out, nan=0.0), 0.0, 1.0)


def _to_uint8(unit: np.ndarray) -> np.ndarray:
    return np.round(np.clip(unit, 0.0, 1.0) * 255.0).astype(np.uint8)


def _finish(gray_or_rgb: np.ndarray, as_rgb: bool) -> Image.Image:
    if gray_or_rgb.ndim == 2:
        img = Image.fromarray(gray_or_rgb, mode="L")
        return img.convert("RGB") if as_rgb else img
    return Image.fromarray(gray_or_rgb, mode="RGB")


def _window_gray(arr: np.ndarray, window, default_range=None) -> tuple[np.ndarray, list[float], str]:
    """Apply a resolved window to a gray array.

    Returns ``(unit array, [center, width], source)``; a range ``[lo, hi]`` is reported
    as ``center = (lo + hi) / 2``, ``width = hi - lo`` with source ``"minmax"`` or
    ``"percentile"``."""
    if isinstance(window, tuple):
        return apply_window(arr, *window), [float(window[0]), float(window[1])], "given"
    if default_range is not None and window is None:
        lo, hi = (float(v) for v in default_range)
        source = "percentile"
    else:
        finite = arr[np.isfinite(arr)] if arr.dtype.kind == "f" else arr
        lo = float(finite.min()) if finite.size else 0.0
        hi = float(finite.max()) if finite.size else 0.0
        source = "minmax"
    return minmax(arr, lo, hi), [(lo + hi) / 2.0, hi - lo], source


# --------------------------------------------------------------------------- DICOM


def _dcmread(path, **kwargs):
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        return pydicom.dcmread(str(path), **kwargs)
    except InvalidDicomError:
        try:
            return pydicom.dcmread(str(path), force=True, **kwargs)
        except Exception as exc:  # noqa: BLE001
            raise MedgroundError(f"{path}: not a readable DICOM file ({exc})") from None
    except Exception as exc:  # noqa: BLE001
        raise MedgroundError(f"{path}: not a readable DICOM file ({exc})") from None


def _frame_attr(ds, frame: int, seq_name: str, attr: str):
    """An attribute from the per-frame, then shared functional groups (enhanced objects)."""
    for groups in ("PerFrameFunctionalGroupsSequence", "SharedFunctionalGroupsSequence"):
        seq = ds.get(groups)
        if not seq:
            continue
        item = seq[min(frame, len(seq) - 1)] if groups.startswith("PerFrame") else seq[0]
        sub = item.get(seq_name)
        if sub and attr in sub[0]:
            return sub[0].get(attr)
    return None


def _first(value):
    if value is None:
        return None
    try:
        from pydicom.multival import MultiValue

        if isinstance(value, (MultiValue, list, tuple)):
            value = value[0] if len(value) else None
    except ImportError:  # pragma: no cover
        pass
    if value is None or value == "":
        return None
    return float(value)


def _dicom_file_window(ds, frame: int) -> tuple[float, float, str] | None:
    center = ds.get("WindowCenter")
    width = ds.get("WindowWidth")
    func = ds.get("VOILUTFunction", "LINEAR")
    if center is None or width is None:
        center = _frame_attr(ds, frame, "FrameVOILUTSequence", "WindowCenter")
        width = _frame_attr(ds, frame, "FrameVOILUTSequence", "WindowWidth")
        func = _frame_attr(ds, frame, "FrameVOILUTSequence", "VOILUTFunction") or func
    try:
        c, w = _first(center), _first(width)
    except (TypeError, ValueError):
        return None
    if c is None or w is None or not np.isfinite(c) or not np.isfinite(w) or w <= 0:
        return None
    return c, max(w, 1.0), str(func or "LINEAR")


def _dicom_rescale(arr: np.ndarray, ds, frame: int) -> tuple[np.ndarray, dict]:
    from pydicom.pixels import apply_modality_lut

    slope = ds.get("RescaleSlope")
    intercept = ds.get("RescaleIntercept")
    if slope is None and intercept is None:
        slope = _frame_attr(ds, frame, "PixelValueTransformationSequence", "RescaleSlope")
        intercept = _frame_attr(ds, frame, "PixelValueTransformationSequence", "RescaleIntercept")
        if slope is not None or intercept is not None:
            s = float(slope if slope is not None else 1.0)
            i = float(intercept if intercept is not None else 0.0)
            return arr.astype(np.float64) * s + i, {"rescale": [s, i]}
        if ds.get("ModalityLUTSequence"):
            return apply_modality_lut(arr, ds).astype(np.float64), {"rescale": "modality_lut"}
        return arr.astype(np.float64), {"rescale": None}
    s = float(slope if slope is not None else 1.0)
    i = float(intercept if intercept is not None else 0.0)
    return arr.astype(np.float64) * s + i, {"rescale": [s, i]}


def _apply_voi_lut_sequence(values: np.ndarray, ds) -> np.ndarray:
    """First item of the VOI LUT Sequence (PS3.3 C.11.2.1.1) applied to modality values,
    scaled to ``[0, 1]`` by the LUT's output bit depth.  (Done here rather than with
    pydicom's ``apply_voi_lut``, whose 8-bit LUTs overflow for inputs far above the first
    mapped value.)"""
    item = ds.VOILUTSequence[0]
    n, first, bits = (int(v) for v in item.LUTDescriptor)
    n = n or 65536
    raw = item.LUTData
    if isinstance(raw, (bytes, bytearray)):
        little = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
        big = little is not None and little == "1.2.840.10008.1.2.2"
        lut = np.frombuffer(bytes(raw), dtype=">u2" if big else "<u2")[:n].astype(np.float64)
    else:
        lut = np.asarray(list(raw) if not np.isscalar(raw) else [raw], dtype=np.float64)
    idx = np.clip(np.round(values).astype(np.int64) - first, 0, len(lut) - 1)
    return np.clip(lut[idx] / float(2 ** (bits or 16) - 1), 0.0, 1.0)


def _read_dicom(path, window, frame, as_rgb) -> ImageData:
    from pydicom.pixels import apply_color_lut

    ds = _dcmread(path)
    if "PixelData" not in ds and "FloatPixelData" not in ds and "DoubleFloatPixelData" not in ds:
        raise MedgroundError(f"{path}: DICOM file has no pixel data (SOP class {ds.get('SOPClassUID', '?')})")
    n_frames = int(ds.get("NumberOfFrames", 1) or 1)
    frame = 0 if frame is None else int(frame)
    if not 0 <= frame < n_frames:
        raise MedgroundError(f"{path}: frame {frame} out of range (the file has {n_frames} frame(s))")
    try:
        arr = ds.pixel_array
    except Exception as exc:  # noqa: BLE001 - decoder plugins raise many types
        msg = " ".join(str(exc).split())[:300]
        raise MedgroundError(
            f"{path}: cannot decode DICOM pixel data (transfer syntax "
            f"{getattr(ds.file_meta, 'TransferSyntaxUID', '?')}): {msg}; install a decoder "
            "(pylibjpeg / pylibjpeg-libjpeg / pylibjpeg-openjpeg / gdcm) for compressed files"
        ) from None
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip().upper()
    spp = int(ds.get("SamplesPerPixel", 1) or 1)
    if n_frames > 1:
        arr = arr[frame]
    meta: dict[str, Any] = {
        "format": "dicom",
        "modality": str(ds.get("Modality", "")) or None,
        "photometric": photometric,
        "bits_stored": int(ds.get("BitsStored", 8) or 8),
        "frame": frame,
        "n_frames": n_frames,
    }
    spacing = ds.get("PixelSpacing") or ds.get("ImagerPixelSpacing")
    if spacing is not None and len(spacing) == 2:
        meta["spacing"] = [float(spacing[1]), float(spacing[0])]  # (col_mm, row_mm)
    w_arg = resolve_window(window)

    if photometric == "PALETTE COLOR":
        rgb = apply_color_lut(arr, ds)
        unit = minmax(rgb, 0, float(2 ** (8 * rgb.dtype.itemsize) - 1)) if rgb.dtype.kind == "u" else minmax(rgb)
        meta["window"] = None
        out = _to_uint8(unit)
        return ImageData(_finish(out, True), out.shape[1], out.shape[0], meta)
    if spp == 3 or arr.ndim == 3:
        # pydicom 3 converts YBR_* to RGB by default
        bits = int(ds.get("BitsStored", 8) or 8)
        if isinstance(w_arg, tuple) or w_arg == "minmax":
            unit, meta["window"], meta["window_source"] = _window_gray(arr.astype(np.float64), w_arg)
        else:  # colour images: full range of the stored bits
            unit, meta["window"] = minmax(arr, 0, float(2**bits - 1)), None
        out = _to_uint8(unit)
        return ImageData(_finish(out, True), out.shape[1], out.shape[0], meta)

    values, resc = _dicom_rescale(arr, ds, frame)
    meta.update(resc)
    if isinstance(w_arg, tuple):
        unit, meta["window"], meta["window_source"] = _window_gray(values, w_arg)
    elif w_arg == "minmax":
        unit, meta["window"], meta["window_source"] = _window_gray(values, "minmax")
    else:
        fw = _dicom_file_window(ds, frame)
        if fw is not None:
            c, w, func = fw
            unit, meta["window"] = apply_window(values, c, w, func), [c, w]
            meta["window_source"] = "file"
        elif w_arg is None and ds.get("VOILUTSequence"):
            unit, meta["window"] = _apply_voi_lut_sequence(values, ds), None
            meta["window_source"] = "voi_lut"
        elif w_arg == "file":
            raise MedgroundError(f"{path}: window='file' but the file has no Window Center / Width")
        else:
            unit, meta["window"], meta["window_source"] = _window_gray(values, "minmax")
    if photometric == "MONOCHROME1":
        unit = 1.0 - unit
        meta["inverted"] = True
    out = _to_uint8(unit)
    return ImageData(_finish(out, as_rgb), out.shape[1], out.shape[0], meta)


def _dicom_size(path) -> tuple[int, int]:
    ds = _dcmread(path, stop_before_pixels=True)
    try:
        return int(ds.Columns), int(ds.Rows)
    except AttributeError:
        raise MedgroundError(f"{path}: DICOM file has no Rows / Columns (no image)") from None


# --------------------------------------------------------------------------- NIfTI


def _nib_load(path):
    import nibabel as nib

    try:
        return nib.load(str(path))
    except Exception as exc:  # noqa: BLE001
        raise MedgroundError(f"{path}: not a readable NIfTI / volume file ({exc})") from None


def read_volume(path: str | os.PathLike, *, dtype=None) -> Volume:
    """Load a NIfTI (or other nibabel) volume reoriented to RAS+ (closest canonical)."""
    import nibabel as nib

    _check_exists(path)
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


def _check_axis(path, axis) -> int:
    if axis not in (0, 1, 2):
        raise MedgroundError(f"{path}: axis must be 0 (sagittal), 1 (coronal) or 2 (axial), got {axis!r}")
    return int(axis)


def _read_nifti(path, window, slice_index, axis, frame, as_rgb) -> ImageData:
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
    if w_arg == "file":
        raise MedgroundError(f"{path}: window='file' is only for DICOM files")
    default_range = None
    if w_arg is None:
        finite = np.asarray(data, dtype=np.float64)
        finite = finite[np.isfinite(finite)]
        if finite.size:
            default_range = tuple(np.percentile(finite, [0.5, 99.5]))
    unit, used, source = _window_gray(plane, w_arg, default_range)
    out = _to_uint8(unit)
    in_plane = [vol.spacing[a] for a in range(3) if a != axis]
    meta = {
        "format": "nifti",
        "axis": axis,
        "plane": ("sagittal", "coronal", "axial")[axis],
        "slice_index": k,
        "n_slices": n,
        "orientation": "radiological",
        "original_orientation": vol.original_orientation,
        "spacing": [float(in_plane[0]), float(in_plane[1])],
        "window": used,
        "window_source": source,
    }
    return ImageData(_finish(out, as_rgb), out.shape[1], out.shape[0], meta)


def _nifti_size(path, axis) -> tuple[int, int]:
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


# --------------------------------------------------------------------------- PNG / JPEG / TIFF


def _read_raster(path, window, frame, as_rgb) -> ImageData:
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
    if w_arg == "file":
        raise MedgroundError(f"{path}: window='file' is only for DICOM files")
    if mode in ("RGB", "RGBA", "P", "PA", "CMYK", "YCbCr", "LAB", "HSV", "LA", "1", "L") and not isinstance(
        w_arg, tuple
    ) and w_arg != "minmax":
        if mode in ("L", "1"):
            out = np.asarray(img.convert("L"))
        elif mode == "LA":
            out = np.asarray(img.convert("L"))
        else:
            out = np.asarray(img.convert("RGB"))
        meta["window"] = None
        return ImageData(_finish(out, as_rgb), img.width, img.height, meta)
    # 16-bit, 32-bit int and float images, or an explicit window: scale by range.
    if mode in ("RGB", "RGBA", "P", "PA", "CMYK", "YCbCr", "LAB", "HSV"):
        arr = np.asarray(img.convert("RGB")).astype(np.float64)
    elif mode in ("L", "LA", "1"):
        arr = np.asarray(img.convert("L")).astype(np.float64)
    else:  # I;16, I;16B, I;16L, I;16N, I, F
        arr = np.asarray(img).astype(np.float64)
        meta["bits"] = 16 if mode.startswith("I;16") else 32
    unit, meta["window"], meta["window_source"] = _window_gray(arr, w_arg)
    out = _to_uint8(unit)
    return ImageData(_finish(out, as_rgb), img.width, img.height, meta)


def _raster_size(path) -> tuple[int, int]:
    try:
        with Image.open(path) as img:
            return int(img.width), int(img.height)
    except Exception as exc:  # noqa: BLE001
        raise MedgroundError(f"{path}: not a readable image ({exc})") from None


# --------------------------------------------------------------------------- public API


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

    See the module docstring for ``window``, ``slice_index``, ``axis`` and ``frame``.
    Bad or missing files raise :class:`MedgroundError` naming the file.
    """
    _check_exists(path)
    fmt = detect_format(path)
    if fmt == "dicom":
        data = _read_dicom(path, window, frame, as_rgb)
    elif fmt == "nifti":
        data = _read_nifti(path, window, slice_index, axis, frame, as_rgb)
    else:
        data = _read_raster(path, window, frame, as_rgb)
    data.meta["path"] = str(path)
    return data


def load_image(
    path: str | os.PathLike,
    *,
    window=None,
    slice_index: int | None = None,
    axis: int = 2,
    frame: int | None = None,
    as_rgb: bool = True,
) -> Image.Image:
    """Display-ready 8-bit ``PIL.Image`` (``RGB`` unless ``as_rgb=False`` for gray images).

    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "x.png")
    >>> Image.fromarray(np.array([[0, 4000]], dtype=np.uint16)).save(p)
    >>> load_image(p, as_rgb=False).getpixel((1, 0))
    255
    """
    return read_image(path, window=window, slice_index=slice_index, axis=axis, frame=frame, as_rgb=as_rgb).image


def image_size(path: str | os.PathLike, *, axis: int = 2) -> tuple[int, int]:
    """``(W, H)`` of the 2-D image :func:`load_image` would return, from the header only
    (DICOM Rows / Columns, NIfTI dims after RAS+ reorientation, PIL's lazy open)."""
    _check_exists(path)
    fmt = detect_format(path)
    if fmt == "dicom":
        return _dicom_size(path)
    if fmt == "nifti":
        return _nifti_size(path, axis)
    return _raster_size(path)


__all__ = [
    "WINDOW_PRESETS",
    "ImageData",
    "Volume",
    "apply_window",
    "detect_format",
    "from_display_index",
    "image_size",
    "load_image",
    "minmax",
    "read_image",
    "read_volume",
    "resolve_window",
    "take_slice",
    "to_display",
]
