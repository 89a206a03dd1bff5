"""``medground evaluate`` on the command line: table, JSON, exit statuses, no tracebacks."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


def test_evaluate_prints_table_and_writes_json(example, tmp_path, capsys, run):
    out = tmp_path / "report.json"
    code, stdout, stderr = run(
        [
            "evaluate",
            str(example / "predictions.jsonl"),
            "--data",
            str(example / "dataset.jsonl"),
            "--json",
            str(out),
            "--bootstrap",
            "100",
        ],
        capsys,
    )
    assert code == 0, stderr
    assert "mIoU" in stdout and "Acc@0.5" in stdout and "95% CI" in stdout and "super-category" in stdout
    report = json.loads(out.read_text())
    assert report["n"] == 5 and report["acc@0.5"] == 40.0 and report["bootstrap"]["resamples"] == 100
    assert report["n_missing"] == 1 and report["n_unparseable"] == 1


def test_evaluate_vlm_r1_log_options(tmp_path, capsys, run):
    log = tmp_path / "log.json"
    items = [
        {
            "question": "q",
            "ground_truth": [0, 0, 10, 10],
            "model_output": "<answer>{[0, 0, 10, 10]}</answer>",
            "extracted_answer": [0, 0, 10, 10],
            "correct": 1,
        },
        {
            "question": "q",
            "ground_truth": [0, 0, 10, 10],
            "model_output": "none",
            "extracted_answer": [0, 0, 0, 0],
            "correct": 0,
        },
    ]
    log.write_text(json.dumps({"accuracy": 50.0, "results": items}, indent=2))
    code, stdout, _ = run(
        [
            "evaluate",
            str(log),
            "--format",
            "vlm-r1",
            "--iou",
            "vlm-r1",
            "--bootstrap",
            "0",
            "--json",
            str(tmp_path / "r.json"),
        ],
        capsys,
    )
    assert code == 0
    assert "accuracy stored in the file: 50.0" in stdout
    rep = json.loads((tmp_path / "r.json").read_text())
    assert rep["acc@0.5"] == 50.0 and rep["iou_variant"] == "vlm-r1" and rep["n_unparseable"] == 1


@pytest.mark.parametrize(
    "content, needle",
    [
        ('{"id": "case-001", "boxes": []}\n{"id": "case-002", "boxes": [}\n', "predictions.jsonl:2: invalid JSON"),
        ('{"boxes": []}\n', "predictions.jsonl:1: missing field 'id'"),
        (
            '{\n  "accuracy": 1.0,\n  "results": [\n    {"question": "q"}\n  ]\n}\n',
            "predictions.jsonl:4 [item 0]: missing field 'ground_truth'",
        ),
    ],
)
def test_malformed_file_exit_2_one_line_no_traceback(example, tmp_path, capsys, run, content, needle):
    pred = tmp_path / "predictions.jsonl"
    pred.write_text(content)
    code, stdout, stderr = run(["evaluate", str(pred), "--data", str(example / "dataset.jsonl")], capsys)
    assert code == 2
    assert needle in stderr
    assert len(stderr.strip().splitlines()) == 1
    assert "Traceback" not in stderr + stdout


def test_bad_option_values_exit_2(example, capsys, run):
    code, _, stderr = run(
        ["evaluate", str(example / "predictions.jsonl"), "--data", str(example / "dataset.jsonl"), "--iou", "giou"],
        capsys,
    )
    assert code == 2 and "IoU variant" in stderr
    code, _, stderr = run(["evaluate", str(example / "nope.jsonl")], capsys)
    assert code == 2 and "nope.jsonl: file not found" in stderr


def test_subprocess_entry_point(example, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "case-001", "boxes": [[0, 0, 1]]}\n')
    proc = subprocess.run(
        [sys.executable, "-m", "medground", "evaluate", str(bad), "--data", str(example / "dataset.jsonl")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "bad.jsonl:1 [id=case-001]" in proc.stderr and "Traceback" not in proc.stderr


def test_image_size_option(tmp_path, capsys, run):
    log = tmp_path / "log.json"
    items = [{"question": "q", "ground_truth": [0, 0, 640, 320], "extracted_answer": [0, 0, 644, 322], "correct": 1}]
    log.write_text(json.dumps({"accuracy": 100.0, "results": items}))
    code, stdout, _ = run(
        ["evaluate", str(log), "--frame", "qwen2.5-vl", "--image-size", "640", "--bootstrap", "0"], capsys
    )
    assert code == 0 and "100.00" in stdout and "frame qwen2.5-vl" in stdout
    code, _, stderr = run(["evaluate", str(log), "--frame", "qwen2.5-vl", "--image-size", "640x"], capsys)
    assert code == 2 and "--image-size must be" in stderr
