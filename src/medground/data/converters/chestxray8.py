"""NIH ChestX-ray8 / ChestX-ray14 bounding boxes (Wang et al., CVPR 2017).

Reads ``BBox_List_2017.csv``, whose header is literally
``Image Index,Finding Label,Bbox [x,y,w,h],,,`` (the unquoted commas split the box
header over four columns): column 0 the image name, 1 the finding label, 2–5 the box
``x, y, w, h`` in pixels of the 1024 × 1024 PNGs.  An image may have several boxes;
boxes with the same image and label become one sample with several boxes.

Phrases are generated from the finding label with ``phrase_template`` (default
``"{finding}"``; ``{label}`` is the raw label), using natural names (``Effusion`` ->
"pleural effusion", ``Infiltrate`` -> "pulmonary infiltrate").

Splits: the official ``train_val_list.txt`` / ``test_list.txt`` when found beside the
CSV or under ``--images`` (``train_val`` -> ``train``); otherwise ``--split`` (default
``all``), or a deterministic per-patient split with ``val_frac`` / ``test_frac``.
Images are looked up under ``--images`` (or the CSV's folder) as ``NAME``,
``images/NAME`` or ``images_*/images/NAME`` (the layout of the NIH download).
"""

from __future__ import annotations

import csv
import hashlib
from collections import OrderedDict
from pathlib import Path

from ...errors import MedgroundError
from ...geometry import convert_boxes
from ..schema import Sample
from .base import Context, Option, register

FINDING_PHRASES = {
    "atelectasis": "atelectasis",
    "cardiomegaly": "cardiomegaly",
    "effusion": "pleural effusion",
    "infiltrate": "pulmonary infiltrate",
    "infiltration": "pulmonary infiltrate",
    "mass": "mass",
    "nodule": "nodule",
    "pneumonia": "pneumonia",
    "pneumothorax": "pneumothorax",
}
NATIVE_SIZE = (1024, 1024)


def finding_phrase(label: str) -> str:
    """Natural words for an NIH finding label.

    >>> finding_phrase("Effusion")
    'pleural effusion'
    """
    return FINDING_PHRASES.get(label.strip().lower(), label.strip().lower())


class _ImageIndex:
    def __init__(self, roots: list[Path]):
        self.roots = roots
        self._index: dict[str, Path] | None = None

    def find(self, name: str) -> Path:
        for root in self.roots:
            for cand in (root / name, root / "images" / name):
                if cand.is_file():
                    return cand
        if self._index is None:
            self._index = {}
            for root in self.roots:
                for p in root.glob("images_*/images/*.png"):
                    self._index.setdefault(p.name, p)
        return self._index.get(name, self.roots[0] / "images" / name)


def _official_splits(roots: list[Path]) -> dict[str, str] | None:
    for root in roots:
        tv, te = root / "train_val_list.txt", root / "test_list.txt"
        if tv.is_file() and te.is_file():
            split = {}
            for path, name in ((tv, "train"), (te, "test")):
                for line in path.read_text(encoding="utf-8").split():
                    split[line.strip()] = name
            return split
    return None


def _hash_split(patient: str, val_frac: float, test_frac: float) -> str:
    u = int(hashlib.sha1(patient.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    if u < test_frac:
        return "test"
    if u < test_frac + val_frac:
        return "val"
    return "train"


@register(
    "chestxray8",
    "NIH ChestX-ray8 BBox_List_2017.csv (xywh on 1024-px PNGs); phrases from the finding label",
    {
        "phrase_template": Option("phrase from the label: {finding} natural name, {label} raw label",
                                  default="{finding}"),
        "val_frac": Option("per-patient val fraction when no official split lists are found", default=0.0),
        "test_frac": Option("per-patient test fraction when no official split lists are found", default=0.0),
        "group": Option("one sample per (image, finding) with all its boxes; false: one per box", default=True),
    },
)
def convert(ctx: Context):
    roots = ([ctx.images] if ctx.images else []) + [ctx.input.parent]
    index = _ImageIndex(roots)
    official = _official_splits(roots)
    vf, tf = float(ctx.option("val_frac")), float(ctx.option("test_frac"))
    if not (0 <= vf <= 1 and 0 <= tf <= 1 and vf + tf <= 1):
        raise MedgroundError(f"chestxray8: val_frac + test_frac must lie in [0, 1], got {vf} + {tf}")
    ctx.report.extra["split_method"] = (
        "official lists" if official else ("per-patient hash" if vf + tf > 0 else f"all in {ctx.split or 'all'}")
    )
    template = str(ctx.option("phrase_template"))

    try:
        fh = open(ctx.input, newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise MedgroundError(f"{ctx.input}: cannot open CSV ({exc.strerror or exc})") from None
    groups: OrderedDict[tuple, dict] = OrderedDict()
    with fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if not header or [h.strip().lower() for h in header[:2]] != ["image index", "finding label"] or not any(
            "bbox" in h.lower() for h in header
        ):
            raise MedgroundError(
                f"{ctx.input}: not BBox_List_2017.csv — expected the header 'Image Index,Finding Label,Bbox [x,y,w,h],,,'"
                f", got {','.join(header or [])!r}"
            )
        for n, row in enumerate(reader, 1):
            if not any(c.strip() for c in row):
                continue
            ctx.report.rows_read += 1
            name = row[0].strip() if row else ""
            if len(row) < 6:
                ctx.skip(n, f"expected 6 values (image, label, x, y, w, h), got {len(row)}", name or None)
                continue
            label = row[1].strip()
            try:
                x, y, w, h = (float(v) for v in row[2:6])
            except ValueError:
                ctx.skip(n, f"non-numeric box {row[2:6]!r}", name)
                continue
            if not name or not label:
                ctx.skip(n, "empty image index or finding label", name or None)
                continue
            if w <= 0 or h <= 0:
                ctx.skip(n, f"box with zero or negative size w={w} h={h}", name)
                continue
            key = (name, label) if ctx.option("group") else (name, label, n)
            g = groups.setdefault(key, {"rows": [], "xywh": []})
            g["rows"].append(n)
            g["xywh"].append([x, y, w, h])

    counters: dict[str, int] = {}
    for key, g in ctx.progress(groups.items(), total=len(groups)):
        name, label = key[0], key[1]
        k = counters.get(name, 0)
        counters[name] = k + 1
        stem = name.rsplit(".", 1)[0]
        sid = f"cxr8-{stem}-{k}"
        finding = finding_phrase(label)
        try:
            phrase = template.format(finding=finding, label=label)
        except (KeyError, IndexError, ValueError) as exc:
            raise MedgroundError(f"chestxray8: bad phrase_template {template!r} ({exc})") from None
        img = index.find(name)
        meta = {
            "source": "chestxray8",
            "row": g["rows"][0],
            "rows": g["rows"],
            "image_index": name,
            "finding_label": label,
            "phrase": phrase,
            "box_frame": "fixed:1024x1024",
            "boxes_original": g["xywh"],
            "boxes_original_format": "xywh",
        }
        patient = name.split("_")[0]
        sample = Sample(id=sid, image=str(img), query=phrase, boxes=convert_boxes(g["xywh"], "xywh", "xyxy").tolist(),
                        category=label, modality="xray", meta={**meta, "patient_id": patient})
        # boxes are defined on the 1024-px originals: a resized copy gets them mapped
        if not ctx.fit_to_image(sample, NATIVE_SIZE, warning=(
                "images not 1024x1024: boxes mapped from the 1024-px frame to the file's pixels")):
            continue
        if sample.meta.get("image_missing"):
            sample.meta["size_assumed"] = True
        if official is not None:
            sample.split = official.get(name)
            if sample.split is None:
                ctx.warn("images in neither train_val_list.txt nor test_list.txt: put in split 'other'")
                sample.split = "other"
        elif vf + tf > 0:
            sample.split = _hash_split(patient, vf, tf)
        else:
            sample.split = ctx.split
        yield sample
