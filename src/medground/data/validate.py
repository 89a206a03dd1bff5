"""Validation of a canonical dataset JSONL (``medground data validate FILE``).

Every sample is checked, and every problem is reported with its line and id:

* the line is valid JSON and a valid :class:`~medground.data.schema.Sample` (required
  fields ``id``, ``image``, ``query``; boxes of four numbers; two key points);
* the id is unique in the file;
* the image exists and decodes; ``width`` / ``height``, when given, match it;
* ``boxes`` is given explicitly: a list of target boxes, each with positive area and
  inside the image, or ``[]`` for a negative (the query names something absent from the
  image; a negative has no mask and no key points) — a line without ``boxes`` is rejected,
  since an unlabelled sample is not a negative;
* key points are finite, distinct and inside the image;
* the mask, when given, exists, decodes, is not empty and has the image's size.

>>> Problem(3, "a1", "image not found: x.png").format("data.jsonl")
'data.jsonl:3 [id=a1]: image not found: x.png'
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import MedgroundError, where
from .schema import Sample, iter_jsonl, resolve

MISSING_BOXES = ("no 'boxes' field: the targets must be explicit — a list of [x1, y1, x2, y2] boxes, "
                 "or \"boxes\": [] for a negative (a query naming something absent from the image)")


@dataclass
class Problem:
    """One problem: the line of the file, the sample id (when known) and what is wrong."""

    line: int | None
    sample_id: str | None
    message: str

    def format(self, path) -> str:
        return f"{where(path, self.line, self.sample_id)}: {self.message}"


@dataclass
class ValidationResult:
    path: str
    n_samples: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def n_bad_samples(self) -> int:
        return len({(p.line, p.sample_id) for p in self.problems})

    def summary(self) -> str:
        if self.n_samples == 0:
            return f"{self.path}: no samples (the file has no non-blank line)"
        if self.ok:
            return f"{self.path}: OK, {self.n_samples} samples, no problems"
        return (
            f"{self.path}: {len(self.problems)} problem(s) in {self.n_bad_samples} of {self.n_samples} sample line(s)"
        )


def validate_file(path, *, on_problem: Callable[[Problem], None] | None = None, root=None) -> ValidationResult:
    """Check every line of a dataset JSONL; ``on_problem`` sees each problem as it is found.
    With ``root``, an image or mask path outside that folder (symlinks resolved) is a
    problem, and the file is not opened.

    A missing file raises :class:`MedgroundError` (nothing could be checked).
    """
    result = ValidationResult(path=str(path))
    for problem in iter_problems(path, result, root=root):
        result.problems.append(problem)
        if on_problem is not None:
            on_problem(problem)
    return result


def iter_problems(path, result: ValidationResult | None = None, *, root=None) -> Iterator[Problem]:
    """Yield the problems of a dataset file in line order (see the module docstring);
    ``root`` as in :func:`validate_file`."""
    p = Path(path)
    if p.is_dir():
        raise MedgroundError(f"{path}: is a folder, not a JSONL file")
    if not p.is_file():
        raise MedgroundError(f"{path}: file not found")
    folder = p.resolve().parent
    first_line: dict[str, int] = {}
    images = _ImageCache()
    n = 0
    for line, obj, err in iter_jsonl(p):
        n += 1
        if err:
            yield Problem(line, None, err)
            continue
        sid = str(obj["id"]) if isinstance(obj, dict) and obj.get("id") not in (None, "") else None
        try:
            sample = Sample.from_dict(obj)
        except MedgroundError as exc:
            yield Problem(line, sid, _strip_location(str(exc), sid))
            continue
        if sid in first_line:
            yield Problem(line, sid, f"duplicate id (first at line {first_line[sid]})")
        else:
            first_line[sid] = line
        for message in check_sample(sample, root=folder, images=images, data_root=root):
            yield Problem(line, sid, message)
    if result is not None:
        result.n_samples = n
    if n == 0:
        yield Problem(None, None, "no samples in the file")


def check_sample(sample: Sample, *, root=None, images: _ImageCache | None = None, data_root=None) -> list[str]:
    """Problems of one parsed sample (paths relative to ``root``), as messages; with
    ``data_root``, an image or mask outside it is a problem and is not opened."""
    images = images or _ImageCache()
    problems = []
    if not sample.query.strip():
        problems.append("query is blank")
    outside = _outside(sample, root, data_root)
    problems += outside.values()
    if "image" in outside:
        size, image_error = None, None
    else:
        size, image_error = images.size(resolve(sample.image, root), shown=sample.image)
    if image_error:
        problems.append(image_error)
    if size and sample.width and sample.height and (sample.width, sample.height) != size:
        problems.append(f"width/height say {sample.width}x{sample.height} but the image is {size[0]}x{size[1]}")
    bounds = size or ((sample.width, sample.height) if sample.width and sample.height else None)
    if not sample.annotated:
        problems.append(MISSING_BOXES)
    elif not sample.boxes:
        if sample.mask:
            problems.append("boxes is [] (a negative: nothing to find) but the sample has a mask")
        if sample.points is not None:
            problems.append("boxes is [] (a negative: nothing to find) but the sample has key points")
    for k, box in enumerate(sample.boxes, 1):
        problems.extend(box_problems(box, bounds, k))
    if sample.points is not None:
        problems.extend(point_problems(sample.points, bounds))
    if sample.mask and "mask" not in outside:
        problems.extend(mask_problems(resolve(sample.mask, root), bounds, shown=sample.mask))
    return problems


def _outside(sample: Sample, folder, data_root) -> dict[str, str]:
    """``{"image" | "mask": message}`` for the paths of ``sample`` outside ``data_root``."""
    if data_root is None:
        return {}
    from .roots import confine

    out = {}
    for what in ("image", "mask"):
        path = getattr(sample, what)
        if isinstance(path, str) and path:
            try:
                confine(path, data_root, what=what, folder=folder if folder is not None else data_root)
            except MedgroundError as exc:
                out[what] = str(exc)
    return out


# --------------------------------------------------------------------------- pure checks


def box_problems(box, size: tuple[int, int] | None, k: int = 1) -> list[str]:
    """Problems of one ``xyxy`` box in an image of ``size = (W, H)`` (None: unknown).

    >>> box_problems([10, 10, 5, 20], (100, 100))
    ['box 1 [10, 10, 5, 20] has no positive area (need x1 < x2 and y1 < y2)']
    >>> box_problems([90, 10, 120, 20], (100, 100))
    ['box 1 [90, 10, 120, 20] lies outside the 100x100 image']
    """
    shown = "[" + ", ".join(_num(v) for v in box) + "]"
    if not all(math.isfinite(v) for v in box):
        return [f"box {k} {shown} has non-finite coordinates"]
    x1, y1, x2, y2 = box
    if not (x1 < x2 and y1 < y2):
        return [f"box {k} {shown} has no positive area (need x1 < x2 and y1 < y2)"]
    if size and (x1 < 0 or y1 < 0 or x2 > size[0] or y2 > size[1]):
        return [f"box {k} {shown} lies outside the {size[0]}x{size[1]} image"]
    return []


def point_problems(points, size: tuple[int, int] | None) -> list[str]:
    """Problems of the two key points.

    >>> point_problems([[5, 5], [5, 5]], (10, 10))
    ['the two key points coincide']
    """
    if not all(math.isfinite(c) for p in points for c in p):
        return ["key points have non-finite coordinates"]
    out = []
    if size and any(not (0 <= x <= size[0] and 0 <= y <= size[1]) for x, y in points):
        out.append(f"key point(s) outside the {size[0]}x{size[1]} image")
    if list(points[0]) == list(points[1]):
        out.append("the two key points coincide")
    return out


def mask_problems(mask_path, size: tuple[int, int] | None, shown=None) -> list[str]:
    """Problems of a mask file: missing, undecodable, empty or of the wrong size."""
    from .masks import load_mask

    if not Path(mask_path).is_file():
        return [f"mask not found: {shown or mask_path}"]
    try:
        mask = load_mask(mask_path)
    except MedgroundError as exc:
        return [f"mask does not decode: {_strip_location(str(exc), None)}"]
    out = []
    h, w = mask.shape[:2]
    if size and (w, h) != tuple(size):
        out.append(f"mask is {w}x{h} but the image is {size[0]}x{size[1]}")
    if not mask.any():
        out.append("mask is empty (no foreground pixel)")
    return out


class _ImageCache:
    """``path -> ((W, H) | None, error | None)``, decoding each image once."""

    def __init__(self):
        self._seen: dict[str, tuple] = {}

    def size(self, path, shown=None) -> tuple[tuple[int, int] | None, str | None]:
        key = str(path)
        if key not in self._seen:
            self._seen[key] = _decode_size(key, shown or key)
        return self._seen[key]


def _decode_size(path: str, shown: str) -> tuple[tuple[int, int] | None, str | None]:
    if not Path(path).is_file():
        return None, f"image not found: {shown}"
    try:
        from .io import load_image

        im = load_image(path)
        return (int(im.size[0]), int(im.size[1])), None
    except Exception as exc:  # noqa: BLE001 - any decoder failure is a bad image
        msg = _strip_location(str(exc), None) if isinstance(exc, MedgroundError) else f"{type(exc).__name__}: {exc}"
        msg = msg.removeprefix(f"{path}: ").removeprefix(f"{Path(path).resolve()}: ")  # the file is named once
        return None, f"image does not decode: {shown} ({msg})"


def _strip_location(message: str, sample_id) -> str:
    """``"[id=x]: missing ..."`` -> ``"missing ..."`` (the caller adds its own location)."""
    prefix = where(None, None, sample_id)
    for p in (f"{prefix}: ", ": "):
        if p.strip() and message.startswith(p):
            return message[len(p) :]
    return message


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else f"{v:g}"
