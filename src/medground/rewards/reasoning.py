"""``reasoning``: does the reasoning say what the image shows?

A process reward for recipes whose warm start reasons with a fixed, checkable text —
the open-set demo's ``think: "{findings}"`` writes what the phantom shows of the queried
category ("right pneumothorax", "left upper mass, right lower mass", "no effusion").  The
reference is a dataset column (``reasoning``; ``medground train grpo`` fills it from
each sample's meta with ``data.reasoning``, the same ``{key}`` template as
``sft.think``).  The reward is the F1 of the reasoning's items against the reference's:
both are split at commas / semicolons / " and ", each item lower-cased with its spacing
collapsed, and ``F1 = 2 |common| / (|said| + |reference|)``.  No ``<think>`` block scores
0.0; a sample without a reference (the column missing, None or empty) scores None.

Why: the answer follows the reasoning.  Without it, a policy that cannot tell from a
small image whether a finding is there gains, on the positives, from a reasoning that
names every possible finding ("right pneumothorax, left pneumothorax") and then boxes
whatever the question asks for, and it loses its negatives (docs/training.md, "The
open-set demo").  This reward pays for naming exactly what is there, on every sample,
positive or negative, so hedging costs as much as it gains.

>>> from medground.rewards import get
>>> get("reasoning")(completions=["<think>right effusion, left effusion</think><answer>[]</answer>",
...                               "<think>Right  effusion</think><answer>[]</answer>", "<answer>[]</answer>", "x"],
...                  reasoning=["right effusion", "right effusion", "no effusion", None])
[0.6666666666666666, 1.0, 0.0, None]
"""

from __future__ import annotations

import re

from ..parsing import tag_block
from ..registry import Option
from .base import Batch, Reward
from .registry import register

#: Item separators; no whitespace around them in the pattern (a ``\s*`` before a
#: separator would rescan long runs of spaces from every start: quadratic on hostile text).
_SPLIT = re.compile(r"[,;]|\band\b", re.IGNORECASE)


def reasoning_items(text: str) -> list[str]:
    """The items a reasoning names: split at ``,`` / ``;`` / " and ", lower-cased, spacing
    collapsed, empty items dropped.

    >>> reasoning_items("Right upper mass,  left lower mass AND no effusion.")
    ['right upper mass', 'left lower mass', 'no effusion']
    """
    items = (" ".join(part.split()).strip(" .").lower() for part in _SPLIT.split(text))
    return [item for item in items if item]


def items_f1(said: list[str], reference: list[str]) -> float:
    """F1 of two lists of items taken as sets (repeats count once); 1.0 when both are empty.

    >>> items_f1(["a", "b"], ["a"]), items_f1([], []), items_f1(["a"], [])
    (0.6666666666666666, 1.0, 0.0)
    """
    a, b = set(said), set(reference)
    if not a and not b:
        return 1.0
    return 2 * len(a & b) / (len(a) + len(b))


@register(
    "reasoning",
    description="F1 of the items the <think> block names against a reference reasoning column (e.g. the "
                "findings the image shows); None where the sample has no reference",
    options={"column": Option("column holding the reference reasoning", changes_result=False)},
)
class ReasoningReward(Reward):
    """F1 of the reasoning's items against the reference reasoning (see the module
    docstring).  Logs ``exact`` (share of reasonings naming exactly the reference's items).

    Returns:
        list[float | None]: F1 per completion; None where the sample has no reference.

    Example:
        >>> ReasoningReward()(completions=["<think>no effusion</think><answer>[]</answer>"], reasoning=["no effusion"])
        [1.0]
    """

    __name__ = "reasoning"

    def __init__(self, column: str = "reasoning", **options):
        super().__init__(**options)
        self.column = column

    def score(self, batch: Batch):
        rewards: list[float | None] = []
        comp: dict[str, list[float]] = {"exact": []}
        for i, text in enumerate(batch.texts):
            reference = batch.column(self.column, i)
            if reference is None or not str(reference).strip():
                rewards.append(None)
                continue
            think = tag_block(text, "think")
            value = 0.0 if think is None else items_f1(reasoning_items(think), reasoning_items(str(reference)))
            comp["exact"].append(float(value == 1.0))
            rewards.append(value)
        return rewards, comp
