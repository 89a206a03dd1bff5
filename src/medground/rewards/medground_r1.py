"""Faithful presets of the released MedGround-R1 rewards.

They reproduce ``iou_reward`` and ``format_reward`` of
``open-r1-multimodal/src/open_r1/grpo_rec.py`` in the public MedGround-R1 code
(bio-mlhui/MedGround-R1, commit 37b210d, itself VLM-R1's ``grpo_rec.py``) value for
value, quirks included.  Use them to compare with the release; train with ``iou`` /
``format`` / ``semantic``, which implement what the paper describes.

The released semantic reward (``medclip_reward``) is not reproduced: it scores the
*whole image* with the ground-truth text, rebuilds MedCLIP on every call, and reads a
``solutions`` argument the trainer never passes (so it raises when enabled).
``benchmarks/bench_rewards.py`` imitates its encoder-per-call pattern for timing.

>>> from medground.rewards import get
>>> acc = get("medground_r1_accuracy")
>>> acc(completions=[[{"role": "assistant", "content": "<answer>{'bbox': [10, 10, 50, 50]}</answer>"}],
...                  [{"role": "assistant", "content": "<answer>[10.0, 10.0, 50.0, 50.0]</answer>"}]],
...     solution=[[12, 12, 50, 50]] * 2)
[1.0, 0.0]
"""

from __future__ import annotations

import re

from ..metrics import box_iou
from ..parsing import tag_block
from .base import Batch, Reward
from .registry import register

#: The released regexes, verbatim: they *define* what the functions below compute.  Run
#: by ``re`` they take quadratic time (the answer tag, on text with thousands of
#: ``<answer>`` and no ``</answer>``) or worse (the format's nested ``.*``) on text a
#: policy can generate; the functions give the same results in linear time
#: (``tests/test_released_patterns.py`` checks both against these patterns).
ANSWER_TAG_PATTERN = r"<answer>(.*?)</answer>"
BBOX_PATTERN = r"\[(\d+),\s*(\d+),\s*(\d+),\s*(\d+)]"
FORMAT_PATTERN = r"<think>.*?</think>\s*<answer>.*?\{.*\[\d+,\s*\d+,\s*\d+,\s*\d+\].*\}.*?</answer>"

# The box pattern alone is linear: a match starting at a "[" holds only digits, commas and
# white space, and each of its parts can end at one place only (a digit run before ",", a
# space run before a digit), so a failed try reads up to the next "[" once.
BBOX_RE = re.compile(BBOX_PATTERN)
_SPACES = re.compile(r"\s*")  # the format's \s*: the same (Unicode) white space as the release


def released_answer_box(content: str) -> list[int] | None:
    """The released extraction: the first ``<answer>…</answer>`` (DOTALL), stripped,
    then the first ``[int, int, int, int]`` in it (``re.search``); None if absent.
    Negative or decimal coordinates never match (``\\d+`` only).  A coordinate too long
    for ``int`` (over 4 300 digits) is None here; the release raised and scored 0."""
    answer = tag_block(content, "answer")
    if answer is None:
        return None
    return box_ints(BBOX_RE.search(answer.strip()))


def box_ints(match: re.Match | None) -> list[int] | None:
    """The four integer groups of a box match; None without a match or for a number
    ``int`` refuses (more than ``sys.get_int_max_str_digits()`` digits)."""
    if match is None:
        return None
    try:
        return [int(g) for g in match.groups()]
    except ValueError:
        return None


def released_format_match(text: str) -> bool:
    """Whether ``re.fullmatch(FORMAT_PATTERN, text, re.DOTALL)`` matches, in linear time.

    The pattern is ``<think>`` A ``</think>`` white space ``<answer>`` B ``{`` C *box* D
    ``}`` E ``</answer>`` with A–E anything (``.*`` with DOTALL; greedy or lazy does not
    change whether a full match exists).  So it matches when the text starts with
    ``<think>`` and ends with ``</answer>`` and, in between, come the earliest
    ``</think>``-spaces-``<answer>``, then a ``{``, then a box, then a ``}``; taking each
    part as early as possible never loses a match (the earliest box also ends first:
    a box match holds no ``[`` after its own).

    >>> released_format_match('<think>x</think> <answer>{"bbox": [1, 2, 3, 4]}</answer>')
    True
    >>> released_format_match('<think>x</think><answer>[1, 2, 3, 4]</answer>')   # no braces
    False
    """
    head, tail = "<think>", "</answer>"
    if not (text.startswith(head) and text.endswith(tail)):
        return False
    end = len(text) - len(tail)
    answer = _answer_after_think(text, len(head))
    if answer < 0:
        return False
    brace = text.find("{", answer + len("<answer>"), end)
    if brace < 0:
        return False
    box = BBOX_RE.search(text, brace + 1, end)
    return box is not None and text.rfind("}", box.end(), end) >= 0


def _answer_after_think(text: str, start: int) -> int:
    """Position of the earliest ``<answer>`` that follows a ``</think>`` (at or after
    ``start``) with only white space between them; -1 if none.  Each white-space run is
    read once: no ``</think>`` starts inside one."""
    close = text.find("</think>", start)
    while close >= 0:
        answer = _SPACES.match(text, close + len("</think>")).end()
        if text.startswith("<answer>", answer):
            return answer
        close = text.find("</think>", answer)
    return -1


def released_iou(box1, box2) -> float:
    """The released ``iou`` (inclusive-pixel intersection, plain-area union) via
    ``medground.metrics.box_iou(variant="vlm-r1")``; the released division by a zero
    union raised and was caught into reward 0, which is what this returns."""
    return float(box_iou([box1], [box2], variant="vlm-r1")[0])


def _solution(batch: Batch, i: int):
    """The released code read the ``solution`` column (one ``[x1, y1, x2, y2]`` in the
    frame of the stored images); medground datasets carry ``boxes`` instead, of which
    the first box stands in."""
    if "solution" in batch.columns:
        sol = batch.column("solution", i)
        return list(sol) if sol is not None else None
    gt = batch.gt_boxes(i)
    return gt[0].tolist() if len(gt) else None


@register(
    "medground_r1_accuracy",
    description="released MedGround-R1 iou_reward, exact: integer box regex, inclusive-pixel IoU > 0.5, raw coordinates",
    options={},
)
class MedGroundR1Accuracy(Reward):
    """Released MedGround-R1 / VLM-R1 ``iou_reward``, exactly.

    Per completion: the first ``<answer>(.*?)</answer>`` (DOTALL), stripped; the first
    match of ``\\[(\\d+),\\s*(\\d+),\\s*(\\d+),\\s*(\\d+)]`` in it (integers only — a
    float or negative coordinate gives 0; JSON or not does not matter); reward 1.0
    when the inclusive-pixel IoU (``box_iou(variant="vlm-r1")``) with the solution is
    ``> 0.5``, else 0.0.  The predicted coordinates are compared *as written*, with no
    mapping between frames; the solution is the ``solution`` column when forwarded
    (the release's data), else the first of ``boxes``.

    How it differs from the paper and from our ``iou``: the paper states IoU > 0.5
    between prediction and truth, which ``iou`` implements with the standard IoU on
    boxes mapped from the policy's frame to original pixels, float and JSON answers
    parsed, and several targets matched.  The release compares Qwen2.5-VL's
    resized-image pixels with the truth's frame directly (off by the resize factor —
    644 vs 640 px for MS-CXR), drops float answers, and its inclusive-pixel IoU exceeds
    the standard one for small boxes.  Accepted difference: a plain-string completion
    is read as the text (the release indexed ``completion[0]["content"]`` and raised);
    a sample without a truth box scores None instead of raising.

    Returns:
        list[float | None]: 1.0 or 0.0 per completion; None without a solution.

    Example:
        >>> MedGroundR1Accuracy()(completions=["<answer>[10, 10, 50, 50]</answer>", "<answer>[10.0, 10, 50, 50]</answer>"],
        ...                       solution=[[10, 10, 50, 50]] * 2)
        [1.0, 0.0]
    """

    __name__ = "medground_r1_accuracy"

    def __init__(self):
        super().__init__()  # no frame: the release compares the coordinates as written

    def score(self, batch: Batch):
        rewards, comp = [], {"parsed": [], "iou": []}
        for i, text in enumerate(batch.texts):
            sol = _solution(batch, i)
            if sol is None:
                rewards.append(None)
                continue
            box = released_answer_box(text)
            comp["parsed"].append(float(box is not None))
            if box is None:
                rewards.append(0.0)
                continue
            value = released_iou(box, sol)
            comp["iou"].append(value)
            rewards.append(1.0 if value > 0.5 else 0.0)
        return rewards, comp


@register(
    "medground_r1_format",
    description="released MedGround-R1 format_reward, exact: re.fullmatch of think + answer with a JSON-wrapped integer box",
    options={},
)
class MedGroundR1Format(Reward):
    """Released MedGround-R1 / VLM-R1 ``format_reward``, exactly: 1.0 when
    ``re.fullmatch(r"<think>.*?</think>\\s*<answer>.*?\\{.*\\[\\d+,\\s*\\d+,\\s*\\d+,\\s*\\d+\\].*\\}.*?</answer>",
    content, re.DOTALL)``, else 0.0.

    Consequences of the regex, reproduced: the completion must start with ``<think>``
    and end with ``</answer>`` (no whitespace or text outside); the box must be
    integers and sit inside ``{…}`` (a bare ``[x1, y1, x2, y2]`` answer fails); with
    DOTALL, ``.*`` may span several answer blocks.  The paper describes a format
    reward for think + answer tags only; our ``format`` accepts surrounding whitespace,
    float, bare-list or JSON boxes, and needs the box to be parseable.  Logs ``matched``.

    Returns:
        list[float]: 1.0 or 0.0 per completion.

    Example:
        >>> MedGroundR1Format()(completions=['<think>x</think><answer>{"bbox": [1, 2, 3, 4]}</answer>',
        ...                                  '<think>x</think><answer>[1, 2, 3, 4]</answer>'])
        [1.0, 0.0]
    """

    __name__ = "medground_r1_format"

    def __init__(self):
        super().__init__()

    def score(self, batch: Batch):
        rewards = [1.0 if released_format_match(text) else 0.0 for text in batch.texts]
        return rewards, {"matched": list(rewards)}
