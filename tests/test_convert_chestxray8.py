"""NIH ChestX-ray8 BBox_List_2017.csv converter, on a CSV in the released layout."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from medground.data.converters import convert
from medground.data.schema import read_jsonl
from medground.errors import MedgroundError

HEADER = "Image Index,Finding Label,Bbox [x,y,w,h],,,"
ROWS = [
    "00013118_008.png,Atelectasis,225.084745762712,547.019216763771,86.7796610169491,79.1864406779661,,,",
    "00014716_007.png,Nodule,500.0,300.0,40.0,42.0",
    "00014716_007.png,Nodule,100.0,320.0,38.0,36.0",
    "00014716_007.png,Effusion,600.0,700.0,200.0,150.0",
    "00029817_009.png,Infiltrate,not,a,box,here",
    "00030000_001.png,Mass,10,10,0,20",
]


@pytest.fixture
def nih(tmp_path):
    root = tmp_path / "nih"
    (root / "images_001" / "images").mkdir(parents=True)
    (root / "images_002" / "images").mkdir(parents=True)
    Image.fromarray(np.zeros((1024, 1024), np.uint8)).save(root / "images_001" / "images" / "00013118_008.png")
    Image.fromarray(np.zeros((512, 512), np.uint8)).save(root / "images_002" / "images" / "00014716_007.png")
    csv = root / "BBox_List_2017.csv"
    csv.write_text("\n".join([HEADER] + ROWS) + "\n")
    return root, csv


def test_bbox_list_layout_grouping_phrases_and_report(nih, tmp_path):
    root, csv = nih
    rep = convert("chestxray8", csv, tmp_path / "o", images=root, progress=False)
    samples = {(s.meta["image_index"], s.category): s for s in read_jsonl(tmp_path / "o" / "all.jsonl")}
    at = samples[("00013118_008.png", "Atelectasis")]
    np.testing.assert_allclose(at.boxes, [[225.084745762712, 547.019216763771, 311.864406779661, 626.2056574417371]])
    assert (at.width, at.height) == (1024, 1024) and at.query == "atelectasis" and at.meta["row"] == 1
    nod = samples[("00014716_007.png", "Nodule")]
    # two boxes of the same finding on the same image -> one sample; the 512-px copy gets the boxes halved
    assert nod.boxes == [[250.0, 150.0, 270.0, 171.0], [50.0, 160.0, 69.0, 178.0]]
    assert nod.meta["rows"] == [2, 3] and nod.meta["resized_from"] == [1024, 1024]
    assert samples[("00014716_007.png", "Effusion")].query == "pleural effusion"
    report = json.loads((tmp_path / "o" / "convert_report.json").read_text())
    assert report["counts"] == {"all": 3}
    assert sorted((s["row"], s["reason"].split(" ")[0]) for s in report["skipped"]) == [(5, "non-numeric"), (6, "box")]
    assert rep.rows_read == 6


def test_official_split_lists_and_phrase_template(nih, tmp_path):
    root, csv = nih
    (root / "train_val_list.txt").write_text("00014716_007.png\n")
    (root / "test_list.txt").write_text("00013118_008.png\n")
    convert("chestxray8", csv, tmp_path / "o", images=root, options={"phrase_template": "the {finding} ({label})"},
            progress=False)
    test = read_jsonl(tmp_path / "o" / "test.jsonl")
    train = read_jsonl(tmp_path / "o" / "train.jsonl")
    assert [s.query for s in test] == ["the atelectasis (Atelectasis)"]
    assert sorted(s.category for s in train) == ["Effusion", "Nodule"]
    # per-patient deterministic split when no lists exist: one patient never straddles splits
    csv2 = tmp_path / "BBox_List_2017.csv"
    csv2.write_text("\n".join([HEADER] + [f"{p:08d}_{k:03d}.png,Mass,1,2,3,4" for p in range(40) for k in range(3)]))
    convert("chestxray8", csv2, tmp_path / "h", options={"val_frac": "0.2", "test_frac": "0.3"}, progress=False)
    where = {}
    for sp in ("train", "val", "test"):
        for s in read_jsonl(tmp_path / "h" / f"{sp}.jsonl"):
            where.setdefault(s.meta["patient_id"], set()).add(sp)
    assert all(len(v) == 1 for v in where.values()) and len(where) == 40
    assert {next(iter(v)) for v in where.values()} == {"train", "val", "test"}


def test_wrong_file_is_refused(tmp_path):
    bad = tmp_path / "Data_Entry_2017.csv"
    bad.write_text("Image Index,Finding Labels,Follow-up #\n00000001_000.png,Cardiomegaly,0\n")
    with pytest.raises(MedgroundError, match="not BBox_List_2017.csv"):
        convert("chestxray8", bad, tmp_path / "o", progress=False)
    with pytest.raises(MedgroundError, match=r"converter 'chestxray8' has no option\(s\) nope; options: group, "):
        convert("chestxray8", bad, tmp_path / "o", options={"nope": "1"}, progress=False)


DATA_ENTRY = [
    "Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,View Position,"
    "OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y],",
    "00013118_008.png,Atelectasis|Infiltration,8,13118,040Y,M,PA,2992,2991,0.143,0.143",
    "00014716_007.png,Nodule|Effusion|Mass,7,14716,051Y,F,PA,2500,2048,0.168,0.168",
    "00000001_000.png,No Finding,0,1,058Y,M,PA,2682,2749,0.143,0.143",
    "00000002_000.png,No Finding,0,2,081Y,M,PA,2500,2048,0.171,0.171",
]


def test_one_sample_per_box_is_still_available(nih, tmp_path):
    root, csv = nih
    convert("chestxray8", csv, tmp_path / "o", images=root, options={"group": "false"}, progress=False)
    nodules = [s for s in read_jsonl(tmp_path / "o" / "all.jsonl") if s.category == "Nodule"]
    assert [len(s.boxes) for s in nodules] == [1, 1] and sorted(s.meta["row"] for s in nodules) == [2, 3]


def test_image_level_labels_give_negatives(nih, tmp_path):
    """Data_Entry_2017.csv says which findings an image has: the others become negatives
    (boxes: []), never one its labels name ("Infiltration" there is "Infiltrate" here)."""
    from medground.data.validate import validate_file

    root, csv = nih
    Image.fromarray(np.zeros((1024, 1024), np.uint8)).save(root / "images_001" / "images" / "00000001_000.png")
    (root / "Data_Entry_2017.csv").write_text("\n".join(DATA_ENTRY) + "\n")
    rep = convert("chestxray8", csv, tmp_path / "all", images=root, progress=False,
                  options={"negatives": "Data_Entry_2017.csv", "negatives_per_image": "0", "no_finding_images": "2"})
    samples = read_jsonl(tmp_path / "all" / "all.jsonl")
    neg = {}
    for s in samples:
        if not s.boxes:
            neg.setdefault(s.meta["image_index"], set()).add(s.category)
    assert neg["00013118_008.png"] == {"Cardiomegaly", "Effusion", "Mass", "Nodule", "Pneumonia", "Pneumothorax"}
    assert neg["00014716_007.png"] == {"Atelectasis", "Cardiomegaly", "Infiltrate", "Pneumonia", "Pneumothorax"}
    # 'No Finding' images: only those whose file exists (00000002_000.png is not in the folder)
    assert len(neg["00000001_000.png"]) == 8 and "00000002_000.png" not in neg
    assert rep.to_dict()["negatives"] == 6 + 5 + 8 == sum(not s.boxes for s in samples)
    one = next(s for s in samples if s.id == "cxr8-00014716_007-neg0")
    assert one.query == "cardiomegaly" or one.query in {"atelectasis", "pulmonary infiltrate", "pneumonia", "pneumothorax"}
    assert one.is_negative and (one.width, one.height) == (512, 512) and one.meta["labels"] == ["mass", "nodule",
                                                                                                "pleural effusion"]
    assert validate_file(tmp_path / "all" / "all.jsonl").ok
    # the default: one absent finding per image, the same one on every run
    convert("chestxray8", csv, tmp_path / "one", images=root, options={"negatives": str(root / "Data_Entry_2017.csv")},
            progress=False)
    again = convert("chestxray8", csv, tmp_path / "two", images=root,
                    options={"negatives": str(root / "Data_Entry_2017.csv")}, progress=False)
    one_neg = [s for s in read_jsonl(tmp_path / "one" / "all.jsonl") if not s.boxes]
    assert len(one_neg) == 2 == again.to_dict()["negatives"]
    assert (tmp_path / "one" / "all.jsonl").read_bytes() == (tmp_path / "two" / "all.jsonl").read_bytes()


def test_a_wrong_labels_file_is_refused(nih, tmp_path):
    root, csv = nih
    with pytest.raises(MedgroundError, match="not Data_Entry_2017.csv"):
        convert("chestxray8", csv, tmp_path / "o", images=root, options={"negatives": str(csv)}, progress=False)
