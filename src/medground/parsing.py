"""Tolerant parsing of model completions.  :func:`parse_completion` never raises.

It understands what grounding models actually write:

* ``<think>…</think><answer>…</answer>`` (either part may be missing or truncated),
* JSON objects ``{"bbox_2d": [...]}``, ``{"bbox": [...], "points_1": [...], "points_2": [...]}``,
  lists of such objects, fenced ```` ```json ```` blocks, single-quoted pseudo-JSON,
* bare ``[x1, y1, x2, y2]`` lists, integer or float coordinates,
* boxes cited inside ``<think>`` (Chain-of-Box).

Coordinates are returned as written, in the model's frame; mapping to original pixels
is :mod:`medground.geometry`'s job.

>>> p = parse_completion('<think>left apex [10, 20, 50, 60]</think><answer>{"bbox_2d": [12, 22, 48, 58]}</answer>')
>>> p.boxes, p.think_boxes, p.well_formed
([[12.0, 22.0, 48.0, 58.0]], [[10.0, 20.0, 50.0, 60.0]], True)
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
MAX_DECODE_ATTEMPTS = 400

_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
BARE_BOX_RE = re.compile(rf"[\[(]\s*({_NUM})\s*,\s*({_NUM})\s*,\s*({_NUM})\s*,\s*({_NUM})\s*[\])]")
FENCE_RE = re.compile(r"```(?:json|JSON)?\s*(.*?)(?:```|$)", re.DOTALL)
WELL_FORMED_RE = re.compile(r"\s*<think>(?:(?!</?think>|</?answer>).)*</think>\s*<answer>(?:(?!</?think>|</?answer>).)*</answer>\s*", re.DOTALL)


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


def _matching_close(text: str, start: int) -> int:
    """Index just past the bracket matching ``text[start]`` (quotes respected), or -1."""
    pairs = {"{": "}", "[": "]"}
    stack = []
    quote = None
    i = start
    while i < len(text):
        c = text[i]
        if quote:
            if c == "\\":
                i += 1
            elif c == quote:
                quote = None
        elif c in "\"'":
            quote = c
        elif c in pairs:
            stack.append(pairs[c])
        elif c in "}]":
            if not stack or c != stack.pop():
                return -1
            if not stack:
                return i + 1
        i += 1
    return -1


def _decode(snippet: str):
    """JSON, else Python-literal (single-quoted pseudo-JSON), else None."""
    try:
        return json.loads(snippet)
    except (ValueError, RecursionError):
        pass
    try:
        return ast.literal_eval(snippet)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        pass
    try:  # last resort: quotes swapped, trailing commas dropped
        fixed = re.sub(r",\s*([}\]])", r"\1", snippet.replace("'", '"'))
        return json.loads(fixed)
    except (ValueError, RecursionError):
        return None


def _json_values(text: str) -> list:
    """Every top-level JSON-like value (object or list) found in ``text``, in order."""
    text = text[:MAX_SCAN_CHARS]
    values = []
    i, attempts = 0, 0
    while i < len(text) and attempts < MAX_DECODE_ATTEMPTS:
        j = min((k for k in (text.find("{", i), text.find("[", i)) if k >= 0), default=-1)
        if j < 0:
            break
        attempts += 1
        end = _matching_close(text, j)
        if end > 0:
            value = _decode(text[j:end])
            if value is not None and isinstance(value, (dict, list, tuple)):
                values.append(value)
                i = end
                continue
        i = j + 1
    return values


def _bare_boxes(text: str) -> list[list[float]]:
    out = []
    for m in BARE_BOX_RE.finditer(text[:MAX_SCAN_CHARS]):
        box = [_number(g) for g in m.groups()]
        if all(v is not None for v in box):
            out.append(box)
    return out


def extract_boxes(text: str) -> tuple[list[list[float]], list[list[list[float]]], list]:
    """Boxes, point pairs and decoded objects from an answer text (fenced JSON first)."""
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
    return boxes, points, objects


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


def _parse(text: str) -> Parsed:
    p = Parsed(text=text)
    p.think, think_closed = _section(text, "think", stop=("<answer>",))
    p.answer, answer_closed = _section(text, "answer")
    p.has_think = p.think is not None and think_closed
    p.has_answer = p.answer is not None and answer_closed
    p.well_formed = bool(WELL_FORMED_RE.fullmatch(text))
    if p.answer is not None:
        source = p.answer
    elif "</think>" in text:
        source = text.split("</think>", 1)[1]
    elif p.think is not None:
        source = ""  # only (truncated) reasoning: no answer given
    else:
        source = text
    p.boxes, p.points, p.objects = extract_boxes(source)
    if p.think:
        p.think_boxes = _bare_boxes(p.think)
    return p
