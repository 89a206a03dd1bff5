"""Gemma 3 and MedGemma (``gemma3``; MedGemma 1 / 1.5 4B are Gemma 3
checkpoints): relative 0–1000 coordinates, **y first**, JSON ``box_2d`` answers.

* **Frame** ``norm1000+yx`` on the original image: ``box_2d: [y0, x0, y1, x1]``, each
  divided by 1000 and scaled by the image's height / width — the Gemini convention
  (Gemini API docs, "Image understanding" › object detection: "box_2d ... [ymin, xmin,
  ymax, xmax] ... normalized to 0-1000"), which MedGemma 1.5's CXR anatomy localization
  notebook (Google-Health/medgemma, notebooks/cxr_anatomy_localization_with_hugging_face.ipynb,
  listed in notebooks/README.md under "New with MedGemma 1.5") follows.  That notebook is
  not in the stored snapshot of the repository (commit ff57e8c), so its cells were not
  read line by line here; the convention is the one the issue's survey quotes from it
  and the Gemini documentation states.  ``Gemma3ImageProcessor`` resizes to a square
  (896 px; ``do_resize`` with ``{"height", "width"}``, no aspect-ratio padding and
  ``do_pan_and_scan`` off by default), so coordinates relative to the model's input
  are relative to the original image.  Points follow the same order (``[y, x]``).
* **Native answer** a fenced JSON list ``[{"box_2d": [y0, x0, y1, x1], "label": ...}]``.
* **Chat template** Gemma's: ``<bos><start_of_turn>user\\n…<end_of_turn>\\n<start_of_turn>model\\n``;
  there is no system role — a system prompt is prepended to the first user turn; an
  image is ``<start_of_image>``, which ``Gemma3Processor`` expands to
  ``\\n\\n<start_of_image>`` + ``mm_tokens_per_image`` x ``<image_soft_token>`` +
  ``<end_of_image>\\n\\n``.
* **TRL** Gemma 3 attends bidirectionally within an image and needs ``token_type_ids``
  (1 on image tokens) when training; the processor returns them and ``GRPOTrainer`` /
  ``SFTTrainer`` forward them (a run without them fails in the model, not silently).

>>> FAMILY.frame().name
'norm1000+yx'
>>> NATIVE.teacher("left effusion", [100, 200, 300, 400])  # a box_2d already in [y0, x0, y1, x1]
'```json\\n[{"box_2d": [100, 200, 300, 400], "label": "left effusion"}]\\n```'
"""

from __future__ import annotations

from . import Family, Tokens, fixed_side, json_objects, native_template, register, text_config

IMAGE_TOKENS = {"boi_token": "<start_of_image>", "eoi_token": "<end_of_image>", "image_token": "<image_soft_token>"}
CHAT_TEMPLATE = (
    "{{- bos_token -}}"
    "{%- if messages[0]['role'] == 'system' -%}"
    "{%- if messages[0]['content'] is string -%}{%- set prefix = messages[0]['content'] + '\\n\\n' -%}"
    "{%- else -%}{%- set prefix = messages[0]['content'][0]['text'] + '\\n\\n' -%}{%- endif -%}"
    "{%- set loop_messages = messages[1:] -%}"
    "{%- else -%}{%- set prefix = '' -%}{%- set loop_messages = messages -%}{%- endif -%}"
    "{%- for message in loop_messages -%}"
    "{%- set role = 'model' if message['role'] == 'assistant' else message['role'] -%}"
    "{{- '<start_of_turn>' + role + '\\n' + (prefix if loop.first else '') -}}"
    "{%- if message['content'] is string -%}{{- message['content'] | trim -}}"
    "{%- else -%}{%- for item in message['content'] -%}"
    "{%- if item['type'] == 'image' or 'image' in item -%}{{- '<start_of_image>' -}}"
    "{%- elif 'text' in item and item['text'] -%}{{- item['text'] | trim -}}{%- endif -%}"
    "{%- endfor -%}{%- endif -%}"
    "{{- '<end_of_turn>\\n' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<start_of_turn>model\\n' -}}{%- endif -%}"
)
TOKENS = Tokens(
    special=("<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>", *IMAGE_TOKENS.values()),
    eos="<end_of_turn>", pad="<pad>", bos="<bos>", stop=("<eos>",), chat_template=CHAT_TEMPLATE,
    attributes=IMAGE_TOKENS,
)


def _write(label: str, boxes, points=None) -> str:
    return json_objects("box_2d", label, boxes)


NATIVE = native_template(
    "gemma3",
    'Locate the {query}. Output a JSON list of objects, each with "box_2d" as [y0, x0, y1, x1] normalized to '
    '0-1000 and "label".',
    _write, "Gemma 3 / MedGemma (Gemini convention): JSON box_2d [y0, x0, y1, x1] in 0-1000.",
)


def build_tiny(tokenizer, cfg):
    """``(Gemma3Processor, Gemma3Config, Gemma3ForConditionalGeneration)``: a SigLIP tower on a
    square of ``sqrt(max_pixels)`` px (a multiple of 28), patch 14, 2x2 average pooling."""
    from transformers import (
        Gemma3Config,
        Gemma3ForConditionalGeneration,
        Gemma3ImageProcessor,
        Gemma3Processor,
    )

    side = fixed_side(cfg.max_pixels, 28)
    tokens = (side // 28) ** 2
    processor = Gemma3Processor(image_processor=Gemma3ImageProcessor(size={"height": side, "width": side}),
                                tokenizer=tokenizer, chat_template=TOKENS.chat_template, image_seq_length=tokens)
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in TOKENS.special}
    head_dim = cfg.hidden_size // cfg.num_attention_heads
    text = text_config(tokenizer, cfg, head_dim=head_dim, query_pre_attn_scalar=head_dim, sliding_window=512,
                       rope_parameters={"sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
                                        "full_attention": {"rope_type": "default", "rope_theta": 1000000.0}},
                       pad_token_id=ids["<pad>"], eos_token_id=ids["<end_of_turn>"], bos_token_id=ids["<bos>"])
    vision = dict(hidden_size=cfg.vision_hidden_size, intermediate_size=cfg.vision_intermediate_size,
                  num_hidden_layers=cfg.vision_depth, num_attention_heads=cfg.vision_heads, image_size=side,
                  patch_size=14)
    config = Gemma3Config(text_config=text, vision_config=vision, mm_tokens_per_image=tokens,
                          boi_token_index=ids["<start_of_image>"], eoi_token_index=ids["<end_of_image>"],
                          image_token_index=ids["<image_soft_token>"], tie_word_embeddings=True)
    return processor, config, Gemma3ForConditionalGeneration


FAMILY = register(Family(
    name="gemma3",
    model_types=("gemma3",),
    frame_spec="norm1000+yx",
    native_syntax='```json [{"box_2d": [y0, x0, y1, x1], "label": ...}]``` (0-1000, y first)',
    description="Gemma 3 / MedGemma: relative 0-1000, y first (Gemini box_2d [y0, x0, y1, x1]).",
    native_template=NATIVE.name,
    tokens=TOKENS,
    tiny=build_tiny,
    aliases=("medgemma", "gemma-3"),
    title="Gemma 3",
))
