"""Export canonical datasets to what the trainers consume.

Formats are registered in :data:`EXPORTERS` (a :class:`medground.registry.Registry`:
name -> exporter with a description and documented options, each option's default
being the format's default, e.g. the coordinate ``frame``); :func:`export` reads a
converted dataset and dispatches through it, which is what ``medground data export
FORMAT`` calls.

* ``verl`` (:func:`export_verl`) — verl RL parquet in MedReasoner's (U-MRG-14K) layout, one file per
  split: ``data_source`` (str), ``prompt`` (chat messages ``[{"role": "user", "content":
  ...}]``), ``images`` / ``masks`` (lists of ``{"bytes", "path"}`` image structs),
  ``ability`` (str), ``reward_model`` ``{"style": "rule", "ground_truth": JSON string
  {"bbox_2d": [x1, y1, x2, y2], "point_2d": [[x, y], [x, y]]}}`` and ``extra_info``
  (``id``, ``index``, ``split``, ``category``, ``supercategory``, ``data_source``,
  ``query``, ``width``, ``height``, ``frame``, ``points_source``).  As in MedReasoner,
  the prompt content is the bare question (its ``UMRGDataset`` wraps it in the prompt
  template); with ``template=NAME`` it is ``"<image>"`` + the rendered medground
  template instead, for verl's stock ``RLHFDataset``.  The ground truth is written in
  the policy's coordinate ``frame`` (default ``qwen2.5-vl``; MedReasoner compares
  answers with it directly).
* ``trl`` (:func:`export_trl`) — a TRL-ready ``datasets.DatasetDict`` saved with ``save_to_disk``,
  built by :mod:`medground.data.trl_dataset` (``grpo_dataset`` / ``sft_dataset``: the
  columns the trainers and rewards read, prompt from a named template in the policy's
  frame).
* ``r1-json`` (:func:`export_r1_json`) — MedGround-R1 / VLM-R1 training JSON (``image``, ``problem``,
  ``solution``, ``normalized_solution``), boxes in original pixels by default.

Both RL engines therefore train on the same samples, prompts and coordinate frame.

>>> EXPORTERS.names()
['r1-json', 'trl', 'verl']
>>> {name: EXPORTERS.entry(name).options["frame"].default for name in EXPORTERS}
{'r1-json': 'pixels', 'trl': 'qwen2.5-vl', 'verl': 'qwen2.5-vl'}
>>> EXPORTERS.entry("R1").name
'r1-json'
"""

from __future__ import annotations

import io as _io
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import MedgroundError
from ..fileio import atomic_json, atomic_path
from ..geometry import PIXELS, Frame, map_boxes, map_points
from ..registry import Option, Registry
from ..templates import R1_QUESTION
from .dataset_dir import Dataset, read_dataset
from .schema import Sample
from .trl_dataset import sample_size

RAW_IMAGE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG"}
#: The frame RL exports answer in unless told otherwise (Qwen2.5-VL's absolute pixels of the resized image).
POLICY_FRAME = "qwen2.5-vl"
DEFAULT_ABILITY = "medical_grounding"

#: name -> exporter (see :func:`export`); an exporter is ``fn(by_split, out, *, source, progress, **options)
#: -> ExportResult`` whose options are documented (with the format's defaults) in its entry.
EXPORTERS = Registry("export format", hint="see `medground data export list`")


def load_dataset_dir(data: str | os.PathLike, splits: Iterable[str] | None = None, *,
                     root: str | os.PathLike | None = None) -> dict[str, list[Sample]]:
    """Canonical samples grouped by split, from a dataset folder or one JSONL file, each
    sample once (:func:`medground.data.dataset_dir.read_dataset` says which files count)."""
    return read_dataset(data, splits, root=root).by_split


# ----------------------------------------------------------------------------- shared pieces


def key_points(s: Sample) -> tuple[list[list[float]], str]:
    """The sample's two key points and where they come from: ``"sample"``, ``"mask"``
    (two interior points of the mask) or ``"box"`` (the box's horizontal mid-line at 1/3
    and 2/3 of its width — MedReasoner's reward needs a pair)."""
    if s.points:
        return [list(map(float, p)) for p in s.points], "sample"
    if s.mask:
        from .masks import load_mask, mask_key_points

        try:
            pts = mask_key_points(load_mask(s.mask))
        except MedgroundError:
            pts = None
        if pts:
            return pts, "mask"
    x1, y1, x2, y2 = (float(v) for v in s.boxes[0])
    cy = (y1 + y2) / 2
    return [[x1 + (x2 - x1) / 3, cy], [x1 + 2 * (x2 - x1) / 3, cy]], "box"


def image_bytes(path: str) -> tuple[bytes, str]:
    """``(bytes, format)`` of an image for embedding: PNG / JPEG files as they are, any
    other format (DICOM, NIfTI, 16-bit TIFF...) rendered display-ready to PNG."""
    suffix = Path(path).suffix.lower()
    if suffix in RAW_IMAGE_FORMATS and Path(path).is_file():
        return Path(path).read_bytes(), RAW_IMAGE_FORMATS[suffix]
    from .io import load_image

    buf = _io.BytesIO()
    load_image(path).save(buf, format="PNG")
    return buf.getvalue(), "PNG"


def _r(values, nd=2):
    return [round(float(v), nd) for v in np.asarray(values).ravel()]


# ----------------------------------------------------------------------------- verl parquet


def verl_row(s: Sample, index: int, *, frame=POLICY_FRAME, template: str | None = None,
             ability: str = DEFAULT_ABILITY, embed_images: bool = True) -> dict:
    """One verl / MedReasoner parquet row for a sample (see the module docstring)."""
    if not s.boxes:
        raise MedgroundError(f"sample {s.id}: no box to export (a negative, boxes: []; this format holds one target box "
                                 "per sample: leave negatives out, or export trl)")
    W, H = sample_size(s)
    f = Frame.parse(frame)
    box = map_boxes([s.boxes[0]], (W, H), src=PIXELS, dst=f)[0]
    pts, pts_src = key_points(s)
    pts_f = map_points(pts, (W, H), src=PIXELS, dst=f)
    gt = {"bbox_2d": _r(box), "point_2d": [_r(p) for p in pts_f]}
    if template:
        from ..templates import get_template

        content = "<image>" + get_template(template).render(s.query, f, W, H)
    else:
        content = s.query
    if embed_images:
        data, _fmt = image_bytes(s.image)
        images = [{"bytes": data, "path": os.path.basename(s.image)}]
    else:
        images = [{"bytes": None, "path": str(s.image)}]
    masks = []
    if s.mask:
        mp = Path(s.mask)
        if embed_images and mp.is_file():
            masks = [{"bytes": mp.read_bytes(), "path": mp.name}]
        else:
            masks = [{"bytes": None, "path": str(s.mask)}]
    data_source = s.meta.get("data_source") or s.meta.get("source") or "medground"
    return {
        "data_source": str(data_source),
        "prompt": [{"role": "user", "content": content}],
        "images": images,
        "masks": masks,
        "ability": ability,
        "reward_model": {"style": "rule", "ground_truth": json.dumps(gt)},
        "extra_info": {
            "id": s.id,
            "index": index,
            "split": s.split or "",
            "category": s.category or "",
            "supercategory": s.supercategory or "",
            "data_source": str(data_source),
            "query": s.query,
            "width": int(W),
            "height": int(H),
            "frame": f.name,
            "points_source": pts_src,
        },
    }


def verl_features():
    """The ``datasets.Features`` of the verl parquet (images / masks as ``Image`` so that
    ``datasets.load_dataset("parquet", ...)`` decodes them to PIL, as in U-MRG-14K)."""
    import datasets

    V = datasets.Value
    return datasets.Features({
        "data_source": V("string"),
        "prompt": [{"role": V("string"), "content": V("string")}],
        "images": [datasets.Image()],
        "masks": [datasets.Image()],
        "ability": V("string"),
        "reward_model": {"style": V("string"), "ground_truth": V("string")},
        "extra_info": {
            "id": V("string"), "index": V("int64"), "split": V("string"), "category": V("string"),
            "supercategory": V("string"), "data_source": V("string"), "query": V("string"),
            "width": V("int64"), "height": V("int64"), "frame": V("string"), "points_source": V("string"),
        },
    })


def verl_schema():
    """Arrow schema (with the Hugging Face features metadata) of :func:`verl_features`."""
    return verl_features().arrow_schema


def export_verl(
    by_split: dict[str, list[Sample]],
    out: str | os.PathLike,
    *,
    frame=POLICY_FRAME,
    template: str | None = None,
    ability: str = DEFAULT_ABILITY,
    embed_images: bool = True,
    batch_rows: int = 256,
    progress: bool = True,
) -> dict[str, Path]:
    """Write ``out/{split}.parquet`` for every split (atomically, in row batches)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ..progress import progress as progress_bar

    Frame.parse(frame)  # fail early on a bad frame
    outd = Path(out)
    outd.mkdir(parents=True, exist_ok=True)
    schema = verl_schema()
    written = {}
    for split, samples in sorted(by_split.items()):
        target = outd / f"{split}.parquet"
        with atomic_path(target) as tmp:
            writer = pq.ParquetWriter(tmp, schema)
            try:
                rows = []
                for i, s in enumerate(progress_bar(samples, desc=f"verl {split}", enabled=progress,
                                                   unit="sample")):
                    rows.append(verl_row(s, i, frame=frame, template=template, ability=ability,
                                         embed_images=embed_images))
                    if len(rows) >= batch_rows:
                        writer.write_table(pa.Table.from_pylist(rows, schema=schema))
                        rows = []
                if rows or not samples:
                    writer.write_table(pa.Table.from_pylist(rows, schema=schema))
            finally:
                writer.close()
        written[split] = target
    return written


# ----------------------------------------------------------------------------- TRL


def export_trl(
    by_split: dict[str, list[Sample]],
    out: str | os.PathLike,
    *,
    template: str = "r1",
    frame=POLICY_FRAME,
    kind: str = "grpo",
):
    """Build the TRL dataset of every split with :mod:`medground.data.trl_dataset`
    (``grpo_dataset``, or ``sft_dataset`` with ``kind="sft"``, which adds the teacher
    ``completion``) and save the ``datasets.DatasetDict`` to ``out``
    (``datasets.load_from_disk`` reads it back)."""
    import datasets

    from . import trl_dataset

    builders = {"grpo": trl_dataset.grpo_dataset, "sft": trl_dataset.sft_dataset}
    if kind not in builders:
        raise MedgroundError(f"TRL export kind must be grpo or sft, got {kind!r}")
    Frame.parse(frame)
    dd = datasets.DatasetDict(
        {split: builders[kind](samples, template=template, frame=frame) for split, samples in sorted(by_split.items())}
    )
    Path(out).mkdir(parents=True, exist_ok=True)
    dd.save_to_disk(str(out))
    return dd


# ----------------------------------------------------------------------------- MedGround-R1 JSON


def r1_records(samples: Iterable[Sample], *, frame="pixels", image_root: str | os.PathLike | None = None) -> Iterator[dict]:
    """MedGround-R1 / VLM-R1 records: ``image`` (relative to ``image_root`` when below it),
    ``problem``, ``solution`` (``xyxy`` in ``frame``), ``normalized_solution`` (0–1000 ints)."""
    f = Frame.parse(frame)
    for s in samples:
        if not s.boxes:
            raise MedgroundError(f"sample {s.id}: no box to export (a negative, boxes: []; this format holds one target box "
                                 "per sample: leave negatives out, or export trl)")
        W, H = sample_size(s)
        sol = map_boxes([s.boxes[0]], (W, H), src=PIXELS, dst=f)[0]
        norm = map_boxes([s.boxes[0]], (W, H), src=PIXELS, dst=Frame("norm1000"))[0]
        image = s.image
        if image_root is not None:
            try:
                image = str(Path(image).resolve().relative_to(Path(image_root).resolve()))
            except ValueError:
                pass
        yield {
            "id": s.id,
            "image": image,
            "problem": R1_QUESTION.format(query=s.query.strip().rstrip(".")),
            "solution": _r(sol),
            "normalized_solution": [int(v) for v in np.round(norm)],
            "frame": f.name,
        }


def export_r1_json(by_split: dict[str, list[Sample]], out: str | os.PathLike, *, frame="pixels",
                   image_root=None) -> dict[str, Path]:
    """Write ``out/{split}.json`` (a JSON list per split, atomically)."""
    written = {}
    for split, samples in sorted(by_split.items()):
        written[split] = atomic_json(list(r1_records(samples, frame=frame, image_root=image_root)),
                                     Path(out) / f"{split}.json")
    return written


# ----------------------------------------------------------------------------- the registry


@dataclass
class ExportResult:
    """What an export wrote: per split, the number of rows / records and the file (no file
    for ``trl``, whose splits live in one ``save_to_disk`` folder)."""

    format: str
    out: Path
    counts: dict[str, int]
    files: dict[str, Path] = field(default_factory=dict)
    unit: str = "rows"
    #: what was read (:meth:`medground.data.dataset_dir.Dataset.describe`)
    read: str = ""

    def summary(self) -> str:
        """What ``medground data export`` prints."""
        if not self.files:
            parts = ", ".join(f"{split} {n}" for split, n in self.counts.items())
            return f"saved {parts} to {self.out} (datasets.load_from_disk)"
        return "\n".join(f"{split}: {self.counts[split]} {self.unit} -> {path}" for split, path in self.files.items())


_FRAME_HELP = ("coordinate frame of the targets = the policy's answer frame: qwen2.5-vl, norm1000, norm1, pixels, "
               "fixed:640")


@EXPORTERS.register("verl", description="verl RL parquet in MedReasoner's U-MRG-14K layout, one file per split",
                    options={
                        "frame": Option(_FRAME_HELP, default=POLICY_FRAME),
                        "template": Option("prompt template rendered into the prompt (default: the bare question, "
                                           "as in MedReasoner)", default=None),
                        "ability": Option("the 'ability' column", default=DEFAULT_ABILITY),
                        "embed_images": Option("store image / mask bytes (false: their paths)", default=True),
                        "batch_rows": Option("rows written at a time", default=256, changes_result=False),
                    })
def _verl(by_split, out, *, source, progress, **options) -> ExportResult:
    files = export_verl(by_split, out, progress=progress, **options)
    return ExportResult("verl", Path(out), {split: len(by_split[split]) for split in files}, files, "rows")


@EXPORTERS.register("trl", description="TRL datasets.DatasetDict (save_to_disk) with the trainers' columns",
                    options={
                        "frame": Option(_FRAME_HELP, default=POLICY_FRAME),
                        "template": Option("prompt template", default="r1"),
                        "kind": Option("grpo (prompt + ground truth) or sft (adds the teacher completion)",
                                       default="grpo"),
                    })
def _trl(by_split, out, *, source, progress, **options) -> ExportResult:
    dd = export_trl(by_split, out, **options)
    return ExportResult("trl", Path(out), {split: len(ds) for split, ds in dd.items()})


@EXPORTERS.register("r1-json", aliases=("r1_json", "r1"),
                    description="MedGround-R1 / VLM-R1 training JSON (image, problem, solution, normalized_solution)",
                    options={
                        "frame": Option(_FRAME_HELP, default="pixels"),
                        "image_root": Option("write image paths relative to this folder (default: the dataset "
                                             "folder, when the data is one)", default=None),
                    })
def _r1_json(by_split, out, *, source, progress, image_root=None, **options) -> ExportResult:
    if image_root is None and source is not None and Path(source).is_dir():
        image_root = Path(source)
    files = export_r1_json(by_split, out, image_root=image_root, **options)
    return ExportResult("r1-json", Path(out), {split: len(by_split[split]) for split in files}, files, "records")


def export(format: str, data: str | os.PathLike | Dataset, out: str | os.PathLike, *,
           splits: Iterable[str] | None = None, progress: bool = True, root: str | os.PathLike | None = None,
           **options) -> ExportResult:
    """Export the converted dataset ``data`` (a dataset folder, one JSONL file, or a
    :class:`~medground.data.dataset_dir.Dataset` already read) as ``format`` (a name in
    :data:`EXPORTERS`) into ``out``.

    ``splits`` keeps only those splits; ``root`` confines image and mask paths;
    ``options`` are the format's own (``frame``, ``template``...: ``medground data export
    list``); those not given (or None) take the format's defaults.  An unknown format or
    an option the format does not take raises :class:`MedgroundError`."""
    entry = EXPORTERS.entry(format)
    options = {key: value for key, value in options.items() if value is not None}
    entry.check_options(options, EXPORTERS.kind)
    dataset = data if isinstance(data, Dataset) else read_dataset(data, root=root)
    if splits:
        dataset = dataset.select(splits)
    settings = {key: opt.default for key, opt in entry.options.items()} | options
    result = entry.load()(dataset.by_split, out, source=dataset.source, progress=progress, **settings)
    result.read = dataset.describe()
    return result


__all__ = [
    "EXPORTERS",
    "ExportResult",
    "export",
    "export_r1_json",
    "export_trl",
    "export_verl",
    "image_bytes",
    "key_points",
    "load_dataset_dir",
    "r1_records",
    "verl_features",
    "verl_row",
    "verl_schema",
]
