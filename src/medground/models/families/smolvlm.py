"""SmolVLM (``idefics3`` — SmolVLM-256M / 500M / Instruct are Idefics3 checkpoints —
and ``smolvlm``, SmolVLM2): **no native grounding**; our templates in 0–1000.

* **Native answer** none.  SmolVLM's model cards list captioning, visual question
  answering and document tasks, not localisation, and its training mixture has no
  box-output convention; users fine-tuning it to output boxes find no format to follow
  (huggingface/smollm issue #128, open).  There is no native template: use ``r1``,
  ``chain_of_box`` or ``medreasoner`` (they state the frame and SFT teaches it).
* **Frame** ``norm1000`` — our choice, not the model's: integers independent of the
  input size.  ``Idefics3ImageProcessor`` squashes the image to a square of
  ``max_image_size`` when it does not split (and splits into 512-px tiles plus a global
  view when it does), so pixel coordinates of "the image the model saw" are not one
  thing; relative coordinates are.
* **Chat template** SmolVLM's: ``<|im_start|>User:<image>…<end_of_utterance>\\nAssistant:``
  (the turn starts right after the role's colon; a system prompt is a ``System:`` turn);
  ``<image>`` is expanded by the processor to
  ``<fake_token_around_image><global-img>`` + ``image_seq_len`` x ``<image>`` +
  ``<fake_token_around_image>`` (with ``<row_i_col_j>`` tiles when splitting).
* **Processor** the SmolVLM2 processor (``SmolVLMProcessor``) needs the ``num2words``
  package; SmolVLM v1 checkpoints (``idefics3``) use ``Idefics3Processor``, which
  does not.  The tiny model is an Idefics3 (SmolVLM v1) architecture.
* **TRL** ``pixel_values`` are (batch, images, C, H, W) with a ``pixel_attention_mask``;
  ``GRPOTrainer`` forwards both.

>>> FAMILY.frame().name, FAMILY.native_template is None
('norm1000', True)
"""

from __future__ import annotations

from . import Family, Tokens, fixed_side, register, text_config

ROW_COL_TOKENS = tuple(f"<row_{i + 1}_col_{j + 1}>" for i in range(6) for j in range(6))
CHAT_TEMPLATE = (
    "<|im_start|>"
    "{%- for message in messages -%}"
    "{{- message['role'] | capitalize -}}"
    "{%- if message['content'] is string -%}{{- ': ' + message['content'] -}}"
    "{%- else -%}"
    "{%- if message['content'][0]['type'] == 'image' -%}{{- ':' -}}{%- else -%}{{- ': ' -}}{%- endif -%}"
    "{%- for item in message['content'] -%}"
    "{%- if item['type'] == 'image' or 'image' in item -%}{{- '<image>' -}}"
    "{%- elif 'text' in item and item['text'] -%}{{- item['text'] -}}{%- endif -%}"
    "{%- endfor -%}{%- endif -%}"
    "{{- '<end_of_utterance>\\n' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- 'Assistant:' -}}{%- endif -%}"
)
TOKENS = Tokens(
    special=("<|endoftext|>", "<|im_start|>", "<end_of_utterance>", "<fake_token_around_image>", "<image>",
             "<global-img>", *ROW_COL_TOKENS),
    eos="<end_of_utterance>", pad="<|endoftext|>", bos="<|im_start|>", stop=("<|endoftext|>",),
    chat_template=CHAT_TEMPLATE,
    attributes={"image_token": "<image>", "fake_image_token": "<fake_token_around_image>",
                "global_image_token": "<global-img>", "end_of_utterance_token": "<end_of_utterance>"},
)


def build_tiny(tokenizer, cfg):
    """``(Idefics3Processor, Idefics3Config, Idefics3ForConditionalGeneration)``: one square view of
    ``sqrt(max_pixels)`` px (a multiple of 28; no splitting), patch 14, pixel shuffle 2."""
    from transformers import Idefics3Config, Idefics3ForConditionalGeneration, Idefics3ImageProcessor, Idefics3Processor

    side = fixed_side(cfg.max_pixels, 28)
    tokens = (side // 28) ** 2
    image_processor = Idefics3ImageProcessor(do_image_splitting=False, size={"longest_edge": side},
                                             max_image_size={"longest_edge": side})
    processor = Idefics3Processor(image_processor=image_processor, tokenizer=tokenizer, image_seq_len=tokens,
                                  chat_template=CHAT_TEMPLATE)
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in TOKENS.special}
    text = text_config(tokenizer, cfg, model_type="llama", rms_norm_eps=1e-5,
                       rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
                       bos_token_id=ids["<|im_start|>"], eos_token_id=ids["<end_of_utterance>"],
                       pad_token_id=ids["<|endoftext|>"], tie_word_embeddings=True)
    vision = dict(hidden_size=cfg.vision_hidden_size, intermediate_size=cfg.vision_intermediate_size,
                  num_hidden_layers=cfg.vision_depth, num_attention_heads=cfg.vision_heads, image_size=side,
                  patch_size=14)
    config = Idefics3Config(vision_config=vision, text_config=text, image_token_id=ids["<image>"], scale_factor=2,
                            tie_word_embeddings=True)
    return processor, config, Idefics3ForConditionalGeneration


FAMILY = register(Family(
    name="smolvlm",
    model_types=("idefics3", "smolvlm"),
    frame_spec="norm1000",
    native_syntax="none (no native grounding): use r1 / chain_of_box / medreasoner, taught by SFT",
    description="SmolVLM (Idefics3 / SmolVLM2): no native grounding; our templates in 0-1000.",
    native_template=None,
    tokens=TOKENS,
    tiny=build_tiny,
    aliases=("smolvlm2",),
    title="SmolVLM",
))
