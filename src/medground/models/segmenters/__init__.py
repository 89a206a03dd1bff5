"""Segmenters: box / key-point prompts -> masks, with a per-image embedding cache.

>>> sorted(SEGMENTERS)
['litemedsam', 'sam', 'sam2', 'watershed']
>>> get_segmenter("watershed").name
'watershed'
>>> get_segmenter("watershed", device="cuda").name  # watershed takes no device: ignored
'watershed'

``get_segmenter(name, **options)`` builds one by name; ``SEGMENTERS.entry(name).options``
documents each one's options (``checkpoint`` for ``sam`` / ``sam2``, ``device`` for the
neural ones).  The modules import torch / transformers only when used.
"""

from __future__ import annotations

import importlib
import pkgutil

from .base import (
    PROMPT_KINDS,
    SEGMENTERS,
    ImageState,
    Prompts,
    Segmenter,
    StateCache,
    image_array,
    image_key,
    prepare_prompts,
)

for _mod in pkgutil.iter_modules(__path__):  # each segmenter module registers itself: one file per segmenter
    if _mod.name != "base":
        importlib.import_module(f"{__name__}.{_mod.name}")

SEGMENTER_NAMES = tuple(SEGMENTERS.names())


def get_segmenter(name: str | Segmenter, **options) -> Segmenter:
    """The segmenter registered as ``name`` (``watershed``, ``litemedsam``, ``sam``,
    ``sam2``), built with ``options``; a :class:`Segmenter` instance is returned as is.

    An option given as ``None`` means the segmenter's default.  ``device`` is ignored by
    a segmenter that takes none (``watershed`` runs on the CPU), so callers pass the
    user's device whatever the segmenter; any other option a segmenter does not take,
    like an unknown name, raises :class:`~medground.errors.MedgroundError`."""
    if isinstance(name, Segmenter):
        return name
    entry = SEGMENTERS.entry(name)
    options = {k: v for k, v in options.items() if v is not None and (k != "device" or k in entry.options)}
    return SEGMENTERS.build(entry.name, **options)


__all__ = [
    "PROMPT_KINDS",
    "SEGMENTERS",
    "SEGMENTER_NAMES",
    "ImageState",
    "Prompts",
    "Segmenter",
    "StateCache",
    "get_segmenter",
    "image_array",
    "image_key",
    "prepare_prompts",
]
