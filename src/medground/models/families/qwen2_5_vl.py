"""Qwen2.5-VL (``qwen2_5_vl``; also Lingshu, MedReasoner's policy, and MedGround-R1's):
absolute pixels of the image *as its processor resized it*, JSON ``bbox_2d`` answers.

* **Frame** ``qwen2.5-vl``: pixels of the ``smart_resize``d image (sides multiples of
  28 = patch 14 x merge 2, pixel count in ``[min_pixels, max_pixels]`` of the
  processor).  QwenLM/Qwen2.5-VL README.md:26 ("accommodating absolute coordinate and
  JSON formats") and :119 (the grounding cookbook "Using absolute position
  coordinates"); cookbooks/spatial_understanding.ipynb converts answers with
  ``input_width = image_grid_thw[2] * 14`` (the resized width), not the original's.
  The frame reads ``factor, min_pixels, max_pixels`` from the checkpoint's processor
  (:func:`medground.models.families.processor_pixels`), so a changed ``max_pixels``
  changes the frame with it.
* **Native answer** a fenced JSON list ``[{"bbox_2d": [x1, y1, x2, y2], "label": ...}]``
  (cookbook prompt: "Locate the {query}, output its bbox coordinates using JSON
  format.").
* **Chat template** ChatML; the image is ``<|vision_start|><|image_pad|><|vision_end|>``
  and the processor repeats ``<|image_pad|>`` once per merged 28-px patch; a system
  prompt is an ordinary ``system`` turn.
* **TRL** M-RoPE: ``GRPOTrainer`` passes ``image_grid_thw`` and rebuilds
  ``mm_token_type_ids``; resume reloads weights through ``from_pretrained``
  (``Trainer._load_from_checkpoint`` misses Qwen2.5-VL's key conversion,
  transformers#43701; see :func:`medground.train.common.load_checkpoint_weights`).

>>> from medground.geometry import Frame
>>> FAMILY.frame() == Frame("qwen2.5-vl")
True
>>> NATIVE.teacher("left effusion", [10, 20, 30, 40])
'```json\\n[{"bbox_2d": [10, 20, 30, 40], "label": "left effusion"}]\\n```'
"""

from __future__ import annotations

from . import QWEN_SPECIAL_TOKENS, QWEN_VL_TOKENS, Family, json_objects, native_template, register


def _write(label: str, boxes, points=None) -> str:
    return json_objects("bbox_2d", label, boxes)


NATIVE = native_template(
    "qwen2.5-vl", "Locate the {query}, output its bbox coordinates using JSON format.", _write,
    "Qwen2.5-VL's grounding prompt (cookbook); JSON bbox_2d in pixels of the resized image.",
)


def build_tiny(tokenizer, cfg):
    """``(Qwen2_5_VLProcessor, Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration)``: patch 14,
    merge 2, a 2-block vision tower whose last block attends globally."""
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    processor = build_processor(tokenizer, cfg.min_pixels, cfg.max_pixels)
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in QWEN_SPECIAL_TOKENS}
    head_dim = cfg.hidden_size // cfg.num_attention_heads  # a multiple of 8 (TinyConfig checks it)
    half = head_dim // 2  # mrope sections (temporal, height, width) split the rotary half
    mrope = [half - 2 * (3 * half // 8), 3 * half // 8, 3 * half // 8]
    vocab = -(-len(tokenizer) // 64) * 64
    text = dict(
        vocab_size=vocab, hidden_size=cfg.hidden_size, intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_hidden_layers, num_attention_heads=cfg.num_attention_heads,
        num_key_value_heads=cfg.num_key_value_heads, max_position_embeddings=4096, rms_norm_eps=1e-6,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": mrope},
        bos_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|im_end|>"], pad_token_id=ids["<|endoftext|>"],
        tie_word_embeddings=True,
    )
    vision = dict(
        depth=cfg.vision_depth, hidden_size=cfg.vision_hidden_size, intermediate_size=cfg.vision_intermediate_size,
        num_heads=cfg.vision_heads, out_hidden_size=cfg.hidden_size, patch_size=14, spatial_merge_size=2,
        temporal_patch_size=2, window_size=112, fullatt_block_indexes=[cfg.vision_depth - 1],
    )
    config = Qwen2_5_VLConfig(
        text_config=text, vision_config=vision, image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"], vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"], tie_word_embeddings=True,
    )
    return processor, config, Qwen2_5_VLForConditionalGeneration


def build_processor(tokenizer, min_pixels: int = 56 * 56, max_pixels: int = 224 * 224, processor_class=None):
    """A ``Qwen2_5_VLProcessor`` (or ``processor_class``) around ``tokenizer`` with small image sizes."""
    from transformers import Qwen2_5_VLProcessor, Qwen2VLImageProcessor, Qwen2VLVideoProcessor

    from ...errors import MedgroundError

    if min_pixels > max_pixels:
        raise MedgroundError(f"min_pixels ({min_pixels}) must not exceed max_pixels ({max_pixels})")
    image_processor = Qwen2VLImageProcessor(min_pixels=min_pixels, max_pixels=max_pixels,
                                            patch_size=14, merge_size=2, temporal_patch_size=2)
    video_processor = Qwen2VLVideoProcessor(min_pixels=min_pixels, max_pixels=max_pixels,
                                            patch_size=14, merge_size=2, temporal_patch_size=2)
    cls = processor_class or Qwen2_5_VLProcessor
    return cls(image_processor=image_processor, tokenizer=tokenizer, video_processor=video_processor,
               chat_template=QWEN_VL_TOKENS.chat_template)


FAMILY = register(Family(
    name="qwen2.5-vl",
    model_types=("qwen2_5_vl",),
    frame_spec="qwen2.5-vl",
    native_syntax='```json [{"bbox_2d": [x1, y1, x2, y2], "label": ...}]``` (pixels of the resized image)',
    description="Qwen2.5-VL, Lingshu, MedReasoner: absolute pixels of the smart_resize'd image, JSON bbox_2d.",
    native_template=NATIVE.name,
    tokens=QWEN_VL_TOKENS,
    tiny=build_tiny,
    image_factor=28,
    aliases=("lingshu",),
    title="Qwen2.5-VL",
    pixel_limits=True,
))
