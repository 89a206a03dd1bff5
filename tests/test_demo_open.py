"""The open-set demo recipe (configs/demo_open_cpu.yaml) and what the demo and the training
validation add for zero, one or many targets — without training a model."""

from __future__ import annotations

import json

import pytest

from medground.demo import (
    DEFAULT_RECIPE,
    format_markdown,
    load_demo_config,
    make_data,
    sft_train_file,
)
from medground.errors import MedgroundError
from medground.train.callbacks import summarize

OPEN_RECIPE = DEFAULT_RECIPE.parent / "demo_open_cpu.yaml"


def test_the_open_recipe_asks_for_negatives_and_multi_target_queries():
    cfg = load_demo_config(OPEN_RECIPE)
    assert 0.15 <= cfg.negative_frac <= 0.25 and 0.15 <= cfg.multi_frac <= 0.25
    assert cfg.template == "r1_open" and cfg.sft_tasks == ["explicit"]
    names = {r["name"] for r in cfg.grpo["rewards"]}
    assert {"set_f1", "negative"} <= names
    closed = load_demo_config()
    assert (closed.negative_frac, closed.multi_frac, closed.sft_kinds) == (0.0, 0.0, [])  # the main demo: as before
    # about the CPU budget of the closed demo: a longer warm start (the reasoning names the findings),
    # fewer GRPO steps; one GRPO step (8 sampled completions of 4 prompts) costs about three SFT steps
    # of 16 samples on one core (measured times in docs/training.md: the open demo runs ~15 % longer)
    def cost(c):
        return c.sft["train"]["max_steps"] + 3 * c.grpo["train"]["max_steps"]

    assert cost(cfg) <= cost(closed) and cfg.grpo["train"]["max_steps"] <= closed.grpo["train"]["max_steps"]


@pytest.mark.parametrize("args, message", [
    (["--negative_frac", "0.6", "--multi_frac", "0.5"], "leave no single-target query"),
    (["--sft_kinds", "single,vague"], "sft_kinds: unknown target kind(s) vague"),
    (["--multi_frac", "1.5"], "multi_frac"),
    (["--sft_repeat", "{negative: 0}"], "sft_repeat: must map target kinds"),
    (["--sft_repeat", "{negatives: 2}"], "sft_repeat: must map target kinds"),
    (["--grpo_repeat", "{negative: 1.5}"], "grpo_repeat: must map target kinds"),
])
def test_bad_open_set_values_fail_when_the_recipe_loads(args, message):
    with pytest.raises(MedgroundError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_demo_config(OPEN_RECIPE, args)


def test_data_generation_and_the_sft_subset_by_query_type_and_target_kind(tmp_path):
    cfg = load_demo_config(OPEN_RECIPE, ["--images", "12", "--size", "64", "--sft_kinds", "single,negative",
                                         "--sft_repeat", "{negative: 3}"])
    data = make_data(cfg, tmp_path, {})
    info = json.loads((data / "phantom.json").read_text())
    assert info["negative_frac"] == cfg.negative_frac and info["multi_frac"] == cfg.multi_frac
    mtime = (data / "all.jsonl").stat().st_mtime_ns
    assert make_data(cfg, tmp_path, {}) == data and (data / "all.jsonl").stat().st_mtime_ns == mtime  # found complete
    from medground.data.schema import read_jsonl

    kept = read_jsonl(sft_train_file(cfg, data))
    assert {s.meta["task"] for s in kept} == {"explicit"} and {s.kind for s in kept} == {"single", "negative"}
    train = read_jsonl(data / "train.jsonl")
    negatives = [s for s in train if s.kind == "negative" and s.meta["task"] == "explicit"]
    assert sum(s.kind == "negative" for s in kept) == 3 * len(negatives) > 0  # each negative three times
    from medground.data.validate import validate_file

    assert not validate_file(data / "train_sft.jsonl").problems  # copies carry their own ids (training checks them)
    from medground.demo import grpo_run_config

    grpo = grpo_run_config(load_demo_config(OPEN_RECIPE, ["--grpo_repeat", "{negative: 2}"]), tmp_path / "g",
                           tmp_path / "m", data, None)
    prompts = read_jsonl(grpo.data.train)
    assert grpo.data.train.endswith("train_grpo.jsonl") and len(prompts) == len(train) + sum(s.is_negative for s in train)
    assert not validate_file(grpo.data.train).problems and len({s.id for s in prompts}) == len(prompts)
    # the reasoning reward's reference: each GRPO row carries what the phantom says the image shows
    assert grpo.data.reasoning == "{findings}" and "reasoning" in {r.name for r in grpo.rewards}
    from medground.data.trl_dataset import grpo_dataset

    rows = grpo_dataset(prompts[:6], cfg.template, "pixels", reasoning=grpo.data.reasoning)
    assert rows["reasoning"] == [s.meta["findings"] for s in prompts[:6]]
    # a closed-set phantom.json has no open-set keys: it matches a closed-set recipe, not an open one
    closed = load_demo_config(None, ["--images", "12", "--size", "64"])
    make_data(closed, tmp_path / "closed", {})
    assert "negative_frac" not in json.loads((tmp_path / "closed" / "data" / "phantom.json").read_text())
    before = (tmp_path / "closed" / "data" / "all.jsonl").stat().st_mtime_ns
    make_data(closed, tmp_path / "closed", {})
    assert (tmp_path / "closed" / "data" / "all.jsonl").stat().st_mtime_ns == before


def test_validation_summary_scores_negatives_and_multi_target_samples():
    records = [
        {"iou": 0.8, "pred_box": [0, 0, 1, 1], "set_f1": 1.0},
        {"iou": 0.2, "pred_box": [0, 0, 1, 1], "set_f1": 0.0},
        {"iou": 0.0, "pred_box": None, "set_f1": 1.0, "kind": "negative", "empty": True},
        {"iou": 0.0, "pred_box": [0, 0, 1, 1], "set_f1": 0.0, "kind": "negative", "empty": False},
        {"iou": 0.9, "pred_box": [0, 0, 1, 1], "set_f1": 2 / 3, "kind": "multi"},
    ]
    s = summarize(records)
    assert s["miou"] == pytest.approx((0.8 + 0.2 + 0.9) / 3) and s["acc"] == pytest.approx(2 / 3)  # positives only
    assert s["specificity"] == 0.5 and s["f1_multi"] == pytest.approx(2 / 3)
    assert s["sample_f1"] == pytest.approx((1 + 0 + 1 + 0 + 2 / 3) / 5)
    closed = summarize(records[:2])
    assert "specificity" not in closed and closed["acc"] == 0.5  # a closed-set split logs what it always did


def test_report_md_has_the_open_set_table():
    def model(spec, f1, single):
        return {"n": 10, "miou": 50.0, "acc@0.3": 60.0, "acc@0.5": 50.0, "acc@0.7": 30.0, "specificity": spec,
                "fpr": 100 - spec, "f1": f1, "sample_f1": 40.0, "n_negative": 3, "n_multi": 2,
                "per_kind": {"single": {"n": 5, "acc@0.5": single, "sample_f1": single},
                             "negative": {"n": 3, "acc@0.5": None, "sample_f1": spec}}}

    result = {"sft": model(0.0, 30.0, 60.0), "grpo": model(66.7, 45.0, 62.0), "seconds": 100.0, "peak_rss_mb": 900,
              "config": {"images": 10, "size": 64, "template": "r1_open", "semantic": True, "sft_tasks": ["explicit"],
                         "sft_kinds": [], "exclude_categories": []}}
    md = format_markdown(result)
    assert "| SFT + GRPO | 62.0 | 66.7 | 33.3 | 45.0 | 40.0 |" in md
    assert "GRPO − SFT: specificity +66.7, multi-target F1 +15.0, single-target Acc@0.5 +2.0 points." in md
    assert "| negative | 3 | – | – | 0.0 | 66.7 |" in md
