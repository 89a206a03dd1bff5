"""M3D-RefSeg (Bai et al., M3D 2024) — referring segmentation on 3-D CT -> 2-D samples.

Release layout: ``M3D_RefSeg/sXXXX/{ct.nii.gz, mask.nii.gz, text.json}`` and CSVs
``M3D_RefSeg.csv`` (train) / ``M3D_RefSeg_test.csv`` (test) with columns
``Image, Mask, Mask_ID, Text, Question_Type, Question, Answer``.  ``mask.nii.gz`` is a
multi-label volume; the row's target is ``mask == Mask_ID``.  Input: one CSV or the
folder holding them; ``Image`` / ``Mask`` paths are resolved against ``--images``, the
CSV's folder and its parent, dropping leading folders until the file is found.

For each row the target's area on every slice along ``axis`` (RAS+ after
reorientation: 0 sagittal, 1 coronal, 2 axial; see :mod:`medground.data.io`) is
computed and the ``slices`` largest become samples: the slice rendered in radiological
orientation with a window chosen for the region (``window=auto``: lung window when the
text mentions lung / pulmonary / bronch..., brain for brain / cerebral / intracranial,
bone for bone / vertebra / rib / fracture ..., abdomen otherwise; volumes not in
Hounsfield units get their 0.5–99.5 percentile range), written to ``DIR/images``; the
target slice to ``DIR/masks``; the box is the mask's tight box (pixel edges) and the two
key points lie inside the mask.  ``query`` chooses the text: ``text`` (the referring
description, default), ``question`` or ``answer``; all three stay in ``meta``.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from pathlib import Path

import numpy as np
from PIL import Image

from ...errors import MedgroundError
from ..masks import mask_box, mask_key_points
from ..schema import Sample
from .base import Context, Option, read_csv_rows, register, split_from_name

REQUIRED = ("Image", "Mask", "Mask_ID", "Text", "Question_Type", "Question", "Answer")

REGION_WINDOWS = (
    ("lung", re.compile(r"\b(lung|lungs|pulmonar\w*|bronch\w*|pleura\w*|thorax|thoracic|chest|airway\w*|trache\w*)\b", re.I)),
    ("brain", re.compile(r"\b(brain|cerebr\w*|intracranial|cranial|ventric\w*|skull)\b", re.I)),
    ("bone", re.compile(r"\b(bone|bones|bony|osseous|vertebra\w*|rib|ribs|fracture\w*|spine|spinal|pelvi\w*|femur\w*|skelet\w*)\b", re.I)),
)
ORGANS = ("liver", "kidney", "lung", "brain", "pancreas", "spleen", "colon", "bladder", "prostate", "stomach",
          "gallbladder", "adrenal", "esophagus", "bone", "heart", "aorta", "uterus", "ovary", "rectum", "bowel",
          "thyroid", "breast", "lymph node")


def region_window(text: str) -> str:
    """The window preset name for a description.

    >>> region_window("A nodule in the right upper lobe of the lung"), region_window("liver cyst")
    ('lung', 'abdomen')
    """
    for name, pat in REGION_WINDOWS:
        if pat.search(text or ""):
            return name
    return "abdomen"


def organ_of(text: str) -> str | None:
    low = (text or "").lower()
    hits = [(low.find(o), o) for o in ORGANS if re.search(rf"\b{o}s?\b", low)]
    return min(hits)[1] if hits else None


def _resolve(ctx: Context, rel: str, csv_path: Path) -> Path:
    p = Path(rel.replace("\\", "/"))
    if p.is_absolute() and p.is_file():
        return p
    roots = ([ctx.images] if ctx.images else []) + [csv_path.parent, csv_path.parent.parent]
    parts = p.parts[1:] if p.is_absolute() else p.parts
    for k in range(len(parts)):
        tail = Path(*parts[k:])
        for root in roots:
            if (root / tail).is_file():
                return root / tail
    return roots[0] / Path(*parts)


class _VolumeCache:
    """The last few volumes read (rows of one case are consecutive in the CSVs)."""

    def __init__(self, size: int = 2):
        self.size = size
        self.items: OrderedDict[str, object] = OrderedDict()

    def get(self, path: Path):
        from ..io import read_volume

        key = str(path)
        if key in self.items:
            self.items.move_to_end(key)
            return self.items[key]
        vol = read_volume(path)
        self.items[key] = vol
        while len(self.items) > self.size:
            self.items.popitem(last=False)
        return vol


def _csvs(inp: Path) -> list[Path]:
    if inp.is_file():
        return [inp]
    files = sorted(inp.glob("*.csv"))
    if not files:
        raise MedgroundError(f"{inp}: no M3D-RefSeg CSV (M3D_RefSeg.csv / M3D_RefSeg_test.csv) in this folder")
    return files


@register(
    "m3d-refseg",
    "M3D-RefSeg CSV + CT / multi-label mask NIfTI volumes -> 2-D slices with box, mask and key points",
    {
        "axis": Option("slicing axis in RAS+: 0 sagittal, 1 coronal, 2 axial", default=2),
        "slices": Option("number of slices per row (the ones where the target is largest)", default=1),
        "window": Option("auto (by region), a preset (lung, abdomen, bone, brain...) or 'center,width'", default="auto"),
        "query": Option("text used as the query: text | question | answer", default="text"),
        "min_area": Option("skip slices where the target has fewer pixels", default=1),
    },
)
def convert(ctx: Context):
    from ..io import WINDOW_PRESETS, apply_window, resolve_window, take_slice, to_display
    from ..masks import save_mask_png

    axis = int(ctx.option("axis"))
    if axis not in (0, 1, 2):
        raise MedgroundError(f"m3d-refseg: option axis must be 0, 1 or 2, got {axis}")
    n_slices = max(1, int(ctx.option("slices")))
    query_key = str(ctx.option("query")).lower()
    if query_key not in ("text", "question", "answer"):
        raise MedgroundError(f"m3d-refseg: option query must be text, question or answer, got {query_key!r}")
    win_opt = str(ctx.option("window"))
    fixed_window = None if win_opt.lower() == "auto" else resolve_window(win_opt)
    if win_opt.lower() != "auto" and not isinstance(fixed_window, tuple):
        raise MedgroundError(f"m3d-refseg: option window must be auto, a preset or 'center,width', got {win_opt!r}")
    min_area = int(ctx.option("min_area"))
    cache = _VolumeCache()
    img_dir, mask_dir = ctx.out / "images", ctx.out / "masks"

    for csv_path in _csvs(ctx.input):
        split = split_from_name(csv_path) or ctx.split or "train"
        rows = list(read_csv_rows(csv_path, ctx, REQUIRED))
        for n, row in ctx.progress(rows, total=len(rows), desc=f"m3d-refseg {csv_path.name}"):
            ctx.report.rows_read += 1
            ct_path = _resolve(ctx, row["Image"], csv_path)
            case = ct_path.parent.name or Path(row["Image"]).parent.name
            try:
                mask_id = int(float(row["Mask_ID"]))
            except ValueError:
                ctx.skip(n, f"non-integer Mask_ID {row['Mask_ID']!r}", case, file=csv_path)
                continue
            base_id = f"m3d-{split}-{case}-m{mask_id}-r{n}"
            if not ctx.image_exists(ct_path, n, base_id):
                ctx.skip(n, f"CT volume not found: {ct_path}", base_id, file=csv_path)
                continue
            mask_path = _resolve(ctx, row["Mask"], csv_path)
            if not mask_path.is_file():
                ctx.skip(n, f"mask volume not found: {mask_path}", base_id, file=csv_path)
                continue
            try:
                ct = cache.get(ct_path)
                mk = cache.get(mask_path)
            except MedgroundError as exc:
                ctx.skip(n, str(exc), base_id, file=csv_path)
                continue
            ct_data = np.asarray(ct.data)
            mk_data = np.asarray(mk.data)
            if ct_data.ndim == 4:
                ct_data = ct_data[..., 0]
            if mk_data.ndim == 4:
                mk_data = mk_data[..., 0]
            if ct_data.shape != mk_data.shape:
                ctx.skip(n, f"CT shape {ct_data.shape} differs from mask shape {mk_data.shape}", base_id, file=csv_path)
                continue
            target = np.rint(mk_data).astype(np.int64) == mask_id
            other = tuple(a for a in range(3) if a != axis)
            areas = target.sum(axis=other)
            if areas.max(initial=0) < max(min_area, 1):
                labels = np.unique(np.rint(mk_data).astype(np.int64))
                ctx.skip(n, f"empty target: no voxel with label {mask_id} (labels present: "
                            f"{labels[:20].tolist()})", base_id, file=csv_path)
                continue
            order = sorted(range(len(areas)), key=lambda k: (-int(areas[k]), k))
            chosen = [k for k in order[:n_slices] if areas[k] >= max(min_area, 1)]
            text, question, answer = row["Text"], row["Question"], row["Answer"]
            query = {"text": text, "question": question, "answer": answer}[query_key]
            hu_like = float(np.nanmin(ct_data)) < -200
            if fixed_window is not None:
                win_name, window = "given", fixed_window
            elif hu_like:
                win_name = region_window(f"{text} {question}")
                window = WINDOW_PRESETS[win_name]
            else:
                lo, hi = np.percentile(ct_data[np.isfinite(ct_data)], [0.5, 99.5])
                win_name, window = "percentile", ((lo + hi) / 2.0, max(hi - lo, 1.0))
            for k in chosen:
                sid = base_id if n_slices == 1 else f"{base_id}-s{k}"
                plane = to_display(take_slice(ct_data, axis, k)).astype(np.float64)
                tmask = to_display(take_slice(target, axis, k))
                gray = np.round(apply_window(plane, *window) * 255).astype(np.uint8)
                H, W = gray.shape
                tag = f"{case}_a{axis}_{k:04d}_{win_name}"
                img_path = img_dir / f"{tag}.png"
                if not img_path.exists():
                    img_dir.mkdir(parents=True, exist_ok=True)
                    Image.fromarray(gray, mode="L").save(img_path)
                m_path = mask_dir / f"{case}_m{mask_id}_a{axis}_{k:04d}.png"
                if not m_path.exists():
                    save_mask_png(tmask, m_path)
                yield Sample(
                    id=sid,
                    image=str(img_path),
                    query=query,
                    boxes=[mask_box(tmask)],
                    mask=str(m_path),
                    points=mask_key_points(tmask),
                    category=organ_of(text),
                    modality="ct",
                    split=split,
                    width=int(W),
                    height=int(H),
                    meta={
                        "source": "m3d-refseg",
                        "file": str(csv_path),
                        "row": n,
                        "case": case,
                        "ct": str(ct_path),
                        "mask_volume": str(mask_path),
                        "mask_id": mask_id,
                        "axis": axis,
                        "plane": ("sagittal", "coronal", "axial")[axis],
                        "slice_index": int(k),
                        "slice_area": int(areas[k]),
                        "orientation": "radiological (RAS+ reoriented)",
                        "original_orientation": ct.original_orientation,
                        "spacing": [float(ct.spacing[a]) for a in other],
                        "window": [float(window[0]), float(window[1])],
                        "window_name": win_name,
                        "hounsfield": hu_like,
                        "box_frame": "pixels",
                        "box_from": "mask",
                        "text": text,
                        "question": question,
                        "answer": answer,
                        "question_type": row["Question_Type"],
                        "query_field": query_key,
                    },
                )
