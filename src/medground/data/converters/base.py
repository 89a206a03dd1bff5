"""What every converter shares: the registry, options, row skipping, strict mode,
validation, the report and the output files.

A converter is one small function ``convert(ctx) -> Iterable[Sample]`` registered with
:func:`register` in its own module of this package (so adding a dataset is one file).
It reads ``ctx.input``, yields canonical samples (``xyxy`` boxes in original pixels of
``sample.image``) and calls ``ctx.skip(row, reason)`` for rows it cannot use.
:func:`run` drives it: validates every sample (finite boxes of positive area inside the
image, unique ids, a query), counts splits and categories, and writes

* ``DIR/{split}.jsonl`` — the canonical samples of each split,
* ``DIR/convert_report.json`` — counts per split / category, skipped rows with their
  row number and reason, missing images, warnings and the options used.

Missing image files are reported, not fatal, unless ``strict`` (then every skipped row
or missing image raises :class:`MedgroundError`).  ``skip_missing`` drops samples whose
image is missing instead of keeping them.

Converters live in :data:`REGISTRY` (a :class:`medground.registry.Registry`); their
specific options are :class:`medground.registry.Option` s whose default also gives the
type a ``KEY=VALUE`` string is read as:

>>> entry = get_spec("m3d-refseg")
>>> parse_options(entry, parse_option_items(["slices=3", "window=lung"]))["slices"]
3
>>> get_spec("mscxrr")
Traceback (most recent call last):
  ...
medground.errors.MedgroundError: unknown converter 'mscxrr'; did you mean mscxr? (see `medground data convert list`)
"""

from __future__ import annotations

import os
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import MedgroundError, where
from ...fileio import atomic_json
from ...geometry import PIXELS, Frame, map_boxes
from ...registry import Entry, Option, Registry
from ..dataset_dir import write_dataset
from ..schema import Sample

#: name -> converter entry; filled by :func:`register` when the converter modules are imported
#: (``medground.data.converters`` imports every module of the package).
REGISTRY = Registry("converter", hint="see `medground data convert list`")

#: boxes at most this many pixels outside the image are clipped; farther ones are skipped.
CLIP_TOLERANCE = 2.0
MAX_LISTED = 200  # skipped rows / missing images listed in full in the report

__all__ = ["REGISTRY", "Context", "Option", "Report", "Settings", "get_spec", "parse_option_items", "parse_options",
           "register", "run"]


def register(name: str, description: str, options: Mapping[str, Option] | None = None):
    """Decorator: ``@register("mscxr", "MS-CXR CSV ...", {"key": Option("help", default=...)})``
    above ``def convert(ctx)``; a name registered twice by different functions raises."""
    return REGISTRY.register(name, description=description, options=options)


def get_spec(name: str) -> Entry:
    """The registry entry of converter ``name`` (its function is ``entry.load()``); an unknown
    name raises :class:`MedgroundError` with close matches."""
    from . import CONVERTERS  # imports every converter module

    return CONVERTERS.entry(name)


def parse_option_items(items: Iterable[str] | None) -> dict[str, str]:
    """``["key=value", ...]`` (the CLI's ``-o``) -> ``{"key": "value"}``; dashes in keys
    become underscores."""
    out = {}
    for item in items or []:
        if "=" not in item:
            raise MedgroundError(f"--option expects KEY=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        out[k.strip().replace("-", "_")] = v.strip()
    return out


def parse_options(entry: Entry, given: Mapping[str, Any] | None) -> dict[str, Any]:
    """Every option of converter ``entry``: its default, or the given value (strings read as
    the default's type).  An option the converter does not take raises naming it."""
    given = dict(given or {})
    entry.check_options(given, REGISTRY.kind)
    out = {}
    for key, opt in entry.options.items():
        value = given.get(key, opt.default)
        if key in given and isinstance(given[key], str):
            value = _coerce(given[key], opt.default, entry.name, key)
        out[key] = value
    return out


def _coerce(text: str, default, name: str, key: str):
    if isinstance(default, bool):
        low = text.strip().lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise MedgroundError(f"converter {name!r}: option {key} expects true/false, got {text!r}")
    if isinstance(default, int):
        try:
            return int(text)
        except ValueError:
            raise MedgroundError(f"converter {name!r}: option {key} expects an integer, got {text!r}") from None
    if isinstance(default, float):
        try:
            return float(text)
        except ValueError:
            raise MedgroundError(f"converter {name!r}: option {key} expects a number, got {text!r}") from None
    return text


@dataclass(frozen=True)
class Settings:
    """What every converter run takes besides the converter's own options (the CLI's flags;
    recorded under ``options`` in the report)."""

    images: Path | None = None
    strict: bool = False
    split: str | None = None
    limit: int | None = None
    skip_missing: bool = False


# ----------------------------------------------------------------------------- report


@dataclass
class Report:
    source: str
    input: str
    out: str
    options: dict[str, Any] = field(default_factory=dict)
    counts: Counter = field(default_factory=Counter)  # per split
    categories: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))  # split -> category
    boxes: Counter = field(default_factory=Counter)  # per split
    rows_read: int = 0
    skipped: list[dict] = field(default_factory=list)
    skipped_total: int = 0
    skip_reasons: Counter = field(default_factory=Counter)
    missing_images: list[dict] = field(default_factory=list)
    missing_total: int = 0
    warnings: Counter = field(default_factory=Counter)
    clipped_boxes: int = 0
    frames: Counter = field(default_factory=Counter)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "input": self.input,
            "out": self.out,
            "options": self.options,
            "rows_read": self.rows_read,
            "samples": int(sum(self.counts.values())),
            "counts": dict(sorted(self.counts.items())),
            "boxes": dict(sorted(self.boxes.items())),
            "categories": {s: dict(sorted(c.items())) for s, c in sorted(self.categories.items())},
            "box_frames": dict(self.frames),
            "clipped_boxes": self.clipped_boxes,
            "skipped_total": self.skipped_total,
            "skip_reasons": dict(self.skip_reasons.most_common()),
            "skipped": self.skipped,
            "missing_images_total": self.missing_total,
            "missing_images": self.missing_images,
            "warnings": dict(self.warnings.most_common()),
            **self.extra,
        }

    @property
    def path(self) -> Path:
        """Where :func:`run` writes this report."""
        return Path(self.out) / "convert_report.json"

    def summary(self) -> str:
        """One line: samples per split, skipped rows, missing images."""
        parts = [f"{s} {n}" for s, n in sorted(self.counts.items())]
        line = f"{self.source}: {sum(self.counts.values())} samples ({', '.join(parts) or 'none'})"
        if self.skipped_total:
            line += f"; {self.skipped_total} row(s) skipped"
        if self.missing_total:
            line += f"; {self.missing_total} missing image(s)"
        return line

    def describe(self, top: int = 5) -> str:
        """What ``medground data convert`` prints: the summary line, the ``top`` most
        frequent skip reasons and warnings, and where the full report is."""
        lines = [self.summary()]
        lines += [f"  skipped {n}: {reason}" for reason, n in self.skip_reasons.most_common(top)]
        lines += [f"  warning ({n}x): {msg}" for msg, n in self.warnings.most_common(top)]
        lines.append(f"report: {self.path}")
        return "\n".join(lines)


def _reason_key(reason: str) -> str:
    """Group reasons in the summary: the text before the first colon."""
    return reason.split(":", 1)[0].strip()


# ----------------------------------------------------------------------------- context


class Context:
    """What a converter function gets: inputs, options, and the reporting helpers."""

    def __init__(self, entry: Entry, input: Path, out: Path, settings: Settings = Settings(), *,
                 options: Mapping[str, Any] | None = None, progress: bool = True):
        self.entry = entry
        self.input = Path(input)
        self.out = Path(out)
        self.settings = settings
        self.images = Path(settings.images) if settings.images else None
        self.strict = settings.strict
        self.split = settings.split
        self.options = parse_options(entry, options)
        self.show_progress = progress
        self.report = Report(source=entry.name, input=str(input), out=str(out))

    # -- reporting -------------------------------------------------------------
    def skip(self, row: int | None, reason: str, sample_id=None, file=None) -> None:
        """Record a skipped row (``row`` is the 1-based data row / record number)."""
        file = file if file is not None else self.input
        if self.strict:
            raise MedgroundError(f"{where(file, row, sample_id)}: {reason} (strict mode)")
        rep = self.report
        rep.skipped_total += 1
        rep.skip_reasons[_reason_key(reason)] += 1
        if len(rep.skipped) < MAX_LISTED:
            entry = {"row": row, "reason": reason}
            if sample_id is not None:
                entry["id"] = str(sample_id)
            if Path(file) != self.input:
                entry["file"] = str(file)
            rep.skipped.append(entry)

    def warn(self, message: str) -> None:
        """A counted, de-duplicated warning (same text -> one entry with a count)."""
        self.report.warnings[message] += 1

    def image_exists(self, path: str | os.PathLike | None, row: int | None, sample_id=None) -> bool:
        """True when the image exists; else records it as missing (raises when strict)."""
        if path is not None and Path(path).is_file():
            return True
        if self.strict:
            raise MedgroundError(f"{where(self.input, row, sample_id)}: image not found: {path} (strict mode)")
        rep = self.report
        rep.missing_total += 1
        if len(rep.missing_images) < MAX_LISTED:
            rep.missing_images.append({"row": row, "id": None if sample_id is None else str(sample_id),
                                       "path": None if path is None else str(path)})
        return False

    def progress(self, iterable, total: int | None = None, desc: str | None = None):
        if not self.show_progress:
            return iterable
        from ...progress import progress

        return progress(iterable, total=total, desc=desc or f"convert {self.entry.name}", unit="row")

    def option(self, key: str):
        return self.options[key]

    # -- paths -----------------------------------------------------------------
    def resolve_image(self, rel: str, *, extra_roots: Iterable[Path] = ()) -> Path:
        """``rel`` against ``--images`` (if given), the input's folder and ``extra_roots``;
        the first existing candidate, else the first candidate."""
        p = Path(rel)
        if p.is_absolute():
            return p
        roots = []
        if self.images is not None:
            roots.append(self.images)
        roots.extend(extra_roots)
        base = self.input if self.input.is_dir() else self.input.parent
        roots.append(base)
        candidates = [r / p for r in roots]
        for c in candidates:
            if c.is_file():
                return c
        return candidates[0]

    def fit_to_image(self, sample: Sample, frame: tuple[int, int] | None, *,
                     missing_size: tuple[int, int] | None = None, warning: str | None = None) -> bool:
        """Put ``sample`` (boxes annotated in ``frame``: ``(W, H)`` pixels, None for the image
        file's own pixels) on the image file it names, setting ``boxes``, ``width`` and
        ``height``; False when the row had to be skipped.

        * image readable: its size; when it differs from ``frame`` the boxes are mapped
          (:func:`medground.geometry.map_boxes`), ``meta["resized_from"]`` records ``frame``
          and ``warning`` (if given) is counted;
        * image missing: recorded (``meta["image_missing"] = True``), boxes unchanged, size
          ``frame`` (or ``missing_size``);
        * image unreadable: the row (``meta["row"]`` of ``meta["file"]``) is skipped.
        """
        row, file = sample.meta.get("row"), sample.meta.get("file")
        boxes = np.asarray(sample.boxes, dtype=np.float64)
        if not self.image_exists(sample.image, row, sample.id):
            sample.meta["image_missing"] = True
            size = frame or missing_size
        else:
            from ..io import image_size

            try:
                size = tuple(int(v) for v in image_size(sample.image))
            except Exception as exc:  # noqa: BLE001 - any decoder failure: the row is reported as skipped
                self.skip(row, f"unreadable image {sample.image}: {exc}", sample.id, file=file)
                return False
            if frame is not None and tuple(frame) != size:
                boxes = map_boxes(boxes, frame, src=PIXELS, dst=Frame("fixed", width=size[0], height=size[1]))
                sample.meta["resized_from"] = list(frame)
                if warning:
                    self.warn(warning)
        sample.boxes = boxes.tolist()
        sample.width, sample.height = (int(size[0]), int(size[1])) if size else (None, None)
        return True


# ----------------------------------------------------------------------------- validation


def validate_sample(s: Sample, ctx: Context) -> str | None:
    """Check (and clip slightly-outside boxes of) one sample; return a reason to skip or None."""
    if not s.id:
        return "empty sample id"
    if not (s.query or "").strip():
        return "empty query / phrase"
    if not s.boxes and not s.meta.get("negative"):  # a negative (meta.negative) has none on purpose
        return "no box"
    b = np.asarray(s.boxes, dtype=np.float64) if s.boxes else np.zeros((0, 4))
    if b.ndim != 2 or b.shape[1] != 4:
        return f"malformed boxes {s.boxes!r}"
    if not np.isfinite(b).all():
        return f"non-finite box {s.boxes!r}"
    if ((b[:, 2] <= b[:, 0]) | (b[:, 3] <= b[:, 1])).any():
        return f"box with zero or negative size {b.round(2).tolist()}"
    W, H = s.width, s.height
    if W is not None and H is not None:
        if W <= 0 or H <= 0:
            return f"bad image size {W}x{H}"
        tol = CLIP_TOLERANCE
        outside = (b[:, 0] < -tol) | (b[:, 1] < -tol) | (b[:, 2] > W + tol) | (b[:, 3] > H + tol)
        if outside.any():
            return f"box {b[outside][0].round(2).tolist()} outside the {W}x{H} image"
        clipped = b.copy()
        clipped[:, [0, 2]] = np.clip(clipped[:, [0, 2]], 0, W)
        clipped[:, [1, 3]] = np.clip(clipped[:, [1, 3]], 0, H)
        if not np.array_equal(clipped, b):
            ctx.report.clipped_boxes += int((clipped != b).any(axis=1).sum())
            s.boxes = clipped.tolist()
        if s.points is not None:
            p = np.asarray(s.points, dtype=np.float64)
            if not np.isfinite(p).all() or (p < -tol).any() or (p[:, 0] > W + tol).any() or (p[:, 1] > H + tol).any():
                return f"key points {p.round(2).tolist()} outside the {W}x{H} image"
    return None


# ----------------------------------------------------------------------------- running


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def write_json(obj, path: Path) -> Path:
    """``obj`` as indented JSON, atomically (numpy scalars / arrays and paths allowed)."""
    return atomic_json(obj, path, default=_json_default)


def run(
    source: str,
    input: str | os.PathLike,
    out: str | os.PathLike,
    *,
    images: str | os.PathLike | None = None,
    strict: bool = False,
    split: str | None = None,
    limit: int | None = None,
    skip_missing: bool = False,
    options: Mapping[str, Any] | None = None,
    progress: bool = True,
) -> Report:
    """Convert ``input`` with converter ``source`` into ``out``; return the :class:`Report`.

    Writes ``out/{split}.jsonl`` for every split that has samples and
    ``out/convert_report.json``.  ``options`` are the converter's own (``medground data
    convert list``); string values are read as the type of the option's default.
    """
    entry = get_spec(source)
    inp = Path(input)
    if not inp.exists():
        raise MedgroundError(f"{input}: input not found")
    if images is not None and not Path(images).is_dir():
        raise MedgroundError(f"{images}: image folder not found")
    if limit is not None and limit < 1:
        raise MedgroundError(f"--limit must be positive, got {limit}")
    outp = Path(out)
    outp.mkdir(parents=True, exist_ok=True)
    settings = Settings(images=Path(images) if images else None, strict=strict, split=split, limit=limit,
                        skip_missing=skip_missing)
    ctx = Context(entry, inp, outp, settings, options=options, progress=progress)
    rep = ctx.report
    rep.options = {**asdict(settings), "images": None if images is None else str(images), **ctx.options}
    started = time.time()
    by_split: dict[str, list[Sample]] = defaultdict(list)
    seen: set[str] = set()
    convert = entry.load()
    for s in convert(ctx):
        row = s.meta.get("row")
        if s.id in seen:
            ctx.skip(row, f"duplicate sample id {s.id}", s.id, file=s.meta.get("file"))
            continue
        reason = validate_sample(s, ctx)
        if reason:
            ctx.skip(row, reason, s.id, file=s.meta.get("file"))
            continue
        if s.meta.get("image_missing") and skip_missing:
            ctx.skip(row, f"image not found: {s.image}", s.id, file=s.meta.get("file"))
            continue
        seen.add(s.id)
        sp = s.split or split or "all"
        s.split = sp
        by_split[sp].append(s)
        rep.counts[sp] += 1
        rep.boxes[sp] += len(s.boxes)
        rep.categories[sp][s.category or "(none)"] += 1
        if s.meta.get("box_frame"):
            rep.frames[str(s.meta["box_frame"])] += 1
        if limit is not None and sum(rep.counts.values()) >= limit:
            break
    write_dataset(by_split, outp)
    finalize = getattr(convert, "finalize", None)
    if finalize is not None:  # converter-specific extra outputs (e.g. medrpg's MedGround-R1 JSON)
        finalize(ctx, by_split)
    rep.extra["seconds"] = round(time.time() - started, 2)
    rep.extra["files"] = sorted(f"{sp}.jsonl" for sp in by_split)
    write_json(rep.to_dict(), rep.path)
    return rep


# ----------------------------------------------------------------------------- shared helpers


def split_from_name(path: Path) -> str | None:
    """``train`` / ``val`` / ``test`` from a file name (``MS_CXR_val.pth``, ``test-0000.parquet``)."""
    name = path.name.lower()
    stem = name.split(".")[0]
    tokens = [t for t in stem.replace("-", "_").split("_") if t]
    for t in tokens:
        if t in ("train", "training"):
            return "train"
        if t in ("val", "valid", "validation", "dev"):
            return "val"
        if t in ("test", "testing"):
            return "test"
    return None


def read_csv_rows(path: Path, ctx: Context, required: Iterable[str]) -> Iterator[tuple[int, dict]]:
    """``(row_number, row_dict)`` for a CSV with a header; ``row_number`` is the 1-based
    data row (line number - 1 for single-line records).  A missing required column
    raises :class:`MedgroundError` naming the file and the columns it has."""
    import csv

    try:
        fh = open(path, newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise MedgroundError(f"{path}: cannot open CSV ({exc.strerror or exc})") from None
    with fh:
        reader = csv.DictReader(fh)
        header = [h.strip() for h in (reader.fieldnames or [])]
        reader.fieldnames = header
        missing = [c for c in required if c not in header]
        if missing:
            raise MedgroundError(
                f"{path}: not the expected layout — missing column(s) {', '.join(missing)}; found {', '.join(header)}"
            )
        for n, row in enumerate(reader, 1):
            yield n, {k: (v.strip() if isinstance(v, str) else v) for k, v in row.items() if k is not None}
