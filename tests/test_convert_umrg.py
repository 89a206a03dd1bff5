"""U-MRG-14K converter on tiny parquet files written with pyarrow in the release structure."""

from __future__ import annotations

import io
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from medground.data.converters import convert
from medground.data.masks import load_mask
from medground.data.schema import read_jsonl
from medground.errors import MedgroundError

IMG = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
SCHEMA = pa.schema([
    ("data_source", pa.string()),
    ("prompt", pa.list_(pa.struct([("content", pa.string()), ("role", pa.string())]))),
    ("images", pa.list_(IMG)),
    ("masks", pa.list_(IMG)),
    ("ability", pa.string()),
    ("reward_model", pa.struct([("ground_truth", pa.string()), ("style", pa.string())])),
    ("extra_info", pa.struct([("category", pa.string()), ("data_source", pa.string()), ("id", pa.string()),
                              ("supercategory", pa.string())])),
])


def _png(arr) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def _row(rid, question, gt, *, size=(84, 56), with_image=True, mask_box=(10, 20, 30, 40)):
    w, h = size
    img = (np.arange(w * h) % 251).astype(np.uint8).reshape(h, w)
    m = np.zeros((h, w), np.uint8)
    x1, y1, x2, y2 = mask_box
    m[y1:y2, x1:x2] = 255
    return {
        "data_source": "u_mrg",
        "prompt": [{"content": question, "role": "user"}],
        "images": [{"bytes": _png(img) if with_image else None, "path": f"{rid}.png"}],
        "masks": [{"bytes": _png(m), "path": f"{rid}_mask.png"}],
        "ability": "medical_grounding",
        "reward_model": {"ground_truth": gt, "style": "rule"},
        "extra_info": {"category": "liver tumor", "data_source": "LiTS", "id": rid, "supercategory": "abdomen"},
    }


@pytest.fixture
def release(tmp_path):
    d = tmp_path / "U-MRG-14K" / "data"
    d.mkdir(parents=True)
    good = json.dumps({"bbox_2d": [10, 20, 30, 40], "point_2d": [[15, 25], [25, 35]]})
    rows = [
        _row("ct_0001", "Which area suggests a primary hepatic malignancy?", good),
        _row("ct_0002", "Where is the lesion?", '{"bbox_2d": [1, 2, 3]}'),
        _row("ct_0003", "Where?", good, with_image=False),
        _row("ct/0004", "Single-quoted truth?", "{'bbox_2d': [5, 6, 50, 46], 'point_2d': [[10, 10], [40, 40]]}",
             mask_box=(5, 6, 50, 46)),
        _row("ct_0005", "Box outside?", json.dumps({"bbox_2d": [10, 20, 300, 40], "point_2d": [[15, 25], [25, 35]]})),
    ]
    rows.append(rows[0])  # the same record twice: a duplicate id
    test_rows = [_row("ct_1001", "Test question?", good)]
    pq.write_table(pa.Table.from_pylist(rows, schema=SCHEMA), d / "train-00000-of-00001.parquet", row_group_size=2)
    pq.write_table(pa.Table.from_pylist(test_rows, schema=SCHEMA), d / "test-00000-of-00001.parquet")
    return tmp_path / "U-MRG-14K"


def test_umrg_rows_to_samples_with_images_masks_points(release, tmp_path):
    out = tmp_path / "o"
    rep = convert("umrg", release, out, options={"batch_size": "2"}, progress=False)
    train = {s.meta["umrg_id"]: s for s in read_jsonl(out / "train.jsonl")}
    assert set(train) == {"ct_0001", "ct/0004"}
    s = train["ct_0001"]
    assert s.id == "umrg-ct_0001" and s.query == "Which area suggests a primary hepatic malignancy?"
    assert s.boxes == [[10.0, 20.0, 30.0, 40.0]] and s.points == [[15.0, 25.0], [25.0, 35.0]]
    assert (s.width, s.height) == (84, 56) and s.meta["box_frame"] == "pixels:84x56"
    assert s.category == "liver tumor" and s.supercategory == "abdomen" and s.meta["data_source"] == "LiTS"
    assert Image.open(s.image).size == (84, 56)
    m = load_mask(s.mask)
    assert m.shape == (56, 84) and m.sum() == 400 and m[25, 15]
    assert train["ct/0004"].boxes == [[5.0, 6.0, 50.0, 46.0]]
    assert "ct_0004" in train["ct/0004"].image  # id made file-name safe
    assert [t.id for t in read_jsonl(out / "test.jsonl")] == ["umrg-ct_1001"]
    report = json.loads((out / "convert_report.json").read_text())
    reasons = {(r["file"].rsplit("/", 1)[-1], r["row"]): r["reason"] for r in report["skipped"]}
    assert reasons[("train-00000-of-00001.parquet", 2)].startswith("malformed reward_model.ground_truth")
    assert reasons[("train-00000-of-00001.parquet", 3)].startswith("no image bytes")
    assert "outside the 84x56 image" in reasons[("train-00000-of-00001.parquet", 5)]
    assert reasons[("train-00000-of-00001.parquet", 6)] == "duplicate sample id umrg-ct_0001"
    assert report["counts"] == {"test": 1, "train": 2} and rep.rows_read == 7
    assert report["categories"]["train"] == {"liver tumor": 2}


def test_not_umrg_layout(tmp_path):
    p = tmp_path / "x.parquet"
    pq.write_table(pa.table({"question": ["q"], "answer": ["a"]}), p)
    with pytest.raises(MedgroundError, match=r"x.parquet: not U-MRG layout — missing column\(s\) prompt, images, reward_model"):
        convert("umrg", p, tmp_path / "o", progress=False)
    with pytest.raises(MedgroundError, match=r"val.parquet:1 \[id=umrg-ct_0001\]: malformed.*strict mode"):
        d = tmp_path / "strict"
        d.mkdir()
        row = _row("ct_0001", "q?", '{"bbox_2d": [1, 2, 3]}')
        pq.write_table(pa.Table.from_pylist([row], schema=SCHEMA), d / "val.parquet")
        convert("umrg", d, tmp_path / "o2", strict=True, progress=False)
