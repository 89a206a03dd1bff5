"""Rewards for zero, one or many targets: ``set_f1``, ``set_iou`` and ``negative``.

A phrase may name several regions ("bilateral effusions": every box is a target) or none
(``boxes: []``, a *negative*: "left pneumothorax?" on a film without one).  These rewards
score the *set* of answer boxes against the set of true boxes:

* ``set_f1`` — predicted and true boxes matched one to one by the Hungarian algorithm on
  IoU (:func:`medground.metrics.match_boxes`); a pair with IoU >= ``threshold`` is a hit;
  the reward is ``F1 = 2 hits / (P + G)``.
* ``set_iou`` — the soft variant: the summed IoU of the matched pairs over ``max(P, G)``,
  every unmatched box on either side counting 0.
* ``negative`` — the presence decision: on a negative sample 1.0 for an explicit empty
  answer (``[]``, ``{"bbox_2d": []}``, ``{"bbox": null}``), 0.0 for any box; on a positive
  sample 0.0 for an empty answer and 1.0 for an answer with a box (how good the boxes are
  is the box rewards' business).

On a negative sample ``set_f1`` and ``set_iou`` give 1.0 for an explicit empty answer and
0.0 for anything else (``negatives=False``: None, for use beside ``negative``).  An
unparseable answer scores 0.0 everywhere.  On a single-target sample with one answer box
``set_f1`` is the 0/1 hit at IoU >= ``threshold`` and ``set_iou`` the IoU.  Boxes are mapped
from the policy's ``frame`` to original pixels first; the reward-hack guards
(``max_area_frac``, ``single_answer``, ``max_boxes``) are options, off by default.

>>> from medground.rewards import get
>>> f1 = get("set_f1")
>>> f1(completions=["<answer>[[0, 0, 10, 10], [20, 0, 30, 10]]</answer>", "<answer>[[0, 0, 10, 10]]</answer>",
...                 "<answer>[]</answer>", "<answer>[]</answer>", "<answer>[[0, 0, 10, 10]]</answer>"],
...    boxes=[[[0, 0, 10, 10], [20, 0, 30, 10]]] * 2 + [[[0, 0, 10, 10]], [], []])
[1.0, 0.6666666666666666, 0.0, 1.0, 0.0]
"""

from __future__ import annotations

from ..errors import MedgroundError
from ..metrics import IOU_VARIANTS, SET_IOU, match_boxes
from ..registry import Option
from .base import FRAME_OPTIONS, GUARD_OPTIONS, Batch, GuardedReward, as_bool
from .registry import register

SET_OPTIONS = {
    "negatives": Option("score negative samples (1.0 for an explicit empty answer, 0.0 for anything else); "
                        "false: None there (beside the `negative` reward)"),
    "variant": Option(f"IoU formula: {' | '.join(IOU_VARIANTS)}"),
    "gt_column": Option("column holding the true boxes", changes_result=False),
}


class BoxSetReward(GuardedReward):
    """Shared by ``set_f1`` and ``set_iou``: match the answer's boxes (original pixels) to
    the true boxes one to one and turn the match into a reward with :meth:`value`.  Logs
    ``f1`` / ``matched_iou`` of the scored answers, ``empty`` (share of explicit empty
    answers) and ``parsed``."""

    def __init__(self, threshold: float = SET_IOU, negatives: bool = True, variant: str = "standard",
                 gt_column: str = "boxes", **options):
        if variant not in IOU_VARIANTS:
            raise MedgroundError(f"{self.__name__} option variant={variant!r}: choose one of {IOU_VARIANTS}")
        super().__init__(**options)
        self.threshold = float(threshold)
        self.negatives = as_bool(negatives)
        self.variant = variant
        self.gt_column = gt_column

    def value(self, match) -> float:
        raise NotImplementedError

    def score(self, batch: Batch):
        rewards: list[float | None] = []
        comp: dict[str, list[float]] = {"parsed": [], "empty": [], "f1": [], "matched_iou": []}
        if self.guards.active:
            comp["guarded"] = []
        for i, p in enumerate(batch.parsed):
            gt = batch.gt_boxes(i, self.gt_column)
            comp["parsed"].append(float(bool(p.boxes) or p.empty))
            comp["empty"].append(float(p.empty))
            if not len(gt) and not self.negatives:
                rewards.append(None)
                continue
            if not p.boxes:
                rewards.append(1.0 if p.empty and not len(gt) else 0.0)
                continue
            pred = batch.to_original(p.boxes, i)
            blocked = self.blocked(batch, i, p, gt, pred)
            if self.guards.active:
                comp["guarded"].append(float(blocked is not None))
            match = match_boxes(pred, gt, self.threshold, self.variant)
            comp["f1"].append(match.f1)
            comp["matched_iou"].append(match.matched_iou)
            rewards.append(0.0 if blocked else float(self.value(match)))
        return rewards, comp


@register(
    "set_f1",
    description="F1 of the answer's boxes against every true box (one-to-one Hungarian matching, IoU >= threshold); "
                "a negative scores 1.0 for an explicit empty answer",
    options={"threshold": Option("IoU at or above which a matched pair counts as a hit"), **SET_OPTIONS,
             **FRAME_OPTIONS, **GUARD_OPTIONS},
)
class SetF1Reward(BoxSetReward):
    """F1 at an IoU threshold of the answer's box set against the true box set: the boxes
    are matched one to one (Hungarian algorithm on IoU), a pair with IoU >= ``threshold``
    is a hit, and the reward is ``2 hits / (answer boxes + true boxes)``.  A negative sample
    (no true box) scores 1.0 for an explicit empty answer, 0.0 for any box.

    Returns:
        list[float | None]: F1 per completion; None on a negative sample with ``negatives=False``.

    Example:
        >>> SetF1Reward()(completions=["<answer>[[0, 0, 10, 10], [50, 50, 60, 60]]</answer>"], boxes=[[[0, 0, 10, 10]]])
        [0.6666666666666666]
    """

    __name__ = "set_f1"

    def value(self, match) -> float:
        return match.f1


@register(
    "set_iou",
    description="soft set reward: summed IoU of the one-to-one matched boxes over max(answer boxes, true boxes); "
                "a negative scores 1.0 for an explicit empty answer",
    options={**SET_OPTIONS, **FRAME_OPTIONS, **GUARD_OPTIONS},
)
class SetIoUReward(BoxSetReward):
    """The soft variant of ``set_f1``: after the same one-to-one matching, the mean IoU over
    matched pairs with every unmatched box — a missed true box or an extra answer box —
    counting 0, i.e. ``sum(IoU of the pairs) / max(answer boxes, true boxes)``.  A negative
    sample scores 1.0 for an explicit empty answer, 0.0 for any box.

    Returns:
        list[float | None]: the matched IoU per completion; None on a negative sample with ``negatives=False``.

    Example:
        >>> SetIoUReward()(completions=["<answer>[[0, 0, 10, 5], [50, 50, 60, 60]]</answer>"], boxes=[[[0, 0, 10, 10]]])
        [0.25]
    """

    __name__ = "set_iou"

    def __init__(self, negatives: bool = True, variant: str = "standard", gt_column: str = "boxes", **options):
        super().__init__(negatives=negatives, variant=variant, gt_column=gt_column, **options)

    def value(self, match) -> float:
        return match.matched_iou


@register(
    "negative",
    description="presence decision: on a negative sample 1.0 for an explicit empty answer, 0.0 for any box; "
                "on a positive one 0.0 for an empty answer, 1.0 for an answer with a box",
    options={"positives": Option("score positive samples (an answer with a box 1.0, an empty one 0.0); false: None "
                                 "there, so that only the negatives are scored"),
             "gt_column": SET_OPTIONS["gt_column"], **FRAME_OPTIONS, **GUARD_OPTIONS},
)
class NegativeReward(GuardedReward):
    """Whether the answer makes the right presence decision.  On a negative sample (no
    true box: the query names something absent) an explicit empty answer scores 1.0 and an
    answer with any box 0.0; on a positive sample an empty answer scores 0.0 and an answer
    with a box 1.0 (``positives=False``: None).  An unparseable answer scores 0.0; the
    guards, when on, turn a box answer they reject into 0.0.  Logs ``empty`` and, per side,
    ``specificity`` (negatives answered empty) and ``sensitivity`` (positives answered with a box).

    Returns:
        list[float | None]: the reward per completion.

    Example:
        >>> NegativeReward()(completions=["<answer>[]</answer>", "<answer>[[1, 1, 5, 5]]</answer>", "<answer>[]</answer>"],
        ...                  boxes=[[], [], [[1, 1, 5, 5]]])
        [1.0, 0.0, 0.0]
    """

    __name__ = "negative"

    def __init__(self, positives: bool = True, gt_column: str = "boxes", **options):
        super().__init__(**options)
        self.positives = as_bool(positives)
        self.gt_column = gt_column

    def score(self, batch: Batch):
        rewards: list[float | None] = []
        comp: dict[str, list[float]] = {"empty": [], "specificity": [], "sensitivity": []}
        for i, p in enumerate(batch.parsed):
            gt = batch.gt_boxes(i, self.gt_column)
            comp["empty"].append(float(p.empty))
            answered = bool(p.boxes) and not self.blocked(batch, i, p, gt)
            if not len(gt):
                comp["specificity"].append(float(p.empty))
                rewards.append(1.0 if p.empty else 0.0)
            elif not self.positives:
                rewards.append(None)
            else:
                comp["sensitivity"].append(float(answered))
                rewards.append(1.0 if answered else 0.0)
        return rewards, comp
