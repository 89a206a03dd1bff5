"""SFT and GRPO on a tiny Qwen2.5-VL: what a user relies on after `medground train`.

* SFT learns the teacher completions (loss on the completion only) and saves a policy
  that loads with its frame and template;
* GRPO builds the named rewards in the policy's frame with their weights, logs them and
  the validation grounding metrics, writes completions and the plot;
* an interrupted GRPO run resumed from its checkpoint continues with the same weights:
  the metrics of the steps after the resume and the final weights equal those of an
  uninterrupted run.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from medground.data.phantom import generate_phantom_dataset
from medground.errors import MedgroundError
from medground.geometry import Frame
from medground.models.tiny import TinyConfig, build_tiny_model
from medground.train import GRPORunConfig, SFTRunConfig, load_config
from medground.train.callbacks import CURVES_PNG, VAL_COMPLETIONS
from medground.train.grpo import build_grpo_trainer, build_rewards, run_grpo
from medground.train.sft import build_sft_trainer, run_sft

TINY = TinyConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=1, vision_hidden_size=32,
                  vision_intermediate_size=64, vision_depth=1, max_pixels=64 * 64)
CPU = {"use_cpu": True, "bf16": False, "report_to": ["tensorboard"], "logging_steps": 1}


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    generate_phantom_dataset(root / "data", n=10, seed=3, size=64, val_frac=0.2, test_frac=0.1, progress=False)
    build_tiny_model(root / "tiny", seed=0, config=TINY)
    return root


def _sft_cfg(assets, out, **train):
    return load_config(SFTRunConfig, values={
        "model": {"path": str(assets / "tiny")},
        "data": {"train": str(assets / "data/train.jsonl"), "val": str(assets / "data/val.jsonl"), "template": "r1"},
        "train": {"output_dir": str(out), "learning_rate": 3e-3, "per_device_train_batch_size": 4,
                  "save_steps": 100, **CPU, **train},
        "sft": {"think": "located"},
        "eval": {"every_steps": 0},
    })


def _grpo_cfg(assets, model, out, **train):
    return load_config(GRPORunConfig, values={
        "model": {"path": str(model)},
        "data": {"train": str(assets / "data/train.jsonl"), "val": str(assets / "data/val.jsonl"), "template": "r1",
                 "max_train_samples": 4},  # the samples the SFT fixture learnt: rewards vary within groups
        "train": {"output_dir": str(out), "learning_rate": 1e-3, "per_device_train_batch_size": 4,
                  "max_steps": 4, "save_steps": 2, "seed": 7, **CPU, **train},
        "grpo": {"num_generations": 4, "max_completion_length": 40, "temperature": 0.3, "num_completions_to_print": 0},
        "eval": {"every_steps": 2, "max_samples": 4, "batch_size": 4, "max_new_tokens": 40},
        "rewards": [{"name": "format", "weight": 0.5}, {"name": "iou", "weight": 2.0, "options": {"soft": True}}],
    })


@pytest.fixture(scope="module")
def sft_run(assets):
    cfg = _sft_cfg(assets, assets / "sft", max_steps=40, lr_scheduler_type="constant")
    cfg.data.max_train_samples = 4
    cfg.eval.every_steps = 20
    cfg.eval.max_samples = 4
    return cfg, run_sft(cfg)


def test_sft_loss_covers_the_completion_only(assets):
    cfg = _sft_cfg(assets, assets / "sft_collate", max_steps=1)
    trainer, processor, frame, _ = build_sft_trainer(cfg)
    batch = next(iter(trainer.get_train_dataloader()))
    tok = processor.tokenizer
    teacher = {row["completion"][0]["content"][0]["text"] for row in trainer.train_dataset}
    assert len(batch["input_ids"]) == 4
    for ids, labels in zip(batch["input_ids"], batch["labels"]):
        kept = labels[labels != -100]
        assert 0 < len(kept) < (ids != tok.pad_token_id).sum()  # the prompt (with its image) is masked
        assert tok.decode(kept, skip_special_tokens=True).strip() in teacher


def test_sft_learns_the_teacher_and_saves_a_loadable_policy(sft_run):
    from medground.models.policy import load_policy

    cfg, summary = sft_run
    out = Path(cfg.train.output_dir)
    losses = [h["loss"] for h in json.loads((out / "trainer_state.json").read_text())["log_history"] if "loss" in h]
    assert losses[-1] < 0.3 * losses[0]
    vals = [h for h in json.loads((out / "trainer_state.json").read_text())["log_history"] if "val/miou" in h]
    assert [h["step"] for h in vals] == [0, 20, 40]
    assert vals[0]["val/parsed"] == 0.0 < vals[-1]["val/parsed"]  # the untrained model never answers a box
    policy = load_policy(summary["final"])
    assert policy.template == "r1" and policy.frame.kind == "qwen2.5-vl"
    assert (policy.frame.min_pixels, policy.frame.max_pixels) == (TINY.min_pixels, TINY.max_pixels)
    assert (out / CURVES_PNG).stat().st_size > 0
    assert list((out / "runs").rglob("events.out.tfevents.*"))
    lines = [json.loads(x) for x in (out / VAL_COMPLETIONS).read_text().splitlines()]
    assert {x["step"] for x in lines} == {0, 20, 40} and all("completion" in x and "iou" in x for x in lines)


def test_rewards_get_the_policy_frame_and_weights():
    frame = Frame("qwen2.5-vl", min_pixels=3136, max_pixels=4096)
    specs = load_config(GRPORunConfig, values={"rewards": [
        {"name": "format", "weight": 0.5}, {"name": "iou", "weight": 2},
        {"name": "giou", "options": {"frame": "norm1000"}}]}).rewards
    funcs, weights = build_rewards(specs, frame)
    assert weights == [0.5, 2.0, 1.0]
    # the policy answers [0, 0, 56, 56] in a 56x56 resized frame of a 112x112 image: the whole image
    row = {"boxes": [[[0, 0, 112, 112]]], "width": [112], "height": [112]}
    done = [[{"role": "assistant", "content": '<think>x</think><answer>{"bbox_2d": [0, 0, 56, 56]}</answer>'}]]
    assert funcs[1](completions=done, **row) == [1.0]
    norm = [[{"role": "assistant", "content": '<think>x</think><answer>{"bbox_2d": [0, 0, 1000, 1000]}</answer>'}]]
    assert funcs[2](completions=norm, **row) == [1.0]
    with pytest.raises(MedgroundError, match="unknown reward"):
        build_rewards(load_config(GRPORunConfig, values={"rewards": ["ioux"]}).rewards, frame)


def test_grpo_logs_rewards_validation_and_completions(assets, sft_run):
    _, summary = sft_run
    out = assets / "grpo"
    cfg = _grpo_cfg(assets, summary["final"], out, max_steps=2)
    res = run_grpo(cfg)
    hist = json.loads((out / "trainer_state.json").read_text())["log_history"]
    keys = set().union(*hist)
    assert {"reward", "rewards/format/mean", "rewards/iou_soft/mean", "val/miou", "val/acc@0.5"} <= keys
    assert [h["step"] for h in hist if "val/miou" in h] == [0, 2]
    assert list((out / "completions").glob("*.parquet"))
    assert (out / CURVES_PNG).exists()
    assert Path(res["final"], "medground.json").exists()


def test_grpo_config_errors_are_clear(assets):
    cfg = _grpo_cfg(assets, assets / "tiny", assets / "bad", max_steps=1)
    cfg.grpo.num_generations = 3  # 4 prompts x 1 process is not divisible into groups of 3
    with pytest.raises(MedgroundError, match="divisible by num_generations"):
        build_grpo_trainer(cfg)
    cfg = _grpo_cfg(assets, assets / "missing", assets / "bad", max_steps=1)
    with pytest.raises(MedgroundError, match="not found"):
        build_grpo_trainer(cfg)


class _Crash(Exception):
    pass


def test_resumed_grpo_matches_an_uninterrupted_run(assets, sft_run, capsys):
    import shutil

    from transformers import TrainerCallback

    _, summary = sft_run
    full_dir, cut_dir = assets / "grpo_full", assets / "grpo_cut"
    run_grpo(_grpo_cfg(assets, summary["final"], full_dir))

    class CrashAfterFirstCheckpoint(TrainerCallback):
        def on_save(self, args, state, control, **kw):
            raise _Crash()

    cfg = _grpo_cfg(assets, summary["final"], cut_dir)
    trainer, *_ = build_grpo_trainer(cfg)
    trainer.add_callback(CrashAfterFirstCheckpoint())
    with pytest.raises(_Crash):
        trainer.train()
    assert sorted(p.name for p in cut_dir.glob("checkpoint-*")) == ["checkpoint-2"]
    del trainer
    # a newer save killed half-way: weights cut short, no trainer_state.json yet
    shutil.copytree(cut_dir / "checkpoint-2", cut_dir / "checkpoint-3")
    weights = cut_dir / "checkpoint-3" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    (cut_dir / "checkpoint-3" / "trainer_state.json").unlink()
    capsys.readouterr()
    run_grpo(_grpo_cfg(assets, summary["final"], cut_dir))  # resume="auto": skips checkpoint-3, picks checkpoint-2
    err = capsys.readouterr().err
    assert f"skipping checkpoint-3: {weights}: truncated" in err
    assert "resuming from checkpoint-2 (step 2 of 4)" in err

    def after_resume(d):
        hist = json.loads((d / "trainer_state.json").read_text())["log_history"]
        return {h["step"]: h for h in hist if h["step"] > 2 and "loss" in h}

    full, cut = after_resume(full_dir), after_resume(cut_dir)
    assert sorted(full) == sorted(cut) == [3, 4]
    assert any(full[s]["grad_norm"] > 0 for s in full)  # a real update happened after the resume
    for step in full:
        for key in ("loss", "reward", "rewards/iou_soft/mean", "rewards/format/mean", "grad_norm"):
            a, b = full[step][key], cut[step][key]
            assert (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, rel=1e-5, abs=1e-7), (step, key)
    from safetensors.torch import load_file

    wa = load_file(str(full_dir / "final/model.safetensors"))
    wb = load_file(str(cut_dir / "final/model.safetensors"))
    assert wa.keys() == wb.keys()
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    # and training did move the weights away from the SFT start
    w0 = load_file(str(Path(summary["final"]) / "model.safetensors"))
    assert any(not torch.equal(w0[k], wa[k]) for k in wa)
