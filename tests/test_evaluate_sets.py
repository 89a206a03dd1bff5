"""``medground evaluate`` on zero, one or many targets: the open-set metrics on a hand-built
dataset and prediction file whose every value is worked out by hand below."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from medground.cli import main
from medground.errors import MedgroundError
from medground.evaluate import evaluate, format_report

SAMPLES = [  # 100 x 80 image; laterality is radiological (the patient's left is the image's right)
    ("n1", "left pneumothorax", []),
    ("n2", "right pleural effusion", []),
    ("n3", "cardiomegaly", []),
    ("n4", "lung mass", []),
    ("n5", "left apical pneumothorax", []),
    ("s1", "left pleural effusion", [[60, 40, 90, 70]]),
    ("s2", "right pneumothorax", [[10, 10, 40, 40]]),
    ("s3", "enlarged heart", [[30, 30, 70, 70]]),
    ("s4", "nodule", [[10, 10, 20, 20]]),
    ("m1", "bilateral pleural effusions", [[5, 50, 35, 75], [65, 50, 95, 75]]),
    ("m2", "the masses", [[10, 10, 30, 30], [60, 10, 80, 30]]),
]
PREDICTIONS = [
    {"id": "n1", "boxes": []},                                                    # "not in this image": right
    {"id": "n2", "completion": "<think>x</think><answer>[]</answer>", "boxes": [], "frame": "pixels"},  # right
    {"id": "n3", "boxes": [[10, 10, 50, 50]]},                                    # a false positive
    {"id": "n4", "completion": "<answer>none</answer>", "boxes": [], "frame": "pixels"},  # unparseable
    # n5: no prediction at all (missing)
    {"id": "s1", "boxes": [[60, 40, 90, 70]]},                                    # IoU 1
    {"id": "s2", "boxes": [[60, 10, 90, 40]]},                                    # the wrong side: IoU 0
    {"id": "s3", "completion": "<answer>[]</answer>", "boxes": [], "frame": "pixels"},  # "absent" on a positive
    {"id": "s4", "boxes": [[12, 10, 22, 20]]},                                    # IoU 80 / 120, centre inside
    {"id": "m1", "boxes": [[5, 50, 35, 75]]},                                     # one of two
    {"id": "m2", "boxes": [[10, 10, 30, 30], [60, 10, 80, 30], [40, 50, 50, 60]]},  # both and one extra
]


def _write(folder: Path, samples=SAMPLES, predictions=PREDICTIONS) -> tuple[Path, Path]:
    Image.new("L", (100, 80), 40).save(folder / "img.png")
    data = folder / "data.jsonl"
    data.write_text("".join(json.dumps({"id": i, "image": "img.png", "query": q, "boxes": b, "width": 100,
                                        "height": 80, "category": q.split()[-1]}) + "\n" for i, q, b in samples))
    pred = folder / "pred.jsonl"
    pred.write_text("".join(json.dumps(p) + "\n" for p in predictions))
    return data, pred


@pytest.fixture()
def report(tmp_path):
    data, pred = _write(tmp_path)
    return evaluate(pred, data=data, bootstrap=200, per_sample=True)


def test_counts(report):
    assert (report["n"], report["n_negative"], report["n_positive"], report["n_single"], report["n_multi"]) == (
        11, 5, 6, 4, 2)
    assert (report["n_missing"], report["n_unparseable"], report["n_error"]) == (1, 1, 0)


def test_negatives_specificity_and_false_positive_rate(report):
    # n1, n2 answered "not in this image"; n3 drew a box; n4 unparseable and n5 missing are neither
    assert report["specificity"] == pytest.approx(2 / 5 * 100)
    assert report["fpr"] == pytest.approx(1 / 5 * 100)


def test_positives_sensitivity_center_acc_and_todays_metrics(report):
    # hits (IoU >= 0.5 with some true box): s1, s4, m1, m2; s2 on the wrong side, s3 answered "absent"
    assert report["sensitivity"] == pytest.approx(4 / 6 * 100)
    assert report["center_acc"] == pytest.approx(4 / 6 * 100)
    # mIoU / Acc@t: first box against the best-matching true box, over the six positives
    assert report["miou"] == pytest.approx((1 + 0 + 0 + 80 / 120 + 1 + 1) / 6 * 100)
    assert report["acc@0.5"] == pytest.approx(4 / 6 * 100) and report["acc@0.7"] == pytest.approx(3 / 6 * 100)


def test_multi_target_precision_recall_f1_and_matched_iou(report):
    # m1: P 1/1, R 1/2, F1 2/3, matched IoU 1/2;  m2: P 2/3, R 2/2, F1 4/5, matched IoU 2/3
    assert report["precision"] == pytest.approx((1 + 2 / 3) / 2 * 100)
    assert report["recall"] == pytest.approx((1 / 2 + 1) / 2 * 100)
    assert report["f1"] == pytest.approx((2 / 3 + 4 / 5) / 2 * 100)
    assert report["matched_iou"] == pytest.approx((1 / 2 + 2 / 3) / 2 * 100)


def test_one_summary_counts_every_sample(report):
    # per-sample F1: a right negative 1 (n1, n2), other negatives 0; s1 1, s4 1; m1 2/3, m2 4/5
    assert report["sample_f1"] == pytest.approx((1 + 1 + 1 + 1 + 2 / 3 + 4 / 5) / 11 * 100)
    for key in ("sample_f1", "specificity", "fpr", "sensitivity", "f1", "matched_iou", "center_acc"):
        lo, hi = report["ci"][key]
        assert lo <= report[key] <= hi, key


def test_laterality_error_on_phrases_that_name_a_side(report):
    # s1 "left" answered on the image's right: fine; s2 "right" answered on the image's right: wrong.
    # Negatives, "bilateral" and side-less phrases are not counted.
    assert report["n_laterality"] == 2 and report["laterality_error"] == pytest.approx(50.0)
    rows = {r["id"]: r for r in report["per_sample"]}
    assert rows["s2"]["wrong_side"] is True and "wrong_side" not in rows["m1"] and "wrong_side" not in rows["n1"]


def test_per_kind_and_per_category_tables(report):
    kinds = report["per_kind"]
    assert {k: v["n"] for k, v in kinds.items()} == {"multi": 2, "negative": 5, "single": 4}
    assert kinds["negative"]["specificity"] == pytest.approx(40.0) and kinds["negative"]["miou"] is None
    assert kinds["single"]["acc@0.5"] == pytest.approx(50.0) and kinds["single"]["sample_f1"] == pytest.approx(50.0)
    assert kinds["multi"]["f1"] == pytest.approx((2 / 3 + 4 / 5) / 2 * 100)
    assert report["per_category"]["pneumothorax"]["n"] == 3
    text = format_report(report)
    assert "negatives (n=5)" in text and "multi-target samples (n=2)" in text and "Spec.        40.00" in text
    assert "target " in text and "F1 (all)" in text


def test_negatives_leave_the_scores_of_the_positives_as_they_were(tmp_path):
    (tmp_path / "all").mkdir()
    (tmp_path / "pos").mkdir()
    full = evaluate(*reversed(_write(tmp_path / "all")), bootstrap=300)
    positives = [s for s in SAMPLES if s[2]]
    only = evaluate(*reversed(_write(tmp_path / "pos", positives, [p for p in PREDICTIONS if p["id"][0] != "n"])),
                    bootstrap=300)
    for key in ("miou", "acc@0.3", "acc@0.5", "acc@0.7", "sensitivity", "center_acc", "f1"):
        assert full[key] == only[key], key
    for key in ("miou", "acc@0.5"):
        assert full["ci"][key] == only["ci"][key], key


def test_a_sample_without_boxes_is_refused_not_taken_for_a_negative(tmp_path):
    data, pred = _write(tmp_path)
    lines = data.read_text().splitlines()
    row = json.loads(lines[0])
    del row["boxes"]
    data.write_text("\n".join([json.dumps(row), *lines[1:]]) + "\n")
    with pytest.raises(MedgroundError, match=r"\[id=n1\]: sample has no 'boxes' field.*\"boxes\": \[\] for a negative"):
        evaluate(pred, data=data)


def test_cli_prints_the_open_set_blocks(tmp_path, capsys):
    data, pred = _write(tmp_path)
    with pytest.raises(SystemExit) as done:
        main(["evaluate", str(pred), "--data", str(data), "--bootstrap", "50", "--json", str(tmp_path / "r.json")])
    assert done.value.code in (0, None)
    out = capsys.readouterr().out
    assert "negatives (n=5)" in out and "FPR" in out and "Wrong side" in out
    assert json.loads((tmp_path / "r.json").read_text())["specificity"] == pytest.approx(40.0)
