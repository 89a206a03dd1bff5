"""`medground demo`, shortened: the whole pipeline end to end on a CPU, its report, and resume."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch

from medground.cli import main
from medground.demo import load_demo_config, run_demo, set_cpu_threads
from medground.errors import MedgroundError

SHORT = [
    "--threads", "1", "--images", "16", "--size", "64", "--overlays", "2", "--bootstrap", "20",
    "--tiny", "{hidden_size: 64, intermediate_size: 128, num_hidden_layers: 1, vision_hidden_size: 32, "
              "vision_intermediate_size: 64, vision_depth: 1}",
    "--semantic_fit", "{epochs: 1, layers: 1, hidden_size: 32, projection_dim: 32, image_size: 32, batch_size: 32}",
    "--sft.train.max_steps", "6", "--sft.eval.every_steps", "3", "--sft.eval.max_samples", "4",
    "--grpo.train.max_steps", "2", "--grpo.train.per_device_train_batch_size", "4",
    "--grpo.grpo.num_generations", "4", "--grpo.eval.every_steps", "2", "--grpo.eval.max_samples", "4",
]


pytestmark = pytest.mark.usefixtures("one_thread")


def test_threads_zero_means_every_usable_core():
    import os

    assert load_demo_config().threads == 0  # the recipe uses the whole machine
    try:
        assert set_cpu_threads(0) == len(os.sched_getaffinity(0)) == torch.get_num_threads()
        assert set_cpu_threads(1) == 1 == torch.get_num_threads()
    finally:
        torch.set_num_threads(1)


@pytest.mark.slow
def test_short_demo_end_to_end_and_resume(tmp_path, capsys):
    out = tmp_path / "demo"
    with pytest.raises(SystemExit) as done:
        main(["demo", "--out", str(out), *SHORT])
    assert done.value.code in (0, None)
    report = json.loads((out / "report.json").read_text())
    assert {"sft", "grpo", "config", "seconds", "peak_rss_mb"} <= set(report)
    for name in ("sft", "grpo"):
        m = report[name]
        assert m["n"] > 0 and 0 <= m["acc@0.5"] <= 100 and 0 <= m["miou"] <= 100
        assert set(m["per_category"]) <= {"nodule", "mass", "consolidation", "effusion", "pneumothorax", "cardiomegaly"}
    assert report["config"]["semantic"] is True and report["config"]["images"] == 16
    assert report["peak_rss_mb"] > 0 and report["seconds"] > 0
    # GRPO really used the three rewards, the semantic one with the fitted encoder
    grpo_cfg = (out / "grpo" / "config.yaml").read_text()
    assert "name: semantic" in grpo_cfg and str(out / "encoder") in grpo_cfg
    assert (out / "encoder" / "fit_report.json").exists()
    # the recipe's warm start sees only the explicit queries; GRPO and the test split have both kinds
    from medground.data.schema import read_jsonl

    sft_cfg = (out / "sft" / "config.yaml").read_text()
    assert "train_sft.jsonl" in sft_cfg and "train_sft.jsonl" not in grpo_cfg
    assert {s.meta["task"] for s in read_jsonl(out / "subset" / "train_sft.jsonl")} == {"explicit"}
    assert {s.meta["task"] for s in read_jsonl(out / "subset" / "train.jsonl")} == {"explicit", "implicit"}
    tasks = report["sft"]["per_task"]
    assert sum(t["n"] for t in tasks.values()) == report["sft"]["n"] and "explicit" in tasks
    md = (out / "report.md").read_text()
    assert "| query type |" in md
    # the recipe's left-out targets: absent from every split, disclosed in the report
    assert not set(report["config"]["exclude_categories"]) & set(report["sft"]["per_category"])
    assert "Targets left out of every split" in md
    state = json.loads((out / "grpo" / "trainer_state.json").read_text())
    assert any("rewards/semantic/mean" in h for h in state["log_history"])
    # learning curve recorded during both trainings
    assert [p["step"] for p in report["curves"]["sft"]] == [0, 3, 6]
    assert [p["step"] for p in report["curves"]["grpo"]] == [0, 2]
    assert "SFT warm start" in md and "SFT + GRPO" in md and "Acc@0.5" in md
    for png in ("sft_curves.png", "grpo_curves.png"):
        assert (out / png).stat().st_size > 0
    assert len(list((out / "overlays").glob("*.png"))) == 4  # 2 test images x (SFT, GRPO)
    # same predictions as the report says: recomputed from the prediction files
    preds = [json.loads(x) for x in (out / "predictions_grpo.jsonl").read_text().splitlines()]
    assert len(preds) == report["grpo"]["n"]

    # rerun: every stage is found complete and skipped, the metrics are the same
    sft_mtime = (out / "sft" / "final" / "model.safetensors").stat().st_mtime
    again = run_demo(out, load_demo_config(None, SHORT))
    assert (out / "sft" / "final" / "model.safetensors").stat().st_mtime == sft_mtime
    assert again["sft"]["acc@0.5"] == report["sft"]["acc@0.5"]
    assert again["grpo"]["miou"] == report["grpo"]["miou"]

    # new GRPO weights (e.g. retrained for more steps): stale predictions are not reused
    import os

    weights = out / "grpo" / "final" / "model.safetensors"
    os.utime(weights, (weights.stat().st_atime, weights.stat().st_mtime + 10))
    before = (out / "predictions_grpo.jsonl").stat().st_mtime_ns
    run_demo(out, load_demo_config(None, SHORT))
    assert (out / "predictions_grpo.jsonl").stat().st_mtime_ns != before
    assert (out / "predictions_sft.jsonl").exists()


def test_demo_bad_override_is_one_clear_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["demo", "--out", str(tmp_path / "x"), "--imagez", "3"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "unknown config field 'imagez'; did you mean images?" in err and "Traceback" not in err


def test_demo_recipe_is_the_shipped_config():
    cfg = load_demo_config()
    assert cfg.semantic and cfg.template == "r1" and cfg.sft_tasks == ["explicit"]
    names = [r["name"] for r in cfg.grpo["rewards"]]
    assert "format" in names and "iou" in names


def _stages(cfg, monkeypatch) -> dict:
    """The configs each stage would train with (nothing is built or trained)."""
    import medground.demo as demo
    import medground.models.semantic_fit as semantic_fit
    import medground.models.tiny as tiny
    import medground.train as train
    from medground.config import to_dict

    got = {}
    monkeypatch.setattr(tiny, "build_tiny_model", lambda path, seed, config, family: got.setdefault("tiny", [
        seed, dataclasses.asdict(config)]))
    monkeypatch.setattr(semantic_fit, "fit", lambda data, path, val, config, progress: got.setdefault(
        "fit", dataclasses.asdict(config)))
    monkeypatch.setattr(train, "run_sft", lambda c: got.setdefault("sft", to_dict(c)))
    monkeypatch.setattr(demo, "sft_train_file", lambda c, data: Path(data) / "train_sft.jsonl")
    out = Path("/nonexistent/demo")
    demo.make_model(cfg, out)
    demo.make_encoder(dataclasses.replace(cfg, semantic=True), out, Path("/d"))
    demo.run_sft_stage(cfg, Path("/o"), Path("/m"), Path("/d"))
    got["grpo"] = to_dict(demo.grpo_run_config(cfg, Path("/o/grpo"), Path("/o/sft/final"), Path("/d"),
                                               Path("/o/encoder")))
    got["grpo_nosem"] = to_dict(demo.grpo_run_config(cfg, Path("/o/grpo"), Path("/o/sft/final"), Path("/d"), None))
    return json.loads(json.dumps(got))


def test_recipe_and_defaults_resolve_to_the_values_before_the_one_loader(monkeypatch):
    """configs/demo_cpu.yaml and the bare DemoConfig() give the same run as before the
    loader change: the same demo fields and the same model, encoder, SFT and GRPO configs."""
    from medground.demo import DemoConfig

    before = json.loads((Path(__file__).parent / "data" / "demo_config_resolved.json").read_text())
    recipe = load_demo_config()
    assert json.loads(json.dumps(dataclasses.asdict(recipe))) == before["recipe"]
    assert _stages(recipe, monkeypatch) == before["recipe_stages"]
    assert json.loads(json.dumps(dataclasses.asdict(DemoConfig()))) == before["defaults"]
    assert _stages(DemoConfig(), monkeypatch) == before["defaults_stages"]


def test_recipe_overrides_reach_the_stage_configs(monkeypatch):
    cfg = load_demo_config(None, ["--grpo.train.max_steps", "50", "--sft.max_steps", "7", "--tiny.layers", "1",
                                  "--semantic_fit.epochs", "2", "--grpo.num_generations", "4"])
    stages = _stages(cfg, monkeypatch)
    assert stages["grpo"]["train"]["max_steps"] == 50 and stages["grpo"]["grpo"]["num_generations"] == 4
    assert stages["sft"]["train"]["max_steps"] == 7
    assert stages["tiny"][1]["num_hidden_layers"] == 1 and stages["fit"]["epochs"] == 2
    # the rest of the recipe's sections is kept
    assert stages["grpo"]["train"]["learning_rate"] == 5e-5 and stages["sft"]["sft"]["think"] == "located"


@pytest.mark.parametrize("args, message", [
    (["--grpo.train.max_stepz", "5"], "unknown config field 'grpo.train.max_stepz'; did you mean max_steps"),
    (["--grpo.grpo.vllm_mode", "remote"], "grpo.grpo.vllm_mode: must be one of colocate, server"),
    (["--sft.train.learning_rate", "fast"], "sft.train.learning_rate: cannot use 'fast' as float"),
    (["--tiny.hidden_sise", "64"], "did you mean hidden_size"),
    (["--semantic_fit.epochs", "many"], "semantic_fit.epochs: cannot use 'many' as int"),
    (["--val_frac", "0.5", "--test_frac", "0.5"], "val_frac, test_frac: leave no training images"),
    (["--sft_tasks", "explicit,vague"], "sft_tasks: unknown query type(s) vague"),
    (["--size", "10"], "size: must be >= 28"),
    (["--template", "nope"], "template: unknown template 'nope'"),
])
def test_bad_recipe_values_fail_when_the_recipe_loads(args, message):
    with pytest.raises(MedgroundError) as exc:
        load_demo_config(None, args)
    assert message in str(exc.value)


def test_bad_value_in_a_recipe_file_names_its_line(tmp_path):
    recipe = tmp_path / "demo.yaml"
    recipe.write_text("images: 20\ngrpo:\n  train: {max_steps: 5}\n  grpo: {num_generations: 1}\n")
    with pytest.raises(MedgroundError, match=r"demo\.yaml:4: grpo\.grpo\.num_generations: GRPO needs at least 2"):
        load_demo_config(recipe)
