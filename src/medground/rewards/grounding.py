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
from abc import abstractmethod

import numpy as np

from ..errors import MedgroundError
from ..geometry import as_boxes, valid_boxes
from ..metrics import IOU_VARIANTS, box_giou_matrix, box_iou, box_iou_matrix
from ..registry import Option
from .base import FRAME_OPTIONS, GUARD_OPTIONS, Batch, GuardedReward, Reward, as_bool
from .registry import register

GT_COLUMN = {"gt_column": Option("column holding the true boxes", changes_result=False)}


def greedy_match(scores: np.ndarray) -> list[tuple[int, int]]:
    """One-to-one (pred, gt) pairs of a ``(P, G)`` score matrix, best score first; every
    row and column used at most once."""
    pairs, used_p, used_g = [], set(), set()
    order = np.dstack(np.unravel_index(np.argsort(-scores, axis=None, kind="stable"), scores.shape))[0]
    for p, g in order:
        if p not in used_p and g not in used_g:
            pairs.append((int(p), int(g)))
            used_p.add(p)
            used_g.add(g)
    return pairs


def matched_scores(scores: np.ndarray, fill: float = 0.0) -> np.ndarray:
    """Per true box (column of the ``(P, G)`` matrix ``scores``), the score of the
    predicted box matched to it by :func:`greedy_match` (``fill`` if none)."""
    out = np.full(scores.shape[1], fill, dtype=np.float64)
    for p, g in greedy_match(scores):
        out[g] = scores[p, g]
    return out


# --------------------------------------------------------------------------- format

ANSWER_ONLY_RE = re.compile(r"\s*<answer>(?:(?!</?think>|</?answer>).)*</answer>\s*", re.DOTALL)


@register(
    "format",
    description="1.0 when the completion is <think>…</think><answer>…</answer> and the answer holds a parseable box "
                "(on a negative sample: a box or an explicit empty answer)",
    options={"require_think": Option("demand a <think> block before the answer")},
)
class FormatReward(Reward):
    """MedGround-R1's format reward, tolerant version: the completion is
    ``<think>…</think><answer>…</answer>`` (whitespace around allowed, nothing else
    outside the tags; ``require_think=False`` accepts an answer alone) and the answer
    holds at least one box (``[x1, y1, x2, y2]`` or JSON with a box key, integer or
    float) — or, on a negative sample (an empty ``boxes`` list), an explicit empty answer
    (``[]``, ``{"bbox_2d": []}``, ``{"bbox": null}``).  Logs ``has_think``, ``has_answer``,
    ``well_formed`` and ``has_box``.
    The released regex variant is ``medground_r1_format``.

    Returns:
        list[float]: 1.0 or 0.0 per completion.

    Example:
        >>> FormatReward()(completions=["<think>a</think><answer>[1, 2, 3, 4]</answer>", "<answer>[1, 2, 3, 4]</answer>"])
        [1.0, 0.0]
        >>> FormatReward(require_think=False)(completions=["<answer>[1, 2, 3, 4]</answer>"])
        [1.0]
    """

    __name__ = "format"

    def __init__(self, require_think: bool = True):
        super().__init__()
        self.require_think = as_bool(require_think)

    def score(self, batch: Batch):
        rewards, comp = [], {"has_think": [], "has_answer": [], "well_formed": [], "has_box": []}
        for i, p in enumerate(batch.parsed):
            shape_ok = p.well_formed or (not self.require_think and bool(ANSWER_ONLY_RE.fullmatch(p.text)))
            has_box = bool(p.has_answer and (p.boxes or (p.empty and batch.is_negative(i))))
            rewards.append(1.0 if shape_ok and has_box else 0.0)
            for k, v in (("has_think", p.has_think), ("has_answer", p.has_answer), ("well_formed", p.well_formed), ("has_box", has_box)):
                comp[k].append(float(v))
        return rewards, comp


# --------------------------------------------------------------------------- iou / giou


class BoxMatchReward(GuardedReward):
    """Shared by ``iou`` and ``giou``: per sample, match the answer boxes (in original
    pixels) to the true boxes by :meth:`matrix`, apply the guards, and turn the matched
    values into a reward with :meth:`value`.  Logs the mean matched metric under
    :attr:`metric` and the share of parsed answers as ``parsed``."""

    metric = "metric"

    def __init__(self, gt_column: str = "boxes", **options):
        super().__init__(**options)
        self.gt_column = gt_column

    @abstractmethod
    def matrix(self, pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
        """``(P, G)`` metric of every predicted box with every true box."""

    @abstractmethod
    def value(self, matched: np.ndarray) -> float:
        """The reward from the matched metric of each true box."""

    def score(self, batch: Batch):
        rewards: list[float | None] = []
        comp = {"parsed": [], "metric": []}
        if self.guards.active:
            comp["guarded"] = []
        for i, p in enumerate(batch.parsed):
            gt = batch.gt_boxes(i, self.gt_column)
            if len(gt) == 0:
                rewards.append(None)
                continue
            comp["parsed"].append(float(bool(p.boxes)))
            if not p.boxes:
                rewards.append(0.0)
                continue
            pred = batch.to_original(p.boxes, i)
            blocked = self.blocked(batch, i, p, gt, pred)
            if self.guards.active:
                comp["guarded"].append(float(blocked is not None))
            values = matched_scores(self.matrix(pred[: len(gt)], gt))
            comp["metric"].append(float(values.mean()))
            rewards.append(0.0 if blocked else float(self.value(values)))
        comp[self.metric] = comp.pop("metric")
        return rewards, comp


@register(
    "iou",
    description="MedGround-R1 spatial reward: 1.0 when IoU(answer box, truth) > threshold (soft=True: the IoU)",
    options={
        "threshold": Option("IoU above which the reward is 1.0 (strict '>', as in the paper)"),
        "soft": Option("return the IoU itself instead of the 0/1 hit"),
        "variant": Option(f"IoU formula: {' | '.join(IOU_VARIANTS)} (vlm-r1 = the released inclusive-pixel IoU)"),
        **GT_COLUMN,
        **FRAME_OPTIONS,
        **GUARD_OPTIONS,
    },
)
class IoUReward(BoxMatchReward):
    """Spatial reward of MedGround-R1: 1.0 when the IoU of the answer box with the
    truth exceeds ``threshold`` (strictly, as the paper), else 0.0;
    ``soft=True`` returns the IoU.  Boxes are mapped from ``frame`` to original pixels
    first (the released code skipped this; see ``medground_r1_accuracy``).
    Logs ``iou`` (mean IoU of parsed answers) and ``parsed``.

    Returns:
        list[float | None]: the reward per completion; None for a sample without a true box.

    Example:
        >>> reward = IoUReward(soft=True, frame="norm1000")
        >>> reward(completions=["<answer>[0, 0, 500, 500]</answer>", "<answer>[0, 0, 250, 500]</answer>"],
        ...        boxes=[[[0, 0, 100, 100]]] * 2, width=[200] * 2, height=[200] * 2)
        [1.0, 0.5]
    """

    __name__ = "iou"
    metric = "iou"

    def __init__(self, threshold: float = 0.5, soft: bool = False, variant: str = "standard", **options):
        if variant not in IOU_VARIANTS:
            raise MedgroundError(f"iou option variant={variant!r}: choose one of {IOU_VARIANTS}")
        super().__init__(**options)
        self.threshold = float(threshold)
        self.soft = as_bool(soft)
        self.variant = variant

    def matrix(self, pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
        return box_iou_matrix(pred, gt, variant=self.variant)

    def value(self, matched: np.ndarray) -> float:
        return float(matched.mean()) if self.soft else float((matched > self.threshold).mean())


@register(
    "giou",
    description="(GIoU(answer box, truth) + 1) / 2 in [0, 1]; unparseable 0",
    options={**GT_COLUMN, **FRAME_OPTIONS, **GUARD_OPTIONS},
)
class GIoUReward(BoxMatchReward):
    """Generalised IoU mapped to [0, 1] by ``(giou + 1) / 2`` so that an unparseable
    completion (0.0) never beats a parseable one; a dense signal even without overlap.
    Logs ``giou`` (raw GIoU mean).

    Returns:
        list[float | None]: the reward per completion; None for a sample without a true box.

    Example:
        >>> GIoUReward()(completions=["<answer>[0, 0, 10, 10]</answer>", "<answer>[10, 0, 20, 10]</answer>"],
        ...              boxes=[[[0, 0, 10, 10]]] * 2)
        [1.0, 0.5]
    """

    __name__ = "giou"
    metric = "giou"

    def matrix(self, pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
        return box_giou_matrix(pred, gt)

    def value(self, matched: np.ndarray) -> float:
        return float(((matched + 1) / 2).mean())


# --------------------------------------------------------------------------- chain of box


@register(
    "chain_of_box",
    description="1.0 when <think> cites a valid in-frame box and the answer box agrees with the last one cited",
    options={
        "agree_iou": Option("IoU(last box cited in <think>, answer box) needed to agree ('>=')"),
        "soft": Option("return that IoU instead of 0/1 once a valid box is cited"),
        **FRAME_OPTIONS,
        **GUARD_OPTIONS,
    },
)
class ChainOfBoxReward(GuardedReward):
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
    Logs ``cites_box`` and ``agreement``.

    Returns:
        list[float]: the reward per completion.

    Example:
        >>> ChainOfBoxReward()(completions=["<think>maybe [0, 0, 5, 5], no: [10, 10, 20, 20]</think>"
        ...                                 "<answer>[10, 10, 20, 20]</answer>",
        ...                                 "<think>the left lung</think><answer>[10, 10, 20, 20]</answer>"])
        [1.0, 0.0]
    """

    __name__ = "chain_of_box"

    def __init__(self, agree_iou: float = 0.5, soft: bool = False, **options):
        super().__init__(**options)
        self.agree_iou = float(agree_iou)
        self.soft = as_bool(soft)

    def score(self, batch: Batch):
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
            if self.blocked(batch, i, p):
                rewards.append(0.0)
                continue
            rewards.append((value if self.soft else 1.0) if value >= self.agree_iou else 0.0)
        return rewards, comp
