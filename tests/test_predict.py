"""Policy loading (processor + coordinate frame) and batched, resumable prediction."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"

from medground import predict as predict_mod  # noqa: E402
from medground.cli import main  # noqa: E402
from medground.data.phantom import generate_phantom_dataset  # noqa: E402
from medground.data.schema import read_jsonl  # noqa: E402
from medground.errors import MedgroundError  # noqa: E402
from medground.geometry import Frame  # noqa: E402
from medground.models.policy import frame_for, load_policy  # noqa: E402
from medground.predict import PredictSummary, decode_answer, default_overlay_path, finished_ids, predict  # noqa: E402


@pytest.fixture(scope="module")
def data256(tmp_path_factory):
    """Phantoms of 256 px: the tiny processor resizes them to 224 px (a non-trivial frame)."""
    out = tmp_path_factory.mktemp("data")
    generate_phantom_dataset(out, n=4, seed=3, size=256, progress=False)
    return out / "all.jsonl"


def _lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


# ------------------------------------------------------------------ policy


def test_policy_frame_and_processor_come_from_the_checkpoint(policy):
    assert policy.frame == Frame("qwen2.5-vl", factor=28, min_pixels=56 * 56, max_pixels=224 * 224)
    assert policy.frame.size(256, 256) == (224.0, 224.0)
    assert policy.processor.tokenizer.padding_side == "left"
    assert policy.template == "r1" and not policy.model.training


def test_policy_overrides(tiny_dir):
    p = load_policy(tiny_dir, frame="norm1000", template="medreasoner", max_pixels=112 * 112)
    assert p.frame.kind == "norm1000" and p.template == "medreasoner"
    q = load_policy(tiny_dir, max_pixels=112 * 112)
    assert q.frame.max_pixels == 112 * 112 and q.frame.size(256, 256) == (112.0, 112.0)


def test_frame_by_model_family():
    assert frame_for("qwen2_vl").kind == "norm1000"
    assert frame_for("qwen3_vl").kind == "norm1000"
    assert frame_for("qwen2_5_vl").kind == "qwen2.5-vl"
    assert frame_for("llava", override="fixed:640").name == "fixed:640x640"
    with pytest.raises(MedgroundError, match="--frame"):
        frame_for("llava")


def test_policy_errors_are_clear(tmp_path):
    with pytest.raises(MedgroundError, match="not found"):
        load_policy(tmp_path / "missing")
    with pytest.raises(MedgroundError, match="HF_HUB_OFFLINE"):
        load_policy("Qwen/Qwen2.5-VL-3B-Instruct")
    (tmp_path / "empty").mkdir()
    with pytest.raises(MedgroundError, match="not a model checkpoint"):
        load_policy(tmp_path / "empty")


# ------------------------------------------------------------------ answers -> original pixels


def test_decode_answer_maps_model_frame_to_original_pixels():
    frame = Frame("qwen2.5-vl", min_pixels=56 * 56, max_pixels=224 * 224)
    boxes, pts = decode_answer('<think>x</think><answer>{"bbox": [28, 56, 112, 140], '
                               '"points_1": [56, 84], "points_2": [84, 112]}</answer>', (256, 512), frame)
    # 256x512 is resized to 140x308 (smart_resize), so x scales by 256/140 and y by 512/308
    sx, sy = 256 / 140, 512 / 308
    assert boxes == [[round(28 * sx, 2), round(56 * sy, 2), round(112 * sx, 2), round(140 * sy, 2)]]
    assert pts == [[round(56 * sx, 2), round(84 * sy, 2)], [round(84 * sx, 2), round(112 * sy, 2)]]
    assert decode_answer("no box here", (256, 256), frame) == ([], None)
    assert decode_answer('{"bbox_2d": [0, 0, 500, 1000]}', (300, 200), Frame("norm1000"))[0] == \
        [[0.0, 0.0, 150.0, 200.0]]


def test_predict_writes_original_pixel_boxes(policy, data256, tmp_path, monkeypatch):
    """A model that always answers [28, 56, 112, 140] in the 224-px frame: 256-px truth is 8/7 larger."""
    seen_prompts = []

    def fake_generate(pol, images, prompts, max_new_tokens=128):
        assert all(im.size == (256, 256) for im in images)
        seen_prompts.extend(prompts)
        return ['<think>t</think><answer>{"bbox_2d": [28, 56, 112, 140]}</answer>'] * len(prompts)

    monkeypatch.setattr(predict_mod, "generate_batch", fake_generate)
    out = tmp_path / "pred.jsonl"
    summary = predict(policy, data256, out, batch_size=3, progress=False)
    recs = _lines(out)
    samples = read_jsonl(data256)
    assert [r["id"] for r in recs] == [s.id for s in samples] and summary.written == len(samples)
    for r in recs:
        assert r["boxes"] == [[32.0, 64.0, 128.0, 160.0]] and r["frame"] == "qwen2.5-vl" and r["error"] is None
        assert set(r) == {"id", "completion", "boxes", "points", "mask", "frame", "error"}
    # the prompt states the model's frame (224x224), and holds the query
    assert "224x224" in seen_prompts[0] and samples[0].query.rstrip(".") in seen_prompts[0]


def test_resume_skips_finished_ids_and_drops_a_cut_line(policy, data256, tmp_path, monkeypatch):
    calls = []

    def fake_generate(pol, images, prompts, max_new_tokens=128):
        calls.append(len(prompts))
        return ['{"bbox_2d": [1, 2, 3, 4]}'] * len(prompts)

    monkeypatch.setattr(predict_mod, "generate_batch", fake_generate)
    out = tmp_path / "pred.jsonl"
    n = len(read_jsonl(data256))
    predict(policy, data256, out, batch_size=2, limit=3, progress=False)
    assert len(_lines(out)) == 3
    with open(out, "a") as fh:  # an interrupted write
        fh.write('{"id": "phantom-3-000003-0", "compl')
    calls.clear()
    summary = predict(policy, data256, out, batch_size=2, progress=False)
    assert summary.skipped == 3 and summary.written == n - 3 and sum(calls) == n - 3
    ids = [r["id"] for r in _lines(out)]
    assert len(ids) == len(set(ids)) == n
    assert finished_ids(out) == set(ids)


def test_bad_image_gives_an_error_line_and_the_run_continues(policy, data256, tmp_path, monkeypatch):
    monkeypatch.setattr(predict_mod, "generate_batch",
                        lambda pol, images, prompts, max_new_tokens=128: ['{"bbox_2d": [1, 2, 3, 4]}'] * len(prompts))
    rows = [json.loads(x) for x in data256.read_text().splitlines()][:3]
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    rows[0]["image"] = str(data256.parent / rows[0]["image"])
    rows[1]["image"] = str(broken)
    rows[2]["image"] = str(tmp_path / "missing.png")
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "p.jsonl"
    summary = predict(policy, data, out, batch_size=3, progress=False)
    recs = _lines(out)
    assert summary.errors == 2 and recs[0]["error"] is None and recs[0]["boxes"]
    for r, line in ((recs[1], 2), (recs[2], 3)):
        assert r["boxes"] == [] and r["completion"] is None
        assert f"d.jsonl:{line}" in r["error"] and f"[id={r['id']}]" in r["error"]
    # --retry-errors predicts the failed ids again (still failing: lines are replaced, not duplicated)
    predict(policy, data, out, batch_size=3, retry_errors=True, progress=False)
    assert sorted(r["id"] for r in _lines(out)) == sorted(r["id"] for r in rows)


def test_malformed_dataset_line_names_file_and_line(policy, tmp_path):
    data = tmp_path / "bad.jsonl"
    data.write_text('{"id": "a", "image": "x.png", "query": "q"}\n{"id": "b", "image": "y.png"}\n')
    with pytest.raises(MedgroundError, match=r"bad.jsonl:2 \[id=b\].*query"):
        predict(policy, data, tmp_path / "o.jsonl", progress=False)


# ------------------------------------------------------------------ the real tiny model


def test_real_generation_is_batch_size_invariant(policy, data256, tmp_path):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    predict(policy, data256, a, batch_size=1, max_new_tokens=12, limit=5, progress=False)
    predict(policy, data256, b, batch_size=5, max_new_tokens=12, limit=5, progress=False)
    ra, rb = _lines(a), _lines(b)
    assert len(ra) == 5 and all(r["error"] is None and isinstance(r["completion"], str) for r in ra)
    assert [r["completion"] for r in ra] == [r["completion"] for r in rb]


def test_cli_predict_and_argument_errors(tiny_dir, data256, tmp_path, capsys):
    out = tmp_path / "cli.jsonl"
    with pytest.raises(SystemExit) as exc:
        main(["predict", "--model", str(tiny_dir), "--data", str(data256), "--out", str(out),
              "--batch-size", "4", "--max-new-tokens", "4", "--limit", "4"])
    assert exc.value.code in (0, None)
    assert re.search(r"wrote 4 predictions", capsys.readouterr().out)
    assert len(_lines(out)) == 4
    base = ["predict", "--model", str(tiny_dir), "--data", str(data256), "--out", str(out),
            "--batch-size", "4", "--max-new-tokens", "4", "--limit", "4"]
    with pytest.raises(SystemExit):
        main(base)  # resumes: nothing left to do
    assert "wrote 0 predictions" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(base + ["--overwrite"])
    assert "wrote 4 predictions" in capsys.readouterr().out and len(_lines(out)) == 4
    with pytest.raises(SystemExit) as exc:
        main(["predict", "--model", str(tiny_dir), "--out", str(out)])
    assert exc.value.code == 2 and "--data" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["predict", "--model", str(tiny_dir), "--data", str(data256), "--out", str(out), "--batch-size", "0"])
    assert exc.value.code == 2 and "batch-size" in capsys.readouterr().err


def test_cli_single_image_mode(tiny_dir, data256, tmp_path, capsys):
    image = read_jsonl(data256)[0].image
    png = tmp_path / "overlay.png"
    with pytest.raises(SystemExit) as exc:
        main(["predict", "--model", str(tiny_dir), "--image", image, "--query", "left pleural effusion",
              "--out", str(png), "--max-new-tokens", "4"])
    assert exc.value.code in (0, None)
    out = capsys.readouterr().out.splitlines()
    record = json.loads(out[0])
    assert record["frame"] == "qwen2.5-vl" and record["error"] is None
    assert out[1] == f"overlay written to {png}"
    from PIL import Image

    with Image.open(png) as im:
        assert im.size[0] >= 256 and im.format == "PNG"
    # without --out the overlay goes beside the image, as NAME_pred.png
    copy = tmp_path / "scan.png"
    copy.write_bytes(Path(image).read_bytes())
    with pytest.raises(SystemExit) as exc:
        main(["predict", "--model", str(tiny_dir), "--image", str(copy), "--query", "left pleural effusion",
              "--max-new-tokens", "4"])
    assert exc.value.code in (0, None) and default_overlay_path(copy) == tmp_path / "scan_pred.png"
    assert capsys.readouterr().out.splitlines()[1] == f"overlay written to {tmp_path / 'scan_pred.png'}"
    assert (tmp_path / "scan_pred.png").is_file()


def test_segmenter_adds_masks_from_predicted_boxes(policy, data256, tmp_path, monkeypatch):
    """Predicted box = the true box: the watershed mask lies inside it and covers much of the target."""
    from medground.data.masks import decode_rle, load_mask
    from medground.metrics import mask_dice

    samples = read_jsonl(data256)[:3]
    scale = 224 / 256

    def fake_generate(pol, images, prompts, max_new_tokens=128):
        out = []
        for p in prompts:
            s = next(s for s in samples if s.query.rstrip(".") in p)
            out.append(json.dumps({"bbox_2d": [round(v * scale, 2) for v in s.boxes[0]]}))
        return out

    monkeypatch.setattr(predict_mod, "generate_batch", fake_generate)
    out = tmp_path / "seg.jsonl"
    predict(policy, data256, out, batch_size=3, limit=3, segmenter="watershed", progress=False)
    recs = _lines(out)
    dices = []
    for r, s in zip(recs, samples):
        assert r["error"] is None and r["boxes"] == [pytest.approx(s.boxes[0], abs=0.02)]
        m = decode_rle(r["mask"])
        assert m.shape == (256, 256) and m.any()
        ys, xs = m.nonzero()
        x0, y0, x1, y1 = s.boxes[0]
        assert xs.min() >= x0 - 1 and xs.max() <= x1 and ys.min() >= y0 - 1 and ys.max() <= y1
        dices.append(float(mask_dice(m[None], load_mask(s.mask)[None])[0]))
    assert max(dices) > 0.5


def test_a_failing_batch_is_retried_one_by_one(policy, data256, tmp_path, monkeypatch):
    samples = read_jsonl(data256)[:4]
    poison = samples[2].query.rstrip(".")

    def flaky_generate(pol, images, prompts, max_new_tokens=128):
        if len(prompts) > 1:
            raise RuntimeError("CUDA out of memory (simulated)")
        if poison in prompts[0]:
            raise ValueError("bad input (simulated)")
        return ['{"bbox_2d": [7, 7, 14, 14]}']

    monkeypatch.setattr(predict_mod, "generate_batch", flaky_generate)
    out = tmp_path / "flaky.jsonl"
    summary = predict(policy, data256, out, batch_size=4, limit=4, progress=False)
    recs = _lines(out)
    assert [r["id"] for r in recs] == [s.id for s in samples]
    assert summary.errors == 1 and "simulated" in recs[2]["error"] and f"[id={samples[2].id}]" in recs[2]["error"]
    assert all(r["boxes"] == [[8.0, 8.0, 16.0, 16.0]] for i, r in enumerate(recs) if i != 2)


def test_summary_counts_errors_from_their_ids():
    ok = PredictSummary(written=3, out="p.jsonl", seconds=1.5)
    assert ok.errors == 0 and ok.failures() is None
    bad = PredictSummary(written=3, out="p.jsonl", seconds=1.5, error_ids=["b", "c"])
    assert bad.errors == 2 and "(0 already done, 2 errors)" in str(bad)
    assert bad.failures() == '2 samples failed (first: b); see their "error" field'
