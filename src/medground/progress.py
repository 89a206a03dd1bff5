"""How long jobs show progress: the one place that decides.

Every long job (convert, export, phantom, predict, segment, evaluate, semantic fit...)
makes its bar with :func:`progress`, which picks one of three modes:

* ``bar`` — on a terminal: a tqdm bar redrawn in place;
* ``lines`` — anywhere else (a log file, a pipe, CI): a plain line every
  :data:`LINE_INTERVAL` seconds and a last one at the end (a job done sooner prints
  none); never a ``\\r`` redraw;
* ``off`` — nothing.  ``--quiet`` (:func:`set_quiet`) turns every bar off, the progress
  bars of ``datasets``, ``transformers`` and ``huggingface_hub`` included.

``MEDGROUND_PROGRESS=bar|lines|off`` forces a mode.  :func:`configure_library_bars`
(called once by the command line) makes the bars of other libraries redraw at most
every :data:`LINE_INTERVAL` seconds when stderr is not a terminal.

>>> import io
>>> log = io.StringIO()
>>> for _ in progress(range(500), desc="demo", stream=log, mode="lines", interval=0):
...     pass
>>> lines = log.getvalue().splitlines()
>>> lines[0].startswith("demo:") and "500/500" in lines[-1] and "\\r" not in log.getvalue()
True
>>> progress(range(3), enabled=False).disable      # a disabled bar still iterates and updates
True
"""

from __future__ import annotations

import os
import sys
from typing import Any

#: Seconds between two progress lines when the output is not a terminal.
LINE_INTERVAL = 5.0
#: Environment variable forcing a mode (``bar``, ``lines`` or ``off``).
PROGRESS_ENV = "MEDGROUND_PROGRESS"
MODES = ("bar", "lines", "off")

#: What :func:`set_quiet` sets for the other libraries (read when they are imported).
_LIBRARY_QUIET_ENV = {"HF_DATASETS_DISABLE_PROGRESS_BARS": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1"}
_state: dict[str, Any] = {"quiet": False, "saved_env": {}}


def progress_mode(stream=None) -> str:
    """``"bar"``, ``"lines"`` or ``"off"`` for a bar written to ``stream`` (default stderr)."""
    if _state["quiet"]:
        return "off"
    forced = os.environ.get(PROGRESS_ENV, "").strip().lower()
    if forced in MODES:
        return forced
    stream = sys.stderr if stream is None else stream
    try:
        return "bar" if stream.isatty() else "lines"
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return "lines"


def progress(iterable=None, *, total: float | None = None, desc: str | None = None, unit: str = "it",
             enabled: bool = True, leave: bool = True, stream=None, mode: str | None = None,
             interval: float | None = None):
    """A tqdm bar in the mode :func:`progress_mode` picks (``mode`` forces one;
    ``enabled=False`` or quiet: a disabled bar, which still iterates, updates and closes).
    ``interval`` is the seconds between two lines in ``lines`` mode (and before the
    first: a job done sooner prints no line)."""
    mode = mode or progress_mode(stream)
    if mode not in MODES:
        raise ValueError(f"progress mode must be one of {MODES}, got {mode!r}")
    if not enabled or _state["quiet"]:
        mode = "off"
    stream = sys.stderr if stream is None else stream
    if mode == "off":
        from tqdm import tqdm

        return tqdm(iterable, total=total, desc=desc, unit=unit, disable=True)
    if mode == "bar":
        from tqdm.auto import tqdm

        return tqdm(iterable, total=total, desc=desc, unit=unit, leave=leave, file=stream, dynamic_ncols=True)
    from tqdm import tqdm

    every = LINE_INTERVAL if interval is None else float(interval)
    if total is None and iterable is not None and hasattr(iterable, "__len__"):
        total = len(iterable)
    fmt = _LINE_FORMAT if total is not None else _LINE_FORMAT_NO_TOTAL
    return tqdm(iterable, total=total, desc=desc or "progress", unit=unit, leave=True, file=LineStream(stream),
                mininterval=every, maxinterval=max(every, 10.0), delay=every, bar_format=fmt, dynamic_ncols=False)


_LINE_FORMAT = "{desc}: {n_fmt}/{total_fmt} {unit} ({percentage:.0f}%), {elapsed} elapsed, {remaining} left, {rate_fmt}"
_LINE_FORMAT_NO_TOTAL = "{desc}: {n_fmt} {unit}, {elapsed} elapsed, {rate_fmt}"


class LineStream:
    """A file for tqdm that turns its in-place redraws (``\\r`` + status) into whole
    lines, each written once (a repeat of the previous line is dropped)."""

    def __init__(self, stream):
        self.stream = stream
        self.encoding = getattr(stream, "encoding", None) or "utf-8"
        self._last = None

    def write(self, text: str) -> int:
        for piece in text.replace("\r", "\n").split("\n"):
            line = piece.rstrip()
            if line and line != self._last:
                self.stream.write(line + "\n")
                self._last = line
        return len(text)

    def flush(self) -> None:
        flush = getattr(self.stream, "flush", None)
        if flush is not None:
            flush()

    def isatty(self) -> bool:
        return False


def set_quiet(quiet: bool = True) -> None:
    """Turn every progress bar off (``--quiet``) or back on: medground's own, and those
    of ``datasets``, ``transformers`` and ``huggingface_hub`` (through their switches,
    and their environment variables for a library imported later)."""
    if quiet == _state["quiet"]:
        return
    _state["quiet"] = quiet
    if quiet:
        _state["saved_env"] = {k: os.environ.get(k) for k in _LIBRARY_QUIET_ENV}
        os.environ.update(_LIBRARY_QUIET_ENV)
    else:
        for key, value in _state["saved_env"].items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    _switch_libraries(not quiet)


def is_quiet() -> bool:
    """Whether :func:`set_quiet` turned progress off (for code that drives another
    library's bars, e.g. a trainer's ``disable_tqdm``)."""
    return bool(_state["quiet"])


def configure_library_bars(stream=None) -> None:
    """When ``stream`` (default stderr) is not a terminal, make every tqdm bar created
    from now on without its own ``mininterval`` (those of datasets, transformers, TRL)
    redraw at most every :data:`LINE_INTERVAL` seconds (tqdm reads ``TQDM_MININTERVAL``
    when it is imported; a value the user set is kept)."""
    if progress_mode(stream) != "bar":
        os.environ.setdefault("TQDM_MININTERVAL", str(LINE_INTERVAL))


#: module -> the constant it reads from :data:`_LIBRARY_QUIET_ENV` once, when imported
_FROZEN_ENV = {"datasets.utils.tqdm": "HF_DATASETS_DISABLE_PROGRESS_BARS",
               "huggingface_hub.utils.tqdm": "HF_HUB_DISABLE_PROGRESS_BARS"}


def _switch_libraries(enabled: bool) -> None:
    """The progress switches of the libraries already imported (the others read the
    environment when they are).  A library imported while quiet froze the environment
    variable into a module constant that outranks its switch; turning progress back on
    (a second command in the same process) resets that constant to its unset value."""
    if enabled:
        for module, name in _FROZEN_ENV.items():
            mod = sys.modules.get(module)
            if mod is not None and getattr(mod, name, None) is True and os.environ.get(name) is None:
                setattr(mod, name, None)
    if "datasets" in sys.modules:
        import datasets

        (datasets.enable_progress_bars if enabled else datasets.disable_progress_bars)()
    if "huggingface_hub" in sys.modules:
        from huggingface_hub import utils as hub_utils

        (hub_utils.enable_progress_bars if enabled else hub_utils.disable_progress_bars)()
    if "transformers" in sys.modules:
        from transformers.utils import logging as hf_logging

        (hf_logging.enable_progress_bar if enabled else hf_logging.disable_progress_bar)()
