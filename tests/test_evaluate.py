"""``medground.evaluate``: joining, scoring rules, the three formats, the report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from medground.data.masks import encode_rle, save_mask_png
from medground.errors import MedgroundError
from medground.evaluate import detect_format, evaluate, format_report, write_report
from medground.evaluate.report import bootstrap_ci, build_report, summarize
from medground.metrics import disc_dice


def _jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def _dataset(tmp_path: Path, samples: list[dict], size=(100, 80)) -> Path:
    from PIL import Image

    Image.new("L", size, 40).save(tmp_path / "img.png")
    rows = [{"image": "img.png", "query": "q", "width": size[0], "height": size[1], **s} for s in samples]
    return _jsonl(tmp_path / "data.jsonl", rows)


# --------------------------------------------------------------------------- bundled example


def test_example_counts_and_metrics(example):
    rep = evaluate(example / "predictions.jsonl", data=example / "dataset.jsonl", per_sample=True)
    assert rep["format"] == "medground"
    assert (rep["n"], rep["n_missing"], rep["n_error"], rep["n_unparseable"]) == (5, 1, 1, 1)
    assert rep["n_extra"] == 1 and rep["extra_ids"] == ["case-999"]
    ious = {r["id"]: r["iou"] for r in rep["per_sample"]}
    # case-001: [12,8,28,24] vs [8,8,24,24] -> 192 / 320; case-002: completion in the 56-px
    # Qwen2.5-VL frame maps back exactly onto the target
    assert ious == pytest.approx({"case-001": 0.6, "case-002": 1.0, "case-003": 0.0, "case-004": 0.0, "case-005": 0.0})
    assert rep["miou"] == pytest.approx(32.0)
    assert (rep["acc@0.3"], rep["acc@0.5"], rep["acc@0.7"]) == (40.0, 40.0, 20.0)
    # pDice over the two samples with ground-truth points
    assert rep["n_pdice"] == 2
    expected = (disc_dice([[[12, 16], [24, 16]]], [[[10, 16], [22, 16]]])[0] + 1.0) / 2 * 100
    assert rep["pdice"] == pytest.approx(expected)
    # mask Dice over the two samples with masks; case-002 has none predicted -> 0
    assert rep["n_dice"] == 2 and 0 < rep["dice"] < 50
    assert set(rep["per_supercategory"]) == {"heart", "lung", "pleura"}
    assert rep["per_category"]["nodule"]["n"] == 2
    assert rep["per_category"]["cardiomegaly"]["miou"] == pytest.approx(100.0)


def test_example_confidence_intervals(example):
    a = evaluate(example / "predictions.jsonl", data=example / "dataset.jsonl", bootstrap=300, seed=1)
    b = evaluate(example / "predictions.jsonl", data=example / "dataset.jsonl", bootstrap=300, seed=1)
    assert a["ci"] == b["ci"]  # seeded
    for key in ("miou", "acc@0.5", "pdice", "dice"):
        lo, hi = a["ci"][key]
        assert lo <= a[key] <= hi
    assert a["per_category"]["nodule"]["ci"]["miou"][0] <= a["per_category"]["nodule"]["miou"]
    none = evaluate(example / "predictions.jsonl", data=example / "dataset.jsonl", bootstrap=0)
    assert none["ci"] == {} and none["miou"] == a["miou"]


def test_example_report_roundtrip_and_table(example, tmp_path):
    rep = evaluate(example / "predictions.jsonl", data=example / "dataset.jsonl", bootstrap=50)
    out = write_report(rep, tmp_path / "sub" / "report.json")
    back = json.loads(out.read_text())
    for key in (
        "n",
        "n_missing",
        "n_unparseable",
        "miou",
        "acc@0.3",
        "acc@0.5",
        "acc@0.7",
        "pdice",
        "dice",
        "mask_iou",
        "ci",
        "per_category",
        "per_supercategory",
        "format",
        "iou_variant",
    ):
        assert key in back
    table = format_report(rep)
    assert "mIoU" in table and "32.00" in table and "case-999" in table and "cardiomegaly" in table


def test_medreasoner_stored_scores(example):
    path = example / "medreasoner_output.json"
    assert detect_format(path) == "medreasoner"
    rep = evaluate(path, bootstrap=0)
    rows = json.loads(path.read_text())
    assert rep["iou_source"] == "stored"
    assert rep["n"] == len(rows) and rep["n_unparseable"] == sum(r["think"] == "error" for r in rows)
    assert rep["miou"] == pytest.approx(np.mean([r["iou"] for r in rows]) * 100)
    # the stored pDice (MedReasoner's 2I/(A+B-I)) is reported raw and converted to Dice
    assert rep["pdice_medreasoner"] == pytest.approx(np.mean([r["pdice"] for r in rows]) * 100)
    true_dice = [
        disc_dice([r["points"]], [[[10, 16], [22, 16]]] if r["id"] == "case-001" else [[[20, 24], [44, 24]]])[0]
        if r["points"]
        else 0.0
        for r in rows
    ]
    assert rep["pdice"] == pytest.approx(np.mean(true_dice) * 100, abs=0.05)
    assert rep["per_supercategory"]["heart"]["pdice_medreasoner"] == pytest.approx(200.0)


def test_medreasoner_recomputed_against_dataset(example):
    rep = evaluate(example / "medreasoner_output.json", data=example / "dataset.jsonl", bootstrap=0, per_sample=True)
    assert rep["iou_source"] == "recomputed"
    assert rep["n"] == 5 and rep["n_missing"] == 1  # case-004 has no entry
    ious = {r["id"]: r["iou"] for r in rep["per_sample"]}
    assert ious["case-001"] == pytest.approx(0.6) and ious["case-002"] == pytest.approx(1.0)
    assert rep["pdice"] == pytest.approx(
        evaluate(example / "predictions.jsonl", data=example / "dataset.jsonl", bootstrap=0)["pdice"]
    )


def test_medreasoner_frame_conversion(tmp_path):
    data = _dataset(tmp_path, [{"id": "a", "boxes": [[10, 8, 50, 40]], "points": [[20, 20], [40, 20]]}])
    row = {
        "id": "a",
        "problem": "q",
        "supercategory": "s",
        "category": "c",
        "output": "o",
        "think": "t",
        "bbox": [100, 100, 500, 500],
        "points": [[200, 250], [400, 250]],
        "iou": 0.0,
        "pdice": 0.0,
    }
    pred = tmp_path / "out.json"
    pred.write_text(json.dumps([row], indent=4))
    rep = evaluate(pred, data=data, frame="norm1000", bootstrap=0)
    assert rep["miou"] == pytest.approx(100.0) and rep["pdice"] == pytest.approx(100.0)
    plain = evaluate(pred, data=data, bootstrap=0)  # as pixels: far off
    assert plain["miou"] < 50


# --------------------------------------------------------------------------- scoring rules


def test_best_matching_target_and_first_predicted_box(tmp_path):
    data = _dataset(tmp_path, [{"id": "a", "boxes": [[0, 0, 10, 10], [50, 50, 60, 60]]}])
    pred = _jsonl(tmp_path / "p.jsonl", [{"id": "a", "boxes": [[50, 50, 60, 60], [0, 0, 10, 10]]}])
    rep = evaluate(pred, data=data, bootstrap=0, per_sample=True)
    assert rep["per_sample"][0]["iou"] == pytest.approx(1.0)
    pred = _jsonl(tmp_path / "p.jsonl", [{"id": "a", "boxes": [[20, 20, 30, 30], [0, 0, 10, 10]]}])
    assert evaluate(pred, data=data, bootstrap=0)["miou"] == 0.0  # only the first box counts


def test_completion_needs_frame(tmp_path):
    data = _dataset(tmp_path, [{"id": "a", "boxes": [[0, 0, 10, 10]]}])
    pred = _jsonl(tmp_path / "p.jsonl", [{"id": "a", "completion": '<answer>{"bbox_2d": [0, 0, 100, 125]}</answer>'}])
    with pytest.raises(MedgroundError, match=r"p\.jsonl:1 \[id=a\].*frame"):
        evaluate(pred, data=data, bootstrap=0)
    # 100x80 image, 0-1000 frame: [0, 0, 100, 125] -> [0, 0, 10, 10]
    assert evaluate(pred, data=data, frame="norm1000", bootstrap=0)["miou"] == pytest.approx(100.0)


def test_masks_from_png_relative_to_prediction_file(tmp_path):
    gt = np.zeros((80, 100), bool)
    gt[10:30, 10:30] = True
    save_mask_png(gt, tmp_path / "gt.png")
    half = gt.copy()
    half[20:30] = False
    save_mask_png(half, tmp_path / "pred_masks" / "a.png")
    data = _dataset(
        tmp_path,
        [
            {"id": "a", "boxes": [[10, 10, 30, 30]], "mask": "gt.png"},
            {"id": "b", "boxes": [[10, 10, 30, 30]], "mask": "gt.png"},
        ],
    )
    pred = _jsonl(
        tmp_path / "p.jsonl",
        [
            {"id": "a", "boxes": [[10, 10, 30, 30]], "mask": "pred_masks/a.png"},
            {"id": "b", "boxes": [[10, 10, 30, 30]], "mask": encode_rle(gt)},
        ],
    )
    rep = evaluate(pred, data=data, bootstrap=0, per_sample=True)
    dice = [r["dice"] for r in rep["per_sample"]]
    assert dice == pytest.approx([2 * 200 / 600, 1.0])
    assert rep["mask_iou"] == pytest.approx((0.5 + 1.0) / 2 * 100)


def test_mask_size_mismatch_names_line(tmp_path):
    save_mask_png(np.ones((80, 100), bool), tmp_path / "gt.png")
    data = _dataset(tmp_path, [{"id": "a", "boxes": [[10, 10, 30, 30]], "mask": "gt.png"}])
    pred = _jsonl(tmp_path / "p.jsonl", [{"id": "a", "boxes": [[10, 10, 30, 30]], "mask": encode_rle(np.ones((8, 8)))}])
    with pytest.raises(MedgroundError, match=r"p\.jsonl:1 \[id=a\]: predicted mask is 8x8"):
        evaluate(pred, data=data, bootstrap=0)


def test_no_pdice_or_dice_keys_without_predicted_points_or_masks(tmp_path):
    save_mask_png(np.ones((80, 100), bool), tmp_path / "gt.png")
    data = _dataset(tmp_path, [{"id": "a", "boxes": [[0, 0, 10, 10]], "points": [[1, 1], [5, 5]], "mask": "gt.png"}])
    pred = _jsonl(tmp_path / "p.jsonl", [{"id": "a", "boxes": [[0, 0, 10, 10]]}])
    rep = evaluate(pred, data=data, bootstrap=0)
    assert "pdice" not in rep and "dice" not in rep and "mask_iou" not in rep


def test_duplicate_prediction_is_an_error(tmp_path):
    data = _dataset(tmp_path, [{"id": "a", "boxes": [[0, 0, 10, 10]]}])
    pred = _jsonl(tmp_path / "p.jsonl", [{"id": "a", "boxes": []}, {"id": "a", "boxes": []}])
    with pytest.raises(MedgroundError, match=r"p\.jsonl:2 \[id=a\]: duplicate prediction \(first at line 1\)"):
        evaluate(pred, data=data, bootstrap=0)


def test_medground_format_needs_data(tmp_path):
    pred = _jsonl(tmp_path / "p.jsonl", [{"id": "a", "boxes": [[0, 0, 1, 1]]}])
    with pytest.raises(MedgroundError, match="needs --data"):
        evaluate(pred)


@pytest.mark.parametrize(
    "lines, pattern",
    [
        (['{"id": "a", "boxes": []}', "{not json"], r"p\.jsonl:2: invalid JSON"),
        (['{"boxes": [[0, 0, 1, 1]]}'], r"p\.jsonl:1: missing field 'id'"),
        (['{"id": "a", "boxes": [[0, 0, 1]]}'], r"p\.jsonl:1 \[id=a\]: field 'boxes' must be four numbers"),
        (['{"id": "a", "points": [[0, 0]]}'], r"p\.jsonl:1 \[id=a\]: field 'points' must be two"),
        (["[1, 2]"], r"p\.jsonl:1: expected a JSON object, got int"),
    ],
)
def test_malformed_medground_lines_name_the_line(tmp_path, lines, pattern):
    data = _dataset(tmp_path, [{"id": "a", "boxes": [[0, 0, 10, 10]]}])
    pred = _jsonl(tmp_path / "p.jsonl", lines)
    with pytest.raises(MedgroundError, match=pattern):
        evaluate(pred, data=data, bootstrap=0)


def test_malformed_foreign_files_name_the_line(tmp_path):
    items = [
        {"question": "q", "ground_truth": [0, 0, 1, 1], "extracted_answer": [0, 0, 1, 1], "correct": 1},
        {"question": "q", "extracted_answer": [0, 0, 1, 1], "correct": 1},
    ]
    log = tmp_path / "log.json"
    log.write_text(json.dumps({"accuracy": 50.0, "results": items}, indent=2))
    item_line = log.read_text().splitlines().index("    {", 8) + 1  # where the second result starts
    with pytest.raises(MedgroundError, match=rf"log\.json:{item_line} \[item 1\]: missing field 'ground_truth'"):
        evaluate(log, bootstrap=0)
    log.write_text('{\n  "accuracy": 1,\n  "results": [\n    {"question": "q",,}\n  ]\n}\n')
    with pytest.raises(MedgroundError, match=r"log\.json:4: invalid JSON"):
        evaluate(log, format="vlm-r1", bootstrap=0)
    out = tmp_path / "out.json"
    out.write_text(json.dumps([{"id": "a", "bbox": None, "iou": 0.0}, {"id": "b", "bbox": [0, 0, 1, 1]}], indent=4))
    with pytest.raises(MedgroundError, match=r"out\.json:7 \[id=b\]: missing field 'iou'"):
        evaluate(out, bootstrap=0)


def test_detect_format(tmp_path, example):
    assert detect_format(example / "predictions.jsonl") == "medground"
    log = tmp_path / "log.json"
    log.write_text(json.dumps({"accuracy": 0, "results": []}))
    assert detect_format(log) == "vlm-r1"
    assert detect_format(example / "medreasoner_output.json") == "medreasoner"


def test_bad_options(example):
    with pytest.raises(MedgroundError, match="IoU variant"):
        evaluate(example / "predictions.jsonl", data=example / "dataset.jsonl", iou="giou")
    with pytest.raises(MedgroundError, match="format"):
        evaluate(example / "predictions.jsonl", data=example / "dataset.jsonl", format="coco")
    with pytest.raises(MedgroundError, match="--image-size applies to vlm-r1 logs only"):
        evaluate(example / "predictions.jsonl", data=example / "dataset.jsonl", image_size=(64, 64))
    with pytest.raises(MedgroundError, match="needs --data"):
        evaluate(example / "medreasoner_output.json", frame="norm1000")


# --------------------------------------------------------------------------- report


def test_summarize_counts_and_percent_units():
    rows = [
        {"iou": 0.9, "status": "ok", "pdice": 0.5},
        {"iou": 0.0, "status": "missing", "pdice": None},
        {"iou": 0.0, "status": "unparseable"},
        {"iou": 0.71, "status": "ok"},
    ]
    rep = summarize(rows, resamples=0)
    assert (rep["n"], rep["n_missing"], rep["n_unparseable"]) == (4, 1, 1)
    assert rep["miou"] == pytest.approx(40.25)
    assert (rep["acc@0.3"], rep["acc@0.5"], rep["acc@0.7"]) == (50.0, 50.0, 50.0)
    assert rep["pdice"] == 50.0 and rep["n_pdice"] == 1


def test_acc_is_computed_like_the_reference_scripts():
    # 352 hits of 500: count / n * 100 == 70.39999999999999, not 70.4
    rows = [{"iou": 0.9 if k < 352 else 0.1} for k in range(500)]
    assert summarize(rows, resamples=0)["acc@0.5"] == 352 / 500 * 100


def test_bootstrap_interval_behaviour():
    rng = np.random.default_rng(0)
    small = rng.uniform(size=20)
    big = rng.uniform(size=2000)
    ci_small = bootstrap_ci({"x": small}, resamples=500, seed=3)["x"]
    ci_big = bootstrap_ci({"x": big}, resamples=500, seed=3)["x"]
    assert ci_small[0] < small.mean() * 100 < ci_small[1]
    assert (ci_big[1] - ci_big[0]) < (ci_small[1] - ci_small[0]) / 4  # narrows like 1/sqrt(n)
    assert bootstrap_ci({"x": small}, resamples=500, seed=3) == bootstrap_ci({"x": small}, resamples=500, seed=3)
    assert bootstrap_ci({"x": small}, resamples=500, seed=4) != bootstrap_ci({"x": small}, resamples=500, seed=3)


def test_group_breakdown_puts_uncategorised_rows_aside():
    rows = [{"iou": 1.0, "category": "a"}, {"iou": 0.0, "category": None}, {"iou": 0.5, "category": "a"}]
    rep = build_report(rows, resamples=0)
    assert set(rep["per_category"]) == {"a", "(none)"}
    assert rep["per_category"]["a"]["n"] == 2 and rep["per_supercategory"] == {}


# --------------------------------------------------------------------------- in-memory use and vlm-r1 + dataset


def test_in_memory_predictions_and_samples(example):
    from medground.data.schema import read_jsonl

    samples = read_jsonl(example / "dataset.jsonl")
    preds = [json.loads(line) for line in (example / "predictions.jsonl").read_text().splitlines()]
    mem = evaluate(preds, data=samples, bootstrap=0)
    disk = evaluate(example / "predictions.jsonl", data=example / "dataset.jsonl", bootstrap=0)
    for key in ("n", "n_missing", "n_unparseable", "miou", "acc@0.5", "pdice", "dice"):
        assert mem[key] == disk[key]
    with pytest.raises(MedgroundError, match=r"<predictions>:2: missing field 'id'"):
        evaluate([preds[0], {"boxes": []}], data=samples, bootstrap=0)


def test_vlm_r1_log_joined_to_dataset_by_position(tmp_path):
    data = _dataset(
        tmp_path,
        [
            {"id": "a", "boxes": [[0, 0, 10, 10]], "category": "x"},
            {"id": "b", "boxes": [[0, 0, 10, 10]], "category": "y"},
        ],
    )
    items = [
        {"question": "q", "ground_truth": [0, 0, 10, 10], "extracted_answer": [0, 0, 10, 10], "correct": 1},
        {"question": "q", "ground_truth": [0, 0, 10, 10], "extracted_answer": [0, 0, 0, 0], "correct": 0},
    ]
    log = tmp_path / "log.json"
    log.write_text(json.dumps({"accuracy": 50.0, "results": items}))
    rep = evaluate(log, data=data, bootstrap=0)
    assert rep["per_category"]["x"]["acc@0.5"] == 100.0 and rep["per_category"]["y"]["acc@0.5"] == 0.0
    log.write_text(json.dumps({"accuracy": 100.0, "results": items[:1]}))
    with pytest.raises(MedgroundError, match="joined to the dataset by position"):
        evaluate(log, data=data, bootstrap=0)
