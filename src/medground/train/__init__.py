"""Training on TRL: SFT warm start (:func:`run_sft`) and GRPO (:func:`run_grpo`).

Configs are dataclasses whose fields carry their help text, loaded from YAML with
command-line overrides by :func:`medground.config.load_config`; see ``docs/training.md``
and ``docs/configuration.md``.
"""

from .config import GRPORunConfig, RewardTerm, SFTRunConfig, load_config, save_config

__all__ = ["GRPORunConfig", "RewardTerm", "SFTRunConfig", "load_config", "save_config", "run_sft", "run_grpo"]


def run_sft(cfg):
    from .sft import run_sft as _run

    return _run(cfg)


def run_grpo(cfg):
    from .grpo import run_grpo as _run

    return _run(cfg)
