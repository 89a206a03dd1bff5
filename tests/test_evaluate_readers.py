"""The prediction-format registry (medground.evaluate.READERS): names, `--format auto` detection
through each reader's sniff, options, typo suggestions, and a format added from outside."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from medground.errors import MedgroundError
from medground.evaluate import READERS, detect_format, evaluate, parse_image_size
from medground.evaluate.readers import PredictionReader, read_predictions


def _vlm_r1_log(path, pretty=False):
    item = {"question": "q", "ground_truth": [10, 10, 50, 50], "model_output": '<answer>{"bbox_2d": [10, 10, 50, 40]}'
            "</answer>", "extracted_answer": [10, 10, 50, 40], "correct": 1}
    path.write_text(json.dumps({"accuracy": 100.0, "results": [item]}, indent=2 if pretty else None))
    return path


def test_the_three_formats_are_registered_readers():
    assert READERS.names() == ["medground", "medreasoner", "vlm-r1"]
    for name in READERS:
        entry = READERS.entry(name)
        assert isinstance(entry.load(), PredictionReader) and entry.description
    assert {name: READERS.get(name).truth for name in READERS} == {
        "medground": "dataset", "medreasoner": "stored", "vlm-r1": "embedded"}
    assert list(READERS.entry("vlm-r1").options) == ["reextract"]
    assert not READERS.entry("medground").options and not READERS.entry("medreasoner").options


@pytest.mark.parametrize("content, expected", [
    ('{"id": "a", "boxes": [[1, 2, 3, 4]]}\n{"id": "b", "boxes": []}\n', "medground"),
    ('{"id": "a", "results": []}\n', "medground"),  # one JSON line with an id: a prediction line
    ('[{"id": "a", "bbox": [1, 2, 3, 4], "iou": 0.5}]', "medreasoner"),
    ('  \n[\n  {"id": "a", "bbox": null, "iou": 0}\n]', "medreasoner"),
    ('{"accuracy": 0, "results": []}', "vlm-r1"),
    ('{\n  "accuracy": 0,\n  "id": 3,\n  "results": []\n}', "vlm-r1"),  # pretty-printed document
    ('{\n  "accuracy": 0\n}', "medground"),
])
def test_auto_detection(tmp_path, content, expected):
    p = tmp_path / "preds.json"
    p.write_text(content)
    assert detect_format(p) == expected


def test_unknown_format_gets_a_close_match(tmp_path):
    log = _vlm_r1_log(tmp_path / "log.json")
    with pytest.raises(MedgroundError, match=r"unknown prediction format 'vlmr1'; did you mean vlm-r1\? \(or auto"):
        evaluate(log, format="vlmr1", bootstrap=0)
    with pytest.raises(MedgroundError, match=r"unknown prediction format 'coco'; choose one of medground, "
                                             r"medreasoner, vlm-r1"):
        read_predictions(log, "coco")
    assert read_predictions(log, "VLM-R1")[0] == "vlm-r1"  # names are matched case-insensitively


def test_reextract_is_an_option_of_vlm_r1_only(tmp_path):
    log = _vlm_r1_log(tmp_path / "log.json", pretty=True)
    fmt, records, info = read_predictions(log, "auto", reextract=True)
    assert fmt == "vlm-r1" and info["answers_from"] == "model_output (re-extracted)" and records[0].box == [10, 10, 50,
                                                                                                          40]
    preds = tmp_path / "p.jsonl"
    preds.write_text('{"id": "a", "boxes": [[1, 2, 3, 4]]}\n')
    with pytest.raises(MedgroundError, match=r"prediction format 'medground' has no option\(s\) reextract"):
        read_predictions(preds, "auto", reextract=True)


def test_image_size_text_is_read_by_the_library(tmp_path):
    assert parse_image_size("640") == (640, 640) and parse_image_size("644x448") == (644, 448)
    assert parse_image_size(None) is None
    for bad in ("0x10", "640x", "a", "1x2x3"):
        with pytest.raises(MedgroundError, match="--image-size must be W or WxH"):
            parse_image_size(bad)
    log = _vlm_r1_log(tmp_path / "log.json")
    as_text = evaluate(log, frame="norm1000", image_size="100", bootstrap=0)
    as_tuple = evaluate(log, frame="norm1000", image_size=(100, 100), bootstrap=0)
    assert as_text["miou"] == as_tuple["miou"]


NEW_FORMAT = '''
"""A user's prediction format: CSV lines ``id,x1,y1,x2,y2`` under a ``#boxes`` header."""
from medground.evaluate.readers import READERS, PredictionReader, PredRecord


def read(path):
    lines = open(path).read().splitlines()[1:]
    for n, line in enumerate(lines, 2):
        sid, *box = line.split(",")
        yield PredRecord(line=n, index=n - 2, id=sid, box=[float(v) for v in box])


READERS.register("boxcsv", PredictionReader(read, sniff=lambda text, path: text.startswith("#boxes")),
                 description="id,x1,y1,x2,y2 lines")
'''


def test_a_format_registered_from_outside_is_detected_and_scored(tmp_path):
    (tmp_path / "boxcsv.py").write_text(NEW_FORMAT)
    (tmp_path / "img.png").write_bytes(b"")  # never opened: width / height come from the dataset
    (tmp_path / "data.jsonl").write_text(json.dumps({"id": "a", "image": "img.png", "query": "q", "width": 100,
                                                     "height": 100, "boxes": [[0, 0, 10, 10]]}) + "\n")
    (tmp_path / "p.csv").write_text("#boxes\na,0,0,10,5\n")
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(tmp_path)!r})
        import boxcsv  # noqa: F401
        from medground.evaluate import evaluate
        rep = evaluate({str(tmp_path / "p.csv")!r}, {str(tmp_path / "data.jsonl")!r}, bootstrap=0)
        print(rep["format"], rep["miou"])
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.stdout.split() == ["boxcsv", "50.0"], proc.stderr
