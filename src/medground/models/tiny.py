"""A tiny Qwen2.5-VL built from config, for tests and the CPU demo (nothing downloaded).

:func:`build_tiny_model` writes an ordinary checkpoint directory that
``Qwen2_5_VLForConditionalGeneration.from_pretrained`` and
``AutoProcessor.from_pretrained`` load:

* a byte-level BPE tokenizer trained with ``tokenizers`` on the prompt templates
  rendered on every phantom query (plus teacher answers), digits split one per token
  (coordinates), ``<think>``/``</think>``/``<answer>``/``</answer>`` as single
  (non-special) tokens, Qwen2.5-VL's special tokens and a Qwen-style chat template;
* a ``Qwen2VLImageProcessor`` with ``min_pixels``/``max_pixels`` small enough that a
  224-px image gives 64 image tokens (patch 14, merge 2: factor 28 as in the real
  model);
* a Qwen2.5-VL with a 2-layer text model and a 2-block vision tower, randomly
  initialised from ``seed`` (same seed, same bytes);
* ``medground.json``: the default template and coordinate frame for ``predict``.

The tokenizer is left-padding (batched generation).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..config import ConfigError, check_range
from ..errors import MedgroundError

#: Qwen2.5-VL's special tokens (same strings as the released checkpoints).
SPECIAL_TOKENS = [
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
    "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>",
    "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>",
]
#: Tags the grounding templates use; single tokens, kept when decoding.
TAG_TOKENS = ["<think>", "</think>", "<answer>", "</answer>"]

#: Qwen-style chat template: string or list content, images as vision tokens.
CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{{- '<|im_start|>' + message['role'] + '\\n' -}}"
    "{%- if message['content'] is string -%}{{- message['content'] -}}"
    "{%- else -%}{%- for item in message['content'] -%}"
    "{%- if item['type'] == 'image' or 'image' in item or 'image_url' in item -%}"
    "{{- '<|vision_start|><|image_pad|><|vision_end|>' -}}"
    "{%- elif item['type'] == 'video' or 'video' in item -%}"
    "{{- '<|vision_start|><|video_pad|><|vision_end|>' -}}"
    "{%- elif 'text' in item -%}{{- item['text'] -}}"
    "{%- endif -%}{%- endfor -%}{%- endif -%}"
    "{{- '<|im_end|>\\n' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}"
)


@dataclass
class TinyConfig:
    """Sizes of the tiny model (defaults: ~1.5 M parameters) and its default template."""

    hidden_size: int = field(default=128, metadata={"help": "Text hidden size (the vision output size follows)."})
    intermediate_size: int | None = field(default=None, metadata={
        "help": "Text MLP size.", "default_text": "2 x hidden_size"})
    num_hidden_layers: int = field(default=2, metadata={"help": "Text decoder layers.", "aliases": ["layers"]})
    num_attention_heads: int = field(default=4, metadata={"help": "Text attention heads (head dim a multiple of 8)."})
    num_key_value_heads: int = field(default=2, metadata={"help": "Text key/value heads (grouped-query attention)."})
    vision_hidden_size: int = field(default=64, metadata={"help": "Vision transformer width."})
    vision_intermediate_size: int = field(default=128, metadata={"help": "Vision MLP size."})
    vision_depth: int = field(default=2, metadata={"help": "Vision transformer blocks."})
    vision_heads: int = field(default=2, metadata={"help": "Vision attention heads."})
    vocab_size: int = field(default=1024, metadata={
        "help": "BPE vocabulary target; the embedding is rounded up to a multiple of 64."})
    min_pixels: int = field(default=56 * 56, metadata={"help": "Image processor min_pixels."})
    max_pixels: int = field(default=224 * 224, metadata={"help": "Image processor max_pixels."})
    template: str = field(default="r1", metadata={"help": "Default prompt template stored in medground.json."})
    open_set: bool = field(default=False, metadata={
        "help": "Also train the tokenizer on the open-set queries and answers (negatives, multi-target phrases, "
                "the r1_open template); false keeps the tokenizer of the closed-set phantom."})

    def __post_init__(self):
        from ..templates import get_template

        if self.intermediate_size is None:
            self.intermediate_size = 2 * self.hidden_size
        check_range(self, "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                    "num_key_value_heads", "vision_hidden_size", "vision_intermediate_size", "vision_depth",
                    "vision_heads", "vocab_size", "min_pixels", low=1)
        if self.hidden_size % self.num_attention_heads or (self.hidden_size // self.num_attention_heads) % 8:
            raise ConfigError(("hidden_size", "num_attention_heads"),
                              f"text head dim {self.hidden_size}/{self.num_attention_heads} must be a whole "
                              "multiple of 8")
        if self.num_attention_heads % self.num_key_value_heads:
            raise ConfigError(("num_attention_heads", "num_key_value_heads"),
                              f"{self.num_attention_heads} heads do not share {self.num_key_value_heads} "
                              "key/value heads evenly")
        if self.vision_hidden_size % self.vision_heads:
            raise ConfigError(("vision_hidden_size", "vision_heads"),
                              f"{self.vision_hidden_size} is not divisible by {self.vision_heads} heads")
        if self.min_pixels > self.max_pixels:
            raise ConfigError(("min_pixels", "max_pixels"), f"min_pixels ({self.min_pixels}) exceeds max_pixels "
                                                            f"({self.max_pixels})")
        try:
            get_template(self.template)
        except MedgroundError as exc:
            raise ConfigError("template", str(exc)) from None


#: The templates the closed-set tokenizer learns (a fixed list: a template added later leaves it as it is).
CORPUS_TEMPLATES = ("chain_of_box", "medreasoner", "medreasoner_nothink", "r1")
#: Added for ``open_set``.
OPEN_SET_TEMPLATES = ("r1_open",)


def tokenizer_corpus(open_set: bool = False) -> list[str]:
    """Texts the tokenizer is trained on: every template rendered on every phantom
    query in the frames a tiny model may use, teacher answers, digits and JSON.
    ``open_set`` adds the multi-target queries, the ``r1_open`` template and teacher
    answers for zero and two targets."""
    from ..data.phantom import findings_bank, open_query_bank, query_bank
    from ..geometry import Frame
    from ..templates import get_template

    texts = []
    frames = [Frame("qwen2.5-vl", min_pixels=56 * 56, max_pixels=224 * 224), Frame("norm1000"), Frame("pixels")]
    sizes = [(224, 224), (256, 256), (512, 512)]
    queries = query_bank()
    for t in map(get_template, CORPUS_TEMPLATES):
        if t.system:
            texts.append(t.system)
        for i, q in enumerate(queries):
            frame = frames[i % len(frames)]
            w, h = sizes[i % len(sizes)]
            texts.append(t.render(q, frame, w, h))
            box = [(7 * i) % 200, (13 * i) % 200, (7 * i) % 200 + 24, (13 * i) % 200 + 31]
            pts = [[box[0] + 3, box[1] + 4], [box[2] - 3, box[3] - 4]]
            texts.append(t.teacher(q, box, pts, context=[("heart", [80, 110, 160, 170])]))
    texts.append(" ".join(str(d) for d in range(10)) + " , . : ; [ ] { } \" ' ( ) - + _")
    texts.append(json.dumps({"bbox_2d": [0, 1, 2, 3], "bbox": [4, 5, 6, 7], "points_1": [8, 9], "points_2": [0, 0]}))
    if open_set:
        texts += _open_set_corpus(frames, sizes, queries + open_query_bank())
        texts += [f"<think>{f}</think>" for f in findings_bank()] + [", ".join(findings_bank())]
    return texts


def _open_set_corpus(frames, sizes, queries: list[str]) -> list[str]:
    """Prompts and teacher answers (none, one and two targets) of every template on ``queries``."""
    from ..templates import get_template

    texts = []
    for t in map(get_template, CORPUS_TEMPLATES + OPEN_SET_TEMPLATES):
        for i, q in enumerate(queries):
            w, h = sizes[i % len(sizes)]
            texts.append(t.render(q, frames[i % len(frames)], w, h))
            box = [(7 * i) % 200, (13 * i) % 200, (7 * i) % 200 + 24, (13 * i) % 200 + 31]
            other = [(11 * i) % 200, (5 * i) % 200, (11 * i) % 200 + 30, (5 * i) % 200 + 22]
            texts += [t.teacher(q, targets) for targets in ([], [box], [box, other])]
    return texts


def build_tokenizer(corpus: list[str] | None = None, vocab_size: int = 1024):
    """A left-padding ``PreTrainedTokenizerFast`` (byte-level BPE, one token per digit)."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, min_frequency=2, special_tokens=SPECIAL_TOKENS, show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(corpus if corpus is not None else tokenizer_corpus(), trainer=trainer)
    tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in TAG_TOKENS])
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>", unk_token=None,
        padding_side="left", model_max_length=4096, clean_up_tokenization_spaces=False,
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def build_processor(tokenizer, min_pixels: int = 56 * 56, max_pixels: int = 224 * 224):
    """A ``Qwen2_5_VLProcessor`` around ``tokenizer`` with small image sizes."""
    from transformers import Qwen2_5_VLProcessor, Qwen2VLImageProcessor, Qwen2VLVideoProcessor

    if min_pixels > max_pixels:
        raise MedgroundError(f"min_pixels ({min_pixels}) must not exceed max_pixels ({max_pixels})")
    image_processor = Qwen2VLImageProcessor(min_pixels=min_pixels, max_pixels=max_pixels,
                                            patch_size=14, merge_size=2, temporal_patch_size=2)
    video_processor = Qwen2VLVideoProcessor(min_pixels=min_pixels, max_pixels=max_pixels,
                                            patch_size=14, merge_size=2, temporal_patch_size=2)
    return Qwen2_5_VLProcessor(image_processor=image_processor, tokenizer=tokenizer,
                               video_processor=video_processor, chat_template=CHAT_TEMPLATE)


def tiny_model_config(tokenizer, cfg: TinyConfig):
    """The ``Qwen2_5_VLConfig`` of the tiny model, token ids taken from ``tokenizer``."""
    from transformers import Qwen2_5_VLConfig

    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
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
    return Qwen2_5_VLConfig(
        text_config=text, vision_config=vision, image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"], vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"], tie_word_embeddings=True,
    )


def _is_tiny_checkpoint(path: Path) -> bool:
    try:
        return json.loads((path / "medground.json").read_text()).get("kind") == "tiny-qwen2.5-vl"
    except (OSError, ValueError):
        return False


def build_tiny_model(out: str | os.PathLike, seed: int = 0, config: TinyConfig | None = None,
                     overwrite: bool = False) -> Path:
    """Build and save the tiny model + processor in ``out``; returns the path.

    The directory is written to a temporary sibling and renamed into place, so a
    half-written checkpoint never appears under ``out``.  An existing tiny checkpoint
    at ``out`` is replaced; any other non-empty folder only with ``overwrite=True``.
    """
    import torch
    from transformers import GenerationConfig, Qwen2_5_VLForConditionalGeneration

    cfg = config or TinyConfig()
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise MedgroundError(f"{out}: exists and is not a folder")
    if out.exists() and any(out.iterdir()) and not overwrite and not _is_tiny_checkpoint(out):
        raise MedgroundError(f"{out}: exists, is not empty and is not a tiny checkpoint (use --overwrite to replace it)")
    tokenizer = build_tokenizer(tokenizer_corpus(cfg.open_set), vocab_size=cfg.vocab_size)
    processor = build_processor(tokenizer, cfg.min_pixels, cfg.max_pixels)
    model_config = tiny_model_config(tokenizer, cfg)
    devices = []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        model = Qwen2_5_VLForConditionalGeneration(model_config)
    model.eval()
    eos = [tokenizer.convert_tokens_to_ids("<|im_end|>"), tokenizer.convert_tokens_to_ids("<|endoftext|>")]
    model.generation_config = GenerationConfig(
        do_sample=False, eos_token_id=eos, pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.convert_tokens_to_ids("<|endoftext|>"), max_new_tokens=64,
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.tmp"))
    os.chmod(tmp, 0o755)
    try:
        model.save_pretrained(tmp)
        processor.save_pretrained(tmp)
        meta = {"kind": "tiny-qwen2.5-vl", "seed": seed, "template": cfg.template, "frame": "qwen2.5-vl",
                "tiny_config": asdict(cfg)}
        (tmp / "medground.json").write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out
