"""MS-CXR converter on CSVs written in the exact PhysioNet layouts (v1.0.0 and v1.1.0)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from medground.cli import main
from medground.data.converters import CONVERTERS, convert
from medground.data.schema import read_jsonl
from medground.errors import MedgroundError

V100 = "dicom_id,category_name,label_text,path,x,y,w,h,image_width,image_height"
V110 = V100 + ",split"
P1 = "files/p10/p10000001/s50000001/aaa-111.dcm"
P2 = "files/p12/p12000002/s52000002/bbb-222.dcm"


def _jpg(root, rel, w, h):
    p = root / rel.replace(".dcm", ".jpg")
    p.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((h, w), 90, np.uint8)).save(p)
    return p


@pytest.fixture
def release(tmp_path):
    mimic = tmp_path / "mimic-cxr-jpg"
    _jpg(mimic, P1, 250, 300)  # P2 is missing on purpose
    csv = tmp_path / "MS_CXR_Local_Alignment_v1.1.0.csv"
    csv.write_text(
        "\n".join(
            [
                V110,
                f"aaa-111,Pneumothorax,Small left apical pneumothorax,{P1},150,20,60,40,250,300,train",
                f"aaa-111,Pneumothorax,Small left apical pneumothorax,{P1},10,20,30,40,250,300,train",
                f"aaa-111,Cardiomegaly,enlarged cardiac silhouette,{P1},60,150,120,90,250,300,test",
                f"bbb-222,Edema,pulmonary edema,{P2},10,10,oops,40,2544,3056,val",
                f'bbb-222,Consolidation,"consolidation, right lower lobe",{P2},100,1200,900,700,2544,3056,val',
            ]
        )
        + "\n"
    )
    return tmp_path, csv, mimic


def test_v110_groups_boxes_keeps_split_and_reports(release):
    tmp, csv, mimic = release
    rep = convert("mscxr", csv, tmp / "out", images=mimic, progress=False)
    out = tmp / "out"
    train = read_jsonl(out / "train.jsonl")
    assert len(train) == 1
    s = train[0]
    # two CSV rows of one phrase -> one sample with two xyxy boxes in original pixels
    assert s.boxes == [[150.0, 20.0, 210.0, 60.0], [10.0, 20.0, 40.0, 60.0]]
    assert s.query == "Small left apical pneumothorax" and s.category == "Pneumothorax"
    assert (s.width, s.height) == (250, 300)
    assert s.image.endswith("aaa-111.jpg")  # the .dcm path of the CSV found as JPG in the MIMIC-CXR-JPG root
    assert s.meta["rows"] == [1, 2] and s.meta["source"] == "mscxr"
    assert s.meta["boxes_original"][0] == [150.0, 20.0, 60.0, 40.0]
    val = read_jsonl(out / "val.jsonl")
    assert [v.query for v in val] == ["consolidation, right lower lobe"]  # quoted comma kept
    assert val[0].meta["image_missing"] is True and (val[0].width, val[0].height) == (2544, 3056)

    report = json.loads((out / "convert_report.json").read_text())
    assert report["counts"] == {"test": 1, "train": 1, "val": 1}
    assert report["categories"]["train"] == {"Pneumothorax": 1}
    assert report["boxes"]["train"] == 2
    assert report["skipped_total"] == 1
    assert report["skipped"][0]["row"] == 4 and "non-numeric" in report["skipped"][0]["reason"]
    assert report["missing_images_total"] == 1 and report["missing_images"][0]["row"] == 5
    assert rep.rows_read == 5


def test_v100_layout_without_split_column(tmp_path):
    mimic = tmp_path / "jpg"
    _jpg(mimic, P1, 250, 300)
    csv = tmp_path / "MS_CXR_Local_Alignment_v1.0.0.csv"
    csv.write_text(V100 + f"\naaa-111,Pneumonia,left basilar opacity,{P1},5,6,7,8,250,300\n")
    convert("mscxr", csv, tmp_path / "a", images=mimic, progress=False)
    (s,) = read_jsonl(tmp_path / "a" / "all.jsonl")
    assert s.split == "all" and s.boxes == [[5.0, 6.0, 12.0, 14.0]] and s.meta["layout"] == "v1.0.0"
    convert("mscxr", csv, tmp_path / "b", images=mimic, split="test", progress=False)
    assert read_jsonl(tmp_path / "b" / "test.jsonl")[0].split == "test"


def test_resized_copy_gets_boxes_in_its_own_pixels(tmp_path):
    mimic = tmp_path / "small"
    _jpg(mimic, P1, 125, 150)  # half the CSV size
    csv = tmp_path / "ms.csv"
    csv.write_text(V110 + f"\naaa-111,Edema,edema,{P1},100,50,40,20,250,300,test\n")
    rep = convert("mscxr", csv, tmp_path / "o", images=mimic, progress=False)
    (s,) = read_jsonl(tmp_path / "o" / "test.jsonl")
    assert s.boxes == [[50.0, 25.0, 70.0, 35.0]] and (s.width, s.height) == (125, 150)
    assert s.meta["resized_from"] == [250, 300]
    assert rep.warnings


def test_strict_missing_image_and_bad_layout(release, tmp_path):
    _, csv, mimic = release
    with pytest.raises(MedgroundError, match=r"MS_CXR_Local_Alignment_v1.1.0.csv:4.*non-numeric"):
        convert("mscxr", csv, tmp_path / "s", images=mimic, strict=True, progress=False)
    good = tmp_path / "good.csv"
    good.write_text(V110 + f"\nbbb-222,Edema,edema,{P2},1,2,3,4,2544,3056,val\n")
    with pytest.raises(MedgroundError, match=r"good.csv:1.*image not found"):
        convert("mscxr", good, tmp_path / "s2", images=mimic, strict=True, progress=False)
    rep = convert("mscxr", good, tmp_path / "s3", images=mimic, skip_missing=True, progress=False)
    assert sum(rep.counts.values()) == 0 and rep.skipped_total == 1
    bad = tmp_path / "bad.csv"
    bad.write_text("dicom_id,label,x,y\na,b,1,2\n")
    with pytest.raises(MedgroundError, match=r"bad.csv: not the expected layout — missing column\(s\) category_name"):
        convert("mscxr", bad, tmp_path / "s4", progress=False)


def test_box_outside_image_is_skipped_slightly_outside_clipped(tmp_path):
    mimic = tmp_path / "jpg"
    _jpg(mimic, P1, 250, 300)
    csv = tmp_path / "ms.csv"
    csv.write_text(
        V110
        + "\n"
        + "\n".join(
            [
                f"aaa-111,Edema,far outside,{P1},200,20,400,40,250,300,test",
                f"aaa-111,Edema,just outside,{P1},200,20,51,40,250,300,test",
            ]
        )
        + "\n"
    )
    rep = convert("mscxr", csv, tmp_path / "o", images=mimic, progress=False)
    (s,) = read_jsonl(tmp_path / "o" / "test.jsonl")
    assert s.query == "just outside" and s.boxes == [[200.0, 20.0, 250.0, 60.0]]
    assert rep.clipped_boxes == 1 and "outside the 250x300 image" in rep.skipped[0]["reason"]


def test_cli_convert_and_error_exit(release, capsys):
    tmp, csv, mimic = release
    with pytest.raises(SystemExit) as e:
        main(["data", "convert", "mscxr", str(csv), "--out", str(tmp / "cli"), "--images", str(mimic), "--quiet"])
    assert e.value.code in (0, None)
    out = capsys.readouterr().out
    assert "mscxr: 3 samples" in out and "1 row(s) skipped" in out
    assert (tmp / "cli" / "convert_report.json").exists()
    with pytest.raises(SystemExit) as e:
        main(["data", "convert", "mscxr", str(tmp / "nope.csv"), "--out", str(tmp / "x")])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "nope.csv: input not found" in err and "Traceback" not in err
    with pytest.raises(SystemExit) as e:
        main(["data", "convert", "nosuch", str(csv), "--out", str(tmp / "x")])
    assert e.value.code == 2 and "unknown converter 'nosuch'" in capsys.readouterr().err
    assert set(CONVERTERS) == {"mscxr", "medrpg", "chestxray8", "m3d-refseg", "umrg"}
