"""InternVL 3 / 3.5 in transformers' native form (``internvl``,
``InternVLForConditionalGeneration``, the ``OpenGVLab/InternVL3-*-hf`` checkpoints):
relative 0–1000 coordinates, ``<ref>…</ref><box>[[x1, y1, x2, y2]]</box>`` answers.

* **Frame** ``norm1000`` on the original image: OpenGVLab/InternVL
  internvl_chat/eval/refcoco/evaluate_grounding.py:197-200 (commit 2410d1d) divides the
  answer by 1000 and multiplies by the original width / height (``output['hw']``),
  whatever tiles ``dynamic_preprocess`` cut.  (InternVL's All-Seeing data were scaled by
  999 — OpenGVLab/all-seeing issue #10 — a 0.1 % difference.)
* **Native answer** ``<ref>{label}</ref><box>[[x1, y1, x2, y2], ...]</box>`` (several
  boxes for several instances): the tokens of internvl_chat/internvl/train/constants.py:12-15,
  added as *special* tokens (internvl_chat_finetune.py:871-874, so a decode with
  ``skip_special_tokens=True`` leaves ``{label}[[x1, y1, x2, y2]]``); the evaluation's
  prompt is evaluate_grounding.py:261, its answer pattern ``\\[*\\[(.*?),(.*?),(.*?),(.*?)\\]\\]*`` :257.
* **Chat template** ChatML (Qwen2.5 language model); an image is ``<IMG_CONTEXT>\\n`` in
  the template, which ``InternVLProcessor`` expands to ``<img>`` + ``image_seq_length`` x
  ``<IMG_CONTEXT>`` per tile + ``</img>``; system prompts are ``system`` turns.
* **Processor** ``GotOcr2ImageProcessor``: 448-px tiles (InternVL3), pixel shuffle 0.5
  (256 tokens per tile).  The tiny model uses one tile (``crop_to_patches=False``);
  with tiling on, ``pixel_values`` holds several tiles per image (not tested here).
* **TRL** nothing special: ``pixel_values`` one tile per image.  The remote-code
  ``internvl_chat`` checkpoints (``trust_remote_code``) are not this family.

>>> FAMILY.frame().name
'norm1000'
>>> NATIVE.teacher("left effusion", [100, 200, 300, 400])
'<ref>left effusion</ref><box>[[100, 200, 300, 400]]</box>'
"""

from __future__ import annotations

from . import (
    QWEN_SPECIAL_TOKENS,
    Family,
    Tokens,
    chatml_template,
    fixed_side,
    ints,
    native_template,
    register,
    text_config,
)

IMAGE_TOKENS = {"start_image_token": "<img>", "end_image_token": "</img>", "context_image_token": "<IMG_CONTEXT>",
                "video_token": "<video>"}
GROUNDING_TOKENS = ("<quad>", "</quad>", "<ref>", "</ref>", "<box>", "</box>")
TOKENS = Tokens(
    special=(*QWEN_SPECIAL_TOKENS, *IMAGE_TOKENS.values(), *GROUNDING_TOKENS),
    eos="<|im_end|>", pad="<|endoftext|>", bos="<|endoftext|>", stop=("<|endoftext|>",),
    chat_template=chatml_template("<IMG_CONTEXT>\\n", "<video>\\n"), attributes=IMAGE_TOKENS,
)


def _write(label: str, boxes, points=None) -> str:
    ref = f"<ref>{label}</ref>" if label else ""
    return f"{ref}<box>{[ints(box) for box in boxes]}</box>"


NATIVE = native_template(
    "internvl", "Please provide the bounding box coordinate of the region this sentence describes: <ref>{query}</ref>",
    _write, "InternVL's grounding prompt (refcoco evaluation); <ref>...</ref><box>[[x1, y1, x2, y2]]</box> in 0-1000.",
)


def build_tiny(tokenizer, cfg):
    """``(InternVLProcessor, InternVLConfig, InternVLForConditionalGeneration)``: one square tile of
    ``sqrt(max_pixels)`` px (a multiple of 28), patch 14, pixel shuffle 0.5."""
    from transformers import (
        GotOcr2ImageProcessor,
        InternVLConfig,
        InternVLForConditionalGeneration,
        InternVLProcessor,
        InternVLVideoProcessor,
    )

    side = fixed_side(cfg.max_pixels, 28)
    tokens = (side // 28) ** 2
    size = {"height": side, "width": side}
    processor = InternVLProcessor(
        image_processor=GotOcr2ImageProcessor(size=size, crop_to_patches=False),
        tokenizer=tokenizer, video_processor=InternVLVideoProcessor(size=size), image_seq_length=tokens,
        chat_template=TOKENS.chat_template,
    )
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in TOKENS.special}
    text = text_config(tokenizer, cfg, model_type="qwen2", rms_norm_eps=1e-6,
                       rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
                       bos_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|im_end|>"],
                       pad_token_id=ids["<|endoftext|>"], tie_word_embeddings=True)
    vision = dict(hidden_size=cfg.vision_hidden_size, num_hidden_layers=cfg.vision_depth,
                  num_attention_heads=cfg.vision_heads, intermediate_size=cfg.vision_intermediate_size,
                  image_size=[side, side], patch_size=[14, 14])
    config = InternVLConfig(vision_config=vision, text_config=text, image_token_id=ids["<IMG_CONTEXT>"],
                            image_seq_length=tokens, downsample_ratio=0.5, tie_word_embeddings=True)
    return processor, config, InternVLForConditionalGeneration


FAMILY = register(Family(
    name="internvl",
    model_types=("internvl",),
    frame_spec="norm1000",
    native_syntax="<ref>label</ref><box>[[x1, y1, x2, y2]]</box> (0-1000; several boxes allowed)",
    description="InternVL 3 / 3.5 (transformers-native): relative 0-1000, <ref>...</ref><box>[[...]]</box>.",
    native_template=NATIVE.name,
    tokens=TOKENS,
    tiny=build_tiny,
    aliases=("internvl3", "internvl3.5"),
    title="InternVL",
))
