"""`segment_samples`, `segment_predictions` and `medground segment`: prediction files with
RLE masks, one embedding per image, resume after interruption, bad samples reported."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from medground.data.masks import decode_rle, save_mask_png
from medground.data.schema import Sample, read_jsonl, write_jsonl
from medground.errors import MedgroundError
from medground.metrics import mask_dice
from medground.models.segmenters.watershed import WatershedSegmenter
from medground.segment import read_done, segment_predictions, segment_samples, summarize


class CountingWatershed(WatershedSegmenter):
    def __init__(self, **kw):
        super().__init__(**kw)
        self.embeds = 0
        self.prompts_seen = 0

    def _embed(self, rgb):
        self.embeds += 1
        return super()._embed(rgb)

    def _segment(self, state, prompts):
        self.prompts_seen += len(prompts)
        return super()._segment(state, prompts)


class BoxOnly(WatershedSegmenter):
    name = "boxonly"
    prompts = ("box",)


def _ellipse(h, w, cy, cx, ry, rx):
    yy, xx = np.mgrid[:h, :w]
    return ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1


@pytest.fixture()
def dataset(tmp_path):
    """Two images, two targets each (one sample per target), reference masks as PNG."""
    rng = np.random.default_rng(0)
    samples = []
    for k in range(2):
        h, w = 96, 128
        a = _ellipse(h, w, 30, 35, 15, 20)
        b = _ellipse(h, w, 65, 90, 18, 25)
        img = np.clip(40 + 150 * a + 110 * b + rng.normal(0, 8, (h, w)), 0, 255).astype(np.uint8)
        Image.fromarray(img).save(tmp_path / f"img{k}.png")
        for name, m in (("a", a), ("b", b)):
            save_mask_png(m, tmp_path / f"m{k}{name}.png")
            ys, xs = np.nonzero(m)
            cy = int(ys.mean())
            samples.append(Sample(
                id=f"s{k}{name}", image=str(tmp_path / f"img{k}.png"), query=f"target {name}",
                boxes=[[float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)]],
                mask=str(tmp_path / f"m{k}{name}.png"), points=[[float(xs.min()), cy], [float(xs.max()), cy]],
                width=w, height=h, category=name))
    path = write_jsonl(samples, tmp_path / "data.jsonl")
    return read_jsonl(path), tmp_path


def test_segment_samples_writes_rle_prediction_file(dataset):
    samples, root = dataset
    seg = CountingWatershed()
    out = root / "pred.jsonl"
    records = segment_samples(samples, seg, prompt="box+points", out=out, progress=False)
    assert [r["id"] for r in records] == [s.id for s in samples]
    assert seg.embeds == 2  # one per image, not one per sample
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert [r["id"] for r in lines] == [s.id for s in samples]
    for rec, s in zip(lines, samples):
        assert set(rec) >= {"id", "completion", "boxes", "points", "mask", "frame", "error"}
        assert rec["error"] is None and rec["frame"] == "pixels"
        pred = decode_rle(rec["mask"])
        assert pred.shape == (96, 128)
        gt = np.asarray(Image.open(s.mask)) > 0
        assert mask_dice(pred, gt)[0] > 0.85
    stats = summarize(records, samples)
    assert stats["n"] == 4 and stats["dice"] > 0.85 and stats["no_mask"] == 0


def test_segment_samples_resumes_and_repairs_a_cut_line(dataset):
    samples, root = dataset
    out = root / "pred.jsonl"
    segment_samples(samples[:3], WatershedSegmenter(), out=out, progress=False)
    text = out.read_text()
    out.write_text(text + text.splitlines()[0][:25])  # a crash in the middle of a line
    seg = CountingWatershed()
    records = segment_samples(samples, seg, out=out, progress=False)
    assert seg.prompts_seen == 1  # only the missing sample was segmented
    assert len(records) == 4
    ids = [json.loads(x)["id"] for x in out.read_text().splitlines()]
    assert ids == [s.id for s in samples]
    assert len(read_done(out)) == 4


def test_bad_samples_are_reported_by_id_and_the_run_goes_on(dataset):
    samples, root = dataset
    samples[0].image = str(root / "missing.png")
    samples[1].boxes = [[500, 500, 600, 600]]  # outside the image
    samples[2].boxes = [[-20, -20, 60, 50]]  # partly outside: clipped
    samples[3].boxes = [[10, 10, 10, 60]]  # zero width
    records = segment_samples(samples, WatershedSegmenter(), prompt="box", progress=False)
    assert records[0]["mask"] is None and "s0a" in records[0]["error"] and "missing.png" in records[0]["error"]
    assert records[1]["mask"] is None and "s0b" in records[1]["error"] and "no area" in records[1]["error"]
    assert records[2]["mask"] is not None and "clipped" in records[2]["error"]
    assert records[3]["mask"] is None and "no area" in records[3]["error"]
    assert summarize(records, samples)["no_mask"] == 3  # each scored 0, not skipped


def test_prompt_kind_is_checked_up_front(dataset):
    samples, _ = dataset
    with pytest.raises(MedgroundError, match="does not take 'points'"):
        segment_samples(samples, BoxOnly(), prompt="points", progress=False)
    with pytest.raises(MedgroundError, match="--prompt must be one of"):
        segment_samples(samples, WatershedSegmenter(), prompt="mask", progress=False)


def test_points_prompt_without_points_is_reported(dataset):
    samples, _ = dataset
    samples[0].points = None
    records = segment_samples(samples, WatershedSegmenter(), prompt="points", progress=False)
    assert records[0]["mask"] is None and "no key points" in records[0]["error"]
    assert all(r["mask"] is not None for r in records[1:])


def test_segment_predictions_adds_masks_from_predicted_prompts(dataset):
    samples, _ = dataset
    seg = CountingWatershed()
    preds = [
        {"id": "s0a", "completion": "...", "boxes": samples[0].boxes, "points": samples[0].points, "error": None},
        {"id": "s0b", "completion": "...", "boxes": [], "points": None, "error": "no answer"},
        {"id": "s1a", "completion": "...", "boxes": [[np.nan, 0, 5, 5]], "points": samples[2].points, "error": None},
        {"id": "zzz", "completion": "...", "boxes": [[0, 0, 5, 5]], "points": None, "error": None},
    ]
    before = json.dumps(preds[0])
    out = segment_predictions(preds, samples, seg)
    assert json.dumps(preds[0]) == before  # inputs untouched
    gt = np.asarray(Image.open(samples[0].mask)) > 0
    assert mask_dice(decode_rle(out[0]["mask"]), gt)[0] > 0.85 and out[0]["mask_error"] is None
    assert out[1]["mask"] is None and "s0b" in out[1]["mask_error"]
    assert out[2]["mask"] is not None and "NaN" in out[2]["mask_error"]  # falls back to the points
    assert out[3]["mask"] is None and "not in the dataset" in out[3]["mask_error"]
    assert seg.embeds == 2


def test_cli_segment(dataset, capsys):
    from medground.cli import main

    samples, root = dataset
    out = root / "cli_pred.jsonl"
    with pytest.raises(SystemExit) as ok:
        main(["segment", "--data", str(root / "data.jsonl"), "--out", str(out), "--prompt", "box", "--no-progress",
              "--device", "cuda"])  # watershed takes no device: the option is ignored
    assert ok.value.code in (0, None)
    text = capsys.readouterr().out
    assert "4 samples" in text and "mask Dice" in text
    dice = float(text.split("mask Dice")[1].split()[0])
    assert dice > 0.85
    assert len(out.read_text().splitlines()) == 4
    with pytest.raises(SystemExit) as exc:
        main(["segment", "--data", str(root / "data.jsonl"), "--out", str(out), "--segmenter", "nope"])
    assert exc.value.code == 2
    assert "unknown segmenter 'nope'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["segment", "--data", str(root / "data.jsonl"), "--out", str(out), "--checkpoint", str(root)])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "segmenter 'watershed' has no option(s) checkpoint" in err and "Traceback" not in err


def test_reference_mask_of_the_wrong_size_is_reported_not_scored(dataset):
    samples, root = dataset
    save_mask_png(np.ones((10, 10), bool), root / "small.png")
    samples[1].mask = str(root / "small.png")
    records = segment_samples(samples, WatershedSegmenter(), progress=False)
    stats = summarize(records, samples)
    assert stats["wrong_size"] == ["s0b"] and stats["n"] == 3 and stats["dice"] > 0.85
