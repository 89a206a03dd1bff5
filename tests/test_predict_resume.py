"""A prediction file is resumed only by what made it (issue 12, item 2, predict and
segment): another model, template, frame, max_new_tokens, segmenter, prompt or dataset
is refused, naming what differs and how to start over; and empty inputs are said out
loud (item 3)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"

from medground.data.phantom import generate_phantom_dataset  # noqa: E402
from medground.data.schema import read_jsonl, write_jsonl  # noqa: E402
from medground.errors import MedgroundError  # noqa: E402
from medground.models.policy import load_policy  # noqa: E402
from medground.predict import predict  # noqa: E402
from medground.resume import sidecar_path  # noqa: E402
from medground.segment import segment_samples  # noqa: E402


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("data")
    generate_phantom_dataset(out, n=2, seed=4, size=64, progress=False)
    return out / "all.jsonl"


@pytest.fixture
def first_run(policy, data, tmp_path):
    out = tmp_path / "pred.jsonl"
    summary = predict(policy, data, out, max_new_tokens=8, progress=False)
    assert summary.written == len(read_jsonl(data)) and sidecar_path(out).is_file()
    return out


def test_same_settings_resume(policy, data, first_run):
    before = first_run.read_bytes()
    again = predict(policy, data, first_run, max_new_tokens=8, progress=False)
    assert again.written == 0 and again.skipped == len(read_jsonl(data))
    assert first_run.read_bytes() == before


@pytest.mark.parametrize("change, needle", [
    ({"max_new_tokens": 16}, "max_new_tokens: 8 -> 16"),
    ({"template": "medreasoner"}, 'template: "r1" -> "medreasoner"'),
    ({"segmenter": "watershed"}, "segmenter: None -> (unset)"),
])
def test_other_settings_are_refused_naming_the_difference(policy, data, first_run, change, needle):
    before = first_run.read_bytes()
    kwargs = {"max_new_tokens": 8, "progress": False} | change
    with pytest.raises(MedgroundError) as exc:
        predict(policy, data, first_run, **kwargs)
    msg = str(exc.value)
    assert needle in msg and "--overwrite" in msg and str(first_run) in msg
    assert first_run.read_bytes() == before  # nothing appended, nothing "already done"


def test_another_frame_or_model_is_refused(tiny_dir, data, first_run, tmp_path):
    other_frame = load_policy(tiny_dir, device="cpu", frame="norm1000")
    with pytest.raises(MedgroundError, match="frame: \"qwen2.5-vl.*\" -> \"norm1000\""):
        predict(other_frame, data, first_run, max_new_tokens=8, progress=False)
    copy = tmp_path / "tiny_copy"
    shutil.copytree(tiny_dir, copy)
    with pytest.raises(MedgroundError, match="model: .*tiny\" -> .*tiny_copy\""):
        predict(load_policy(copy, device="cpu"), data, first_run, max_new_tokens=8, progress=False)


def test_a_checkpoint_retrained_in_place_is_another_model(tiny_dir, data, tmp_path):
    model = tmp_path / "model"
    shutil.copytree(tiny_dir, model)
    out = tmp_path / "p.jsonl"
    predict(load_policy(model, device="cpu"), data, out, max_new_tokens=8, progress=False)
    weights = next(model.glob("*.safetensors"))
    os.utime(weights, ns=(weights.stat().st_atime_ns, weights.stat().st_mtime_ns + 10**9))  # rewritten
    with pytest.raises(MedgroundError, match="weights"):
        predict(load_policy(model, device="cpu"), data, out, max_new_tokens=8, progress=False)


def test_another_dataset_is_refused(policy, data, first_run, tmp_path):
    other = tmp_path / "other.jsonl"
    write_jsonl(read_jsonl(data)[:1], other)
    with pytest.raises(MedgroundError, match="data: .*all.jsonl\" -> .*other.jsonl\""):
        predict(policy, other, first_run, max_new_tokens=8, progress=False)


def test_a_file_without_its_sidecar_is_refused_and_overwrite_starts_over(policy, data, first_run):
    sidecar_path(first_run).unlink()
    with pytest.raises(MedgroundError, match="no pred.meta.json .* --overwrite"):
        predict(policy, data, first_run, max_new_tokens=16, progress=False)
    summary = predict(policy, data, first_run, max_new_tokens=16, overwrite=True, progress=False)
    assert summary.written == len(read_jsonl(data))
    assert json.loads(sidecar_path(first_run).read_text())["max_new_tokens"] == 16


def test_the_cli_refuses_before_loading_the_model(data, first_run, tiny_dir, capsys, run, monkeypatch):
    import medground.models.policy as policy_mod

    def no_load(*a, **k):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(policy_mod, "load_policy", no_load)
    code, _, err = run(["predict", "--model", str(tiny_dir), "--data", str(data), "--out", str(first_run),
                        "--max-new-tokens", "32"], capsys)
    assert code == 2 and err.count("\n") == 1
    assert "max_new_tokens: 8 -> 32" in err and "--overwrite" in err


def test_predict_on_an_empty_dataset_warns(policy, tmp_path, capsys, run, tiny_dir):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    summary = predict(policy, empty, tmp_path / "p.jsonl", progress=False)
    assert summary.total == 0 and "has no samples" in summary.warning
    code, out, err = run(["predict", "--model", str(tiny_dir), "--data", str(empty), "--out",
                          str(tmp_path / "q.jsonl"), "--quiet"], capsys)
    assert code == 0 and "warning:" in err and "empty.jsonl has no samples" in err


# ------------------------------------------------------------------ segment


@pytest.fixture
def seg_run(data, tmp_path):
    out = tmp_path / "seg.jsonl"
    segment_samples(read_jsonl(data), "watershed", prompt="box", out=out, progress=False, source=data)
    return out


def test_segment_refuses_another_prompt_segmenter_option_or_dataset(data, seg_run, tmp_path):
    samples = read_jsonl(data)
    with pytest.raises(MedgroundError, match="prompt: \"box\" -> \"box\\+points\""):
        segment_samples(samples, "watershed", prompt="box+points", out=seg_run, progress=False, source=data)
    with pytest.raises(MedgroundError, match=r"segmenter.options.sigma: \(unset\) -> \"3.0\""):
        segment_samples(samples, "watershed", prompt="box", out=seg_run, progress=False, source=data, sigma=3.0)
    other = tmp_path / "other.jsonl"
    write_jsonl(samples[:1], other)
    with pytest.raises(MedgroundError, match="data_sha256"):
        segment_samples(samples[:1], "watershed", prompt="box", out=seg_run, progress=False, source=other)
    again = segment_samples(samples, "watershed", prompt="box", out=seg_run, progress=False, source=data)
    assert len(again) == len(samples)  # the same settings resume


def test_segment_never_writes_a_duplicate_id(data, tmp_path, capsys, run):
    samples = read_jsonl(data)
    with pytest.raises(MedgroundError, match=rf"\[id={samples[0].id}\]: duplicate sample id"):
        segment_samples([*samples, samples[0]], "watershed", out=tmp_path / "d.jsonl", progress=False)
    assert not (tmp_path / "d.jsonl").exists()
    dup = tmp_path / "dup.jsonl"
    write_jsonl([*samples, samples[0]], dup)
    code, _, err = run(["segment", "--data", str(dup), "--out", str(tmp_path / "e.jsonl")], capsys)
    assert code == 2 and err.count("\n") == 1
    assert f"dup.jsonl:{len(samples) + 1} [id={samples[0].id}]: duplicate id, also at" in err
    assert not (tmp_path / "e.jsonl").exists()
