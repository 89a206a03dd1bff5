"""Training configurations: dataclasses loaded from YAML and overridden on the command line.

A run config has sections (``model``, ``data``, ``train``, ``lora``, ``eval`` and, for
GRPO, ``grpo`` and ``rewards``).  A YAML file maps onto them::

    model: {path: checkpoints/tiny, frame: qwen2.5-vl}
    data: {train: data/train.jsonl, val: data/val.jsonl, template: r1}
    train: {output_dir: runs/grpo, learning_rate: 1.0e-5, max_steps: 500}
    grpo: {num_generations: 8, beta: 0.0}
    rewards:
      - {name: format, weight: 1.0}
      - {name: iou, weight: 1.0, options: {threshold: 0.5}}

Any field can then be overridden as ``--section.field value`` or, when the field name
is unique across sections, ``--field value``.  Values are parsed as YAML scalars
(``1e-5``, ``true``, ``[a, b]``) and converted to the field's type.  Rewards are
given on the command line as ``--rewards format,iou:2,semantic:0.5`` (``name:weight``).

>>> cfg = load_config(GRPORunConfig, overrides=["--model.path", "m", "--data.train", "t.jsonl",
...                                              "--num_generations", "4", "--rewards", "format,iou:2"])
>>> cfg.grpo.num_generations, [(r.name, r.weight) for r in cfg.rewards]
(4, [('format', 1.0), ('iou', 2.0)])
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..errors import MedgroundError


@dataclass
class ModelConfig:
    """The policy: a local directory (or a hub id when online) and its answer frame."""

    path: str = ""
    frame: str = "qwen2.5-vl"
    min_pixels: int | None = None
    max_pixels: int | None = None
    dtype: str = "auto"  # auto | float32 | bfloat16 | float16
    attn_implementation: str | None = None


@dataclass
class DataConfig:
    """Canonical JSONL splits and the prompt template."""

    train: str = ""
    val: str | None = None
    template: str = "r1"
    max_train_samples: int | None = None


@dataclass
class TrainConfig:
    """Optimisation and bookkeeping shared by SFT and GRPO (TRL / transformers names).

    ``trl`` passes any other field of TRL's ``SFTConfig`` / ``GRPOConfig`` unchanged.
    """

    output_dir: str = "runs/medground"
    seed: int = 42
    learning_rate: float = 1e-5
    max_steps: int = -1
    num_train_epochs: float = 1.0
    per_device_train_batch_size: int = 8
    gradient_accumulation_steps: int = 1
    lr_scheduler_type: str = "constant"
    warmup_steps: float = 0
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    logging_steps: int = 10
    save_steps: int = 100
    save_total_limit: int | None = 2
    bf16: bool | None = None
    gradient_checkpointing: bool = False
    use_cpu: bool = False
    report_to: list[str] = field(default_factory=lambda: ["tensorboard"])
    resume: str = "auto"  # auto (latest checkpoint in output_dir if any) | never | PATH
    dataloader_num_workers: int = 0
    trl: dict[str, Any] = field(default_factory=dict)


@dataclass
class LoraConfig:
    """LoRA adapters via peft (off by default: full fine-tuning)."""

    enabled: bool = False
    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])


@dataclass
class EvalConfig:
    """Greedy grounding evaluation on the validation split during training."""

    every_steps: int = 50  # 0 disables it
    max_samples: int | None = 64
    batch_size: int = 16
    max_new_tokens: int = 256
    iou_threshold: float = 0.5
    log_completions: int = 4  # completions written per evaluation (0: none)
    plot: bool = True


@dataclass
class SFTOptions:
    """Supervised warm start: teacher completions built from the ground truth."""

    max_length: int | None = None
    completion_only_loss: bool = True
    think: str | None = None  # fixed reasoning text instead of the template's (e.g. short, for tiny models)


@dataclass
class GRPOOptions:
    """TRL ``GRPOTrainer`` knobs (same names and meaning as in ``trl.GRPOConfig``)."""

    num_generations: int = 8
    beta: float = 0.0
    epsilon: float = 0.2
    epsilon_high: float | None = None
    num_iterations: int = 1
    loss_type: str = "dapo"
    scale_rewards: str = "group"
    temperature: float = 1.0
    top_p: float = 1.0
    max_completion_length: int = 256
    mask_truncated_completions: bool = False
    generation_batch_size: int | None = None
    log_completions: bool = True
    num_completions_to_print: int | None = 2
    use_vllm: bool = False
    vllm_mode: str = "colocate"  # colocate | server
    vllm_server_host: str = "0.0.0.0"
    vllm_server_port: int = 8000
    vllm_server_base_url: str | None = None
    vllm_gpu_memory_utilization: float = 0.3
    vllm_tensor_parallel_size: int = 1


@dataclass
class RewardSpec:
    """One reward: a registry name (``medground rewards list``), its weight and options."""

    name: str = ""
    weight: float = 1.0
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class SFTRunConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(learning_rate=2e-5))
    lora: LoraConfig = field(default_factory=LoraConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    sft: SFTOptions = field(default_factory=SFTOptions)


@dataclass
class GRPORunConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(learning_rate=1e-6))
    lora: LoraConfig = field(default_factory=LoraConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    grpo: GRPOOptions = field(default_factory=GRPOOptions)
    rewards: list[RewardSpec] = field(
        default_factory=lambda: [RewardSpec("format"), RewardSpec("iou")]
    )


# --------------------------------------------------------------------------- parsing


def _strip_optional(tp):
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return tp, False


def _coerce(value, tp, name: str):
    """Convert a YAML-loaded value to the annotated type ``tp`` (clear error otherwise)."""
    base, optional = _strip_optional(tp)
    if value is None:
        if optional or base is Any:
            return None
        raise MedgroundError(f"config field {name!r} may not be null")
    if isinstance(value, str) and value.lower() in ("none", "null") and optional:
        return None
    origin = typing.get_origin(base)
    try:
        if base is Any:
            return value
        if base is bool:
            if isinstance(value, str):
                low = value.lower()
                if low in ("true", "yes", "1", "on"):
                    return True
                if low in ("false", "no", "0", "off"):
                    return False
                raise ValueError(value)
            if isinstance(value, (bool, int)):
                return bool(value)
            raise ValueError(value)
        if base is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError(value)
            return int(value)
        if base is float:
            if isinstance(value, bool):
                raise ValueError(value)
            return float(value)
        if base is str:
            if isinstance(value, (dict, list)):
                raise ValueError(value)
            return str(value)
        if origin is list:
            (item,) = typing.get_args(base) or (Any,)
            if isinstance(value, str):
                value = [v.strip() for v in value.split(",") if v.strip()]
            if not isinstance(value, (list, tuple)):
                value = [value]
            return [_coerce(v, item, name) for v in value]
        if origin is dict or base is dict:
            if not isinstance(value, dict):
                raise ValueError(value)
            return dict(value)
    except (TypeError, ValueError):
        raise MedgroundError(f"config field {name!r}: cannot use {value!r} as {getattr(base, '__name__', base)}") from None
    return value


def _hints(cls) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _build(cls, data: dict | None, prefix: str = ""):
    """Build dataclass ``cls`` from a mapping, rejecting unknown keys."""
    data = dict(data or {})
    hints = _hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise MedgroundError(
            f"unknown config field(s) {', '.join(prefix + u for u in unknown)}; "
            f"known in {prefix.rstrip('.') or cls.__name__}: {', '.join(sorted(names))}"
        )
    obj = cls()
    for key, value in data.items():
        tp = hints[key]
        base, _ = _strip_optional(tp)
        if dataclasses.is_dataclass(base):
            if not isinstance(value, dict):
                raise MedgroundError(f"config section {prefix + key!r} must be a mapping")
            setattr(obj, key, _build(base, value, f"{prefix}{key}."))
        elif key == "rewards":
            setattr(obj, key, parse_rewards(value))
        else:
            setattr(obj, key, _coerce(value, tp, prefix + key))
    return obj


def parse_rewards(value) -> list[RewardSpec]:
    """Rewards from YAML (list of mappings or names) or the CLI (``"format,iou:2"``)."""
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, (list, tuple)) or not value:
        raise MedgroundError("rewards must be a non-empty list, e.g. [{name: format}, {name: iou, weight: 2}]")
    specs = []
    for item in value:
        if isinstance(item, RewardSpec):
            specs.append(item)
        elif isinstance(item, str):
            name, _, weight = item.partition(":")
            try:
                specs.append(RewardSpec(name.strip(), float(weight) if weight else 1.0))
            except ValueError:
                raise MedgroundError(f"reward {item!r}: weight must be a number (name:weight)") from None
        elif isinstance(item, dict):
            specs.append(_build(RewardSpec, item, "rewards."))
        else:
            raise MedgroundError(f"reward entry {item!r} must be a name or a mapping")
        if not specs[-1].name:
            raise MedgroundError("every reward needs a name")
    return specs


def _section_fields(cls) -> dict[str, list[str]]:
    """``{field: [section, ...]}`` for the leaf fields of a run config."""
    out: dict[str, list[str]] = {}
    for f in dataclasses.fields(cls):
        base, _ = _strip_optional(_hints(cls)[f.name])
        if dataclasses.is_dataclass(base):
            for g in dataclasses.fields(base):
                out.setdefault(g.name, []).append(f.name)
    return out


def parse_overrides(cls, args: list[str]) -> dict[str, Any]:
    """``["--section.field", "v", "--field=v", ...]`` -> nested mapping for :func:`_build`."""
    nested: dict[str, Any] = {}
    leaves = _section_fields(cls)
    top = {f.name for f in dataclasses.fields(cls)}
    i = 0
    while i < len(args):
        tok = args[i]
        if not tok.startswith("--"):
            raise MedgroundError(f"unexpected argument {tok!r}; overrides look like --section.field value")
        key = tok[2:]
        if "=" in key:
            key, raw = key.split("=", 1)
            i += 1
        else:
            if i + 1 >= len(args):
                raise MedgroundError(f"override {tok} needs a value")
            raw = args[i + 1]
            i += 2
        key = key.replace("-", "_")
        try:
            value = yaml.safe_load(raw) if raw != "" else ""
        except yaml.YAMLError:
            value = raw
        if "." in key:
            section, _, name = key.partition(".")
            if section not in top:
                raise MedgroundError(f"unknown config section {section!r} in {tok}; sections: {', '.join(sorted(top))}")
            if section == "train" and name.startswith("trl."):
                nested.setdefault("train", {}).setdefault("trl", {})[name[4:]] = value
                continue
            nested.setdefault(section, {})[name] = value
        elif key in top and key == "rewards":
            nested["rewards"] = value if not isinstance(value, (int, float)) else str(raw)
        elif key in leaves:
            sections = leaves[key]
            if len(sections) > 1:
                raise MedgroundError(
                    f"--{key} is ambiguous; write one of " + ", ".join(f"--{s}.{key}" for s in sections)
                )
            nested.setdefault(sections[0], {})[key] = value
        else:
            raise MedgroundError(f"unknown config field {tok!r}")
    return nested


def _merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict) and k not in ("options",):
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out


def load_yaml(path) -> dict:
    p = Path(path)
    if not p.exists():
        raise MedgroundError(f"{path}: config file not found")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise MedgroundError(f"{path}: invalid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise MedgroundError(f"{path}: a config file must be a mapping of sections")
    return data


def load_config(cls, path=None, overrides: list[str] | None = None, values: dict | None = None):
    """Config of type ``cls`` from YAML ``path`` (optional), then ``values`` (a nested
    mapping), then command-line ``overrides``; unknown fields raise MedgroundError."""
    data = load_yaml(path) if path else {}
    if values:
        data = _merge(data, values)
    if overrides:
        data = _merge(data, parse_overrides(cls, overrides))
    where_ = f"{path}: " if path else ""
    try:
        return _build(cls, data)
    except MedgroundError as exc:
        raise MedgroundError(f"{where_}{exc}") from None


def to_dict(cfg) -> dict:
    """Plain nested dict (for saving next to the run and in reports)."""
    return dataclasses.asdict(cfg)


def save_config(cfg, path) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False), encoding="utf-8")
    return p


def require(cfg) -> None:
    """Check the fields a run cannot start without."""
    if not cfg.model.path:
        raise MedgroundError("no model: set model.path in the config or pass --model.path DIR")
    if not cfg.data.train:
        raise MedgroundError("no training data: set data.train in the config or pass --data.train FILE.jsonl")
    if cfg.eval.every_steps and not cfg.data.val:
        cfg.eval.every_steps = 0
