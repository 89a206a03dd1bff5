"""The shipped recipes load, name existing rewards with valid options, and build TRL configs."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from medground import rewards
from medground.templates import get_template
from medground.train.config import GRPORunConfig, SFTRunConfig, load_config

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
GRPO = ["medground_r1_mscxr_3b.yaml", "medground_r1_mscxr_7b.yaml", "medreasoner_umrg.yaml", "open_set_mscxr_cxr8_3b.yaml"]


@pytest.mark.parametrize("name", GRPO)
def test_grpo_recipes_are_valid(name):
    from trl import GRPOConfig

    from medground.train.common import make_trl_config
    from medground.train.grpo import grpo_trl_options

    cfg = load_config(GRPORunConfig, CONFIGS / name)
    get_template(cfg.data.template)
    for r in cfg.rewards:
        unknown = set(r.options) - set(rewards.spec(r.name).options)
        assert not unknown, (name, r.name, unknown)
    cfg.train.bf16 = False  # CI has no GPU; everything else as shipped
    cfg.train.output_dir = "/tmp/medground-recipe-check"
    args = make_trl_config(GRPOConfig, cfg.train, **grpo_trl_options(cfg, [r.weight for r in cfg.rewards]))
    assert args.num_generations == cfg.grpo.num_generations == 8
    assert args.reward_weights == [r.weight for r in cfg.rewards]


def test_medground_r1_recipe_is_the_paper_setting():
    cfg = load_config(GRPORunConfig, CONFIGS / "medground_r1_mscxr_7b.yaml")
    assert cfg.model.path == "Qwen/Qwen2.5-VL-7B-Instruct" and cfg.data.template == "chain_of_box"
    assert [r.name for r in cfg.rewards] == ["format", "iou", "semantic"]
    assert cfg.rewards[1].options["threshold"] == 0.5


def test_open_set_recipe_takes_the_set_rewards_by_name():
    cfg = load_config(GRPORunConfig, CONFIGS / "open_set_mscxr_cxr8_3b.yaml")
    assert cfg.model.path == "Qwen/Qwen2.5-VL-3B-Instruct" and cfg.data.template == "r1_open"
    assert {"set_f1", "set_iou", "negative"} <= {r.name for r in cfg.rewards}
    open_demo = yaml.safe_load((CONFIGS / "demo_open_cpu.yaml").read_text())
    demo = load_config(GRPORunConfig, values=open_demo["grpo"])
    assert {"set_f1", "negative"} <= {r.name for r in demo.rewards}


def test_sft_recipe_and_demo_recipe_load():
    cfg = load_config(SFTRunConfig, CONFIGS / "medground_r1_mscxr_3b_sft.yaml")
    assert cfg.sft.completion_only_loss and cfg.data.template == "chain_of_box"
    demo = yaml.safe_load((CONFIGS / "demo_cpu.yaml").read_text())
    load_config(SFTRunConfig, values=demo["sft"])
    load_config(GRPORunConfig, values=demo["grpo"])


@pytest.mark.parametrize("name", ["ddp.yaml", "zero2.yaml", "zero3.yaml", "fsdp.yaml"])
def test_accelerate_configs_parse(name):
    from accelerate.commands.config.config_args import load_config_from_file

    cfg = load_config_from_file(str(CONFIGS / "accelerate" / name))
    assert cfg.num_processes == 8 and cfg.mixed_precision == "bf16"
