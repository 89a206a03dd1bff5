"""Supervised warm start on TRL's ``SFTTrainer``.

Teacher completions are written from the ground truth by the chosen template
(:func:`medground.data.trl_dataset.sft_dataset`; Chain-of-Box cites the other regions
of the image with their boxes), coordinates in the policy's frame.  The loss covers
the completion only (``completion_only_loss``).  Resume, the validation grounding
evaluation and the plot are the same as for GRPO.

    from medground.train import load_config, SFTRunConfig, run_sft
    run_sft(load_config(SFTRunConfig, "configs/medground_r1_mscxr_3b_sft.yaml", ["--train.max_steps", "50"]))
"""

from __future__ import annotations

from .common import (
    ExactResumeMixin,
    check_before_loading,
    load_training_policy,
    make_trainer,
    make_trl_config,
    train_and_save,
)
from .config import SFTRunConfig


def _trainer_class():
    from trl import SFTTrainer

    class MedgroundSFTTrainer(ExactResumeMixin, SFTTrainer):
        """``SFTTrainer`` whose resume reloads Qwen2.5-VL weights exactly."""

    return MedgroundSFTTrainer


def build_sft_trainer(cfg: SFTRunConfig):
    """``(trainer, processor, frame, eval_callback)`` ready to ``train()``."""
    from trl import SFTConfig

    from ..data.trl_dataset import sft_dataset
    from ..models.families import resolve_template

    train_samples, val_samples = check_before_loading(cfg)
    template = resolve_template(cfg.data.template)
    args = make_trl_config(
        SFTConfig, cfg.train, max_length=cfg.sft.max_length, completion_only_loss=cfg.sft.completion_only_loss,
    )
    model, processor, frame = load_training_policy(cfg)
    dataset = sft_dataset(train_samples, template, frame, limit=cfg.data.max_train_samples, think=cfg.sft.think)
    trainer, evaluator = make_trainer(_trainer_class(), cfg, model, processor, frame, template, val_samples,
                                      args=args, train_dataset=dataset)
    return trainer, processor, frame, evaluator


def run_sft(cfg: SFTRunConfig) -> dict:
    """Train, save ``OUTPUT/final`` (model, processor, ``medground.json``) and return a summary."""
    trainer, processor, frame, _ = build_sft_trainer(cfg)
    return train_and_save(trainer, processor, frame, cfg)
