"""The released regexes of MedGround-R1 / VLM-R1 / MedReasoner, run in linear time.

Each released pattern stays in its module as the definition; the function that replaced
``re`` must give exactly what the pattern gives (hypothesis, on short texts made of the
pieces the patterns care about) and finish within a generous time budget on long hostile
texts a policy can generate (thousands of ``<answer>`` without ``</answer>``, of ``{``, of
partial boxes).  Run by ``re``, the answer-tag search is quadratic and the format's
nested ``.*`` worse: 20 000 characters of ``<answer>`` took seconds, 1 MB hours.
The measured figures are in ``benchmarks/bench_released_patterns.py``.
"""

from __future__ import annotations

import re
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medground import rewards
from medground.evaluate.readers import VLM_R1_ANSWER_RE, VLM_R1_BOX_RE, extract_vlm_r1_box
from medground.parsing import tag_block
from medground.rewards.medground_r1 import (
    ANSWER_TAG_PATTERN,
    BBOX_PATTERN,
    FORMAT_PATTERN,
    released_answer_box,
    released_format_match,
)
from medground.rewards.medreasoner import ANSWER_BLOCK_RE, THINK_BLOCK_RE, extract_think_answer

# --------------------------------------------------------------------------- the definitions, run by re


def regex_answer_box(content: str):
    m = re.search(ANSWER_TAG_PATTERN, content, re.DOTALL)
    if not m:
        return None
    b = re.search(BBOX_PATTERN, m.group(1).strip())
    return [int(b.group(k)) for k in range(1, 5)] if b else None


def regex_format(content: str) -> bool:
    return re.fullmatch(FORMAT_PATTERN, content, re.DOTALL) is not None


def regex_vlm_r1_box(content: str):
    m = VLM_R1_ANSWER_RE.search(content)
    if not m:
        return None
    b = VLM_R1_BOX_RE.search(m.group(1).strip())
    return [int(b.group(i)) for i in range(1, 5)] if b else None


def regex_think_answer(text: str):
    think, answer = THINK_BLOCK_RE.search(text), ANSWER_BLOCK_RE.search(text)
    return (think.group(1) if think else None, answer.group(1) if answer else None)


# --------------------------------------------------------------------------- same results

PIECES = st.sampled_from([
    "<think>", "</think>", "<answer>", "</answer>", "{", "}", "[", "]", ",", ", ", " ", "\n", "\u2003", "1", "23",
    "\u0663", "-", ".", "a", "<", ">", "/", '"bbox": ', "[1, 2, 3, 4]", "[10,20,30,40]", "[1, 2, 3", "{[5, 6, 7, 8]}",
    "<think", "answer>",
])
SOUP = st.lists(PIECES, max_size=16).map("".join)
# texts shaped like completions, so that the format and box patterns match often
SHAPED = st.tuples(SOUP, SOUP, SOUP, SOUP, st.sampled_from(["", " ", "\n", "x"])).map(
    lambda t: f"<think>{t[0]}</think>{t[4]}<answer>{t[1]}{{{t[2]}}}{t[3]}</answer>")


@settings(max_examples=1500, deadline=None)
@given(st.one_of(SOUP, SHAPED))
def test_linear_functions_equal_their_released_patterns(text):
    assert released_answer_box(text) == regex_answer_box(text)
    assert released_format_match(text) == regex_format(text)
    assert extract_vlm_r1_box(text) == regex_vlm_r1_box(text)
    assert extract_think_answer(text) == regex_think_answer(text)
    assert tag_block(text, "answer") == (m.group(1) if (m := re.search(ANSWER_TAG_PATTERN, text, re.DOTALL)) else None)


@pytest.mark.parametrize("text", [
    '<think>a</think><answer>{"bbox_2d": [1, 2, 3, 4]}</answer>',
    '<think>a</think> \n<answer>x{y[1,2,3,4]z}w</answer>',
    "<think>a</think>\u2003<answer>{[\u0661, 2, 3, 4]}</answer>",  # Unicode space and digit, as \s and \d read them
    '<think></think></think> <answer>{[1, 2, 3, 4]}</answer>',  # the second </think> is followed by the answer
    '<think>a</think>x</think><answer>{[1, 2, 3, 4]}</answer>',
    '<think>a</think><answer>{"x": 1}</answer><answer>{"bbox_2d": [1, 2, 3, 4]}</answer>',
    '<think>a</think><answer>{[1, 2, 3, 4]</answer>',  # no closing brace after the box
    '<think>a</think><answer>}[1, 2, 3, 4]{</answer>',
    "<think></answer>",
])
def test_format_edge_cases_agree_with_the_released_regex(text):
    assert released_format_match(text) == regex_format(text)


def test_vlm_r1_takes_the_last_box_before_the_last_brace():
    text = "<answer>{[1, 2, 3, 4] [5, 6, 7, 8]} [9, 9, 9, 9]</answer>"
    assert extract_vlm_r1_box(text) == regex_vlm_r1_box(text) == [5, 6, 7, 8]


def test_a_coordinate_too_long_for_int_is_no_box():
    """The release raised ``ValueError`` (Python's 4 300-digit limit): the reward caught it
    into 0, the evaluation script crashed.  Here it is no box, and no exception."""
    digits = "1" * 5000
    assert extract_vlm_r1_box(f"<answer>{{[{digits}, 1, 2, 3]}}</answer>") is None
    assert released_answer_box(f"<answer>[{digits}, 1, 2, 3]</answer>") is None
    acc = rewards.get("medground_r1_accuracy")
    assert acc(completions=[f"<answer>[{digits}, 1, 2, 3]</answer>"], solution=[[1, 1, 5, 5]]) == [0.0]


# --------------------------------------------------------------------------- linear time on hostile input

BUDGET_S = 0.5  # per call, on up to 1 MB: generous, so that a loaded machine does not fail it
HOSTILE_UNITS = {
    "answer tags, never closed": "<answer>",
    "think tags, never closed": "<think>",
    "closed think then answer tags": "</think><answer>",
    "open braces": "{",
    "brace then partial box": "{[1, 2, 3, ",
    "boxes in braces": "{[1, 2, 3, 4]",
    "digit runs": "[" + "7" * 50,
    "white space runs": "</think>" + " " * 50,
    "brackets": "[",
}


def _hostile(unit: str, size: int, shape: str) -> str:
    body = unit * max(1, size // len(unit))
    if shape == "bare":
        return body
    if shape == "answer":
        return f"<think>x</think><answer>{body}</answer>"
    return f"<think>{body}</think><answer>{body}"  # format-shaped, never closed


def _seconds(fn, *args) -> float:
    t = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t


FUNCTIONS = {
    "released_answer_box": released_answer_box,
    "released_format_match": released_format_match,
    "extract_vlm_r1_box": extract_vlm_r1_box,
    "extract_think_answer": extract_think_answer,
    "medground_r1_format reward": lambda t: rewards.get("medground_r1_format")(completions=[t]),
    "medground_r1_accuracy reward": lambda t: rewards.get("medground_r1_accuracy")(completions=[t],
                                                                                   solution=[[1, 1, 5, 5]]),
}


@pytest.mark.parametrize("shape", ["bare", "answer", "format-shaped"])
@pytest.mark.parametrize("unit", sorted(HOSTILE_UNITS))
def test_hostile_text_of_1mb_within_budget(unit, shape):
    text = _hostile(HOSTILE_UNITS[unit], 1_000_000, shape)
    for name, fn in FUNCTIONS.items():
        assert _seconds(fn, text) < BUDGET_S, f"{name} on {unit} ({shape}, {len(text)} chars)"


CHUNKS = st.sampled_from(["<think>", "</think>", "<answer>", "</answer>", "{", "}", "[", "]", "1", "123", ",", " ",
                          "\n", "[1, 2, 3, 4]", "[1, 2, 3, ", '"bbox": ', "x"])


@settings(max_examples=40, deadline=None)
@given(st.lists(CHUNKS, min_size=1, max_size=10), st.integers(10_000, 200_000))
def test_any_repeated_pattern_stays_within_budget(chunks, size):
    unit = "".join(chunks)
    text = unit * max(1, size // len(unit))
    for name, fn in FUNCTIONS.items():
        assert _seconds(fn, text) < BUDGET_S, f"{name} on {unit!r} x {len(text) // len(unit)}"
