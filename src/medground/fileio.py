"""Atomic file writing: a reader never sees a half-written file.

Every writer in medground (datasets, reports, converters' outputs, masks, plots,
encoder state, predictions rewritten on resume) goes through :func:`atomic_path` —
write to a temporary sibling, flush it to disk, then ``os.replace`` it over the
target — directly or through :func:`atomic_write` / :func:`atomic_json`.

>>> import json, tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> atomic_json({"a": 1}, d / "sub" / "x.json").name
'x.json'
>>> json.loads((d / "sub" / "x.json").read_text())
{'a': 1}
>>> with atomic_path(d / "y.txt") as tmp:
...     _ = tmp.write_text("hello")
>>> (d / "y.txt").read_text(), sorted(p.name for p in d.iterdir())
('hello', ['sub', 'y.txt'])

:func:`check_output_file` / :func:`check_output_dir` refuse, before any work starts, an
output path that cannot be written as asked (a folder where a file is wanted, a file
where a folder is wanted, or below a file), naming the option:

>>> check_output_file(d / "sub", option="--out")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
medground.errors.MedgroundError: --out .../sub is a folder; give a file name (e.g. .../sub/...)
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .errors import MedgroundError


def _fsync(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some file systems do not support it; the rename is still atomic
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, fsync: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` (same folder, same suffix, so that
    writers choosing a format by suffix still work); on a clean exit it is synced and
    renamed over ``path``, on an exception it is removed and ``path`` is untouched.
    The parent folder is created."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    suffix = "".join(target.suffixes[-1:])
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=f".tmp{suffix}")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        if fsync:
            _fsync(tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write(path: str | os.PathLike, data: str | bytes, *, encoding: str = "utf-8",
                 fsync: bool = True) -> Path:
    """Write ``data`` (text or bytes) to ``path`` atomically; returns the path."""
    with atomic_path(path, fsync=fsync) as tmp:
        if isinstance(data, bytes):
            tmp.write_bytes(data)
        else:
            tmp.write_text(data, encoding=encoding)
    return Path(path)


def save_figure(fig, path: str | os.PathLike, *, dpi: int = 100) -> Path:
    """Save a matplotlib figure as PNG atomically, then close it (also on failure)."""
    import matplotlib.pyplot as plt

    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=dpi, format="png")
    finally:
        plt.close(fig)
    return Path(path)


def atomic_json(obj: Any, path: str | os.PathLike, *, indent: int | None = 2, default=None,
                sort_keys: bool = False) -> Path:
    """``obj`` as JSON (UTF-8, trailing newline) written atomically to ``path``."""
    text = json.dumps(obj, indent=indent, ensure_ascii=False, default=default, sort_keys=sort_keys)
    return atomic_write(path, text + "\n")


def check_output_file(path: str | os.PathLike, *, option: str = "--out", example: str = "out.jsonl") -> Path:
    """``path`` when a file can be written there; a :class:`MedgroundError` naming
    ``option`` when it is a folder or lies below an existing file."""
    p = Path(path)
    if p.is_dir():
        raise MedgroundError(f"{option} {p} is a folder; give a file name (e.g. {p / example})")
    _check_parents(p, option)
    return p


def check_output_dir(path: str | os.PathLike, *, option: str = "--out") -> Path:
    """``path`` when it is, or can be made, a folder; a :class:`MedgroundError` naming
    ``option`` when it is a file or lies below one."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise MedgroundError(f"{option} {p} is a file; give a folder")
    _check_parents(p, option)
    return p


def _check_parents(p: Path, option: str) -> None:
    for parent in p.parents:
        if parent.exists():
            if not parent.is_dir():
                raise MedgroundError(f"{option} {p}: {parent} is a file, not a folder")
            return
