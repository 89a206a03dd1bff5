"""Readers of prediction files: ``medground``, ``vlm-r1`` and ``medreasoner``.

Each reader yields :class:`PredRecord` objects that carry the line of the file the
record starts on, so every error names ``FILE:LINE``.  A malformed file (bad JSON,
a missing required field, a box that is not four numbers) raises
:class:`~medground.errors.MedgroundError`; a prediction that is merely *wrong or
empty* (no box found in the answer) is a record with ``box=None`` and is scored 0.

Formats
-------
``medground``
    JSONL written by ``medground predict``: ``{"id", "completion", "boxes", "points",
    "mask", "frame", "error"}``.  Boxes are original pixels.  Ground truth comes from
    the dataset (``--data``).
``vlm-r1``
    The evaluation logs of VLM-R1 / MedGround-R1 (``test_rec_r1.py``):
    ``{"accuracy", "results": [{"question", "ground_truth", "model_output",
    "extracted_answer", "correct"}]}``; ground truth is inside the log.
``medreasoner``
    The per-sample output of MedReasoner's ``eval/eval.py`` (a JSON array of
    ``{"id", "problem", "supercategory", "category", "output", "think", "bbox",
    "points", "iou", "pdice"}``, plus ``dice_points`` / ``dice_bbox`` /
    ``dice_joint`` once its ``statistic.py`` has run).

The formats live in :data:`READERS` (a :class:`medground.registry.Registry` of
:class:`PredictionReader`: how to read the file, and how to recognise it for
``--format auto``); adding a format is one ``READERS.register`` call.

>>> READERS.names()
['medground', 'medreasoner', 'vlm-r1']
>>> list(READERS.entry("vlm-r1").options)
['reextract']
>>> extract_vlm_r1_box('<think>..</think><answer>{"bbox_2d": [1, 2, 30, 40]}</answer>')
[1, 2, 30, 40]
>>> extract_vlm_r1_box('<answer>{"bbox_2d": [1, 2, 30, 40]}') is None   # no closing tag
True
"""

from __future__ import annotations

import bisect
import collections
import json
import math
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..data.schema import iter_jsonl
from ..errors import MedgroundError, where
from ..parsing import tag_block
from ..registry import Option, Registry
from ..rewards.medground_r1 import BBOX_RE, box_ints

#: name -> :class:`PredictionReader` (filled at the end of this module).
READERS = Registry("prediction format", hint="or auto: detected from the content")
#: The prediction formats (the registry: iterating gives the names).
FORMATS = READERS
#: What ``--format auto`` falls back to when no reader recognises the file.
DEFAULT_FORMAT = "medground"
#: Where a format's ground truth comes from (see :class:`PredictionReader`).
TRUTH_SOURCES = ("dataset", "embedded", "stored")

#: The released VLM-R1 ``extract_bbox_answer`` (src/eval/test_rec_r1.py), verbatim patterns: the
#: definition of :func:`extract_vlm_r1_box`, which finds the same box in linear time (``re`` runs
#: them in quadratic time on text with many ``<answer>`` or ``{``; tests/test_released_patterns.py).
VLM_R1_ANSWER_RE = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
VLM_R1_BOX_RE = re.compile(r"\{.*\[(\d+),\s*(\d+),\s*(\d+),\s*(\d+)]\s*.*\}", re.DOTALL)
#: What that script stores when it finds no box.
VLM_R1_NOT_FOUND = [0, 0, 0, 0]


@dataclass
class PredRecord:
    """One prediction, as read from a file (before it is joined to ground truth).

    ``box`` is the primary predicted box (``xyxy``) or None when the file has none;
    ``boxes`` every predicted box (None: only ``box`` is known); ``empty`` marks an
    explicit empty answer (``"boxes": []`` without a completion, or a completion answering
    ``[]``: "not in this image"), which is ``"ok"``, not unparseable.  ``status`` is
    ``"ok"``, ``"unparseable"`` (answer present but no box found) or ``"error"`` (the
    producer recorded a failure).  Foreign formats may carry their own ground truth
    (``gt_boxes``) and stored scores (``stored``).
    """

    line: int
    index: int
    id: str | None
    box: list[float] | None = None
    boxes: list[list[float]] | None = None
    empty: bool = False
    points: list[list[float]] | None = None
    mask: Any = None
    status: str = "ok"
    completion: str | None = None
    frame: str | None = None
    needs_parse: bool = False
    gt_boxes: list[list[float]] | None = None
    query: str | None = None
    category: str | None = None
    supercategory: str | None = None
    stored: dict[str, float] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def predicted_boxes(self) -> list[list[float]]:
        """Every predicted box of an ``ok`` record (``[box]`` when only ``box`` is known); [] otherwise."""
        if self.status != "ok":
            return []
        if self.boxes is not None:
            return self.boxes
        return [self.box] if self.box is not None else []


@dataclass(frozen=True)
class PredictionReader:
    """One prediction-file format.

    ``read(path, **options)`` gives the file's records (an iterable of
    :class:`PredRecord`, or ``(records, info)`` when the file describes itself);
    ``sniff(text, path)`` says whether a file with this content is in the format
    (None: the reader is only chosen by name or as the fallback).  ``truth`` says how
    :func:`medground.evaluate.evaluate` scores the records: ``"dataset"`` (joined by id to
    the dataset, which is required; boxes in original pixels, completions parsed in their
    frame), ``"embedded"`` (``gt_boxes`` inside the file; the dataset only adds ids and
    categories) or ``"stored"`` (the file's own per-sample scores, or with a dataset its
    boxes / points, in the given frame, recomputed against it)."""

    read: Callable[..., Any]
    sniff: Callable[[str, Any], bool] | None = None
    truth: str = "dataset"

    def __post_init__(self):
        if self.truth not in TRUTH_SOURCES:
            raise ValueError(f"truth must be one of {', '.join(TRUTH_SOURCES)}, got {self.truth!r}")

    def __call__(self, path, **options) -> tuple[list[PredRecord], dict]:
        out = self.read(path, **options)
        return out if isinstance(out, tuple) else (list(out), {})


def detect_format(path) -> str:
    """Guess the format of a prediction file from its content: the first registered
    reader whose ``sniff`` recognises it, else ``medground`` (JSON lines).

    A JSON array is ``medreasoner``; a JSON object with ``results`` is ``vlm-r1``.
    """
    text = _read_text(path)
    for entry in READERS.entries():
        reader = entry.load()
        if reader.sniff is not None and reader.sniff(text, path):
            return entry.name
    return DEFAULT_FORMAT


def read_predictions(path, fmt: str = "auto", *, reextract: bool = False) -> tuple[str, list[PredRecord], dict]:
    """Read a prediction file; returns ``(format, records, source_info)``.

    ``source_info`` holds what the file says about itself (e.g. the ``accuracy`` of a
    VLM-R1 log and how far re-extraction agrees with the stored answers).  ``reextract``
    is an option of ``vlm-r1`` only.
    """
    if not isinstance(path, (str, os.PathLike)):  # in-memory prediction dicts (medground format)
        if fmt not in (None, "", "auto", "medground"):
            raise MedgroundError(f"in-memory predictions are read as format 'medground', not {fmt!r}")
        return "medground", medground_records(path), {}
    if fmt in (None, "", "auto"):
        fmt = detect_format(path)
    entry = READERS.entry(fmt)
    options = {"reextract": True} if reextract else {}
    entry.check_options(options, READERS.kind)
    records, info = entry.load()(path, **options)
    return entry.name, records, info


# --------------------------------------------------------------------------- medground


def read_medground(path) -> Iterator[PredRecord]:
    """Records of a ``medground`` JSONL prediction file (see the module docstring)."""
    for index, (line, obj, err) in enumerate(iter_jsonl(path)):
        if err:
            raise MedgroundError(f"{where(path, line)}: {err}")
        yield medground_record(obj, line=line, index=index, source=path)


def medground_records(rows, source="<predictions>") -> list[PredRecord]:
    """Records from in-memory prediction dicts (``medground`` format); row ``k`` is "line" ``k + 1``."""
    return [medground_record(obj, line=k + 1, index=k, source=source) for k, obj in enumerate(rows)]


def medground_record(obj, *, line: int, index: int, source) -> PredRecord:
    """One ``medground`` prediction dict as a record; malformed fields raise naming the line."""
    sid = _object_id(obj, source, line)
    loc = where(source, line, sid)
    boxes = _boxes_field(obj.get("boxes"), loc, "boxes")
    completion = obj.get("completion")
    if completion is not None and not isinstance(completion, str):
        raise MedgroundError(f"{loc}: field 'completion' must be a string")
    rec = PredRecord(
        line=line,
        index=index,
        id=sid,
        points=_points_field(obj.get("points"), loc),
        mask=obj.get("mask"),
        completion=completion,
        frame=obj.get("frame"),
    )
    if obj.get("error"):
        rec.status = "error"
        rec.extra["error"] = str(obj["error"])
    elif boxes:
        rec.box, rec.boxes = boxes[0], boxes
    elif completion and completion.strip():
        rec.needs_parse = True
    elif obj.get("boxes") is not None:  # "boxes": [] and nothing else: the answer "not in this image"
        rec.boxes, rec.empty = [], True
    else:
        rec.status = "unparseable"
    return rec


# --------------------------------------------------------------------------- vlm-r1


def extract_vlm_r1_box(content: str) -> list[int] | None:
    """The box the VLM-R1 / MedGround-R1 eval script extracts from a completion.

    Same result as its ``extract_bbox_answer`` (:data:`VLM_R1_ANSWER_RE` then
    :data:`VLM_R1_BOX_RE`): the text between ``<answer>`` and ``</answer>`` (both
    required), stripped, then the *last* ``[d, d, d, d]`` of non-negative integers that
    lies after its first ``{`` and before its last ``}`` (the leading ``.*`` is greedy).
    Where that script returns ``[0, 0, 0, 0]`` this returns None; also for a coordinate
    too long for ``int``, where the script raised.
    """
    answer = tag_block(content or "", "answer")
    if answer is None:
        return None
    text = answer.strip()
    first, last = text.find("{"), text.rfind("}")
    # boxes never overlap, so the last one that ends before the last "}" is the one the regex takes
    found = collections.deque(BBOX_RE.finditer(text, first + 1, last) if 0 <= first < last else (), maxlen=1)
    return box_ints(found[0] if found else None)


def read_vlm_r1(path, *, reextract: bool = False) -> tuple[list[PredRecord], dict]:
    """Records of a VLM-R1 / MedGround-R1 eval log.

    The predicted box is the file's ``extracted_answer`` (what its ``accuracy`` was
    computed from); with ``reextract=True`` it is extracted again from
    ``model_output`` with :func:`extract_vlm_r1_box`.  ``[0, 0, 0, 0]`` is that
    script's "nothing found" and counts as unparseable.  The returned info reports
    the file's ``accuracy`` and how many stored answers disagree with re-extraction.
    """
    text = _read_text(path)
    obj = _load_json_document(path, text)
    if not isinstance(obj, dict) or not isinstance(obj.get("results"), list):
        raise MedgroundError(f"{path}: not a VLM-R1 log (expected a JSON object with a 'results' list)")
    offsets = _member_array_offsets(text, "results")
    lines = _LineIndex(text)
    records = []
    disagree = 0
    for index, item in enumerate(obj["results"]):
        line = lines.line(offsets[index]) if index < len(offsets) else None
        loc = f"{where(path, line)} [item {index}]"
        if not isinstance(item, dict):
            raise MedgroundError(f"{loc}: expected a JSON object, got {type(item).__name__}")
        if "ground_truth" not in item:
            raise MedgroundError(f"{loc}: missing field 'ground_truth'")
        if "extracted_answer" not in item and "model_output" not in item:
            raise MedgroundError(f"{loc}: missing field 'extracted_answer' (and no 'model_output' to extract from)")
        gt = _box4(item["ground_truth"], loc, "ground_truth")
        output = item.get("model_output")
        if output is not None and not isinstance(output, str):
            raise MedgroundError(f"{loc}: field 'model_output' must be a string")
        again = extract_vlm_r1_box(output) if output is not None else None
        if item.get("extracted_answer") is not None:
            stored = _box4(item["extracted_answer"], loc, "extracted_answer")
            stored = None if stored == [float(v) for v in VLM_R1_NOT_FOUND] else stored
            if output is not None and _floats(again) != stored:
                disagree += 1
        else:
            stored = None
        use_again = reextract or "extracted_answer" not in item  # null extracted_answer: nothing found
        if reextract and output is None:
            raise MedgroundError(f"{loc}: missing field 'model_output' (needed to re-extract)")
        box = _floats(again) if use_again else stored
        rec = PredRecord(
            line=line or 0,
            index=index,
            id=str(item.get("id", index)),
            box=box,
            status="ok" if box is not None else "unparseable",
            completion=output,
            gt_boxes=[gt],
            query=item.get("question"),
        )
        if "correct" in item:
            rec.extra["correct"] = item["correct"]
        records.append(rec)
    info = {
        "accuracy_in_file": obj.get("accuracy"),
        "answers_from": "model_output (re-extracted)" if reextract else "extracted_answer",
        "n_reextract_disagree": disagree,
    }
    return records, info


# --------------------------------------------------------------------------- medreasoner


def read_medreasoner(path) -> Iterator[PredRecord]:
    """Records of MedReasoner's per-sample evaluation output (a JSON array).

    ``bbox`` / ``points`` as the model wrote them (None after a parse failure, when
    ``think`` is ``"error"``); stored ``iou`` / ``pdice`` are kept in ``stored`` (MedReasoner's
    own numbers, fractions), and the mask Dice fields when present.
    """
    text = _read_text(path)
    obj = _load_json_document(path, text)
    if not isinstance(obj, list):
        raise MedgroundError(f"{path}: not a MedReasoner output file (expected a JSON array of per-sample objects)")
    offsets = _array_offsets(text, _skip_ws(text, 0))
    lines = _LineIndex(text)
    for index, item in enumerate(obj):
        line = lines.line(offsets[index]) if index < len(offsets) else 0
        sid = _object_id(item, path, line)
        loc = where(path, line, sid)
        for key in ("bbox", "iou"):
            if key not in item:
                raise MedgroundError(f"{loc}: missing field '{key}'")
        box = _loose_box(item.get("bbox"))
        points = _loose_points(item.get("points"))
        failed = item.get("think") == "error"
        rec = PredRecord(
            line=line,
            index=index,
            id=sid,
            box=None if failed else box,
            points=None if failed else points,
            status="unparseable" if failed or box is None else "ok",
            completion=item.get("output"),
            query=item.get("problem"),
            category=_opt_str(item.get("category")),
            supercategory=_opt_str(item.get("supercategory")),
        )
        for key in ("iou", "pdice", "dice_joint", "dice_bbox", "dice_points"):
            if key in item and item[key] is not None:
                try:
                    rec.stored[key] = float(item[key])
                except (TypeError, ValueError):
                    raise MedgroundError(f"{loc}: field '{key}' must be a number, got {item[key]!r}") from None
        yield rec


# --------------------------------------------------------------------------- the registry


def _is_json_array(text: str, path) -> bool:
    return text.lstrip().startswith("[")


def _is_vlm_r1_log(text: str, path) -> bool:
    """A JSON object with ``results`` (a one-line object also needs no ``id``: that is a
    medground JSONL file with a single line)."""
    head = text.lstrip()
    if not head.startswith("{"):
        return False
    if head.splitlines()[0].strip() == "{":  # a pretty-printed JSON document, not JSON lines
        obj = _load_json_document(path, text)
        return isinstance(obj, dict) and "results" in obj
    try:
        obj = json.loads(text)
    except json.JSONDecodeError:  # JSON lines
        return False
    return isinstance(obj, dict) and "results" in obj and "id" not in obj


READERS.register("medground", PredictionReader(read_medground),
                 description="JSONL written by `medground predict` (ground truth from --data)")
READERS.register("vlm-r1", PredictionReader(read_vlm_r1, sniff=_is_vlm_r1_log, truth="embedded"),
                 description="VLM-R1 / MedGround-R1 evaluation log (ground truth inside)",
                 options={"reextract": Option("extract the boxes again from model_output instead of using the "
                                              "stored extracted_answer", default=False)})
READERS.register("medreasoner", PredictionReader(read_medreasoner, sniff=_is_json_array, truth="stored"),
                 description="MedReasoner eval/eval.py per-sample output (stored scores, or recomputed with --data)")


# --------------------------------------------------------------------------- helpers (pure)


def _object_id(obj, source, line: int) -> str:
    """The ``id`` of a per-sample JSON object; not an object, or no id, raises naming the line."""
    if not isinstance(obj, dict):
        raise MedgroundError(f"{where(source, line)}: expected a JSON object, got {type(obj).__name__}")
    if obj.get("id") in (None, ""):
        raise MedgroundError(f"{where(source, line)}: missing field 'id'")
    return str(obj["id"])


def _read_text(path) -> str:
    p = Path(path)
    if p.is_dir():
        raise MedgroundError(f"{path}: is a folder, not a prediction file")
    if not p.is_file():
        raise MedgroundError(f"{path}: file not found")
    return p.read_text(encoding="utf-8", errors="replace")


def _load_json_document(path, text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise MedgroundError(f"{path}:{exc.lineno}: invalid JSON ({exc.msg} at column {exc.colno})") from None


class _LineIndex:
    """Character offset -> 1-based line number."""

    def __init__(self, text: str):
        self._starts = [i for i, ch in enumerate(text) if ch == "\n"]

    def line(self, offset: int) -> int:
        return bisect.bisect_left(self._starts, offset) + 1


_WS = " \t\r\n"
_DECODER = json.JSONDecoder()


def _skip_ws(text: str, i: int) -> int:
    while i < len(text) and text[i] in _WS:
        i += 1
    return i


def _array_offsets(text: str, i: int) -> list[int]:
    """Start offsets of the elements of the (valid) JSON array starting at ``text[i] == '['``."""
    out: list[int] = []
    i = _skip_ws(text, i + 1)
    if i < len(text) and text[i] == "]":
        return out
    while i < len(text):
        out.append(i)
        _, i = _DECODER.raw_decode(text, i)
        i = _skip_ws(text, i)
        if i >= len(text) or text[i] != ",":
            break
        i = _skip_ws(text, i + 1)
    return out


def _member_array_offsets(text: str, key: str) -> list[int]:
    """Element offsets of the array value of ``key`` in the (valid) top-level JSON object."""
    i = _skip_ws(text, 0)
    if i >= len(text) or text[i] != "{":
        return []
    i = _skip_ws(text, i + 1)
    while i < len(text) and text[i] != "}":
        name, i = _DECODER.raw_decode(text, i)
        i = _skip_ws(text, _skip_ws(text, i) + 1)  # past ':'
        if name == key and text[i] == "[":
            return _array_offsets(text, i)
        _, i = _DECODER.raw_decode(text, i)
        i = _skip_ws(text, i)
        if i < len(text) and text[i] == ",":
            i = _skip_ws(text, i + 1)
    return []


def _number(v) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    v = float(v)
    return v if math.isfinite(v) else None


def _box4(v, loc: str, name: str) -> list[float]:
    """A required box field: exactly four finite numbers, else a MedgroundError."""
    if isinstance(v, (list, tuple)) and len(v) == 4:
        nums = [_number(x) for x in v]
        if all(n is not None for n in nums):
            return nums  # type: ignore[return-value]
    raise MedgroundError(f"{loc}: field '{name}' must be four numbers [x1, y1, x2, y2], got {v!r}")


def _boxes_field(v, loc: str, name: str) -> list[list[float]]:
    if v is None:
        return []
    if not isinstance(v, (list, tuple)):
        raise MedgroundError(f"{loc}: field '{name}' must be a list of [x1, y1, x2, y2] boxes, got {v!r}")
    if len(v) == 4 and all(_number(x) is not None for x in v):  # a single box written flat
        return [_box4(v, loc, name)]
    return [_box4(b, loc, name) for b in v]


def _points_field(v, loc: str) -> list[list[float]] | None:
    if v is None:
        return None
    pts = _loose_points(v)
    if pts is None:
        raise MedgroundError(f"{loc}: field 'points' must be two [x, y] pairs, got {v!r}")
    return pts


def _loose_box(v) -> list[float] | None:
    if isinstance(v, (list, tuple)) and len(v) == 4:
        nums = [_number(x) for x in v]
        if all(n is not None for n in nums):
            return nums  # type: ignore[return-value]
    return None


def _loose_points(v) -> list[list[float]] | None:
    if not isinstance(v, (list, tuple)) or len(v) != 2:
        return None
    out = []
    for p in v:
        if not isinstance(p, (list, tuple)) or len(p) != 2:
            return None
        xy = [_number(c) for c in p]
        if any(c is None for c in xy):
            return None
        out.append(xy)
    return out


def _floats(v) -> list[float] | None:
    return None if v is None else [float(x) for x in v]


def _opt_str(v) -> str | None:
    return None if v in (None, "") else str(v)
