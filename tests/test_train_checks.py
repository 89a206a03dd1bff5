"""What `medground train sft|grpo` checks before it loads a model: its data (the same
validator as `data validate`, or bad samples left out with --skip-invalid), its run folder
(a folder made with other settings is refused, naming them; `resume: never` starts over;
a half-written checkpoint is skipped, saying why) — each a clear message, exit 2."""

from __future__ import annotations

import json
import math

import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from medground.cli import main
from medground.errors import MedgroundError
from medground.models.tiny import TinyConfig, build_tiny_model
from medground.train import SFTRunConfig, load_config, save_config
from medground.train.run_folder import config_differences, plan_run, resume_line, start_run

TINY = TinyConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, vision_hidden_size=32,
                  vision_intermediate_size=64, vision_depth=1, max_pixels=64 * 64)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "tiny", seed=0, config=TINY)


def _dataset(root, rows) -> str:
    root.mkdir(parents=True, exist_ok=True)
    img = Image.new("L", (64, 64))
    img.paste(255, (10, 10, 30, 30))
    img.save(root / "a.png")
    path = root / "train.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


GOOD = [{"id": f"g{i}", "image": "a.png", "query": "the bright square", "boxes": [[10, 10, 30, 30]]} for i in range(2)]
BAD = [
    {"id": "nan", "image": "a.png", "query": "q", "boxes": [[math.nan, 10, 30, 30]]},
    {"id": "flipped", "image": "a.png", "query": "q", "boxes": [[30, 10, 10, 30]]},
    {"id": "noimage", "image": "missing.png", "query": "q", "boxes": [[10, 10, 30, 30]]},
    {"id": "g0", "image": "a.png", "query": "q", "boxes": [[10, 10, 30, 30]]},
]
RUN = ["--train.max_steps", "1", "--train.per_device_train_batch_size", "2", "--train.use_cpu", "true",
       "--train.bf16", "false", "--train.report_to", "[]", "--eval.every_steps", "0", "--sft.think", "x"]


def test_bad_training_data_is_listed_with_line_and_id_before_the_model_loads(tmp_path, tiny, capsys, monkeypatch):
    import medground.train.sft as sft

    monkeypatch.setattr(sft, "load_training_policy", lambda cfg: pytest.fail("the model loaded before the data "
                                                                              "was checked"))
    data = _dataset(tmp_path / "d", GOOD + BAD)
    with pytest.raises(SystemExit) as exc:
        main(["train", "sft", "--model.path", str(tiny), "--data.train", data,
              "--train.output_dir", str(tmp_path / "run"), *RUN])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert f"{data}: 4 problem(s)" in err and "pass --data.skip_invalid" in err
    assert f"{data}:3 [id=nan]: box 1 [nan, 10, 30, 30] has non-finite coordinates" in err
    assert f"{data}:4 [id=flipped]: box 1 [30, 10, 10, 30] has no positive area" in err
    assert f"{data}:5 [id=noimage]: image not found: missing.png" in err
    assert f"{data}:6 [id=g0]: duplicate id (first at line 1)" in err


def test_bad_validation_data_is_checked_too(tmp_path, tiny, capsys):
    train = _dataset(tmp_path / "d", GOOD)
    val = _dataset(tmp_path / "v", [BAD[1]])
    with pytest.raises(SystemExit) as exc:
        main(["train", "sft", "--model.path", str(tiny), "--data.train", train, "--data.val", val,
              "--train.output_dir", str(tmp_path / "run"), *RUN[:-4], "--eval.every_steps", "1"])
    assert exc.value.code == 2
    assert f"{val}:1 [id=flipped]: box 1" in capsys.readouterr().err


def test_skip_invalid_trains_on_the_good_samples_and_counts_the_others(tmp_path, tiny, capsys):
    data = _dataset(tmp_path / "d", GOOD + BAD)
    with pytest.raises(SystemExit) as exc:
        main(["train", "sft", "--model.path", str(tiny), "--data.train", data,
              "--train.output_dir", str(tmp_path / "run"), "--skip-invalid", *RUN])
    assert exc.value.code in (0, None)
    captured = capsys.readouterr()
    assert f"{data}: left out 4 of 6 samples with problems (first: {data}:3 [id=nan]" in captured.err
    assert '"global_step": 1' in captured.out  # the run summary
    assert (tmp_path / "run" / "final" / "model.safetensors").exists()


# --------------------------------------------------------------------------- the run folder


def _cfg(tmp_path, tiny, **train):
    return load_config(SFTRunConfig, values={
        "model": {"path": str(tiny)}, "data": {"train": str(tmp_path / "d" / "train.jsonl")},
        "train": {"output_dir": str(tmp_path / "run"), "max_steps": 4, "seed": 0, **train},
        "eval": {"every_steps": 0}})


def _checkpoint(path, step: int, max_steps: int = 4):
    path.mkdir(parents=True)
    (path / "config.json").write_text("{}")
    save_file({"w": torch.zeros(8)}, str(path / "model.safetensors"))
    (path / "trainer_state.json").write_text(json.dumps({"global_step": step, "max_steps": max_steps}))


def _previous_run(tmp_path, tiny, **train):
    """A run folder as an interrupted run leaves it: config.yaml, checkpoint-2, a broken checkpoint-3."""
    cfg = _cfg(tmp_path, tiny, **train)
    save_config(cfg, tmp_path / "run" / "config.yaml")
    _checkpoint(tmp_path / "run" / "checkpoint-2", 2)
    _checkpoint(tmp_path / "run" / "checkpoint-3", 3)
    (tmp_path / "run" / "checkpoint-3" / "trainer_state.json").unlink()
    (tmp_path / "run" / "trainer_state.json").write_text("{}")
    return cfg


def test_a_folder_made_with_other_settings_is_refused_naming_them(tmp_path, tiny, capsys, monkeypatch):
    import medground.train.sft as sft

    _dataset(tmp_path / "d", GOOD)
    _previous_run(tmp_path, tiny)
    monkeypatch.setattr(sft, "load_training_policy", lambda cfg: pytest.fail("loaded before refusing"))
    with pytest.raises(SystemExit) as exc:
        main(["train", "sft", "--model.path", str(tiny), "--data.train", str(tmp_path / "d" / "train.jsonl"),
              "--train.output_dir", str(tmp_path / "run"), "--train.max_steps", "6", "--train.seed", "1",
              "--eval.every_steps", "0"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and err[0].startswith("model: local folder")
    assert err[1].startswith(f"error: {tmp_path / 'run'} holds a run made with other settings")
    assert "train.max_steps: 4 -> 6; train.seed: 0 -> 1" in err[1] and "--train.resume never" in err[1]


def test_same_settings_resume_from_the_newest_complete_checkpoint(tmp_path, tiny, capsys):
    cfg = _previous_run(tmp_path, tiny)
    rerun = _cfg(tmp_path, tiny, save_steps=7, logging_steps=3, resume="auto")  # what is logged or kept may change
    rerun.eval.max_samples = 5
    plan = plan_run(rerun)
    assert plan.checkpoint == tmp_path / "run" / "checkpoint-2" and not plan.remove
    assert start_run(plan) == str(tmp_path / "run" / "checkpoint-2")
    err = capsys.readouterr().err
    assert "skipping checkpoint-3: " in err and "trainer_state.json: missing" in err
    assert "resuming from checkpoint-2 (step 2 of 4)" in err
    assert plan_run(cfg).checkpoint == plan.checkpoint


def test_resume_never_starts_over_removing_the_previous_run(tmp_path, tiny, capsys):
    _previous_run(tmp_path, tiny)
    (tmp_path / "run" / "final").mkdir()
    (tmp_path / "run" / "runs").mkdir()  # tensorboard logs: kept
    plan = plan_run(_cfg(tmp_path, tiny, max_steps=6, resume="never"))
    assert plan.checkpoint is None
    assert start_run(plan) is None
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["config.yaml", "runs"]
    assert "starting over in" in capsys.readouterr().err


def test_an_incomplete_checkpoint_given_by_path_is_refused_naming_the_file(tmp_path, tiny):
    _previous_run(tmp_path, tiny)
    broken = tmp_path / "run" / "checkpoint-3"
    with pytest.raises(MedgroundError, match=r"cannot resume from .*checkpoint-3: .*trainer_state\.json: missing"):
        plan_run(_cfg(tmp_path, tiny, resume=str(broken)))
    plan = plan_run(_cfg(tmp_path, tiny, resume=str(tmp_path / "run" / "checkpoint-2"), max_steps=9))
    assert plan.checkpoint == tmp_path / "run" / "checkpoint-2"
    assert "other settings (train.max_steps: 4 -> 9)" in plan.notes[0]  # said, not refused: the user chose it


def test_config_differences_ignore_what_does_not_change_training_and_compare_paths_as_files(tmp_path):
    (tmp_path / "m").mkdir()
    old = {"model": {"path": str(tmp_path / "m")}, "train": {"learning_rate": 1e-5, "save_steps": 2, "resume": "auto"},
           "eval": {"every_steps": 5}, "rewards": [{"name": "iou", "weight": 1.0, "options": {}}]}
    new = {"model": {"path": str(tmp_path / "m") + "/"}, "train": {"learning_rate": 1e-5, "save_steps": 9,
                                                                   "resume": "never", "new_field": 1},
           "eval": {"every_steps": 0}, "rewards": [{"name": "iou", "weight": 2.0, "options": {}}]}
    assert config_differences(old, new) == ['rewards: [{"name": "iou", "weight": 1.0, "options": {}}] -> '
                                            '[{"name": "iou", "weight": 2.0, "options": {}}]']


def test_resume_line_reads_the_total_from_the_trainer_state(tmp_path):
    _checkpoint(tmp_path / "checkpoint-40", 40, max_steps=100)
    assert resume_line(tmp_path / "checkpoint-40") == "resuming from checkpoint-40 (step 40 of 100)"


def test_a_truncated_model_to_train_is_one_line_naming_the_file(tmp_path, tiny, capsys):
    import shutil

    cut = tmp_path / "cut"
    shutil.copytree(tiny, cut)
    weights = cut / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:4096])
    data = _dataset(tmp_path / "d", GOOD)
    with pytest.raises(SystemExit) as exc:
        main(["train", "sft", "--model.path", str(cut), "--data.train", data,
              "--train.output_dir", str(tmp_path / "run"), *RUN])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"error: {weights}: truncated") and "Traceback" not in "\n".join(err)
