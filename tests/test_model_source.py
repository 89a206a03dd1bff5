"""Where ``--model`` points (a local folder or a hub id), and whether a checkpoint folder is
complete, decided before anything loads: a typo never goes online, a truncated weights
file or a half-written checkpoint is one line naming the file."""

from __future__ import annotations

import json
import shutil
import socket
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from medground.cli import main
from medground.errors import MedgroundError
from medground.models.checkpoints import (
    checkpoint_problems,
    latest_complete_checkpoint,
    safetensors_problem,
    weights_problems,
)
from medground.models.policy import load_policy
from medground.models.source import looks_like_path, resolve_model_source

# --------------------------------------------------------------------------- local folder or hub id


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """A working folder holding models/tiny (a checkpoint folder), online mode, no network."""
    (tmp_path / "models" / "tiny").mkdir(parents=True)
    (tmp_path / "models" / "tiny" / "config.json").write_text("{}")
    monkeypatch.chdir(tmp_path)
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    attempts = []

    def refuse(self, address):
        attempts.append(address)
        raise OSError("network use in a test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    return attempts


@pytest.mark.parametrize("spec", ["models/tinyy", "./models/tiny2", "/nonexistent/tiny", "~/no-such-model",
                                  "a/b/c", "runs/", "models\\tiny", "tinyy"])
def test_a_path_that_does_not_exist_is_not_found_at_once(workdir, spec):
    assert looks_like_path(spec)
    with pytest.raises(MedgroundError, match="model directory not found"):
        resolve_model_source(spec)
    assert not workdir


def test_a_hub_id_is_used_only_online_and_when_no_such_path_exists(workdir, monkeypatch):
    src = resolve_model_source("Qwen/Qwen2.5-VL-3B-Instruct")
    assert (src.kind, src.path) == ("hub", "Qwen/Qwen2.5-VL-3B-Instruct")
    assert src.describe().startswith("model: hub id Qwen/Qwen2.5-VL-3B-Instruct")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(MedgroundError, match="HF_HUB_OFFLINE is set"):
        resolve_model_source("Qwen/Qwen2.5-VL-3B-Instruct")
    local = resolve_model_source("models/tiny", check_weights=False)
    assert local.local and local.describe() == "model: local folder models/tiny"


def test_cli_typo_is_one_line_with_a_close_match_and_no_network(workdir, capsys):
    Path("d.jsonl").write_text('{"id": "a", "image": "a.png", "query": "q", "boxes": [[0, 0, 1, 1]]}\n')
    with pytest.raises(SystemExit) as exc:
        main(["predict", "--model", "models/tinyy", "--data", "d.jsonl", "--out", "p.jsonl"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: models/tinyy: model directory not found; did you mean models/tiny?"]
    assert not workdir  # nothing tried to reach huggingface.co


def test_a_file_is_not_a_model_folder(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"x")
    with pytest.raises(MedgroundError, match="is a file; --model takes the checkpoint folder"):
        resolve_model_source(tmp_path / "model.safetensors")


# --------------------------------------------------------------------------- complete checkpoints


def _checkpoint(path, step: int, max_steps: int = 10):
    """A small trainer checkpoint: config, weights, optimiser, trainer state."""
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps({"model_type": "x"}))
    save_file({"w": torch.arange(64, dtype=torch.float32), "b": torch.zeros(3)}, str(path / "model.safetensors"))
    torch.save({"state": {}, "param_groups": []}, path / "optimizer.pt")
    (path / "trainer_state.json").write_text(json.dumps({"global_step": step, "max_steps": max_steps}))
    return path


def _truncate(path, keep: int | None = None):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2 if keep is None else keep])


def test_a_complete_checkpoint_has_no_problem(tmp_path):
    ckpt = _checkpoint(tmp_path / "checkpoint-2", 2)
    assert checkpoint_problems(ckpt) == [] and weights_problems(ckpt) == []


@pytest.mark.parametrize("damage, message", [
    (lambda c: _truncate(c / "model.safetensors"), "model.safetensors: truncated"),
    (lambda c: _truncate(c / "model.safetensors", keep=5), "shorter than the 8-byte header length"),
    (lambda c: _truncate(c / "model.safetensors", keep=40), "truncated: its header is"),
    (lambda c: (c / "model.safetensors").write_bytes((c / "model.safetensors").read_bytes() + b"junk"),
     "not a complete safetensors file"),
    (lambda c: (c / "trainer_state.json").unlink(), "trainer_state.json: missing"),
    (lambda c: (c / "trainer_state.json").write_text('{"global_st'), "trainer_state.json: incomplete"),
    (lambda c: _truncate(c / "optimizer.pt"), "optimizer.pt: incomplete"),
    (lambda c: (c / "config.json").write_text("{"), "config.json is not valid JSON"),
    (lambda c: (c / "model.safetensors").unlink(), "no weights file"),
])
def test_each_kind_of_half_written_checkpoint_is_named(tmp_path, damage, message):
    ckpt = _checkpoint(tmp_path / "checkpoint-4", 4)
    damage(ckpt)
    problems = checkpoint_problems(ckpt)
    assert problems and message in problems[0], problems


def test_sharded_weights_are_checked_shard_by_shard(tmp_path):
    d = tmp_path / "m"
    d.mkdir()
    (d / "config.json").write_text("{}")
    save_file({"a": torch.zeros(4)}, str(d / "model-00001-of-00002.safetensors"))
    save_file({"b": torch.zeros(4)}, str(d / "model-00002-of-00002.safetensors"))
    index = {"weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}
    (d / "model.safetensors.index.json").write_text(json.dumps(index))
    assert weights_problems(d) == []
    _truncate(d / "model-00002-of-00002.safetensors")
    assert weights_problems(d) == [f"{d / 'model-00002-of-00002.safetensors'}: " +
                                   safetensors_problem(d / "model-00002-of-00002.safetensors")]
    (d / "model-00001-of-00002.safetensors").unlink()
    assert any("missing (named by model.safetensors.index.json)" in p for p in weights_problems(d))


def test_the_newest_complete_checkpoint_is_chosen_and_each_skip_explained(tmp_path):
    for step in (2, 4, 6):
        _checkpoint(tmp_path / f"checkpoint-{step}", step)
    _truncate(tmp_path / "checkpoint-6" / "model.safetensors")
    (tmp_path / "checkpoint-4" / "trainer_state.json").unlink()
    (tmp_path / "checkpoint-10").mkdir()  # a save killed right after the folder was made
    choice = latest_complete_checkpoint(tmp_path)
    assert choice.path == tmp_path / "checkpoint-2" and choice.step == 2
    assert [p.name for p, _ in choice.skipped] == ["checkpoint-10", "checkpoint-6", "checkpoint-4"]
    assert "not a model checkpoint" in choice.skipped[0][1]
    assert "model.safetensors: truncated" in choice.skipped[1][1]
    assert "trainer_state.json: missing" in choice.skipped[2][1]


# --------------------------------------------------------------------------- a truncated model given to predict


@pytest.fixture(scope="module")
def truncated_model(tmp_path_factory):
    from medground.models.tiny import TinyConfig, build_tiny_model

    tiny = TinyConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, vision_hidden_size=32,
                      vision_intermediate_size=64, vision_depth=1)
    good = build_tiny_model(tmp_path_factory.mktemp("m") / "tiny", seed=0, config=tiny)
    bad = good.parent / "cut"
    shutil.copytree(good, bad)
    _truncate(bad / "model.safetensors")
    return good, bad


def test_a_truncated_model_file_is_named_before_loading(truncated_model):
    good, bad = truncated_model
    assert load_policy(good, device="cpu").model is not None
    with pytest.raises(MedgroundError, match=r"cut/model\.safetensors: truncated"):
        load_policy(bad, device="cpu")


def test_cli_predict_with_a_truncated_model_is_one_line_exit_2(truncated_model, tmp_path, capsys):
    _, bad = truncated_model
    (tmp_path / "d.jsonl").write_text('{"id": "a", "image": "a.png", "query": "q", "boxes": [[0, 0, 1, 1]]}\n')
    with pytest.raises(SystemExit) as exc:
        main(["predict", "--model", str(bad), "--data", str(tmp_path / "d.jsonl"), "--out", str(tmp_path / "p.jsonl")])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {bad / 'model.safetensors'}: truncated"), err
