"""Resume into an output file only what made it.

``medground predict`` and ``medground segment`` append to their output and, rerun,
skip the ids already there.  That is right only when the rerun would have written the
same lines: another model, template, frame, generation length, segmenter or dataset
would leave a file that mixes two runs, or — every id being "done" — a file that
silently holds the old run's answers.  So the settings that shape the lines are stored
beside the output, in a sidecar ``NAME.meta.json`` (:func:`sidecar_path`), written
before the first line; a rerun compares them (:func:`claim_output`) and refuses, naming
every difference, unless they are the same.  A file with lines but no sidecar (written
by an older medground or another tool) is refused too.  ``--overwrite`` starts over.

>>> import tempfile, pathlib
>>> out = pathlib.Path(tempfile.mkdtemp()) / "pred.jsonl"
>>> claim_output(out, {"model": "a", "max_new_tokens": 64})     # a new file: the sidecar is written
>>> sidecar_path(out).name
'pred.meta.json'
>>> _ = out.write_text('{"id": "x"}\\n')
>>> claim_output(out, {"model": "a", "max_new_tokens": 64})     # same settings: resume
>>> claim_output(out, {"model": "b", "max_new_tokens": 64})     # doctest: +ELLIPSIS
Traceback (most recent call last):
...
medground.errors.MedgroundError: .../pred.jsonl was written with other settings: model: "a" -> "b"; ...
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from .config.compare import differences
from .errors import MedgroundError
from .fileio import atomic_json

SIDECAR_SUFFIX = ".meta.json"
#: What a refusal suggests.
RESTART_HINT = "pass --overwrite to start over, or write to another --out"


def sidecar_path(out: str | os.PathLike) -> Path:
    """``pred.jsonl`` -> ``pred.meta.json`` (beside it)."""
    out = Path(out)
    return out.with_name(out.stem + SIDECAR_SUFFIX)


def has_lines(path: str | os.PathLike) -> bool:
    """Whether ``path`` exists and holds a non-blank line."""
    p = Path(path)
    if not p.is_file():
        return False
    with p.open("rb") as fh:
        return any(line.strip() for line in fh)


def claim_output(out: str | os.PathLike, settings: dict[str, Any], *, hint: str = RESTART_HINT) -> None:
    """Make ``out`` the output of ``settings`` (JSON-serialisable): when it already holds
    lines, its sidecar must record the same settings (else :class:`MedgroundError`
    naming each difference, or the missing sidecar, and ``hint``); then the sidecar is
    (re)written."""
    check_resume(out, settings, hint=hint)
    atomic_json(settings, sidecar_path(out), indent=1)


def check_resume(out: str | os.PathLike, settings: dict[str, Any], *, hint: str = RESTART_HINT,
                 only_given: bool = False) -> None:
    """The check of :func:`claim_output` without writing anything; with ``only_given``
    only the keys of ``settings`` are compared (what is known before a model loads)."""
    if not has_lines(out):
        return
    stored = _read_sidecar(sidecar_path(out), out, hint)
    if only_given:
        stored = {k: v for k, v in stored.items() if k in settings}
    diffs = differences(stored, settings)
    if diffs:
        raise MedgroundError(f"{out} was written with other settings: {'; '.join(diffs)}; resuming would mix "
                             f"two runs — {hint}")


def file_digest(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes (what a dataset file is, for :func:`claim_output`)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def folder_stamp(folder: str | os.PathLike, patterns=("*.safetensors", "*.bin", "*.pt", "config.json")) -> str | None:
    """A short digest of the names, sizes and modification times of the weight files in
    ``folder`` (a checkpoint retrained in place gets another stamp; reading gigabytes
    of weights to hash them is not needed).  None when ``folder`` is not a folder."""
    p = Path(folder)
    if not p.is_dir():
        return None
    files = sorted({f for pattern in patterns for f in p.glob(pattern) if f.is_file()})
    rows = [[f.name, f.stat().st_size, f.stat().st_mtime_ns] for f in files]
    return hashlib.sha256(json.dumps(rows).encode()).hexdigest()[:16]


def _read_sidecar(side: Path, out, hint: str) -> dict[str, Any]:
    if not side.is_file():
        raise MedgroundError(f"{out} holds lines but no {side.name} saying what made them (an older medground or "
                             f"another tool wrote it), so it cannot be resumed safely — {hint}")
    try:
        stored = json.loads(side.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MedgroundError(f"{side}: unreadable ({exc}) — {hint}") from None
    if not isinstance(stored, dict):
        raise MedgroundError(f"{side}: expected a JSON object — {hint}")
    return stored
