"""Qwen3-VL (``qwen3_vl``, ``qwen3_vl_moe``; RadVLM-GRPO, MedMO): relative 0–1000
coordinates, JSON ``bbox_2d`` answers.

* **Frame** ``norm1000`` on the original image.  QwenLM/Qwen3-VL's grounding cookbook
  (cookbooks/2d_grounding.ipynb) converts ``bbox_2d[0] / 1000 * width`` (quoted in
  QwenLM/Qwen3-VL issue #1623) and the release notes say "relative coordinates ranging
  from 0 to 1000" (quoted in issue #1741); the official ODinW-13 evaluation maps
  ``pred / 1000 * [img_w, img_h, img_w, img_h]`` with the original size
  (evaluation/ODinW-13/run_odinw.py:240, commit 9658872).  Alibaba Cloud's API page
  and the mobile-agent cookbook say 0–999 (issues #1741, #1859: there the prompt states
  a "999x999" screen).  We divide by 1000, as the grounding cookbook and the official
  grounding evaluation do; the two readings differ by 0.1 % of the side (IoU >= 0.998
  for any box), far below what grounding metrics resolve.
* **Native answer** a fenced JSON list ``[{"bbox_2d": [x1, y1, x2, y2], "label": ...}]``;
  prompt as in evaluation/ODinW-13/dataset_utils.py:156 ("Locate ... Report bbox
  coordinates in JSON format.").
* **Chat template** ChatML with ``<|vision_start|><|image_pad|><|vision_end|>``; the
  processor (``Qwen3VLProcessor``) repeats ``<|image_pad|>`` per merged 32-px patch
  (patch 16, merge 2: ``smart_resize`` with factor 32, run_odinw.py's
  ``smart_resize(..., factor=32)``).
* **TRL** interleaved M-RoPE and DeepStack visual features; ``GRPOTrainer`` passes
  ``image_grid_thw`` and rebuilds ``mm_token_type_ids`` (the processor returns them).

>>> FAMILY.frame().name
'norm1000'
>>> NATIVE.render("left pleural effusion.", "norm1000", 640, 480)
'Locate the left pleural effusion, report bbox coordinates in JSON format.'
"""

from __future__ import annotations

from . import QWEN_SPECIAL_TOKENS, QWEN_VL_TOKENS, Family, json_objects, native_template, register, text_config


def _write(label: str, boxes, points=None) -> str:
    return json_objects("bbox_2d", label, boxes)


NATIVE = native_template(
    "qwen3-vl", "Locate the {query}, report bbox coordinates in JSON format.", _write,
    "Qwen3-VL's grounding prompt (cookbook / ODinW evaluation); JSON bbox_2d in 0-1000.",
)


def build_tiny(tokenizer, cfg):
    """``(Qwen3VLProcessor, Qwen3VLConfig, Qwen3VLForConditionalGeneration)``: patch 16, merge 2,
    DeepStack features from the first vision block."""
    from transformers import (
        Qwen2VLImageProcessor,
        Qwen3VLConfig,
        Qwen3VLForConditionalGeneration,
        Qwen3VLProcessor,
        Qwen3VLVideoProcessor,
    )

    from ...errors import MedgroundError

    if cfg.min_pixels > cfg.max_pixels:
        raise MedgroundError(f"min_pixels ({cfg.min_pixels}) must not exceed max_pixels ({cfg.max_pixels})")
    size = {"shortest_edge": cfg.min_pixels, "longest_edge": cfg.max_pixels}
    common = dict(patch_size=16, merge_size=2, temporal_patch_size=2, size=size,
                  image_mean=[0.5, 0.5, 0.5], image_std=[0.5, 0.5, 0.5])
    processor = Qwen3VLProcessor(image_processor=Qwen2VLImageProcessor(**common), tokenizer=tokenizer,
                                 video_processor=Qwen3VLVideoProcessor(**common),
                                 chat_template=QWEN_VL_TOKENS.chat_template)
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in QWEN_SPECIAL_TOKENS}
    head_dim = cfg.hidden_size // cfg.num_attention_heads
    half = head_dim // 2
    mrope = [half - 2 * (3 * half // 8), 3 * half // 8, 3 * half // 8]
    text = text_config(
        tokenizer, cfg, head_dim=head_dim, rms_norm_eps=1e-6,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": mrope,
                         "mrope_interleaved": True},
        pad_token_id=ids["<|endoftext|>"],
    )
    vision = dict(depth=cfg.vision_depth, hidden_size=cfg.vision_hidden_size,
                  intermediate_size=cfg.vision_intermediate_size, num_heads=cfg.vision_heads,
                  out_hidden_size=cfg.hidden_size, patch_size=16, spatial_merge_size=2, temporal_patch_size=2,
                  num_position_embeddings=256, deepstack_visual_indexes=[0])
    config = Qwen3VLConfig(text_config=text, vision_config=vision, image_token_id=ids["<|image_pad|>"],
                           video_token_id=ids["<|video_pad|>"], vision_start_token_id=ids["<|vision_start|>"],
                           vision_end_token_id=ids["<|vision_end|>"], tie_word_embeddings=True)
    config.text_config.bos_token_id = ids["<|endoftext|>"]
    config.text_config.eos_token_id = ids["<|im_end|>"]
    return processor, config, Qwen3VLForConditionalGeneration


FAMILY = register(Family(
    name="qwen3-vl",
    model_types=("qwen3_vl", "qwen3_vl_moe"),
    frame_spec="norm1000",
    native_syntax='```json [{"bbox_2d": [x1, y1, x2, y2], "label": ...}]``` (0-1000)',
    description="Qwen3-VL (RadVLM-GRPO, MedMO): relative 0-1000 coordinates, JSON bbox_2d.",
    native_template=NATIVE.name,
    tokens=QWEN_VL_TOKENS,
    tiny=build_tiny,
    image_factor=32,
    title="Qwen3-VL",
    pixel_limits=True,
))
