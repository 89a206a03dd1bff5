"""Exporters: verl parquet in MedReasoner's U-MRG layout, TRL DatasetDict, MedGround-R1 JSON."""

from __future__ import annotations

import io
import json

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image
from pydicom.data import get_testdata_file

from medground.cli import main
from medground.data.converters import convert
from medground.data.export import (
    EXPORTERS,
    export,
    export_r1_json,
    export_trl,
    export_verl,
    load_dataset_dir,
)
from medground.data.masks import save_mask_png
from medground.data.schema import Sample, read_jsonl, write_jsonl
from medground.errors import MedgroundError
from medground.geometry import smart_resize

CT = get_testdata_file("CT_small.dcm")


@pytest.fixture
def dataset(tmp_path):
    d = tmp_path / "ds"
    (d / "images").mkdir(parents=True)
    img = (np.arange(100 * 140) % 256).astype(np.uint8).reshape(100, 140)
    Image.fromarray(img).save(d / "images" / "a.png")
    mask = np.zeros((100, 140), bool)
    mask[30:60, 40:100] = True
    save_mask_png(mask, d / "masks" / "a.png")
    samples = [
        Sample(id="a1", image=str(d / "images" / "a.png"), query="left lower lobe consolidation",
               boxes=[[40, 30, 100, 60]], mask=str(d / "masks" / "a.png"), category="consolidation",
               supercategory="lung", split="train", width=140, height=100, meta={"source": "phantom"}),
        Sample(id="a2", image=str(d / "images" / "a.png"), query="Where is the fluid?", boxes=[[10, 10, 30, 50]],
               points=[[15, 20], [25, 40]], category="effusion", split="train", width=140, height=100,
               meta={"source": "phantom", "data_source": "mysource"}),
        Sample(id="ct", image=CT, query="the spine", boxes=[[50, 80, 80, 120]], category="bone", split="test",
               width=128, height=128, meta={"source": "pydicom"}),
    ]
    write_jsonl([s for s in samples if s.split == "train"], d / "train.jsonl")
    write_jsonl([s for s in samples if s.split == "test"], d / "test.jsonl")
    return d


def test_verl_parquet_has_medreasoner_layout(dataset, tmp_path):
    by_split = load_dataset_dir(dataset)
    written = export_verl(by_split, tmp_path / "verl", frame="pixels", progress=False)
    assert set(written) == {"train", "test"}
    t = pq.read_table(written["train"])
    assert t.column_names == ["data_source", "prompt", "images", "masks", "ability", "reward_model", "extra_info"]
    assert str(t.schema.field("prompt").type.value_type) == "struct<role: string, content: string>"
    assert str(t.schema.field("images").type.value_type) == "struct<bytes: binary, path: string>"
    assert str(t.schema.field("reward_model").type) == "struct<style: string, ground_truth: string>"
    rows = {r["extra_info"]["id"]: r for r in t.to_pylist()}
    a1, a2 = rows["a1"], rows["a2"]
    assert a1["prompt"] == [{"role": "user", "content": "left lower lobe consolidation"}]
    assert a1["reward_model"]["style"] == "rule" and a1["ability"] == "medical_grounding"
    gt1, gt2 = json.loads(a1["reward_model"]["ground_truth"]), json.loads(a2["reward_model"]["ground_truth"])
    assert gt1["bbox_2d"] == [40, 30, 100, 60]
    assert a1["extra_info"]["points_source"] == "mask"  # derived inside the mask
    m = np.asarray(Image.open(io.BytesIO(a1["masks"][0]["bytes"]))) > 0
    assert all(m[int(y), int(x)] for x, y in gt1["point_2d"])
    assert gt2["point_2d"] == [[15, 20], [25, 40]] and a2["extra_info"]["points_source"] == "sample"
    assert a2["data_source"] == "mysource" and a2["masks"] == []
    assert Image.open(io.BytesIO(a1["images"][0]["bytes"])).size == (140, 100)
    assert a1["extra_info"]["frame"] == "pixels" and a1["extra_info"]["width"] == 140
    # the DICOM is rendered to a display-ready PNG
    ct = pq.read_table(written["test"]).to_pylist()[0]
    png = ct["images"][0]["bytes"]
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and Image.open(io.BytesIO(png)).size == (128, 128)
    # Hugging Face datasets (what verl and MedReasoner's eval use) decode the images to PIL
    import datasets

    ds = datasets.load_dataset("parquet", data_files=str(written["train"]), split="train")
    item = ds[0]
    assert isinstance(item["images"][0], Image.Image) and item["prompt"][0]["content"]


def test_verl_frames_and_template(dataset, tmp_path):
    by_split = load_dataset_dir(dataset, ["train"])
    w = export_verl(by_split, tmp_path / "q", frame="qwen2.5-vl", template="medreasoner", progress=False)
    row = [r for r in pq.read_table(w["train"]).to_pylist() if r["extra_info"]["id"] == "a2"][0]
    rh, rw = smart_resize(100, 140)
    gt = json.loads(row["reward_model"]["ground_truth"])
    np.testing.assert_allclose(gt["bbox_2d"], [10 * rw / 140, 10 * rh / 100, 30 * rw / 140, 50 * rh / 100], atol=0.01)
    np.testing.assert_allclose(gt["point_2d"], [[15 * rw / 140, 20 * rh / 100], [25 * rw / 140, 40 * rh / 100]],
                               atol=0.01)
    assert row["extra_info"]["frame"] == "qwen2.5-vl"
    assert row["prompt"][0]["content"].startswith("<image>") and "Where is the fluid?" in row["prompt"][0]["content"]
    w2 = export_verl(by_split, tmp_path / "n", frame="norm1000", progress=False)
    row = [r for r in pq.read_table(w2["train"]).to_pylist() if r["extra_info"]["id"] == "a1"][0]
    assert json.loads(row["reward_model"]["ground_truth"])["bbox_2d"] == [285.71, 300.0, 714.29, 600.0]


def test_verl_export_round_trips_through_the_umrg_converter(dataset, tmp_path):
    """Our verl parquet *is* U-MRG layout: converting it back gives the same samples."""
    export_verl(load_dataset_dir(dataset, ["train"]), tmp_path / "verl", frame="pixels", progress=False)
    convert("umrg", tmp_path / "verl", tmp_path / "back", progress=False)
    back = {s.meta["umrg_id"]: s for s in read_jsonl(tmp_path / "back" / "train.jsonl")}
    orig = {s.id: s for s in read_jsonl(dataset / "train.jsonl")}
    for sid, s in orig.items():
        b = back[sid]
        assert b.boxes == s.boxes and b.query == s.query and (b.width, b.height) == (s.width, s.height)
        assert b.category == s.category
        assert np.array_equal(np.asarray(Image.open(b.image)), np.asarray(Image.open(s.image)))
    assert back["a2"].points == [[15.0, 20.0], [25.0, 40.0]]


def test_trl_export_uses_the_trainers_dataset(dataset, tmp_path):
    import datasets

    export_trl(load_dataset_dir(dataset), tmp_path / "trl", template="r1", frame="norm1000")
    dd = datasets.load_from_disk(str(tmp_path / "trl"))
    assert set(dd) == {"train", "test"}
    row = {r["id"]: r for r in dd["train"]}["a1"]
    assert row["boxes"] == [[40.0, 30.0, 100.0, 60.0]] and (row["width"], row["height"]) == (140, 100)
    user = row["prompt"][-1]
    assert [c["type"] for c in user["content"]] == ["image", "text"]
    assert "left lower lobe consolidation" in user["content"][1]["text"] and "1000" in user["content"][1]["text"]
    assert row["image"].size == (140, 100)


def test_r1_json_and_cli(dataset, tmp_path, capsys):
    w = export_r1_json(load_dataset_dir(dataset, ["train"]), tmp_path / "r1", image_root=dataset)
    recs = {r["id"]: r for r in json.loads(w["train"].read_text())}
    assert recs["a2"]["image"] == "images/a.png"
    assert recs["a2"]["problem"] == ("Please provide the bounding box coordinate of the region this sentence "
                                     "describes: Where is the fluid?.")
    assert recs["a2"]["solution"] == [10, 10, 30, 50]
    assert recs["a2"]["normalized_solution"] == [71, 100, 214, 500]
    with pytest.raises(SystemExit) as e:
        main(["data", "export", "verl", str(dataset), "--out", str(tmp_path / "cli"), "--quiet"])
    assert e.value.code in (0, None) and "train: 2 rows" in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:
        main(["data", "export", "coco", str(dataset), "--out", str(tmp_path / "x")])
    assert e.value.code == 2 and "unknown export format 'coco'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["data", "export", "verl", str(dataset), "--out", str(tmp_path / "x"), "--split", "val"])
    assert e.value.code == 2 and "no split(s) val" in capsys.readouterr().err


def test_export_dispatches_from_python_with_each_formats_defaults(dataset, tmp_path):
    """medground.data.export.export does what `medground data export` does, without the CLI:
    the registry holds each format's defaults (verl / trl answer in qwen2.5-vl, r1-json in pixels)."""
    res = export("verl", dataset, tmp_path / "v", splits=["train"], progress=False)
    assert res.format == "verl" and res.counts == {"train": 2} and set(res.files) == {"train"}
    rows = {r["extra_info"]["id"]: r for r in pq.read_table(res.files["train"]).to_pylist()}
    assert rows["a1"]["extra_info"]["frame"] == "qwen2.5-vl" and rows["a1"]["ability"] == "medical_grounding"
    assert rows["a2"]["prompt"][0]["content"] == "Where is the fluid?"  # no template: the bare question
    same = export_verl(load_dataset_dir(dataset, ["train"]), tmp_path / "v2", frame="qwen2.5-vl", progress=False)
    assert pq.read_table(same["train"]).to_pylist() == list(rows.values())
    assert res.summary() == f"train: 2 rows -> {tmp_path / 'v' / 'train.parquet'}"

    r1 = export("r1", dataset, tmp_path / "r1")  # alias of r1-json; image paths relative to the dataset folder
    assert r1.format == "r1-json" and r1.counts == {"test": 1, "train": 2}
    recs = {r["id"]: r for r in json.loads(r1.files["train"].read_text())}
    assert recs["a2"]["frame"] == "pixels" and recs["a2"]["solution"] == [10, 10, 30, 50]
    assert recs["a2"]["image"] == "images/a.png"
    one_file = export("r1-json", dataset / "train.jsonl", tmp_path / "r1f")  # a file: paths stay as written
    assert json.loads(one_file.files["train"].read_text())[1]["image"] == str(dataset / "images" / "a.png")

    trl = export("trl", dataset, tmp_path / "t", kind="sft", template="medreasoner")
    assert trl.counts == {"test": 1, "train": 2} and trl.files == {}
    assert trl.summary() == f"saved test 1, train 2 to {tmp_path / 't'} (datasets.load_from_disk)"
    import datasets

    row = datasets.load_from_disk(str(tmp_path / "t"))["train"][1]
    assert '"points_1"' in row["completion"][0]["content"][0]["text"]
    assert "0 and 1000" not in row["prompt"][-1]["content"][1]["text"]  # qwen2.5-vl pixels, not norm1000


def test_export_rejects_unknown_formats_and_options(dataset, tmp_path):
    with pytest.raises(MedgroundError, match=r"unknown export format 'veral'; did you mean verl\?"):
        export("veral", dataset, tmp_path / "x")
    with pytest.raises(MedgroundError, match=r"export format 'trl' has no option\(s\) ability; options: frame, kind, "
                                             r"template"):
        export("trl", dataset, tmp_path / "x", ability="vqa")
    assert not (tmp_path / "x").exists()
    # None means "the format's default", so a caller may pass every flag it has
    assert export("r1-json", dataset, tmp_path / "y", frame=None, template=None).counts["train"] == 2


def test_registered_defaults_are_the_functions_defaults():
    """One default per option: the registry entry agrees with the function a Python user calls."""
    import inspect

    for name, func in (("verl", export_verl), ("trl", export_trl), ("r1-json", export_r1_json)):
        params = inspect.signature(func).parameters
        for key, opt in EXPORTERS.entry(name).options.items():
            assert params[key].default == opt.default, (name, key)


def test_cli_export_list_and_flags_a_format_does_not_take(dataset, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["data", "export", "list"])
    assert e.value.code in (0, None)
    out = capsys.readouterr().out.splitlines()
    assert [ln.split()[0] for ln in out if not ln.startswith(" ")] == ["r1-json", "trl", "verl"]
    assert "    frame=pixels" in out[1] and any(ln.startswith("    kind=grpo ") for ln in out)
    with pytest.raises(SystemExit) as e:
        main(["data", "export", "trl", str(dataset), "--out", str(tmp_path / "t"), "--ability", "vqa"])
    assert e.value.code == 2 and "has no option(s) ability" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["data", "export", "verl", str(dataset)])
    assert e.value.code == 2 and "export needs FORMAT DATA --out DIR" in capsys.readouterr().err
