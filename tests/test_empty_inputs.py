"""Empty inputs are said out loud, never reported as a clean success (issue 12, item 3;
``predict`` on an empty dataset is in test_predict_resume.py): ``evaluate`` of an empty
prediction file or of an empty dataset warns; a file none of whose ids is in the
dataset is an error unless ``--allow-missing``; ``data validate`` of an empty file
says so (item 13)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medground.data.schema import read_jsonl
from medground.data.validate import validate_file
from medground.errors import MedgroundError
from medground.evaluate import evaluate


def _renamed(example: Path, tmp_path: Path) -> Path:
    """The example's predictions with every id changed: none is in the dataset."""
    lines = [json.loads(x) for x in (example / "predictions.jsonl").read_text().splitlines() if x.strip()]
    out = tmp_path / "other_ids.jsonl"
    out.write_text("".join(json.dumps(d | {"id": f"other-{d['id']}"}) + "\n" for d in lines))
    return out


def test_an_empty_prediction_file_warns(example, tmp_path, capsys, run):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    n = len(read_jsonl(example / "dataset.jsonl"))
    report = evaluate(empty, data=example / "dataset.jsonl", bootstrap=0)
    assert report["n_missing"] == n
    assert report["warnings"] == [f"{empty} holds no predictions: all {n} samples count as missing (IoU 0)"]
    code, out, err = run(["evaluate", str(empty), "--data", str(example / "dataset.jsonl"), "--bootstrap", "0"],
                         capsys)
    assert code == 0 and "warning: " in err and "holds no predictions" in err and "mIoU" in out


def test_predictions_that_all_miss_the_dataset_are_an_error(example, tmp_path, capsys, run):
    other = _renamed(example, tmp_path)
    with pytest.raises(MedgroundError, match="none of the 5 prediction ids .* is in .*dataset.jsonl"):
        evaluate(other, data=example / "dataset.jsonl", bootstrap=0)
    code, _, err = run(["evaluate", str(other), "--data", str(example / "dataset.jsonl")], capsys)
    assert code == 2 and err.count("\n") == 1 and "--allow-missing" in err and "wrong --data" in err


def test_allow_missing_scores_them_with_a_warning(example, tmp_path, capsys, run):
    other = _renamed(example, tmp_path)
    report = evaluate(other, data=example / "dataset.jsonl", bootstrap=0, allow_missing=True)
    assert report["n_missing"] == report["n"] == 5 and report["n_extra"] == 5 and report["miou"] == 0
    assert len(report["warnings"]) == 1 and "every sample counts as missing" in report["warnings"][0]
    code, out, err = run(["evaluate", str(other), "--data", str(example / "dataset.jsonl"), "--allow-missing",
                          "--bootstrap", "0"], capsys)
    assert code == 0 and "warning: none of the 5 prediction ids" in err


def test_some_missing_ids_are_not_an_error(example):
    report = evaluate(example / "predictions.jsonl", data=example / "dataset.jsonl", bootstrap=0)
    assert report["n_missing"] == 1 and report["warnings"] == []


def test_an_empty_dataset_warns(example, tmp_path):
    empty = tmp_path / "empty_data.jsonl"
    empty.write_text("")
    report = evaluate(example / "predictions.jsonl", data=empty, bootstrap=0)
    assert report["n"] == 0 and any("has no samples" in w for w in report["warnings"])


def test_validate_says_an_empty_file_has_no_samples(tmp_path, capsys, run):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n")
    result = validate_file(empty)
    assert not result.ok and result.summary() == f"{empty}: no samples (the file has no non-blank line)"
    code, out, _ = run(["data", "validate", str(empty)], capsys)
    assert code == 1 and "of 0 sample" not in out and "no samples" in out
