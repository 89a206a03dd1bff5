"""User-facing errors.

Raise :class:`MedgroundError` for bad input (missing file, malformed line, impossible
box...) with a message that names the file, line and sample id.  The CLI prints the
message on one line and exits with status 2; it never shows a traceback for these.
"""

from __future__ import annotations


class MedgroundError(Exception):
    """An error caused by the user's input, with a message meant to be read."""

    exit_code = 2


def where(path=None, line: int | None = None, sample_id=None) -> str:
    """``"file.jsonl:12 [id=abc]"`` — the location prefix used in error messages."""
    parts = []
    if path is not None:
        parts.append(f"{path}:{line}" if line is not None else str(path))
    elif line is not None:
        parts.append(f"line {line}")
    if sample_id is not None:
        parts.append(f"[id={sample_id}]")
    return " ".join(parts)
