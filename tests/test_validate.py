"""``medground data validate``: every problem, with its line and id; exit 0 / 1 / 2."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medground.data.masks import save_mask_png
from medground.data.validate import validate_file


@pytest.fixture()
def folder(tmp_path: Path) -> Path:
    Image.new("L", (64, 48), 30).save(tmp_path / "img.png")
    mask = np.zeros((48, 64), bool)
    mask[10:20, 10:20] = True
    save_mask_png(mask, tmp_path / "mask.png")
    save_mask_png(np.zeros((48, 64), bool), tmp_path / "empty.png")
    save_mask_png(mask[:20], tmp_path / "small.png")
    (tmp_path / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    (tmp_path / "notes.txt").write_text("not an image\n")
    return tmp_path


def sample(**kw) -> dict:
    return {"id": "s", "image": "img.png", "query": "lesion", "boxes": [[10, 10, 20, 20]], **kw}


def write(folder: Path, rows) -> Path:
    path = folder / "data.jsonl"
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def test_clean_file_exit_0(folder, capsys, run):
    path = write(
        folder,
        [
            sample(id="a", mask="mask.png", points=[[12, 12], [18, 18]], width=64, height=48),
            sample(id="b", boxes=[[0, 0, 64, 48], [1, 1, 2, 2]]),
        ],
    )
    assert validate_file(path).ok
    code, out, _ = run(["data", "validate", str(path)], capsys)
    assert code == 0 and "OK, 2 samples" in out


@pytest.mark.parametrize(
    "row, message",
    [
        (sample(boxes=[[60, 10, 70, 20]]), "box 1 [60, 10, 70, 20] lies outside the 64x48 image"),
        (sample(boxes=[[10, 10, 20, 20], [10, 30, 20, 30]]), "box 2 [10, 30, 20, 30] has no positive area"),
        (sample(boxes=[[20, 10, 10, 20]]), "box 1 [20, 10, 10, 20] has no positive area"),
        ({k: v for k, v in sample().items() if k != "boxes"}, "no 'boxes' field: the targets must be explicit"),
        (sample(boxes=[], mask="mask.png"), "boxes is [] (a negative: nothing to find) but the sample has a mask"),
        (sample(boxes=[], points=[[12, 12], [18, 18]]), "but the sample has key points"),
        (sample(image="nope.png"), "image not found: nope.png"),
        (sample(image="corrupt.png"), "image does not decode: corrupt.png"),
        (sample(width=100, height=48), "width/height say 100x48 but the image is 64x48"),
        (sample(mask="small.png"), "mask is 64x20 but the image is 64x48"),
        (sample(mask="empty.png"), "mask is empty"),
        (sample(mask="gone.png"), "mask not found: gone.png"),
        (sample(points=[[12, 12], [80, 12]]), "key point(s) outside the 64x48 image"),
        (sample(points=[[12, 12], [12, 12]]), "the two key points coincide"),
        (sample(points=[[12, 12]]), "points must be two [x, y] pairs"),
        (sample(query="   "), "query is blank"),
        ({"id": "s", "image": "img.png", "boxes": [[1, 1, 2, 2]]}, "missing field(s) query"),
        (sample(boxes=[[1, 2, 3]]), "a box needs 4 numbers"),
    ],
)
def test_each_problem_is_reported_with_line_and_id(folder, capsys, run, row, message):
    path = write(folder, [sample(id="first"), row])
    result = validate_file(path)
    lines = [p.format(path) for p in result.problems]
    assert any(line.startswith(f"{path}:2 [id=s]: ") and message in line for line in lines), lines
    code, out, _ = run(["data", "validate", str(path)], capsys)
    assert code == 1
    assert f"{path}:2 [id=s]: " in out and message in out
    assert out.strip().splitlines()[-1].endswith("problem(s) in 1 of 2 sample line(s)")


def test_an_image_of_unknown_format_is_a_problem_not_a_crash(folder, capsys, run):
    path = write(folder, [sample(id="a"), sample(id="t", image="notes.txt")])
    (problem,) = validate_file(path).problems
    assert (problem.line, problem.sample_id) == (2, "t")
    assert "image does not decode: notes.txt (unknown image format" in problem.message  # the file named once
    assert problem.message.count("notes.txt") == 1
    code, out, err = run(["data", "validate", str(path)], capsys)
    assert code == 1 and "unknown image format" in out and "Traceback" not in out + err


def test_every_problem_of_every_line_is_reported(folder):
    rows = [
        sample(id="a", boxes=[[60, 10, 70, 20]], mask="small.png"),
        "{broken",
        sample(id="a"),
        sample(id="c", image="nope.png"),
    ]
    result = validate_file(write(folder, rows))
    found = [(p.line, p.sample_id) for p in result.problems]
    assert found == [(1, "a"), (1, "a"), (2, None), (3, "a"), (4, "c")]
    assert "duplicate id (first at line 1)" in result.problems[3].message
    assert "invalid JSON" in result.problems[2].message
    assert result.n_samples == 4 and result.n_bad_samples == 4


def test_box_bounds_use_declared_size_when_image_is_missing(folder):
    result = validate_file(write(folder, [sample(image="nope.png", width=10, height=10)]))
    messages = [p.message for p in result.problems]
    assert any("outside the 10x10 image" in m for m in messages)


def test_empty_file_is_a_problem(folder, capsys, run):
    path = write(folder, [])
    code, out, _ = run(["data", "validate", str(path)], capsys)
    assert code == 1 and "no samples" in out


def test_missing_file_exit_2_without_traceback(tmp_path, capsys, run):
    code, out, err = run(["data", "validate", str(tmp_path / "absent.jsonl")], capsys)
    assert code == 2 and "absent.jsonl: file not found" in err and "Traceback" not in out + err


def test_quiet_prints_only_summary(folder, capsys, run):
    path = write(folder, [sample(boxes=[[60, 10, 70, 20]])])
    code, out, _ = run(["data", "validate", str(path), "--quiet"], capsys)
    assert code == 1 and len(out.strip().splitlines()) == 1


def test_negatives_and_multi_target_samples_are_valid(folder, capsys, run):
    path = write(folder, [
        sample(id="neg", query="left pneumothorax", boxes=[]),  # explicitly nothing to find
        sample(id="multi", query="bilateral effusions", boxes=[[1, 30, 20, 47], [40, 30, 63, 47]]),
        sample(id="one", box=[10, 10, 20, 20]),  # a single "box" is still read as one target
    ])
    assert validate_file(path).ok
    code, out, _ = run(["data", "validate", str(path)], capsys)
    assert code == 0 and "OK, 3 samples" in out


def test_missing_boxes_is_not_a_negative(folder, capsys):
    rows = [sample(id="neg", boxes=[]), {"id": "nobox", "image": "img.png", "query": "lesion"},
            {"id": "nullbox", "image": "img.png", "query": "lesion", "boxes": None}]
    result = validate_file(write(folder, rows))
    assert [(p.line, p.sample_id) for p in result.problems] == [(2, "nobox"), (3, "nullbox")]
    assert all("must be explicit" in p.message and '"boxes": [] for a negative' in p.message for p in result.problems)
