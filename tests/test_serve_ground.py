"""The Ground tab's logic without a page (medground.serve.ground): the greedy answer is
``medground predict``'s, sampled answers agree or not, DICOM / NIfTI views follow the
window and slice, and the answer maps the model's frame to original pixels."""

from __future__ import annotations

import os

import numpy as np
import pytest
from nibabel.testing import data_path as NIB_DATA
from PIL import Image
from pydicom.data import get_testdata_file

from medground import predict as predict_mod
from medground.errors import MedgroundError
from medground.models.policy import load_policy
from medground.models.tiny import build_tiny_model
from medground.predict import decode_answer, predict_image
from medground.serve.ground import Grounder, box_agreement

CT = get_testdata_file("CT_small.dcm")
ANAT = os.path.join(NIB_DATA, "anatomical.nii")


@pytest.fixture(scope="module")
def policy(tmp_path_factory):
    return load_policy(build_tiny_model(tmp_path_factory.mktemp("ckpt") / "tiny", seed=0), device="cpu")


@pytest.fixture
def grounder(policy, tmp_path):
    return Grounder(policy, None, max_new_tokens=8, workdir=tmp_path / "work")


@pytest.fixture
def cxr(tmp_path):
    from medground.data.phantom import render_phantom

    p = tmp_path / "cxr.png"
    Image.fromarray(render_phantom(0, 0, size=256).image).save(p)
    return p


def test_the_greedy_answer_is_medground_predicts(grounder, policy, cxr):
    got = grounder.ground(cxr, "  left pleural effusion ")
    want = predict_image(policy, cxr, "left pleural effusion", max_new_tokens=8)
    for key in ("completion", "boxes", "points", "frame", "error"):
        assert got.answer[key] == want[key]
    assert got.answer["query"] == "left pleural effusion" and got.answer["template"] == "r1"
    assert got.answer["image"] == {"name": "cxr.png", "format": "png", "width": 256, "height": 256, "window": None,
                                   "window_source": None}
    assert got.overlay.mode == "RGB" and got.overlay.width >= 512


def test_an_answer_is_mapped_to_original_pixels_and_drawn(grounder, policy, cxr, monkeypatch):
    text = '<think>the fluid sits low on the right of the image</think><answer>{"bbox_2d": [150, 140, 200, 210], ' \
           '"points_1": [160, 150], "points_2": [190, 200]}</answer>'
    monkeypatch.setattr(predict_mod, "generate_batch", lambda pol, images, prompts, max_new_tokens=128: [text])
    res = grounder.ground(cxr, "left pleural effusion")
    boxes, points = decode_answer(text, (256, 256), policy.frame)
    assert res.answer["boxes"] == boxes and res.answer["points"] == points
    assert boxes[0] != [150, 140, 200, 210]  # 256 px shown to the model as 224 px: the frame is applied
    assert res.answer["reasoning"] == "the fluid sits low on the right of the image"
    plain = Grounder(policy, None, max_new_tokens=8).view(cxr).image
    drawn = np.asarray(res.overlay.resize(plain.size))
    assert (np.abs(drawn.astype(int) - np.asarray(plain).astype(int)).sum(axis=2) > 60).any()  # orange box drawn


def test_sampled_answers_report_their_agreement(grounder, policy, cxr, monkeypatch):
    answers = ['<answer>{"bbox_2d": [10, 10, 60, 60]}</answer>', '<answer>{"bbox_2d": [12, 12, 60, 60]}</answer>',
               '<answer>{"bbox_2d": [150, 150, 200, 200]}</answer>', 'no box here']
    seen = {}

    def fake(pol, images, prompts, max_new_tokens=128, num_samples=1, temperature=1.0):
        seen.update(n=num_samples, t=temperature, prompts=len(prompts))
        return answers[:num_samples]

    monkeypatch.setattr(predict_mod, "generate_batch", fake)
    res = grounder.ground(cxr, "nodule", samples=4, temperature=0.7, seed=3)
    assert seen == {"n": 4, "t": 0.7, "prompts": 1}
    a = res.answer["agreement"]
    assert (a["n"], a["n_with_box"], a["consensus"], a["agree"], a["temperature"], a["seed"]) == (4, 3, 0, 0.5, 0.7, 3)
    assert res.answer["completion"] == answers[0] and len(res.answer["samples"]) == 4
    assert res.answer["samples"][3]["boxes"] == []
    assert res.answer["boxes"] == decode_answer(answers[0], (256, 256), policy.frame)[0]


def test_real_sampling_draws_n_completions(grounder, cxr):
    res = grounder.ground(cxr, "cardiomegaly", samples=3, temperature=1.5, seed=0)
    again = grounder.ground(cxr, "cardiomegaly", samples=3, temperature=1.5, seed=0)
    assert len(res.answer["samples"]) == 3
    assert [s["completion"] for s in res.answer["samples"]] == [s["completion"] for s in again.answer["samples"]]


def test_dicom_windows_and_nifti_slices(grounder):
    auto = grounder.view(CT)
    lung = grounder.view(CT, window="lung")
    assert auto.format == "dicom" and auto.meta["window_source"] in ("file", "minmax")
    assert lung.meta["window"] == [-600.0, 1500.0]
    assert not np.array_equal(np.asarray(auto.image), np.asarray(lung.image))
    middle = grounder.view(ANAT)
    first = grounder.view(ANAT, slice_index=0)
    coronal = grounder.view(ANAT, axis="coronal")
    assert middle.n_slices == first.n_slices and middle.meta["slice_index"] == middle.n_slices // 2
    assert first.meta["slice_index"] == 0 and not np.array_equal(np.asarray(middle.image), np.asarray(first.image))
    assert coronal.meta["plane"] == "coronal"
    res = grounder.ground(ANAT, "ventricles", slice_index=3)
    assert res.answer["image"]["slice"] == 3 and res.answer["image"]["format"] == "nifti"
    with pytest.raises(MedgroundError, match="slice 99 out of range"):
        grounder.view(ANAT, slice_index=99)


def test_bad_requests_are_clear(grounder, cxr):
    with pytest.raises(MedgroundError, match="type a phrase"):
        grounder.ground(cxr, "   ")
    with pytest.raises(MedgroundError, match="samples must be between 1 and 16"):
        grounder.ground(cxr, "x", samples=40)
    with pytest.raises(MedgroundError, match="template"):
        grounder.ground(cxr, "x", template="no-such-template")


def test_box_agreement():
    same = box_agreement([[0, 0, 10, 10]] * 3)
    assert same == {"n": 3, "n_with_box": 3, "consensus": 0, "mean_iou": 1.0, "agree": 1.0}
    assert box_agreement([None, None]) == {"n": 2, "n_with_box": 0, "consensus": 0, "mean_iou": 0.0, "agree": 0.0}
    assert box_agreement([[0, 0, 1, 1]])["agree"] == 1.0
    # the middle box overlaps both others: it is the consensus
    mid = box_agreement([[0, 0, 10, 10], [5, 0, 15, 10], [10, 0, 20, 10]])
    assert mid["consensus"] == 1 and mid["agree"] == pytest.approx(1 / 3, abs=1e-3)


def test_sampled_boxes_are_drawn_faintly():
    from medground.overlay import PRED, draw_overlay

    img = np.zeros((64, 64), np.uint8)
    plain = np.asarray(draw_overlay(img, pred_box=[10, 10, 30, 30]))
    faint = np.asarray(draw_overlay(img, pred_box=[10, 10, 30, 30], sample_boxes=[[40, 40, 60, 60]]))
    assert faint.shape[0] > plain.shape[0]  # one more legend line: "1 sampled boxes (faint)"
    edge = faint[40 * 8, 50 * 8]  # the sampled box's top edge (64 px drawn at 512 px)
    assert plain[40 * 8, 50 * 8].tolist() == [0, 0, 0]
    assert 0 < edge[0] < PRED[0] and (edge > 0).any()  # orange, blended with the black image
