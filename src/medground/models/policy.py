"""Load a policy (a vision-language checkpoint) with its processor, model family and
coordinate frame.

The family (:mod:`medground.models.families`) is recognised from ``config.json``'s
``model_type`` (or named with ``family=`` / ``--family``); it says what the model's
numbers mean (see :mod:`medground.geometry`):

* Qwen2.5-VL answers in absolute pixels of the image *as its processor resizes it*,
  so its frame is ``Frame("qwen2.5-vl", factor, min_pixels, max_pixels)`` read from
  the processor;
* Qwen2-VL, Qwen3-VL and InternVL answer in 0–1000 relative coordinates
  (``norm1000``), Gemma 3 / MedGemma in 0–1000 with y first (``norm1000+yx``),
  LLaVA-OneVision in 0–1 (``norm1``); SmolVLM has no native grounding (``norm1000``,
  taught by our templates).

A ``medground.json`` in the checkpoint (written by ``medground model tiny`` and the
trainers) may name the ``frame`` and default ``template``; an explicit ``frame=`` (then
``family=``) argument overrides it.  A model type no family covers is refused with
one line listing the families, unless ``family=`` or ``frame=`` says what to do.
The tokenizer always pads on the left (batched generation).

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
from ..geometry import Frame
from .families import (
    Family,
    families,
    family_of,
    get_family,
    processor_pixels,  # noqa: F401 - public here before the families existed
    resolve_frame,
    unknown_model_type,
)
from .source import resolve_model_source

#: model_type -> frame spec, read from the family entries (the one place that knows them).
FRAME_BY_MODEL_TYPE = {mt: fam.frame_spec for fam in families() for mt in fam.model_types}
DEFAULT_TEMPLATE = "r1"
META_FILE = "medground.json"


@dataclass
class Policy:
    """A loaded policy: ``model`` (eval mode), ``processor`` (left padding), ``frame``,
    default prompt ``template`` name, where it came from, its ``medground.json`` and its
    model ``family`` name (None when an unknown model type was given a ``frame``)."""

    model: Any
    processor: Any
    frame: Frame
    template: str = DEFAULT_TEMPLATE
    source: str = ""
    meta: dict[str, Any] = field(default_factory=dict)
    family: str | None = None

    @property
    def tokenizer(self):
        return self.processor.tokenizer

    @property
    def device(self):
        return next(self.model.parameters()).device


def frame_for(model_type: str, processor=None, override: Frame | str | None = None,
              family: Family | str | None = None) -> Frame:
    """The coordinate frame of a model: ``override`` (a frame spec, or a family name)
    when given, else the frame of ``family``, else of the family covering ``model_type``
    (an unknown one raises :class:`MedgroundError` naming the families and the
    ``--family`` / ``--frame`` options)."""
    if override is not None:
        try:
            return resolve_frame(override, processor)
        except MedgroundError as exc:
            raise MedgroundError(f"bad coordinate frame {override!r}: {exc}") from None
    fam = get_family(family) if family else family_of(model_type)
    return fam.frame(processor)


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
    except (OSError, ValueError, ImportError) as exc:  # ImportError: e.g. SmolVLM2's needs num2words
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
    family: Family | str | None = None,
) -> Policy:
    """Load a checkpoint directory (or hub id when online) as a :class:`Policy`.

    A directory holding a PEFT adapter (``adapter_config.json``) loads its base model
    and merges the adapter.  ``family`` names the model family when ``config.json``'s
    ``model_type`` is not one a family covers (or to override it); ``frame`` overrides
    the family's coordinate frame; ``template`` the default prompt template;
    ``min_pixels``/``max_pixels`` the processor's limits (the frame follows them).
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
            fam = _family(config.model_type, family, frame if frame is not None else meta.get("frame"))
            net = AutoModelForImageTextToText.from_pretrained(base_source, **kwargs)
            net = PeftModel.from_pretrained(net, source).merge_and_unload()
            proc_source = source if (path / "preprocessor_config.json").exists() or \
                (path / "processor_config.json").exists() else base_source
        else:
            config = AutoConfig.from_pretrained(source)
            fam = _family(config.model_type, family, frame if frame is not None else meta.get("frame"))
            net = AutoModelForImageTextToText.from_pretrained(source, **kwargs)
            proc_source = source
    except MedgroundError:
        raise
    except (OSError, ValueError, KeyError) as exc:
        raise MedgroundError(f"{source}: cannot load the model ({type(exc).__name__}: {exc})") from None
    _check_pixel_limits(fam, source, min_pixels, max_pixels)
    processor = load_processor(proc_source, min_pixels=min_pixels, max_pixels=max_pixels)
    net.to(dev).eval()
    fr, name = _frame_and_template(config.model_type, processor, meta, frame, family, fam, template)
    return Policy(model=net, processor=processor, frame=fr, template=name, source=source, meta=meta,
                  family=fam.name if fam is not None else None)


def load_policy_spec(
    model: str | os.PathLike,
    *,
    frame: Frame | str | None = None,
    template: str | None = None,
    min_pixels: int | None = None,
    max_pixels: int | None = None,
    family: Family | str | None = None,
) -> Policy:
    """A :class:`Policy` without its weights (``model=None``): the processor, family,
    coordinate frame and template :func:`load_policy` would give, for engines that load
    the weights themselves (vLLM).  A LoRA adapter directory is refused: such an engine
    needs a full checkpoint (``load_policy`` merges one; ``save_pretrained`` it)."""
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
    fam = _family(config.model_type, family, frame if frame is not None else meta.get("frame"))
    _check_pixel_limits(fam, source, min_pixels, max_pixels)
    processor = load_processor(source, min_pixels=min_pixels, max_pixels=max_pixels)
    fr, name = _frame_and_template(config.model_type, processor, meta, frame, family, fam, template)
    return Policy(model=None, processor=processor, frame=fr, template=name, source=source, meta=meta,
                  family=fam.name if fam is not None else None)


def _check_pixel_limits(fam: Family | None, source: str, min_pixels, max_pixels) -> None:
    """min_pixels / max_pixels only for the families whose processors take them."""
    if (min_pixels or max_pixels) and fam is not None and not fam.pixel_limits:
        limited = ", ".join(f.name for f in families() if f.pixel_limits)
        raise MedgroundError(f"{source}: min_pixels / max_pixels apply to the processors of {limited}, not to "
                             f"{fam.name}'s (its input size is fixed by its image processor)")


def _frame_and_template(model_type: str, processor, meta: dict, frame, family, fam: Family | None,
                        template: str | None) -> tuple[Frame, str]:
    """The frame (``frame=``, else the checkpoint's ``medground.json`` unless ``family=`` is
    given, else the family's) and the template (checked: an unknown name fails here)."""
    from .families import resolve_template

    if frame is not None or (family is None and meta.get("frame")):
        fr = frame_for(model_type, processor, override=frame if frame is not None else meta["frame"])
    else:
        fr = fam.frame(processor)
    name = template or meta.get("template") or DEFAULT_TEMPLATE
    resolve_template(name)
    return fr, name


def check_family(model: str | os.PathLike, *, family: Family | str | None = None, frame=None) -> None:
    """Before anything loads: a local checkpoint whose ``config.json`` names a model type no
    family covers is refused in one line (:func:`_family`'s), unless ``family``, ``frame``
    or the checkpoint's ``medground.json`` frame says what its numbers mean.  Anything
    unreadable is left to the loader, which names it."""
    path = Path(os.fspath(model)).expanduser()
    if family or frame is not None or not (path / "config.json").is_file():
        return
    try:
        model_type = json.loads((path / "config.json").read_text()).get("model_type")
    except (OSError, ValueError, AttributeError):
        return
    if model_type:
        _family(str(model_type), None, _read_meta(path).get("frame"))


def _family(model_type: str, family: Family | str | None, frame) -> Family | None:
    """The policy's family: the one named, else the one covering ``model_type``; None for an
    unknown model type only when a frame says what its numbers mean (else the one-line
    error listing the families and the --family / --frame options)."""
    if family:
        return get_family(family)
    found = family_of(model_type, required=False)
    if found is None and frame is None:
        raise MedgroundError(unknown_model_type(model_type))
    return found
