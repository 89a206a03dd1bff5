"""Load a policy (a vision-language checkpoint) with its processor and coordinate frame.

The frame is what the model's numbers mean (see :mod:`medground.geometry`):

* Qwen2.5-VL answers in absolute pixels of the image *as its processor resizes it*,
  so its frame is ``Frame("qwen2.5-vl", factor, min_pixels, max_pixels)`` read from
  the processor;
* Qwen2-VL and Qwen3-VL answer in 0–1000 relative coordinates (``norm1000``).

A ``medground.json`` in the checkpoint (written by ``medground model tiny`` and the
trainers) may name the ``frame`` and default ``template``; an explicit ``frame=``
argument overrides both.  The tokenizer always pads on the left (batched generation).

Only local directories load by default; a hub id is accepted when ``HF_HUB_OFFLINE``
is not set (the user asked for it and is online), and a path-looking argument that does
not exist is an error at once (:mod:`medground.models.source`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import MedgroundError
from ..geometry import QWEN_MAX_PIXELS, QWEN_MIN_PIXELS, Frame
from .source import resolve_model_source

#: model_type -> frame kind, for model families whose convention is known.
FRAME_BY_MODEL_TYPE = {
    "qwen2_5_vl": "qwen2.5-vl",
    "qwen2_vl": "norm1000",
    "qwen3_vl": "norm1000",
    "qwen3_vl_moe": "norm1000",
}
DEFAULT_TEMPLATE = "r1"
META_FILE = "medground.json"


@dataclass
class Policy:
    """A loaded policy: ``model`` (eval mode), ``processor`` (left padding), ``frame``,
    default prompt ``template`` name, where it came from and its ``medground.json``."""

    model: Any
    processor: Any
    frame: Frame
    template: str = DEFAULT_TEMPLATE
    source: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def tokenizer(self):
        return self.processor.tokenizer

    @property
    def device(self):
        return next(self.model.parameters()).device


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


def frame_for(model_type: str, processor=None, override: Frame | str | None = None) -> Frame:
    """The coordinate frame of a model family (``override`` wins when given)."""
    if override is not None:
        spec = override if isinstance(override, Frame) else str(override)
        if spec == "qwen2.5-vl" and processor is not None:
            factor, lo, hi = processor_pixels(processor)
            return Frame("qwen2.5-vl", factor=factor, min_pixels=lo, max_pixels=hi)
        try:
            return Frame.parse(spec)
        except ValueError as exc:
            raise MedgroundError(f"bad coordinate frame {override!r}: {exc}") from None
    kind = FRAME_BY_MODEL_TYPE.get(model_type)
    if kind is None:
        raise MedgroundError(
            f"unknown coordinate frame for model type {model_type!r}; pass --frame "
            f"(one of {', '.join(Frame.KINDS)}, e.g. 'norm1000' or 'fixed:640')"
        )
    if kind == "qwen2.5-vl":
        if processor is None:
            return Frame("qwen2.5-vl")
        factor, lo, hi = processor_pixels(processor)
        return Frame("qwen2.5-vl", factor=factor, min_pixels=lo, max_pixels=hi)
    return Frame(kind)


def _read_meta(path: Path) -> dict:
    f = path / META_FILE
    if not f.exists():
        return {}
    try:
        return json.loads(f.read_text())
    except json.JSONDecodeError as exc:
        raise MedgroundError(f"{f}: invalid JSON ({exc.msg} at line {exc.lineno})") from None


def _resolve_source(model: str | os.PathLike) -> tuple[str, bool]:
    """``(source, is_local)`` (see :func:`medground.models.source.resolve_model_source`): a
    missing path or incomplete weights file is an error naming it, before anything loads."""
    src = resolve_model_source(model)
    return src.path, src.local


def _pick_device(device: str | None):
    import torch

    if device in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _pick_dtype(dtype, device):
    import torch

    if dtype in (None, "", "auto"):
        if device.type == "cuda" and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    try:
        return {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
                "float16": torch.float16, "fp16": torch.float16}[str(dtype).lower()]
    except KeyError:
        raise MedgroundError(f"unknown dtype {dtype!r}; use auto, float32, bfloat16 or float16") from None


def load_processor(source: str | os.PathLike, *, min_pixels: int | None = None, max_pixels: int | None = None):
    """The checkpoint's processor with left padding (and optional pixel limits)."""
    from transformers import AutoProcessor

    try:
        processor = AutoProcessor.from_pretrained(str(source))
    except (OSError, ValueError) as exc:
        raise MedgroundError(f"{source}: cannot load the processor ({exc})") from None
    tok = getattr(processor, "tokenizer", None)
    if tok is None:
        raise MedgroundError(f"{source}: the processor has no tokenizer; is this a vision-language checkpoint?")
    tok.padding_side = "left"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    ip = getattr(processor, "image_processor", None)
    if ip is not None and (min_pixels or max_pixels):
        from transformers.image_utils import SizeDict

        size = dict(ip.size or {})
        if min_pixels:
            size["shortest_edge"] = int(min_pixels)
        if max_pixels:
            size["longest_edge"] = int(max_pixels)
        if size.get("shortest_edge", 0) > size.get("longest_edge", float("inf")):
            raise MedgroundError(f"min_pixels {size['shortest_edge']} exceeds max_pixels {size['longest_edge']}")
        ip.size = SizeDict(**size)
    return processor


def load_policy(
    model: str | os.PathLike,
    *,
    frame: Frame | str | None = None,
    template: str | None = None,
    device: str | None = None,
    dtype: Any = "auto",
    min_pixels: int | None = None,
    max_pixels: int | None = None,
    attn_implementation: str | None = None,
) -> Policy:
    """Load a checkpoint directory (or hub id when online) as a :class:`Policy`.

    A directory holding a PEFT adapter (``adapter_config.json``) loads its base model
    and merges the adapter.  ``frame`` overrides the detected coordinate frame;
    ``template`` the default prompt template; ``min_pixels``/``max_pixels`` the
    processor's limits (the frame follows them).
    """
    from transformers import AutoConfig, AutoModelForImageTextToText

    source, _ = _resolve_source(model)
    path = Path(source)
    meta = _read_meta(path) if path.is_dir() else {}
    dev = _pick_device(device)
    torch_dtype = _pick_dtype(dtype, dev)
    kwargs = {"dtype": torch_dtype}
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    adapter = path.is_dir() and (path / "adapter_config.json").exists() and not (path / "config.json").exists()
    try:
        if adapter:
            from peft import PeftModel

            base_id = json.loads((path / "adapter_config.json").read_text()).get("base_model_name_or_path")
            if not base_id:
                raise MedgroundError(f"{path}/adapter_config.json: no base_model_name_or_path")
            base_source, _ = _resolve_source(base_id)
            config = AutoConfig.from_pretrained(base_source)
            net = AutoModelForImageTextToText.from_pretrained(base_source, **kwargs)
            net = PeftModel.from_pretrained(net, source).merge_and_unload()
            proc_source = source if (path / "preprocessor_config.json").exists() or \
                (path / "processor_config.json").exists() else base_source
        else:
            config = AutoConfig.from_pretrained(source)
            net = AutoModelForImageTextToText.from_pretrained(source, **kwargs)
            proc_source = source
    except MedgroundError:
        raise
    except (OSError, ValueError, KeyError) as exc:
        raise MedgroundError(f"{source}: cannot load the model ({type(exc).__name__}: {exc})") from None
    processor = load_processor(proc_source, min_pixels=min_pixels, max_pixels=max_pixels)
    net.to(dev).eval()
    fr = frame_for(config.model_type, processor, override=frame if frame is not None else meta.get("frame"))
    name = template or meta.get("template") or DEFAULT_TEMPLATE
    from ..templates import get_template

    get_template(name)  # unknown names fail here, clearly
    return Policy(model=net, processor=processor, frame=fr, template=name, source=source, meta=meta)


def load_policy_spec(
    model: str | os.PathLike,
    *,
    frame: Frame | str | None = None,
    template: str | None = None,
    min_pixels: int | None = None,
    max_pixels: int | None = None,
) -> Policy:
    """A :class:`Policy` without its weights (``model=None``): the processor, coordinate
    frame and template :func:`load_policy` would give, for engines that load the weights
    themselves (vLLM).  A LoRA adapter directory is refused: such an engine needs a full
    checkpoint (``load_policy`` merges one; ``save_pretrained`` it)."""
    from transformers import AutoConfig

    given = Path(os.fspath(model)).expanduser()
    if given.is_dir() and (given / "adapter_config.json").exists() and not (given / "config.json").exists():
        raise MedgroundError(f"{given}: a LoRA adapter; this engine needs a full checkpoint (merge the adapter: "
                             "load_policy(...).model.save_pretrained(DIR) with the processor)")
    source, _ = _resolve_source(model)
    path = Path(source)
    meta = _read_meta(path) if path.is_dir() else {}
    try:
        config = AutoConfig.from_pretrained(source)
    except (OSError, ValueError, KeyError) as exc:
        raise MedgroundError(f"{source}: cannot load the model config ({type(exc).__name__}: {exc})") from None
    processor = load_processor(source, min_pixels=min_pixels, max_pixels=max_pixels)
    fr = frame_for(config.model_type, processor, override=frame if frame is not None else meta.get("frame"))
    name = template or meta.get("template") or DEFAULT_TEMPLATE
    from ..templates import get_template

    get_template(name)
    return Policy(model=None, processor=processor, frame=fr, template=name, source=source, meta=meta)
