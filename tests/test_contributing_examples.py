"""The one-file examples of docs/CONTRIBUTING.md work as written: each block, loaded as the
module it names, registers its reward / converter / segmenter / model family, which then works by name."""

from __future__ import annotations

import importlib.util
import json
import pickle
import re
import sys
from pathlib import Path

import numpy as np
from PIL import Image

DOC = Path(__file__).resolve().parents[1] / "docs" / "CONTRIBUTING.md"
BLOCKS = dict(re.findall(r"### A .*? — `src/medground/(.*?)`\n\n```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S))


def _load(rel: str, tmp_path: Path, monkeypatch, registry):
    name = "medground." + rel[:-3].replace("/", ".")
    path = tmp_path / Path(rel).name
    path.write_text(BLOCKS[rel])
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.setattr(registry, "_entries", dict(registry._entries))  # the example's entry goes away after the test
    spec.loader.exec_module(module)
    return module


def test_the_reward_example(tmp_path, monkeypatch):
    from medground.rewards import REWARDS, get

    _load("rewards/center.py", tmp_path, monkeypatch, REWARDS)
    reward = get("center")
    cols = {"boxes": [[[1, 1, 9, 9]], [[1, 1, 9, 9]], []]}
    values = reward(completions=["<answer>[0, 0, 4, 4]</answer>", "no box", "<answer>[0, 0, 4, 4]</answer>"], **cols)
    assert values == [1.0, 0.0, None]
    assert pickle.loads(pickle.dumps(reward))(completions=["<answer>[0, 0, 4, 4]</answer>"], boxes=[[[1, 1, 9, 9]]]) == [1.0]


def test_the_converter_example(tmp_path, monkeypatch):
    from medground.data.converters import base, run

    _load("data/converters/mydata.py", tmp_path, monkeypatch, base.REGISTRY)
    Image.fromarray(np.zeros((40, 60), np.uint8)).save(tmp_path / "a.png")
    (tmp_path / "rows.json").write_text(json.dumps([{"image": "a.png", "text": "left lung", "box": [1, 2, 10, 12]},
                                                    {"image": "a.png", "text": "no box here"}]))
    report = run("mydata", tmp_path / "rows.json", tmp_path / "out", options={"scale": "2"}, progress=False)
    assert report.skipped_total == 1
    (line,) = (tmp_path / "out" / "all.jsonl").read_text().splitlines()
    assert json.loads(line)["boxes"] == [[2.0, 4.0, 22.0, 28.0]]


def test_the_segmenter_example(tmp_path, monkeypatch):
    from medground.models.segmenters import SEGMENTERS, get_segmenter

    _load("models/segmenters/threshold.py", tmp_path, monkeypatch, SEGMENTERS)
    img = np.zeros((50, 50), np.uint8)
    img[10:30, 10:30] = 200
    seg = get_segmenter("threshold", offset=0.05)
    mask = seg.segment_image(Image.fromarray(img), [5, 5, 40, 40])
    assert mask.sum() == 400 and mask[10:30, 10:30].all()
    assert pickle.loads(pickle.dumps(seg)).offset == 0.05


def test_the_family_example(tmp_path, monkeypatch):
    from medground.models.families import REGISTRY, family_of, resolve_frame
    from medground.predict import decode_answer

    _load("models/families/mllama.py", tmp_path, monkeypatch, REGISTRY)
    assert family_of("mllama").name == "mllama" and resolve_frame("mllama").name == "norm1000"
    boxes, _ = decode_answer("<answer>[100, 200, 500, 600]</answer>", (640, 480), "mllama")
    assert np.allclose(boxes, [[64, 96, 320, 288]])
