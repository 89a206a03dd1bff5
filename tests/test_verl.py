"""The verl adapter: MedReasoner's keys and values, modes, loading the way verl does."""

import importlib.util
import json
import math
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import medground.integrations.verl as verl_adapter
from medground.errors import MedgroundError
from medground.integrations.verl import compute_score

GT = json.dumps({"bbox_2d": [0, 0, 100, 100], "point_2d": [[25, 50], [75, 50]]})
KEYS = [
    "score",
    "format_think",
    "format_seg",
    "bbox_iou",
    "points_dice",
    "bbox_align",
    "bbox_scale",
    "points_align",
    "points_angle",
    "bbox_position_valid",
    "bbox_area_valid",
    "points_position_valid",
    "points_spread_valid",
]
TEXT = '<think>t</think><answer>{"bbox": [0, 0, 100, 50], "points_1": [25, 25], "points_2": [75, 25]}</answer>'
# MedReasoner's own compute_score(TEXT, GT, mode) (PRIS-CV/MedReasoner@558cc78,
# verl/utils/reward_score/med_grounding.py), computed in a throwaway script outside the repo.
REF_SOFT = {
    "score": 3.3267,
    "format_think": 1.0,
    "format_seg": 1.0,
    "bbox_iou": 0.6428,
    "points_dice": 0.6839,
    "bbox_align": 0.0,
    "bbox_scale": 0.0,
    "points_align": 0.0,
    "points_angle": 0.0,
    "bbox_position_valid": 1.0,
    "bbox_area_valid": 0.5,
    "points_position_valid": 1.0,
    "points_spread_valid": 1.0,
}
REF_HARD = {
    "score": 6.5046,
    "format_think": 1.0,
    "format_seg": 1.0,
    "bbox_iou": 0.6428,
    "points_dice": 0.6839,
    "bbox_align": 0.9126,
    "bbox_scale": 0.2787,
    "points_align": 0.9866,
    "points_angle": 1.0,
    "bbox_position_valid": 1.0,
    "bbox_area_valid": 0.5,
    "points_position_valid": 1.0,
    "points_spread_valid": 1.0,
}


def test_default_is_soft_with_medreasoner_keys_and_values():
    got = compute_score("umrg", TEXT, GT)
    assert list(got) == KEYS
    assert got == REF_SOFT


def test_reward_mode_from_extra_info_and_from_reward_kwargs():
    assert compute_score("umrg", TEXT, GT, {"reward_mode": "hard", "index": 3}) == REF_HARD
    assert compute_score("umrg", TEXT, GT, None, reward_mode="hard") == REF_HARD
    # a per-sample mode wins over the run's default
    assert compute_score("umrg", TEXT, GT, {"reward_mode": "soft"}, reward_mode="hard") == REF_SOFT
    assert compute_score("any_source", TEXT, GT, {"split": "train"}) == REF_SOFT  # data_source unused


def test_extra_keyword_arguments_from_newer_verl_are_ignored():
    assert (
        compute_score(
            data_source="umrg",
            solution_str=TEXT,
            ground_truth=GT,
            extra_info={},
            sandbox_fusion_url=None,
            memory_limit_mb=1024,
        )
        == REF_SOFT
    )


def test_ground_truth_may_be_a_dict_or_bytes():
    assert compute_score("umrg", TEXT, json.loads(GT)) == REF_SOFT
    assert compute_score("umrg", TEXT, GT.encode()) == REF_SOFT


@pytest.mark.parametrize(
    "ground_truth, message",
    [
        ("{not json", "not valid JSON"),
        (json.dumps({"bbox_2d": [0, 0, 100, 100]}), "point_2d"),
        (json.dumps({"bbox_2d": [0, 0, 100], "point_2d": [[1, 2], [3, 4]]}), "4 finite numbers"),
        (json.dumps({"bbox_2d": [0, 0, 100, 100], "point_2d": [[1, 2]]}), r"\[\[x, y\], \[x, y\]\]"),
        ('{"bbox_2d": [0, 0, NaN, 100], "point_2d": [[1, 2], [3, 4]]}', "finite"),
    ],
)
def test_malformed_ground_truth_is_a_clear_error(ground_truth, message):
    with pytest.raises(MedgroundError, match=message) as info:
        compute_score("umrg", TEXT, ground_truth, {"index": 17})
    assert "index=17" in str(info.value)


def test_unknown_mode_is_a_clear_error():
    with pytest.raises(MedgroundError, match="reward_mode"):
        compute_score("umrg", TEXT, GT, {"reward_mode": "base"})


def test_perfect_answer_and_garbage():
    perfect = '<think>x</think><answer>{"bbox": [0, 0, 100, 100], "points_1": [25, 50], "points_2": [75, 50]}</answer>'
    assert compute_score("umrg", perfect, GT)["score"] == 4.0
    assert compute_score("umrg", perfect, GT, {"reward_mode": "hard"})["score"] == 8.0
    assert compute_score("umrg", "", GT)["score"] == 0.0
    assert compute_score("umrg", None, GT)["score"] == 0.0


def test_loads_by_file_path_like_verl():
    # verl's get_custom_reward_fn: spec_from_file_location("custom_module", path) + getattr(name).
    spec = importlib.util.spec_from_file_location("custom_module", verl_adapter.__file__)
    module = importlib.util.module_from_spec(spec)
    saved = sys.modules.get("custom_module")
    sys.modules["custom_module"] = module
    try:
        spec.loader.exec_module(module)
    finally:
        if saved is None:
            sys.modules.pop("custom_module", None)
        else:
            sys.modules["custom_module"] = saved
    fn = module.compute_score
    reward_kwargs = {"reward_mode": "hard"}  # +custom_reward_function.reward_kwargs.reward_mode=hard
    result = fn(data_source="umrg", solution_str=TEXT, ground_truth=GT, extra_info=None, **reward_kwargs)
    assert result == REF_HARD and isinstance(result["score"], float)


@settings(max_examples=200, deadline=None)
@given(text=st.text(), mode=st.sampled_from(["soft", "hard"]))
def test_never_raises_on_any_response(text, mode):
    for response in (text, f"<think>{text}</think><answer>{text}</answer>"):
        got = compute_score("umrg", response, GT, {"reward_mode": mode})
        assert list(got) == KEYS
        assert math.isnan(got["score"]) or 0.0 <= got["score"] <= 8.0


# --------------------------------------------------------------------------- exported rows


def test_exported_verl_rows_score_the_truth_at_the_maximum(tmp_path):
    """medground data export verl -> verl's reward: the policy answering the stored truth in its
    own frame gets the hard maximum (the ground truth is written in the policy's frame)."""
    import pandas as pd
    from PIL import Image

    from medground.data.export import export_verl
    from medground.data.schema import Sample

    path = tmp_path / "img.png"
    Image.new("RGB", (1000, 500), (40, 40, 40)).save(path)
    sample = Sample(id="s1", image=str(path), query="where is the lesion", boxes=[[100, 100, 300, 200]],
                    points=[[150, 150], [250, 150]], width=1000, height=500, split="train")
    out = export_verl({"train": [sample, sample]}, tmp_path / "verl", frame="norm1000", template="medreasoner",
                      progress=False)
    first = pd.read_parquet(out["train"]).iloc[1]
    gt = json.loads(first["reward_model"]["ground_truth"])
    assert gt["bbox_2d"] == pytest.approx([100, 200, 300, 400])  # 0-1000 relative
    perfect = (
        "<think>x</think><answer>"
        + json.dumps({"bbox": gt["bbox_2d"], "points_1": gt["point_2d"][0], "points_2": gt["point_2d"][1]})
        + "</answer>"
    )
    extra = dict(first["extra_info"], reward_mode="hard")
    result = compute_score(first["data_source"], perfect, first["reward_model"]["ground_truth"], extra)
    assert result["score"] == 8.0 and first["extra_info"]["index"] == 1
