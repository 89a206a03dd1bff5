"""``medground data merge``: datasets from different folders as one training file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from medground.cli import main
from medground.data.schema import read_jsonl
from medground.data.validate import validate_file


def _dataset(folder: Path, rows: list[dict]) -> Path:
    (folder / "images").mkdir(parents=True)
    Image.new("L", (32, 32)).save(folder / "images" / "x.png")
    path = folder / "train.jsonl"
    path.write_text("".join(json.dumps({"image": "images/x.png", "query": "q", **r}) + "\n" for r in rows))
    return path


def test_merged_file_keeps_every_sample_and_its_image(tmp_path, capsys):
    a = _dataset(tmp_path / "mscxr", [{"id": "m1", "boxes": [[1, 1, 9, 9], [20, 20, 30, 30]]}])
    b = _dataset(tmp_path / "cxr8", [{"id": "c1", "boxes": [[2, 2, 8, 8]]}, {"id": "c2", "boxes": []}])
    out = tmp_path / "open" / "train.jsonl"
    with pytest.raises(SystemExit) as done:
        main(["data", "merge", str(a), str(b), "--out", str(out)])
    assert done.value.code in (0, None)
    printed = capsys.readouterr().out
    assert "wrote 3 samples" in printed and "1 single-target, 1 multi-target, 1 negatives" in printed
    merged = read_jsonl(out)
    assert [s.id for s in merged] == ["m1", "c1", "c2"] and [s.kind for s in merged] == ["multi", "single", "negative"]
    assert merged[0].image == str((tmp_path / "mscxr" / "images" / "x.png").resolve())
    assert validate_file(out).ok


def test_repeated_ids_are_refused_unless_prefixed(tmp_path, capsys):
    a = _dataset(tmp_path / "one", [{"id": "s1", "boxes": [[1, 1, 9, 9]]}])
    b = _dataset(tmp_path / "two", [{"id": "s1", "boxes": []}])
    out = tmp_path / "m.jsonl"
    with pytest.raises(SystemExit) as done:
        main(["data", "merge", str(a), str(b), "--out", str(out)])
    err = capsys.readouterr().err
    assert done.value.code == 2 and f"{b} [id=s1]: id already in {a}" in err and "--prefix" in err and "Traceback" not in err
    with pytest.raises(SystemExit):
        main(["data", "merge", str(a), str(b), "--out", str(out), "--prefix"])
    assert [s.id for s in read_jsonl(out)] == ["one/s1", "two/s1"]
