"""Tiny models built from config, for tests and the CPU demo (nothing downloaded).

:func:`build_tiny_model` writes an ordinary checkpoint directory of one model family
(:mod:`medground.models.families`; default ``qwen2.5-vl``) that the family's
``*ForConditionalGeneration.from_pretrained`` (and ``AutoModelForImageTextToText``) and
``AutoProcessor.from_pretrained`` load:

* a byte-level BPE tokenizer trained with ``tokenizers`` on the prompt templates
  rendered on every phantom query (plus teacher answers; for families other than
  Qwen2.5-VL also their native template and frame; with ``open_set`` also the open-set
  queries and the answers for zero and several targets), digits split one per token
  (coordinates), ``<think>``/``</think>``/``<answer>``/``</answer>`` as single
  (non-special) tokens, the family's special tokens and chat template;
* the family's processor with small images: Qwen-VL families get ``min_pixels`` /
  ``max_pixels`` (a 224-px image gives 64 image tokens with patch 14, merge 2: factor
  28 as in the real model); families with a fixed input size use a square of
  ``max_pixels`` pixels rounded down to their patch grid;
* the family's model with a 2-layer text model and a 2-block vision tower, randomly
  initialised from ``seed`` (same seed, same bytes);
* ``medground.json``: the default template and coordinate frame for ``predict``.

The tokenizer is left-padding (batched generation).

>>> sorted(TINY_FAMILIES)[:3]
['gemma3', 'internvl', 'llava-onevision']
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
from .families import QWEN_SPECIAL_TOKENS, QWEN_VL_CHAT_TEMPLATE, TAG_TOKENS, families, get_family

#: Qwen2.5-VL's special tokens (same strings as the released checkpoints).
SPECIAL_TOKENS = list(QWEN_SPECIAL_TOKENS)
#: Qwen-style chat template: string or list content, images as vision tokens.
CHAT_TEMPLATE = QWEN_VL_CHAT_TEMPLATE
#: The family a tiny model is by default (the demo's and the tests').
DEFAULT_FAMILY = "qwen2.5-vl"
#: Families with a tiny-model builder.
TINY_FAMILIES = tuple(f.name for f in families() if f.tiny is not None)
#: Templates the tokenizer corpus renders (a fixed list: a new template must not change the
#: bytes of an existing tiny model).
CORPUS_TEMPLATES = ("chain_of_box", "medreasoner", "medreasoner_nothink", "r1")


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
    max_pixels: int = field(default=224 * 224, metadata={
        "help": "Image processor max_pixels (families with a fixed input size: a square of this many pixels, "
                "rounded down to their patch grid)."})
    template: str = field(default="r1", metadata={"help": "Default prompt template stored in medground.json."})
    open_set: bool = field(default=False, metadata={
        "help": "Also train the tokenizer on the open-set queries and answers (negatives, multi-target phrases, "
                "the r1_open template); false keeps the tokenizer of the closed-set phantom."})

    def __post_init__(self):
        from .families import resolve_template

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
            resolve_template(self.template)
        except MedgroundError as exc:
            raise ConfigError("template", str(exc)) from None


#: Added for ``open_set``.
OPEN_SET_TEMPLATES = ("r1_open",)


def tokenizer_corpus(family=None, open_set: bool = False) -> list[str]:
    """Texts the tokenizer is trained on: every template of :data:`CORPUS_TEMPLATES`
    rendered on every phantom query in the frames a tiny model may use, teacher answers,
    digits and JSON; for a family other than Qwen2.5-VL also its native template (prompt
    and answers) and our templates in its frame.  ``open_set`` adds the multi-target
    queries, the ``r1_open`` template and teacher answers for zero and two targets (in the
    family's frame and native syntax too)."""
    from ..data.phantom import findings_bank, open_query_bank, query_bank
    from ..geometry import Frame
    from ..templates import get_template

    texts = []
    frames = [Frame("qwen2.5-vl", min_pixels=56 * 56, max_pixels=224 * 224), Frame("norm1000"), Frame("pixels")]
    sizes = [(224, 224), (256, 256), (512, 512)]
    queries = query_bank()
    templates = [get_template(name) for name in CORPUS_TEMPLATES]
    for t in templates:
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
    fam = get_family(family or DEFAULT_FAMILY)
    if fam.name != DEFAULT_FAMILY:
        texts.extend(_family_corpus(fam, queries, templates))
    if open_set:
        texts += _open_set_corpus(frames, sizes, queries + open_query_bank())
        texts += [f"<think>{f}</think>" for f in findings_bank()] + [", ".join(findings_bank())]
        if fam.name != DEFAULT_FAMILY:
            open_templates = [get_template(name) for name in CORPUS_TEMPLATES + OPEN_SET_TEMPLATES]
            texts.extend(_family_corpus(fam, open_query_bank(), open_templates, targets=2))
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


def _family_corpus(fam, queries, templates, targets: int = 1) -> list[str]:
    """The family's native prompts and answers (for one target, or also for two with
    ``targets=2``), and our templates stating its frame."""
    from .families import resolve_template

    frame = fam.frame()
    native = resolve_template(fam.native_template) if fam.native_template else None
    texts = []
    for i, q in enumerate(queries):
        w, h = (200 + 8 * (i % 7), 160 + 8 * (i % 5))
        box = [(7 * i) % 500, (13 * i) % 500, (7 * i) % 500 + 240, (13 * i) % 500 + 310]
        other = [(11 * i) % 500, (5 * i) % 500, (11 * i) % 500 + 300, (5 * i) % 500 + 220]
        if frame.kind == "norm1":
            box, other = ([round(v / 1000, 3) for v in b] for b in (box, other))
        if native is not None:
            texts += [native.render(q, frame, w, h), native.teacher(q, box)]
            if targets == 2:
                texts.append(native.teacher(q, [box, other]))
        t = templates[i % len(templates)]
        texts.append(t.render(q, frame, w, h))
    return texts


def build_tokenizer(corpus: list[str] | None = None, vocab_size: int = 1024, tokens=None):
    """A left-padding ``PreTrainedTokenizerFast`` (byte-level BPE, one token per digit)
    with the special tokens, end / pad tokens, attributes and chat template of
    ``tokens`` (a :class:`medground.models.families.Tokens`; default Qwen2.5-VL's)."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    spec = tokens or get_family(DEFAULT_FAMILY).tokens
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, min_frequency=2, special_tokens=list(spec.special), show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(corpus if corpus is not None else tokenizer_corpus(), trainer=trainer)
    tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in TAG_TOKENS])
    extra = {"bos_token": spec.bos} if spec.bos and spec.bos != spec.pad else {}
    if spec.attributes:
        extra["extra_special_tokens"] = dict(spec.attributes)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token=spec.eos, pad_token=spec.pad, unk_token=None,
        padding_side="left", model_max_length=4096, clean_up_tokenization_spaces=False, **extra,
    )
    fast.chat_template = spec.chat_template
    return fast


def build_processor(tokenizer, min_pixels: int = 56 * 56, max_pixels: int = 224 * 224):
    """A ``Qwen2_5_VLProcessor`` around ``tokenizer`` with small image sizes."""
    from .families.qwen2_5_vl import build_processor as qwen_processor

    return qwen_processor(tokenizer, min_pixels, max_pixels)


def tiny_model_config(tokenizer, cfg: TinyConfig):
    """The ``Qwen2_5_VLConfig`` of the tiny model, token ids taken from ``tokenizer``."""
    from .families.qwen2_5_vl import build_tiny

    return build_tiny(tokenizer, cfg)[1]


def _is_tiny_checkpoint(path: Path) -> bool:
    try:
        return str(json.loads((path / "medground.json").read_text()).get("kind", "")).startswith("tiny-")
    except (OSError, ValueError):
        return False


def build_tiny_model(out: str | os.PathLike, seed: int = 0, config: TinyConfig | None = None,
                     overwrite: bool = False, family: str = DEFAULT_FAMILY) -> Path:
    """Build and save a tiny model + processor of ``family`` in ``out``; returns the path.

    The directory is written to a temporary sibling and renamed into place, so a
    half-written checkpoint never appears under ``out``.  An existing tiny checkpoint
    at ``out`` is replaced; any other non-empty folder only with ``overwrite=True``.
    """
    import torch
    from transformers import GenerationConfig

    fam = get_family(family)
    if fam.tiny is None:
        raise MedgroundError(f"family {fam.name} has no tiny-model builder; choose one of {', '.join(TINY_FAMILIES)}")
    cfg = config or TinyConfig()
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise MedgroundError(f"{out}: exists and is not a folder")
    if out.exists() and any(out.iterdir()) and not overwrite and not _is_tiny_checkpoint(out):
        raise MedgroundError(f"{out}: exists, is not empty and is not a tiny checkpoint (use --overwrite to replace it)")
    corpus = tokenizer_corpus(fam.name, open_set=cfg.open_set)
    tokenizer = build_tokenizer(corpus, vocab_size=cfg.vocab_size, tokens=fam.tokens)
    processor, model_config, model_cls = fam.tiny(tokenizer, cfg)
    devices = []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        model = model_cls(model_config)
    model.eval()
    ids = tokenizer.convert_tokens_to_ids
    spec = fam.tokens
    model.generation_config = GenerationConfig(
        do_sample=False, eos_token_id=[ids(spec.eos), *(ids(t) for t in spec.stop)], pad_token_id=tokenizer.pad_token_id,
        bos_token_id=ids(spec.bos or spec.pad), max_new_tokens=64,
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.tmp"))
    os.chmod(tmp, 0o755)
    try:
        model.save_pretrained(tmp)
        processor.save_pretrained(tmp)
        meta = {"kind": f"tiny-{fam.name}", "seed": seed, "template": cfg.template, "frame": fam.frame(processor).name,
                "tiny_config": asdict(cfg)}
        (tmp / "medground.json").write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out
