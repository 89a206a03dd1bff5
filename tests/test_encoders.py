"""Semantic encoders: the interface, the transformers / open_clip loaders, and
`medground semantic fit | eval` on a small synthetic dataset of coloured shapes."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from medground.errors import MedgroundError  # noqa: E402
from medground.models.encoders import Encoder, HFEncoder, OpenClipEncoder, load_encoder  # noqa: E402
from medground.models.semantic_fit import build_dual_encoder, build_image_processor, build_tokenizer  # noqa: E402

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 30), "blue": (40, 60, 230)}
SHAPES = ("square", "disc")


def images(n=5, size=40, seed=0):
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 255, (size, size + 7, 3), dtype=np.uint8)) for _ in range(n)]


def save_tiny_clip(path, texts=("red square", "blue disc")):
    torch.manual_seed(0)
    tok = build_tokenizer(list(texts), max_length=8)
    model = build_dual_encoder(len(tok), image_size=16, patch_size=8, hidden_size=16, layers=1, heads=2,
                               projection_dim=8, max_length=8, pad_id=tok.pad_token_id, bos_id=tok.bos_token_id,
                               eos_id=tok.eos_token_id)
    model.save_pretrained(path)
    tok.save_pretrained(path)
    build_image_processor(16).save_pretrained(path)
    return path


def check_encoder(enc, texts):
    imgs = images()
    a = enc.encode_images(imgs)
    t = enc.encode_texts(texts)
    assert a.dtype == torch.float32 and t.dtype == torch.float32
    assert a.shape[0] == len(imgs) and t.shape[0] == len(texts) and a.shape[1] == t.shape[1]
    assert torch.allclose(a.norm(dim=1), torch.ones(len(imgs)), atol=1e-5)
    assert torch.allclose(t.norm(dim=1), torch.ones(len(texts)), atol=1e-5)
    # batching does not change embeddings; the same input gives the same output
    enc.batch_size = 2
    assert torch.allclose(enc.encode_images(imgs), a, atol=1e-5)
    assert torch.allclose(enc.encode_texts(texts), t, atol=1e-5)
    assert not torch.allclose(a[0], a[1])
    assert isinstance(enc, Encoder)


def test_transformers_clip_from_directory(tmp_path):
    save_tiny_clip(tmp_path)
    enc = load_encoder(str(tmp_path))
    assert isinstance(enc, HFEncoder)
    check_encoder(enc, ["red square", "blue disc", "an unseen phrase"])
    assert isinstance(load_encoder(f"hf:{tmp_path}"), HFEncoder)


def test_transformers_siglip_from_directory(tmp_path):
    from transformers import SiglipConfig, SiglipImageProcessor, SiglipModel

    tok = build_tokenizer(["left lung", "right lung"], max_length=8)
    cfg = SiglipConfig(
        text_config=dict(vocab_size=len(tok), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, max_position_embeddings=8, pad_token_id=tok.pad_token_id),
        vision_config=dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                           image_size=16, patch_size=8),
    )
    torch.manual_seed(0)
    SiglipModel(cfg).save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    SiglipImageProcessor(size={"height": 16, "width": 16}).save_pretrained(tmp_path)
    enc = load_encoder(tmp_path)
    assert enc.padding == "max_length"
    check_encoder(enc, ["left lung", "right lung"])


def test_open_clip_from_local_directory(tmp_path):
    import open_clip

    model_cfg = {
        "embed_dim": 16,
        "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 16, "head_width": 16},
        "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
    }
    preprocess_cfg = {"mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]}
    (tmp_path / "open_clip_config.json").write_text(json.dumps({"model_cfg": model_cfg, "preprocess_cfg": preprocess_cfg}))
    torch.manual_seed(0)
    model = open_clip.CLIP(**model_cfg)
    torch.save(model.state_dict(), tmp_path / "open_clip_pytorch_model.bin")
    enc = load_encoder(tmp_path)
    assert isinstance(enc, OpenClipEncoder)
    check_encoder(enc, ["pleural effusion", "nodule"])
    assert isinstance(load_encoder(f"open_clip:{tmp_path}"), OpenClipEncoder)
    assert isinstance(load_encoder(f"open_clip:local-dir:{tmp_path}"), OpenClipEncoder)


def test_bad_specs_are_clear_errors(tmp_path):
    with pytest.raises(MedgroundError, match="not found"):
        load_encoder(str(tmp_path / "missing"))
    with pytest.raises(MedgroundError, match="no config.json"):
        load_encoder(str(tmp_path))
    with pytest.raises(MedgroundError, match="lacks encode_images"):
        load_encoder(object())
    with pytest.raises(MedgroundError, match="no semantic encoder"):
        load_encoder(None)
    enc = object.__new__(HFEncoder)
    assert load_encoder(enc) is enc  # an encoder object is used as is


# --------------------------------------------------------------------------- semantic fit


def shapes_dataset(root, n, seed):
    """Images with a target shape and a distractor of another colour; query = "<colour> <shape>"."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    names = list(COLOURS)
    for i in range(n):
        im = Image.new("RGB", (96, 96), (90, 90, 90))
        d = ImageDraw.Draw(im)
        c1, c2 = rng.choice(len(names), 2, replace=False)
        boxes = []
        for k, c in enumerate((c1, c2)):
            s = int(rng.integers(18, 30))
            x = int(rng.integers(2, 44 - s)) + 48 * k
            y = int(rng.integers(2, 94 - s))
            shape = SHAPES[int(rng.integers(0, 2))]
            box = [x, y, x + s, y + s]
            (d.rectangle if shape == "square" else d.ellipse)(box, fill=COLOURS[names[c]])
            boxes.append((box, f"{names[c]} {shape}"))
        path = root / "images" / f"{i}.png"
        im.save(path)
        (box, query), (other, _) = boxes if rng.random() < 0.5 else boxes[::-1]
        rows.append({"id": f"s{i}", "image": f"images/{i}.png", "query": query, "boxes": [box],
                     "width": 96, "height": 96, "meta": {"distractor": other}})
    path = root / f"data{seed}.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    from typer.testing import CliRunner

    from medground.cli import app

    root = tmp_path_factory.mktemp("shapes")
    train, val = shapes_dataset(root, 160, 1), shapes_dataset(root, 48, 2)
    out = root / "encoder"
    args = ["semantic", "fit", "--data", str(train), "--val", str(val), "--out", str(out), "--epochs", "12",
            "--batch-size", "32", "--image-size", "32", "--patch-size", "8", "--hidden-size", "32", "--layers", "1",
            "--lr", "2e-3", "--margin", "0.2"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return root, train, val, out, result.output


def test_fit_learns_crop_to_text_retrieval_far_above_chance(fitted):
    root, train, val, out, output = fitted
    report = json.loads((out / "fit_report.json").read_text())
    assert report["heldout_texts"] == 6 and report["heldout_chance"] == pytest.approx(1 / 6)
    assert report["heldout_top1"] >= 0.6, report  # chance is 0.17
    assert report["loss_per_epoch"][-1] < report["loss_per_epoch"][0]
    assert "held-out crop->text top-1" in output
    assert not (out / "fit_state.pt").exists()


def test_fitted_checkpoint_is_an_ordinary_encoder_the_semantic_reward_loads(fitted):
    from medground import rewards
    from medground.data.io import load_image
    from medground.data.schema import read_jsonl

    root, train, val, out, _ = fitted
    enc = load_encoder(out)
    assert isinstance(enc, HFEncoder) and enc.crop_margin == 0.2  # recorded by fit
    f = rewards.get("semantic", encoder=str(out))
    assert f.margin == 0.2  # the reward crops the way the encoder was trained
    assert rewards.get("semantic", encoder=enc, margin=0.0).margin == 0.0
    samples = read_jsonl(val)
    right = [f"<answer>{s.boxes[0]}</answer>" for s in samples]
    wrong = [f"<answer>{s.meta['distractor']}</answer>" for s in samples]
    cols = dict(image=[load_image(s.image) for s in samples], query=[s.query for s in samples])
    r_right = np.array(f(completions=right, **cols))
    r_wrong = np.array(f(completions=wrong, **cols))
    assert (r_right > r_wrong).mean() >= 0.75  # the true region beats the distractor


def test_semantic_eval_cli_reports_top1(fitted):
    from typer.testing import CliRunner

    from medground.cli import app

    root, train, val, out, _ = fitted
    result = CliRunner().invoke(app, ["semantic", "eval", "--encoder", str(out), "--data", str(val), "--json"])
    assert result.exit_code == 0, result.output
    got = json.loads(result.stdout.strip().splitlines()[-1])
    report = json.loads((out / "fit_report.json").read_text())
    assert got["top1"] == pytest.approx(report["heldout_top1"])
    assert got["n"] == 48 and got["n_texts"] == 6 and got["margin"] == 0.2


def test_fit_resumes_after_an_interruption(tmp_path):
    from medground.models.semantic_fit import FitConfig, fit

    train = shapes_dataset(tmp_path, 24, 3)
    cfg = FitConfig(image_size=16, patch_size=8, hidden_size=16, layers=1, heads=2, projection_dim=8, epochs=2,
                    batch_size=8, val_fraction=0.25)
    whole = fit(train, tmp_path / "a", config=cfg, progress=False)

    def interrupt(msg):
        if msg.startswith("epoch 1/2"):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fit(train, tmp_path / "b", config=cfg, progress=False, log=interrupt)
    assert (tmp_path / "b" / "fit_state.pt").exists()
    logs = []
    resumed = fit(train, tmp_path / "b", config=cfg, progress=False, log=logs.append)
    assert logs[0] == f"resuming from epoch 1 ({tmp_path / 'b' / 'fit_state.pt'})"
    assert resumed["loss_per_epoch"] == pytest.approx(whole["loss_per_epoch"], rel=1e-4)
    assert resumed["heldout_top1"] == pytest.approx(whole["heldout_top1"])


class _WritesAFile:
    """A pickle payload: unpickling it in full writes ``path`` (a stand-in for any code)."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return Path.write_text, (Path(self.path), "code ran")


@pytest.mark.parametrize("container", ["zip", "legacy"])
def test_refitting_into_a_folder_with_a_malicious_state_runs_no_code(tmp_path, container):
    """Someone sends a folder whose fit_state.pt runs code when unpickled in full: refitting
    into it must not run it (the state loads with weights_only=True) and says so."""
    import torch

    from medground.models.semantic_fit import FitConfig, fit

    train = shapes_dataset(tmp_path, 24, 3)
    out, marker = tmp_path / "sent", tmp_path / "marker.txt"
    out.mkdir()
    payload = {"settings": {}, "model": _WritesAFile(marker), "epoch": 1}
    torch.save(payload, out / "fit_state.pt", _use_new_zipfile_serialization=container == "zip")
    torch.load(out / "fit_state.pt", weights_only=False)  # the payload is live: a full unpickle runs it
    assert marker.read_text() == "code ran"
    marker.unlink()

    cfg = FitConfig(image_size=16, patch_size=8, hidden_size=16, layers=1, heads=2, projection_dim=8, epochs=1,
                    batch_size=8, val_fraction=0.25)
    logs = []
    report = fit(train, out, config=cfg, progress=False, log=logs.append)
    assert not marker.exists()
    assert logs[0].startswith(f"ignoring {out / 'fit_state.pt'}: not a training state that loads safely")
    assert report["loss_per_epoch"] and (out / "fit_report.json").exists()
    assert not (out / "fit_state.pt").exists()  # replaced by the real state, removed when the fit completed


def test_fit_state_holds_plain_values_only(tmp_path):
    """What fit saves after an epoch loads with weights_only=True (optimiser, scheduler and RNG state)."""
    import torch

    from medground.models.semantic_fit import FitConfig, fit

    train = shapes_dataset(tmp_path, 24, 3)
    cfg = FitConfig(image_size=16, patch_size=8, hidden_size=16, layers=1, heads=2, projection_dim=8, epochs=2,
                    batch_size=8, val_fraction=0.25)

    def stop_after_first_epoch(msg):
        if msg.startswith("epoch 1/2"):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fit(train, tmp_path / "b", config=cfg, progress=False, log=stop_after_first_epoch)
    state = torch.load(tmp_path / "b" / "fit_state.pt", weights_only=True)
    assert state["epoch"] == 1 and state["rng"]["bit_generator"] == "PCG64" and state["opt"]["state"]


def test_fit_rejects_data_without_boxes(tmp_path):
    from medground.models.semantic_fit import fit

    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    (tmp_path / "d.jsonl").write_text(json.dumps({"id": "x", "image": "a.png", "query": "q", "boxes": []}) + "\n")
    with pytest.raises(MedgroundError, match="no sample with a ground-truth box"):
        fit(tmp_path / "d.jsonl", tmp_path / "out", progress=False)
