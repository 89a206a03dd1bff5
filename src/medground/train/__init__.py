"""Training on TRL: SFT warm start (:func:`run_sft`) and GRPO (:func:`run_grpo`).

Configs are dataclasses loaded from YAML with command-line overrides
(:func:`load_config`); see ``docs/training.md``.
"""

from .config import GRPORunConfig, RewardSpec, SFTRunConfig, load_config, save_config

__all__ = ["GRPORunConfig", "RewardSpec", "SFTRunConfig", "load_config", "save_config", "run_sft", "run_grpo"]


def run_sft(cfg):
    from .sft import run_sft as _run

    return _run(cfg)


def run_grpo(cfg):
    from .grpo import run_grpo as _run

    return _run(cfg)
