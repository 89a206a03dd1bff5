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
A negative sample (the ``boxes`` column forwarded and empty: the query names something
absent from the image) scores None: no crop can agree with it, and a crop resembling the
finding must not reward a false positive.

Pickling (multiprocess data loading, ``accelerate``): a reward built from an encoder
*spec* pickles the spec, not the model, and loads the encoder again, once, when it is
unpickled; a reward given an encoder *object* pickles that object.  The text cache
always pickles empty.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import numpy as np

from ..crops import crop_rects
from ..errors import MedgroundError
from ..registry import Option
from .base import FRAME_OPTIONS, GUARD_OPTIONS, Batch, GuardedReward
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
    """Text embeddings by string, least recently used dropped beyond ``size``; pickles empty."""

    def __init__(self, size: int = 4096):
        self.size = int(size)
        self._cache: OrderedDict[str, object] = OrderedDict()

    def __len__(self) -> int:
        return len(self._cache)

    def __reduce__(self):
        return type(self), (self.size,)

    def clear(self) -> None:
        self._cache.clear()

    def get(self, texts: Sequence[str], encoder):
        """``(N, D)`` embeddings of ``texts``; the missing ones in one ``encoder.encode_texts`` call."""
        import torch

        missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
        if missing:
            emb = encoder.encode_texts(missing)
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
        "encoder": Option("encoder directory / spec (see `medground semantic fit`) or an encoder object; built once",
                          changes_result=False),
        "margin": Option("fraction of the box's width/height added on each side of the crop ; None means the "
                         "margin a `semantic fit` encoder was trained with, else 0.0"),
        "mode": Option("continuous ((cos+1)/2) | threshold (1.0 when cos > threshold)"),
        "threshold": Option("cosine threshold for mode=threshold (0.0 = the released logit > 0)"),
        "text_column": Option("column holding the referring expression", changes_result=False),
        "cache_size": Option("text embeddings kept in the LRU cache"),
        "batch_size": Option("images per encoder forward pass when encoder is a spec", changes_result=False),
        "device": Option("device for an encoder built from a spec; None means cuda if available", changes_result=False),
        **FRAME_OPTIONS,
        **GUARD_OPTIONS,
    },
)
class SemanticReward(GuardedReward):
    """MedGround-R1's semantic reward: agreement of the crop of the *predicted* box with
    the referring expression under a frozen image–text encoder (see the module docstring).
    Logs ``cosine`` (mean over scored crops) and ``cropped`` (share of completions that
    gave a crop).

    Returns:
        list[float | None]: ``(cos + 1) / 2`` (or 0/1 in threshold mode) per completion; 0.0
        without a box, a crop or an image; None on a negative sample.

    Example:
        >>> import torch
        >>> from PIL import Image
        >>> class Brightness:  # a toy encoder: an image is (grey level - 0.5, 0.5); "bright" is (1, 0)
        ...     def encode_images(self, images):
        ...         grey = torch.tensor([float(np.asarray(im.convert("L")).mean()) / 255 for im in images])
        ...         return torch.nn.functional.normalize(torch.stack([grey - 0.5, torch.full_like(grey, 0.5)], 1), dim=1)
        ...     def encode_texts(self, texts):
        ...         return torch.tensor([[1.0, 0.0] if t == "bright" else [-1.0, 0.0] for t in texts])
        >>> image = Image.new("L", (20, 10)); image.paste(255, (10, 0, 20, 10))  # right half white
        >>> reward = SemanticReward(encoder=Brightness())
        >>> [round(r, 3) for r in reward(completions=["<answer>[10, 0, 20, 10]</answer>", "<answer>[0, 0, 10, 10]</answer>"],
        ...                               image=[image] * 2, query=["bright"] * 2)]
        [0.854, 0.146]
    """

    __name__ = "semantic"

    def __init__(
        self,
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
        if encoder is None:
            raise MedgroundError("reward 'semantic' needs encoder=DIR (train one with `medground semantic fit`)")
        if mode not in MODES:
            raise MedgroundError(f"semantic option mode={mode!r}: choose one of {MODES}")
        super().__init__(**options)
        self.threshold = float(threshold)
        self.mode = mode
        self.text_column = text_column
        is_spec = isinstance(encoder, str) or hasattr(encoder, "__fspath__")
        # What the encoder is rebuilt from after unpickling (None: the object itself is pickled).
        self._spec = {"spec": encoder, "batch_size": int(batch_size), "device": device} if is_spec else None
        self.encoder = _load(self._spec) if is_spec else encoder
        if not (hasattr(self.encoder, "encode_images") and hasattr(self.encoder, "encode_texts")):
            raise MedgroundError(f"semantic encoder {type(encoder).__name__} lacks encode_images / encode_texts")
        if margin is None:  # an encoder from `medground semantic fit` knows the margin it was trained with
            margin = getattr(self.encoder, "crop_margin", None) or 0.0
        self.margin = float(margin)
        if self.margin < 0:
            raise MedgroundError(f"semantic option margin must be >= 0, got {self.margin}")
        self.text_cache = TextCache(cache_size)

    def __getstate__(self):
        state = dict(self.__dict__)
        if self._spec is not None:
            state["encoder"] = None
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        if self.encoder is None:
            self.encoder = _load(self._spec)

    def score(self, batch: Batch):
        if "image" not in batch.columns and "images" not in batch.columns:
            raise MedgroundError("reward semantic: the dataset forwards no 'image' column to crop from")
        if self.text_column not in batch.columns:
            raise MedgroundError(f"reward semantic: the dataset has no {self.text_column!r} column")
        rewards: list[float | None] = [0.0] * len(batch)
        crops, where = [], []  # unique crops; per completion (index, crop index, text)
        seen: dict[tuple, int] = {}
        comp = {"cropped": [], "cosine": []}
        if self.guards.active:
            comp["guarded"] = []
        for i, p in enumerate(batch.parsed):
            if batch.is_negative(i):
                rewards[i] = None
                continue
            image, text = _pil(batch.image(i)), batch.column(self.text_column, i)
            rect = None
            if p.boxes and image is not None and isinstance(text, str) and text.strip():
                px = batch.to_image_pixels(p.boxes[:1], i)
                blocked = self.blocked(batch, i, p)
                if self.guards.active:
                    comp["guarded"].append(float(blocked is not None))
                if not blocked:
                    rect = crop_rects(image.size, px, self.margin)[0]
            comp["cropped"].append(float(rect is not None))
            if rect is not None:
                key = (id(image), rect)  # GRPO groups often repeat a box: embed each crop once
                if key not in seen:
                    seen[key] = len(crops)
                    crops.append(image.crop(rect))
                where.append((i, seen[key], text))
        if crops:
            img = self.encoder.encode_images(crops).float()
            txt = self.text_cache.get([t for _, _, t in where], self.encoder).float()
            cos = (img[[k for _, k, _ in where]] * txt).sum(dim=-1).clamp(-1, 1).tolist()
            comp["cosine"] = cos
            for (i, _, _), c in zip(where, cos):
                rewards[i] = (1.0 if c > self.threshold else 0.0) if self.mode == "threshold" else (c + 1) / 2
        return rewards, comp


def _load(spec: dict):
    """The encoder from its spec (``load_encoder``'s arguments)."""
    # Imported on use (transformers / open_clip load only for a spec); called when the
    # reward is built or unpickled, never per call.
    from ..models.encoders import load_encoder

    return load_encoder(**spec)
