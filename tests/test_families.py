"""Model families without a model: the family table, each family's answers in its
native syntax and frame mapped back to original pixels, and the one mapping shared by
``predict.decode_answer``, rewards (``family=``) and ``evaluate --family``."""

from __future__ import annotations

import json

import numpy as np
import pytest

from medground.cli import main
from medground.data.schema import Sample
from medground.data.trl_dataset import teacher_completion
from medground.errors import MedgroundError
from medground.geometry import PIXELS, Frame, map_boxes
from medground.metrics import box_iou
from medground.models.families import (
    NATIVE_TEMPLATES,
    families,
    family_of,
    get_family,
    resolve_frame,
    resolve_template,
)
from medground.parsing import parse_completion
from medground.predict import decode_answer

FAMILIES = [f.name for f in families()]
NATIVE = [f.name for f in families() if f.native_template]
#: non-square originals of several sizes (W, H), and a box in each (original pixels)
SIZES = [(640, 480), (1000, 700), (333, 1217), (2048, 1536), (512, 200)]


def _truth(size) -> list[float]:
    w, h = size
    return [0.18 * w, 0.31 * h, 0.62 * w, 0.77 * h]


def test_the_family_table():
    assert FAMILIES == ["gemma3", "internvl", "llava-onevision", "qwen2-vl", "qwen2.5-vl", "qwen3-vl", "smolvlm"]
    frames = {f.name: f.frame().name for f in families()}
    assert frames == {"gemma3": "norm1000+yx", "internvl": "norm1000", "llava-onevision": "norm1",
                      "qwen2-vl": "norm1000", "qwen2.5-vl": "qwen2.5-vl", "qwen3-vl": "norm1000",
                      "smolvlm": "norm1000"}
    for fam in families():
        assert fam.model_types and all(family_of(mt) is fam for mt in fam.model_types)
        assert fam.tokens is not None and fam.tiny is not None
        doc = __import__(fam.tiny.__module__, fromlist=["x"]).__doc__
        assert "**Frame**" in doc and "**Native answer**" in doc and "**Chat template**" in doc and "**TRL**" in doc
    assert get_family("smolvlm").native_template is None  # declared: no native grounding
    assert sorted(NATIVE_TEMPLATES) == sorted(f"{n}-native" for n in NATIVE)
    # names, model types and aliases all find the family
    assert get_family("medgemma").name == get_family("gemma3").name == "gemma3"
    assert get_family("qwen3_vl_moe").name == "qwen3-vl" and get_family("Lingshu").name == "qwen2.5-vl"


def test_unknown_model_type_is_one_line_naming_the_families_and_the_options():
    with pytest.raises(MedgroundError) as exc:
        family_of("llava")
    msg = str(exc.value)
    assert "\n" not in msg and "'llava'" in msg and "--family" in msg and "--frame" in msg
    assert all(name in msg for name in FAMILIES)
    with pytest.raises(MedgroundError, match="did you mean gemma3"):
        get_family("gemma4")


@pytest.mark.parametrize("family", NATIVE)
@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_an_oracle_answer_in_the_native_syntax_maps_back_to_the_truth(family, size):
    """The answer a perfect model of the family writes (its syntax, its frame) decodes to the box."""
    fam = get_family(family)
    frame = fam.frame()
    truth = _truth(size)
    in_frame = map_boxes([truth], size, PIXELS, frame)[0]
    text = resolve_template(fam.native_template).teacher("left pleural effusion", in_frame)
    boxes, _ = decode_answer(text, size, family)
    assert len(boxes) == 1
    assert box_iou(boxes, [truth])[0] > 0.99
    assert decode_answer(text, size, fam) == decode_answer(text, size, frame)  # family object, name or frame


@pytest.mark.parametrize("family", NATIVE)
def test_a_native_answer_for_several_targets_or_none(family):
    """Multi-target and negative SFT samples in the native syntax: every box comes back, in
    order; "not in this image" is an explicit empty answer, or refused in one line by a
    syntax that cannot say it (Qwen2-VL's box tokens)."""
    fam, size = get_family(family), (1000, 700)
    truth = [_truth(size), [600.0, 70.0, 900.0, 350.0], [50.0, 500.0, 300.0, 680.0]]
    s = Sample(id="m", image="x.png", query="the masses", boxes=truth, width=size[0], height=size[1])
    template = resolve_template(fam.native_template)
    text = teacher_completion(template, s, fam.frame())
    boxes, _ = decode_answer(text, size, family)
    assert len(boxes) == 3 and (box_iou(boxes, truth) > 0.99).all()
    one = Sample(id="o", image="x.png", query="the masses", boxes=truth[:1], width=size[0], height=size[1])
    in_frame = map_boxes(truth[:1], size, PIXELS, fam.frame())[0]
    assert teacher_completion(template, one, fam.frame()) == template.teacher("the masses", in_frame)  # as before
    negative = Sample(id="n", image="x.png", query="right effusion", boxes=[], width=size[0], height=size[1])
    if family == "qwen2-vl":
        with pytest.raises(MedgroundError, match="qwen2-vl-native: .*no answer for 'not in this image'"):
            teacher_completion(template, negative, fam.frame())
        return
    empty = parse_completion(teacher_completion(template, negative, fam.frame()))
    assert empty.boxes == [] and empty.empty


# Several instances as each family's sources print them (numbers as written).
NATIVE_MULTI = {
    "qwen2-vl": "<|object_ref_start|>masses<|object_ref_end|><|box_start|>(1,2),(3,4)<|box_end|>"
                "<|box_start|>(5,6),(7,8)<|box_end|>",
    "qwen2-vl, tokens skipped": "masses(1,2),(3,4)(5,6),(7,8)",
    "qwen2.5-vl": '```json\n[\n\t{"bbox_2d": [1, 2, 3, 4], "label": "mass"},\n\t{"bbox_2d": [5, 6, 7, 8], '
                  '"label": "mass"}\n]\n```',
    "internvl": "<ref>masses</ref><box>[[1, 2, 3, 4], [5, 6, 7, 8]]</box>",
    "internvl, tokens skipped": "masses[[1, 2, 3, 4], [5, 6, 7, 8]]",
    "gemma3": '```json\n[{"box_2d": [1, 2, 3, 4], "label": "mass"}, {"box_2d": [5, 6, 7, 8], "label": "mass"}]\n```',
    "llava-onevision": "[[1, 2, 3, 4], [5, 6, 7, 8]]",
}


@pytest.mark.parametrize("text", NATIVE_MULTI.values(), ids=NATIVE_MULTI.keys())
def test_every_box_of_a_native_multi_box_answer(text):
    p = parse_completion(text)
    assert p.boxes == [[1, 2, 3, 4], [5, 6, 7, 8]] and not p.empty


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("template", ["r1", "chain_of_box", "medreasoner"])
def test_our_templates_teach_each_family_in_its_frame(family, template):
    """SFT teacher answers are written in the family's frame (and order) and decode to the truth."""
    size = (333, 1217)
    s = Sample(id="a", image="x.png", query="left pleural effusion", boxes=[_truth(size)],
               points=[[100.0, 500.0], [200.0, 800.0]], width=size[0], height=size[1])
    frame = get_family(family).frame()
    text = teacher_completion(resolve_template(template), s, frame, context=[("heart", [40, 300, 200, 700])])
    boxes, points = decode_answer(text, size, family)
    assert box_iou(boxes[:1], [_truth(size)])[0] > 0.99
    if template == "medreasoner":
        np.testing.assert_allclose(points, s.points, atol=0.7)
    if frame.order == "yx":  # Gemma 3 writes y first, and the prompt says so
        prompt = resolve_template(template).render("q", frame, *size)
        assert "y before x" in prompt and "between 0 and 1000" in prompt


# Answers as the sources print them (not written by our templates): the numbers are the
# family's, the expected boxes computed by hand for a 640x480 image.
OFFICIAL = [
    ("qwen2-vl", "<|object_ref_start|>the left lung<|object_ref_end|><|box_start|>(125,250),(500,750)<|box_end|>",
     [[80.0, 120.0, 320.0, 360.0]]),
    ("qwen2-vl", "the left lung(125,250),(500,750)", [[80.0, 120.0, 320.0, 360.0]]),  # tokens skipped on decode
    ("qwen2.5-vl", '```json\n[\n\t{"bbox_2d": [64, 56, 320, 168], "label": "left lung"}\n]\n```', None),
    ("qwen3-vl", '```json\n[\n\t{"bbox_2d": [125, 250, 500, 750], "label": "left lung"}\n]\n```',
     [[80.0, 120.0, 320.0, 360.0]]),
    ("internvl", "<ref>left lung</ref><box>[[125, 250, 500, 750], [600, 250, 900, 750]]</box>",
     [[80.0, 120.0, 320.0, 360.0], [384.0, 120.0, 576.0, 360.0]]),
    ("gemma3", '```json\n[\n  {"box_2d": [250, 125, 750, 500], "label": "left lung"}\n]\n```',
     [[80.0, 120.0, 320.0, 360.0]]),
    ("llava-onevision", "[0.125, 0.25, 0.5, 0.75]", [[80.0, 120.0, 320.0, 360.0]]),
]


@pytest.mark.parametrize("family, text, want", OFFICIAL, ids=[f"{f}-{i}" for i, (f, _, _) in enumerate(OFFICIAL)])
def test_answers_in_the_official_formats(family, text, want):
    size = (640, 480)
    if family == "qwen2.5-vl":  # pixels of the image Qwen2.5-VL's default processor resizes 640x480 to
        frame = get_family(family).frame()
        assert frame.size(*size) == (644.0, 476.0)
        want = map_boxes([[64, 56, 320, 168]], size, frame, PIXELS).round(2).tolist()
    assert decode_answer(text, size, family)[0] == want


def test_gemma_points_are_y_first_too():
    boxes, points = decode_answer('{"box_2d": [0, 0, 500, 1000], "points_1": [500, 250], "points_2": [250, 500]}',
                                  (200, 100), "gemma3")
    assert boxes == [[0.0, 0.0, 200.0, 50.0]] and points == [[50.0, 50.0], [100.0, 25.0]]


def test_resolve_frame_reads_frames_and_families():
    assert resolve_frame("norm1000+yx") == Frame("norm1000", order="yx") == resolve_frame("gemma3")
    assert resolve_frame("qwen2.5-vl", max_pixels=224 * 224) == Frame("qwen2.5-vl", max_pixels=224 * 224)
    assert resolve_frame(get_family("llava-onevision")).name == "norm1"
    with pytest.raises(MedgroundError, match="neither a coordinate frame .* nor a model family"):
        resolve_frame("polar")


def test_rewards_take_the_family_wherever_they_take_the_frame():
    from medground import rewards

    done = [[{"role": "assistant", "content": '<think>x</think><answer>{"box_2d": [100, 0, 500, 1000]}</answer>'}]]
    row = {"boxes": [[[0, 10, 200, 50]]], "width": [200], "height": [100]}
    for name in ("iou", "giou", "medground_r1_accuracy", "medreasoner", "chain_of_box"):
        if "family" not in rewards.spec(name).options:
            assert "frame" not in rewards.spec(name).options, name  # every frame-aware reward takes family=
            continue
        by_family = rewards.get(name, family="gemma3")
        assert by_family.frame == rewards.get(name, frame="norm1000+yx").frame == Frame("norm1000", order="yx")
    assert rewards.get("iou", soft=True, family="gemma3")(completions=done, **row) == [1.0]
    assert rewards.get("iou", soft=True, frame="norm1000")(completions=done, **row)[0] < 0.3  # read x-first: wrong
    assert rewards.get("iou", family="qwen2.5-vl", max_pixels=224 * 224).frame.max_pixels == 224 * 224
    with pytest.raises(MedgroundError, match="give one of them"):
        rewards.get("iou", family="gemma3", frame="norm1")
    with pytest.raises(MedgroundError, match="did you mean gemma3"):
        rewards.get("iou", family="gemma")


def test_evaluate_reads_foreign_completions_in_the_family_syntax(tmp_path, capsys):
    """``medground evaluate PRED --data DATA --family F``: completions only, no boxes, no frame field."""
    size = (640, 480)
    samples = [{"id": f"s{i}", "image": f"s{i}.png", "query": "left lung", "boxes": [[80, 120, 320, 360]],
                "width": size[0], "height": size[1]} for i in range(3)]
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps(s) + "\n" for s in samples))
    completions = {
        "gemma3": '```json\n[{"box_2d": [250, 125, 750, 500], "label": "left lung"}]\n```',
        "internvl": "<ref>left lung</ref><box>[[125, 250, 500, 750]]</box>",
        "qwen2-vl": "<|box_start|>(125,250),(500,750)<|box_end|>",
    }
    for family, text in completions.items():
        pred = tmp_path / f"{family}.jsonl"
        pred.write_text("".join(json.dumps({"id": s["id"], "completion": text}) + "\n" for s in samples))
        with pytest.raises(SystemExit) as done:
            main(["evaluate", str(pred), "--data", str(data), "--family", family, "--bootstrap", "0",
                  "--json", str(tmp_path / f"{family}.json")])
        assert done.value.code in (0, None)
        report = json.loads((tmp_path / f"{family}.json").read_text())
        assert report["miou"] == pytest.approx(100.0) and report["family"] == family, family
    capsys.readouterr()
    # read in another family's frame, Gemma's answer is wrong: the family matters
    with pytest.raises(SystemExit):
        main(["evaluate", str(tmp_path / "gemma3.jsonl"), "--data", str(data), "--family", "qwen3-vl",
              "--bootstrap", "0", "--json", str(tmp_path / "wrong.json")])
    assert json.loads((tmp_path / "wrong.json").read_text())["miou"] < 50
    with pytest.raises(SystemExit) as bad:
        main(["evaluate", str(tmp_path / "gemma3.jsonl"), "--data", str(data), "--family", "gemma3",
              "--frame", "norm1000"])
    assert bad.value.code == 2 and "give one of them" in capsys.readouterr().err


def test_cli_lists_the_families(capsys):
    with pytest.raises(SystemExit) as done:
        main(["model", "families", "--json"])
    assert done.value.code in (0, None)
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert sorted(rows) == FAMILIES
    assert rows["gemma3"]["frame"] == "norm1000+yx" and rows["smolvlm"]["native_template"] is None


#: what each family's chat template writes for an image (the processor expands it)
IMAGE_PLACEHOLDER = {"gemma3": "<start_of_image>", "internvl": "<IMG_CONTEXT>", "llava-onevision": "<image>",
                     "qwen2-vl": "<|image_pad|>", "qwen2.5-vl": "<|image_pad|>", "qwen3-vl": "<|image_pad|>",
                     "smolvlm": "<image>"}


@pytest.mark.parametrize("family", FAMILIES)
def test_chat_templates_place_the_system_prompt_the_image_and_the_answer(family):
    """System prompt kept (Gemma 3: folded into the first user turn), one image placeholder
    before the question, and the generation prompt a prefix of the rendered answer (what
    TRL's completion-only SFT loss relies on)."""
    from jinja2 import Environment

    tokens = get_family(family).tokens
    template = Environment().from_string(tokens.chat_template)
    prompt = [{"role": "system", "content": [{"type": "text", "text": "You are a radiologist."}]},
              {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "left effusion"}]}]
    answer = [{"role": "assistant", "content": [{"type": "text", "text": '{"bbox_2d": [1, 2, 3, 4]}'}]}]
    asked = template.render(messages=prompt, add_generation_prompt=True, bos_token=tokens.bos or "")
    full = template.render(messages=prompt + answer, add_generation_prompt=False, bos_token=tokens.bos or "")
    placeholder = IMAGE_PLACEHOLDER[family]
    assert "You are a radiologist." in asked and asked.count(placeholder) == 1
    assert asked.index("You are a radiologist.") < asked.index(placeholder) < asked.index("left effusion")
    assert full.startswith(asked) and full[len(asked):].lstrip().startswith('{"bbox_2d": [1, 2, 3, 4]}')
    assert full.rstrip().endswith(tokens.eos)  # the turn ends with the token generation stops at
