"""Named prompt templates.

Each template renders the user prompt for one query and states the coordinate frame
it asks for, filled from the policy's :class:`~medground.geometry.Frame` and the
image size.  :meth:`Template.teacher` writes the completion a perfect model would
give (for SFT warm starts), coordinates already in the model's frame, for one target,
several (a multi-target phrase: every box) or none (a negative: the template's
``empty_answer``).

=====================  ==============================================================
``r1``                 MedGround-R1 / VLM-R1 question template (``state_frame=False``
                       gives the published text verbatim).
``chain_of_box``       MedGround-R1's Chain-of-Box: every region named in the
                       reasoning is followed by its ``[x1, y1, x2, y2]``.
``medreasoner``        MedReasoner: ``<think>`` then a JSON answer with ``bbox``,
                       ``points_1`` and ``points_2``.
``medreasoner_nothink`` the same answer without reasoning.
``r1_open``            open-set grounding (zero, one or many targets): the R1 question
                       asks for *every* region; the answer is a JSON list of boxes
                       ``[[x1, y1, x2, y2], ...]``, ``[]`` when the image does not show it.
=====================  ==============================================================

Answers for zero and several targets, per template (:meth:`Template.answer_boxes`):

=========================================  ===================  ====================================
template                                   no target            several targets
=========================================  ===================  ====================================
``r1``, ``chain_of_box``                   ``[]``               ``[{"bbox_2d": [...]}, ...]``
``medreasoner``, ``medreasoner_nothink``   ``{"bbox": null}``   ``[{"bbox": [...]}, ...]`` (no points)
``r1_open``                                ``[]``               ``[[...], [...]]`` (one box: ``[[...]]``)
=========================================  ===================  ====================================

Templates live in :data:`REGISTRY` (a :class:`medground.registry.Registry`); adding one
is one :func:`register` call.  :data:`TEMPLATES` is a read-only ``name -> Template``
view of it, and an unknown name gets a close-match suggestion:

>>> sorted(TEMPLATES)
['chain_of_box', 'medreasoner', 'medreasoner_nothink', 'r1', 'r1_open']
>>> get_template("chain_of_boxes")
Traceback (most recent call last):
  ...
medground.errors.MedgroundError: unknown template 'chain_of_boxes'; did you mean chain_of_box?
>>> t = get_template("r1")
>>> print(t.render("small left apical pneumothorax", "pixels", 100, 80, state_frame=False))
Please provide the bounding box coordinate of the region this sentence describes: small left apical pneumothorax. First output the thinking process in <think> </think> tags and then output the final answer in <answer> </answer> tags. Output the final answer in JSON format.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from .geometry import Frame, as_boxes
from .registry import Registry

#: name -> :class:`Template`.
REGISTRY = Registry("template")

R1_QUESTION = "Please provide the bounding box coordinate of the region this sentence describes: {query}."
R1_SUFFIX = (
    " First output the thinking process in <think> </think> tags and then output the final answer in "
    "<answer> </answer> tags. Output the final answer in JSON format."
)
FRAME_SENTENCE = " Give coordinates as {desc}."

CHAIN_OF_BOX_SUFFIX = (
    " First output the thinking process in <think> </think> tags: whenever your reasoning names an anatomical"
    " region or a finding, append its bounding box as [x1, y1, x2, y2]. Then output the final answer in"
    ' <answer> </answer> tags in JSON format, as {{"bbox_2d": [x1, y1, x2, y2]}}.'
)

MEDREASONER_QUESTION = (
    "Please answer the clinical question '{query}' by locating the relevant region with a bounding box and"
    " two key points inside it."
)
MEDREASONER_SUFFIX = (
    " Output the thinking process in <think> </think> and the final answer in <answer> </answer> tags."
    " The answer is one JSON object with the bounding box and two points inside the region, i.e."
    ' <think> thinking process here </think><answer>{{"bbox": [x1, y1, x2, y2], "points_1": [x, y],'
    ' "points_2": [x, y]}}</answer>'
)
R1_OPEN_QUESTION = "Please provide the bounding box coordinates of every region this sentence describes: {query}."
R1_OPEN_SUFFIX = (
    " First output the thinking process in <think> </think> tags and then output the final answer in"
    " <answer> </answer> tags. Output the final answer as a JSON list with one [x1, y1, x2, y2] box per region,"
    " or [] if the image does not show it."
)
MEDREASONER_NOTHINK_SUFFIX = (
    " Output the final answer in <answer> </answer> tags only, without reasoning: one JSON object with the"
    ' bounding box and two points inside the region, i.e. <answer>{{"bbox": [x1, y1, x2, y2], "points_1": [x, y],'
    ' "points_2": [x, y]}}</answer>'
)


def _fmt(values, digits: int = 0) -> str:
    """``[a, b, ...]``: integers, or ``digits`` decimals (0–1 frames need them)."""
    if digits:
        return "[" + ", ".join(repr(round(float(v), digits)) for v in values) + "]"
    return "[" + ", ".join(str(int(round(float(v)))) for v in values) + "]"


def _box_list(boxes) -> list:
    """Target boxes as a list of 4-number rows: ``None`` / ``[]`` -> ``[]``; one box -> ``[box]``."""
    if boxes is None:
        return []
    return list(as_boxes(boxes))


@dataclass(frozen=True)
class Template:
    name: str
    question: str
    suffix: str
    description: str
    answer_kind: str = "bbox_2d"  # "bbox_2d" | "medreasoner" | "list"
    think: bool = True
    system: str | None = None
    empty_answer: str = "[]"  # the answer for no target (a negative)

    def render(self, query: str, frame: Frame | str, width: float, height: float, *, state_frame: bool = True) -> str:
        """The user prompt for ``query`` on an image of original size ``width × height``."""
        text = self.question.format(query=query.strip().rstrip("."))
        if state_frame:
            text += FRAME_SENTENCE.format(desc=Frame.parse(frame).describe(width, height))
        return text + self.suffix.format()

    def answer_json(self, box, points=None, *, digits: int = 0) -> str:
        """The JSON answer for ``box`` (and ``points``), coordinates as given (model frame),
        rounded to integers or to ``digits`` decimals."""
        if self.answer_kind == "medreasoner":
            obj = {"bbox": json.loads(_fmt(box, digits))}
            if points is not None:
                obj["points_1"] = json.loads(_fmt(points[0], digits))
                obj["points_2"] = json.loads(_fmt(points[1], digits))
            return json.dumps(obj)
        if self.answer_kind == "list":
            return "[" + _fmt(box, digits) + "]"
        return json.dumps({"bbox_2d": json.loads(_fmt(box, digits))})

    def answer_boxes(self, boxes, points=None, *, digits: int = 0) -> str:
        """The answer for zero, one or several target ``boxes`` (model frame): the template's
        ``empty_answer`` for none, :meth:`answer_json` for one, a JSON list for several
        (key points only go with a single target); integers or ``digits`` decimals.

        >>> get_template("r1").answer_boxes([[1, 2, 3, 4], [5, 6, 7, 8]])
        '[{"bbox_2d": [1, 2, 3, 4]}, {"bbox_2d": [5, 6, 7, 8]}]'
        >>> get_template("medreasoner").answer_boxes([]), get_template("r1_open").answer_boxes([[1, 2, 3, 4]])
        ('{"bbox": null}', '[[1, 2, 3, 4]]')
        """
        boxes = _box_list(boxes)
        if not boxes:
            return self.empty_answer
        if len(boxes) == 1:
            return self.answer_json(boxes[0], points, digits=digits)
        if self.answer_kind == "list":
            return "[" + ", ".join(_fmt(b, digits) for b in boxes) + "]"
        key = "bbox" if self.answer_kind == "medreasoner" else "bbox_2d"
        return json.dumps([{key: json.loads(_fmt(b, digits))} for b in boxes])

    def teacher(self, query: str, box, points=None, *, region: str | None = None, context: list | None = None,
                digits: int = 0) -> str:
        """A perfect completion: reasoning (citing boxes for Chain-of-Box) and the answer.

        ``box`` is the target box, a list of target boxes (a multi-target phrase) or ``None``
        / ``[]`` (a negative); ``box``/``points`` are in the model's frame, written as
        integers or with ``digits`` decimals.  ``region`` names the target (defaults to the
        query); ``context`` is an optional list of ``(name, box)`` other regions the
        reasoning mentions before settling on the target.
        """
        boxes = _box_list(box)
        region = region or query.strip().rstrip(".")
        answer = self.answer_boxes(boxes, points, digits=digits)
        if not self.think:
            return f"<answer>{answer}</answer>"
        cite = self.name == "chain_of_box"
        steps = []
        for name, other in context or []:
            steps.append(f"The {name}{' ' + _fmt(other, digits) if cite else ''} is not the target.")
        bare = region[4:] if region.lower().startswith("the ") else region  # "the masses" -> "masses"
        if not boxes:
            steps.append(f"No {bare} is visible in this image.")
        elif len(boxes) == 1:
            steps.append(f"The {region} is {'at ' + _fmt(boxes[0], digits) if cite else 'the region described'}.")
        else:
            where = " and ".join(_fmt(b, digits) for b in boxes) if cite else "the regions described"
            steps.append(f"The {bare} {'are at ' if cite else 'are '}{where}.")
        return f"<think>{' '.join(steps)}</think><answer>{answer}</answer>"


def register(template: Template) -> Template:
    """Register ``template`` under its name (with its description); returns it."""
    return REGISTRY.register(template.name, template, description=template.description)


register(Template(
    "r1", R1_QUESTION, R1_SUFFIX,
    "MedGround-R1 / VLM-R1 question template: <think> then a JSON box in <answer>.",
))
register(Template(
    "chain_of_box", R1_QUESTION, CHAIN_OF_BOX_SUFFIX,
    "Chain-of-Box: the reasoning cites [x1, y1, x2, y2] for every region it names; JSON box answer.",
))
register(Template(
    "medreasoner", MEDREASONER_QUESTION, MEDREASONER_SUFFIX,
    "MedReasoner: <think> then {bbox, points_1, points_2} JSON for an implicit clinical question.",
    answer_kind="medreasoner", empty_answer='{"bbox": null}',
))
register(Template(
    "medreasoner_nothink", MEDREASONER_QUESTION, MEDREASONER_NOTHINK_SUFFIX,
    "MedReasoner answer format without the reasoning part.",
    answer_kind="medreasoner", think=False, empty_answer='{"bbox": null}',
))
register(Template(
    "r1_open", R1_OPEN_QUESTION, R1_OPEN_SUFFIX,
    "Open-set grounding: every region the phrase describes, a JSON list of boxes; [] when absent.",
    answer_kind="list",
))


def get_template(name: str) -> Template:
    """The template called ``name`` (see :data:`TEMPLATES`); an unknown name raises
    :class:`~medground.errors.MedgroundError` with close matches."""
    return REGISTRY.get(name)


class _TemplateTable(Mapping):
    """A read-only ``name -> Template`` view of :data:`REGISTRY` (names sorted)."""

    def __getitem__(self, name: str) -> Template:
        if name not in REGISTRY:
            raise KeyError(name)
        return REGISTRY.get(name)

    def __contains__(self, name: object) -> bool:
        return name in REGISTRY

    def __iter__(self) -> Iterator[str]:
        return iter(REGISTRY)

    def __len__(self) -> int:
        return len(REGISTRY)

    def __repr__(self) -> str:
        return f"TEMPLATES({', '.join(REGISTRY)})"


#: Every registered template by name (a live, read-only view of :data:`REGISTRY`).
TEMPLATES: Mapping[str, Template] = _TemplateTable()
