"""``sam``: any transformers ``SamModel`` / ``SamHQModel`` checkpoint in a local directory.

MedSAM is published in this format (a transformers port of its ViT-B), as are SAM and
SAM-HQ.  Nothing is downloaded: ``checkpoint`` must be a directory holding
``config.json`` and the weights (``model.safetensors``); ``preprocessor_config.json``
is read when present for the normalisation and sizes, otherwise SAM's defaults are
used (ImageNet mean / std, longest side = the vision encoder's ``image_size``).

Pre / post-processing is SAM's: resize the longest side to ``image_size``, normalise,
zero-pad bottom / right to a square; prompts are scaled by the resize factor; the
low-resolution logits are upsampled to the padded square, cropped to the resized
image, upsampled to the original size and thresholded at 0.  A box (with or without
points) gives one mask (``multimask_output=False``); points alone give three and the
one with the highest predicted IoU is kept, as SAM's predictor recommends.

>>> import tempfile
>>> from medground.models.segmenters.sam import save_tiny_sam
>>> seg = HFSamSegmenter(save_tiny_sam(tempfile.mkdtemp()))
>>> seg.segment_image(np.zeros((40, 60), np.uint8), [[5, 5, 30, 30], [10, 0, 60, 40]]).shape
(2, 40, 60)
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ...errors import MedgroundError
from .base import (
    CACHE_OPTION,
    DEVICE_OPTION,
    HF_CHECKPOINT_OPTION,
    SEGMENTERS,
    ImageState,
    Prompts,
    Segmenter,
    prompt_groups,
    resize_longest,
)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise MedgroundError(f"{path}: unreadable JSON ({exc})") from None


def check_checkpoint_dir(checkpoint, kinds: tuple[str, ...], segmenter: str) -> tuple[Path, dict]:
    """The local checkpoint folder and its ``config.json``; clear errors otherwise."""
    if not checkpoint:
        raise MedgroundError(f"segmenter {segmenter!r} needs checkpoint=<local folder with config.json and weights>")
    path = Path(checkpoint)
    if not path.is_dir():
        raise MedgroundError(f"{path}: checkpoint folder not found (segmenter {segmenter!r} loads local folders only)")
    if not (path / "config.json").exists():
        raise MedgroundError(f"{path}: no config.json; not a transformers checkpoint folder")
    config = _read_json(path / "config.json")
    kind = config.get("model_type")
    if kind not in kinds:
        raise MedgroundError(f"{path}: model_type {kind!r} is not one of {', '.join(kinds)} (segmenter {segmenter!r})")
    return path, config


@SEGMENTERS.register(
    "sam",
    description="a transformers SamModel / SamHQModel folder (e.g. MedSAM), box and/or point prompts",
    options={**HF_CHECKPOINT_OPTION, **DEVICE_OPTION, **CACHE_OPTION},
)
class HFSamSegmenter(Segmenter):
    """transformers ``SamModel`` (``model_type: sam``) or ``SamHQModel`` (``sam_hq``)."""

    name = "sam"
    MODEL_TYPES = ("sam", "sam_hq")

    def __init__(self, checkpoint=None, device: str = "cpu", cache_size: int = 8):
        super().__init__(cache_size=cache_size)
        import torch

        self.torch = torch
        self.device = device
        self.path, config = check_checkpoint_dir(checkpoint, self.MODEL_TYPES, self.name)
        self.model_type = config["model_type"]
        self.model = self._load_model().to(device).eval()
        self._read_preprocessing(config)

    # -- loading ---------------------------------------------------------------------
    def _load_model(self):
        import transformers

        cls = transformers.SamHQModel if self.model_type == "sam_hq" else transformers.SamModel
        try:
            return cls.from_pretrained(str(self.path), local_files_only=True)
        except Exception as exc:  # noqa: BLE001 - turn any loader failure into one clear line
            raise MedgroundError(f"{self.path}: cannot load {cls.__name__} ({type(exc).__name__}: {exc})") from None

    def _read_preprocessing(self, config: dict) -> None:
        pre = self.path / "preprocessor_config.json"
        p = _read_json(pre) if pre.exists() else {}
        image_size = int(config.get("vision_config", {}).get("image_size", 1024))
        size = p.get("size") or {}
        self.longest = int(size.get("longest_edge", image_size)) if isinstance(size, dict) else int(size)
        pad = p.get("pad_size") or {"height": self.longest, "width": self.longest}
        self.pad = (int(pad.get("height", self.longest)), int(pad.get("width", self.longest)))
        self.rescale = float(p.get("rescale_factor", 1 / 255)) if p.get("do_rescale", True) else 1.0
        self.normalize = bool(p.get("do_normalize", True))
        self.mean = np.asarray(p.get("image_mean", IMAGENET_MEAN), np.float32)
        self.std = np.asarray(p.get("image_std", IMAGENET_STD), np.float32)

    # -- image side ------------------------------------------------------------------
    def preprocess(self, rgb: np.ndarray):
        """uint8 (H, W, 3) -> pixel tensor (1, 3, pad_h, pad_w) and the resized (h, w)."""
        from PIL import Image

        H, W = rgb.shape[:2]
        nw, nh = resize_longest((W, H), self.longest)
        arr = np.asarray(Image.fromarray(rgb).resize((nw, nh), Image.Resampling.BILINEAR), np.float32) * self.rescale
        if self.normalize:
            arr = (arr - self.mean) / self.std
        padded = np.zeros((*self.pad, 3), np.float32)
        padded[:nh, :nw] = arr[: self.pad[0], : self.pad[1]]
        return self.torch.from_numpy(padded).permute(2, 0, 1)[None].to(self.device), (nh, nw)

    def _embed(self, rgb: np.ndarray):
        pixels, resized = self.preprocess(rgb)
        with self.torch.inference_mode():
            emb = self.model.get_image_embeddings(pixels)
        extra = {}
        if isinstance(emb, tuple):  # SAM-HQ: (embeddings, intermediate ViT features)
            emb, extra = emb[0], {"intermediate_embeddings": emb[1]}
        return {"embeddings": emb, "extra": extra, "resized": resized}

    def coord_scale(self, state: ImageState) -> tuple[float, float]:
        """(sx, sy): original pixels -> model input pixels."""
        nh, nw = state.data["resized"]
        return nw / state.width, nh / state.height

    def postprocess(self, logits, state: ImageState):
        """(N, h, w) low-resolution logits -> bool (N, H, W) in original pixels."""
        F = self.torch.nn.functional
        nh, nw = state.data["resized"]
        x = F.interpolate(logits[:, None].float(), size=self.pad, mode="bilinear", align_corners=False)
        x = F.interpolate(x[..., :nh, :nw], size=(state.height, state.width), mode="bilinear", align_corners=False)
        return (x[:, 0] > 0).cpu().numpy()

    # -- prompts ---------------------------------------------------------------------
    def _segment(self, state: ImageState, prompts: Prompts) -> np.ndarray:
        torch = self.torch
        sx, sy = self.coord_scale(state)
        out = np.zeros((len(prompts), state.height, state.width), dtype=bool)
        for (has_box, k), idx in prompt_groups(prompts).items():
            kwargs = {}
            if has_box:
                boxes = prompts.boxes[idx] * np.array([sx, sy, sx, sy])
                kwargs["input_boxes"] = torch.as_tensor(boxes[None], dtype=torch.float32, device=self.device)
            if k:
                pts = np.stack([prompts.points[i] for i in idx]) * np.array([sx, sy])
                kwargs["input_points"] = torch.as_tensor(pts[None], dtype=torch.float32, device=self.device)
                kwargs["input_labels"] = torch.ones((1, len(idx), k), dtype=torch.int64, device=self.device)
            multimask = not has_box
            with torch.inference_mode():
                res = self._forward(state, multimask, **kwargs)
            logits = res.pred_masks[0]  # (n, m, h, w)
            if multimask:
                best = res.iou_scores[0].argmax(dim=-1)
                logits = logits[torch.arange(len(idx)), best]
            else:
                logits = logits[:, 0]
            out[idx] = self.postprocess(logits, state)
        return out

    def _forward(self, state: ImageState, multimask: bool, **kwargs):
        return self.model(
            image_embeddings=state.data["embeddings"], multimask_output=multimask, **state.data["extra"], **kwargs
        )


def save_tiny_sam(folder, seed: int = 0, image_size: int = 64, hq: bool = False) -> str:
    """Write a tiny random-weight ``SamModel`` (``hq=True``: ``SamHQModel``; ≈0.1 M
    parameters) to ``folder``, for tests and offline demos; returns the folder."""
    import torch
    import transformers as tf

    prefix = "SamHQ" if hq else "Sam"
    vision = getattr(tf, f"{prefix}VisionConfig")(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, mlp_dim=64, image_size=image_size,
        patch_size=16, output_channels=32, window_size=2, global_attn_indexes=[1], num_pos_feats=16)
    prompt = getattr(tf, f"{prefix}PromptEncoderConfig")(hidden_size=32, image_size=image_size, patch_size=16,
                                                         mask_input_channels=4)
    decoder = getattr(tf, f"{prefix}MaskDecoderConfig")(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                                        mlp_dim=64, iou_head_hidden_dim=32, **({"vit_dim": 32} if hq else {}))
    config = getattr(tf, f"{prefix}Config")(vision_config=vision.to_dict(), prompt_encoder_config=prompt.to_dict(),
                                            mask_decoder_config=decoder.to_dict())
    torch.manual_seed(seed)
    getattr(tf, f"{prefix}Model")(config).eval().save_pretrained(str(folder))
    return str(folder)
