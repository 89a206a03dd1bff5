"""GRPO on TRL's ``GRPOTrainer`` with medground rewards chosen by name.

Each :class:`~medground.train.config.RewardTerm` becomes
``medground.rewards.get(name, **options)``; its weight goes to TRL's
``reward_weights``.  Rewards that take a coordinate ``frame`` receive the policy's
frame unless the spec sets one (a ``frame`` or a ``family``), so boxes answered in the resized Qwen2.5-VL frame are
compared with the truth in original pixels.  Every TRL knob of
:class:`~medground.train.config.GRPOOptions` is passed through unchanged (vLLM in
colocate or server mode included).

    from medground.train import load_config, GRPORunConfig, run_grpo
    run_grpo(load_config(GRPORunConfig, "configs/medground_r1_mscxr_3b.yaml"))
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from ..errors import MedgroundError
from ..geometry import Frame
from .common import (
    ExactResumeMixin,
    check_before_loading,
    load_training_policy,
    make_trainer,
    make_trl_config,
    train_and_save,
)
from .config import GRPORunConfig, RewardTerm
from .run_folder import say
from .vllm_rollouts import (
    cpu_server_weight_sync,
    expand_images_once,
    fresh_vision_after_sync,
    reload_colocated_weights,
)


def build_rewards(terms: list[RewardTerm], frame: Frame) -> tuple[list, list[float]]:
    """Reward callables and weights from the reward terms (the policy's frame filled in)."""
    from .. import rewards

    funcs, weights = [], []
    for s in terms:
        options = dict(s.options)
        accepted = rewards.spec(s.name).options
        if "frame" in accepted and "frame" not in options and "family" not in options:
            options["frame"] = frame.name
            if frame.kind == "qwen2.5-vl":
                if "min_pixels" in accepted:
                    options.setdefault("min_pixels", frame.min_pixels)
                if "max_pixels" in accepted:
                    options.setdefault("max_pixels", frame.max_pixels)
        funcs.append(rewards.get(s.name, **options))
        weights.append(float(s.weight))
    return funcs, weights


def _trainer_class():
    from trl import GRPOTrainer

    class MedgroundGRPOTrainer(ExactResumeMixin, GRPOTrainer):
        """``GRPOTrainer`` whose resume reloads Qwen2.5-VL weights exactly."""

    return MedgroundGRPOTrainer


def grpo_trl_options(cfg: GRPORunConfig, weights: list[float]) -> dict:
    g = dataclasses.asdict(cfg.grpo)
    if not g.get("generation_batch_size"):
        g.pop("generation_batch_size")
    if cfg.grpo.use_vllm:
        try:
            import vllm  # noqa: F401
        except ImportError:
            raise MedgroundError("grpo.use_vllm needs vLLM: pip install 'medground[vllm]'") from None
    return {**g, "reward_weights": weights}


def build_grpo_trainer(cfg: GRPORunConfig):
    """``(trainer, processor, frame, eval_callback)`` ready to ``train()``."""
    from trl import GRPOConfig

    from ..data.trl_dataset import grpo_dataset
    from ..models.families import resolve_template

    train_samples, val_samples = check_before_loading(cfg)
    template = resolve_template(cfg.data.template)
    say("rewards: " + ", ".join(f"{r.name} x{r.weight:g}" for r in cfg.rewards))
    args = make_trl_config(GRPOConfig, cfg.train, **grpo_trl_options(cfg, [float(r.weight) for r in cfg.rewards]))
    model, processor, frame = load_training_policy(cfg)
    reward_funcs, weights = build_rewards(cfg.rewards, frame)
    dataset = grpo_dataset(train_samples, template, frame, limit=cfg.data.max_train_samples,
                           reasoning=cfg.data.reasoning)
    try:
        with cpu_server_weight_sync(args, Path(cfg.train.output_dir) / "vllm-weights") as attach:
            trainer, evaluator = make_trainer(_trainer_class(), cfg, model, processor, frame, template, val_samples,
                                              reward_funcs=reward_funcs, args=args, train_dataset=dataset)
            attach(trainer)
        expand_images_once(trainer)
        reload_colocated_weights(trainer)
        fresh_vision_after_sync(trainer)
    except ValueError as exc:  # TRL's own checks (batch size vs num_generations, ...)
        raise MedgroundError(f"GRPO configuration: {exc}") from None
    return trainer, processor, frame, evaluator


def run_grpo(cfg: GRPORunConfig) -> dict:
    """Train, save ``OUTPUT/final`` and return a summary (see :func:`run_summary`)."""
    trainer, processor, frame, _ = build_grpo_trainer(cfg)
    return train_and_save(trainer, processor, frame, cfg)
