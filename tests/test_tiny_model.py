"""The tiny offline Qwen2.5-VL: loads with stock transformers classes, runs, is deterministic."""

from __future__ import annotations

import json
import os

import pytest
import torch
from PIL import Image

os.environ["HF_HUB_OFFLINE"] = "1"

from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration  # noqa: E402

from medground.cli import main  # noqa: E402
from medground.data.phantom import render_phantom  # noqa: E402
from medground.errors import MedgroundError  # noqa: E402
from medground.geometry import smart_resize  # noqa: E402
from medground.models.tiny import (  # noqa: E402
    TAG_TOKENS,
    TINY_FAMILIES,
    build_tiny_model,
    build_tokenizer,
    tokenizer_corpus,
)


@pytest.fixture(scope="module")
def loaded(tiny_dir):
    processor = AutoProcessor.from_pretrained(tiny_dir)
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(tiny_dir).eval()
    return model, processor


def _prompt(processor, text):
    msgs = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": text}]}]
    return processor.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)


def _phantom_rgb(size=224, index=0, width=None):
    img = Image.fromarray(render_phantom(1, index, size=size).image).convert("RGB")
    return img.resize((width, size)) if width else img


def test_checkpoint_is_an_ordinary_directory(tiny_dir):
    names = {p.name for p in tiny_dir.iterdir()}
    assert {
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "processor_config.json",
        "generation_config.json",
        "medground.json",
    } <= names
    assert not any(p.name.startswith(".tiny.tmp") for p in tiny_dir.parent.iterdir())


def test_processor_settings(loaded):
    model, processor = loaded
    assert type(processor).__name__ == "Qwen2_5_VLProcessor"
    assert processor.tokenizer.padding_side == "left"
    size = processor.image_processor.size
    assert (size["shortest_edge"], size["longest_edge"]) == (56 * 56, 224 * 224)
    assert processor.image_processor.patch_size * processor.image_processor.merge_size == 28
    tok = processor.tokenizer
    assert model.config.image_token_id == tok.convert_tokens_to_ids("<|image_pad|>")
    assert len(tok) <= model.config.text_config.vocab_size


def test_tokenizer_splits_digits_and_keeps_tags(loaded):
    _, processor = loaded
    tok = processor.tokenizer
    pieces = tok.tokenize("[1234, 56]")
    assert [p for p in pieces if p.isdigit()] == ["1", "2", "3", "4", "5", "6"]
    for tag in TAG_TOKENS:
        assert len(tok.tokenize(tag)) == 1
    text = '<think>right apex</think><answer>{"bbox_2d": [12, 30, 87, 104]}</answer>'
    ids = tok(text)["input_ids"] + [tok.eos_token_id]
    assert tok.decode(ids, skip_special_tokens=True) == text
    # any text round-trips (byte-level), even words the corpus never saw
    odd = "Pneumomediastinum — ½ côté gauche"
    assert tok.decode(tok(odd)["input_ids"]) == odd


def test_chat_template_places_the_image_tokens(loaded):
    _, processor = loaded
    text = _prompt(processor, "nodule in the right upper zone")
    assert text == (
        "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>nodule in the right upper zone"
        "<|im_end|>\n<|im_start|>assistant\n"
    )


@pytest.mark.parametrize("size,width", [(224, None), (256, None), (200, 300), (96, None)])
def test_image_token_count_matches_smart_resize(loaded, size, width):
    model, processor = loaded
    img = _phantom_rgb(size=max(size, 96), width=width)
    if size < 96:
        img = img.resize((size, size))
    inputs = processor(text=[_prompt(processor, "left pleural effusion")], images=[img], return_tensors="pt")
    h, w = smart_resize(img.height, img.width, 28, 56 * 56, 224 * 224)
    n_img = int((inputs["input_ids"] == model.config.image_token_id).sum())
    assert n_img == (h // 28) * (w // 28)
    assert inputs["image_grid_thw"].tolist() == [[1, h // 14, w // 14]]
    with torch.no_grad():
        out = model(**inputs)
    assert out.logits.shape == (1, inputs["input_ids"].shape[1], model.config.text_config.vocab_size)
    assert torch.isfinite(out.logits).all()


def test_batched_left_padded_generation_matches_single(loaded):
    model, processor = loaded
    texts = [
        _prompt(processor, "cardiomegaly"),
        _prompt(processor, "The patient has fever, productive cough and crackles. Which region shows it?"),
    ]
    imgs = [_phantom_rgb(index=0), _phantom_rgb(index=1)]
    batch = processor(text=texts, images=imgs, return_tensors="pt", padding=True)
    assert (batch["attention_mask"][0, 0] == 0) and (batch["attention_mask"][:, -1] == 1).all()  # left padding
    with torch.no_grad():
        out = model.generate(**batch, max_new_tokens=8, do_sample=False)
    new = out[:, batch["input_ids"].shape[1] :]
    for i in range(2):
        single = processor(text=[texts[i]], images=[imgs[i]], return_tensors="pt")
        with torch.no_grad():
            one = model.generate(**single, max_new_tokens=8, do_sample=False)
        gen = one[0, single["input_ids"].shape[1] :]
        assert gen.tolist() == new[i, : len(gen)].tolist()


def test_same_seed_same_bytes_other_seed_other_weights(tmp_path, tiny_dir):
    again = build_tiny_model(tmp_path / "again", seed=0)
    other = build_tiny_model(tmp_path / "other", seed=1)
    for name in ("model.safetensors", "tokenizer.json", "config.json"):
        assert (again / name).read_bytes() == (tiny_dir / name).read_bytes()
    assert (other / "model.safetensors").read_bytes() != (tiny_dir / "model.safetensors").read_bytes()
    assert (other / "tokenizer.json").read_bytes() == (tiny_dir / "tokenizer.json").read_bytes()


def test_cli_builds_a_loadable_checkpoint(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["model", "tiny", "--out", str(tmp_path / "m"), "--seed", "3", "--hidden-size", "64"])
    assert exc.value.code in (0, None)
    assert "wrote tiny" in capsys.readouterr().out
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(tmp_path / "m")
    assert model.config.text_config.hidden_size == 64 == model.config.vision_config.out_hidden_size
    with pytest.raises(SystemExit) as exc:
        main(["model", "tiny", "--out", str(tmp_path / "n"), "--template", "nope"])
    assert exc.value.code == 2
    assert "unknown template" in capsys.readouterr().err


def test_refuses_to_replace_a_folder_that_is_not_a_tiny_checkpoint(tmp_path, tiny_dir):
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    with pytest.raises(MedgroundError, match="not a tiny checkpoint"):
        build_tiny_model(precious)
    assert (precious / "notes.txt").read_text() == "keep me"
    again = build_tiny_model(tmp_path / "t", seed=0)
    build_tiny_model(again, seed=0)  # a previous tiny checkpoint is simply rebuilt
    assert (again / "model.safetensors").read_bytes() == (tiny_dir / "model.safetensors").read_bytes()


@pytest.mark.parametrize("family", TINY_FAMILIES)
def test_open_set_tokenizer_learns_the_open_set_texts_of_every_family(family):
    """``open_set`` only adds texts (the closed-set corpus, hence tokenizer, is the one it was);
    the open-set prompt and the answers for several targets, ours and the family's native
    one, take fewer tokens with it."""
    from medground.data.phantom import open_query_bank
    from medground.models.families import get_family, resolve_template
    from medground.templates import get_template

    fam = get_family(family)
    closed_corpus, open_corpus = tokenizer_corpus(family), tokenizer_corpus(family, open_set=True)
    assert open_corpus[: len(closed_corpus)] == closed_corpus and len(open_corpus) > len(closed_corpus)
    closed, opened = (build_tokenizer(c, tokens=fam.tokens) for c in (closed_corpus, open_corpus))
    query, two = open_query_bank()[0], [[100, 200, 300, 400], [500, 600, 700, 800]]
    texts = [get_template("r1_open").render(query, fam.frame(), 640, 480), get_template("r1_open").teacher(query, two)]
    if fam.native_template:
        texts.append(resolve_template(fam.native_template).teacher(query, two))
    for text in texts:
        assert len(opened(text)["input_ids"]) < len(closed(text)["input_ids"]), text


def test_an_open_set_tiny_model_records_it(tmp_path, tiny_dir):
    from medground.models.tiny import TinyConfig

    out = build_tiny_model(tmp_path / "open", seed=0, config=TinyConfig(hidden_size=32, open_set=True))
    assert json.loads((out / "medground.json").read_text())["tiny_config"]["open_set"] is True
    assert (out / "tokenizer.json").read_bytes() != (tiny_dir / "tokenizer.json").read_bytes()
    assert not json.loads((tiny_dir / "medground.json").read_text())["tiny_config"]["open_set"]
