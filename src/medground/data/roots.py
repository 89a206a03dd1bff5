"""Keep a dataset's files inside a root folder.

A dataset line may name any path as its ``image`` or ``mask`` (``/etc/passwd``,
``../../secrets.png``, a symlink to either).  For a person's own files on the command
line that is their business; for anything that serves files to others (the web app)
it is not.  :func:`confine` accepts a path only when it resolves — symlinks followed,
``..`` collapsed — inside ``root``; :func:`confine_sample` applies it to a sample's
image and mask.  :func:`medground.data.schema.read_jsonl` (``root=``), the dataset
folder loader, ``data validate``, ``predict``, ``segment`` and ``evaluate``
(``--root DIR``) use them.

>>> import os, tempfile
>>> root = tempfile.mkdtemp()
>>> confine(os.path.join(root, "images", "a.png"), root) == os.path.join(os.path.realpath(root), "images", "a.png")
True
>>> confine(os.path.join(root, "..", "a.png"), root)  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
medground.errors.MedgroundError: image ... lies outside the dataset root ...
"""

from __future__ import annotations

import os

from ..errors import MedgroundError


def is_inside(path: str | os.PathLike, root: str | os.PathLike) -> bool:
    """Whether ``path`` resolves (symlinks followed) to ``root`` or below it."""
    real, base = os.path.realpath(path), os.path.realpath(root)
    try:
        return os.path.commonpath([real, base]) == base
    except ValueError:  # different drives (Windows)
        return False


def confine(path: str | os.PathLike, root: str | os.PathLike, *, what: str = "image", where: str = "",
            folder: str | os.PathLike | None = None) -> str:
    """The real path of ``path`` (relative paths are taken against ``folder``, default
    ``root``) when it lies inside ``root``; otherwise :class:`MedgroundError` naming
    ``what``, the path as given and ``where`` (e.g. ``"data.jsonl:3 [id=a]"``)."""
    p = os.fspath(path)
    full = p if os.path.isabs(p) else os.path.join(os.fspath(folder if folder is not None else root), p)
    if not is_inside(full, root):
        prefix = f"{where}: " if where else ""
        raise MedgroundError(f"{prefix}{what} {p} lies outside the dataset root {root} "
                             "(paths must stay under --root, symlinks resolved)")
    return os.path.realpath(full)


def confine_sample(sample, root: str | os.PathLike, *, folder: str | os.PathLike | None = None,
                   where: str = "") -> None:
    """Check a sample's ``image`` and ``mask`` paths with :func:`confine` (the sample is
    not changed); ``folder`` is what relative paths are relative to (the JSONL's folder)."""
    confine(sample.image, root, what="image", where=where, folder=folder)
    if isinstance(sample.mask, str) and sample.mask:
        confine(sample.mask, root, what="mask", where=where, folder=folder)
