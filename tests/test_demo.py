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

    # other GRPO settings: GRPO is trained again (not the old model reported), SFT reused; both times reported
    changed = run_demo(out, load_demo_config(None, [*SHORT, "--grpo.train.max_steps", "3"]))
    assert (out / "sft" / "final" / "model.safetensors").stat().st_mtime == sft_mtime
    assert json.loads((out / "grpo" / "trainer_state.json").read_text())["global_step"] == 3
    assert changed["config"]["grpo"]["train"]["max_steps"] == 3
    assert changed["stages"]["sft"]["reused"] and not changed["stages"]["grpo"]["reused"]
    assert not changed["stages"]["evaluate_grpo"]["reused"] and changed["stages"]["evaluate_sft"]["reused"]
    assert changed["seconds_total"] > changed["seconds"] > 0
    assert "for the whole run" in (out / "report.md").read_text()


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


def _stages(cfg) -> dict:
    """The configs each stage would train with (nothing is built or trained)."""
    import medground.demo as demo
    from medground.config import to_dict

    got = {"tiny": [cfg.seed, dataclasses.asdict(demo.tiny_config(cfg))]}
    got["fit"] = dataclasses.asdict(demo.fit_config(dataclasses.replace(cfg, semantic=True)))
    train_file = Path("/d/train_sft.jsonl") if cfg.sft_tasks else None
    got["sft"] = to_dict(demo.sft_run_config(cfg, Path("/o/sft"), Path("/m"), Path("/d"), train_file))
    got["grpo"] = to_dict(demo.grpo_run_config(cfg, Path("/o/grpo"), Path("/o/sft/final"), Path("/d"),
                                               Path("/o/encoder")))
    got["grpo_nosem"] = to_dict(demo.grpo_run_config(cfg, Path("/o/grpo"), Path("/o/sft/final"), Path("/d"), None))
    return json.loads(json.dumps(got))


def test_recipe_and_defaults_resolve_to_the_values_before_the_one_loader():
    """configs/demo_cpu.yaml and the bare DemoConfig() give the same run as before the
    loader change: the same demo fields and the same model, encoder, SFT and GRPO configs."""
    from medground.demo import DemoConfig

    before = json.loads((Path(__file__).parent / "data" / "demo_config_resolved.json").read_text())
    recipe = load_demo_config()
    assert json.loads(json.dumps(dataclasses.asdict(recipe))) == before["recipe"]
    assert _stages(recipe) == before["recipe_stages"]
    assert json.loads(json.dumps(dataclasses.asdict(DemoConfig()))) == before["defaults"]
    assert _stages(DemoConfig()) == before["defaults_stages"]


def test_recipe_overrides_reach_the_stage_configs():
    cfg = load_demo_config(None, ["--grpo.train.max_steps", "50", "--sft.max_steps", "7", "--tiny.layers", "1",
                                  "--semantic_fit.epochs", "2", "--grpo.num_generations", "4"])
    stages = _stages(cfg)
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


# --------------------------------------------------------------------------- stages reused only with their settings


@pytest.fixture
def fake_builders(monkeypatch):
    """The expensive builders replaced by fakes that write what each stage leaves behind
    and record that they ran (the phantom data is real: it is fast)."""
    import medground.demo as demo
    import medground.models.semantic_fit as semantic_fit
    import medground.models.tiny as tiny
    import medground.train as train

    calls = []

    def model(path, seed, config, family="qwen2.5-vl"):
        calls.append("model" if family == "qwen2.5-vl" else f"model:{family}")
        Path(path).mkdir(parents=True, exist_ok=True)
        (Path(path) / "config.json").write_text(json.dumps({"seed": seed}))
        return Path(path)

    def encoder(data, path, val, config, progress):
        calls.append("encoder")
        Path(path).mkdir(parents=True, exist_ok=True)
        (Path(path) / "fit_report.json").write_text("{}")

    def trainer(kind):
        def run(cfg):
            calls.append(kind)
            final = Path(cfg.train.output_dir) / "final"
            final.mkdir(parents=True, exist_ok=True)
            (final / "medground.json").write_text(json.dumps({"max_steps": cfg.train.max_steps,
                                                              "seed": cfg.train.seed}))
        return run

    monkeypatch.setattr(tiny, "build_tiny_model", model)
    monkeypatch.setattr(semantic_fit, "fit", encoder)
    monkeypatch.setattr(train, "run_sft", trainer("sft"))
    monkeypatch.setattr(train, "run_grpo", trainer("grpo"))

    def run(out, args):
        cfg = load_demo_config(None, [*SHORT, *args])
        stages = {}
        data = demo.select_categories(cfg, demo.make_data(cfg, out, stages), out)
        model_dir = demo.make_model(cfg, out, stages)
        enc = demo.make_encoder(cfg, out, data, stages)
        sft = demo.run_sft_stage(cfg, out, model_dir, data, stages)
        grpo = demo.run_grpo_stage(cfg, out, sft, data, enc, stages)
        made = list(calls)
        calls.clear()
        return made, json.loads((grpo / "medground.json").read_text()), stages

    return run


def test_a_stage_is_reused_only_with_the_settings_that_made_it(tmp_path, capsys, fake_builders):
    """`demo --out D --seed 1 --grpo.train.max_steps 6` into a folder built with seed 0 and 4
    steps must make every model again, never report the old ones."""
    out = tmp_path / "demo"
    made, grpo, _ = fake_builders(out, ["--grpo.train.max_steps", "4"])
    assert made == ["model", "encoder", "sft", "grpo"] and grpo == {"max_steps": 4, "seed": 0}
    made, _, stages = fake_builders(out, ["--grpo.train.max_steps", "4"])
    assert made == [] and all(s.reused for s in stages.values())  # same settings: everything reused

    capsys.readouterr()
    made, grpo, stages = fake_builders(out, ["--grpo.train.max_steps", "6"])
    assert made == ["grpo"] and grpo == {"max_steps": 6, "seed": 0}  # only what changed is made again
    assert stages["sft"].reused and not stages["grpo"].reused
    assert "run.train.max_steps: 4 -> 6" in capsys.readouterr().err

    made, grpo, _ = fake_builders(out, ["--seed", "1", "--grpo.train.max_steps", "6"])
    assert made == ["model", "encoder", "sft", "grpo"] and grpo == {"max_steps": 6, "seed": 1}
    err = capsys.readouterr().err
    assert "data: " in err and "(seed: 0 -> 1" in err and "the model stage it builds on changed" in err
    records = {p.stem: json.loads(p.read_text()) for p in (out / "stages").glob("*.json")}
    assert records["data"]["settings"]["seed"] == 1 and all(r["complete"] for r in records.values())

    made, _, _ = fake_builders(out, ["--seed", "1", "--grpo.train.max_steps", "6", "--family", "qwen3-vl"])
    assert made == ["model:qwen3-vl", "sft", "grpo"]  # another family: another model (the data and encoder stay)
    assert 'family: "qwen2.5-vl" -> "qwen3-vl"' in capsys.readouterr().err


def test_an_interrupted_stage_resumes_and_keeps_its_time(tmp_path, capsys, fake_builders):
    out = tmp_path / "demo"
    fake_builders(out, [])
    record = out / "stages" / "sft.json"
    state = json.loads(record.read_text())
    (out / "sft" / "checkpoint-2").mkdir()  # what a killed run left
    record.write_text(json.dumps({**state, "complete": False, "seconds": 30.0, "started": state["started"]}))
    made, _, stages = fake_builders(out, [])
    assert made == ["sft"] and (out / "sft" / "checkpoint-2").exists()  # resumed in place, not wiped
    assert "sft: resuming the unfinished stage" in capsys.readouterr().err
    assert stages["sft"].earlier >= 30.0 and not stages["sft"].reused  # the killed run's time still counts
    assert json.loads(record.read_text())["complete"]


def test_a_stage_without_a_record_is_made_again(tmp_path, capsys, fake_builders):
    out = tmp_path / "demo"
    fake_builders(out, [])
    (out / "stages" / "model.json").unlink()  # e.g. made by an older medground
    made, _, stages = fake_builders(out, [])
    assert made == ["model"] and stages["sft"].reused  # the SFT record names the model settings it was made from
    assert "no record of the settings that made it" in capsys.readouterr().err
    import shutil

    shutil.rmtree(out / "sft" / "final")  # a complete record whose output is gone
    made, _, _ = fake_builders(out, [])
    assert made == ["sft"]
    assert "part of its output is missing" in capsys.readouterr().err


def test_the_open_set_options_are_stage_settings(tmp_path, capsys, fake_builders):
    """A changed negative / multi-target rate makes the data and everything trained on it again
    (the tokenizer keys on open_set, not on the rates); grpo_repeat makes GRPO alone again; a
    closed-set run's records hold no open-set key (those of earlier runs still match)."""
    out = tmp_path / "demo"
    made, _, stages = fake_builders(out, [])
    assert "negative_frac" not in stages["data"].settings and "open_set" not in stages["model"].settings["tiny"]
    capsys.readouterr()
    made, _, stages = fake_builders(out, ["--negative_frac", "0.2", "--multi_frac", "0.2"])
    assert made == ["model", "encoder", "sft", "grpo"] and stages["model"].settings["tiny"]["open_set"] is True
    assert "negative_frac" in capsys.readouterr().err
    made, _, stages = fake_builders(out, ["--negative_frac", "0.3", "--multi_frac", "0.2"])
    assert made == ["encoder", "sft", "grpo"] and stages["model"].reused
    made, _, _ = fake_builders(out, ["--negative_frac", "0.3", "--multi_frac", "0.2", "--grpo_repeat", "{negative: 2}"])
    assert made == ["grpo"]
    made, _, _ = fake_builders(out, ["--negative_frac", "0.3", "--multi_frac", "0.2", "--grpo_repeat", "{negative: 2}",
                                     "--sft_repeat", "{multi: 2}"])
    assert made == ["sft", "grpo"]
    made, _, _ = fake_builders(out, [])
    assert made == ["model", "encoder", "sft", "grpo"]


def test_report_shows_both_wall_times_of_a_resumed_run():
    from medground.demo import _wall_time

    one_go = {"seconds": 1210.0, "seconds_total": 1210.0, "stages": {}}
    assert _wall_time(one_go) == "Wall time 1210 s"
    resumed = {"seconds": 95.0, "seconds_total": 1300.0, "stages": {"sft": {"reused": True}, "grpo": {"reused": False}}}
    assert _wall_time(resumed) == "Wall time 1300 s for the whole run, 95 s in the last invocation; reused: sft"
