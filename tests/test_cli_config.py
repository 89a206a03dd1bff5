"""The commands that take a config (`train sft|grpo`, `demo`, `semantic fit`, `model tiny`):
their flags reach the config through the one loader, and --help lists every field with
the help and default read from the dataclass."""

from __future__ import annotations

import dataclasses

import pytest
import yaml
from typer.testing import CliRunner

from medground.cli import app, main
from medground.config import describe

WIDE = {"COLUMNS": "400", "TERMINAL_WIDTH": "400"}


def _help(*command: str) -> str:
    result = CliRunner().invoke(app, [*command, "--help"], env=WIDE)
    assert result.exit_code == 0, result.output
    return result.output


def _row(text: str, flag: str) -> str | None:
    """The help row of option ``flag``."""
    for line in text.splitlines():
        cell = line.strip("│ ").split("  ")[0]
        if flag in cell.split(", "):
            return line
    return None


@pytest.mark.parametrize("command, target, dashes", [
    (("train", "grpo"), "medground.train.config:GRPORunConfig", False),
    (("train", "sft"), "medground.train.config:SFTRunConfig", False),
    (("semantic", "fit"), "medground.models.semantic_fit:FitConfig", True),
    (("model", "tiny"), "medground.models.tiny:TinyConfig", True),
])
def test_help_lists_every_field_with_its_help_and_default(command, target, dashes):
    from medground.registry import Entry

    text = _help(*command)
    for d in describe(Entry("config", target).load()):
        flag = d.flags[0].replace("_", "-") if dashes else d.flags[0]
        line = _row(text, flag)
        assert line is not None, flag
        assert d.help in line, (flag, d.help)
        if d.default is not None:
            assert f"[default: {d.default}]" in line, (flag, d.default)


def test_demo_help_shows_the_recipe_values():
    from medground.demo import load_demo_config

    text = _help("demo")
    recipe = load_demo_config()
    assert f"[default: {recipe.images}]" in _row(text, "--images")
    assert f"[default: {recipe.grpo['train']['max_steps']}]" in _row(text, "--grpo.train.max_steps")
    assert "--no-semantic" in text and "--out" in text


def test_model_tiny_flags_reach_the_tiny_config(tmp_path, monkeypatch, capsys):
    import medground.models.tiny as tiny

    got = {}
    monkeypatch.setattr(tiny, "build_tiny_model", lambda out, seed, config, overwrite, family: got.update(
        seed=seed, config=config, overwrite=overwrite, family=family) or out)
    (tmp_path / "tiny.yaml").write_text("vision_heads: 4\nvision_hidden_size: 64\n")
    with pytest.raises(SystemExit) as done:
        main(["model", "tiny", "--out", str(tmp_path / "m"), "--seed", "5", "--hidden-size", "64", "--layers", "3",
              "--vision-depth", "1", "--max-pixels", "4096", "--min-pixels", "784", "--template", "chain_of_box",
              "--overwrite", "--config", str(tmp_path / "tiny.yaml")])
    assert done.value.code in (0, None)
    assert got["seed"] == 5 and got["overwrite"] is True and got["family"] == "qwen2.5-vl"  # the default family
    assert dataclasses.asdict(got["config"]) == dataclasses.asdict(tiny.TinyConfig(
        hidden_size=64, intermediate_size=128, num_hidden_layers=3, vision_depth=1, max_pixels=4096, min_pixels=784,
        template="chain_of_box", vision_heads=4, vision_hidden_size=64))
    assert "wrote tiny" in capsys.readouterr().out


def test_semantic_fit_flags_reach_the_fit_config(tmp_path, monkeypatch):
    import medground.models.semantic_fit as semantic_fit

    got = {}

    def fake_fit(data, out, val=None, config=None, log=None, progress=True):
        got.update(data=str(data), out=str(out), val=str(val), config=config)
        raise SystemExit(0)

    monkeypatch.setattr(semantic_fit, "fit", fake_fit)
    with pytest.raises(SystemExit):
        main(["semantic", "fit", "--data", "d.jsonl", "--out", "o", "--val", "v.jsonl", "--epochs", "3",
              "--batch-size", "16", "--lr", "1e-3", "--image-size", "32", "--patch-size", "4", "--hidden-size", "32",
              "--layers", "2", "--margin", "0.2", "--jitter", "0.05", "--val-fraction", "0.2", "--seed", "9"])
    assert (got["data"], got["out"], got["val"]) == ("d.jsonl", "o", "v.jsonl")
    assert got["config"] == semantic_fit.FitConfig(epochs=3, batch_size=16, lr=1e-3, image_size=32, patch_size=4,
                                                   hidden_size=32, layers=2, margin=0.2, jitter=0.05,
                                                   val_fraction=0.2, seed=9)


def test_train_print_config_resolves_file_and_overrides(tmp_path):
    cfg = tmp_path / "grpo.yaml"
    cfg.write_text("model: {path: m}\ndata: {train: t.jsonl, val: v.jsonl}\n")
    result = CliRunner().invoke(app, ["train", "grpo", "--config", str(cfg), "--print-config", "--num_generations",
                                      "4", "--rewards", "format,iou:2", "--train.trl.max_prompt_length", "256"])
    assert result.exit_code == 0, result.output
    printed = yaml.safe_load(result.stdout)
    assert printed["model"]["path"] == "m" and printed["grpo"]["num_generations"] == 4
    assert printed["train"]["trl"] == {"max_prompt_length": 256}
    assert [(r["name"], r["weight"]) for r in printed["rewards"]] == [("format", 1.0), ("iou", 2.0)]


@pytest.mark.parametrize("argv, message", [
    (["semantic", "fit", "--data", "d", "--out", "o", "--epoch", "3"], "unknown config field 'epoch'; did you mean epochs"),
    (["semantic", "fit", "--data", "d", "--out", "o", "--batch-size", "1"], "batch_size: must be >= 2"),
    (["model", "tiny", "--out", "m", "--hidden-size", "100"], "hidden_size, num_attention_heads: text head dim"),
    (["train", "grpo", "--print-config", "--grpo.vllm_mode", "remote"], "grpo.vllm_mode: must be one of"),
    (["train", "grpo", "--print-config", "--log_completions", "2"], "--log_completions is ambiguous"),
])
def test_bad_config_on_the_command_line_is_one_line_and_exit_2(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
