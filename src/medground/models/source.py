"""Where a ``--model`` argument points: a local checkpoint folder or a Hugging Face hub id.

A typo such as ``models/tinyy`` must not be sent to huggingface.co (where it spends
half a minute retrying before failing).  The rule:

* an existing folder is local (it must hold ``config.json`` or ``adapter_config.json``,
  and its weights must be complete: :mod:`medground.models.checkpoints`);
* an argument that *looks like a path* and does not exist is "model directory not
  found", at once, with close matches: it starts with ``.``, ``/`` or ``~``, holds a
  backslash, more than one ``/`` or a trailing one, is an existing file, is not of the
  form ``namespace/name`` — or its first part is a folder here (``models/`` for
  ``models/tinyy``);
* anything else is a hub id, used only when offline mode (``HF_HUB_OFFLINE`` or
  ``TRANSFORMERS_OFFLINE``) is not set.

:meth:`ModelSource.describe` says which it is; the CLI prints it before loading.

>>> resolve_model_source("Qwen/Qwen2.5-VL-3B-Instruct", offline=False).describe()
'model: hub id Qwen/Qwen2.5-VL-3B-Instruct (not a local folder; downloaded unless cached)'
>>> resolve_model_source("/nonexistent/checkpoint", offline=False)
Traceback (most recent call last):
  ...
medground.errors.MedgroundError: /nonexistent/checkpoint: model directory not found
"""

from __future__ import annotations

import difflib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import MedgroundError
from .checkpoints import require_complete_weights

#: ``namespace/name`` as the hub spells repository ids (letters, digits, ``-``, ``_``, ``.``; at most 96 each).
HUB_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}")
OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
_TRUE = ("1", "true", "yes", "on")


@dataclass(frozen=True)
class ModelSource:
    """A resolved ``--model``: ``kind`` is ``"local"`` (``path`` a checkpoint folder) or
    ``"hub"`` (``path`` a hub id)."""

    spec: str
    kind: str
    path: str

    @property
    def local(self) -> bool:
        return self.kind == "local"

    def describe(self) -> str:
        """One line for the user: which of the two this is."""
        if self.local:
            return f"model: local folder {self.path}"
        return f"model: hub id {self.path} (not a local folder; downloaded unless cached)"


def offline_mode() -> bool:
    """Whether the user set ``HF_HUB_OFFLINE`` or ``TRANSFORMERS_OFFLINE``."""
    return any(os.environ.get(v, "").strip().lower() in _TRUE for v in OFFLINE_VARIABLES)


def looks_like_path(spec: str) -> bool:
    """Whether ``spec`` names a place on disk rather than a hub id (see the module docstring)."""
    if spec.startswith((".", "/", "~")) or "\\" in spec or spec.endswith("/") or not HUB_ID_RE.fullmatch(spec):
        return True
    return Path(spec.split("/", 1)[0]).is_dir()


def resolve_model_source(model, *, offline: bool | None = None, check_weights: bool = True) -> ModelSource:
    """Resolve ``model`` (a folder or a hub id) without loading anything; raises
    :class:`MedgroundError` for a missing or incomplete folder, or a hub id in offline
    mode.  ``offline``: default :func:`offline_mode`."""
    spec = os.fspath(model)
    if not spec.strip():
        raise MedgroundError("no model given (a checkpoint folder or a hub id)")
    p = Path(spec).expanduser()
    if p.is_dir():
        if not (p / "config.json").exists() and not (p / "adapter_config.json").exists():
            raise MedgroundError(f"{spec}: not a model checkpoint (no config.json or adapter_config.json)")
        if check_weights:
            require_complete_weights(p)
        return ModelSource(spec, "local", str(p))
    if p.exists():
        raise MedgroundError(f"{spec}: is a file; --model takes the checkpoint folder that holds it")
    if looks_like_path(spec):
        raise MedgroundError(f"{spec}: model directory not found{_close_matches(p)}")
    if offline_mode() if offline is None else offline:
        raise MedgroundError(f"{spec}: no such local directory, and HF_HUB_OFFLINE is set so hub ids cannot load")
    return ModelSource(spec, "hub", spec)


def _close_matches(p: Path) -> str:
    """``"; did you mean models/tiny?"`` from the folders beside the deepest existing parent."""
    parent = p.parent
    while not parent.is_dir() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        return ""
    try:
        names = [c.name for c in parent.iterdir() if c.is_dir()]
    except OSError:
        return ""
    wanted = p.relative_to(parent).parts[0] if p.is_relative_to(parent) else p.name
    close = difflib.get_close_matches(wanted, names, n=3, cutoff=0.7)
    return f"; did you mean {', '.join(str(parent / c) for c in close)}?" if close else ""
