"""MedRPG split manifests (Chen et al., MICCAI 2023), the splits MedGround-R1 and its
baselines train and test on.

Input: one ``.pth`` file or a folder with ``MS_CXR_{train,val,test}.pth`` and / or
``ChestXray8_{train,val,test}.pth`` (the split comes from the file name).  Each file is
a pickled list of tuples, loaded with ``torch.load(..., weights_only=True)`` (plain
tuples / lists / str / int / float — no code is unpickled):

* MS-CXR      ``(anno_id, image_id, category_id, img_file, (x, y, w, h), W, H, phrase)``
* ChestX-ray8 ``(anno_id, image_id, 0, img_file, [x, y, w, h], label, phrase)``

Boxes are ``xywh`` in the pixels of the image file ``img_file`` that MedRPG opens (its
loader uses them unchanged): for MS-CXR the 640 × 640 pre-resized MIMIC-CXR JPGs of the
MedRPG release, ``W × H`` being the original MIMIC-CXR size.  The option ``frame``
states the frame of the boxes: ``auto`` (the pixels of the image file found; when the
file is missing, 640 × 640 for MS-CXR and 1024 × 1024 for ChestX-ray8) or
``fixed:WxH``.  Canonical boxes are mapped from that frame to the pixels of the image
found under ``--images`` (so the 640-px boxes can be used with the original MIMIC-CXR-JPG
files: ``--images MIMIC_ROOT --option frame=fixed:640``).  ``meta`` keeps the manifest
box, its frame and, for MS-CXR, the box in original ``W × H`` pixels.

Besides the canonical files the converter writes ``DIR/medground_r1/{split}.json``, the
training JSON of MedGround-R1 / VLM-R1: ``image`` (the manifest's ``img_file``),
``problem`` ("Please provide the bounding box coordinate of the region this sentence
describes: {phrase}."), ``solution`` (``xyxy`` in the manifest frame, what MedGround-R1
trains on) and ``normalized_solution`` (the same box in 0–1000, rounded).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...errors import MedgroundError
from ...geometry import PIXELS, Frame, convert_boxes, map_boxes
from ...templates import R1_QUESTION
from ..schema import Sample
from .base import Context, Option, register, split_from_name, write_json

#: MS-CXR ``category_id`` of the MedRPG manifests -> MS-CXR category (read off the phrases
#: of the released MS_CXR_*.pth files: 1 = 333 cardiomegaly phrases, 7 = pneumothorax, ...).
MSCXR_CATEGORIES = {
    1: "Cardiomegaly",
    2: "Lung Opacity",
    3: "Edema",
    4: "Consolidation",
    5: "Pneumonia",
    6: "Atelectasis",
    7: "Pneumothorax",
    8: "Pleural Effusion",
}
DEFAULT_FRAMES = {"mscxr": (640, 640), "chestxray8": (1024, 1024)}


def load_manifest(path: Path) -> list:
    """A MedRPG ``.pth`` manifest, loaded without executing pickled code."""
    import pickle

    import torch

    try:
        data = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise MedgroundError(
            f"{path}: refused to load — the file contains objects other than plain tuples / lists / numbers / "
            f"strings, which a MedRPG manifest never has ({str(exc).splitlines()[0]})"
        ) from None
    except Exception as exc:  # noqa: BLE001 - corrupt zip, truncated file ...
        raise MedgroundError(f"{path}: not a readable MedRPG manifest ({type(exc).__name__}: {exc})") from None
    if not isinstance(data, (list, tuple)):
        raise MedgroundError(f"{path}: expected a list of annotation tuples, got {type(data).__name__}")
    return list(data)


def _kind(rec) -> str | None:
    if not isinstance(rec, (tuple, list)):
        return None
    if len(rec) == 8 and isinstance(rec[3], str) and isinstance(rec[7], str):
        return "mscxr"
    if len(rec) == 7 and isinstance(rec[3], str) and isinstance(rec[6], str):
        return "chestxray8"
    return None


def _manifests(inp: Path) -> list[Path]:
    if inp.is_file():
        return [inp]
    files = sorted(p for p in inp.iterdir() if p.suffix == ".pth")
    if not files:
        raise MedgroundError(f"{inp}: no MedRPG .pth manifests (MS_CXR_*.pth / ChestXray8_*.pth) in this folder")
    return files


def _frame(ctx: Context, kind: str) -> tuple[int, int] | None:
    spec = str(ctx.option("frame")).strip().lower()
    if spec == "auto":
        return None
    try:
        f = Frame.parse(spec)
    except (ValueError, IndexError):
        f = None
    if f is None or f.kind != "fixed":
        raise MedgroundError(f"medrpg: option frame must be 'auto' or 'fixed:WxH', got {spec!r}")
    return int(f.width), int(f.height)


@register(
    "medrpg",
    "MedRPG split manifests MS_CXR_*.pth / ChestXray8_*.pth (MedGround-R1 splits); also writes medground_r1/*.json",
    {
        "frame": Option("frame of the manifest boxes: auto (pixels of the image file) or fixed:WxH", default="auto"),
        "r1_json": Option("also write DIR/medground_r1/{split}.json (MedGround-R1 training JSON)", default=True),
    },
)
def convert(ctx: Context):
    for path in _manifests(ctx.input):
        records = load_manifest(path)
        split = split_from_name(path) or ctx.split
        stem = path.stem
        for n, rec in enumerate(ctx.progress(records, total=len(records), desc=f"medrpg {path.name}"), 1):
            ctx.report.rows_read += 1
            kind = _kind(rec)
            if kind is None:
                ctx.skip(n, f"record is not a MedRPG MS-CXR (8-tuple) or ChestX-ray8 (7-tuple) annotation: "
                            f"{str(rec)[:120]}", file=path)
                continue
            anno_id, image_id, category_id, img_file = rec[0], rec[1], rec[2], rec[3]
            sid = f"medrpg-{stem}-{anno_id}"
            try:
                xywh = [float(v) for v in rec[4]]
                if len(xywh) != 4:
                    raise ValueError
            except (TypeError, ValueError):
                ctx.skip(n, f"malformed box {rec[4]!r}", sid, file=path)
                continue
            if kind == "mscxr":
                orig_w, orig_h, phrase = rec[5], rec[6], rec[7]
                category = MSCXR_CATEGORIES.get(int(category_id), str(category_id))
            else:
                orig_w = orig_h = None
                category, phrase = str(rec[5]), rec[6]
            box = convert_boxes([xywh], "xywh", "xyxy")
            frame = _frame(ctx, kind)
            img = ctx.resolve_image(img_file)
            meta = {
                "source": "medrpg",
                "manifest": path.name,
                "file": str(path),
                "row": n,
                "anno_id": anno_id,
                "image_id": image_id,
                "category_id": category_id,
                "img_file": img_file,
                "phrase": phrase,
                "box_manifest": xywh,
                "box_manifest_format": "xywh",
                "dataset": kind,
            }
            sample = Sample(id=sid, image=str(img), query=str(phrase), boxes=box.tolist(), category=category,
                            modality="xray", split=split, meta=meta)
            if not ctx.fit_to_image(sample, frame, missing_size=DEFAULT_FRAMES[kind]):
                continue
            fw, fh = frame or (sample.width, sample.height)
            meta["box_frame"] = f"fixed:{fw}x{fh}"
            meta["frame_size"] = [fw, fh]
            if orig_w and orig_h:
                meta["original_size"] = [int(orig_w), int(orig_h)]
                meta["box_original_pixels"] = map_boxes(
                    convert_boxes([xywh], "xywh", "xyxy"), (fw, fh), src=PIXELS,
                    dst=Frame("fixed", width=int(orig_w), height=int(orig_h)),
                )[0].round(3).tolist()
            yield sample


def r1_record(s: Sample) -> dict:
    """One MedGround-R1 / VLM-R1 training record from a converted MedRPG sample, in the
    manifest's frame (what MedGround-R1 trained and evaluated on)."""
    x, y, w, h = s.meta["box_manifest"]
    fw, fh = s.meta["frame_size"]
    solution = [float(x), float(y), float(x + w), float(y + h)]
    norm = map_boxes([solution], (fw, fh), src=PIXELS, dst=Frame("norm1000"))[0]
    return {
        "id": s.id,
        "image": s.meta["img_file"],
        "problem": R1_QUESTION.format(query=s.query.strip().rstrip(".")),
        "solution": solution,
        "normalized_solution": [int(v) for v in np.round(norm)],
        "frame": f"fixed:{fw}x{fh}",
    }


def write_r1_json(ctx: Context, by_split: dict[str, list[Sample]]) -> None:
    if not ctx.option("r1_json"):
        return
    written = []
    for split, samples in sorted(by_split.items()):
        out = ctx.out / "medground_r1" / f"{split}.json"
        write_json([r1_record(s) for s in samples], out)
        written.append(str(out.relative_to(ctx.out)))
    ctx.report.extra["medground_r1_json"] = written


convert.finalize = write_r1_json
