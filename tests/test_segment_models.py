"""Neural segmenters: LiteMedSAM (real shipped weights), transformers SAM / SAM 2 (tiny
random-weight checkpoints written to a temp folder; the pre/post-processing is checked
with a stand-in decoder that answers exactly the prompt it receives)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from medground.errors import MedgroundError
from medground.metrics import mask_dice
from medground.models.segmenters import get_segmenter

# ---------------------------------------------------------------- LiteMedSAM


@pytest.fixture(scope="module")
def litemedsam():
    return get_segmenter("litemedsam")


def rectangle_scene(h=90, w=150):
    img = np.full((h, w), 40, np.uint8)
    img[30:70, 50:120] = 200
    gt = img > 100
    return img, gt


def test_litemedsam_loads_weights_without_full_pickle(monkeypatch):
    import medground.models.segmenters.litemedsam as lm

    calls = []
    real = torch.load

    def spy(*args, **kwargs):
        calls.append(kwargs.get("weights_only"))
        return real(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    lm.load_lite_medsam()
    assert calls == [True]


def test_litemedsam_segments_from_box_in_original_pixels(litemedsam):
    img, gt = rectangle_scene()
    state = litemedsam.embed(img)
    masks = litemedsam.segment(state, [[45, 25, 125, 75], [0, 0, 40, 20]])
    assert masks.shape == (2, 90, 150)
    assert mask_dice(masks[0], gt)[0] > 0.9
    assert mask_dice(masks[1], gt)[0] < 0.2
    # the batched call equals one call per prompt (the cached state is reused as is)
    single = litemedsam.segment(state, [45, 25, 125, 75])
    assert (single == masks[0]).all()


def test_litemedsam_embeds_each_image_once(litemedsam, monkeypatch):
    img, _ = rectangle_scene(h=64, w=80)
    calls = []
    encoder = litemedsam.model.image_encoder
    orig = encoder.forward
    monkeypatch.setattr(encoder, "forward", lambda x: calls.append(1) or orig(x))
    for _ in range(3):
        litemedsam.segment_image(img.copy(), [[10, 10, 60, 50]] * 4)
    assert len(calls) == 1


def test_litemedsam_is_box_only_and_reports_bad_checkpoints(litemedsam, tmp_path):
    img, _ = rectangle_scene()
    with pytest.raises(MedgroundError, match="needs a box"):
        litemedsam.segment_image(img, None, [[[60, 40], [100, 60]]])
    bad = tmp_path / "x.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(MedgroundError, match="cannot read LiteMedSAM weights"):
        get_segmenter("litemedsam", checkpoint=str(bad))
    with pytest.raises(MedgroundError, match="not found"):
        get_segmenter("litemedsam", checkpoint=str(tmp_path / "missing.pth"))


def test_litemedsam_optional_point_prompts(litemedsam, monkeypatch):
    monkeypatch.setattr(litemedsam, "use_points", True)
    monkeypatch.setattr(litemedsam, "prompts", ("box", "points", "box+points"))
    img, gt = rectangle_scene()
    box_only = litemedsam.segment_image(img, [[45, 25, 125, 75]])[0]
    both = litemedsam.segment_image(img, [[45, 25, 125, 75]], [[[60, 50], [110, 50]]])[0]
    assert not (both == box_only).all()  # the points reach the model ...
    assert mask_dice(both, gt)[0] > 0.7  # ... which was trained on boxes: they do not help it
    points_only = litemedsam.segment_image(img, None, [[[60, 50], [110, 50]]])
    assert points_only.shape == (1, 90, 150)


# ---------------------------------------------------------------- transformers SAM / SAM 2


@pytest.fixture(scope="module")
def tiny_sam_dir(tmp_path_factory):
    from medground.models.segmenters.sam import save_tiny_sam

    return save_tiny_sam(tmp_path_factory.mktemp("tiny_sam"), image_size=64)


@pytest.fixture(scope="module")
def tiny_samhq_dir(tmp_path_factory):
    from medground.models.segmenters.sam import save_tiny_sam

    return save_tiny_sam(tmp_path_factory.mktemp("tiny_samhq"), image_size=64, hq=True)


@pytest.fixture(scope="module")
def tiny_sam2_dir(tmp_path_factory):
    from medground.models.segmenters.sam2 import save_tiny_sam2

    return save_tiny_sam2(tmp_path_factory.mktemp("tiny_sam2"), image_size=64)


class PromptEcho:
    """Stand-in for a SAM model's forward: low-res logits are +1 inside the prompt box
    (or the rectangle the prompt points span), in the frame of the model input, so the
    segmenter's output must reproduce the prompt in original pixels.  For points-only
    prompts it returns three masks and gives the right one the highest IoU score."""

    def __init__(self, input_size, low_res):
        self.input_size, self.low_res = input_size, low_res
        self.seen = []

    def __call__(self, image_embeddings=None, multimask_output=False, input_boxes=None, input_points=None,
                 input_labels=None, **kwargs):
        self.seen.append({"boxes": input_boxes, "points": input_points, "multimask": multimask_output})
        n = (input_boxes if input_boxes is not None else input_points).shape[1]
        ih, iw = self.input_size
        lr = self.low_res
        yy, xx = torch.meshgrid((torch.arange(lr) + 0.5) * ih / lr, (torch.arange(lr) + 0.5) * iw / lr, indexing="ij")
        masks = []
        for i in range(n):
            if input_boxes is not None:
                x1, y1, x2, y2 = input_boxes[0, i]
                inside = (xx >= x1) & (xx < x2) & (yy >= y1) & (yy < y2)
            else:  # the rectangle spanned by the points (maps exactly under per-axis scaling)
                lo, hi = input_points[0, i].min(0).values, input_points[0, i].max(0).values
                inside = (xx >= lo[0]) & (xx < hi[0]) & (yy >= lo[1]) & (yy < hi[1])
            good = inside.float() * 2 - 1
            masks.append(torch.stack([-good, good, -torch.ones_like(good)]) if multimask_output else good[None])
        iou = torch.tensor([[0.1, 0.9, 0.2]] * n) if multimask_output else torch.ones(n, 1)
        return SimpleNamespace(pred_masks=torch.stack(masks)[None], iou_scores=iou[None])


def box_mask(h, w, box):
    m = np.zeros((h, w), bool)
    x1, y1, x2, y2 = box
    m[y1:y2, x1:x2] = True
    return m


@pytest.mark.parametrize("kind", ["sam", "sam2"])
def test_sam_prompts_map_to_original_pixels(kind, tiny_sam_dir, tiny_sam2_dir):
    seg = get_segmenter(kind, checkpoint=tiny_sam_dir if kind == "sam" else tiny_sam2_dir)
    h, w = 90, 150  # not square: exercises resize, padding (SAM) and per-axis scaling (SAM 2)
    img = np.random.default_rng(0).integers(0, 255, (h, w), dtype=np.uint8)
    state = seg.embed(img)
    input_size = seg.pad if kind == "sam" else seg.square
    echo = PromptEcho(input_size, low_res=input_size[0])
    seg.model = SimpleNamespace(__call__=None)
    seg._forward = lambda st, multimask, **kw: echo(multimask_output=multimask, **kw)
    boxes = [[20, 10, 80, 60], [100, 40, 150, 90]]
    masks = seg.segment(state, boxes)
    assert masks.shape == (2, h, w)
    for b, m in zip(boxes, masks):
        assert mask_dice(m, box_mask(h, w, b))[0] > 0.95
    assert echo.seen[-1]["multimask"] is False
    # points only: three candidate masks, the one with the best predicted IoU is kept
    spanned = seg.segment(state, None, [[[40, 20], [100, 70]]])[0]
    assert echo.seen[-1]["multimask"] is True
    assert mask_dice(spanned, box_mask(h, w, [40, 20, 100, 70]))[0] > 0.9


@pytest.mark.parametrize("kind", ["sam", "sam_hq", "sam2"])
def test_tiny_sam_checkpoints_run_end_to_end(kind, tiny_sam_dir, tiny_samhq_dir, tiny_sam2_dir):
    path = {"sam": tiny_sam_dir, "sam_hq": tiny_samhq_dir, "sam2": tiny_sam2_dir}[kind]
    seg = get_segmenter("sam2" if kind == "sam2" else "sam", checkpoint=path)
    assert seg.model_type == kind
    img = np.random.default_rng(1).integers(0, 255, (40, 70, 3), dtype=np.uint8)
    a = seg.segment_image(img, [[5, 5, 30, 30], [10, 0, 70, 40]], [[[10, 10], [20, 20]], None])
    b = seg.segment_image(img, [[5, 5, 30, 30], [10, 0, 70, 40]], [[[10, 10], [20, 20]], None])
    assert a.shape == (2, 40, 70) and a.dtype == bool
    assert (a == b).all() and len(seg.cache) == 1 and seg.cache.hits == 1


@pytest.mark.parametrize("kind", ["sam", "sam2", "litemedsam"])
def test_neural_segmenter_pickles_and_reloads_its_weights(kind, tiny_sam_dir, tiny_sam2_dir, litemedsam):
    import pickle

    seg = litemedsam if kind == "litemedsam" else get_segmenter(kind, checkpoint={"sam": tiny_sam_dir, "sam2": tiny_sam2_dir}[kind])
    img, _ = rectangle_scene(h=48, w=64)
    masks = seg.segment_image(img, [[10, 8, 50, 40]])
    data = pickle.dumps(seg)
    assert len(data) < 2000  # the constructor arguments, not the weights
    copy = pickle.loads(data)
    assert copy.model is not seg.model and len(copy.cache) == 0
    assert (copy.segment_image(img, [[10, 8, 50, 40]]) == masks).all()


def test_sam_checkpoint_errors(tmp_path, tiny_sam_dir, tiny_sam2_dir):
    with pytest.raises(MedgroundError, match="needs checkpoint"):
        get_segmenter("sam")
    with pytest.raises(MedgroundError, match="checkpoint folder not found"):
        get_segmenter("sam", checkpoint=str(tmp_path / "nope"))
    with pytest.raises(MedgroundError, match="model_type 'sam2' is not one of sam, sam_hq"):
        get_segmenter("sam", checkpoint=tiny_sam2_dir)
    with pytest.raises(MedgroundError, match="is not one of sam2"):
        get_segmenter("sam2", checkpoint=tiny_sam_dir)
