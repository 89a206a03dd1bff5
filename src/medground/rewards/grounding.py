"""MedGround-R1 grounding rewards (arXiv 2507.02994): ``format``, ``iou``, ``giou`` and
``chain_of_box``.

All take ``frame`` (the policy's coordinate frame: ``pixels``, ``qwen2.5-vl`` with
``min_pixels`` / ``max_pixels``, ``norm1000``, ``norm1``, ``fixed:640``) and compare
with the ground truth in original pixels (``boxes`` column).  Unparseable completions
score 0.0; a sample without a ground-truth box scores ``None`` (TRL leaves it out).
The reward-hack guards of :class:`~medground.rewards.base.Guards` are options of every
box reward here, off by default so that the defaults follow the paper.

Several targets: the first *K* answer boxes (K = number of true boxes) are matched
one-to-one to the true boxes, greedily by IoU; the reward is the mean over true boxes
(unmatched ones count 0).  With one target this is the paper's "first answer box".

>>> from medground.rewards import get
>>> iou = get("iou")
>>> iou(completions=["<think>upper left</think><answer>[0, 0, 10, 10]</answer>",
...                  "<answer>[0, 0, 10, 4]</answer>", "no box"],
...     boxes=[[[0, 0, 10, 8]]] * 3)
[1.0, 0.0, 0.0]
"""

from __future__ import annotations

import re

import numpy as np

from ..errors import MedgroundError
from ..geometry import as_boxes, valid_boxes
from ..metrics import IOU_VARIANTS, box_giou, box_iou
from .base import Batch, Guards, Reward, as_bool, make_frame
from .registry import register

FRAME_OPTIONS = {
    "frame": "coordinate frame the policy answers in: pixels (default), qwen2.5-vl, norm1000, norm1, fixed:WxH",
    "min_pixels": "Qwen2.5-VL min_pixels for frame=qwen2.5-vl (default 3136)",
    "max_pixels": "Qwen2.5-VL max_pixels for frame=qwen2.5-vl (default 12845056)",
}


def pairwise(metric, pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """(P, G) matrix of a paired metric between every predicted and true box."""
    p, g = as_boxes(pred), as_boxes(gt)
    if not len(p) or not len(g):
        return np.zeros((len(p), len(g)))
    return metric(np.repeat(p, len(g), axis=0), np.tile(g, (len(p), 1))).reshape(len(p), len(g))


def greedy_match(scores: np.ndarray) -> list[tuple[int, int]]:
    """One-to-one (pred, gt) pairs, best score first; every pair used at most once."""
    pairs, used_p, used_g = [], set(), set()
    order = np.dstack(np.unravel_index(np.argsort(-scores, axis=None, kind="stable"), scores.shape))[0]
    for p, g in order:
        if p not in used_p and g not in used_g:
            pairs.append((int(p), int(g)))
            used_p.add(p)
            used_g.add(g)
    return pairs


def matched_scores(metric, pred: np.ndarray, gt: np.ndarray, fill: float = 0.0) -> np.ndarray:
    """Per true box, the metric of the predicted box matched to it (``fill`` if none).
    Only the first ``len(gt)`` predicted boxes take part."""
    pred = as_boxes(pred)[: len(gt)]
    out = np.full(len(gt), fill, dtype=np.float64)
    if len(pred) == 0:
        return out
    m = pairwise(metric, pred, gt)
    for p, g in greedy_match(m):
        out[g] = m[p, g]
    return out


def _guards(options: dict) -> Guards:
    return Guards.from_options(
        options.pop("max_area_frac", None), options.pop("single_answer", False), options.pop("max_boxes", None)
    )


def _frame(options: dict):
    return make_frame(options.pop("frame", "pixels"), options.pop("min_pixels", None), options.pop("max_pixels", None))


# --------------------------------------------------------------------------- format

ANSWER_ONLY_RE = re.compile(r"\s*<answer>(?:(?!</?think>|</?answer>).)*</answer>\s*", re.DOTALL)


@register(
    "format",
    description="1.0 when the completion is <think>…</think><answer>…</answer> and the answer holds a parseable box",
    options={"require_think": "demand a <think> block before the answer (default True)"},
)
def format_reward(require_think: bool = True):
    """MedGround-R1's format reward, tolerant version: the completion is
    ``<think>…</think><answer>…</answer>`` (whitespace around allowed, nothing else
    outside the tags; ``require_think=False`` accepts an answer alone) and the answer
    holds at least one box (``[x1, y1, x2, y2]`` or JSON with a box key, integer or
    float).  Logs ``has_think``, ``has_answer``, ``well_formed`` and ``has_box``.
    The released regex variant is ``medground_r1_format``."""
    need_think = as_bool(require_think)

    def score(batch: Batch):
        rewards, comp = [], {"has_think": [], "has_answer": [], "well_formed": [], "has_box": []}
        for p in batch.parsed:
            shape_ok = p.well_formed or (not need_think and bool(ANSWER_ONLY_RE.fullmatch(p.text)))
            has_box = bool(p.has_answer and p.boxes)
            rewards.append(1.0 if shape_ok and has_box else 0.0)
            for k, v in (("has_think", p.has_think), ("has_answer", p.has_answer), ("well_formed", p.well_formed), ("has_box", has_box)):
                comp[k].append(float(v))
        return rewards, comp

    return Reward("format", score)


# --------------------------------------------------------------------------- iou / giou


def _box_reward(name: str, value_fn, options: dict):
    """Shared scorer: per sample, match answer boxes to true boxes in original pixels,
    apply the guards, and turn the matched metric into a reward with ``value_fn``."""
    frame = _frame(options)
    guards = _guards(options)
    gt_column = options.pop("gt_column", "boxes")
    metric = options.pop("metric")

    def score(batch: Batch):
        rewards: list[float | None] = []
        comp = {"parsed": [], "metric": []}
        if guards.active:
            comp["guarded"] = []
        for i, p in enumerate(batch.parsed):
            gt = batch.gt_boxes(i, gt_column)
            if len(gt) == 0:
                rewards.append(None)
                continue
            comp["parsed"].append(float(bool(p.boxes)))
            if not p.boxes:
                rewards.append(0.0)
                continue
            pred = batch.to_original(p.boxes, i)
            blocked = guards.check(batch, i, p, pred, gt)
            if guards.active:
                comp["guarded"].append(float(blocked is not None))
            values = matched_scores(metric, pred, gt)
            comp["metric"].append(float(values.mean()))
            rewards.append(0.0 if blocked else float(value_fn(values)))
        comp[name] = comp.pop("metric")
        return rewards, comp

    return Reward(name, score, frame=frame)


@register(
    "iou",
    description="MedGround-R1 spatial reward: 1.0 when IoU(answer box, truth) > threshold (soft=True: the IoU)",
    options={
        "threshold": "IoU above which the reward is 1.0 (default 0.5, strict '>', as in the paper)",
        "soft": "return the IoU itself instead of the 0/1 hit (default False)",
        "variant": f"IoU formula: {' | '.join(IOU_VARIANTS)} (vlm-r1 = the released inclusive-pixel IoU)",
        "gt_column": "column holding the true boxes (default boxes)",
        **FRAME_OPTIONS,
        **Guards.OPTIONS,
    },
)
def iou_reward(threshold: float = 0.5, soft: bool = False, variant: str = "standard", **options):
    """Spatial reward of MedGround-R1: 1.0 when the IoU of the answer box with the
    truth exceeds ``threshold`` (strictly, default 0.5, as the paper), else 0.0;
    ``soft=True`` returns the IoU.  Boxes are mapped from ``frame`` to original pixels
    first (the released code skipped this; see ``medground_r1_accuracy``).
    Logs ``iou`` (mean IoU of parsed answers) and ``parsed``."""
    threshold = float(threshold)
    if variant not in IOU_VARIANTS:
        raise MedgroundError(f"iou option variant={variant!r}: choose one of {IOU_VARIANTS}")
    soft = as_bool(soft)

    def value(v: np.ndarray) -> float:
        return float(v.mean()) if soft else float((v > threshold).mean())

    options["metric"] = lambda a, b: box_iou(a, b, variant=variant)
    return _box_reward("iou", value, options)


@register(
    "giou",
    description="(GIoU(answer box, truth) + 1) / 2 in [0, 1]; unparseable 0",
    options={"gt_column": "column holding the true boxes (default boxes)", **FRAME_OPTIONS, **Guards.OPTIONS},
)
def giou_reward(**options):
    """Generalised IoU mapped to [0, 1] by ``(giou + 1) / 2`` so that an unparseable
    completion (0.0) never beats a parseable one; a dense signal even without overlap.
    Logs ``giou`` (raw GIoU mean)."""
    options["metric"] = box_giou
    return _box_reward("giou", lambda v: float(((v + 1) / 2).mean()), options)


# --------------------------------------------------------------------------- chain of box


@register(
    "chain_of_box",
    description="1.0 when <think> cites a valid in-frame box and the answer box agrees with the last one cited",
    options={
        "agree_iou": "IoU(last box cited in <think>, answer box) needed to agree (default 0.5, '>=')",
        "soft": "return that IoU instead of 0/1 once a valid box is cited (default False)",
        **FRAME_OPTIONS,
        **Guards.OPTIONS,
    },
)
def chain_of_box_reward(agree_iou: float = 0.5, soft: bool = False, **options):
    """Chain-of-Box consistency (MedGround-R1's template makes the reasoning cite
    ``[x1, y1, x2, y2]`` whenever it names a region; the released code has no reward
    for it).  Definition used here:

    * the reasoning must cite at least one *well-formed, in-frame* box (``x2 > x1``,
      ``y2 > y1``, inside ``[0, w] × [0, h]`` of the policy's frame);
    * "the region the reasoning settled on" is the **last** box cited in ``<think>``;
    * reward 1.0 when that box is valid and ``IoU(last cited, first answer box) >=
      agree_iou``, else 0.0; ``soft=True`` gives the IoU instead of 1.0.

    IoU is invariant to the per-axis scaling between frames, so it is computed in the
    policy's frame; the ground truth is not needed (the guards use it when present).
    Logs ``cites_box`` and ``agreement``."""
    frame = _frame(options)
    guards = _guards(options)
    agree = float(agree_iou)
    soft = as_bool(soft)

    def score(batch: Batch):
        rewards, comp = [], {"cites_box": [], "agreement": []}
        for i, p in enumerate(batch.parsed):
            think = as_boxes(p.think_boxes)
            extent = batch.frame_extent(i)
            ok = valid_boxes(think, *extent) if extent else valid_boxes(think)
            cites = bool(ok.any())
            comp["cites_box"].append(float(cites))
            if not cites or not p.boxes or not ok[-1]:
                rewards.append(0.0)
                continue
            value = float(box_iou(think[-1:], as_boxes(p.boxes)[:1])[0])
            comp["agreement"].append(value)
            if guards.active:
                gt = batch.gt_boxes(i) if "boxes" in batch.columns else np.zeros((0, 4))
                if guards.check(batch, i, p, batch.to_original(p.boxes, i), gt):
                    rewards.append(0.0)
                    continue
            rewards.append((value if soft else 1.0) if value >= agree else 0.0)
        return rewards, comp

    return Reward("chain_of_box", score, frame=frame)
