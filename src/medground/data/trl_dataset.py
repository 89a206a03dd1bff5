"""Canonical samples -> the TRL datasets the trainers and rewards see.

GRPO rows (:func:`grpo_dataset`) have the columns of the contract in
``docs/CONTRIBUTING.md``: ``prompt`` (conversational messages with one image
placeholder, rendered from a template in the policy's coordinate frame), ``image``
(PIL), ``id``, ``query``, ``boxes`` (``xyxy``, original pixels), ``points``, ``mask``,
``width``, ``height``, ``category``, ``supercategory``.  SFT rows (:func:`sft_dataset`)
add ``completion``: the teacher answer built from the ground truth by the template,
coordinates mapped into the policy's frame (Chain-of-Box cites the other findings of
the same image, with their boxes, before naming the target); a multi-target sample's
answer lists every box, a negative's is the template's empty answer (``[]``).

>>> from medground.data.schema import Sample
>>> from medground.templates import get_template
>>> s = Sample(id="a", image="x.png", query="left effusion", boxes=[[10, 20, 50, 60]], width=100, height=100)
>>> msgs = prompt_messages(get_template("r1"), s, "norm1000")
>>> [part["type"] for part in msgs[-1]["content"]]
['image', 'text']
>>> teacher_completion(get_template("r1"), s, "norm1000")
'<think>The left effusion is the region described.</think><answer>{"bbox_2d": [100, 200, 500, 600]}</answer>'
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Iterable

from ..errors import MedgroundError, where
from ..geometry import PIXELS, Frame, map_boxes, map_points
from .schema import Sample, read_jsonl

COLUMNS = ("prompt", "image", "id", "query", "boxes", "points", "mask", "width", "height", "category",
           "supercategory")


def _template(template):
    from ..templates import get_template

    return get_template(template) if isinstance(template, str) else template


def sample_size(sample: Sample) -> tuple[int, int]:
    """``(width, height)`` of the sample's image (from the sample, else read from the file)."""
    if sample.width and sample.height:
        return int(sample.width), int(sample.height)
    from .io import image_size

    try:
        return tuple(int(v) for v in image_size(sample.image))
    except MedgroundError:
        raise
    except Exception as exc:  # noqa: BLE001 - unreadable image -> user error naming it
        raise MedgroundError(f"{where(sample.image, sample_id=sample.id)}: cannot read image size: {exc}") from None


def prompt_messages(template, sample: Sample, frame, size: tuple[int, int] | None = None) -> list[dict]:
    """The conversational prompt: optional system message, then one user turn with an
    image placeholder and the rendered question."""
    t = _template(template)
    w, h = size or sample_size(sample)
    msgs = []
    if t.system:
        msgs.append({"role": "system", "content": [{"type": "text", "text": t.system}]})
    text = t.render(sample.query, Frame.parse(frame), w, h)
    msgs.append({"role": "user", "content": [{"type": "image", "text": None}, {"type": "text", "text": text}]})
    return msgs


def teacher_completion(template, sample: Sample, frame, size: tuple[int, int] | None = None,
                       context: list[tuple[str, list[float]]] | None = None, think: str | None = None) -> str:
    """The teacher answer for ``sample`` in ``frame`` (boxes/points mapped from pixels):
    one box, every box of a multi-target sample, or the template's empty answer for a
    negative (``boxes: []``).

    ``context``: ``(name, box_in_original_pixels)`` of other regions in the image that the
    reasoning mentions first (Chain-of-Box cites them with their boxes)."""
    if not sample.annotated:
        raise MedgroundError(f"{where(sample_id=sample.id)}: a teacher answer needs a ground-truth box (or boxes: [] "
                             "for a negative); the sample has no 'boxes'")
    t = _template(template)
    fr = Frame.parse(frame)
    size = size or sample_size(sample)
    boxes = map_boxes(sample.boxes, size, src=PIXELS, dst=fr).tolist() if sample.boxes else []
    box = boxes[0] if len(boxes) == 1 else boxes
    points = None
    if sample.points is not None:
        points = map_points(sample.points, size, src=PIXELS, dst=fr).tolist()
    digits = 3 if fr.kind == "norm1" else 0  # 0-1 coordinates keep three decimals, the others are integers
    if think is not None and t.think:
        return f"<think>{fill_think(think, sample)}</think><answer>{t.answer_boxes(boxes, points, digits=digits)}</answer>"
    ctx = [(name, map_boxes([b], size, src=PIXELS, dst=fr)[0].tolist()) for name, b in (context or [])]
    return t.teacher(sample.query, box, points, region=_region_name(sample), context=ctx, digits=digits)


def fill_think(think: str, sample: Sample) -> str:
    """A fixed reasoning text, its ``{key}`` placeholders filled from the sample's ``meta``
    (``"{findings}"``: what the open-set phantom says the image shows of the queried
    category); a key the sample lacks raises naming it.

    >>> fill_think("located", Sample(id="a", image="x", query="q"))
    'located'
    >>> fill_think("{findings}", Sample(id="a", image="x", query="q", meta={"findings": "right effusion"}))
    'right effusion'
    """
    if "{" not in think:
        return think
    try:
        return think.format_map(sample.meta)
    except (KeyError, IndexError, ValueError) as exc:
        raise MedgroundError(f"{where(sample_id=sample.id)}: reasoning template {think!r} needs {exc} from the "
                             "sample's meta") from None


def _region_name(sample: Sample) -> str | None:
    """A short name of the target for the reasoning (explicit queries name themselves)."""
    if sample.meta.get("task") == "implicit" and sample.category:
        side = sample.meta.get("laterality")
        return f"{side} {sample.category}" if side else sample.category
    return None


def image_context(samples: Iterable[Sample]) -> dict[str, list[tuple[str, list[float]]]]:
    """For each sample id, the other annotated regions of the same image
    (``(category or query, box)``), used by Chain-of-Box teacher answers."""
    by_image: dict[str, list[Sample]] = defaultdict(list)
    for s in samples:
        by_image[s.image].append(s)
    out = {}
    for group in by_image.values():
        for s in group:
            others = []
            for o in group:
                if o is s or not o.boxes:
                    continue
                name = o.category or o.query
                side = o.meta.get("laterality")
                others.append((f"{side} {name}" if side else name, o.boxes[0]))
            out[s.id] = others
    return out


def _load_rgb(sample: Sample):
    from .io import load_image

    try:
        return load_image(sample.image)
    except MedgroundError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise MedgroundError(f"{where(sample.image, sample_id=sample.id)}: cannot load image: {exc}") from None


#: Files the ``datasets`` Image feature decodes exactly like :func:`load_image` (8-bit
#: grey or RGB PNG/JPEG): stored by path and decoded lazily; others are converted.
_LAZY = {("PNG", "L"), ("PNG", "RGB"), ("JPEG", "L"), ("JPEG", "RGB")}


def _image_value(sample: Sample):
    """``(value for the Image column, (W, H))`` without decoding plain 8-bit files."""
    from PIL import Image

    try:
        with Image.open(sample.image) as im:
            if (im.format, im.mode) in _LAZY:
                return {"path": str(sample.image), "bytes": None}, im.size
    except Exception:  # noqa: BLE001 - DICOM / NIfTI / unreadable: load_image decides
        pass
    img = _load_rgb(sample)
    return img, img.size


def _row(sample: Sample, template, frame, *, completion: str | None = None, reasoning: str | None = None) -> dict:
    img, (iw, ih) = _image_value(sample)
    size = (sample.width or iw, sample.height or ih)
    if sample.width and (iw, ih) != (sample.width, sample.height):
        raise MedgroundError(
            f"{where(sample.image, sample_id=sample.id)}: image is {iw}x{ih} but the sample says "
            f"{sample.width}x{sample.height}"
        )
    row = {
        "prompt": prompt_messages(template, sample, frame, size),
        "image": img,
        "id": sample.id,
        "query": sample.query,
        "boxes": [list(map(float, b)) for b in sample.boxes],
        "points": sample.points,
        "mask": sample.mask,
        "width": int(size[0]),
        "height": int(size[1]),
        "category": sample.category,
        "supercategory": sample.supercategory,
    }
    if reasoning is not None:
        row["reasoning"] = fill_think(reasoning, sample)
    if completion is not None:
        row["completion"] = [{"role": "assistant", "content": [{"type": "text", "text": completion}]}]
    return row


def _features(with_completion: bool, with_reasoning: bool = False):
    import datasets

    msg = [{"role": datasets.Value("string"),
            "content": [{"type": datasets.Value("string"), "text": datasets.Value("string")}]}]
    feats = {
        "prompt": msg,
        "image": datasets.Image(),
        "id": datasets.Value("string"),
        "query": datasets.Value("string"),
        "boxes": datasets.Sequence(datasets.Sequence(datasets.Value("float64"))),
        "points": datasets.Sequence(datasets.Sequence(datasets.Value("float64"))),
        "mask": datasets.Value("string"),
        "width": datasets.Value("int64"),
        "height": datasets.Value("int64"),
        "category": datasets.Value("string"),
        "supercategory": datasets.Value("string"),
    }
    if with_reasoning:
        feats["reasoning"] = datasets.Value("string")
    if with_completion:
        feats["completion"] = msg
    return datasets.Features(feats)


def _as_samples(data) -> list[Sample]:
    if isinstance(data, (str, os.PathLike)):
        return read_jsonl(data)
    return list(data)


def _dataset(samples: list[Sample], template, frame, *, sft: bool, limit: int | None, think: str | None = None,
             reasoning: str | None = None):
    import datasets

    if limit is not None:
        samples = samples[: int(limit)]
    usable = [s for s in samples if s.annotated]  # negatives (boxes: []) train too; unlabelled lines do not
    if not usable:
        raise MedgroundError("no sample with a ground-truth box (or an explicit boxes: [] negative) to train on")
    cite = _template(template).name == "chain_of_box"
    ctx = image_context(samples) if sft and cite else {}

    def gen():
        for s in usable:
            completion = (teacher_completion(template, s, frame, sample_size(s), ctx.get(s.id), think=think)
                          if sft else None)
            yield _row(s, template, frame, completion=completion, reasoning=reasoning)

    rows = list(gen())
    return datasets.Dataset.from_list(rows, features=_features(sft, reasoning is not None))


def grpo_dataset(data, template="r1", frame="qwen2.5-vl", *, limit: int | None = None, reasoning: str | None = None):
    """GRPO dataset from a JSONL path or a list of :class:`Sample` (negatives — ``boxes: []``
    — included; lines without ``boxes`` are skipped: they cannot be scored).  ``reasoning``:
    a ``{key}`` template (as ``think`` of :func:`sft_dataset`) filled from each sample's
    meta into a ``reasoning`` column, the reference of the ``reasoning`` reward."""
    return _dataset(_as_samples(data), template, frame, sft=False, limit=limit, reasoning=reasoning)


def sft_dataset(data, template="r1", frame="qwen2.5-vl", *, limit: int | None = None, think: str | None = None):
    """SFT dataset: the GRPO columns plus ``completion`` (the teacher answer; ``think``
    replaces the template's reasoning text when given)."""
    return _dataset(_as_samples(data), template, frame, sft=True, limit=limit, think=think)
