"""Windowing: how stored values (Hounsfield units, 16-bit counts, floats) become
display brightness in ``[0, 1]``.

``window=`` everywhere in :mod:`medground.data.io` is resolved by :func:`resolve_window`:
``(center, width)``, a preset name from :data:`WINDOW_PRESETS`, ``"40,400"`` (from the
command line), ``"minmax"`` (the image's own range), ``"file"`` (the DICOM file's
window) or None (the format's default; see :mod:`medground.data.io`).

>>> resolve_window("lung"), resolve_window("-600, 1500"), resolve_window("min-max")
((-600.0, 1500.0), (-600.0, 1500.0), 'minmax')
>>> apply_window(np.array([-1000., 40., 1000.]), *WINDOW_PRESETS["abdomen"]).round(3).tolist()
[0.0, 0.501, 1.0]
"""

from __future__ import annotations

import numpy as np

from ...errors import MedgroundError

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


def window_gray(arr: np.ndarray, window, default_range=None) -> tuple[np.ndarray, list[float], str]:
    """Apply a resolved window to a gray array.

    Returns ``(unit array, [center, width], source)``; a range ``[lo, hi]`` is reported
    as ``center = (lo + hi) / 2``, ``width = hi - lo`` with source ``"minmax"`` or
    ``"percentile"`` (``default_range``, used when ``window`` is None)."""
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


def no_file_window(path, window) -> None:
    """Raise for ``window="file"`` on a format that has no window in its header."""
    if window == "file":
        raise MedgroundError(f"{path}: window='file' is only for DICOM files")
