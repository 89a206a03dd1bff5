"""MedRPG manifests (.pth lists of tuples, as released in eraserNut/MedRPG) -> canonical + R1 JSON."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from medground.data.converters import convert
from medground.data.schema import read_jsonl
from medground.errors import MedgroundError

IMG_A = "files/p10/p10667797/s58923918/52f2007d-4835f8c4-eafba189-443dfd0e-20d8603c.jpg"
IMG_B = "files/p10/p10380616/s53925580/310d75dd-30391573-30155c98-d3a221b3-082b68ac.jpg"


def _img(root, rel, size):
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.zeros((size[1], size[0]), np.uint8)).save(p)


@pytest.fixture
def manifests(tmp_path):
    d = tmp_path / "MS_CXR"
    d.mkdir()
    # (anno_id, image_id, category_id, img_file, (x, y, w, h), W, H, phrase) — the released layout
    torch.save(
        [
            (15, 13, 7, IMG_A, (466, 217, 69, 120), 2539, 3050, "small loculated left pneumothorax"),
            (34, 28, 1, IMG_B, (89, 17, 118, 70), 3056, 2544, "Small right apical pneumothorax."),
        ],
        d / "MS_CXR_test.pth",
    )
    torch.save(
        [
            (5, 3, 5, IMG_A, (55, 22, 184, 552), 2539, 3050, "Large right-sided pneumothorax"),
            (6, 4, 5, IMG_A, "not a box", 2539, 3050, "broken"),
            ("just", "three", "things"),
        ],
        d / "MS_CXR_train.pth",
    )
    images = tmp_path / "ln_data" / "MS_CXR"
    _img(images, IMG_A, (640, 640))  # IMG_B missing
    return tmp_path, d, images


def test_mscxr_manifests_keep_the_640_frame_and_write_r1_json(manifests):
    tmp, d, images = manifests
    rep = convert("medrpg", d, tmp / "out", images=images, progress=False)
    test = {s.meta["anno_id"]: s for s in read_jsonl(tmp / "out" / "test.jsonl")}
    a, b = test[15], test[34]
    assert a.boxes == [[466.0, 217.0, 535.0, 337.0]] and (a.width, a.height) == (640, 640)
    assert a.category == "Pneumothorax" and b.category == "Cardiomegaly"
    assert a.meta["box_frame"] == "fixed:640x640" and a.meta["original_size"] == [2539, 3050]
    np.testing.assert_allclose(
        a.meta["box_original_pixels"],
        [466 * 2539 / 640, 217 * 3050 / 640, 535 * 2539 / 640, 337 * 3050 / 640],
        atol=1e-3,
    )
    assert b.meta["image_missing"] is True and (b.width, b.height) == (640, 640)
    assert a.split == "test" and a.meta["manifest"] == "MS_CXR_test.pth" and a.meta["row"] == 1

    train = read_jsonl(tmp / "out" / "train.jsonl")
    assert [s.meta["anno_id"] for s in train] == [5]
    report = json.loads((tmp / "out" / "convert_report.json").read_text())
    rows = {(s["file"].split("/")[-1], s["row"]) for s in report["skipped"]}
    assert rows == {("MS_CXR_train.pth", 2), ("MS_CXR_train.pth", 3)}
    assert report["box_frames"] == {"fixed:640x640": 3}
    assert rep.missing_total == 1

    r1 = json.loads((tmp / "out" / "medground_r1" / "test.json").read_text())
    rec = {r["id"]: r for r in r1}["medrpg-MS_CXR_test-34"]
    assert rec["image"] == IMG_B
    assert rec["problem"] == (
        "Please provide the bounding box coordinate of the region this sentence describes: "
        "Small right apical pneumothorax."
    )
    assert rec["solution"] == [89.0, 17.0, 207.0, 87.0]
    assert rec["normalized_solution"] == [
        round(89 / 640 * 1000),
        round(17 / 640 * 1000),
        round(207 / 640 * 1000),
        round(87 / 640 * 1000),
    ]


def test_frame_option_maps_640_boxes_onto_original_resolution_images(manifests):
    tmp, d, _ = manifests
    originals = tmp / "mimic"
    _img(originals, IMG_A, (1280, 1920))
    convert(
        "medrpg", d / "MS_CXR_test.pth", tmp / "o", images=originals, options={"frame": "fixed:640"}, progress=False
    )
    a = {s.meta["anno_id"]: s for s in read_jsonl(tmp / "o" / "test.jsonl")}[15]
    assert a.boxes == [[932.0, 651.0, 1070.0, 1011.0]] and (a.width, a.height) == (1280, 1920)
    # the R1 JSON stays in the manifest frame MedGround-R1 trained on
    r1 = json.loads((tmp / "o" / "medground_r1" / "test.json").read_text())
    assert r1[0]["solution"] == [466.0, 217.0, 535.0, 337.0] and r1[0]["frame"] == "fixed:640x640"
    with pytest.raises(MedgroundError, match="frame must be"):
        convert("medrpg", d, tmp / "x", options={"frame": "qwen2.5-vl"}, progress=False)


def test_chestxray8_manifest(tmp_path):
    p = tmp_path / "ChestXray8_val.pth"
    # (anno_id, image_id, 0, img_file, [x, y, w, h], label, phrase)
    torch.save([(1, 1, 0, "00013118_008.png", [225, 547, 86, 79], "Atelectasis", "atelectasis in the left lung")], p)
    convert("medrpg", p, tmp_path / "o", progress=False)
    (s,) = read_jsonl(tmp_path / "o" / "val.jsonl")
    assert s.boxes == [[225.0, 547.0, 311.0, 626.0]] and s.category == "Atelectasis"
    assert (s.width, s.height) == (1024, 1024) and s.meta["box_frame"] == "fixed:1024x1024"
    assert s.query == "atelectasis in the left lung" and s.meta["dataset"] == "chestxray8"


class _Evil:
    def __reduce__(self):
        import os

        return (os.system, ("touch PWNED_BY_PICKLE",))


def test_manifest_with_code_is_refused_not_executed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    p = tmp_path / "MS_CXR_val.pth"
    with open(p, "wb") as fh:
        pickle.dump([_Evil()], fh)
    with pytest.raises(MedgroundError, match="MS_CXR_val.pth: refused to load"):
        convert("medrpg", p, tmp_path / "o", progress=False)
    assert not (tmp_path / "PWNED_BY_PICKLE").exists()
    junk = tmp_path / "MS_CXR_test.pth"
    junk.write_bytes(b"garbage")
    with pytest.raises(MedgroundError, match="MS_CXR_test.pth"):
        convert("medrpg", junk, tmp_path / "o2", progress=False)
    with pytest.raises(MedgroundError, match="no MedRPG .pth manifests"):
        (tmp_path / "empty").mkdir()
        convert("medrpg", tmp_path / "empty", tmp_path / "o3", progress=False)
