"""Every model family on its tiny model, end to end: what a researcher who brings that
model relies on.

Per family (``medground model tiny --family F``): the checkpoint loads with stock
transformers classes and the family is recognised from ``config.json``; batched
``predict`` (left padding, images of mixed non-square sizes) writes boxes in original
pixels; SFT and GRPO run through TRL; an interrupted GRPO run resumed from its
checkpoint reproduces the uninterrupted run exactly; a LoRA adapter directory loads
onto its base.  Tiny sizes, 64-px images and one torch thread keep each family's run
within about half a minute on two CPU cores.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from PIL import Image

from medground import predict as predict_mod
from medground.cli import main
from medground.data.phantom import generate_phantom_dataset
from medground.data.schema import read_jsonl, write_jsonl
from medground.errors import MedgroundError
from medground.geometry import PIXELS, map_boxes
from medground.models.families import get_family, resolve_template
from medground.models.policy import load_policy
from medground.models.tiny import TINY_FAMILIES
from medground.train import GRPORunConfig, SFTRunConfig, load_config
from medground.train.grpo import build_grpo_trainer, run_grpo
from medground.train.sft import run_sft

#: the transformers class each family's tiny model is (the architecture a researcher brings)
CLASSES = {
    "gemma3": "Gemma3ForConditionalGeneration",
    "internvl": "InternVLForConditionalGeneration",
    "llava-onevision": "LlavaOnevisionForConditionalGeneration",
    "qwen2-vl": "Qwen2VLForConditionalGeneration",
    "qwen2.5-vl": "Qwen2_5_VLForConditionalGeneration",
    "qwen3-vl": "Qwen3VLForConditionalGeneration",
    "smolvlm": "Idefics3ForConditionalGeneration",
}
TINY_FLAGS = ["--hidden-size", "64", "--intermediate-size", "128", "--layers", "1", "--vision-hidden-size", "32",
              "--vision-intermediate-size", "64", "--vision-depth", "1", "--max-pixels", str(64 * 64)]
CPU = {"use_cpu": True, "bf16": False, "report_to": [], "logging_steps": 1}
#: mixed, non-square image sizes for batched prediction
PREDICT_SIZES = [(96, 64), (64, 88), (72, 72)]

pytestmark = pytest.mark.usefixtures("one_thread")


def test_every_family_has_a_tiny_model():
    assert sorted(TINY_FAMILIES) == sorted(CLASSES)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("families")
    generate_phantom_dataset(root / "data", n=10, seed=3, size=64, val_frac=0.2, test_frac=0.1, progress=False)
    # the same phantoms resized to non-square sizes, boxes scaled with them
    mixed = []
    for s, (w, h) in zip(read_jsonl(root / "data/test.jsonl") + read_jsonl(root / "data/train.jsonl"), PREDICT_SIZES):
        img = Image.open(s.image).convert("RGB").resize((w, h))
        path = root / "mixed" / f"{s.id}.png"
        path.parent.mkdir(exist_ok=True)
        img.save(path)
        s.boxes = map_boxes(s.boxes, (s.width, s.height), PIXELS, f"fixed:{w}x{h}").round(2).tolist()
        s.image, s.width, s.height, s.points, s.mask = str(path), w, h, None, None
        mixed.append(s)
    write_jsonl(mixed, root / "mixed.jsonl")
    return root


@pytest.fixture(scope="module", params=sorted(CLASSES))
def family(request, data) -> dict:
    """The family's tiny model (built through the CLI) and a short SFT run on it."""
    name = request.param
    root = data / name
    with pytest.raises(SystemExit) as done:
        main(["model", "tiny", "--family", name, "--out", str(root / "tiny"), "--seed", "0", *TINY_FLAGS])
    assert done.value.code in (0, None)
    cfg = load_config(SFTRunConfig, values={
        "model": {"path": str(root / "tiny")},
        # 16 samples: the answer format is learnt, the coordinates not quite, so GRPO's samples differ
        "data": {"train": str(data / "data/train.jsonl"), "template": "r1", "max_train_samples": 16},
        "train": {"output_dir": str(root / "sft"), "learning_rate": 1e-2, "per_device_train_batch_size": 4,
                  "max_steps": 40, "lr_scheduler_type": "constant", "save_steps": 100, **CPU},
        "sft": {"think": "located"},
        "eval": {"every_steps": 0},
    })
    return {"name": name, "root": root, "tiny": root / "tiny", "sft": run_sft(cfg), "data": data}


def _grpo_cfg(fam: dict, out: Path, **train):
    return load_config(GRPORunConfig, values={
        "model": {"path": fam["sft"]["final"]},
        "data": {"train": str(fam["data"] / "data/train.jsonl"), "template": "r1", "max_train_samples": 4},
        "train": {"output_dir": str(out), "learning_rate": 1e-3, "per_device_train_batch_size": 4, "max_steps": 4,
                  "save_steps": 2, "seed": 7, **CPU, **train},
        "grpo": {"num_generations": 4, "max_completion_length": 56, "temperature": 0.7,
                 "num_completions_to_print": 0},
        "eval": {"every_steps": 0},
        "rewards": [{"name": "format", "weight": 0.5}, {"name": "giou", "weight": 2.0}],
    })


def test_tiny_checkpoint_loads_with_stock_classes_and_is_recognised(family):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    fam = get_family(family["name"])
    tiny = family["tiny"]
    assert sum(p.stat().st_size for p in tiny.iterdir()) < 3_000_000  # a few MB at most
    processor = AutoProcessor.from_pretrained(tiny)
    model = AutoModelForImageTextToText.from_pretrained(tiny)
    assert type(model).__name__ == CLASSES[fam.name] and model.config.model_type in fam.model_types
    tok = processor.tokenizer
    for token in (*fam.tokens.special, "<think>", "</answer>"):
        assert len(tok.tokenize(token)) == 1, token
    assert [p for p in tok.tokenize("[1234, 56]") if p.isdigit()] == list("123456")
    meta = json.loads((tiny / "medground.json").read_text())
    assert meta["kind"] == f"tiny-{fam.name}"
    policy = load_policy(tiny, device="cpu")
    assert policy.family == fam.name and policy.frame == fam.frame(policy.processor)
    assert policy.processor.tokenizer.padding_side == "left"
    if fam.frame_spec == "qwen2.5-vl":  # pixel limits change the resized image, and the frame with it
        assert load_policy(tiny, device="cpu", max_pixels=56 * 56).frame == fam.frame(max_pixels=56 * 56)
    elif not fam.pixel_limits:  # a fixed-size processor takes none: say so instead of ignoring them
        with pytest.raises(MedgroundError, match="min_pixels / max_pixels apply to the processors of"):
            load_policy(tiny, device="cpu", max_pixels=56 * 56)


def test_batched_prediction_of_mixed_sizes_writes_original_pixels(family, tmp_path, monkeypatch):
    fam = get_family(family["name"])
    policy = load_policy(family["tiny"], device="cpu")
    samples = read_jsonl(family["data"] / "mixed.jsonl")
    images = [Image.open(s.image).convert("RGB") for s in samples]
    prompts = [policy.processor.apply_chat_template(predict_mod.build_messages(
        s.query, resolve_template("r1"), policy.frame, s.width, s.height), add_generation_prompt=True, tokenize=False)
        for s in samples]
    # left padding: a batch of mixed sizes generates what each prompt generates alone
    batched = predict_mod.generate_batch(policy, images, prompts, max_new_tokens=6)
    alone = [predict_mod.generate_batch(policy, [im], [p], max_new_tokens=6)[0] for im, p in zip(images, prompts)]
    assert batched == alone
    # answers in the family's syntax and frame come back in each image's original pixels
    template = resolve_template(fam.native_template or "r1")
    in_frame = {(s.width, s.height): _frame_box(policy.frame, (s.width, s.height)) for s in samples}
    oracle = {size: template.teacher("the target", box) for size, box in in_frame.items()}
    real = predict_mod.generate_batch

    def generate(pol, imgs, prompts, max_new_tokens=128):
        assert len(real(pol, imgs, prompts, max_new_tokens=2)) == len(imgs)  # the real batched path runs
        return [oracle[im.size] for im in imgs]

    monkeypatch.setattr(predict_mod, "generate_batch", generate)
    out = tmp_path / "pred.jsonl"
    predict_mod.predict(policy, family["data"] / "mixed.jsonl", out, batch_size=3, progress=False)
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in records] == [s.id for s in samples]
    for r, s in zip(records, samples):
        size = (s.width, s.height)
        want = map_boxes([in_frame[size]], size, policy.frame, PIXELS)[0]
        assert r["error"] is None and r["frame"] == policy.frame.name
        assert r["boxes"] == [pytest.approx(want.tolist(), abs=0.006)], (fam.name, r["completion"])
        assert 0 < want[0] < want[2] < s.width and 0 < want[1] < want[3] < s.height  # inside the original image


def _frame_box(frame, size) -> list:
    """A box at 20-70 % x 25-80 % of the image, written exactly as the family writes numbers
    (integers; three decimals in 0-1), in the frame's order."""
    fw, fh = frame.size(*size)
    box = [0.2 * fw, 0.25 * fh, 0.7 * fw, 0.8 * fh]
    box = [round(v, 3) if fw <= 1 else round(v) for v in box]
    return [box[1], box[0], box[3], box[2]] if frame.order == "yx" else box


def test_sft_runs_through_trl_and_saves_the_family(family):
    out = Path(family["sft"]["output_dir"])
    losses = [h["loss"] for h in json.loads((out / "trainer_state.json").read_text())["log_history"] if "loss" in h]
    assert len(losses) == 40 and losses[-1] < 0.2 * losses[0]
    policy = load_policy(family["sft"]["final"], device="cpu")
    fam = get_family(family["name"])
    assert policy.family == fam.name and policy.frame == fam.frame(policy.processor)
    assert json.loads(Path(family["sft"]["final"], "medground.json").read_text())["frame"] == policy.frame.name


class _Crash(Exception):
    pass


def test_grpo_runs_and_resumes_exactly(family):
    """Two GRPO steps, a crash at the checkpoint, a resume: the steps after it and the final
    weights equal those of a run that was never interrupted."""
    from safetensors.torch import load_file
    from transformers import TrainerCallback

    root = family["root"]
    full_dir, cut_dir = root / "grpo_full", root / "grpo_cut"
    run_grpo(_grpo_cfg(family, full_dir))

    class CrashAfterFirstCheckpoint(TrainerCallback):
        def on_save(self, args, state, control, **kw):
            raise _Crash()

    trainer, *_ = build_grpo_trainer(_grpo_cfg(family, cut_dir))
    trainer.add_callback(CrashAfterFirstCheckpoint())
    with pytest.raises(_Crash):
        trainer.train()
    assert sorted(p.name for p in cut_dir.glob("checkpoint-*")) == ["checkpoint-2"]
    del trainer
    run_grpo(_grpo_cfg(family, cut_dir))  # resume="auto": picks checkpoint-2

    def steps(d, after=0):
        hist = json.loads((d / "trainer_state.json").read_text())["log_history"]
        return {h["step"]: h for h in hist if h["step"] > after and "loss" in h}

    assert sorted(steps(full_dir)) == [1, 2, 3, 4]
    full, cut = steps(full_dir, 2), steps(cut_dir, 2)
    assert sorted(full) == sorted(cut) == [3, 4]
    every = steps(full_dir)
    # the policy was really updated before the checkpoint and after it (rewards differ within groups)
    assert any(every[s]["grad_norm"] > 0 for s in (1, 2)) and any(every[s]["grad_norm"] > 0 for s in (3, 4))
    for step in full:
        for key in ("loss", "reward", "rewards/format/mean", "rewards/giou/mean", "grad_norm"):
            a, b = full[step][key], cut[step][key]
            assert (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, rel=1e-5, abs=1e-7), (step, key)
    wa, wb = load_file(str(full_dir / "final/model.safetensors")), load_file(str(cut_dir / "final/model.safetensors"))
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    w0 = load_file(str(Path(family["sft"]["final"]) / "model.safetensors"))
    assert any(not torch.equal(w0[k], wa[k]) for k in wa)


def test_lora_adapter_directory_loads_onto_its_base(family, tmp_path):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForImageTextToText

    base = load_policy(family["tiny"], device="cpu")
    torch.manual_seed(0)
    net = get_peft_model(AutoModelForImageTextToText.from_pretrained(family["tiny"]),
                         LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    with torch.no_grad():  # LoRA B starts at zero: make the adapter change something
        for name, param in net.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.5)
    net.save_pretrained(tmp_path / "adapter")
    assert not (tmp_path / "adapter" / "config.json").exists()
    loaded = load_policy(tmp_path / "adapter", device="cpu")
    ids = torch.tensor([[5, 6, 7, 8, 9]])
    with torch.no_grad():
        want = net.eval()(input_ids=ids).logits
        got = loaded.model(input_ids=ids).logits
        before = base.model(input_ids=ids).logits
    assert torch.allclose(got, want, atol=1e-4) and not torch.allclose(got, before, atol=1e-3)
    assert loaded.family == base.family == family["name"] and loaded.frame == base.frame  # the base's processor
    assert not any("lora" in n for n, _ in loaded.model.named_parameters())  # merged, not wrapped
    assert not any("lora" in n for n, _ in loaded.model.named_parameters())


def test_an_unknown_model_type_is_one_clear_line(tmp_path, capsys):
    from transformers import LlavaConfig

    LlavaConfig().save_pretrained(tmp_path / "llava")  # LLaVA-1.5: transformers knows it, no family covers it
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(1)}, str(tmp_path / "llava" / "model.safetensors"))  # a complete weights file
    data = tmp_path / "d.jsonl"
    data.write_text('{"id": "a", "image": "a.png", "query": "q"}\n')
    with pytest.raises(SystemExit) as done:
        main(["predict", "--model", str(tmp_path / "llava"), "--data", str(data), "--out", str(tmp_path / "p.jsonl")])
    assert done.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in lines[0]  # said before the weights are read or the source described
    err = lines[0]
    assert "unknown model type 'llava'" in err and "--family" in err and "--frame" in err and "qwen3-vl" in err
