import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medground.geometry import (
    PIXELS,
    Frame,
    box_area,
    clip_boxes,
    convert_boxes,
    map_boxes,
    map_points,
    smart_resize,
    valid_boxes,
)

FRAMES = [
    Frame.parse("pixels"),
    Frame.parse("qwen2.5-vl"),
    Frame("qwen2.5-vl", min_pixels=3136, max_pixels=224 * 224),
    Frame.parse("norm1"),
    Frame.parse("norm1000"),
    Frame.parse("fixed:640"),
    Frame.parse("fixed:640x480"),
    Frame.parse("norm1000+yx"),
    Frame.parse("norm1+square"),
    Frame.parse("qwen2.5-vl+square+yx"),
]
SIZES = [(512, 512), (1000, 700), (333, 1217), (3000, 2500), (57, 29)]


@pytest.mark.parametrize("src,dst", list(itertools.product(FRAMES, FRAMES)), ids=lambda f: f.name)
@pytest.mark.parametrize("size", SIZES)
def test_every_frame_pair_round_trips(src, dst, size):
    rng = np.random.default_rng(0)
    w, h = size
    boxes = np.sort(rng.uniform(0, 1, (5, 2, 2)), axis=1).reshape(5, 4)[:, [0, 2, 1, 3]] * [w, h, w, h]
    in_src = map_boxes(boxes, size, PIXELS, src)
    there = map_boxes(in_src, size, src, dst)
    back = map_boxes(there, size, dst, src)
    np.testing.assert_allclose(back, in_src, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(map_boxes(there, size, dst, PIXELS), boxes, rtol=1e-9, atol=1e-6)
    pts = boxes.reshape(5, 2, 2)
    np.testing.assert_allclose(map_points(map_points(pts, size, PIXELS, dst), size, dst, PIXELS), pts, atol=1e-6)


def test_qwen_frame_is_the_smart_resized_image():
    # 1000x700 original: the model sees a 700x1008 (w x h) image and answers in it.
    frame = Frame.parse("qwen2.5-vl")
    assert frame.size(700, 1000) == (700.0, 1008.0)
    np.testing.assert_allclose(map_boxes([[0, 0, 700, 1000]], (700, 1000), PIXELS, frame), [[0, 0, 700, 1008]])
    np.testing.assert_allclose(map_boxes([[0, 0, 500, 500]], (700, 1000), "norm1000", PIXELS), [[0, 0, 350, 500]])


@settings(max_examples=300, deadline=None)
@given(st.integers(10, 5000), st.integers(10, 5000), st.integers(56 * 56, 28 * 28 * 4096))
def test_smart_resize_matches_transformers(h, w, max_pixels):
    ref = pytest.importorskip("transformers.models.qwen2_vl.image_processing_qwen2_vl")
    if max(h, w) / min(h, w) > 200:
        return
    max_pixels = max(max_pixels, 56 * 56)
    ours = smart_resize(h, w, 28, 56 * 56, max_pixels)
    assert ours == tuple(ref.smart_resize(h, w, factor=28, min_pixels=56 * 56, max_pixels=max_pixels))
    assert ours[0] % 28 == 0 and ours[1] % 28 == 0


@pytest.mark.parametrize("fmt", ["xywh", "cxcywh"])
def test_box_formats_round_trip(fmt):
    b = np.array([[10.5, 20, 30, 60.25], [0, 0, 1, 1]])
    np.testing.assert_allclose(convert_boxes(convert_boxes(b, "xyxy", fmt), fmt, "xyxy"), b)


def test_box_formats_match_torchvision():
    import torch
    from torchvision.ops import box_convert

    b = np.array([[10.5, 20, 30, 60.25], [3, 4, 8, 9]])
    for fmt in ("xywh", "cxcywh"):
        ref = box_convert(torch.tensor(b), "xyxy", fmt).numpy()
        np.testing.assert_allclose(convert_boxes(b, "xyxy", fmt), ref)


def test_unknown_frame_and_format_are_rejected():
    with pytest.raises(ValueError, match="unknown coordinate frame"):
        Frame.parse("degrees")
    with pytest.raises(ValueError, match="box format"):
        convert_boxes([[0, 0, 1, 1]], "xyxy", "yxyx")


def test_clip_area_validity():
    b = [[-5, -5, 20, 20], [10, 10, 5, 20], [np.nan, 0, 1, 1], [0, 0, 100, 50]]
    np.testing.assert_allclose(clip_boxes(b[:1], 10, 10), [[0, 0, 10, 10]])
    np.testing.assert_allclose(box_area(b), [625, 0, 0, 5000])
    assert valid_boxes(b).tolist() == [True, False, False, True]
    assert valid_boxes(b, 100, 40).tolist() == [False, False, False, False]


# --------------------------------------------------------------------------- modifiers: +yx, +square


def test_yx_frames_write_y_first_boxes_and_points():
    """Gemma 3 / MedGemma's box_2d is [y0, x0, y1, x1] in 0-1000, points [y, x]."""
    size = (200, 100)
    yx = Frame.parse("norm1000+yx")
    assert yx == Frame("norm1000", order="yx") and yx.name == "norm1000+yx" and Frame.parse(yx.name) == yx
    np.testing.assert_allclose(map_boxes([[20, 10, 100, 60]], size, PIXELS, yx), [[100, 100, 600, 500]])
    np.testing.assert_allclose(map_boxes([[100, 100, 600, 500]], size, yx, PIXELS), [[20, 10, 100, 60]])
    np.testing.assert_allclose(map_points([[20, 10]], size, PIXELS, yx), [[100, 100]])
    # from one y-first frame to another keeps y first; to an x-first frame swaps
    np.testing.assert_allclose(map_boxes([[100, 100, 600, 500]], size, yx, "norm1+yx"), [[0.1, 0.1, 0.6, 0.5]])
    np.testing.assert_allclose(map_boxes([[100, 100, 600, 500]], size, yx, "norm1000"), [[100, 100, 500, 600]])
    assert "y before x" in yx.describe(*size) and "[y1, x1, y2, x2]" in yx.describe(*size)


@pytest.mark.parametrize("size", [(300, 200), (200, 300), (301, 200), (57, 29)])
def test_square_frames_match_llava_padding(size):
    """``+square``: relative to the image padded to a centred square, pasted where transformers'
    LlavaOnevisionImageProcessor.pad_to_square pastes it."""
    import torch
    from transformers import LlavaOnevisionImageProcessor

    w, h = size
    box = [w // 4, h // 3, w // 2, h - 2]
    img = torch.zeros(3, h, w)
    img[:, box[1]:box[3], box[0]:box[2]] = 1.0
    padded = LlavaOnevisionImageProcessor().pad_to_square(img, background_color=0)
    side = padded.shape[-1]
    ys, xs = torch.nonzero(padded[0] > 0.5, as_tuple=True)
    where = [xs.min().item() / side, ys.min().item() / side, (xs.max().item() + 1) / side, (ys.max().item() + 1) / side]
    np.testing.assert_allclose(map_boxes([box], size, PIXELS, "norm1+square")[0], where, atol=1e-9)
    np.testing.assert_allclose(map_boxes([where], size, "norm1+square", PIXELS)[0], box, atol=1e-9)
    assert Frame.parse("norm1+square").size(w, h) == (1.0, 1.0)
    assert "padded to a centred square" in Frame.parse("norm1+square").describe(w, h)


def test_frame_modifiers_are_checked():
    with pytest.raises(ValueError, match="unknown frame modifier"):
        Frame.parse("norm1000+xy+flip")
    with pytest.raises(ValueError, match="canonical frame and takes no modifier"):
        Frame.parse("pixels+yx")
    with pytest.raises(ValueError, match="coordinate order"):
        Frame("norm1000", order="zx")
    assert Frame.parse("fixed:640x480+square").name == "fixed:640x480+square"
    assert Frame.parse(" NORM1000+YX ") == Frame("norm1000", order="yx")
