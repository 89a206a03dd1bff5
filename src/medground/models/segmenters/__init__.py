"""Segmenters: box / key-point prompts -> masks, with a per-image embedding cache.

>>> sorted(SEGMENTERS)
['litemedsam', 'sam', 'sam2', 'watershed']
>>> get_segmenter("watershed").name
'watershed'

``get_segmenter(name, **options)`` builds one by name; see each module for its options
(``checkpoint`` for ``sam`` / ``sam2``, ``device`` for the neural ones).
"""

from __future__ import annotations

from importlib import import_module

from ...errors import MedgroundError
from .base import PROMPT_KINDS, ImageState, Prompts, Segmenter, StateCache, image_array, image_key, prepare_prompts

#: name -> (module, class); modules import torch / transformers only when used.
SEGMENTERS: dict[str, tuple[str, str]] = {
    "watershed": ("watershed", "WatershedSegmenter"),
    "litemedsam": ("litemedsam", "LiteMedSAMSegmenter"),
    "sam": ("sam", "HFSamSegmenter"),
    "sam2": ("sam2", "HFSam2Segmenter"),
}
SEGMENTER_NAMES = tuple(SEGMENTERS)


def get_segmenter(name: str | Segmenter, **options) -> Segmenter:
    """A segmenter by registry name (``watershed``, ``litemedsam``, ``sam``, ``sam2``);
    a :class:`Segmenter` instance is returned as is."""
    if isinstance(name, Segmenter):
        return name
    key = str(name).strip().lower()
    if key not in SEGMENTERS:
        raise MedgroundError(f"unknown segmenter {name!r}; choose one of {', '.join(SEGMENTERS)}")
    module, cls = SEGMENTERS[key]
    factory = getattr(import_module(f"{__name__}.{module}"), cls)
    try:
        return factory(**options)
    except TypeError as exc:
        raise MedgroundError(f"segmenter {key!r}: bad option(s): {exc}") from None


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
