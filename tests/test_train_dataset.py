"""Canonical samples -> TRL datasets: the column contract and teacher answers in the policy's frame."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from medground.data.schema import Sample, write_jsonl
from medground.data.trl_dataset import COLUMNS, grpo_dataset, sft_dataset, teacher_completion
from medground.errors import MedgroundError
from medground.geometry import PIXELS, Frame, map_boxes
from medground.parsing import parse_completion

QWEN = Frame("qwen2.5-vl", min_pixels=56 * 56, max_pixels=112 * 112)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("trlds")
    Image.new("RGB", (200, 150), (40, 40, 40)).save(root / "a.png")
    Image.new("RGB", (90, 120), (90, 90, 90)).save(root / "b.png")
    samples = [
        Sample(id="a0", image="a.png", query="left effusion", boxes=[[20, 30, 120, 90]], width=200, height=150,
               category="effusion", supercategory="pleura", points=[[30, 40], [100, 80]],
               meta={"laterality": "left"}),
        Sample(id="a1", image="a.png", query="right upper zone nodule", boxes=[[150, 10, 170, 30]], width=200,
               height=150, category="nodule", supercategory="lung parenchyma", meta={"laterality": "right"}),
        Sample(id="b0", image="b.png", query="enlarged heart", boxes=[[10, 50, 80, 110]], width=90, height=120,
               category="cardiomegaly"),
        Sample(id="nobox", image="b.png", query="left pneumothorax", boxes=[], width=90, height=120),
    ]
    path = root / "train.jsonl"
    write_jsonl([_abs(s, root) for s in samples], path)
    with path.open("a") as fh:  # a line without "boxes": unlabelled, not a negative
        fh.write('{"id": "unlabelled", "image": "b.png", "query": "the heart"}\n')
    return path


def _abs(s, root):
    d = s.to_dict()
    d["image"] = str(root / s.image)
    return Sample(**d)


def test_grpo_columns_follow_the_contract(data):
    ds = grpo_dataset(data, "r1", QWEN)
    assert set(COLUMNS) <= set(ds.column_names)
    # a negative (boxes: []) trains too; the line without "boxes" cannot be scored: skipped
    assert ds["id"] == ["a0", "a1", "b0", "nobox"] and ds[3]["boxes"] == []
    row = ds[0]
    assert isinstance(row["image"], Image.Image) and row["image"].size == (200, 150)
    assert (row["width"], row["height"]) == (200, 150)
    assert row["boxes"] == [[20.0, 30.0, 120.0, 90.0]]
    assert row["points"] == [[30.0, 40.0], [100.0, 80.0]] and ds[2]["points"] is None
    assert (row["category"], row["supercategory"]) == ("effusion", "pleura")
    user = row["prompt"][-1]
    assert user["role"] == "user"
    assert [p["type"] for p in user["content"]] == ["image", "text"]
    # the prompt states the frame the policy answers in: the resized image
    fw, fh = QWEN.size(200, 150)
    assert f"{int(fw)}x{int(fh)}" in user["content"][1]["text"]
    assert "left effusion" in user["content"][1]["text"]


def test_teacher_answer_maps_back_to_the_truth(data):
    ds = sft_dataset(data, "r1", QWEN)
    for row in ds:
        text = row["completion"][0]["content"][0]["text"]
        parsed = parse_completion(text)
        if not row["boxes"]:  # the negative: the template's explicit empty answer
            assert parsed.well_formed and parsed.empty and not parsed.boxes
            continue
        assert parsed.well_formed and len(parsed.boxes) == 1
        back = map_boxes(parsed.boxes, (row["width"], row["height"]), src=QWEN, dst=PIXELS)[0]
        # rounding to integers in the resized frame costs at most one resized pixel
        sx = row["width"] / QWEN.size(row["width"], row["height"])[0]
        assert np.allclose(back, row["boxes"][0], atol=sx * 0.5 + 1e-6)


def test_chain_of_box_cites_other_findings_of_the_image(data):
    ds = sft_dataset(data, "chain_of_box", "pixels")
    text = ds[0]["completion"][0]["content"][0]["text"]
    parsed = parse_completion(text)
    assert "right nodule [150, 10, 170, 30]" in text
    assert parsed.think_boxes[-1] == [20, 30, 120, 90] and parsed.boxes == [[20, 30, 120, 90]]
    # an image with a single finding has nothing else to cite
    single = parse_completion(ds[2]["completion"][0]["content"][0]["text"])
    assert single.think_boxes == [[10, 50, 80, 110]]


def test_short_think_replaces_the_reasoning(data):
    ds = sft_dataset(data, "r1", "norm1000", think="located")
    text = ds[0]["completion"][0]["content"][0]["text"]
    assert text == '<think>located</think><answer>{"bbox_2d": [100, 200, 600, 600]}</answer>'


def test_bad_inputs_name_the_sample(tmp_path):
    Image.new("RGB", (50, 40)).save(tmp_path / "x.png")
    wrong = Sample(id="w1", image=str(tmp_path / "x.png"), query="q", boxes=[[0, 0, 5, 5]], width=64, height=64)
    with pytest.raises(MedgroundError, match="w1.*50x40"):
        grpo_dataset([wrong])
    unlabelled = {"id": "e", "image": str(tmp_path / "x.png"), "query": "q", "width": 50, "height": 40}
    with pytest.raises(MedgroundError, match="no sample with a ground-truth box"):
        grpo_dataset([Sample.from_dict(unlabelled)])
    with pytest.raises(MedgroundError, match="needs a ground-truth box"):
        teacher_completion("r1", Sample.from_dict(unlabelled), "pixels")


def test_teachers_cover_negatives_and_multi_target_samples(tmp_path):
    """SFT teacher answers for the three cases, in the policy's frame: every box of a
    multi-target phrase, the template's explicit empty answer for a negative."""
    Image.new("RGB", (200, 100)).save(tmp_path / "c.png")
    two = Sample(id="two", image=str(tmp_path / "c.png"), query="bilateral effusions", width=200, height=100,
                 boxes=[[10, 50, 60, 90], [140, 50, 190, 90]])
    neg = Sample(id="neg", image=str(tmp_path / "c.png"), query="left pneumothorax", boxes=[], width=200, height=100)
    assert teacher_completion("r1_open", two, "norm1000", think="located") == (
        "<think>located</think><answer>[[50, 500, 300, 900], [700, 500, 950, 900]]</answer>")
    assert teacher_completion("r1_open", neg, "norm1000", think="located") == "<think>located</think><answer>[]</answer>"
    assert teacher_completion("medreasoner", neg, "pixels").endswith('<answer>{"bbox": null}</answer>')
    rows = sft_dataset([two, neg], "r1", QWEN)
    first, second = (parse_completion(r["completion"][0]["content"][0]["text"]) for r in rows)
    assert len(first.boxes) == 2 and second.empty and rows[1]["boxes"] == []


def test_the_reasoning_is_filled_from_each_samples_meta(tmp_path):
    Image.new("RGB", (100, 100)).save(tmp_path / "d.png")
    neg = Sample(id="neg", image=str(tmp_path / "d.png"), query="left pleural effusion", boxes=[], width=100,
                 height=100, meta={"findings": "right effusion"})
    assert teacher_completion("r1_open", neg, "pixels", think="{findings}") == (
        "<think>right effusion</think><answer>[]</answer>")
    with pytest.raises(MedgroundError, match=r"\[id=neg\]: reasoning template '\{zone\}' needs 'zone'"):
        teacher_completion("r1_open", neg, "pixels", think="{zone}")
