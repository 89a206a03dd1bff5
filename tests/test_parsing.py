import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medground.parsing import completion_text, parse_completion

CASES = [
    ('<think>r</think><answer>{"bbox_2d": [10, 20, 30, 40]}</answer>', [[10, 20, 30, 40]], []),
    ('<answer>{"bbox": [1.5, 2.25, 30, 40], "points_1": [5, 6], "points_2": [7, 8]}</answer>',
     [[1.5, 2.25, 30, 40]], [[[5, 6], [7, 8]]]),
    ('<answer>[{"bbox_2d": [1, 2, 3, 4], "label": "a"}, {"bbox_2d": [5, 6, 7, 8], "label": "b"}]</answer>',
     [[1, 2, 3, 4], [5, 6, 7, 8]], []),
    ('<answer>```json\n{"bbox_2d": [11, 12, 13, 14]}\n```</answer>', [[11, 12, 13, 14]], []),
    ("<answer>{'bbox_2d': [1, 2, 3, 4]}</answer>", [[1, 2, 3, 4]], []),
    ("<answer>[100, 200, 300, 400]</answer>", [[100, 200, 300, 400]], []),
    ("<answer>The region is (10, 20, 30, 40).</answer>", [[10, 20, 30, 40]], []),
    ('```json\n[\n  {"bbox_2d": [5, 6, 70, 80], "label": "nodule"}\n]\n```', [[5, 6, 70, 80]], []),
    ('<answer>{"bbox_2d": [[1, 2, 3, 4]], "point_2d": [[1, 1], [2, 2]]}</answer>', [[1, 2, 3, 4]], [[[1, 1], [2, 2]]]),
    ('<answer>{"answer": {"bbox": [1, 2, 3, 4]}}</answer>', [[1, 2, 3, 4]], []),
    ('<answer>{"bbox_2d": [1e2, -2, 3.5, 4]}</answer>', [[100, -2, 3.5, 4]], []),
    # the families' native syntaxes (numbers as written; the family's frame maps them)
    ("<|object_ref_start|>the left lung<|object_ref_end|><|box_start|>(125,250),(500,750)<|box_end|>",
     [[125, 250, 500, 750]], []),  # Qwen2-VL
    ("the left lung(125, 250), (500, 750) and (600,250),(900,750)", [[125, 250, 500, 750], [600, 250, 900, 750]],
     []),  # Qwen2-VL decoded with skip_special_tokens: the box tokens are gone
    ("<ref>left lung</ref><box>[[125, 250, 500, 750], [600, 250, 900, 750]]</box>",
     [[125, 250, 500, 750], [600, 250, 900, 750]], []),  # InternVL, two instances
    ('```json\n[\n  {"box_2d": [250, 125, 750, 500], "label": "left lung"}\n]\n```', [[250, 125, 750, 500]], []),
    ("[0.125, 0.25, 0.5, 0.75]", [[0.125, 0.25, 0.5, 0.75]], []),  # LLaVA-OneVision
]


@pytest.mark.parametrize("text,boxes,points", CASES)
def test_answer_formats(text, boxes, points):
    p = parse_completion(text)
    assert p.boxes == [[float(v) for v in b] for b in boxes]
    assert p.points == points


def test_think_answer_and_chain_of_box():
    text = "<think>The heart [100, 120, 300, 310] is normal; the nodule sits at [40, 50, 60, 70].</think>\n<answer>{\"bbox_2d\": [41, 50, 61, 70]}</answer>"
    p = parse_completion(text)
    assert p.well_formed and p.has_think and p.has_answer
    assert p.think_boxes == [[100, 120, 300, 310], [40, 50, 60, 70]]
    assert p.box == [41, 50, 61, 70]


def test_truncations_and_missing_parts():
    p = parse_completion('<think>looking at [1, 2, 3, 4]')  # cut inside the reasoning
    assert p.boxes == [] and not p.has_think and p.think_boxes == [[1, 2, 3, 4]]
    p = parse_completion('<think>a</think><answer>{"bbox_2d": [1, 2, 3')
    assert p.boxes == [] and p.has_think and not p.has_answer and not p.well_formed
    p = parse_completion('<think>a</think> {"bbox_2d": [1, 2, 3, 4]}')  # no answer tags
    assert p.boxes == [[1, 2, 3, 4]] and not p.has_answer
    p = parse_completion("<think>a</think><think>b</think><answer>[1, 2, 3, 4]</answer>")
    assert not p.well_formed  # two reasoning blocks


def test_non_finite_and_wrong_arity_are_ignored():
    assert parse_completion('<answer>{"bbox_2d": [1, 2, 3]}</answer>').boxes == []
    assert parse_completion('<answer>{"bbox_2d": ["a", 2, 3, 4]}</answer>').boxes == []
    assert parse_completion('<answer>{"bbox_2d": [NaN, 2, 3, 4]}</answer>').boxes == []


def test_corner_pairs_are_a_last_resort():
    """"(x1,y1),(x2,y2)" is read only when no JSON or bracketed box is there."""
    assert parse_completion('{"bbox_2d": [1, 2, 3, 4]} at (5,6),(7,8)').boxes == [[1, 2, 3, 4]]
    assert parse_completion("points (5,6) and (7,8)").boxes == []  # not a comma-joined pair
    assert parse_completion("(5,6),(7,8,9)").boxes == []


def test_conversational_completion():
    msg = [{"role": "assistant", "content": "<answer>[1, 2, 3, 4]</answer>"}]
    assert completion_text(msg) == "<answer>[1, 2, 3, 4]</answer>"
    assert parse_completion(msg).boxes == [[1, 2, 3, 4]]
    parts = [{"role": "assistant", "content": [{"type": "text", "text": "<answer>[1, 2, 3, 4]</answer>"}]}]
    assert parse_completion(parts).boxes == [[1, 2, 3, 4]]


ALPHABET = st.sampled_from(list('<>/{}[]()",:\'0123456789.-e ') + ["<think>", "</think>", "<answer>", "</answer>", "bbox_2d", "points_1", "```json", "NaN", "\n"])


@settings(max_examples=400, deadline=None)
@given(st.lists(ALPHABET, max_size=60).map("".join))
def test_never_raises_on_token_soup(text):
    p = parse_completion(text)
    for b in p.boxes + p.think_boxes:
        assert len(b) == 4 and all(isinstance(v, float) for v in b)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_never_raises_on_arbitrary_text(text):
    parse_completion(text)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 80))
def test_never_raises_on_truncations(cut):
    full = '<think>heart [1, 2, 3, 4]</think><answer>[{"bbox": [10, 20, 30, 40], "points_1": [12, 22], "points_2": [28, 38]}]</answer>'
    p = parse_completion(full[: len(full) - cut])
    if cut == 0:
        assert p.boxes == [[10, 20, 30, 40]] and p.points == [[[12, 22], [28, 38]]]


@pytest.mark.parametrize("obj", [None, 12, {"content": None}, [None], object()])
def test_odd_objects(obj):
    assert parse_completion(obj).boxes == []


def test_pathological_length_is_bounded():
    text = "<answer>" + "[" * 50_000 + "</answer>"
    assert parse_completion(text).boxes == []


# --------------------------------------------------------------------------- zero, one or many boxes


@pytest.mark.parametrize("answer", [
    "[]", " [ ] ", '{"bbox_2d": []}', '{"bbox": null}', '{"bbox": null, "points_1": null, "points_2": null}',
    "[{'bbox_2d': []}]", "```json\n[]\n```", '{"bboxes": []}', "{'bbox': None}",
])
def test_an_explicit_empty_answer_is_not_unparseable(answer):
    p = parse_completion(f"<think>no such finding</think><answer>{answer}</answer>")
    assert p.boxes == [] and p.empty and p.well_formed


@pytest.mark.parametrize("answer", [
    "none", "no box", "", "nothing found", '{"label": "effusion"}', "[1, 2, 3]", '{"bbox_2d": [10, 20]}', "{}",
])
def test_an_answer_without_a_box_is_unparseable_not_empty(answer):
    p = parse_completion(f"<think>x</think><answer>{answer}</answer>")
    assert p.boxes == [] and not p.empty


def test_reasoning_alone_is_not_an_empty_answer():
    assert not parse_completion("<think>it could be [] or nothing").empty  # truncated before the answer
    assert not parse_completion("<think>[]</think>").empty


MULTI = [[10.0, 20.0, 30.0, 40.0], [50.0, 60.0, 70.0, 80.0], [1.5, 2.0, 3.0, 4.0]]


@pytest.mark.parametrize("answer", [
    "[[10, 20, 30, 40], [50, 60, 70, 80], [1.5, 2, 3, 4]]",
    '[{"bbox_2d": [10, 20, 30, 40]}, {"bbox_2d": [50, 60, 70, 80]}, {"bbox_2d": [1.5, 2, 3, 4]}]',
    '{"bbox_2d": [[10, 20, 30, 40], [50, 60, 70, 80], [1.5, 2, 3, 4]]}',
    '{"boxes": [[10, 20, 30, 40], [50, 60, 70, 80], [1.5, 2, 3, 4]]}',
    '{"bbox": [10, 20, 30, 40]} {"bbox": [50, 60, 70, 80]} {"bbox": [1.5, 2, 3, 4]}',
    "```json\n[{'bbox_2d': [10, 20, 30, 40]}, {'bbox_2d': [50, 60, 70, 80]}, {'bbox_2d': [1.5, 2, 3, 4]}]\n```",
    "(10, 20, 30, 40), (50, 60, 70, 80) and (1.5, 2, 3, 4)",
])
def test_every_box_of_a_multi_box_answer_in_order(answer):
    p = parse_completion(f"<think>three regions</think><answer>{answer}</answer>")
    assert p.boxes == MULTI and not p.empty


# --------------------------------------------------------------------------- linear time on hostile input
# The same parser runs inside every GRPO reward on text a policy generates, and in `evaluate` on
# files someone sent: it must stay linear.  "[" + 20 000 digits once took 104 s (regex backtracking).
# The budget is generous on purpose (0.5 s per call, on a 1 MB input too); the actual figures are in
# benchmarks/bench_parsing.py.

import time  # noqa: E402

from medground.parsing import MAX_SCAN_CHARS, bracket_spans, extract_boxes  # noqa: E402

BUDGET_S = 0.5
HOSTILE = {
    "digit run": ("[", "1"),
    "digit run in parentheses": ("(", "9"),
    "open brackets": ("", "["),
    "open braces": ("", "{"),
    "balanced nesting": ("", "[]"),  # repeated as "[[[...]]]" below
    "think tags": ("", "<think>"),
    "answer tags": ("", "<answer>"),
    "partial boxes": ("", "[1, 2, 3, "),
    "partial floats": ("", "(1.5e3, -2., .5, "),
    "apostrophes and brackets": ("", "'["),
    "string openers": ("", '["'),
    "fences": ("", "```json\n{"),
    "objects that fail to decode": ("", "{a: 1} "),
    "python-ish failures": ("", "{'a': (1} "),
    "whitespace runs": ("[", " " * 50 + ","),
    "partial corner pairs": ("", "(1, 2), ("),
    "corner pair openers": ("(", " 1 ,"),
    "empty answers": ("", "[] "),
    "empty box keys": ("", '{"bbox_2d": []}, '),
    "nested empty lists": ("", "[[], [[]], "),
}


def _hostile(name: str, size: int) -> str:
    head, unit = HOSTILE[name]
    if name == "balanced nesting":
        return "[" * (size // 2) + "]" * (size // 2)
    return head + unit * max(1, (size - len(head)) // len(unit))


def _timed(fn, *args) -> float:
    t = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t


@pytest.mark.parametrize("size", [MAX_SCAN_CHARS, 1_000_000])
@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_input_parses_within_budget(name, size):
    text = _hostile(name, size)
    for wrap in (text, f"<think>{text}</think><answer>{text}</answer>"):
        assert _timed(parse_completion, wrap) < BUDGET_S, f"{name}, {len(wrap)} chars"
    assert _timed(extract_boxes, text) < BUDGET_S
    assert _timed(bracket_spans, text[:MAX_SCAN_CHARS]) < BUDGET_S


def test_a_real_answer_after_hostile_text_is_still_found():
    junk = "[" + "7" * 5000 + " {a: 1} " * 30 + "'[" * 100
    p = parse_completion(f"<think>{junk}</think><answer>{junk}]]]]" + ' {"bbox_2d": [10, 20, 30, 40]}</answer>')
    assert p.boxes == [[10.0, 20.0, 30.0, 40.0]]


CHUNKS = st.sampled_from([
    "[", "]", "{", "}", "(", ")", "'", '"', "\\", ",", ":", " ", "\n", "1", "12345", "-", ".", "e", "+",
    "<think>", "</think>", "<answer>", "</answer>", "```json", "```", '"bbox_2d": ', "[1, 2, 3, 4]",
    "[1, 2, 3, ", '{"bbox": [', "'points_1': (", "None", "NaN", "it's ",
])


@settings(max_examples=40, deadline=None)
@given(st.lists(CHUNKS, min_size=1, max_size=12), st.integers(2_000, 60_000))
def test_hypothesis_hostile_repetitions_stay_within_budget(chunks, size):
    """Any short pattern of the characters the parser cares about, repeated to a long text."""
    unit = "".join(chunks)
    text = unit * max(1, size // len(unit))
    assert _timed(parse_completion, text) < BUDGET_S


WELL_FORMED_DEFINITION = re.compile(  # the regex the linear check replaced: its definition
    r"\s*<think>(?:(?!</?think>|</?answer>).)*</think>\s*<answer>(?:(?!</?think>|</?answer>).)*</answer>\s*", re.DOTALL)
TAG_SOUP = st.sampled_from(["<think>", "</think>", "<answer>", "</answer>", " ", "\n", "\t", "\u2003", "a", "<", ">",
                            "/", "[1, 2, 3, 4]", "<think", "answer>"])


@settings(max_examples=500, deadline=None)
@given(st.lists(TAG_SOUP, max_size=14).map("".join))
def test_well_formed_matches_its_regex_definition(text):
    assert parse_completion(text).well_formed == bool(WELL_FORMED_DEFINITION.fullmatch(text))
