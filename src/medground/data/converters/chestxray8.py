"""NIH ChestX-ray8 / ChestX-ray14 bounding boxes (Wang et al., CVPR 2017).

Reads ``BBox_List_2017.csv``, whose header is literally
``Image Index,Finding Label,Bbox [x,y,w,h],,,`` (the unquoted commas split the box
header over four columns): column 0 the image name, 1 the finding label, 2–5 the box
``x, y, w, h`` in pixels of the 1024 × 1024 PNGs.  An image may have several boxes;
boxes with the same image and label become one multi-target sample with all of them
(``group``, default on; ``group=false``: the old layout, one sample per box).

Negatives (option ``negatives``: the path of NIH's ``Data_Entry_2017.csv``, whose
``Finding Labels`` column lists each image's image-level labels, ``|``-separated, or
``No Finding``): for every image of the box list, box-list findings its labels do not
name become negative samples (``boxes: []``, ``meta.negative``) — ``negatives_per_image``
of them (0: all), chosen by a hash of image and finding, so the same files give the
same samples.  ``no_finding_images`` adds that many ``No Finding`` images (those whose
file is found), each with ``negatives_per_image`` negatives.  The labels were mined from
the reports by NLP (about 90 % precise, Wang et al.): expect some false negatives.

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
#: The eight findings of BBox_List_2017.csv (Data_Entry_2017.csv says "Infiltration" for "Infiltrate").
BOX_LABELS = ("Atelectasis", "Cardiomegaly", "Effusion", "Infiltrate", "Mass", "Nodule", "Pneumonia", "Pneumothorax")


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
        "negatives": Option("path of Data_Entry_2017.csv: write negatives (boxes: []) for box-list findings an "
                            "image's labels do not name; empty: none", default=""),
        "negatives_per_image": Option("negatives per image with negatives=... (0: every absent finding)", default=1),
        "no_finding_images": Option("'No Finding' images of the negatives file added, with negatives only",
                                    default=0),
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

    split_of = _splitter(ctx, official, vf, tf)
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
        sample.split = split_of(name)
        yield sample
    if ctx.option("negatives"):
        yield from negatives(ctx, index, [key[0] for key in groups], template, split_of)


def _splitter(ctx: Context, official: dict[str, str] | None, vf: float, tf: float):
    """``image name -> split``: the official lists, else the per-patient hash, else ``--split``."""
    def split_of(name: str) -> str | None:
        if official is not None:
            if name not in official:
                ctx.warn("images in neither train_val_list.txt nor test_list.txt: put in split 'other'")
            return official.get(name, "other")
        if vf + tf > 0:
            return _hash_split(name.split("_")[0], vf, tf)
        return ctx.split

    return split_of


def read_data_entry(path: Path) -> dict[str, tuple[int, set[str]]]:
    """``image name -> (row, finding phrases)`` from NIH's ``Data_Entry_2017.csv`` (labels
    ``|``-separated; ``No Finding`` gives an empty set), phrases as :func:`finding_phrase`."""
    try:
        fh = open(path, newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise MedgroundError(f"{path}: cannot open Data_Entry CSV ({exc.strerror or exc})") from None
    out = {}
    with fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if not header or [h.strip().lower() for h in header[:2]] != ["image index", "finding labels"]:
            raise MedgroundError(f"{path}: not Data_Entry_2017.csv — expected the header to start with "
                                 f"'Image Index,Finding Labels', got {','.join(header or [])[:80]!r}")
        for n, row in enumerate(reader, 1):
            if len(row) < 2 or not row[0].strip():
                continue
            labels = {finding_phrase(x) for x in row[1].split("|") if x.strip() and x.strip().lower() != "no finding"}
            out[row[0].strip()] = (n, labels)
    return out


def negatives(ctx: Context, index: _ImageIndex, boxed: list[str], template: str, split_of):
    """Negative samples (``boxes: []``) from the image-level labels of the ``negatives`` file:
    per image of the box list (and ``no_finding_images`` 'No Finding' images), box-list
    findings its labels do not name."""
    path = Path(str(ctx.option("negatives")))
    if not path.is_absolute() and not path.exists():
        path = ctx.input.parent / path
    entries = read_data_entry(path)
    per_image = int(ctx.option("negatives_per_image"))
    images = list(dict.fromkeys(boxed))
    extra = int(ctx.option("no_finding_images"))
    if extra > 0:
        normal = sorted((name for name, (_, found) in entries.items() if not found), key=_digest)
        images += [name for name in normal if name not in boxed and index.find(name).is_file()][:extra]
    written = 0
    for name in images:
        if name not in entries:
            ctx.warn(f"images of {ctx.input.name} not in {path.name}: no negatives for them")
            continue
        row, present = entries[name]
        absent = sorted((lb for lb in BOX_LABELS if finding_phrase(lb) not in present), key=lambda lb: _digest(name + lb))
        for k, label in enumerate(absent[:per_image] if per_image > 0 else absent):
            stem = name.rsplit(".", 1)[0]
            finding = finding_phrase(label)
            phrase = template.format(finding=finding, label=label)
            sample = Sample(id=f"cxr8-{stem}-neg{k}", image=str(index.find(name)), query=phrase, boxes=[],
                            category=label, modality="xray",
                            meta={"source": "chestxray8", "negative": True, "row": row, "file": str(path),
                                  "image_index": name, "finding_label": label, "phrase": phrase,
                                  "labels": sorted(present) or ["no finding"], "label_source": path.name,
                                  "patient_id": name.split("_")[0]})
            if not ctx.fit_to_image(sample, NATIVE_SIZE):
                continue
            sample.split = split_of(name)
            written += 1
            yield sample
    ctx.report.extra["negatives"] = written


def _digest(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()
