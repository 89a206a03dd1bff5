"""``sam2``: a transformers ``Sam2Model`` checkpoint in a local directory (SAM 2 / 2.1,
MedSAM2 converted to the transformers format), box and / or point prompts.

transformers ≥ 4.56 ships ``Sam2Model``; the separate ``sam2`` package of Meta is not
used (its checkpoints convert with transformers' ``convert_sam2_to_hf.py``).  SAM 2's
image processing differs from SAM's: the image is resized to a fixed square
(``image_size``, default 1024) without padding, prompts are scaled per axis, and the
low-resolution logits are resized straight to the original size and thresholded at 0.

>>> import tempfile
>>> from medground.models.segmenters.sam2 import save_tiny_sam2
>>> seg = HFSam2Segmenter(save_tiny_sam2(tempfile.mkdtemp()))
>>> seg.segment_image(np.zeros((40, 60), np.uint8), [[5, 5, 30, 30]]).shape
(1, 40, 60)
"""

from __future__ import annotations

import numpy as np

from ...errors import MedgroundError
from .base import CACHE_OPTION, DEVICE_OPTION, HF_CHECKPOINT_OPTION, SEGMENTERS, ImageState
from .sam import HFSamSegmenter


@SEGMENTERS.register(
    "sam2",
    description="a transformers Sam2Model folder (SAM 2 / MedSAM2), box and/or point prompts",
    options={**HF_CHECKPOINT_OPTION, **DEVICE_OPTION, **CACHE_OPTION},
)
class HFSam2Segmenter(HFSamSegmenter):
    name = "sam2"
    MODEL_TYPES = ("sam2",)

    def _load_model(self):
        import transformers

        cls = getattr(transformers, "Sam2Model", None)
        if cls is None:
            raise MedgroundError(f"segmenter 'sam2' needs transformers with Sam2Model (installed: {transformers.__version__})")
        try:
            return cls.from_pretrained(str(self.path), local_files_only=True)
        except Exception as exc:  # noqa: BLE001
            raise MedgroundError(f"{self.path}: cannot load Sam2Model ({type(exc).__name__}: {exc})") from None

    def _read_preprocessing(self, config: dict) -> None:
        super()._read_preprocessing(config)
        size = self.model.config.prompt_encoder_config.image_size
        h, w = (size, size) if isinstance(size, int) else tuple(size)
        pre = self.path / "preprocessor_config.json"
        if pre.exists():
            import json

            s = json.loads(pre.read_text(encoding="utf-8")).get("size") or {}
            h, w = int(s.get("height", h)), int(s.get("width", w))
        self.square = (int(h), int(w))

    def preprocess(self, rgb: np.ndarray):
        from PIL import Image

        h, w = self.square
        arr = np.asarray(Image.fromarray(rgb).resize((w, h), Image.Resampling.BILINEAR), np.float32) * self.rescale
        if self.normalize:
            arr = (arr - self.mean) / self.std
        return self.torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1)[None].to(self.device), (h, w)

    def _embed(self, rgb: np.ndarray):
        pixels, resized = self.preprocess(rgb)
        with self.torch.inference_mode():
            emb = self.model.get_image_embeddings(pixels)
        return {"embeddings": emb, "extra": {}, "resized": resized}

    def postprocess(self, logits, state: ImageState):
        F = self.torch.nn.functional
        x = F.interpolate(logits[:, None].float(), size=(state.height, state.width), mode="bilinear", align_corners=False)
        return (x[:, 0] > 0).cpu().numpy()


def save_tiny_sam2(folder, seed: int = 0, image_size: int = 64) -> str:
    """Write a tiny random-weight ``Sam2Model`` (≈0.1 M parameters) to ``folder``; returns it."""
    import torch
    from transformers import (
        Sam2Config,
        Sam2HieraDetConfig,
        Sam2MaskDecoderConfig,
        Sam2Model,
        Sam2PromptEncoderConfig,
        Sam2VisionConfig,
    )

    s = image_size // 4
    backbone = Sam2HieraDetConfig(hidden_size=8, num_attention_heads=1, image_size=[image_size, image_size],
                                  blocks_per_stage=[1, 2, 1, 1], embed_dim_per_stage=[8, 16, 32, 64],
                                  num_attention_heads_per_stage=[1, 1, 1, 1], window_size_per_stage=[4, 4, 4, 4],
                                  global_attention_blocks=[2], window_positional_embedding_background_size=[2, 2])
    vision = Sam2VisionConfig(backbone_config=backbone.to_dict(), backbone_channel_list=[64, 32, 16, 8],
                              backbone_feature_sizes=[[s, s], [s // 2, s // 2], [s // 4, s // 4]], fpn_hidden_size=32)
    prompt = Sam2PromptEncoderConfig(hidden_size=32, image_size=image_size, patch_size=16, mask_input_channels=4)
    decoder = Sam2MaskDecoderConfig(hidden_size=32, mlp_dim=64, num_attention_heads=2, iou_head_hidden_dim=32)
    config = Sam2Config(vision_config=vision.to_dict(), prompt_encoder_config=prompt.to_dict(),
                        mask_decoder_config=decoder.to_dict())
    torch.manual_seed(seed)
    Sam2Model(config).eval().save_pretrained(str(folder))
    return str(folder)
