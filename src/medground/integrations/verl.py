"""verl adapter: MedReasoner's reward as a verl ``custom_reward_function``.

verl (the RL engine MedReasoner trains on) calls
``compute_score(data_source=..., solution_str=..., ground_truth=..., extra_info=...)``
once per response and, for a dict result, uses ``result["score"]`` as the reward and
logs every other key.  This function returns exactly the dict of MedReasoner's own
``verl/utils/reward_score/med_grounding.compute_score`` (same 13 keys, same values),
with the reward mode chosen per run or per sample instead of edited in verl's source::

    custom_reward_function.path=$(python -c "import medground.integrations.verl as m; print(m.__file__)")
    custom_reward_function.name=compute_score

verl loads this file by path as a module named ``custom_module``, so it must (and
does) use absolute imports only.  ``medground data export verl`` (:mod:`medground.data.export`)
writes medground samples in verl's parquet layout (see ``docs/verl.md``), with the ground
truth in the frame the policy answers in — verl's reward sees no image size.

>>> gt = '{"bbox_2d": [10, 10, 50, 50], "point_2d": [[20, 20], [40, 40]]}'
>>> answer = "<think>x</think><answer>{'bbox': [10, 10, 50, 50], 'points_1': [20, 20], 'points_2': [40, 40]}</answer>"
>>> compute_score("umrg", answer, gt)["score"]
4.0
>>> compute_score("umrg", answer, gt, {"reward_mode": "hard"})["score"]
8.0
"""

from __future__ import annotations

import json

from medground.errors import MedgroundError
from medground.rewards.medreasoner import MODES, medreasoner_score, parse_ground_truth

__all__ = ["compute_score", "parse_verl_ground_truth"]

DEFAULT_MODE = "soft"


def parse_verl_ground_truth(ground_truth, context: str = "verl ground_truth") -> tuple[list, list]:
    """``(bbox, points)`` from MedReasoner's ground-truth JSON string
    ``{"bbox_2d": [x1, y1, x2, y2], "point_2d": [[x, y], [x, y]]}`` (a dict is accepted
    too).  Raises :class:`MedgroundError` quoting the offending value."""
    gt = ground_truth
    if isinstance(gt, (bytes, bytearray)):
        gt = gt.decode("utf-8", errors="replace")
    if isinstance(gt, str):
        try:
            gt = json.loads(gt)
        except ValueError as exc:
            raise MedgroundError(f"{context} is not valid JSON ({exc}): {ground_truth[:200]!r}") from None
    if not isinstance(gt, dict) or "bbox_2d" not in gt or "point_2d" not in gt:
        raise MedgroundError(
            f'{context} must be {{"bbox_2d": [x1, y1, x2, y2], "point_2d": [[x, y], [x, y]]}}, got {str(ground_truth)[:200]!r}'
        )
    return parse_ground_truth(gt["bbox_2d"], gt["point_2d"], context)


def _mode(extra_info, reward_mode) -> str:
    mode = reward_mode if reward_mode is not None else DEFAULT_MODE
    if isinstance(extra_info, dict) and extra_info.get("reward_mode"):  # None or "" = the run's default
        mode = extra_info["reward_mode"]
    if mode not in MODES:
        raise MedgroundError(f"verl reward_mode must be one of {MODES}, got {mode!r}")
    return mode


def compute_score(data_source, solution_str, ground_truth, extra_info=None, reward_mode=None, **_):
    """MedReasoner's reward dict for one verl response.

    ``data_source`` is not used (MedReasoner's ``"umrg"`` or any name works).
    ``ground_truth``: the JSON string ``{"bbox_2d": [...], "point_2d": [[x, y], [x, y]]}``.
    ``extra_info``: the row's ``extra_info`` dict; ``{"reward_mode": "soft"|"hard"}``
    there chooses the mode for that sample.  ``reward_mode``: the run's default
    (``+custom_reward_function.reward_kwargs.reward_mode=hard``), itself ``"soft"`` by
    default.  Other keyword arguments newer verl releases may pass are ignored.

    Returns the 13 keys ``score, format_think, format_seg, bbox_iou, points_dice,
    bbox_align, bbox_scale, points_align, points_angle, bbox_position_valid,
    bbox_area_valid, points_position_valid, points_spread_valid``.  Never raises on the
    response text; a malformed ground truth or mode raises :class:`MedgroundError`
    (MedReasoner would silently score it 0).
    """
    mode = _mode(extra_info, reward_mode)
    sample = extra_info.get("index") if isinstance(extra_info, dict) else None
    context = f"verl ground_truth (data_source={data_source!r}" + (f", index={sample})" if sample is not None else ")")
    gt_bbox, gt_points = parse_verl_ground_truth(ground_truth, context)
    return medreasoner_score(solution_str, gt_bbox, gt_points, mode)
