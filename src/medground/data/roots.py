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


def resolved_roots(roots) -> list[str]:
    """One folder or several, as real paths (symlinks resolved, ``~`` expanded, duplicates
    dropped) — resolve once when checking many paths."""
    if isinstance(roots, (str, os.PathLike)):
        roots = [roots]
    out: list[str] = []
    for r in roots:
        real = os.path.realpath(os.path.expanduser(os.fspath(r)))
        if real not in out:
            out.append(real)
    return out


def is_inside(path: str | os.PathLike, root) -> bool:
    """Whether ``path`` resolves (symlinks followed) to ``root`` or below it; ``root`` may
    be one folder or several (inside any of them)."""
    real = os.path.realpath(os.path.expanduser(os.fspath(path)))
    for base in resolved_roots(root):
        try:
            if os.path.commonpath([real, base]) == base:
                return True
        except ValueError:  # different drives (Windows)
            continue
    return False


def confine(path: str | os.PathLike, root, *, what: str = "image", where: str = "",
            folder: str | os.PathLike | None = None) -> str:
    """The real path of ``path`` (relative paths are taken against ``folder``, default the
    first root) when it lies inside ``root`` (one folder or several); otherwise
    :class:`MedgroundError` naming ``what``, the path as given and ``where`` (e.g.
    ``"data.jsonl:3 [id=a]"``)."""
    roots = resolved_roots(root)
    prefix = f"{where}: " if where else ""
    if not roots:
        raise MedgroundError(f"{prefix}no folder is open; cannot read {what} {path}")
    p = os.path.expanduser(os.fspath(path))
    full = p if os.path.isabs(p) else os.path.join(os.fspath(folder) if folder is not None else roots[0], p)
    if not is_inside(full, roots):
        shown = f"the dataset root {roots[0]}" if len(roots) == 1 else "the folders " + ", ".join(roots)
        raise MedgroundError(f"{prefix}{what} {os.fspath(path)} lies outside {shown} "
                             "(paths must stay under --root, symlinks resolved)")
    return os.path.realpath(full)


def confine_sample(sample, root: str | os.PathLike, *, folder: str | os.PathLike | None = None,
                   where: str = "") -> None:
    """Check a sample's ``image`` and ``mask`` paths with :func:`confine` (the sample is
    not changed); ``folder`` is what relative paths are relative to (the JSONL's folder)."""
    confine(sample.image, root, what="image", where=where, folder=folder)
    if isinstance(sample.mask, str) and sample.mask:
        confine(sample.mask, root, what="mask", where=where, folder=folder)
