import json
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis.extra.numpy import arrays

from medground.data.masks import decode_rle, encode_rle, load_mask, save_mask_png, save_png
from medground.data.schema import Sample, from_hf_dataset, read_jsonl, to_hf_dataset, write_jsonl
from medground.errors import MedgroundError


def make_samples(root):
    return [
        Sample(id="a", image=str(root / "img" / "a.png"), query="nodule", boxes=[[1, 2, 30, 40]],
               mask=str(root / "masks" / "a.png"), points=[[5, 6], [20, 30]], category="nodule",
               supercategory="lung", modality="xray", split="train", width=64, height=48, meta={"task": "explicit"}),
        Sample(id="b", image="/abs/b.png", query="two effusions", boxes=[[0, 0, 1, 1], [2, 2, 3, 3]], split="test"),
    ]


def test_jsonl_round_trip_with_relative_paths(tmp_path):
    samples = make_samples(tmp_path)
    out = write_jsonl(samples, tmp_path / "train.jsonl")
    first = json.loads(out.read_text().splitlines()[0])
    assert first["image"] == "img/a.png" and first["mask"] == "masks/a.png"  # stored relative
    back = read_jsonl(out)
    assert back[0] == samples[0]
    assert back[1].image == "/abs/b.png" and back[1].boxes == [[0, 0, 1, 1], [2, 2, 3, 3]]


def test_hf_dataset_round_trip(tmp_path):
    samples = make_samples(tmp_path)
    ds = to_hf_dataset(samples)
    assert len(ds) == 2 and "boxes" in ds.column_names
    assert from_hf_dataset(ds) == samples


@pytest.mark.parametrize(
    "line,message",
    [
        ("{not json", "invalid JSON"),
        ('{"id": "x", "image": "a.png"}', "missing field(s) query"),
        ('{"id": "x", "image": "a.png", "query": "q", "boxes": [[1, 2, 3]]}', "malformed"),
        ('{"id": "x", "image": "a.png", "query": "q", "points": [[1, 2]]}', "malformed"),
        ("[1, 2]", "expected a JSON object"),
    ],
)
def test_bad_lines_name_file_line_and_id(tmp_path, line, message):
    f = tmp_path / "d.jsonl"
    f.write_text('{"id": "ok", "image": "a.png", "query": "q"}\n\n' + line + "\n")
    with pytest.raises(MedgroundError) as err:
        read_jsonl(f)
    assert f"{f}:3" in str(err.value) and message in str(err.value)


def test_missing_file(tmp_path):
    with pytest.raises(MedgroundError, match="file not found"):
        read_jsonl(tmp_path / "none.jsonl")


@settings(max_examples=100, deadline=None)
@given(arrays(bool, (7, 5)))
def test_rle_round_trip(mask):
    rle = encode_rle(mask)
    assert sum(rle["counts"]) == mask.size
    assert (decode_rle(rle) == mask).all()


def test_rle_is_coco_column_major():
    m = np.zeros((2, 3), bool)
    m[:, 0] = True  # first column: first two pixels in Fortran order
    assert encode_rle(m)["counts"] == [0, 2, 4]


def test_mask_png_and_bad_masks(tmp_path):
    m = np.zeros((10, 12), bool)
    m[2:5, 3:9] = True
    path = save_mask_png(m, tmp_path / "m" / "x.png")
    assert (load_mask("m/x.png", root=tmp_path) == m).all()
    with pytest.raises(MedgroundError, match="not found"):
        load_mask(tmp_path / "missing.png")
    (tmp_path / "bad.png").write_bytes(b"not a png")
    with pytest.raises(MedgroundError, match="cannot decode"):
        load_mask(tmp_path / "bad.png")
    with pytest.raises(MedgroundError, match="malformed RLE"):
        decode_rle({"size": [2, 2], "counts": [1, 1]})
    assert path.exists()


def test_write_jsonl_replaces_the_file_whole_or_not_at_all(tmp_path):
    out = write_jsonl(make_samples(tmp_path), tmp_path / "d.jsonl")
    before = out.read_bytes()

    def interrupted():
        yield make_samples(tmp_path)[1]
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError, match="interrupted"):
        write_jsonl(interrupted(), out)
    assert out.read_bytes() == before  # the previous file is intact
    assert os.listdir(tmp_path) == ["d.jsonl"]  # and no temporary file is left behind


def test_png_writers_never_leave_a_partial_file(tmp_path, monkeypatch):
    from PIL import Image

    target = tmp_path / "masks" / "x.png"  # the folder is created
    save_mask_png(np.ones((4, 5), bool), target)
    good = target.read_bytes()
    rgb = (np.arange(2 * 3 * 3) * 10).astype(np.uint8).reshape(2, 3, 3)
    assert (np.asarray(Image.open(save_png(rgb, tmp_path / "c.png"))) == rgb).all()

    def crash(self, fp, *args, **kwargs):  # the disk fills up half-way through the PNG
        Path(fp).write_bytes(b"\x89PNG half")
        raise OSError("No space left on device")

    monkeypatch.setattr(Image.Image, "save", crash)
    with pytest.raises(OSError, match="No space"):
        save_mask_png(np.zeros((4, 5), bool), target)
    assert target.read_bytes() == good and os.listdir(target.parent) == ["x.png"]


def test_negative_multi_and_unlabelled_samples_round_trip(tmp_path):
    from medground.data.schema import read_jsonl, write_jsonl

    path = tmp_path / "d.jsonl"
    path.write_text(
        '{"id": "neg", "image": "a.png", "query": "left pneumothorax", "boxes": []}\n'
        '{"id": "two", "image": "a.png", "query": "both lungs", "boxes": [[1, 2, 3, 4], [5, 6, 7, 8]]}\n'
        '{"id": "unlabelled", "image": "a.png", "query": "the heart"}\n'
    )
    neg, two, unlabelled = read_jsonl(path)
    assert (neg.kind, neg.is_negative, neg.annotated) == ("negative", True, True)
    assert (two.kind, two.is_negative, len(two.boxes)) == ("multi", False, 2)
    assert (unlabelled.kind, unlabelled.is_negative, unlabelled.annotated, unlabelled.boxes) == (None, False, False, [])
    write_jsonl([neg, two, unlabelled], tmp_path / "again.jsonl")
    lines = (tmp_path / "again.jsonl").read_text().splitlines()
    assert '"boxes": []' in lines[0] and '"boxes"' not in lines[2]  # still unknown, not turned into a negative
    assert [s.kind for s in read_jsonl(tmp_path / "again.jsonl")] == ["negative", "multi", None]
