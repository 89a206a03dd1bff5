"""Frozen image–text encoders for the semantic reward.

An encoder turns images and texts into L2-normalised embeddings of the same width,
so that ``encode_images(x) @ encode_texts(t).T`` is a matrix of cosines::

    enc = load_encoder("path/to/clip_dir")         # transformers CLIP / SigLIP / ours
    enc = load_encoder("open_clip:local-dir:/m")    # an open_clip model on disk
    enc = load_encoder("open_clip:hf-hub:microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224")  # online

Implementations

* :class:`HFEncoder` – any transformers model with ``get_image_features`` /
  ``get_text_features`` (CLIP, SigLIP, SigLIP2, our own dual encoder trained by
  ``medground semantic fit``), loaded from a local directory with its tokenizer and
  image processor.
* :class:`OpenClipEncoder` – an open_clip model (``local-dir:`` path, or ``hf-hub:`` id
  when online; this is how BiomedCLIP is loaded).

Both run under ``torch.inference_mode`` in batches of ``batch_size`` and return float32
CPU tensors.  Any other object with the same two methods works wherever an encoder is
expected (see :class:`Encoder`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import torch

from ..errors import MedgroundError


@runtime_checkable
class Encoder(Protocol):
    """What the semantic reward needs from an encoder."""

    def encode_images(self, images: Sequence) -> torch.Tensor:
        """PIL images -> (N, D) float32 tensor, rows of unit L2 norm."""

    def encode_texts(self, texts: Sequence[str]) -> torch.Tensor:
        """Strings -> (N, D) float32 tensor, rows of unit L2 norm."""


def _device(device: str | torch.device | None) -> torch.device:
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _features(out) -> torch.Tensor:
    """transformers 5 returns a ModelOutput whose ``pooler_output`` holds the projected
    features; older versions return the tensor itself."""
    if isinstance(out, torch.Tensor):
        return out
    pooled = getattr(out, "pooler_output", None)
    if pooled is None:
        pooled = out[0]
    return pooled


def _normalise(x: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.normalize(x.float(), dim=-1).cpu()


def _rgb(image):
    return image.convert("RGB") if getattr(image, "mode", "RGB") != "RGB" else image


class HFEncoder:
    """A transformers dual encoder (CLIP, SigLIP, ours) with its tokenizer and image
    processor.  Build it from objects, or with :meth:`from_pretrained` from a local
    directory written by ``save_pretrained``."""

    def __init__(self, model, tokenizer, image_processor, *, batch_size: int = 32, device=None, name: str = "hf"):
        self.device = _device(device)
        self.model = model.eval().to(self.device)
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.tokenizer = tokenizer
        self.image_processor = image_processor
        self.batch_size = int(batch_size)
        self.name = name
        self.crop_margin: float | None = None  # the crop margin it was trained with, when known
        cfg = getattr(model.config, "text_config", None)
        self.max_length = int(getattr(cfg, "max_position_embeddings", 77) or 77)
        # SigLIP was trained on texts padded to max_length; CLIP on dynamic padding.
        self.padding = "max_length" if "siglip" in str(getattr(model.config, "model_type", "")) else True

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, *, batch_size: int = 32, device=None) -> HFEncoder:
        from transformers import AutoImageProcessor, AutoModel, AutoTokenizer

        path = Path(path)
        if not (path / "config.json").is_file():
            raise MedgroundError(f"{path}: not a transformers model directory (no config.json)")
        try:
            model = AutoModel.from_pretrained(path, local_files_only=True)
            tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
            processor = AutoImageProcessor.from_pretrained(path, local_files_only=True)
        except (OSError, ValueError, KeyError) as exc:
            raise MedgroundError(f"{path}: cannot load encoder ({type(exc).__name__}: {exc})") from None
        if not (hasattr(model, "get_image_features") and hasattr(model, "get_text_features")):
            raise MedgroundError(f"{path}: {type(model).__name__} is not an image–text dual encoder")
        enc = cls(model, tokenizer, processor, batch_size=batch_size, device=device, name=str(path))
        report = path / "fit_report.json"
        if report.is_file():  # trained by `medground semantic fit`: crop like it was trained
            try:
                enc.crop_margin = float(json.loads(report.read_text())["config"]["margin"])
            except (OSError, ValueError, KeyError, TypeError):
                pass
        return enc

    @torch.inference_mode()
    def encode_images(self, images: Sequence) -> torch.Tensor:
        out = []
        for i in range(0, len(images), self.batch_size):
            chunk = [_rgb(im) for im in images[i : i + self.batch_size]]
            px = self.image_processor(images=chunk, return_tensors="pt")["pixel_values"].to(self.device)
            out.append(_normalise(_features(self.model.get_image_features(pixel_values=px))))
        return torch.cat(out) if out else torch.zeros(0, self.dim)

    @torch.inference_mode()
    def encode_texts(self, texts: Sequence[str]) -> torch.Tensor:
        out = []
        for i in range(0, len(texts), self.batch_size):
            tok = self.tokenizer(
                list(texts[i : i + self.batch_size]),
                padding=self.padding,
                truncation=True,
                max_length=self.max_length,
                return_tensors="pt",
            )
            tok = {k: v.to(self.device) for k, v in tok.items() if k in ("input_ids", "attention_mask")}
            out.append(_normalise(_features(self.model.get_text_features(**tok))))
        return torch.cat(out) if out else torch.zeros(0, self.dim)

    @property
    def dim(self) -> int:
        cfg = self.model.config
        return int(getattr(cfg, "projection_dim", None) or cfg.text_config.hidden_size)


class OpenClipEncoder:
    """An open_clip model.  ``name`` is ``local-dir:/path`` (a folder holding
    ``open_clip_config.json`` and the weights), ``hf-hub:org/repo`` (downloads; needs
    the network) or a built-in architecture name with ``pretrained=`` a weights file."""

    def __init__(self, name: str, *, pretrained: str | None = None, batch_size: int = 32, device=None):
        import open_clip

        self.device = _device(device)
        try:
            if pretrained is None and not name.startswith(("local-dir:", "hf-hub:")):
                raise MedgroundError(f"open_clip model {name!r}: give local-dir:PATH, hf-hub:ID, or pretrained=FILE")
            model, preprocess = open_clip.create_model_from_pretrained(name, pretrained=pretrained, device=self.device)
            tokenizer = open_clip.get_tokenizer(name)
        except MedgroundError:
            raise
        except Exception as exc:  # noqa: BLE001 - open_clip raises many types for a bad path / id
            raise MedgroundError(f"cannot load open_clip model {name!r}: {type(exc).__name__}: {exc}") from None
        self.model = model.eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.preprocess = preprocess
        self.tokenizer = tokenizer
        self.batch_size = int(batch_size)
        self.name = name

    @torch.inference_mode()
    def encode_images(self, images: Sequence) -> torch.Tensor:
        out = []
        for i in range(0, len(images), self.batch_size):
            x = torch.stack([self.preprocess(_rgb(im)) for im in images[i : i + self.batch_size]]).to(self.device)
            out.append(_normalise(self.model.encode_image(x)))
        return torch.cat(out) if out else torch.zeros(0, 0)

    @torch.inference_mode()
    def encode_texts(self, texts: Sequence[str]) -> torch.Tensor:
        out = []
        for i in range(0, len(texts), self.batch_size):
            tok = self.tokenizer(list(texts[i : i + self.batch_size])).to(self.device)
            out.append(_normalise(self.model.encode_text(tok)))
        return torch.cat(out) if out else torch.zeros(0, 0)


def _kind_of_dir(path: Path) -> str:
    if (path / "open_clip_config.json").is_file():
        return "open_clip"
    if (path / "config.json").is_file():
        return "hf"
    raise MedgroundError(f"{path}: no config.json (transformers) or open_clip_config.json (open_clip) found")


def load_encoder(spec, *, batch_size: int = 32, device=None) -> Encoder:
    """Build an encoder once from a spec.

    ``spec`` is an encoder object (returned as is), a local directory (transformers
    ``config.json`` or ``open_clip_config.json`` decides the kind), ``hf:PATH``,
    ``open_clip:local-dir:PATH`` / ``open_clip:PATH``, or ``open_clip:hf-hub:ORG/REPO``
    (downloads; only when online).  A bad spec raises :class:`MedgroundError`.
    """
    if spec is None or spec == "":
        raise MedgroundError("no semantic encoder given: pass a directory or spec (see `medground semantic fit`)")
    if not isinstance(spec, (str, os.PathLike)):
        if isinstance(spec, Encoder):
            return spec
        raise MedgroundError(f"not an encoder: {type(spec).__name__} lacks encode_images / encode_texts")
    s = str(spec)
    if s.startswith("open_clip:"):
        rest = s[len("open_clip:") :]
        if not rest.startswith(("local-dir:", "hf-hub:")):
            if not Path(rest).is_dir():
                raise MedgroundError(f"{rest}: open_clip model directory not found")
            rest = f"local-dir:{rest}"
        return OpenClipEncoder(rest, batch_size=batch_size, device=device)
    if s.startswith("hf:"):
        return HFEncoder.from_pretrained(s[3:], batch_size=batch_size, device=device)
    path = Path(s)
    if not path.is_dir():
        raise MedgroundError(f"{s}: encoder directory not found (hub ids need the 'open_clip:hf-hub:' prefix)")
    if _kind_of_dir(path) == "open_clip":
        return OpenClipEncoder(f"local-dir:{path}", batch_size=batch_size, device=device)
    return HFEncoder.from_pretrained(path, batch_size=batch_size, device=device)
