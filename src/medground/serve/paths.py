"""Containment of the files a web page may open: every path stays under the folders
given on the command line.

Browse reads images and masks named *inside* a dataset or a prediction file; a field
such as ``"image": "../../etc/passwd"`` or a symbolic link out of the folder must not
make the server read (or show) a file the operator did not offer.  :func:`check_under`
resolves the path (symbolic links included) and refuses it unless it lies under one of
the allowed roots, themselves resolved.

>>> import tempfile, os
>>> root = tempfile.mkdtemp()
>>> check_under(os.path.join(root, "images", "a.png"), [root]).name
'a.png'
>>> is_under(os.path.join(root, "..", "elsewhere.png"), [root])
False
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from ..errors import MedgroundError


def resolved_roots(roots: Iterable[str | os.PathLike]) -> list[Path]:
    """The allowed folders, absolute and with symbolic links resolved (duplicates dropped)."""
    out: list[Path] = []
    for r in roots:
        p = Path(r).expanduser().resolve()
        if p not in out:
            out.append(p)
    return out


def is_under(path: str | os.PathLike, roots: Iterable[str | os.PathLike]) -> bool:
    """True when ``path``, resolved (symbolic links followed, ``..`` removed), lies in one
    of ``roots`` (also resolved) or is one of them."""
    target = Path(path).expanduser().resolve()
    return any(target == r or target.is_relative_to(r) for r in resolved_roots(roots))


def check_under(path: str | os.PathLike, roots: Iterable[str | os.PathLike], *, what: str = "file",
                where: str | None = None, resolved: bool = False) -> Path:
    """``path`` resolved, or :class:`MedgroundError` when it leaves the allowed ``roots``.

    ``what`` names the field (``"image"``, ``"mask"``) and ``where`` the place it was read
    from (``FILE:LINE [id=...]``), so the message says which line to fix.  ``resolved=True``
    says ``roots`` come from :func:`resolved_roots` already (checking many paths)."""
    roots = list(roots) if resolved else resolved_roots(roots)
    if not roots:
        raise MedgroundError(f"{where + ': ' if where else ''}no folder is open to the app; cannot read {what} {path}")
    target = Path(path).expanduser().resolve()
    if any(target == r or target.is_relative_to(r) for r in roots):
        return target
    allowed = ", ".join(str(r) for r in roots)
    raise MedgroundError(f"{where + ': ' if where else ''}{what} {path} is outside the folders the app may read "
                         f"({allowed}); pass its folder with --root")
