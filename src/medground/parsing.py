"""Tolerant parsing of model completions.  :func:`parse_completion` never raises.

It understands what grounding models actually write:

* ``<think>…</think><answer>…</answer>`` (either part may be missing or truncated),
* JSON objects ``{"bbox_2d": [...]}``, ``{"bbox": [...], "points_1": [...], "points_2": [...]}``,
  lists of such objects, fenced ```` ```json ```` blocks, single-quoted pseudo-JSON,
* bare ``[x1, y1, x2, y2]`` lists, integer or float coordinates,
* the native syntaxes of the model families (:mod:`medground.models.families`):
  Qwen2-VL's ``<|box_start|>(x1,y1),(x2,y2)<|box_end|>`` (also with the special tokens
  stripped by decoding), InternVL's ``<ref>…</ref><box>[[x1, y1, x2, y2], …]</box>``,
  Gemma 3 / MedGemma's ``{"box_2d": [y1, x1, y2, x2]}`` (numbers as written: the family's
  frame says they are y-first), LLaVA-OneVision's ``[0.12, 0.3, 0.5, 0.71]``,
* boxes cited inside ``<think>`` (Chain-of-Box),
* an explicit empty answer — ``[]``, ``{"bbox_2d": []}``, ``{"bbox": null}`` — meaning
  "not in this image" (:attr:`Parsed.empty`), told apart from an answer in which no box
  could be read ("none", prose, a malformed box).

Every box of a multi-box answer is returned, in order, in every syntax above.
Coordinates are returned as written, in the model's frame; mapping to original pixels
is :mod:`medground.geometry`'s job.

>>> p = parse_completion('<think>left apex [10, 20, 50, 60]</think><answer>{"bbox_2d": [12, 22, 48, 58]}</answer>')
>>> p.boxes, p.think_boxes, p.well_formed
([[12.0, 22.0, 48.0, 58.0]], [[10.0, 20.0, 50.0, 60.0]], True)
>>> [(q.boxes, q.empty) for q in map(parse_completion, ["<answer>[]</answer>", "<answer>none found</answer>"])]
[([], True), ([], False)]
"""

from __future__ import annotations

import ast
import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

BOX_KEYS = ("bbox_2d", "bbox", "box_2d", "box", "bounding_box", "bboxes")
POINT_PAIR_KEYS = (("points_1", "points_2"), ("point_1", "point_2"))
POINT_LIST_KEYS = ("point_2d", "points", "points_2d", "keypoints")

MAX_SCAN_CHARS = 20_000  # longer completions are scanned only in their first part
MAX_FAILED_DECODES = 32  # spans that did not decode before the rest of a text is given up as garbage
MAX_NESTING = 16  # a bracketed span nested deeper than this is no answer; it is not decoded
MAX_BRACKET_EVENTS = 2048  # brackets and quotes read per text (an answer listing 500 boxes has ~1 000)

# One way to read each number (no two ways to split a digit run), so that a failed
# match backs off in linear time: "[" + 20 000 digits once took minutes.
_NUM = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
BARE_BOX_RE = re.compile(rf"[\[(]\s*({_NUM})\s*,\s*({_NUM})\s*,\s*({_NUM})\s*,\s*({_NUM})\s*[\])]")
# Qwen2-VL's two corners, "(x1,y1),(x2,y2)", between <|box_start|> and <|box_end|> (which
# skip_special_tokens removes when decoding, so the tokens are not required).
CORNER_PAIR_RE = re.compile(rf"\(\s*({_NUM})\s*,\s*({_NUM})\s*\)\s*,\s*\(\s*({_NUM})\s*,\s*({_NUM})\s*\)")
# What Python literals allow and JSON does not (quotes, tuples, None/True/False, trailing
# commas, unary plus, "1." / ".5", 1_000, 0x10): only then is literal_eval worth its cost.
_PYTHONIC = re.compile(r"'|\(|\+|\bNone\b|\bTrue\b|\bFalse\b|,\s*[}\]]|\d\.(?!\d)|(?<!\d)\.\d|\d_\d|0[xXoObB]")
_TRAILING_COMMA = re.compile(r",\s*([}\]])")
FENCE_RE = re.compile(r"```(?:json|JSON)?\s*(.*?)(?:```|$)", re.DOTALL)
TAGS = ("<think>", "</think>", "<answer>", "</answer>")


@dataclass
class Parsed:
    """What a completion says.  Boxes are ``[x1, y1, x2, y2]`` float lists in the model's frame."""

    text: str = ""
    think: str | None = None
    answer: str | None = None
    boxes: list[list[float]] = field(default_factory=list)
    points: list[list[list[float]]] = field(default_factory=list)
    objects: list[Any] = field(default_factory=list)
    think_boxes: list[list[float]] = field(default_factory=list)
    has_think: bool = False
    has_answer: bool = False
    well_formed: bool = False
    empty: bool = False  # an explicit empty answer ("[]", {"bbox_2d": []}, {"bbox": null}): no target

    @property
    def box(self) -> list[float] | None:
        """The first answer box, or None."""
        return self.boxes[0] if self.boxes else None

    @property
    def point_pair(self) -> list[list[float]] | None:
        """The first pair of key points, or None."""
        return self.points[0] if self.points else None


def _section(text: str, tag: str, stop: tuple[str, ...] = ()) -> tuple[str | None, bool]:
    """Content of the first ``<tag>…</tag>``; when unclosed (truncated), up to the first
    ``stop`` tag or the end.  Returns ``(content, closed)``."""
    start = text.find(f"<{tag}>")
    if start < 0:
        return None, False
    start += len(tag) + 2
    end = text.find(f"</{tag}>", start)
    if end >= 0:
        return text[start:end], True
    cut = [i for i in (text.find(s, start) for s in stop) if i >= 0]
    return text[start : min(cut) if cut else len(text)], False


def tag_block(text: str, tag: str) -> str | None:
    """Content of the first ``<tag>…</tag>`` that is closed: exactly what the released
    codes' ``re.search(rf"<{tag}>(.*?)</{tag}>", text, re.DOTALL).group(1)`` captures
    (None where it finds nothing), in linear time.  The regex retries from every
    ``<tag>`` and scans to the end each time, so text with thousands of ``<tag>`` and
    no ``</tag>`` took quadratic time; here: if the first ``<tag>`` has no ``</tag>``
    after it, no later one has.

    >>> tag_block("<answer>a</answer><answer>b</answer>", "answer"), tag_block("<answer>" * 3, "answer")
    ('a', None)
    """
    start = text.find(f"<{tag}>")
    if start < 0:
        return None
    start += len(tag) + 2
    end = text.find(f"</{tag}>", start)
    return text[start:end] if end >= 0 else None


def _number(v) -> float | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, float)):
        f = float(v)
    elif isinstance(v, str):
        try:
            f = float(v.strip())
        except ValueError:
            return None
    else:
        return None
    return f if math.isfinite(f) else None


def _as_box(v) -> list[float] | None:
    if isinstance(v, (list, tuple)) and len(v) == 4:
        nums = [_number(x) for x in v]
        if all(n is not None for n in nums):
            return nums
    return None


def _as_point(v) -> list[float] | None:
    if isinstance(v, (list, tuple)) and len(v) == 2:
        nums = [_number(x) for x in v]
        if all(n is not None for n in nums):
            return nums
    return None


def _collect(obj, boxes: list, points: list, depth: int = 0) -> None:
    """Walk a decoded JSON value and collect boxes and point pairs in order."""
    if depth > 6:
        return
    box = _as_box(obj)
    if box is not None:
        boxes.append(box)
        return
    if isinstance(obj, dict):
        lowered = {str(k).lower(): v for k, v in obj.items()}
        found = [k for k in BOX_KEYS if k in lowered]
        if not found:  # e.g. {"answer": {"bbox": [...]}}: look one level down
            for val in lowered.values():
                if isinstance(val, (dict, list, tuple)):
                    _collect(val, boxes, points, depth + 1)
        if found:
            val = lowered[found[0]]
            b = _as_box(val)
            if b is not None:
                boxes.append(b)
            elif isinstance(val, (list, tuple)):
                for item in val:
                    _collect(item, boxes, [], depth + 1)
        for k1, k2 in POINT_PAIR_KEYS:
            p1, p2 = _as_point(lowered.get(k1)), _as_point(lowered.get(k2))
            if p1 is not None and p2 is not None:
                points.append([p1, p2])
                break
        else:
            for key in POINT_LIST_KEYS:
                val = lowered.get(key)
                if isinstance(val, (list, tuple)) and len(val) == 2:
                    p1, p2 = _as_point(val[0]), _as_point(val[1])
                    if p1 is not None and p2 is not None:
                        points.append([p1, p2])
                        break
        return
    if isinstance(obj, (list, tuple)):
        for item in obj:
            _collect(item, boxes, points, depth + 1)


_SIGNIFICANT = re.compile(r"[{}\[\]\"'\\\\]")


def _previous_char(text: str, i: int) -> str:
    """The last non-space character before ``text[i]`` ("" at the start)."""
    j = i - 1
    while j >= 0 and text[j].isspace():
        j -= 1
    return text[j] if j >= 0 else ""


def bracket_spans(text: str) -> list[tuple[int, int, int]]:
    """``(start, end, depth)`` of every balanced ``{…}`` / ``[…]`` span in ``text``, in
    order of ``start`` (``end`` is just past the closing bracket, ``depth`` the deepest
    nesting inside, 1 for a flat span).  One pass, linear in ``len(text)``, reading at most
    :data:`MAX_BRACKET_EVENTS` brackets and quotes.

    Brackets inside JSON strings are ignored.  A quote opens a string only where JSON
    allows one — inside brackets, right after ``{``, ``[``, ``,`` or ``:`` (spaces
    allowed) — so an apostrophe in prose ("it's") does not hide what follows.  A
    closing bracket that does not match the innermost open one discards every open
    span (none of them can be well formed).

    >>> bracket_spans("it's " + '{"a": [1, "]"]} [2')
    [(5, 20, 2), (11, 19, 1)]
    """
    pairs = {"{": "}", "[": "]"}
    stack: list[list] = []  # [start, expected closer, deepest nesting inside]
    spans = []
    quote = None
    skip = -1  # index of a character escaped by a backslash inside a string
    for k, m in enumerate(_SIGNIFICANT.finditer(text)):
        if k >= MAX_BRACKET_EVENTS:
            break
        i = m.start()
        c = text[i]
        if i == skip:
            continue
        if quote:
            if c == "\\":
                skip = i + 1
            elif c == quote:
                quote = None
        elif c in "\"'":
            if stack and _previous_char(text, i) in "{[,:":
                quote = c
        elif c in pairs:
            stack.append([i, pairs[c], 1])
        elif c in "}]":
            if stack and stack[-1][1] == c:
                start, _, depth = stack.pop()
                spans.append((start, i + 1, depth))
                if stack:
                    stack[-1][2] = max(stack[-1][2], depth + 1)
            else:
                stack.clear()
    spans.sort()
    return spans


def _decode(snippet: str):
    """JSON, else Python-literal (single-quoted pseudo-JSON, tuples, ``None``), else JSON
    after swapping quotes and dropping trailing commas; None when nothing reads it.  The
    slower fallbacks run only when the snippet has what they fix."""
    try:
        return json.loads(snippet)
    except (ValueError, RecursionError):
        pass
    if not _PYTHONIC.search(snippet):
        return None
    try:
        return ast.literal_eval(snippet)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        pass
    try:  # last resort: quotes swapped, trailing commas dropped
        fixed = _TRAILING_COMMA.sub(r"\1", snippet.replace("'", '"'))
        return json.loads(fixed)
    except (ValueError, RecursionError):
        return None


def _json_values(text: str) -> list:
    """Every top-level JSON-like value (object or list) found in ``text``, in order.

    Candidates are the balanced spans of :func:`bracket_spans`, tried from the left; a
    span that decodes is kept and the scan resumes after it, one that does not is
    skipped in favour of the spans inside it.  The work is bounded: at most
    :data:`MAX_FAILED_DECODES` failed decodes, spans nested deeper than :data:`MAX_NESTING`
    are not tried, and the characters handed to the decoders never exceed a few times
    the length of the text."""
    text = text[:MAX_SCAN_CHARS]
    values = []
    resume, failures, budget = 0, 0, 4 * len(text) + 4096
    for start, end, depth in bracket_spans(text):
        if start < resume or depth > MAX_NESTING:
            continue
        if failures >= MAX_FAILED_DECODES or end - start > budget:
            break
        budget -= end - start
        value = _decode(text[start:end])
        if value is not None and isinstance(value, (dict, list, tuple)):
            values.append(value)
            resume = end
        else:
            failures += 1
    return values


def _bare_boxes(text: str, pattern: re.Pattern = BARE_BOX_RE) -> list[list[float]]:
    out = []
    for m in pattern.finditer(text[:MAX_SCAN_CHARS]):
        box = [_number(g) for g in m.groups()]
        if all(v is not None for v in box):
            out.append(box)
    return out


def extract_boxes(text: str) -> tuple[list[list[float]], list[list[list[float]]], list]:
    """Boxes, point pairs and decoded objects from an answer text (fenced JSON first);
    only the first :data:`MAX_SCAN_CHARS` characters are read."""
    text = text[:MAX_SCAN_CHARS]
    boxes: list = []
    points: list = []
    fenced = [m.group(1) for m in FENCE_RE.finditer(text)]
    objects = []
    for chunk in fenced or [text]:
        objects.extend(_json_values(chunk))
    if fenced and not objects:
        objects = _json_values(text)
    for obj in objects:
        _collect(obj, boxes, points)
    if not boxes:
        boxes = _bare_boxes(text)
    if not boxes:
        boxes = _bare_boxes(text, CORNER_PAIR_RE)
    return boxes, points, objects


def _empty_value(obj, depth: int = 0) -> bool:
    """A decoded value that says "no box": ``[]``, a box key holding ``[]`` / ``None``, or a
    list of only such values."""
    if depth > 3:
        return False
    if isinstance(obj, (list, tuple)):
        return all(_empty_value(v, depth + 1) for v in obj)  # [] is empty; [[]] and [{"bbox": null}] too
    if isinstance(obj, dict):
        lowered = {str(k).lower(): v for k, v in obj.items()}
        found = [k for k in BOX_KEYS if k in lowered]
        return bool(found) and lowered[found[0]] in (None, [], ())
    return False


def is_empty_answer(answer: str, objects: list | None = None) -> bool:
    """Whether an answer text with no box in it is an *explicit* empty answer: one of its
    decoded JSON values (``objects``, as :func:`extract_boxes` returns them) says "no box" —
    ``[]``, ``{"bbox_2d": []}``, ``{"bbox": null}``, ``[{"bbox_2d": []}]``.  Prose ("none",
    "nothing found") is not: such an answer is unparseable.

    >>> is_empty_answer('{"bbox": null}'), is_empty_answer("[{'bbox_2d': []}]"), is_empty_answer("none")
    (True, True, False)
    """
    if objects is None:
        objects = extract_boxes(answer)[2]
    return any(_empty_value(o) for o in objects)


def parse_completion(text) -> Parsed:
    """Parse a completion (a string, or TRL's ``[{"role": ..., "content": ...}]``)."""
    try:
        return _parse(completion_text(text))
    except Exception:  # noqa: BLE001 - the contract is "never raises"
        return Parsed(text=str(text) if isinstance(text, str) else "")


def completion_text(completion) -> str:
    """The assistant text of a plain or conversational (TRL) completion."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, dict):
        content = completion.get("content", "")
        if isinstance(content, list):  # multimodal content parts
            return "".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
        return str(content)
    if isinstance(completion, (list, tuple)):
        return "".join(completion_text(m) for m in completion if isinstance(m, (dict, str)))
    return "" if completion is None else str(completion)


def _first_tag(text: str, start: int) -> tuple[int, str | None]:
    """Position and name of the first of :data:`TAGS` at or after ``start``."""
    found = [(i, tag) for tag in TAGS if (i := text.find(tag, start)) >= 0]
    return min(found) if found else (-1, None)


def well_formed(text: str) -> bool:
    """``<think>…</think><answer>…</answer>`` with only white space around and between
    the blocks and no other tag inside them (the format MedGround-R1's template asks
    for).  Linear: a few ``str.find`` calls.

    >>> well_formed(" <think>a</think> <answer>[1, 2, 3, 4]</answer> "), well_formed("<think>a</think>x<answer></answer>")
    (True, False)
    """
    s = text.lstrip()
    if not s.startswith("<think>"):
        return False
    end, tag = _first_tag(s, len("<think>"))
    if tag != "</think>":
        return False
    s = s[end + len("</think>"):].lstrip()
    if not s.startswith("<answer>"):
        return False
    end, tag = _first_tag(s, len("<answer>"))
    return tag == "</answer>" and not s[end + len("</answer>"):].strip()


def _parse(text: str) -> Parsed:
    p = Parsed(text=text)
    p.think, think_closed = _section(text, "think", stop=("<answer>",))
    p.answer, answer_closed = _section(text, "answer")
    p.has_think = p.think is not None and think_closed
    p.has_answer = p.answer is not None and answer_closed
    p.well_formed = well_formed(text)
    if p.answer is not None:
        source = p.answer
    elif "</think>" in text:
        source = text.split("</think>", 1)[1]
    elif p.think is not None:
        source = ""  # only (truncated) reasoning: no answer given
    else:
        source = text
    p.boxes, p.points, p.objects = extract_boxes(source)
    p.empty = not p.boxes and is_empty_answer(source, p.objects)
    if p.think:
        p.think_boxes = _bare_boxes(p.think)
    return p
