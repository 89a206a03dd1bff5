"""The Browse tab's logic without a page (medground.serve.browse): evaluate's scores per
sample, filters, sorting, two files side by side, overlays, and files that point
outside the folders the app was given."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from medground.data.masks import encode_rle, load_mask
from medground.data.phantom import generate_phantom_dataset
from medground.data.schema import read_jsonl
from medground.errors import MedgroundError
from medground.evaluate import evaluate
from medground.serve.browse import Browser, sort_rows, wrong_side


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("browse")
    generate_phantom_dataset(root / "data", n=4, seed=1, size=128, progress=False)
    return root / "data" / "all.jsonl"


def mirrored(box, width):
    return [width - box[2], box[1], width - box[0], box[3]]


def write_predictions(path, samples, how):
    """One prediction per sample: ``how(k, sample) -> record fields`` (None: left out)."""
    with open(path, "w") as fh:
        for k, s in enumerate(samples):
            rec = how(k, s)
            if rec is not None:
                fh.write(json.dumps({"id": s.id, "completion": None, "boxes": [], "points": None, "mask": None,
                                     "frame": "pixels", "error": None, **rec}) + "\n")
    return path


@pytest.fixture(scope="module")
def files(dataset):
    samples = read_jsonl(dataset)
    folder = dataset.parent

    def a(k, s):
        if k == 0:
            return None  # missing
        if k == 1:
            return {"error": "image unreadable"}
        if k == 2:
            return {"completion": "I cannot tell"}  # unparseable
        if k % 3 == 0:  # mirrored: the wrong side of the image (when the truth is on one side)
            return {"boxes": [mirrored(s.boxes[0], s.width)]}
        return {"boxes": [s.boxes[0]], "mask": encode_rle(load_mask(s.mask)) if s.mask else None}

    def b(k, s):
        return {"boxes": [s.boxes[0]]}

    return write_predictions(folder / "a.jsonl", samples, a), write_predictions(folder / "b.jsonl", samples, b)


def test_rows_carry_evaluates_scores_and_statuses(dataset, files):
    br = Browser(dataset, [files[0]], bootstrap=50)
    rep = evaluate(files[0], data=dataset, bootstrap=50, per_sample=True)
    assert [r["iou"] for r in br.rows] == [r["iou"] for r in rep["per_sample"]]
    assert [r["status"] for r in br.rows][:3] == ["missing", "error", "unparseable"]
    assert br.runs[0].report["miou"] == rep["miou"] and br.runs[0].report["ci"] == rep["ci"]
    assert br.has_dice and any(r["dice"] == pytest.approx(1.0) for r in br.rows)
    heads, body = br.table()
    assert heads == ["id", "category", "query", "IoU", "Dice", "status", "wrong side"] and len(body) == len(br.rows)
    summary = br.summary_markdown()
    assert f"{rep['miou']:.1f} [{rep['ci']['miou'][0]:.1f}, {rep['ci']['miou'][1]:.1f}]" in summary
    assert "1 missing, 1 errors, 1 unparseable" in summary


def test_wrong_side_flags_mirrored_answers(dataset, files):
    br = Browser(dataset, [files[0]], bootstrap=0)
    samples = {s.id: s for s in read_jsonl(dataset)}
    flagged = [r["id"] for r in br.rows if r["wrong_side"]]
    assert flagged  # the phantoms have one-sided findings among the mirrored ones
    for sid in flagged:
        s = samples[sid]
        assert (s.boxes[0][2] <= s.width / 2) or (s.boxes[0][0] >= s.width / 2)
    heads, body = br.table(wrong_side_only=True)
    assert [row[0] for row in body] == flagged and all(row[-1] == "wrong side" for row in body)


def test_filters_and_sorting(dataset, files):
    br = Browser(dataset, [files[0]], bootstrap=0)
    cat = br.categories()[0]
    _, body = br.table(category=cat)
    assert body and all(row[1] == cat for row in body)
    _, body = br.table(status="unparseable")
    assert [row[5] for row in body] == ["unparseable"]
    _, body = br.table(iou_min=0.99)
    assert body and all(row[3] >= 0.99 for row in body)
    _, up = br.table(sort_by="IoU")
    _, down = br.table(sort_by="IoU", descending=True)
    assert [row[3] for row in up] == sorted(row[3] for row in up)
    assert [row[3] for row in down] == sorted((row[3] for row in down), reverse=True)
    with pytest.raises(MedgroundError, match="cannot sort by 'speed'"):
        br.table(sort_by="speed")
    with pytest.raises(MedgroundError, match="IoU range is empty"):
        br.table(iou_min=0.8, iou_max=0.2)
    assert [r["v"] for r in sort_rows([{"v": None}, {"v": 2}, {"v": 1}], "v", descending=True)] == [2, 1, None]


def test_two_files_side_by_side_with_the_iou_difference(dataset, files):
    br = Browser(dataset, list(files), bootstrap=0)
    heads, body = br.table(sort_by="ΔIoU (B − A)", descending=True)
    assert heads[3:6] == ["IoU a", "IoU b", "ΔIoU (B − A)"]
    assert all(row[5] == pytest.approx(row[4] - row[3], abs=1e-3) for row in body)
    assert body[0][5] == pytest.approx(1.0)  # b is exact where a is missing / failed
    pictures = br.detail(body[0][0])
    assert len(pictures) == 2
    (img_a, text_a, cap_a), (img_b, text_b, cap_b) = pictures
    assert img_a.mode == "RGB" and img_a.width >= 512 and cap_b.startswith("b: IoU 1.000")


def test_detail_draws_truth_and_prediction(dataset, files):
    br = Browser(dataset, [files[0]], bootstrap=0)
    sid = br.rows[4]["id"]
    (picture, completion, caption), = br.detail(sid)
    assert caption.startswith("a: IoU") and picture.size[0] >= 512
    colours = np.asarray(picture).reshape(-1, 3)
    assert ((colours == (230, 159, 0)).all(axis=1)).any() and ((colours == (86, 180, 233)).all(axis=1)).any()
    with pytest.raises(MedgroundError, match="no sample with id 'nope'"):
        br.detail("nope")


def test_files_pointing_outside_the_given_folders_are_refused(dataset, files, tmp_path):
    folder = tmp_path / "d"
    folder.mkdir()
    outside = tmp_path / "outside.png"
    shutil.copy(read_jsonl(dataset)[0].image, outside)
    lines = dataset.read_text().splitlines()
    bad = json.loads(lines[1])
    bad["image"] = "../outside.png"
    (folder / "d.jsonl").write_text("\n".join([lines[0].replace('"image": "', '"image": "' + str(dataset.parent) + "/"),
                                              json.dumps(bad)]) + "\n")
    with pytest.raises(MedgroundError, match=rf"d.jsonl:2 \[id={bad['id']}\]: image .*outside.png lies outside"):
        Browser(folder / "d.jsonl", [files[0]], bootstrap=0)
    # the same file is fine once its folder is given
    Browser(folder / "d.jsonl", [files[0]], roots=[tmp_path], bootstrap=0)
    # a predicted mask path may not climb out either
    sid = read_jsonl(dataset)[3].id
    pred = tmp_path / "p" / "pred.jsonl"
    pred.parent.mkdir()
    pred.write_text(json.dumps({"id": sid, "boxes": [[1, 1, 5, 5]], "mask": "../../../etc/passwd", "frame": "pixels",
                                "completion": None, "points": None, "error": None}) + "\n")
    with pytest.raises(MedgroundError, match=rf"pred.jsonl:1 \[id={sid}\]: mask .* lies outside"):
        Browser(dataset, [pred], bootstrap=0)


def test_wrong_side_rule():
    assert wrong_side([10, 0, 40, 10], [[60, 0, 90, 10]], 100) is True
    assert wrong_side([60, 0, 70, 10], [[60, 0, 90, 10]], 100) is False
    assert wrong_side(None, [[60, 0, 90, 10]], 100) is None
    assert wrong_side([10, 0, 40, 10], [[10, 0, 20, 10], [60, 0, 90, 10]], 100) is None  # truth on both halves
    assert wrong_side([45, 0, 55, 10], [[60, 0, 90, 10]], 100) is None  # centred on the midline
