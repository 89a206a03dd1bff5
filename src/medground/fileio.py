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
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


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
