"""DICOM reader: modality LUT, window / VOI LUT, MONOCHROME1, colour and multi-frame.

Modality LUT (rescale slope / intercept or Modality LUT Sequence, per-frame functional
groups for enhanced multi-frame objects), then the window, then MONOCHROME1 is inverted
so that higher values are always brighter.  ``window=None`` uses the file's Window
Center / Width (the first value when there are several; the VOI LUT Sequence when there
is no window), else the min–max of the modality values.  ``frame`` picks a frame of a
multi-frame object (default 0).  RGB / YBR become RGB, PALETTE COLOR goes through its LUT.

>>> from pydicom.data import get_testdata_file
>>> d = read_dicom(get_testdata_file("CT_small.dcm"), window="abdomen")
>>> d.size, d.meta["rescale"], d.meta["window"], d.meta["window_source"]
((128, 128), [1.0, -1024.0], [40.0, 400.0], 'given')
>>> DICOM.has_magic("no_suffix", b"\\0" * 128 + b"DICM")
True
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ...errors import MedgroundError
from .base import AS_RGB, FRAME, WINDOW, ImageData, ImageReader, image_data, to_uint8
from .window import apply_window, minmax, resolve_window, window_gray

DICOM_EXTS = (".dcm", ".dicom", ".dic", ".ima")


def read_dicom(path, window=None, frame: int | None = None, as_rgb: bool = True) -> ImageData:
    """Decode one frame of a DICOM file to a display-ready :class:`ImageData`."""
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
        return image_data(to_uint8(unit), True, meta)
    if spp == 3 or arr.ndim == 3:
        # pydicom 3 converts YBR_* to RGB by default
        bits = int(ds.get("BitsStored", 8) or 8)
        if isinstance(w_arg, tuple) or w_arg == "minmax":
            unit, meta["window"], meta["window_source"] = window_gray(arr.astype(np.float64), w_arg)
        else:  # colour images: full range of the stored bits
            unit, meta["window"] = minmax(arr, 0, float(2**bits - 1)), None
        return image_data(to_uint8(unit), True, meta)

    values, resc = _rescale(arr, ds, frame)
    meta.update(resc)
    if isinstance(w_arg, tuple) or w_arg == "minmax":
        unit, meta["window"], meta["window_source"] = window_gray(values, w_arg)
    else:
        fw = _file_window(ds, frame)
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
            unit, meta["window"], meta["window_source"] = window_gray(values, "minmax")
    if photometric == "MONOCHROME1":
        unit = 1.0 - unit
        meta["inverted"] = True
    return image_data(to_uint8(unit), as_rgb, meta)


def dicom_size(path) -> tuple[int, int]:
    """``(Columns, Rows)`` from the header (pixel data not read)."""
    ds = _dcmread(path, stop_before_pixels=True)
    try:
        return int(ds.Columns), int(ds.Rows)
    except AttributeError:
        raise MedgroundError(f"{path}: DICOM file has no Rows / Columns (no image)") from None


def has_dicm_preamble(path: Path, head: bytes) -> bool:
    """A DICOM Part 10 file: ``DICM`` after the 128-byte preamble."""
    return len(head) >= 132 and head[128:132] == b"DICM"


DICOM = ImageReader(
    "dicom", DICOM_EXTS, read=read_dicom, size=dicom_size, sniff=has_dicm_preamble,
    options={"window": WINDOW, "frame": FRAME, "as_rgb": AS_RGB},
    description="DICOM (modality LUT, file window / VOI LUT, MONOCHROME1, colour, multi-frame)",
)


# --------------------------------------------------------------------------- helpers


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
    from pydicom.multival import MultiValue

    if isinstance(value, (MultiValue, list, tuple)):
        value = value[0] if len(value) else None
    if value is None or value == "":
        return None
    return float(value)


def _file_window(ds, frame: int) -> tuple[float, float, str] | None:
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


def _rescale(arr: np.ndarray, ds, frame: int) -> tuple[np.ndarray, dict]:
    """Modality values: rescale slope / intercept (file, then functional groups), else the
    Modality LUT Sequence, else the stored values."""
    from pydicom.pixels import apply_modality_lut

    slope = ds.get("RescaleSlope")
    intercept = ds.get("RescaleIntercept")
    if slope is None and intercept is None:
        slope = _frame_attr(ds, frame, "PixelValueTransformationSequence", "RescaleSlope")
        intercept = _frame_attr(ds, frame, "PixelValueTransformationSequence", "RescaleIntercept")
        if slope is None and intercept is None:
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
