"""Model families: what a policy's numbers mean, how it is asked, how it answers.

A family is one registered :class:`Family`, defined in one module of this package
(``qwen2_vl``, ``qwen2_5_vl``, ``qwen3_vl``, ``internvl``, ``gemma3``,
``llava_onevision``, ``smolvlm``), whose docstring cites where each convention comes
from.  An entry holds:

* the ``model_type`` values of ``config.json`` it covers (how :func:`family_of` and
  :func:`medground.models.policy.load_policy` recognise a checkpoint);
* its coordinate **frame** (:class:`medground.geometry.Frame`; for Qwen2.5-VL read from
  the processor's pixel limits) — the one thing that turns its numbers into original
  pixels, shared by rewards, ``predict``, ``evaluate`` and the web app through
  :func:`resolve_frame`;
* its **native template** (``<family>-native``, found by :func:`resolve_template` beside
  medground's own templates): the prompt its model card or cookbook uses and the answer
  syntax it was trained to write, which :func:`medground.parsing.parse_completion`
  reads; ``None`` when the family has no native grounding;
* how a tiny model of its architecture is built (:mod:`medground.models.tiny`): its
  special tokens, chat template and ``build_tiny(tokenizer, config)``.

Our own templates (``r1``, ``chain_of_box``, ``medreasoner``) work with every family:
they state the family's frame in the prompt and write SFT teacher answers in it.

>>> sorted(REGISTRY)
['gemma3', 'internvl', 'llava-onevision', 'qwen2-vl', 'qwen2.5-vl', 'qwen3-vl', 'smolvlm']
>>> family_of("qwen3_vl").name, family_of("gemma3").frame().name
('qwen3-vl', 'norm1000+yx')
>>> resolve_frame("internvl").name, resolve_frame("norm1").name
('norm1000', 'norm1')
>>> family_of("llava")
Traceback (most recent call last):
  ...
medground.errors.MedgroundError: unknown model type 'llava': no model family covers it. Families (model types): gemma3 (gemma3), internvl (internvl), llava-onevision (llava_onevision), qwen2-vl (qwen2_vl), qwen2.5-vl (qwen2_5_vl), qwen3-vl (qwen3_vl, qwen3_vl_moe), smolvlm (idefics3, smolvlm). Pass --family NAME to use one of them, or --frame (pixels, qwen2.5-vl, norm1, norm1000, fixed:WxH, with +yx / +square) to say what its numbers mean.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field

from ...errors import MedgroundError
from ...geometry import QWEN_FACTOR, QWEN_MAX_PIXELS, QWEN_MIN_PIXELS, Frame, as_boxes
from ...registry import Registry
from ...templates import Template, get_template

#: family name -> :class:`Family`.
REGISTRY = Registry("model family", hint="see `medground model families`")

#: Tags the grounding templates use; single (non-special) tokens in every tiny tokenizer.
TAG_TOKENS = ("<think>", "</think>", "<answer>", "</answer>")


@dataclass(frozen=True)
class Tokens:
    """What a family's tokenizer needs: its special tokens (trained as such, ids from 0),
    end-of-turn / padding / start tokens, attributes a processor reads from the
    tokenizer (``{"boi_token": "<start_of_image>"}``) and the chat template."""

    special: tuple[str, ...]
    eos: str
    pad: str
    chat_template: str
    bos: str | None = None
    stop: tuple[str, ...] = ()  # generation stops at eos and these
    attributes: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Family:
    """One model family (see the module docstring).

    ``frame_spec`` is a :meth:`Frame.parse` spec; ``"qwen2.5-vl"`` takes its pixel limits
    from the processor.  ``pixel_limits``: the processor takes ``min_pixels`` /
    ``max_pixels`` (the Qwen-VL families).  ``image_factor`` is the side (pixels) of one
    image token, which tiny models and the demo round image sizes to.  ``tiny`` builds the processor and
    model config of a tiny model: ``tiny(tokenizer, config) -> (processor, config,
    model_class)``."""

    name: str
    model_types: tuple[str, ...]
    frame_spec: str
    native_syntax: str
    description: str
    native_template: str | None = None
    tokens: Tokens | None = None
    tiny: Callable | None = field(default=None, repr=False)
    image_factor: int = QWEN_FACTOR
    pixel_limits: bool = False
    aliases: tuple[str, ...] = ()
    title: str = ""  # how the models are written ("Qwen2.5-VL"); default: the name

    def frame(self, processor=None, *, min_pixels: int | None = None, max_pixels: int | None = None) -> Frame:
        """The frame of this family's answers; for Qwen2.5-VL the processor's pixel limits
        (or ``min_pixels`` / ``max_pixels``) define the resized image it answers in."""
        if self.frame_spec != "qwen2.5-vl":
            return Frame.parse(self.frame_spec)
        factor, lo, hi = processor_pixels(processor) if processor is not None else (
            QWEN_FACTOR, QWEN_MIN_PIXELS, QWEN_MAX_PIXELS)
        return Frame("qwen2.5-vl", factor=factor, min_pixels=int(min_pixels or lo), max_pixels=int(max_pixels or hi))


def register(family: Family) -> Family:
    """Register ``family`` under its name, its model types and aliases (``--family qwen3_vl``
    works); its model types must be new.  Returns it."""
    for other in REGISTRY.entries():
        clash = set(other.target.model_types) & set(family.model_types)
        if other.name != family.name and clash:
            raise ValueError(f"model type(s) {sorted(clash)} of {family.name} already belong to {other.name}")
    names = [a for a in (*family.model_types, *family.aliases) if a.strip().lower() != family.name.strip().lower()]
    return REGISTRY.register(family.name, family, description=family.description, aliases=tuple(names))


def get_family(name: str | Family) -> Family:
    """The family called ``name`` (a :class:`Family` is returned as is); an unknown name
    raises :class:`MedgroundError` with close matches."""
    return name if isinstance(name, Family) else REGISTRY.get(name)


def families() -> list[Family]:
    """Every registered family, sorted by name."""
    return [e.target for e in REGISTRY.entries()]


def family_of(model_type: str, *, required: bool = True) -> Family | None:
    """The family covering ``config.json``'s ``model_type``; an unknown one raises
    :class:`MedgroundError` (one line listing the families and the ``--family`` /
    ``--frame`` options) unless ``required=False`` (then None)."""
    for fam in families():
        if model_type in fam.model_types:
            return fam
    if not required:
        return None
    raise MedgroundError(unknown_model_type(model_type))


def unknown_model_type(model_type: str) -> str:
    """The one-line message for a checkpoint no family covers."""
    listing = ", ".join(f"{f.name} ({', '.join(f.model_types)})" for f in families())
    return (f"unknown model type {model_type!r}: no model family covers it. Families (model types): {listing}. "
            f"Pass --family NAME to use one of them, or --frame ({', '.join(Frame.KINDS[:4])}, fixed:WxH, "
            "with +yx / +square) to say what its numbers mean.")


def resolve_frame(spec: Frame | Family | str, processor=None, *, min_pixels: int | None = None,
                  max_pixels: int | None = None) -> Frame:
    """A :class:`Frame` from a frame, a family, a frame spec (``"norm1000+yx"``) or a family
    name (``"gemma3"``) — one entry point for everything that maps a family's answers.

    A spec is read as a frame first, then as a family name (``"qwen2.5-vl"`` is both and
    means the same).  For the Qwen2.5-VL frame, ``processor`` or ``min_pixels`` /
    ``max_pixels`` give the resized image's limits.  Raises :class:`MedgroundError`."""
    if isinstance(spec, Family):
        return spec.frame(processor, min_pixels=min_pixels, max_pixels=max_pixels)
    if isinstance(spec, Frame):
        return spec
    text = str(spec or "").strip()
    try:
        frame = Frame.parse(text)
    except ValueError as exc:
        if text.lower() in REGISTRY:
            return REGISTRY.get(text).frame(processor, min_pixels=min_pixels, max_pixels=max_pixels)
        names = ", ".join(REGISTRY.names())
        raise MedgroundError(f"{text!r} is neither a coordinate frame ({exc}) nor a model family ({names})") from None
    if frame.kind == "qwen2.5-vl" and (processor is not None or min_pixels or max_pixels):
        limits = processor_pixels(processor) if processor is not None else (frame.factor, frame.min_pixels,
                                                                            frame.max_pixels)
        return Frame("qwen2.5-vl", factor=limits[0], min_pixels=int(min_pixels or limits[1]),
                     max_pixels=int(max_pixels or limits[2]), order=frame.order, square=frame.square)
    return frame


def processor_pixels(processor) -> tuple[int, int, int]:
    """``(factor, min_pixels, max_pixels)`` of a Qwen-VL processor (either the
    ``size={"shortest_edge", "longest_edge"}`` or the older ``min_pixels`` /
    ``max_pixels`` attributes)."""
    ip = getattr(processor, "image_processor", processor)
    patch = int(getattr(ip, "patch_size", 14) or 14)
    merge = int(getattr(ip, "merge_size", 2) or 2)
    size = getattr(ip, "size", None) or {}
    get = size.get if hasattr(size, "get") else (lambda k, d=None: getattr(size, k, d))
    lo = get("shortest_edge", None) or getattr(ip, "min_pixels", None) or get("min_pixels", None)
    hi = get("longest_edge", None) or getattr(ip, "max_pixels", None) or get("max_pixels", None)
    return patch * merge, int(lo or QWEN_MIN_PIXELS), int(hi or QWEN_MAX_PIXELS)


# --------------------------------------------------------------------------- native templates


@dataclass(frozen=True)
class NativeTemplate(Template):
    """A family's own grounding prompt: the question its model card / cookbook asks (it
    names no frame: the model knows its own) and an answer in its native syntax,
    written by ``write(label, boxes, points)`` for a list of zero, one or several boxes
    (a negative, one target, a multi-target phrase) with coordinates already in the
    family's frame (and order).  A syntax that cannot say "not in this image" raises
    :class:`MedgroundError` for no box."""

    write: Callable | None = field(default=None, repr=False, compare=False)

    def render(self, query: str, frame, width: float, height: float, *, state_frame: bool = True) -> str:
        return self.question.format(query=query.strip().rstrip("."))

    def answer_json(self, box, points=None, *, digits: int = 0) -> str:
        return self.write("", [box], points)

    def answer_boxes(self, boxes, points=None, *, digits: int = 0) -> str:
        return self.write("", _box_rows(boxes), points)

    def teacher(self, query: str, box, points=None, *, region: str | None = None, context: list | None = None,
                digits: int = 0) -> str:
        return self.write(region or query.strip().rstrip("."), _box_rows(box), points)


def _box_rows(boxes) -> list[list[float]]:
    """One box, a list of boxes, or None / [] (no box) as a list of ``[x1, y1, x2, y2]``."""
    return [] if boxes is None else as_boxes(boxes).tolist()


#: ``<family>-native`` -> the family's :class:`NativeTemplate` (kept apart from
#: :mod:`medground.templates`, whose registry holds medground's own templates).
NATIVE_TEMPLATES = Registry("native template", hint="see `medground model families`")


def native_template(family: str, question: str, write: Callable, description: str) -> NativeTemplate:
    """Register the native template ``<family>-native`` and return it."""
    t = NativeTemplate(f"{family}-native", question, "", description, think=False, write=write)
    return NATIVE_TEMPLATES.register(t.name, t, description=description)


def resolve_template(template: str | Template) -> Template:
    """A prompt template by name: medground's own (:func:`medground.templates.get_template`:
    ``r1``, ``chain_of_box``, ``medreasoner``...) or a family's native one
    (``qwen3-vl-native``); a :class:`Template` is returned as is.  An unknown name raises
    :class:`MedgroundError` listing both kinds."""
    if isinstance(template, Template):
        return template
    if template in NATIVE_TEMPLATES:
        return NATIVE_TEMPLATES.get(template)
    try:
        return get_template(template)
    except MedgroundError as exc:
        raise MedgroundError(f"{exc}; or a model family's native template: {', '.join(NATIVE_TEMPLATES.names())}") \
            from None


def ints(values) -> list[int]:
    """Coordinates rounded to integers (the 0–1000 and pixel frames)."""
    return [int(round(float(v))) for v in values]


def json_objects(key: str, label: str, boxes, *, digits: int | None = None, fence: bool = True) -> str:
    """``[{key: box, "label": label}, ...]``, one object per box (``[]`` for none), as the
    Qwen / Gemma cookbooks print it (in a ```` ```json ```` fence)."""
    rows = [ints(box) if digits is None else [round(float(v), digits) for v in box] for box in boxes]
    text = json.dumps([{key: values, "label": label} for values in rows])
    return f"```json\n{text}\n```" if fence else text


# --------------------------------------------------------------------------- shared tiny-model parts

#: Qwen2 / Qwen2.5 / Qwen3 tokenizers' special tokens (same strings as the released checkpoints).
QWEN_SPECIAL_TOKENS = (
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
    "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>",
    "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>",
)


def chatml_template(image: str, video: str | None = None) -> str:
    """A Qwen-style (ChatML) chat template, string or list content, an image item
    rendered as ``image`` (and a video item as ``video``)."""
    video_part = (
        "{%- elif item['type'] == 'video' or 'video' in item -%}"
        "{{- '" + video + "' -}}" if video else ""
    )
    return (
        "{%- for message in messages -%}"
        "{{- '<|im_start|>' + message['role'] + '\\n' -}}"
        "{%- if message['content'] is string -%}{{- message['content'] -}}"
        "{%- else -%}{%- for item in message['content'] -%}"
        "{%- if item['type'] == 'image' or 'image' in item or 'image_url' in item -%}"
        "{{- '" + image + "' -}}"
        + video_part
        + "{%- elif 'text' in item -%}{{- item['text'] -}}"
        "{%- endif -%}{%- endfor -%}{%- endif -%}"
        "{{- '<|im_end|>\\n' -}}"
        "{%- endfor -%}"
        "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}"
    )


#: Qwen2-VL / Qwen2.5-VL / Qwen3-VL: images as vision tokens (the processor repeats the pad).
QWEN_VL_CHAT_TEMPLATE = chatml_template("<|vision_start|><|image_pad|><|vision_end|>",
                                        "<|vision_start|><|video_pad|><|vision_end|>")
QWEN_VL_TOKENS = Tokens(special=QWEN_SPECIAL_TOKENS, eos="<|im_end|>", pad="<|endoftext|>",
                        chat_template=QWEN_VL_CHAT_TEMPLATE, bos="<|endoftext|>", stop=("<|endoftext|>",))


def fixed_side(max_pixels: int, grid: int) -> int:
    """The side of the square input of a fixed-size vision tower: ``sqrt(max_pixels)``
    rounded down to a multiple of ``grid`` (at least one ``grid``)."""
    side = int(max_pixels ** 0.5)
    return max(grid, side - side % grid)


def text_config(tokenizer, cfg, **more) -> dict:
    """The decoder fields every tiny model shares (sizes from the tiny config)."""
    vocab = -(-len(tokenizer) // 64) * 64
    return dict(vocab_size=vocab, hidden_size=cfg.hidden_size, intermediate_size=cfg.intermediate_size,
                num_hidden_layers=cfg.num_hidden_layers, num_attention_heads=cfg.num_attention_heads,
                num_key_value_heads=cfg.num_key_value_heads, max_position_embeddings=4096, **more)


for _mod in pkgutil.iter_modules(__path__):  # each module registers its family: one file per family
    importlib.import_module(f"{__name__}.{_mod.name}")
