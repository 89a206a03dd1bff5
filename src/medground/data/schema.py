"""The canonical sample schema and its JSONL storage.

One line of a medground dataset file is one :class:`Sample`::

    {"id": "mscxr-0001", "image": "images/0001.png", "query": "small left pneumothorax",
     "boxes": [[x1, y1, x2, y2]], "mask": "masks/0001.png", "points": [[x, y], [x, y]],
     "category": "pneumothorax", "supercategory": "pleura", "modality": "xray",
     "split": "test", "width": 1024, "height": 1024, "meta": {...}}

Boxes are ``xyxy`` floats in original-image pixels: one box (a single target), several
(a multi-target phrase, "bilateral effusions": all of them), or ``"boxes": []`` — a
*negative*: the phrase names something absent from the image.  A line without ``boxes``
still loads (unlabelled data to predict on) but is not a negative: ``Sample.annotated`` is
False, ``medground data validate`` rejects it and the evaluator refuses to score it.  ``points``
are the two key points of the target (MedReasoner); ``mask`` is a path to a binary
mask image of the same size as the image.  Relative paths are relative to the folder
of the JSONL file; :func:`read_jsonl` resolves them, :func:`write_jsonl` writes them
relative again when they lie below the output folder (atomically: a reader never sees
half a file).

>>> import tempfile, pathlib
>>> root = pathlib.Path(tempfile.mkdtemp())
>>> s = Sample(id="a", image=str(root / "images" / "a.png"), query="the heart", boxes=[[1, 2, 30, 40]])
>>> _ = write_jsonl([s], root / "test.jsonl")
>>> '"image": "images/a.png"' in (root / "test.jsonl").read_text()
True
>>> read_jsonl(root / "test.jsonl")[0].image == str(root.resolve() / "images" / "a.png")
True
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from ..errors import MedgroundError, where
from ..fileio import atomic_path

PATH_FIELDS = ("image", "mask")
#: What a sample's boxes say: ``negative`` (none: absent from the image), ``single``, ``multi``.
TARGET_KINDS = ("negative", "single", "multi")


def target_kind(n_boxes: int) -> str:
    """``negative`` for 0 true boxes, ``single`` for 1, ``multi`` for more.

    >>> [target_kind(n) for n in (0, 1, 3)]
    ['negative', 'single', 'multi']
    """
    return TARGET_KINDS[min(int(n_boxes), 2)]


@dataclass
class Sample:
    id: str
    image: str
    query: str
    boxes: list[list[float]] = field(default_factory=list)
    mask: str | None = None
    points: list[list[float]] | None = None
    category: str | None = None
    supercategory: str | None = None
    modality: str | None = None
    split: str | None = None
    width: int | None = None
    height: int | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    _annotated = True  # not a field: False only for a line read without "boxes" (see from_dict)

    @property
    def box(self) -> list[float] | None:
        """The first (primary) target box, or None."""
        return self.boxes[0] if self.boxes else None

    @property
    def annotated(self) -> bool:
        """Whether the sample states its targets — a ``boxes`` list, possibly empty.  False only
        for a line read without ``boxes`` (targets unknown, not a negative)."""
        return self._annotated

    @property
    def is_negative(self) -> bool:
        """``boxes: []`` given explicitly: the query names something absent from the image."""
        return self._annotated and not self.boxes

    @property
    def kind(self) -> str | None:
        """``negative``, ``single`` or ``multi`` (:func:`target_kind`); None when not annotated."""
        return target_kind(len(self.boxes)) if self._annotated else None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any], *, source=None, line: int | None = None) -> Sample:
        """Build a sample from a dict; a missing or malformed field raises
        :class:`MedgroundError` naming ``source:line`` and the id."""
        if not isinstance(d, dict):
            raise MedgroundError(f"{where(source, line)}: expected a JSON object, got {type(d).__name__}")
        sid = d.get("id")
        loc = where(source, line, sid)
        missing = [k for k in ("id", "image", "query") if d.get(k) in (None, "")]
        if missing:
            raise MedgroundError(f"{loc}: missing field(s) {', '.join(missing)}")
        known = {f.name for f in fields(cls)}
        extra = {k: v for k, v in d.items() if k not in known}
        kwargs = {k: v for k, v in d.items() if k in known}
        kwargs["id"] = str(sid)
        kwargs["meta"] = {**(d.get("meta") or {}), **extra}
        boxes = d.get("boxes")
        if boxes is None and "box" in d:  # tolerate a single "box"
            boxes = [d["box"]]
            kwargs["meta"].pop("box", None)
        try:
            kwargs["boxes"] = [[float(v) for v in b] for b in (boxes or [])]
            if any(len(b) != 4 for b in kwargs["boxes"]):
                raise ValueError("a box needs 4 numbers")
            if d.get("points") is not None:
                kwargs["points"] = [[float(v) for v in p] for p in d["points"]]
                if len(kwargs["points"]) != 2 or any(len(p) != 2 for p in kwargs["points"]):
                    raise ValueError("points must be two [x, y] pairs")
            for k in ("width", "height"):
                if d.get(k) is not None:
                    kwargs[k] = int(d[k])
        except (TypeError, ValueError) as exc:
            raise MedgroundError(f"{loc}: malformed boxes/points/size: {exc}") from None
        sample = cls(**kwargs)
        if boxes is None:
            sample._annotated = False
        return sample


def resolve(path: str | None, root: str | os.PathLike | None) -> str | None:
    """``path`` made absolute against ``root`` (the dataset folder) when relative."""
    if path is None or root is None or os.path.isabs(path):
        return path
    return str(Path(root) / path)


def iter_jsonl(path: str | os.PathLike) -> Iterator[tuple[int, dict | None, str | None]]:
    """Yield ``(line_number, object, error)`` for each non-blank line; never raises on
    content (``error`` names the problem, ``object`` is then None)."""
    p = Path(path)
    if not p.exists():
        raise MedgroundError(f"{path}: file not found")
    if p.is_dir():
        raise MedgroundError(f"{path}: is a folder, not a JSONL file")
    with p.open("r", encoding="utf-8", errors="replace") as fh:
        for n, raw in enumerate(fh, 1):
            if not raw.strip():
                continue
            try:
                yield n, json.loads(raw), None
            except json.JSONDecodeError as exc:
                yield n, None, f"invalid JSON ({exc.msg} at column {exc.pos + 1})"


def read_jsonl(path: str | os.PathLike, *, resolve_paths: bool = True, root: str | os.PathLike | None = None
               ) -> list[Sample]:
    """Read a canonical dataset; the first bad line raises :class:`MedgroundError`
    naming the file, line and id.  With ``root``, an image or mask path that resolves
    (symlinks followed) outside that folder is such an error too
    (:func:`medground.data.roots.confine`)."""
    return [s for _, s in iter_samples(path, resolve_paths=resolve_paths, root=root)]


def iter_samples(path: str | os.PathLike, *, resolve_paths: bool = True, root: str | os.PathLike | None = None
                 ) -> Iterator[tuple[int, Sample]]:
    """``(line_number, sample)`` for each sample of a canonical dataset, as
    :func:`read_jsonl` reads them."""
    folder = Path(path).resolve().parent
    for n, obj, err in iter_jsonl(path):
        if err:
            raise MedgroundError(f"{where(path, n)}: {err}")
        s = Sample.from_dict(obj, source=path, line=n)
        if resolve_paths:
            s.image = resolve(s.image, folder)
            s.mask = resolve(s.mask, folder)
        if root is not None:
            from .roots import confine_sample

            confine_sample(s, root, folder=folder, where=where(path, n, s.id))
        yield n, s


def _relative(path: str | None, root: Path) -> str | None:
    if path is None:
        return None
    try:
        return str(Path(path).resolve().relative_to(root))
    except ValueError:
        return path


def write_jsonl(samples: Iterable[Sample | dict], path: str | os.PathLike) -> Path:
    """Write samples atomically (:func:`medground.fileio.atomic_path`: a reader never sees
    half a file); paths under the output folder are stored relative to it."""
    out = Path(path)
    with atomic_path(out) as tmp, tmp.open("w", encoding="utf-8") as fh:
        root = out.resolve().parent
        for s in samples:
            d = s.to_dict() if isinstance(s, Sample) else dict(s)
            if isinstance(s, Sample) and not s.annotated:
                del d["boxes"]  # still unknown, not a negative
            for k in PATH_FIELDS:
                if d.get(k):
                    d[k] = _relative(d[k], root)
            fh.write(json.dumps(d, ensure_ascii=False) + "\n")
    return out


def to_hf_dataset(samples: Iterable[Sample]):
    """Samples as a ``datasets.Dataset`` (one column per field; ``meta`` as a JSON string)."""
    import datasets

    rows = []
    for s in samples:
        d = s.to_dict()
        d["meta"] = json.dumps(d["meta"], ensure_ascii=False)
        rows.append(d)
    return datasets.Dataset.from_list(rows)


def from_hf_dataset(ds) -> list[Sample]:
    """Inverse of :func:`to_hf_dataset`."""
    out = []
    for i, row in enumerate(ds):
        d = dict(row)
        if isinstance(d.get("meta"), str):
            d["meta"] = json.loads(d["meta"] or "{}")
        out.append(Sample.from_dict(d, source="dataset", line=i))
    return out
