"""MedGround-R1's semantic reward, as the paper describes it: crop the *predicted*
region from the image, embed crop and referring expression with a frozen image–text
encoder, and reward their agreement.

* ``mode="continuous"`` (default, the paper): reward = ``(cos + 1) / 2`` in [0, 1].
* ``mode="threshold"``: 1.0 when ``cos > threshold`` (default 0.0 — the released
  MedCLIP code's ``logit > 0``), else 0.0.

The encoder is built once when the reward is built (``encoder=`` a directory / spec for
:func:`medground.models.encoders.load_encoder`, or an encoder object) and reused; all
crops of one call go through ``encode_images`` in one batched call (a crop repeated
within the call — same image, same pixels — is embedded once); text embeddings are
cached by string (LRU, ``cache_size`` entries).  The released code instead scored
the *whole image* against the ground-truth text and rebuilt MedCLIP on every call.

The crop is the answer box mapped to the pixels of the forwarded ``image`` (what the
policy saw), widened by ``margin`` × its width / height on each side and clipped to
the image.  ``margin`` defaults to the one an encoder from ``medground semantic fit``
was trained with (its ``fit_report.json``), else 0.0 (the paper's plain crop).  No box, an empty crop or no image gives 0.0.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import numpy as np

from ..crops import crop_rects
from ..errors import MedgroundError
from .base import Batch, Guards, Reward
from .grounding import FRAME_OPTIONS, _frame, _guards
from .registry import register

MODES = ("continuous", "threshold")


def _pil(image):
    """The forwarded image as PIL (arrays of shape (H, W[, C]) are converted)."""
    if image is None or hasattr(image, "crop"):
        return image
    from PIL import Image

    arr = np.asarray(image)
    if arr.dtype != np.uint8:
        arr = np.clip(arr, 0, 255).astype(np.uint8)
    return Image.fromarray(arr)


class TextCache:
    """Text embeddings by string, least recently used dropped beyond ``size``."""

    def __init__(self, encoder, size: int = 4096):
        self.encoder = encoder
        self.size = int(size)
        self._cache: OrderedDict[str, object] = OrderedDict()

    def __len__(self) -> int:
        return len(self._cache)

    def get(self, texts: Sequence[str]):
        import torch

        missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
        if missing:
            emb = self.encoder.encode_texts(missing)
            for t, e in zip(missing, emb):
                self._cache[t] = e
        rows = []
        for t in texts:
            self._cache.move_to_end(t)
            rows.append(self._cache[t])
        while len(self._cache) > self.size:
            self._cache.popitem(last=False)
        return torch.stack(rows) if rows else None


@register(
    "semantic",
    description="(cos(crop of the predicted box, query) + 1) / 2 with a frozen image–text encoder (threshold mode: 0/1)",
    options={
        "encoder": "encoder directory / spec (see `medground semantic fit`) or an encoder object; built once",
        "margin": "fraction of the box's width/height added on each side of the crop (default: the margin a "
        "`semantic fit` encoder was trained with, else 0.0)",
        "mode": "continuous (default, (cos+1)/2) | threshold (1.0 when cos > threshold)",
        "threshold": "cosine threshold for mode=threshold (default 0.0, the released logit > 0)",
        "text_column": "column holding the referring expression (default query)",
        "cache_size": "text embeddings kept in the LRU cache (default 4096)",
        "batch_size": "images per encoder forward pass when encoder is a spec (default 32)",
        "device": "device for an encoder built from a spec (default: cuda if available)",
        **FRAME_OPTIONS,
        **Guards.OPTIONS,
    },
)
def semantic_reward(
    encoder=None,
    margin: float | None = None,
    mode: str = "continuous",
    threshold: float = 0.0,
    text_column: str = "query",
    cache_size: int = 4096,
    batch_size: int = 32,
    device=None,
    **options,
):
    """See the module docstring.  Logs ``cosine`` (mean over scored crops), ``cropped``
    (share of completions that gave a crop)."""
    if encoder is None:
        raise MedgroundError("reward 'semantic' needs encoder=DIR (train one with `medground semantic fit`)")
    if mode not in MODES:
        raise MedgroundError(f"semantic option mode={mode!r}: choose one of {MODES}")
    threshold = float(threshold)
    frame = _frame(options)
    guards = _guards(options)
    if isinstance(encoder, (str, bytes)) or hasattr(encoder, "__fspath__"):
        # Upward import on purpose: a spec is resolved once, here, not per call.
        from ..models.encoders import load_encoder

        encoder = load_encoder(encoder, batch_size=int(batch_size), device=device)
    elif not (hasattr(encoder, "encode_images") and hasattr(encoder, "encode_texts")):
        raise MedgroundError(f"semantic encoder {type(encoder).__name__} lacks encode_images / encode_texts")
    if margin is None:  # an encoder from `medground semantic fit` knows the margin it was trained with
        margin = getattr(encoder, "crop_margin", None) or 0.0
    margin = float(margin)
    if margin < 0:
        raise MedgroundError(f"semantic option margin must be >= 0, got {margin}")
    cache = TextCache(encoder, cache_size)
    threshold_mode = mode == "threshold"

    def score(batch: Batch):
        if "image" not in batch.columns and "images" not in batch.columns:
            raise MedgroundError("reward semantic: the dataset forwards no 'image' column to crop from")
        if text_column not in batch.columns:
            raise MedgroundError(f"reward semantic: the dataset has no {text_column!r} column")
        rewards: list[float] = [0.0] * len(batch)
        crops, where = [], []  # unique crops; per completion (index, crop index, text)
        seen: dict[tuple, int] = {}
        comp = {"cropped": [], "cosine": []}
        if guards.active:
            comp["guarded"] = []
        for i, p in enumerate(batch.parsed):
            image, text = _pil(batch.image(i)), batch.column(text_column, i)
            rect = None
            if p.boxes and image is not None and isinstance(text, str) and text.strip():
                px = batch.to_image_pixels(p.boxes[:1], i)
                blocked = None
                if guards.active:
                    gt = batch.gt_boxes(i) if "boxes" in batch.columns else np.zeros((0, 4))
                    blocked = guards.check(batch, i, p, batch.to_original(p.boxes, i), gt)
                    comp["guarded"].append(float(blocked is not None))
                if not blocked:
                    rect = crop_rects(image.size, px, margin)[0]
            comp["cropped"].append(float(rect is not None))
            if rect is not None:
                key = (id(image), rect)  # GRPO groups often repeat a box: embed each crop once
                if key not in seen:
                    seen[key] = len(crops)
                    crops.append(image.crop(rect))
                where.append((i, seen[key], text))
        if crops:
            img = encoder.encode_images(crops).float()
            txt = cache.get([t for _, _, t in where]).float()
            cos = (img[[k for _, k, _ in where]] * txt).sum(dim=-1).clamp(-1, 1).tolist()
            comp["cosine"] = cos
            for (i, _, _), c in zip(where, cos):
                rewards[i] = (1.0 if c > threshold else 0.0) if threshold_mode else (c + 1) / 2
        return rewards, comp

    reward = Reward("semantic", score, frame=frame)
    reward.encoder = encoder
    reward.text_cache = cache
    reward.margin = margin
    return reward

