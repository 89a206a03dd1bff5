"""The semantic reward: crops of the *predicted* box, one batched encoder call, cached texts."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from PIL import Image

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from medground import rewards  # noqa: E402
from medground.crops import crop_regions  # noqa: E402
from medground.errors import MedgroundError  # noqa: E402

COLOURS = {"red": (255, 0, 0), "green": (0, 255, 0), "blue": (0, 0, 255)}


class ColourEncoder:
    """Embeds an image as its normalised mean colour and a colour word as that colour;
    counts calls and sizes so the tests can see batching and caching."""

    def __init__(self):
        self.image_calls: list[int] = []
        self.text_calls: list[list[str]] = []
        self.crop_sizes: list[tuple[int, int]] = []

    def encode_images(self, images):
        self.image_calls.append(len(images))
        self.crop_sizes.extend(im.size for im in images)
        x = torch.tensor(np.stack([np.asarray(im, dtype=np.float32).reshape(-1, 3).mean(0) for im in images]))
        return torch.nn.functional.normalize(x, dim=-1)

    def encode_texts(self, texts):
        self.text_calls.append(list(texts))
        x = torch.tensor([COLOURS[t.split()[0]] for t in texts], dtype=torch.float32)
        return torch.nn.functional.normalize(x, dim=-1)


def two_halves(w=200, h=100):
    """Left half red, right half blue."""
    a = np.zeros((h, w, 3), np.uint8)
    a[:, : w // 2] = COLOURS["red"]
    a[:, w // 2 :] = COLOURS["blue"]
    return Image.fromarray(a)


def call(f, completions, **columns):
    n = len(completions)
    columns = {k: (v if isinstance(v, list) and len(v) == n else [v] * n) for k, v in columns.items()}
    return f(prompts=["p"] * n, completions=completions, completion_ids=[[0]] * n, **columns)


def test_crop_regions_margin_clipping_and_empty():
    im = Image.new("RGB", (100, 50))
    crops = crop_regions(im, [[10, 10, 30, 20], [90, 40, 120, 60], [200, 200, 210, 210]], margin=0.5)
    assert crops[0].size == (40, 20)  # 20x10 box widened by 10 / 5 px a side
    assert crops[1].size == (25, 20)  # widened to x 75..135, y 30..70, clipped to x 75..100, y 30..50
    assert crops[2] is None  # entirely outside
    assert crop_regions(im, [[10, 10, 30, 20]])[0].size == (20, 10)
    assert crop_regions(im, [[5.2, 5.7, 9.1, 9.9]])[0].size == (5, 5)  # snapped outwards: x 5..10, y 5..10


def test_reward_scores_the_predicted_region_not_the_whole_image():
    enc = ColourEncoder()
    f = rewards.get("semantic", encoder=enc)
    image = two_halves()
    on_red = "<think>x</think><answer>[10, 10, 90, 90]</answer>"
    on_blue = "<think>x</think><answer>[110, 10, 190, 90]</answer>"
    out = call(f, [on_red, on_blue, "no box"], image=image, query="red lesion")
    assert out == pytest.approx([1.0, 0.5, 0.0])  # cos 1 -> 1.0, cos 0 -> 0.5, unparseable -> 0.0


def test_one_batched_image_call_and_text_cache():
    enc = ColourEncoder()
    f = rewards.get("semantic", encoder=enc)
    image = two_halves()
    texts = [f"<answer>[{x}, 10, {x + 20}, 30]</answer>" for x in range(0, 160, 20)]
    queries = ["red a", "blue b"] * 4
    call(f, texts, image=image, query=queries)
    assert enc.image_calls == [8]  # all crops of the call in one encode_images call
    assert enc.text_calls == [["red a", "blue b"]]  # each distinct text embedded once
    call(f, texts, image=image, query=queries)
    assert enc.text_calls == [["red a", "blue b"]]  # second call: texts come from the cache
    call(f, texts[:1], image=image, query=["green c"])
    assert enc.text_calls[-1] == ["green c"]
    assert len(f.text_cache) == 3


def test_repeated_crops_are_embedded_once():
    enc = ColourEncoder()
    f = rewards.get("semantic", encoder=enc)
    image, other = two_halves(), two_halves()
    same = "<answer>[0, 0, 50, 50]</answer>"
    near = "<answer>[0.2, 0.3, 49.6, 49.9]</answer>"  # snaps to the same pixels
    out = call(f, [same, near, same, same], image=[image, image, image, other], query=["red", "red", "blue", "red"])
    assert enc.image_calls == [2]  # one crop of `image`, one of `other`
    assert out == pytest.approx([1.0, 1.0, 0.5, 1.0])
    # numpy images work too
    assert call(f, [same], image=[np.asarray(image)], query=["red"]) == pytest.approx([1.0])


def test_text_cache_is_bounded():
    enc = ColourEncoder()
    f = rewards.get("semantic", encoder=enc, cache_size=2)
    image = two_halves()
    for q in ["red 1", "red 2", "red 3", "red 1"]:
        call(f, ["<answer>[0, 0, 10, 10]</answer>"], image=image, query=q)
    assert len(f.text_cache) == 2
    assert enc.text_calls == [["red 1"], ["red 2"], ["red 3"], ["red 1"]]  # "red 1" was evicted


def test_threshold_mode_and_margin():
    enc = ColourEncoder()
    image = two_halves()
    # box straddling the border: [80, 0, 120, 100] is half red half blue -> cos with red = 1/sqrt(2)
    straddle = "<answer>[80, 0, 120, 100]</answer>"
    cont = call(rewards.get("semantic", encoder=enc), [straddle], image=image, query="red")
    assert cont == pytest.approx([(1 / np.sqrt(2) + 1) / 2], abs=1e-6)
    thr = rewards.get("semantic", encoder=enc, mode="threshold", threshold=0.8)
    assert call(thr, [straddle], image=image, query="red") == [0.0]
    assert call(thr, ["<answer>[0, 0, 90, 100]</answer>"], image=image, query="red") == [1.0]
    # margin 0.5 on a 20 px box widens it by 10 px a side
    enc2 = ColourEncoder()
    call(rewards.get("semantic", encoder=enc2, margin=0.5), ["<answer>[40, 40, 60, 60]</answer>"], image=image, query="red")
    assert enc2.crop_sizes == [(40, 40)]


def test_frame_mapping_crops_in_the_image_the_policy_saw():
    enc = ColourEncoder()
    image = two_halves(200, 100)
    f = rewards.get("semantic", encoder=enc, frame="norm1000")
    # [600, 0, 1000, 1000] in 0-1000 = x 120..200 px: all blue
    assert call(f, ["<answer>[600, 0, 1000, 1000]</answer>"], image=image, query="blue") == pytest.approx([1.0])
    assert enc.crop_sizes == [(80, 100)]


def test_whole_image_guard():
    enc = ColourEncoder()
    image = two_halves()
    whole = "<answer>[0, 0, 200, 100]</answer>"
    assert call(rewards.get("semantic", encoder=enc), [whole], image=image, query="red", boxes=[[[0, 0, 50, 50]]])[0] > 0.5
    guarded = rewards.get("semantic", encoder=enc, max_area_frac=0.5)
    assert call(guarded, [whole], image=image, query="red", boxes=[[[0, 0, 50, 50]]]) == [0.0]


def test_bad_setup_is_a_clear_error_and_bad_text_is_zero():
    with pytest.raises(MedgroundError, match="needs encoder"):
        rewards.get("semantic")
    with pytest.raises(MedgroundError, match="mode"):
        rewards.get("semantic", encoder=ColourEncoder(), mode="fuzzy")
    with pytest.raises(MedgroundError, match="not found"):
        rewards.get("semantic", encoder="/nonexistent/encoder/dir")
    f = rewards.get("semantic", encoder=ColourEncoder())
    with pytest.raises(MedgroundError, match="no 'image' column"):
        f(completions=["<answer>[0, 0, 1, 1]</answer>"], query=["red"])
    image = two_halves()
    weird = ["<answer>[nan, 0, 5, 5]</answer>", "<answer>[500, 500, 600, 600]</answer>", "<answer>[5, 5, 5, 5]</answer>",
             "<answer>[1e308, 0, 1e309, 5]</answer>", ""]
    assert call(f, weird, image=image, query="red") == [0.0] * 5


@pytest.fixture(scope="module")
def encoder_dir(tmp_path_factory):
    """A tiny CLIP-architecture encoder saved to disk."""
    from medground.models.semantic_fit import build_dual_encoder, build_image_processor, build_tokenizer

    path = tmp_path_factory.mktemp("encoder")
    torch.manual_seed(0)
    tok = build_tokenizer(["red lesion", "blue lesion"], max_length=8)
    model = build_dual_encoder(len(tok), image_size=16, patch_size=8, hidden_size=16, layers=1, heads=2,
                               projection_dim=8, max_length=8, pad_id=tok.pad_token_id, bos_id=tok.bos_token_id,
                               eos_id=tok.eos_token_id)
    model.save_pretrained(path)
    tok.save_pretrained(path)
    build_image_processor(16).save_pretrained(path)
    return str(path)


def test_real_transformers_encoder_loaded_once_from_a_directory(encoder_dir):
    """A tiny CLIP saved to disk, loaded by path: the reward equals (cos + 1) / 2 of the
    crop and query embeddings computed directly."""
    from medground.models.encoders import load_encoder

    f = rewards.get("semantic", encoder=encoder_dir)
    image = two_halves()
    out = call(f, ["<answer>[10, 10, 90, 90]</answer>", "<answer>[110, 10, 190, 90]</answer>"], image=image,
               query="red lesion")
    enc = load_encoder(encoder_dir)
    crops = crop_regions(image, [[10, 10, 90, 90], [110, 10, 190, 90]])
    cos = (enc.encode_images(crops) @ enc.encode_texts(["red lesion"]).T).squeeze(1)
    assert out == pytest.approx(((cos + 1) / 2).tolist(), abs=1e-5)


def test_reward_from_a_spec_pickles_the_spec_and_loads_the_encoder_once(encoder_dir, monkeypatch):
    """Pickling (multiprocess data loading, accelerate) carries the directory, not the
    weights; the unpickled reward loads the encoder once, not per call."""
    import pickle

    import medground.models.encoders as encoders

    loads = []
    real = encoders.load_encoder

    def counting(*args, **kwargs):
        loads.append(args[0] if args else kwargs.get("spec"))
        return real(*args, **kwargs)

    monkeypatch.setattr(encoders, "load_encoder", counting)
    f = rewards.get("semantic", encoder=encoder_dir, batch_size=4)
    image = two_halves()
    texts = ["<answer>[10, 10, 90, 90]</answer>", "<answer>[110, 10, 190, 90]</answer>", "no box"]
    before = call(f, texts, image=image, query="red lesion")
    assert loads == [encoder_dir]
    data = pickle.dumps(f)
    assert len(data) < 20_000  # the spec travels, not the weights
    copy = pickle.loads(data)
    assert loads == [encoder_dir] * 2  # built again once, when unpickled...
    assert copy.encoder is not f.encoder and len(copy.text_cache) == 0
    for _ in range(3):
        assert call(copy, texts, image=image, query="red lesion") == pytest.approx(before, abs=1e-6)
    assert loads == [encoder_dir] * 2  # ...and never per call
    assert copy.__name__ == f.__name__ == "semantic"  # batch_size does not change the result
