"""LLaVA-OneVision (``llava_onevision``): relative 0–1 coordinates of the original
image, ``[x1, y1, x2, y2]`` float answers.

* **Frame** ``norm1`` on the *original* image, not a padded square.  Checked in both
  places that could pad: ``LlavaOnevisionImageProcessor`` (transformers 5.24,
  image_processing_llava_onevision.py) pads to a square only when a sample holds several
  images (``pad_to_square``, ``need_patching`` false); a single image goes through
  "anyres": a base view resized to 384x384 without padding plus high-resolution crops
  of an aspect-preserving, centred-padded resize (``_pad_for_patching``), so no one
  padded square is "the image".  The LLaVA-OneVision team's own grounding harness,
  EvolvingLMMs-Lab/lmms-eval lmms_eval/tasks/refcoco/utils_rec.py
  (``refcoco_bbox_rec_preprocess_dataset``, commit 60e0ba9), normalises the truth by
  the original width and height and asks for "floating point numbers bounded between 0
  and 1" (``refcoco_bbox_rec_doc_to_text``).  LLaVA-1.5's VG data were relative to the
  ``expand2square`` padded image (haotian-liu/LLaVA issue #606) and its RefCOCO data
  were not (issue #822): a LLaVA-1.5-style fine-tune trained on padded boxes is
  ``--frame norm1+square``.
* **Native answer** ``[x1, y1, x2, y2]`` floats (LLaVA-1.5's grounding data carry two
  decimals, e.g. ``[0.61, 0.36, 0.92, 0.83]`` in haotian-liu/LLaVA issue #623; lmms-eval's
  ``parse_float_sequence_within`` reads the first four floats in brackets).  Teacher
  answers here carry three decimals: two cost up to 0.005 of the side per edge, an IoU
  of ~0.95 on a box a third of the image wide.
* **Chat template** ChatML (Qwen2 language model); the image placeholder ``<image>``
  comes first in the user turn, then a newline and the text; the processor expands it to
  the base view's tokens plus the unpadded crop grid (with one newline token per row).
* **TRL** ``image_sizes`` (original sizes, for unpadding) travel with ``pixel_values``
  (crops per image); ``GRPOTrainer`` splits them per sample.

>>> FAMILY.frame().name
'norm1'
>>> NATIVE.teacher("left effusion", [0.1254, 0.2, 0.5, 0.7])
'[0.125, 0.2, 0.5, 0.7]'
"""

from __future__ import annotations

import json

from . import QWEN_SPECIAL_TOKENS, Family, Tokens, fixed_side, native_template, register, text_config

CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{{- '<|im_start|>' + message['role'] + ('\\n' if message['role'] == 'assistant' else ' ') -}}"
    "{%- if message['content'] is string -%}{{- message['content'] -}}"
    "{%- else -%}"
    "{%- for item in message['content'] -%}"
    "{%- if item['type'] == 'image' or 'image' in item -%}{{- '<image>\\n' -}}{%- endif -%}"
    "{%- endfor -%}"
    "{%- for item in message['content'] -%}"
    "{%- if item['type'] == 'text' and item['text'] -%}{{- item['text'] -}}{%- endif -%}"
    "{%- endfor -%}{%- endif -%}"
    "{{- '<|im_end|>\\n' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}"
)
TOKENS = Tokens(special=(*QWEN_SPECIAL_TOKENS, "<image>", "<video>"), eos="<|im_end|>", pad="<|endoftext|>",
                bos="<|endoftext|>", stop=("<|endoftext|>",), chat_template=CHAT_TEMPLATE,
                attributes={"image_token": "<image>", "video_token": "<video>"})


def _write(label: str, boxes, points=None) -> str:
    rows = [[round(float(v), 3) for v in box] for box in boxes]
    return json.dumps(rows[0] if len(rows) == 1 else rows)  # one box bare; several (or none) as a list


NATIVE = native_template(
    "llava-onevision",
    "Bounding box coordinates are specified in the format (top-left x, top-left y, bottom-right x, bottom-right y). "
    "All values are floating point numbers bounded between 0 and 1. Please provide the bounding box coordinate of "
    "the region this sentence describes: {query}",
    _write, "LLaVA-OneVision's grounding prompt (lmms-eval refcoco bbox_rec); [x1, y1, x2, y2] floats in 0-1.",
)


def build_tiny(tokenizer, cfg):
    """``(LlavaOnevisionProcessor, LlavaOnevisionConfig, LlavaOnevisionForConditionalGeneration)``:
    a SigLIP tower on ``sqrt(max_pixels)``-px views (a multiple of 14), anyres crops up to 2x2."""
    from transformers import (
        LlavaOnevisionConfig,
        LlavaOnevisionForConditionalGeneration,
        LlavaOnevisionImageProcessor,
        LlavaOnevisionProcessor,
        LlavaOnevisionVideoProcessor,
    )

    side = fixed_side(cfg.max_pixels, 14)
    pinpoints = [[side, side], [side, 2 * side], [2 * side, side], [2 * side, 2 * side]]
    size = {"height": side, "width": side}
    processor = LlavaOnevisionProcessor(
        image_processor=LlavaOnevisionImageProcessor(size=size, image_grid_pinpoints=pinpoints),
        tokenizer=tokenizer, video_processor=LlavaOnevisionVideoProcessor(size=size),
        num_image_tokens=(side // 14) ** 2, vision_feature_select_strategy="full", chat_template=CHAT_TEMPLATE,
    )
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in TOKENS.special}
    text = text_config(tokenizer, cfg, model_type="qwen2", rms_norm_eps=1e-6,
                       rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
                       bos_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|im_end|>"],
                       pad_token_id=ids["<|endoftext|>"], tie_word_embeddings=True)
    vision = dict(model_type="siglip_vision_model", hidden_size=cfg.vision_hidden_size,
                  intermediate_size=cfg.vision_intermediate_size, num_hidden_layers=cfg.vision_depth,
                  num_attention_heads=cfg.vision_heads, image_size=side, patch_size=14)
    config = LlavaOnevisionConfig(vision_config=vision, text_config=text, image_token_index=ids["<image>"],
                                  video_token_index=ids["<video>"], image_grid_pinpoints=pinpoints,
                                  vision_feature_select_strategy="full", vision_feature_layer=-1,
                                  tie_word_embeddings=True)
    return processor, config, LlavaOnevisionForConditionalGeneration


FAMILY = register(Family(
    name="llava-onevision",
    model_types=("llava_onevision",),
    frame_spec="norm1",
    native_syntax="[x1, y1, x2, y2] floats in 0-1 (original image)",
    description="LLaVA-OneVision: relative 0-1 floats of the original image (not a padded square).",
    native_template=NATIVE.name,
    tokens=TOKENS,
    tiny=build_tiny,
    image_factor=14,
    aliases=("llava-ov",),
    title="LLaVA-OneVision",
))
