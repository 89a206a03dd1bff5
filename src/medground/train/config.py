"""Training configurations: the sections of an SFT or GRPO run, loaded by :mod:`medground.config`.

A run config has sections (``model``, ``data``, ``train``, ``lora``, ``eval`` and ``sft``,
or ``grpo`` and ``rewards`` for GRPO).  A YAML file maps onto them::

    model: {path: checkpoints/tiny, frame: qwen2.5-vl}
    data: {train: data/train.jsonl, val: data/val.jsonl, template: r1}
    train: {output_dir: runs/grpo, learning_rate: 1.0e-5, max_steps: 500}
    grpo: {num_generations: 8, beta: 0.0}
    rewards:
      - {name: format, weight: 1.0}
      - {name: iou, weight: 1.0, options: {threshold: 0.5}}

and any field is overridden as ``--section.field value`` or, when the name is unique
across sections, ``--field value`` (see :func:`medground.config.load_config`).  Rewards
are also given as ``--rewards format,iou:2,semantic:0.5`` (``name:weight``).  Every field's
help text is in its metadata (``medground train grpo --help``, ``docs/configuration.md``).

>>> cfg = load_config(GRPORunConfig, overrides=["--model.path", "m", "--data.train", "t.jsonl",
...                                              "--num_generations", "4", "--rewards", "format,iou:2"])
>>> cfg.grpo.num_generations, [(r.name, r.weight) for r in cfg.rewards]
(4, [('format', 1.0), ('iou', 2.0)])
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any

from ..config import ConfigError, check_choice, check_range, from_dict, load_config, save_config, to_dict
from ..errors import MedgroundError

__all__ = [
    "DataConfig", "EvalConfig", "GRPOOptions", "GRPORunConfig", "LoraConfig", "ModelConfig", "RewardTerm",
    "SFTOptions", "SFTRunConfig", "TrainConfig", "load_config", "parse_rewards", "require", "save_config", "to_dict",
]

logger = logging.getLogger(__name__)

DTYPES = ("auto", "float32", "bfloat16", "float16")
DTYPE_ALIASES = ("", "fp32", "bf16", "fp16")  # also accepted by medground.models.policy.load_policy
#: ``loss_type`` values TRL 1.16's ``GRPOTrainer`` computes (tests compare with TRL's own list).
LOSS_TYPES = ("grpo", "dr_grpo", "dapo", "bnpo", "cispo", "sapo", "luspo", "vespo")
SCALE_REWARDS = ("group", "batch", "none")
VLLM_MODES = ("colocate", "server")
#: ``lr_scheduler_type`` values of transformers 5.x (``SchedulerType``; tests compare with its list).
SCHEDULERS = ("linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup",
              "inverse_sqrt", "reduce_lr_on_plateau", "cosine_with_min_lr", "cosine_warmup_with_min_lr",
              "warmup_stable_decay", "greedy")
MAX_SEED = 2**32 - 1  # numpy's limit (transformers seeds numpy with it)
VLLM_IS_MODES = ("token_truncate", "token_mask", "sequence_truncate", "sequence_mask")


@dataclass
class ModelConfig:
    """The policy: a local checkpoint folder (or a hub id when online) and its answer frame."""

    path: str = field(default="", metadata={"help": "Checkpoint folder of the policy (or a hub id when online)."})
    frame: str = field(default="", metadata={
        "help": "Coordinate frame the policy answers in: qwen2.5-vl (pixels of the resized image), norm1000, "
                "norm1, pixels or fixed:WxH (+yx: y first, +square: padded square); empty: the checkpoint's "
                "(medground.json), else its model family's."})
    family: str = field(default="", metadata={
        "help": "Model family (medground model families) for a checkpoint whose model_type no family covers; "
                "empty: recognised from config.json."})
    min_pixels: int | None = field(default=None, metadata={
        "help": "Image processor min_pixels (default: the checkpoint's)."})
    max_pixels: int | None = field(default=None, metadata={
        "help": "Image processor max_pixels (default: the checkpoint's)."})
    dtype: str = field(default="auto", metadata={"help": "Weights dtype: auto, float32, bfloat16 or float16."})
    attn_implementation: str | None = field(default=None, metadata={
        "help": "transformers attention implementation (eager, sdpa, flash_attention_2); default: transformers'."})

    def __post_init__(self):
        from ..geometry import Frame

        if str(self.dtype).lower() not in (*DTYPES, *DTYPE_ALIASES):
            raise ConfigError("dtype", f"must be one of {', '.join(DTYPES)} (or fp32, bf16, fp16); got {self.dtype!r}")
        check_range(self, "min_pixels", "max_pixels", low=1)
        if self.min_pixels and self.max_pixels and self.min_pixels > self.max_pixels:
            raise ConfigError(("min_pixels", "max_pixels"), f"min_pixels ({self.min_pixels}) exceeds max_pixels "
                                                            f"({self.max_pixels})")
        if self.frame:
            try:
                Frame.parse(self.frame)
            except (MedgroundError, ValueError) as exc:
                raise ConfigError("frame", f"not a coordinate frame: {exc}") from None
        if self.family:
            from ..models.families import get_family

            try:
                get_family(self.family)
            except MedgroundError as exc:
                raise ConfigError("family", str(exc)) from None


@dataclass
class DataConfig:
    """Canonical JSONL splits and the prompt template."""

    train: str = field(default="", metadata={"help": "Training split (canonical JSONL)."})
    val: str | None = field(default=None, metadata={
        "help": "Validation split for the grounding evaluation during training (see eval)."})
    template: str = field(default="r1", metadata={
        "help": "Prompt template: r1, chain_of_box, medreasoner, medreasoner_nothink, or a model family's "
                "native one (qwen3-vl-native, gemma3-native, ...)."})
    max_train_samples: int | None = field(default=None, metadata={
        "help": "Use only the first N training samples (default: all)."})
    skip_invalid: bool = field(default=False, metadata={
        "help": "Leave out the samples medground data validate finds problems in, with a counted warning "
                "(default: stop and list them)."})
    reasoning: str | None = field(default=None, metadata={
        "help": "GRPO: a reference reasoning per sample for the reasoning reward, a {key} template filled from "
                "each sample's meta like sft.think (e.g. {findings}); null: none."})

    def __post_init__(self):
        from ..models.families import resolve_template

        try:
            resolve_template(self.template)
        except MedgroundError as exc:
            raise ConfigError("template", str(exc)) from None
        check_range(self, "max_train_samples", low=1)


@dataclass
class TrainConfig:
    """Optimisation and bookkeeping shared by SFT and GRPO (TRL / transformers names).

    ``trl`` passes any other field of TRL's ``SFTConfig`` / ``GRPOConfig`` unchanged.

    NOTE: defaults that differ from TRL's (``SFTConfig`` / ``GRPOConfig`` 1.16):
    ``output_dir`` (``runs/medground``), ``learning_rate`` (1e-5 for SFT and GRPO, TRL
    2e-5 / 1e-6), ``num_train_epochs`` (1, TRL 3), ``lr_scheduler_type`` (``constant``, TRL
    ``linear``), ``save_steps`` (100, TRL 500), ``save_total_limit`` (2, TRL unlimited),
    ``gradient_checkpointing`` (off, TRL on), ``report_to`` (tensorboard, TRL none).
    """

    output_dir: str = field(default="runs/medground", metadata={
        "help": "Run folder: checkpoints, final/, config.yaml, logs and plots."})
    seed: int = field(default=42, metadata={"help": "Random seed (also the data order)."})
    learning_rate: float = field(default=1e-5, metadata={"help": "Peak learning rate (AdamW)."})
    max_steps: int = field(default=-1, metadata={"help": "Optimisation steps; -1: num_train_epochs decides."})
    num_train_epochs: float = field(default=1.0, metadata={"help": "Passes over the training split (without max_steps)."})
    per_device_train_batch_size: int = field(default=8, metadata={
        "help": "Samples per device and step (GRPO: completions; see grpo.num_generations)."})
    gradient_accumulation_steps: int = field(default=1, metadata={"help": "Steps accumulated per optimiser update."})
    lr_scheduler_type: str = field(default="constant", metadata={
        "help": "transformers scheduler: constant, constant_with_warmup, linear, cosine, ..."})
    warmup_steps: float = field(default=0, metadata={"help": "Warm-up steps (a fraction < 1: of all steps)."})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay."})
    max_grad_norm: float = field(default=1.0, metadata={"help": "Gradient clipping norm (0: no clipping)."})
    logging_steps: int = field(default=10, metadata={"help": "Log every N steps."})
    save_steps: int = field(default=100, metadata={"help": "Save a checkpoint every N steps (resume point)."})
    save_total_limit: int | None = field(default=2, metadata={"help": "Checkpoints kept (null: all)."})
    bf16: bool | None = field(default=None, metadata={"help": "bfloat16 mixed precision (default: when the GPU has it)."})
    gradient_checkpointing: bool = field(default=False, metadata={"help": "Recompute activations to save memory."})
    use_cpu: bool = field(default=False, metadata={"help": "Train on the CPU even when a GPU is present."})
    report_to: list[str] = field(default_factory=lambda: ["tensorboard"], metadata={
        "help": "Loggers (tensorboard, wandb, ...); [] for none."})
    resume: str = field(default="auto", metadata={
        "help": "auto: continue from the latest checkpoint in output_dir; never; or a checkpoint folder."})
    dataloader_num_workers: int = field(default=0, metadata={"help": "Data loading worker processes."})
    trl: dict[str, Any] = field(default_factory=dict, metadata={
        "help": "Any other TRL SFTConfig / GRPOConfig field, passed unchanged (--train.trl.NAME value)."})

    def __post_init__(self):
        check_range(self, "learning_rate", low=0, low_open=True)
        check_range(self, "per_device_train_batch_size", "gradient_accumulation_steps", "logging_steps",
                    "save_steps", low=1)
        check_range(self, "num_train_epochs", "warmup_steps", "weight_decay", "max_grad_norm",
                    "dataloader_num_workers", low=0)
        check_range(self, "save_total_limit", low=1)
        check_range(self, "seed", low=0, high=MAX_SEED)
        check_choice(self, "lr_scheduler_type", SCHEDULERS)
        if self.max_steps != -1 and self.max_steps < 1:
            raise ConfigError("max_steps", f"must be -1 (num_train_epochs decides) or >= 1; got {self.max_steps}")
        if self.max_steps == -1 and self.num_train_epochs == 0:
            raise ConfigError(("max_steps", "num_train_epochs"), "train for no step (max_steps -1 and "
                                                                 "num_train_epochs 0)")
        if self.warmup_steps >= 1 and not float(self.warmup_steps).is_integer():
            raise ConfigError("warmup_steps", f"must be a fraction below 1 or a whole number of steps; "
                                              f"got {self.warmup_steps}")


@dataclass
class LoraConfig:
    """LoRA adapters via peft (off by default: full fine-tuning)."""

    enabled: bool = field(default=False, metadata={"help": "Train LoRA adapters instead of every weight."})
    r: int = field(default=16, metadata={"help": "Adapter rank."})
    alpha: int = field(default=32, metadata={"help": "LoRA alpha (scaling = alpha / r)."})
    dropout: float = field(default=0.05, metadata={"help": "Dropout on the adapter input."})
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"], metadata={
        "help": "Modules that get adapters."})

    def __post_init__(self):
        check_range(self, "r", low=1)
        check_range(self, "alpha", low=0, low_open=True)
        check_range(self, "dropout", low=0, high=1, high_open=True)
        if self.enabled and not self.target_modules:
            raise ConfigError(("enabled", "target_modules"), "LoRA is enabled but names no target module")


@dataclass
class EvalConfig:
    """Greedy grounding evaluation on the validation split (``data.val``) during training."""

    every_steps: int = field(default=50, metadata={
        "help": "Evaluate every N steps (and before the first); 0: never.  Without data.val evaluation is off "
                "(a warning says so)."})
    max_samples: int | None = field(default=64, metadata={"help": "Validation samples per evaluation (null: all)."})
    batch_size: int = field(default=16, metadata={"help": "Generation batch size."})
    max_new_tokens: int = field(default=256, metadata={"help": "Generation length limit."})
    iou_threshold: float = field(default=0.5, metadata={"help": "IoU above which a box counts as correct (val/acc)."})
    log_completions: int = field(default=4, metadata={
        "help": "Completions written to val_completions.jsonl per evaluation (0: none)."})
    plot: bool = field(default=True, metadata={"help": "Draw training_curves.png."})

    def __post_init__(self):
        check_range(self, "every_steps", "log_completions", low=0)
        check_range(self, "max_samples", "batch_size", "max_new_tokens", low=1)
        check_range(self, "iou_threshold", low=0, high=1)


@dataclass
class SFTOptions:
    """Supervised warm start: teacher completions built from the ground truth.

    NOTE: defaults that differ from TRL's ``SFTConfig`` (1.16): ``max_length`` (none: no
    truncation, TRL 1024); ``completion_only_loss`` (on, TRL ``None``, which means on for
    the prompt-completion data medground builds).
    """

    max_length: int | None = field(default=None, metadata={
        "help": "Truncate prompt + completion to N tokens (null: never)."})
    completion_only_loss: bool = field(default=True, metadata={"help": "Loss on the completion tokens only."})
    think: str | None = field(default=None, metadata={
        "help": "Fixed reasoning text instead of the template's (e.g. a short one for tiny models); {key} is "
                "filled from each sample's meta (e.g. {findings} of the open-set phantom)."})

    def __post_init__(self):
        check_range(self, "max_length", low=1)


@dataclass
class GRPOOptions:
    """TRL ``GRPOTrainer`` knobs (same names and meaning as in ``trl.GRPOConfig``).

    NOTE: defaults that differ from TRL's ``GRPOConfig`` (1.16): ``max_completion_length``
    (256, TRL 512), ``log_completions`` (on, TRL off), ``num_completions_to_print`` (2,
    TRL all).  ``loss_type`` (``dapo``), ``scale_rewards`` (``group``) and ``vllm_mode``
    (``colocate``) are TRL 1.16's defaults; the MedGround-R1 recipes set ``loss_type: grpo``
    (the paper's sequence-normalised loss).
    """

    num_generations: int = field(default=8, metadata={
        "help": "Completions per prompt (G); the group the advantages are normalised over."})
    beta: float = field(default=0.0, metadata={"help": "KL coefficient (0: no reference model)."})
    epsilon: float = field(default=0.2, metadata={"help": "Clipping range of the policy ratio."})
    epsilon_high: float | None = field(default=None, metadata={
        "help": "Upper clipping range (DAPO's clip-higher; default: epsilon)."})
    num_iterations: int = field(default=1, metadata={"help": "Optimisation passes per generation batch (mu)."})
    loss_type: str = field(default="dapo", metadata={
        "help": "Loss normalisation: " + ", ".join(LOSS_TYPES) + " (TRL's)."})
    scale_rewards: str = field(default="group", metadata={
        "help": "Divide advantages by the reward std of the group, the batch, or none."})
    temperature: float = field(default=1.0, metadata={"help": "Sampling temperature."})
    top_p: float = field(default=1.0, metadata={"help": "Nucleus sampling mass."})
    max_completion_length: int = field(default=256, metadata={"help": "Completion length limit (tokens)."})
    mask_truncated_completions: bool = field(default=False, metadata={
        "help": "Leave truncated completions out of the loss."})
    generation_batch_size: int | None = field(default=None, metadata={
        "help": "Completions generated at once (default: TRL's, one optimiser step's worth)."})
    log_completions: bool = field(default=True, metadata={
        "help": "Write sampled completions and rewards to OUTPUT/completions/*.parquet."})
    num_completions_to_print: int | None = field(default=2, metadata={
        "help": "Completions printed per logging step (null: all, 0: none)."})
    use_vllm: bool = field(default=False, metadata={
        "help": "Generate the rollouts with vLLM (pip install 'medground[vllm]'; CPU build: docs/training.md)."})
    vllm_mode: str = field(default="colocate", metadata={
        "help": "colocate (vLLM on the training GPUs) or server (trl vllm-serve elsewhere)."})
    vllm_server_host: str = field(default="0.0.0.0", metadata={"help": "vLLM server host (server mode)."})
    vllm_server_port: int = field(default=8000, metadata={"help": "vLLM server port (server mode)."})
    vllm_server_base_url: str | None = field(default=None, metadata={
        "help": "vLLM server URL, instead of host and port (server mode)."})
    vllm_gpu_memory_utilization: float = field(default=0.3, metadata={
        "help": "Share of each GPU's memory vLLM takes beside the policy (colocate mode; in server mode give "
                "trl vllm-serve --gpu_memory_utilization)."})
    vllm_tensor_parallel_size: int = field(default=1, metadata={
        "help": "GPUs one vLLM engine is split over (colocate mode; in server mode give trl vllm-serve "
                "--tensor_parallel_size)."})
    vllm_max_model_length: int | None = field(default=None, metadata={
        "help": "vLLM context window (colocate mode): at least the longest prompt (image tokens included) plus "
                "max_completion_length; default: the model's."})
    vllm_server_timeout: float = field(default=240.0, metadata={
        "help": "Seconds to wait for the vLLM server to answer before giving up (server mode)."})
    vllm_importance_sampling_correction: bool = field(default=True, metadata={
        "help": "Correct for the gap between vLLM's sampling log-probs and the trainer's (colocate mode runs the "
                "rollouts in bfloat16 for a float32 policy): importance-sampling ratios, bounded per "
                "vllm_importance_sampling_mode."})
    vllm_importance_sampling_mode: str = field(default="sequence_mask", metadata={
        "help": "How the ratios are bounded: " + ", ".join(VLLM_IS_MODES) + " (truncate: clip to the bounds; "
                "mask: zero outside them; per token or per sequence)."})
    vllm_importance_sampling_clip_max: float | None = field(default=3.0, metadata={
        "help": "Upper bound of the importance-sampling ratio (null: none)."})
    vllm_importance_sampling_clip_min: float | None = field(default=None, metadata={
        "help": "Lower bound of the importance-sampling ratio (null: none)."})

    def __post_init__(self):
        check_choice(self, "loss_type", LOSS_TYPES)
        check_choice(self, "scale_rewards", SCALE_REWARDS)
        check_choice(self, "vllm_mode", VLLM_MODES)
        check_choice(self, "vllm_importance_sampling_mode", VLLM_IS_MODES)
        if self.num_generations < 2:
            raise ConfigError("num_generations", f"GRPO needs at least 2 completions per prompt; got "
                                                 f"{self.num_generations}")
        check_range(self, "beta", low=0)
        check_range(self, "epsilon", "temperature", low=0, low_open=True)
        check_range(self, "top_p", low=0, high=1, low_open=True)
        check_range(self, "num_iterations", "max_completion_length", "generation_batch_size",
                    "vllm_tensor_parallel_size", low=1)
        check_range(self, "num_completions_to_print", low=0)
        check_range(self, "vllm_gpu_memory_utilization", low=0, high=1, low_open=True)
        check_range(self, "vllm_server_port", low=1, high=65535)
        check_range(self, "vllm_max_model_length", low=1)
        check_range(self, "vllm_server_timeout", "vllm_importance_sampling_clip_max", low=0, low_open=True)
        check_range(self, "vllm_importance_sampling_clip_min", low=0)
        lo, hi = self.vllm_importance_sampling_clip_min, self.vllm_importance_sampling_clip_max
        if lo is not None and hi is not None and lo >= hi:
            raise ConfigError(("vllm_importance_sampling_clip_min", "vllm_importance_sampling_clip_max"),
                              f"the lower bound ({lo}) must be below the upper bound ({hi})")
        if self.vllm_importance_sampling_mode.endswith("_truncate") and lo is None and hi is None:
            raise ConfigError(("vllm_importance_sampling_mode", "vllm_importance_sampling_clip_max"),
                              "a *_truncate mode needs vllm_importance_sampling_clip_min or _clip_max")
        if self.epsilon_high is not None and self.epsilon_high < self.epsilon:
            raise ConfigError(("epsilon_high", "epsilon"), f"epsilon_high ({self.epsilon_high}) is below epsilon "
                                                           f"({self.epsilon})")
        if self.generation_batch_size and self.generation_batch_size % self.num_generations:
            raise ConfigError(("generation_batch_size", "num_generations"),
                              f"{self.generation_batch_size} completions do not split into groups of "
                              f"{self.num_generations}")


@dataclass
class RewardTerm:
    """One term of the GRPO reward: a registered reward (``medground rewards list``), its
    weight in the sum and the options it is built with."""

    name: str = field(default="", metadata={"help": "Registered reward name."})
    weight: float = field(default=1.0, metadata={"help": "Weight in the summed reward (TRL reward_weights)."})
    options: dict[str, Any] = field(default_factory=dict, metadata={"help": "Options of the reward."})

    def __post_init__(self):
        from ..rewards import REWARDS

        if not self.name:
            raise ConfigError("name", "every reward needs a name")
        if not math.isfinite(self.weight):
            raise ConfigError("weight", f"must be a finite number; got {self.weight}")
        # before any heavy work: an unknown name or option fails when the config loads
        try:
            entry = REWARDS.entry(self.name)
        except MedgroundError as exc:
            raise ConfigError("name", str(exc)) from None
        try:
            entry.check_options(self.options, REWARDS.kind)
        except MedgroundError as exc:
            raise ConfigError("options", str(exc)) from None


def _reward_entries(value) -> list:
    """Rewards as YAML gives them (mappings or names) or as the CLI does (``"format,iou:2"``):
    a list of mappings / :class:`RewardTerm` for the loader to build."""
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, (list, tuple)) or not value:
        raise MedgroundError("rewards must be a non-empty list, e.g. [{name: format}, {name: iou, weight: 2}]"
                             " or format,iou:2")
    entries = []
    for item in value:
        if isinstance(item, str):
            name, _, weight = item.partition(":")
            try:
                entries.append({"name": name.strip(), "weight": float(weight) if weight else 1.0})
            except ValueError:
                raise MedgroundError(f"reward {item!r}: weight must be a number (name:weight)") from None
        elif isinstance(item, (dict, RewardTerm)):
            entries.append(item)
        else:
            raise MedgroundError(f"reward entry {item!r} must be a name or a mapping")
    return entries


def parse_rewards(value) -> list[RewardTerm]:
    """Reward terms from YAML (a list of mappings or names) or the CLI (``"format,iou:2"``)."""
    try:
        entries = _reward_entries(value)
    except MedgroundError as exc:
        raise ConfigError("rewards", str(exc)) from None
    return [e if isinstance(e, RewardTerm) else from_dict(RewardTerm, e, f"rewards[{i}].")
            for i, e in enumerate(entries)]


@dataclass
class _RunConfig:
    """What SFT and GRPO runs share."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    lora: LoraConfig = field(default_factory=LoraConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def __post_init__(self):
        if self.eval.every_steps and not self.data.val:
            logger.warning("evaluation is off: eval.every_steps is %d but data.val names no validation file "
                           "(set data.val, or eval.every_steps 0 to silence this)", self.eval.every_steps)

    @property
    def evaluates(self) -> bool:
        """Whether the run evaluates on ``data.val`` during training."""
        return bool(self.eval.every_steps and self.data.val)


@dataclass
class SFTRunConfig(_RunConfig):
    """An SFT run: the shared sections and ``sft`` (TRL's SFTTrainer)."""

    sft: SFTOptions = field(default_factory=SFTOptions)


@dataclass
class GRPORunConfig(_RunConfig):
    """A GRPO run: the shared sections, ``grpo`` and the reward terms (TRL's GRPOTrainer)."""

    grpo: GRPOOptions = field(default_factory=GRPOOptions)
    rewards: list[RewardTerm] = field(
        default_factory=lambda: [RewardTerm("format"), RewardTerm("iou")],
        metadata={"help": "Reward terms: a list of {name, weight, options}, or name:weight,... on the command line "
                          "(medground rewards list).  A config without rewards trains with format and iou, weight 1 "
                          "each (the run prints the terms it uses).",
                  "convert": _reward_entries, "metavar": "rewards", "default_text": "format,iou"},
    )

    def __post_init__(self):
        super().__post_init__()
        if not self.rewards:
            raise ConfigError("rewards", "GRPO needs at least one reward")
        if any(r.name == "reasoning" for r in self.rewards) and not self.data.reasoning:
            # the GRPO dataset has a reference column only when data.reasoning fills it, whatever
            # column the reward is told to read: without it the reward is None on every sample
            raise ConfigError("rewards", "the reasoning reward needs a reference: set data.reasoning (a {key} template "
                                         "filled from each sample's meta, e.g. \"{findings}\")")


def require(cfg) -> None:
    """Check the fields a run cannot start without (a config without them is still valid
    to print or to complete later)."""
    if not cfg.model.path:
        raise MedgroundError("no model: set model.path in the config or pass --model.path DIR")
    if not cfg.data.train:
        raise MedgroundError("no training data: set data.train in the config or pass --data.train FILE.jsonl")
