"""Training configs: YAML sections, command-line overrides, reward terms, the checks that
relate fields (each names them), and the NOTE of defaults that differ from TRL's."""

from __future__ import annotations

import dataclasses
import logging

import pytest
import yaml

from medground.config import notes
from medground.errors import MedgroundError
from medground.train.config import (
    LOSS_TYPES,
    SCHEDULERS,
    GRPOOptions,
    GRPORunConfig,
    SFTOptions,
    SFTRunConfig,
    TrainConfig,
    load_config,
    parse_rewards,
    save_config,
)

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


def test_reward_terms_from_yaml_list_and_string():
    specs = parse_rewards([{"name": "semantic", "weight": 0.5, "options": {"encoder": "enc"}}, "format"])
    assert [(s.name, s.weight, s.options) for s in specs] == [("semantic", 0.5, {"encoder": "enc"}), ("format", 1.0, {})]
    with pytest.raises(MedgroundError):
        parse_rewards([])


# --------------------------------------------------------------------------- checks that relate fields

BAD = [  # (overrides, the field(s) the error must name)
    (["--grpo.vllm_mode", "remote"], "grpo.vllm_mode"),
    (["--grpo.loss_type", "ppo"], "grpo.loss_type"),
    (["--grpo.scale_rewards", "std"], "grpo.scale_rewards"),
    (["--grpo.num_generations", "1"], "grpo.num_generations"),
    (["--grpo.epsilon_high", "0.1"], "grpo.epsilon_high, grpo.epsilon"),
    (["--grpo.generation_batch_size", "12"], "grpo.generation_batch_size, grpo.num_generations"),
    (["--grpo.temperature", "0"], "grpo.temperature"),
    (["--grpo.top_p", "1.5"], "grpo.top_p"),
    (["--grpo.beta", "-0.1"], "grpo.beta"),
    (["--grpo.vllm_gpu_memory_utilization", "0"], "grpo.vllm_gpu_memory_utilization"),
    (["--train.learning_rate", "0"], "train.learning_rate"),
    (["--train.per_device_train_batch_size", "0"], "train.per_device_train_batch_size"),
    (["--train.save_steps", "0"], "train.save_steps"),
    (["--model.dtype", "float8"], "model.dtype"),
    (["--model.frame", "polar"], "model.frame"),
    (["--model.min_pixels", "5000", "--model.max_pixels", "4000"], "model.min_pixels, model.max_pixels"),
    (["--data.template", "nope"], "data.template"),
    (["--data.max_train_samples", "0"], "data.max_train_samples"),
    (["--lora.enabled", "--lora.target_modules", "[]"], "lora.enabled, lora.target_modules"),
    (["--lora.dropout", "1"], "lora.dropout"),
    (["--eval.iou_threshold", "1.5"], "eval.iou_threshold"),
    (["--eval.batch_size", "0"], "eval.batch_size"),
    (["--rewards", "[]"], "rewards"),
    (["--rewards", "[{weight: 2}]"], "rewards[0].name"),
    # impossible values fail when the config loads, before any heavy work (TRL would accept most of them)
    (["--train.learning_rate", "-1"], "train.learning_rate"),
    (["--train.learning_rate", "inf"], "train.learning_rate"),
    (["--train.learning_rate", "nan"], "train.learning_rate"),
    (["--train.weight_decay", ".inf"], "train.weight_decay"),
    (["--train.seed", "-1"], "train.seed"),
    (["--train.max_steps", "0"], "train.max_steps"),
    (["--train.max_steps", "-5"], "train.max_steps"),
    (["--train.num_train_epochs", "0"], "train.max_steps, train.num_train_epochs"),
    (["--train.lr_scheduler_type", "cosin"], "train.lr_scheduler_type"),
    (["--train.warmup_steps", "2.5"], "train.warmup_steps"),
    (["--rewards", "iou,nosuch:2"], "rewards[1].name"),
    (["--rewards", "[{name: iou, options: {treshold: 0.5}}]"], "rewards[0].options"),
]


@pytest.mark.parametrize("args, fields", BAD, ids=[b[1] for b in BAD])
def test_each_check_names_its_fields(args, fields):
    with pytest.raises(MedgroundError) as exc:
        load_config(GRPORunConfig, None, args)
    assert str(exc.value).startswith(f"{fields}: "), str(exc.value)


def test_sft_section_checks():
    with pytest.raises(MedgroundError, match=r"^sft\.max_length: must be >= 1"):
        load_config(SFTRunConfig, None, ["--sft.max_length", "0"])


def test_a_check_from_a_file_names_the_file_and_line(tmp_path):
    p = tmp_path / "grpo.yaml"
    p.write_text("model: {path: m}\ngrpo:\n  num_generations: 8\n  vllm_mode: remote\n")
    with pytest.raises(MedgroundError, match=r"grpo\.yaml:4: grpo\.vllm_mode: must be one of colocate, server"):
        load_config(GRPORunConfig, p)


def test_evaluation_without_validation_file_is_a_logged_warning_not_a_silent_change(caplog):
    with caplog.at_level(logging.WARNING, logger="medground.train.config"):
        cfg = load_config(SFTRunConfig, values={"data": {"train": "t.jsonl"}, "eval": {"every_steps": 20}})
    assert "evaluation is off: eval.every_steps is 20 but data.val names no validation file" in caplog.text
    assert cfg.eval.every_steps == 20 and not cfg.evaluates  # the value is kept, the run does not evaluate
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="medground.train.config"):
        assert load_config(SFTRunConfig, values={"data": {"val": "v.jsonl"}}).evaluates
        assert not load_config(SFTRunConfig, values={"eval": {"every_steps": 0}}).evaluates
    assert "evaluation is off" not in caplog.text


def _trl_defaults(cls) -> dict:
    out = {}
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = f.default_factory()
    return out


@pytest.mark.parametrize("ours, theirs", [(GRPOOptions, "GRPOConfig"), (TrainConfig, "GRPOConfig"),
                                          (TrainConfig, "SFTConfig"), (SFTOptions, "SFTConfig")])
def test_defaults_that_differ_from_trl_are_named_in_the_docstring_note(ours, theirs):
    import trl

    trl_defaults = _trl_defaults(getattr(trl, theirs))
    note = notes(ours)[""]
    differ = [name for name, value in _trl_defaults(ours).items()
              if name in trl_defaults and trl_defaults[name] != value]
    assert differ  # the comparison found fields
    for name in differ:
        assert f"``{name}``" in note, f"{ours.__name__}.{name} differs from TRL's {theirs} but its NOTE omits it"


def test_schedulers_are_the_ones_transformers_has():
    from transformers.trainer_utils import SchedulerType

    assert set(SCHEDULERS) == {s.value for s in SchedulerType}


def test_an_unknown_reward_fails_with_the_registry_close_match_even_for_print_config(capsys):
    from medground.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["train", "grpo", "--rewards", "format,ioux:2", "--print-config"])
    assert exc.value.code == 2
    assert capsys.readouterr().err.strip() == (
        "error: rewards[1].name: unknown reward 'ioux'; did you mean iou, giou? (see `medground rewards list`)")


def test_loss_types_are_the_ones_trl_computes():
    import re

    from trl import GRPOConfig

    help_ = {f.name: f for f in dataclasses.fields(GRPOConfig)}["loss_type"].metadata["help"]
    listed = re.search(r"Supported values are (.*?)\. ", help_).group(1)
    assert set(re.findall(r"'(\w+)'", listed)) == set(LOSS_TYPES)


def test_the_reasoning_reward_without_its_reference_fails_when_the_config_loads(capsys):
    from medground.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["train", "grpo", "--rewards", "format,reasoning", "--print-config"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "rewards: the reasoning reward needs a reference: set data.reasoning" in err and "Traceback" not in err
    with pytest.raises(SystemExit) as exc:
        main(["train", "grpo", "--rewards", "format,reasoning", "--data.reasoning", "{findings}", "--print-config"])
    assert exc.value.code == 0 and "reasoning: '{findings}'" in capsys.readouterr().out
