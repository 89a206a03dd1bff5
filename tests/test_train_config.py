"""Training configs: YAML sections, command-line overrides, reward specs, clear errors."""

from __future__ import annotations

import pytest
import yaml

from medground.errors import MedgroundError
from medground.train.config import GRPORunConfig, SFTRunConfig, load_config, parse_rewards, save_config

YAML = """
model: {path: ckpt, frame: qwen2.5-vl}
data: {train: train.jsonl, val: val.jsonl, template: chain_of_box}
train: {output_dir: out, learning_rate: 1.0e-6, max_steps: 100, trl: {max_prompt_length: 512}}
grpo: {num_generations: 8, beta: 0.04, loss_type: grpo, scale_rewards: batch}
rewards:
  - {name: format, weight: 0.5}
  - {name: iou, weight: 2, options: {threshold: 0.5}}
"""


@pytest.fixture
def cfg_file(tmp_path):
    p = tmp_path / "grpo.yaml"
    p.write_text(YAML)
    return p


def test_yaml_maps_onto_sections(cfg_file):
    cfg = load_config(GRPORunConfig, cfg_file)
    assert cfg.model.path == "ckpt" and cfg.data.template == "chain_of_box"
    assert cfg.train.learning_rate == 1e-6 and cfg.train.max_steps == 100
    assert cfg.train.trl == {"max_prompt_length": 512}
    assert (cfg.grpo.num_generations, cfg.grpo.beta, cfg.grpo.loss_type) == (8, 0.04, "grpo")
    assert [(r.name, r.weight, r.options) for r in cfg.rewards] == [
        ("format", 0.5, {}), ("iou", 2.0, {"threshold": 0.5})]
    # untouched fields keep their defaults
    assert cfg.grpo.epsilon == 0.2 and cfg.lora.enabled is False


def test_overrides_by_section_and_by_unique_name(cfg_file):
    cfg = load_config(GRPORunConfig, cfg_file, [
        "--train.learning_rate", "3e-5", "--num_generations", "4", "--temperature=0.7",
        "--lora.enabled", "true", "--lora.target_modules", "q_proj,v_proj", "--grpo.use_vllm", "false",
        "--rewards", "format,iou:2,giou:0.5", "--train.trl.max_prompt_length", "256",
    ])
    assert cfg.train.learning_rate == 3e-5
    assert cfg.grpo.num_generations == 4 and cfg.grpo.temperature == 0.7
    assert cfg.lora.enabled is True and cfg.lora.target_modules == ["q_proj", "v_proj"]
    assert [(r.name, r.weight) for r in cfg.rewards] == [("format", 1.0), ("iou", 2.0), ("giou", 0.5)]
    assert cfg.train.trl["max_prompt_length"] == 256


@pytest.mark.parametrize("args, message", [
    (["--nope", "1"], "unknown config field"),
    (["--train.nope", "1"], "unknown config field"),
    (["--bogus.x", "1"], "unknown config section"),
    (["--num_generations", "many"], "num_generations"),
    (["--max_new_tokens"], "needs a value"),
    (["--rewards", "iou:heavy"], "weight must be a number"),
])
def test_bad_overrides_raise_clear_errors(cfg_file, args, message):
    with pytest.raises(MedgroundError, match=message):
        load_config(GRPORunConfig, cfg_file, args)


def test_ambiguous_field_names_its_sections():
    # log_completions is a field of both eval and grpo: the message says how to qualify it
    with pytest.raises(MedgroundError, match=r"ambiguous.*--eval.log_completions.*--grpo.log_completions"):
        load_config(GRPORunConfig, None, ["--log_completions", "2"])
    cfg = load_config(GRPORunConfig, None, ["--eval.log_completions", "2"])
    assert cfg.eval.log_completions == 2 and cfg.grpo.log_completions is True


def test_unknown_yaml_key_names_file(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("train: {learning_rat: 1}\n")
    with pytest.raises(MedgroundError, match=r"bad.yaml.*train\.learning_rat"):
        load_config(SFTRunConfig, p)


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(MedgroundError, match="not found"):
        load_config(SFTRunConfig, tmp_path / "missing.yaml")
    p = tmp_path / "list.yaml"
    p.write_text("- a\n- b\n")
    with pytest.raises(MedgroundError, match="mapping"):
        load_config(SFTRunConfig, p)


def test_saved_config_loads_back_identically(cfg_file, tmp_path):
    cfg = load_config(GRPORunConfig, cfg_file, ["--grpo.epsilon_high", "0.28"])
    out = save_config(cfg, tmp_path / "saved.yaml")
    again = load_config(GRPORunConfig, out)
    assert again == cfg
    assert yaml.safe_load(out.read_text())["grpo"]["epsilon_high"] == 0.28


def test_reward_specs_from_yaml_list_and_string():
    specs = parse_rewards([{"name": "semantic", "weight": 0.5, "options": {"encoder": "enc"}}, "format"])
    assert [(s.name, s.weight, s.options) for s in specs] == [("semantic", 0.5, {"encoder": "enc"}), ("format", 1.0, {})]
    with pytest.raises(MedgroundError):
        parse_rewards([])
