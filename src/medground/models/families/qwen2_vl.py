"""Qwen2-VL (``qwen2_vl``): relative 0–1000 coordinates, corner pairs between box tokens.

* **Frame** ``norm1000``: "bounding box coordinates are normalized within [0, 1000)"
  (Qwen2-VL technical report, arXiv:2409.12191, §2.2 "Visual Grounding"; the Qwen-VL
  convention it kept, QwenLM/Qwen3-VL issue #663); relative to the original image,
  whatever ``smart_resize`` does to it.  0–1000 and 0–999 differ by 0.1 % of the side.
* **Native answer** ``<|object_ref_start|>{label}<|object_ref_end|><|box_start|>(x1,y1),(x2,y2)<|box_end|>``
  (same report and section: "(X_topleft, Y_topleft), (X_bottomright, Y_bottomright)"
  between ``<|box_start|>`` / ``<|box_end|>``, the phrase between the object-ref
  tokens).  These are *special* tokens of the Qwen2 tokenizer, so a decode with
  ``skip_special_tokens=True`` (``predict``, TRL) leaves ``label(x1,y1),(x2,y2)``;
  :func:`medground.parsing.parse_completion` reads both forms.
* **Chat template** ChatML, images as ``<|vision_start|><|image_pad|><|vision_end|>``
  (the processor repeats ``<|image_pad|>`` per merged 28-px patch, ``smart_resize``
  with factor 28 as Qwen2.5-VL); system prompts are ``system`` turns.
* **TRL** M-RoPE (``image_grid_thw``), as Qwen2.5-VL.

>>> FAMILY.frame().name
'norm1000'
>>> NATIVE.teacher("left effusion", [100, 200, 300, 400])
'<|object_ref_start|>left effusion<|object_ref_end|><|box_start|>(100,200),(300,400)<|box_end|>'
"""

from __future__ import annotations

from ...errors import MedgroundError
from . import QWEN_SPECIAL_TOKENS, QWEN_VL_TOKENS, Family, ints, native_template, register, text_config


def _write(label: str, boxes, points=None) -> str:
    if not len(boxes):
        raise MedgroundError("qwen2-vl-native: Qwen2-VL's grounding syntax has no answer for 'not in this image' "
                             "(a negative, boxes: []); train negatives with a template that has one (r1, r1_open)")
    ref = f"<|object_ref_start|>{label}<|object_ref_end|>" if label else ""
    return ref + "".join(f"<|box_start|>({x1},{y1}),({x2},{y2})<|box_end|>" for x1, y1, x2, y2 in map(ints, boxes))


NATIVE = native_template(
    "qwen2-vl", "Find <|object_ref_start|>{query}<|object_ref_end|> in the image and output its bounding box.", _write,
    "Qwen2-VL's grounding syntax: the phrase between object-ref tokens, (x1,y1),(x2,y2) in 0-1000 between box tokens.",
)


def _mrope(head_dim: int) -> list[int]:
    half = head_dim // 2  # (temporal, height, width) sections of the rotary half
    return [half - 2 * (3 * half // 8), 3 * half // 8, 3 * half // 8]


def build_tiny(tokenizer, cfg):
    """``(Qwen2VLProcessor, Qwen2VLConfig, Qwen2VLForConditionalGeneration)``: patch 14, merge 2."""
    from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration, Qwen2VLProcessor

    from .qwen2_5_vl import build_processor

    processor = build_processor(tokenizer, cfg.min_pixels, cfg.max_pixels, processor_class=Qwen2VLProcessor)
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in QWEN_SPECIAL_TOKENS}
    text = text_config(
        tokenizer, cfg, rms_norm_eps=1e-6,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0,
                         "mrope_section": _mrope(cfg.hidden_size // cfg.num_attention_heads)},
        bos_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|im_end|>"], pad_token_id=ids["<|endoftext|>"],
        tie_word_embeddings=True,
    )
    vision = dict(depth=cfg.vision_depth, embed_dim=cfg.vision_hidden_size, hidden_size=cfg.hidden_size,
                  mlp_ratio=max(1, cfg.vision_intermediate_size // cfg.vision_hidden_size), num_heads=cfg.vision_heads,
                  patch_size=14, spatial_merge_size=2, temporal_patch_size=2)
    config = Qwen2VLConfig(text_config=text, vision_config=vision, image_token_id=ids["<|image_pad|>"],
                           video_token_id=ids["<|video_pad|>"], vision_start_token_id=ids["<|vision_start|>"],
                           vision_end_token_id=ids["<|vision_end|>"], tie_word_embeddings=True)
    return processor, config, Qwen2VLForConditionalGeneration


FAMILY = register(Family(
    name="qwen2-vl",
    model_types=("qwen2_vl",),
    frame_spec="norm1000",
    native_syntax="<|object_ref_start|>label<|object_ref_end|><|box_start|>(x1,y1),(x2,y2)<|box_end|> (0-1000)",
    description="Qwen2-VL: relative 0-1000 coordinates, (x1,y1),(x2,y2) between box tokens.",
    native_template=NATIVE.name,
    tokens=QWEN_VL_TOKENS,
    tiny=build_tiny,
    image_factor=28,
    title="Qwen2-VL",
    pixel_limits=True,
))
