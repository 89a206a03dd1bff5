"""M3D-RefSeg converter on tiny NIfTI volumes written in the release layout
(``M3D_RefSeg/sXXXX/{ct,mask}.nii.gz`` + ``M3D_RefSeg{,_test}.csv``)."""

from __future__ import annotations

import csv
import json

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from medground.data.converters import convert
from medground.data.io import WINDOW_PRESETS, apply_window
from medground.data.masks import load_mask
from medground.data.schema import read_jsonl

COLS = ["Image", "Mask", "Mask_ID", "Text", "Question_Type", "Question", "Answer"]
NX, NY, NZ = 20, 16, 10


def _volumes():
    """RAS+ arrays: body at 40 HU in air; label 2 a lesion on the patient's LEFT (low x),
    posterior-ish (low y), largest on slice z=6; label 1 a structure on the right."""
    ct = np.full((NX, NY, NZ), -1000, np.int16)
    ct[1:19, 1:15, :] = 40
    mask = np.zeros((NX, NY, NZ), np.uint8)
    mask[2:6, 3:9, 6] = 2  # 24 px: the largest section, z=6
    mask[2:6, 3:7, 7] = 2  # 16 px
    mask[3:5, 4:7, 5] = 2  # 6 px
    mask[3, 4, 4] = 2  # 1 px
    mask[13:17, 6:10, 2:4] = 1
    ct[mask == 2] = 30
    return ct, mask


def _save_lps(arr, path):
    """Store a RAS+ array the way many CT exports do: LPS (x and y flipped)."""
    aff = np.diag([-0.8, -0.8, 2.5, 1.0])
    aff[:3, 3] = [(NX - 1) * 0.8, (NY - 1) * 0.8, 0]
    nib.save(nib.Nifti1Image(np.ascontiguousarray(arr[::-1, ::-1, :]), aff), path)


@pytest.fixture
def release(tmp_path):
    root = tmp_path / "M3D_RefSeg"
    case = root / "s0000"
    case.mkdir(parents=True)
    ct, mask = _volumes()
    _save_lps(ct, case / "ct.nii.gz")
    _save_lps(mask, case / "mask.nii.gz")
    (case / "text.json").write_text(json.dumps({"1": "right structure", "2": "left liver lesion"}))
    rows = [
        ["s0000/ct.nii.gz", "s0000/mask.nii.gz", "2", "A hypodense lesion in the left lobe of the liver", "0",
         "Please segment the liver lesion.", "Sure, it is [SEG]."],
        ["PATH/M3D_RefSeg/s0000/ct.nii.gz", "PATH/M3D_RefSeg/s0000/mask.nii.gz", "1",
         "A nodule in the right lung", "1", "Where is the abnormal lung finding?", "It is [SEG]."],
        ["s0000/ct.nii.gz", "s0000/mask.nii.gz", "5", "absent label", "0", "q", "a"],
        ["s0404/ct.nii.gz", "s0404/mask.nii.gz", "1", "missing case", "0", "q", "a"],
    ]
    with open(root / "M3D_RefSeg.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(COLS)
        w.writerows(rows)
    with open(root / "M3D_RefSeg_test.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(COLS)
        w.writerow(rows[0])
    return root


def test_largest_slice_box_mask_window_and_orientation(release, tmp_path):
    out = tmp_path / "o"
    rep = convert("m3d-refseg", release, out, progress=False)
    train = read_jsonl(out / "train.jsonl")
    test = read_jsonl(out / "test.jsonl")
    assert len(train) == 2 and len(test) == 1
    s = {x.meta["mask_id"]: x for x in train}[2]
    assert s.meta["slice_index"] == 6 and s.meta["plane"] == "axial"
    # patient left (RAS x 2..5) -> image columns 14..17; posterior y 3..8 -> rows 7..12
    assert s.boxes == [[14.0, 7.0, 18.0, 13.0]] and (s.width, s.height) == (NX, NY)
    assert s.query == "A hypodense lesion in the left lobe of the liver"
    assert s.meta["question"] == "Please segment the liver lesion." and s.category == "liver"
    assert s.meta["window_name"] == "abdomen" and s.meta["original_orientation"] == "LPS"
    m = load_mask(s.mask)
    assert m.shape == (NY, NX) and m.sum() == s.meta["slice_area"] == 24
    for x, y in s.points:
        assert m[int(y), int(x)]  # key points lie inside the target
    img = np.asarray(Image.open(s.image))
    assert img.shape == (NY, NX)
    assert img[0, 0] == 0  # air is black in the abdomen window
    assert img[10, 15] == round(apply_window(30, *WINDOW_PRESETS["abdomen"]) * 255)
    lung = {x.meta["mask_id"]: x for x in train}[1]
    assert lung.meta["window_name"] == "lung" and lung.meta["window"] == list(WINDOW_PRESETS["lung"])
    assert lung.boxes[0][0] < NX / 2  # patient right -> image left
    report = json.loads((out / "convert_report.json").read_text())
    reasons = {r["row"]: r["reason"] for r in report["skipped"]}
    assert reasons[3].startswith("empty target: no voxel with label 5")
    assert reasons[4].startswith("CT volume not found")
    assert report["counts"] == {"test": 1, "train": 2} and rep.missing_total == 1


def test_slices_query_and_window_options(release, tmp_path):
    out = tmp_path / "o"
    convert("m3d-refseg", release / "M3D_RefSeg_test.csv", out,
            options={"slices": "2", "query": "question", "window": "-600,1500"}, progress=False)
    test = read_jsonl(out / "test.jsonl")
    assert [s.meta["slice_index"] for s in test] == [6, 7]
    assert all(s.query == "Please segment the liver lesion." for s in test)
    assert test[0].meta["window"] == [-600.0, 1500.0] and test[0].id.endswith("-s6")
    cor = tmp_path / "c"
    convert("m3d-refseg", release / "M3D_RefSeg_test.csv", cor, options={"axis": "1"}, progress=False)
    (c,) = read_jsonl(cor / "test.jsonl")
    assert (c.width, c.height) == (NX, NZ) and c.meta["plane"] == "coronal"
    assert c.boxes[0][0] >= NX / 2  # still patient left on image right
