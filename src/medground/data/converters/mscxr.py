"""MS-CXR (PhysioNet, Boecking et al. 2022) — phrase grounding on MIMIC-CXR.

Reads ``MS_CXR_Local_Alignment_v1.0.0.csv`` (columns ``dicom_id, category_name,
label_text, path, x, y, w, h, image_width, image_height``) and v1.1.0 (the same plus
``split``).  One CSV row is one box in ``xywh`` original pixels; rows with the same
``dicom_id``, ``category_name`` and ``label_text`` are one phrase with several boxes and
become one sample with all its boxes.

Images come from a MIMIC-CXR-JPG root (``--images``): the CSV ``path`` points at the
MIMIC-CXR DICOM (``files/pXX/pXXXXXXXX/sXXXXXXXX/<dicom_id>.dcm``); the same path with
``.jpg`` is tried, and the part from ``files/`` on.  When an image is found its size is
compared with ``image_width × image_height``; a pre-resized copy has its boxes mapped
into its own pixels (``medground.geometry.map_boxes``; ``meta.box_frame`` records the
CSV frame).  v1.0.0 has no split column: every sample goes to ``--split`` (default
``all``).
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

from ...geometry import convert_boxes
from ..schema import Sample
from .base import Context, Option, read_csv_rows, register

REQUIRED = ("dicom_id", "category_name", "label_text", "path", "x", "y", "w", "h", "image_width", "image_height")


def _candidates(rel: str) -> list[str]:
    """Relative paths to try for a CSV ``path`` in a MIMIC-CXR(-JPG) root."""
    rel = rel.replace("\\", "/").lstrip("/")
    out = [rel]
    if rel.lower().endswith(".dcm"):
        out.append(rel[:-4] + ".jpg")
    if "files/" in rel and not rel.startswith("files/"):
        tail = rel[rel.index("files/"):]
        out += [tail] + ([tail[:-4] + ".jpg"] if tail.lower().endswith(".dcm") else [])
    return list(OrderedDict.fromkeys(out))


def find_image(ctx: Context, rel: str) -> Path:
    """The first existing candidate under ``--images`` then the CSV's folder; when none
    exists, the ``.jpg`` candidate under the first root (reported as missing)."""
    roots = ([ctx.images] if ctx.images else []) + [ctx.input.parent]
    cands = _candidates(rel)
    for cand in cands:
        for root in roots:
            if (root / cand).is_file():
                return root / cand
    jpg = [c for c in cands if c.lower().endswith(".jpg")]
    return roots[0] / (jpg[-1] if jpg else cands[0])


@register(
    "mscxr",
    "PhysioNet MS-CXR CSV (v1.0.0 / v1.1.0) with MIMIC-CXR-JPG images (--images ROOT)",
    {
        "category_as_supercategory": Option("also copy category_name to supercategory", default=False),
    },
)
def convert(ctx: Context):
    groups: OrderedDict[tuple, dict] = OrderedDict()
    has_split = None
    for n, row in read_csv_rows(ctx.input, ctx, REQUIRED):
        ctx.report.rows_read += 1
        if has_split is None:
            has_split = "split" in row
        try:
            x, y, w, h = (float(row[k]) for k in ("x", "y", "w", "h"))
            W, H = int(float(row["image_width"])), int(float(row["image_height"]))
        except (TypeError, ValueError):
            ctx.skip(n, f"non-numeric box or size: x={row.get('x')!r} y={row.get('y')!r} w={row.get('w')!r} "
                        f"h={row.get('h')!r} image_width={row.get('image_width')!r}", row.get("dicom_id"))
            continue
        if not row["dicom_id"] or not row["label_text"]:
            ctx.skip(n, "empty dicom_id or label_text", row.get("dicom_id"))
            continue
        if w <= 0 or h <= 0:
            ctx.skip(n, f"box with zero or negative size w={w} h={h}", row["dicom_id"])
            continue
        key = (row["dicom_id"], row["category_name"], row["label_text"])
        g = groups.get(key)
        if g is None:
            g = groups[key] = {"rows": [], "xywh": [], "row": row, "size": (W, H)}
        elif g["size"] != (W, H):
            ctx.skip(n, f"image size {W}x{H} differs from {g['size'][0]}x{g['size'][1]} given on row "
                        f"{g['rows'][0]} for the same image", row["dicom_id"])
            continue
        g["rows"].append(n)
        g["xywh"].append([x, y, w, h])

    per_image: dict[str, int] = {}
    for (dicom_id, category, phrase), g in ctx.progress(groups.items(), total=len(groups)):
        row = g["row"]
        k = per_image.get(dicom_id, 0)
        per_image[dicom_id] = k + 1
        sid = f"mscxr-{dicom_id}-{k}"
        W, H = g["size"]
        boxes = convert_boxes(g["xywh"], "xywh", "xyxy")
        path = find_image(ctx, row["path"])
        meta = {
            "source": "mscxr",
            "row": g["rows"][0],
            "rows": g["rows"],
            "dicom_id": dicom_id,
            "csv_path": row["path"],
            "phrase": phrase,
            "box_frame": f"pixels:{W}x{H}",
            "boxes_original": [list(map(float, b)) for b in g["xywh"]],
            "boxes_original_format": "xywh",
            "layout": "v1.1.0" if "split" in row else "v1.0.0",
        }
        sample = Sample(id=sid, image=str(path), query=phrase, boxes=boxes.tolist(), category=category or None,
                        supercategory=category if ctx.option("category_as_supercategory") else None,
                        modality="xray", split=(row.get("split") or "").strip().lower() or ctx.split, meta=meta)
        if ctx.fit_to_image(sample, (W, H), warning=(
                "images whose size differs from the CSV image_width/height: boxes mapped to the file's pixels")):
            yield sample
