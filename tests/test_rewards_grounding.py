"""format / iou / giou / chain_of_box and the reward-hack guards."""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from medground import rewards  # noqa: E402
from medground.errors import MedgroundError  # noqa: E402
from medground.geometry import smart_resize  # noqa: E402


def ans(box, think="the region", extra=""):
    return f"<think>{think}</think><answer>{{\"bbox_2d\": {list(box)}}}{extra}</answer>"


def call(f, completions, **columns):
    n = len(completions)
    columns = {k: (v if isinstance(v, list) and len(v) == n else [v] * n) for k, v in columns.items()}
    return f(prompts=["p"] * n, completions=completions, completion_ids=[[0]] * n, **columns)


# --------------------------------------------------------------------------- format


def test_format_requires_think_answer_and_a_box():
    f = rewards.get("format")
    texts = [
        ans([1, 2, 3, 4]),
        "  <think>x</think>\n<answer>[1.5, 2, 3, 4]</answer>\n",  # whitespace + float box: fine
        "<think>x</think><answer>no box here</answer>",
        "<answer>[1, 2, 3, 4]</answer>",  # no think
        "<think>x</think>",  # truncated
        "preamble <think>x</think><answer>[1, 2, 3, 4]</answer>",  # text outside the tags
    ]
    assert call(f, texts) == [1.0, 1.0, 0.0, 0.0, 0.0, 0.0]
    no_think = rewards.get("format", require_think=False)
    assert call(no_think, texts[:4]) == [1.0, 1.0, 0.0, 1.0]
    assert call(no_think, ["text <answer>[1, 2, 3, 4]</answer>", "<answer>[1, 2, 3, 4]</answer> more"]) == [0.0, 0.0]


# --------------------------------------------------------------------------- iou


GT = [[100.0, 100.0, 200.0, 200.0]]


def test_iou_binary_threshold_is_strict_and_soft_gives_the_iou():
    hard, soft = rewards.get("iou"), rewards.get("iou", soft=True)
    half = [100, 100, 200, 150]  # IoU exactly 0.5
    texts = [ans(GT[0]), ans(half), ans([100, 100, 200, 160]), ans([300, 300, 400, 400]), "nothing"]
    assert call(hard, texts, boxes=[GT]) == [1.0, 0.0, 1.0, 0.0, 0.0]
    assert call(soft, texts, boxes=[GT]) == pytest.approx([1.0, 0.5, 0.6, 0.0, 0.0])
    assert call(rewards.get("iou", threshold=0.7), texts[2:3], boxes=[GT]) == [0.0]


def test_iou_no_ground_truth_is_not_applicable():
    assert call(rewards.get("iou"), [ans(GT[0])], boxes=[[]]) == [None]


def test_iou_maps_each_frame_to_original_pixels():
    W, H = 1000, 700
    image = Image.new("RGB", (W, H))
    gt = [[600.0, 420.0, 800.0, 630.0]]
    rh, rw = smart_resize(H, W)
    assert (rw, rh) != (W, H)
    qwen = [600 * rw / W, 420 * rh / H, 800 * rw / W, 630 * rh / H]
    cases = {
        "pixels": gt[0],
        "norm1000": [600, 600, 800, 900],
        "norm1": [0.6, 0.6, 0.8, 0.9],
        "qwen2.5-vl": qwen,
    }
    for frame, box in cases.items():
        f = rewards.get("iou", frame=frame, soft=True)
        assert call(f, [ans(box)], boxes=[gt], image=[image]) == pytest.approx([1.0], abs=1e-9), frame
        # the size can come from width/height columns instead of the image
        assert call(f, [ans(box)], boxes=[gt], width=W, height=H) == pytest.approx([1.0], abs=1e-9), frame
    # the same answers read in the wrong frame miss
    assert call(rewards.get("iou"), [ans(cases["norm1"])], boxes=[gt], image=[image]) == [0.0]
    assert call(rewards.get("iou", frame="norm1000"), [ans(gt[0])], boxes=[gt], image=[image]) == [0.0]


def test_qwen_frame_respects_max_pixels_option():
    W = H = 1000
    rh, rw = smart_resize(H, W, max_pixels=256 * 28 * 28)
    assert rw < W  # the resize is real
    gt = [[100.0, 100.0, 500.0, 500.0]]
    box = [100 * rw / W, 100 * rh / H, 500 * rw / W, 500 * rh / H]
    f = rewards.get("iou", frame="qwen2.5-vl", max_pixels=256 * 28 * 28, soft=True)
    assert call(f, [ans(box)], boxes=[gt], width=W, height=H) == pytest.approx([1.0])


def test_stored_image_smaller_than_original_is_rescaled_to_original_pixels():
    # the dataset stored a 500x350 copy of a 1000x700 original; boxes are original pixels
    small = Image.new("RGB", (500, 350))
    gt = [[100.0, 70.0, 300.0, 280.0]]
    f = rewards.get("iou", frame="pixels", soft=True)
    answer_in_small = [50, 35, 150, 140]
    assert call(f, [ans(answer_in_small)], boxes=[gt], image=[small], width=1000, height=700) == pytest.approx([1.0])


def test_frame_needing_a_size_without_one_is_a_clear_error():
    with pytest.raises(MedgroundError, match="frame 'norm1000' needs the image size"):
        call(rewards.get("iou", frame="norm1000"), [ans([0, 0, 10, 10])], boxes=[GT], id="s1")


def test_iou_several_targets_match_first_k_boxes_one_to_one():
    gt = [[0, 0, 10, 10], [20, 20, 30, 30]]
    f = rewards.get("iou")
    both = '<answer>[{"bbox_2d": [20, 20, 30, 30]}, {"bbox_2d": [0, 0, 10, 10]}]</answer>'
    one = '<answer>[0, 0, 10, 10]</answer>'
    same_twice = '<answer>[[0, 0, 10, 10], [0, 0, 10, 10]]</answer>'
    assert call(f, [both, one, same_twice], boxes=[gt]) == [1.0, 0.5, 0.5]
    # one target: only the first answer box counts, spraying boxes does not help
    spray = "<answer>[[300, 300, 400, 400], [100, 100, 200, 200]]</answer>"
    assert call(f, [spray], boxes=[GT]) == [0.0]


def test_iou_vlm_r1_variant_is_the_inclusive_pixel_iou():
    f = rewards.get("iou", soft=True, variant="vlm-r1")
    # inter (x: 10..19 -> 10 px, y: 10..19) = 100 inclusive px; union 100 + 100 - 100 = 100 -> 1.0
    assert call(f, [ans([10, 10, 20, 20])], boxes=[[[10, 10, 20, 20]]]) == [1.0]
    # standard IoU of [0,0,10,10] with [5,0,15,10] = 1/3; inclusive: (9-5+1)*(9-0+1)=50 -> 50/150
    assert call(f, [ans([0, 0, 10, 10])], boxes=[[[5, 0, 15, 10]]]) == pytest.approx([1 / 3])
    with pytest.raises(MedgroundError):
        rewards.get("iou", variant="bogus")


# --------------------------------------------------------------------------- giou


def test_giou_is_mapped_to_unit_interval_and_unparseable_is_lowest():
    f = rewards.get("giou")
    far = ans([900, 900, 1000, 1000])
    out = call(f, [ans(GT[0]), far, "garbage"], boxes=[GT])
    assert out[0] == pytest.approx(1.0)
    assert 0.0 < out[1] < 0.5  # no overlap: GIoU < 0 -> below 0.5, still above unparseable
    assert out[2] == 0.0


# --------------------------------------------------------------------------- chain of box


def test_chain_of_box_last_cited_box_must_agree_with_the_answer():
    f = rewards.get("chain_of_box")
    image = Image.new("RGB", (400, 400))
    settled = "<think>first [0, 0, 50, 50], then I settle on [100, 100, 200, 200]</think>"
    cases = [
        settled + "<answer>[100, 100, 200, 200]</answer>",  # agrees with the last cited: 1
        "<think>looked at [100, 100, 200, 200] but then [0, 0, 50, 50]</think><answer>[100, 100, 200, 200]</answer>",
        "<think>no coordinates in the reasoning</think><answer>[100, 100, 200, 200]</answer>",
        "<think>outside [300, 300, 500, 500]</think><answer>[300, 300, 500, 500]</answer>",  # out of frame
        "<think>inverted [200, 200, 100, 100]</think><answer>[100, 100, 200, 200]</answer>",  # malformed
        settled + "<answer>none</answer>",
    ]
    assert call(f, cases, image=[image]) == [1.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    soft = rewards.get("chain_of_box", soft=True, agree_iou=0.3)
    partial = settled + "<answer>[100, 100, 200, 150]</answer>"
    assert call(soft, [partial], image=[image]) == pytest.approx([0.5])


def test_chain_of_box_in_frame_check_uses_the_policy_frame():
    f = rewards.get("chain_of_box", frame="norm1000")
    text = "<think>at [100, 100, 900, 900]</think><answer>[100, 100, 900, 900]</answer>"
    assert call(f, [text], width=50, height=40) == [1.0]  # in 0..1000 although the image is 50x40
    over = "<think>at [100, 100, 1100, 900]</think><answer>[100, 100, 1100, 900]</answer>"
    assert call(f, [over], width=50, height=40) == [0.0]


# --------------------------------------------------------------------------- guards


def test_guard_whole_image_box():
    image = Image.new("RGB", (200, 200))
    whole = ans([0, 0, 200, 200])
    small_gt = [[50.0, 50.0, 150.0, 150.0]]  # 25 % of the image, IoU(whole, gt) = 0.25
    soft = rewards.get("iou", soft=True)
    guarded = rewards.get("iou", soft=True, max_area_frac=0.8)
    assert call(soft, [whole], boxes=[small_gt], image=[image]) == pytest.approx([0.25])
    assert call(guarded, [whole], boxes=[small_gt], image=[image]) == [0.0]
    # a true box that is itself large keeps the large answer legal
    big_gt = [[0.0, 0.0, 190.0, 200.0]]
    assert call(guarded, [whole], boxes=[big_gt], image=[image])[0] > 0.9
    # and an ordinary answer is untouched
    assert call(guarded, [ans(small_gt[0])], boxes=[small_gt], image=[image]) == [1.0]


def test_guard_empty_or_duplicated_answer():
    plain, guarded = rewards.get("iou"), rewards.get("iou", single_answer=True)
    dup_blocks = ans(GT[0]) + "<answer>[100, 100, 200, 200]</answer>"
    dup_box = "<think>x</think><answer>[100, 100, 200, 200], [100, 100, 200, 200]</answer>"
    empty = "<think>[100, 100, 200, 200]</think><answer> </answer>"
    good = ans(GT[0])
    assert call(plain, [dup_blocks, dup_box, good], boxes=[GT]) == [1.0, 1.0, 1.0]
    assert call(guarded, [dup_blocks, dup_box, empty, good], boxes=[GT]) == [0.0, 0.0, 0.0, 1.0]


def test_guard_many_boxes_where_one_is_asked():
    many = "<answer>[[100, 100, 200, 200], [0, 0, 50, 50], [300, 300, 350, 350]]</answer>"
    assert call(rewards.get("iou"), [many], boxes=[GT]) == [1.0]
    assert call(rewards.get("iou", max_boxes="gt"), [many], boxes=[GT]) == [0.0]
    assert call(rewards.get("iou", max_boxes=3), [many], boxes=[GT]) == [1.0]
    two_gt = [[100, 100, 200, 200], [0, 0, 50, 50]]
    two = "<answer>[[100, 100, 200, 200], [0, 0, 50, 50]]</answer>"
    assert call(rewards.get("iou", max_boxes="gt"), [two], boxes=[two_gt]) == [1.0]


def test_guards_apply_to_giou_and_chain_of_box_too():
    image = Image.new("RGB", (200, 200))
    whole = "<think>all of it [0, 0, 200, 200]</think><answer>[0, 0, 200, 200]</answer>"
    gt = [[50.0, 50.0, 100.0, 100.0]]
    assert call(rewards.get("giou"), [whole], boxes=[gt], image=[image])[0] > 0
    assert call(rewards.get("giou", max_area_frac=0.5), [whole], boxes=[gt], image=[image]) == [0.0]
    assert call(rewards.get("chain_of_box"), [whole], boxes=[gt], image=[image]) == [1.0]
    assert call(rewards.get("chain_of_box", max_area_frac=0.5), [whole], boxes=[gt], image=[image]) == [0.0]


def test_guard_option_values_are_checked():
    with pytest.raises(MedgroundError, match="max_area_frac"):
        rewards.get("iou", max_area_frac=1.5)
    with pytest.raises(MedgroundError, match="max_boxes"):
        rewards.get("iou", max_boxes="many")


# --------------------------------------------------------------------------- logging and robustness


def test_sub_components_go_to_log_metric():
    logged = {}
    f = rewards.get("format")
    f(completions=[ans([1, 2, 3, 4]), "x"], log_metric=lambda k, v: logged.__setitem__(k, v))
    assert logged == {"format/has_think": 0.5, "format/has_answer": 0.5, "format/well_formed": 0.5, "format/has_box": 0.5}
    logged.clear()
    rewards.get("chain_of_box")(completions=["<think>[1, 1, 5, 5]</think><answer>[1, 1, 5, 5]</answer>"],
                                log_metric=lambda k, v: logged.__setitem__(k, v))
    assert logged == {"chain_of_box/cites_box": 1.0, "chain_of_box/agreement": 1.0}


ANY_TEXT = st.one_of(
    st.text(max_size=300),
    st.lists(st.sampled_from(["<think>", "</think>", "<answer>", "</answer>", "[", "]", "{", "}", ",", "1", "-2.5",
                              "1e308", "nan", "inf", "\"bbox_2d\":", " ", "'", "9" * 40]), max_size=60).map("".join),
)


@settings(max_examples=150, deadline=None)
@given(ANY_TEXT)
def test_rewards_never_raise_on_any_completion_text(text):
    image = Image.new("RGB", (64, 48))
    columns = dict(boxes=[[[4.0, 4.0, 30.0, 30.0]]], image=[image], width=[64], height=[48], id=["s"], query=["q"])
    for name, opts in [("format", {}), ("iou", {"frame": "qwen2.5-vl"}), ("iou", {"soft": True, "frame": "norm1000"}),
                       ("giou", {"frame": "norm1"}), ("chain_of_box", {"frame": "norm1000", "max_area_frac": 0.5}),
                       ("iou", {"single_answer": True, "max_boxes": "gt", "max_area_frac": 0.9}),
                       ("medground_r1_accuracy", {}), ("medground_r1_format", {})]:
        f = rewards.get(name, **opts)
        for completion in (text, [{"role": "assistant", "content": text}]):
            out = f(prompts=["p"], completions=[completion], completion_ids=[[1]], **columns)
            assert len(out) == 1 and isinstance(out[0], float) and np.isfinite(out[0]), (name, text, out)
