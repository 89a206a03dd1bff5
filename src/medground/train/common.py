"""What SFT and GRPO share: loading the policy, TRL arguments, LoRA, resume, saving."""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..config import save_config, to_dict
from ..errors import MedgroundError
from .config import TrainConfig

FINAL_DIR = "final"


def load_training_policy(cfg):
    """``(model, processor, frame)`` for training from ``cfg.model`` (float32 on CPU)."""
    from ..models.policy import load_policy

    policy = load_policy(
        cfg.model.path, frame=cfg.model.frame or None, template=cfg.data.template, device="cpu",
        dtype=cfg.model.dtype, min_pixels=cfg.model.min_pixels, max_pixels=cfg.model.max_pixels,
        attn_implementation=cfg.model.attn_implementation, family=cfg.model.family or None,
    )
    model = policy.model
    model.train()
    if cfg.lora.enabled:
        model = apply_lora(model, cfg.lora)
    return model, policy.processor, policy.frame


def apply_lora(model, lora):
    """Wrap ``model`` with trainable LoRA adapters (peft) on the language model."""
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError:  # pragma: no cover - peft is a dependency
        raise MedgroundError("lora.enabled needs peft (pip install peft)") from None
    config = LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                        target_modules=list(lora.target_modules), task_type="CAUSAL_LM")
    try:
        return get_peft_model(model, config)
    except ValueError as exc:
        raise MedgroundError(f"LoRA: {exc}") from None


def _bf16_default() -> bool:
    import torch

    return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())


def trl_kwargs(train: TrainConfig, known: set[str]) -> dict:
    """Keyword arguments of a TRL config from :class:`TrainConfig` (``train.trl`` last)."""
    kw = dict(
        output_dir=train.output_dir, seed=train.seed, data_seed=train.seed, learning_rate=train.learning_rate,
        max_steps=train.max_steps, num_train_epochs=train.num_train_epochs,
        per_device_train_batch_size=train.per_device_train_batch_size,
        gradient_accumulation_steps=train.gradient_accumulation_steps, lr_scheduler_type=train.lr_scheduler_type,
        warmup_steps=train.warmup_steps, weight_decay=train.weight_decay, max_grad_norm=train.max_grad_norm,
        logging_steps=train.logging_steps, save_strategy="steps", save_steps=train.save_steps,
        save_total_limit=train.save_total_limit,
        bf16=_bf16_default() if train.bf16 is None else train.bf16,
        gradient_checkpointing=train.gradient_checkpointing, use_cpu=train.use_cpu,
        report_to=list(train.report_to) or "none", dataloader_num_workers=train.dataloader_num_workers,
        disable_tqdm=False,
    )
    if "activation_checkpointing" in known:  # transformers >= 5.x name; gradient_checkpointing is its old alias
        kw["activation_checkpointing"] = kw.pop("gradient_checkpointing")
    unknown = sorted(set(train.trl) - known)
    if unknown:
        raise MedgroundError(f"train.trl: unknown TRL option(s) {', '.join(unknown)}")
    kw.update(train.trl)
    return kw


def make_trl_config(config_cls, train: TrainConfig, **more):
    import dataclasses

    known = {f.name for f in dataclasses.fields(config_cls)}
    kw = trl_kwargs(train, known)
    kw.update(more)
    try:
        return config_cls(**kw)
    except (ValueError, TypeError) as exc:
        raise MedgroundError(f"invalid training options: {exc}") from None


def load_checkpoint_weights(model, checkpoint: str) -> None:
    """Load the weights saved in ``checkpoint`` into ``model`` through ``from_pretrained``.

    ``Trainer._load_from_checkpoint`` reads the safetensors file without the key
    conversion Qwen2.5-VL needs and silently keeps the old weights (transformers#43701);
    loading a fresh copy with ``from_pretrained`` and copying its state strictly is
    exact, and any missing key is an error instead of silence."""
    ckpt = Path(checkpoint)
    if (ckpt / "adapter_config.json").exists() and hasattr(model, "peft_config"):
        from peft import set_peft_model_state_dict
        from safetensors.torch import load_file

        weights = ckpt / "adapter_model.safetensors"
        if not weights.exists():
            raise MedgroundError(f"{ckpt}: adapter checkpoint without adapter_model.safetensors")
        result = set_peft_model_state_dict(model, load_file(str(weights)))
        missing = [k for k in getattr(result, "unexpected_keys", [])]
        if missing:
            raise MedgroundError(f"{ckpt}: adapter weights did not match the model ({missing[:3]} ...)")
        return
    if not (ckpt / "config.json").exists():
        raise MedgroundError(f"{ckpt}: not a model checkpoint (no config.json)")
    base = model
    param = next(base.parameters())
    fresh = type(base).from_pretrained(str(ckpt), dtype=param.dtype)
    state = fresh.state_dict()
    try:
        base.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise MedgroundError(f"{ckpt}: checkpoint weights do not match the model: {exc}") from None
    del fresh, state


class ExactResumeMixin:
    """Trainer mixin: resume loads model weights with :func:`load_checkpoint_weights`."""

    def _load_from_checkpoint(self, resume_from_checkpoint, model=None):  # noqa: D401 - Trainer hook
        load_checkpoint_weights(model if model is not None else self.model, resume_from_checkpoint)


def save_final(trainer, processor, frame, template: str, cfg, out: Path | None = None) -> Path:
    """Save the trained policy (merged LoRA if any), its processor and ``medground.json``
    (frame + template, read by ``medground.models.policy.load_policy``)."""
    out = Path(out or Path(cfg.train.output_dir) / FINAL_DIR)
    model = trainer.accelerator.unwrap_model(trainer.model) if hasattr(trainer, "accelerator") else trainer.model
    if hasattr(model, "merge_and_unload") and cfg.lora.enabled:
        model = model.merge_and_unload()
    if trainer.args.should_save:
        trainer.save_state()
        out.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(out)
        processor.save_pretrained(out)
        meta = {"frame": frame.name, "template": template, "trained_with": "medground", "base": cfg.model.path}
        (out / "medground.json").write_text(json.dumps(meta, indent=1) + "\n")
    return out


def write_run_config(cfg) -> None:
    out = Path(cfg.train.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out / "config.yaml")


def run_summary(trainer, final: Path, cfg) -> dict:
    """What a run returns: the final folder, its last logged metrics, the config."""
    history = trainer.state.log_history
    val = [h for h in history if any(k.startswith("val/") for k in h)]
    return {
        "output_dir": str(cfg.train.output_dir),
        "final": str(final),
        "global_step": int(trainer.state.global_step),
        "last_val": val[-1] if val else None,
        "config": to_dict(cfg),
    }


def is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def _plan_quietly(cfg) -> str | None:
    """Another process of a distributed run: the same checkpoint as the main process, which
    alone removes files and speaks (it may not have removed them yet: wait for it)."""
    import time

    from .run_folder import plan_run

    plan = plan_run(cfg)
    for _ in range(600):
        if not any(p.exists() for p in plan.remove):
            break
        time.sleep(0.1)
    return str(plan.checkpoint) if plan.checkpoint is not None else None


def check_before_loading(cfg) -> tuple[list, list | None]:
    """What a run checks before the model loads: the fields it needs, that its run folder
    may be reused (:func:`medground.train.run_folder.plan_run`), and its data — train and
    validation files validated like ``medground data validate`` (every problem listed, or
    the bad samples left out with ``data.skip_invalid``).  Returns ``(train, val)``
    samples (``val`` None when the run does not evaluate)."""
    from ..data.checked import read_valid_samples
    from .config import require
    from .run_folder import plan_run, say

    require(cfg)
    plan_run(cfg)
    hint = "; fix them, or pass --data.skip_invalid to train without them"

    def read(path):
        return read_valid_samples(path, skip_invalid=cfg.data.skip_invalid, hint=hint, note=say)

    return read(cfg.data.train), read(cfg.data.val) if cfg.evaluates else None


def make_trainer(trainer_cls, cfg, model, processor, frame, template, val_samples=None, **trainer_kwargs):
    """``(trainer, eval_callback)``: ``trainer_cls`` with the plot callback and, when the
    run evaluates (``eval.every_steps`` and ``data.val`` set), the greedy grounding
    evaluation on ``val_samples`` (default: read from ``data.val``)."""
    from ..data.schema import read_jsonl
    from .callbacks import GroundingEvalCallback, PlotCallback
    from .cpu_threads import adaptive_threads_callback

    callbacks = [PlotCallback(cfg.train.output_dir)]
    threads = adaptive_threads_callback()  # the demo's `threads: 0`: give way to other busy processes
    if threads is not None:
        callbacks.append(threads)
    evaluator = None
    if cfg.evaluates:
        val = val_samples if val_samples is not None else read_jsonl(cfg.data.val)
        evaluator = GroundingEvalCallback(val, processor, frame, template, cfg.eval, cfg.train.output_dir)
        callbacks.append(evaluator)
    trainer = trainer_cls(model=model, processing_class=processor, callbacks=callbacks, **trainer_kwargs)
    if evaluator is not None:
        evaluator.attach(trainer)
    return trainer, evaluator


def train_and_save(trainer, processor, frame, cfg) -> dict:
    """Train (resuming per ``cfg.train.resume``: :mod:`medground.train.run_folder`), save
    ``OUTPUT/final`` (model, processor, ``medground.json``) and return :func:`run_summary`;
    a checkpoint that cannot be resumed is reported as a :class:`MedgroundError`."""
    from .run_folder import plan_run, start_run

    resume = start_run(plan_run(cfg)) if is_main_process() else _plan_quietly(cfg)
    write_run_config(cfg)
    try:
        trainer.train(resume_from_checkpoint=resume)
    except (ValueError, RuntimeError) as exc:
        if resume and "checkpoint" in str(exc).lower():
            raise MedgroundError(f"cannot resume from {resume}: {exc}") from None
        raise
    final = save_final(trainer, processor, frame, cfg.data.template, cfg)
    return run_summary(trainer, Path(final), cfg)

