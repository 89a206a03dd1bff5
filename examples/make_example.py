"""Build the tiny bundled evaluation example (``examples/tiny/``).

    python examples/make_example.py [OUT_DIR]

Writes three 64x64 phantom chest images, two target masks, a 5-sample dataset
(``dataset.jsonl``), predictions in the ``medground`` format (``predictions.jsonl``)
that exercise every rule of ``medground evaluate``, the same predictions as a
MedReasoner output file (``medreasoner_output.json``), and a deliberately broken
dataset (``broken.jsonl``) for ``medground data validate``.  Deterministic.

The predictions, against the ground truth:

* ``case-001`` boxes in pixels, half-shifted: IoU 0.6; points and an RLE mask too;
* ``case-002`` only a completion, in Qwen2.5-VL's resized frame (64 px -> 56 px),
  whose box maps back exactly onto the target: IoU 1.0;
* ``case-003`` the predictor recorded an error (counted as missing, IoU 0);
* ``case-004`` no prediction line at all (missing, IoU 0);
* ``case-005`` a completion without any box (unparseable, IoU 0);
* ``case-999`` an id that is not in the dataset (reported as extra).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from medground.data.masks import encode_rle, save_mask_png
from medground.data.schema import Sample
from medground.geometry import Frame, map_boxes, map_points
from medground.metrics import box_iou, disc_dice

SIZE = 64


def phantom(seed: int, blobs: list[tuple[float, float, float, float]]) -> np.ndarray:
    """A smooth 8-bit chest-like phantom: bright body, two dark lungs, bright blobs."""
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float64)
    img = 150 + 20 * np.cos(xx / SIZE * np.pi) + seed * 5
    for cx in (20, 44):
        img[((xx - cx) / 12) ** 2 + ((yy - 30) / 22) ** 2 <= 1] = 60
    for cx, cy, rx, ry in blobs:
        img[((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 <= 1] = 230
    return np.clip(img, 0, 255).astype(np.uint8)


def ellipse_mask(cx: float, cy: float, rx: float, ry: float) -> np.ndarray:
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    return ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 <= 1


def samples() -> list[Sample]:
    common = dict(modality="xray", split="test", width=SIZE, height=SIZE)
    return [
        Sample(
            "case-001",
            "images/chest1.png",
            "round nodule in the right upper lung",
            [[8, 8, 24, 24]],
            mask="masks/case-001.png",
            points=[[10, 16], [22, 16]],
            category="nodule",
            supercategory="lung",
            **common,
        ),
        Sample(
            "case-002",
            "images/chest2.png",
            "enlarged cardiac silhouette",
            [[16, 8, 48, 40]],
            mask="masks/case-002.png",
            points=[[20, 24], [44, 24]],
            category="cardiomegaly",
            supercategory="heart",
            **common,
        ),
        Sample(
            "case-003",
            "images/chest1.png",
            "left pleural effusion",
            [[36, 40, 60, 60]],
            category="effusion",
            supercategory="pleura",
            **common,
        ),
        Sample(
            "case-004",
            "images/chest3.png",
            "small apical pneumothorax",
            [[40, 4, 56, 16]],
            category="pneumothorax",
            supercategory="pleura",
            **common,
        ),
        Sample(
            "case-005",
            "images/chest3.png",
            "second nodule, lower zone",
            [[12, 40, 24, 52], [40, 40, 52, 52]],
            category="nodule",
            supercategory="lung",
            **common,
        ),
    ]


def predictions(qwen: Frame) -> list[dict]:
    size = (SIZE, SIZE)
    box2 = map_boxes([[16, 8, 48, 40]], size, dst=qwen)[0]
    p2 = map_points([[20, 24], [44, 24]], size, dst=qwen)
    completion2 = (
        "<think>The heart shadow spans more than half of the thoracic width "
        f"[{box2[0]:g}, {box2[1]:g}, {box2[2]:g}, {box2[3]:g}].</think>"
        f'<answer>{{"bbox_2d": [{box2[0]:g}, {box2[1]:g}, {box2[2]:g}, {box2[3]:g}], '
        f'"points_1": [{p2[0][0]:g}, {p2[0][1]:g}], "points_2": [{p2[1][0]:g}, {p2[1][1]:g}]}}</answer>'
    )
    return [
        {
            "id": "case-001",
            "completion": '<answer>{"bbox_2d": [12, 8, 28, 24]}</answer>',
            "boxes": [[12, 8, 28, 24]],
            "points": [[12, 16], [24, 16]],
            "mask": encode_rle(ellipse_mask(20, 16, 8, 8)),
            "frame": "pixels",
            "error": None,
        },
        {
            "id": "case-002",
            "completion": completion2,
            "boxes": [],
            "points": None,
            "mask": None,
            "frame": "qwen2.5-vl",
            "error": None,
        },
        {
            "id": "case-003",
            "completion": None,
            "boxes": [],
            "points": None,
            "mask": None,
            "frame": "qwen2.5-vl",
            "error": "generation failed: CUDA out of memory",
        },
        {
            "id": "case-005",
            "completion": "<think>No second nodule is visible.</think><answer>none</answer>",
            "boxes": [],
            "points": None,
            "mask": None,
            "frame": "qwen2.5-vl",
            "error": None,
        },
        {
            "id": "case-999",
            "completion": "",
            "boxes": [[0, 0, 10, 10]],
            "points": None,
            "mask": None,
            "frame": "pixels",
            "error": None,
        },
    ]


def medreasoner_rows(data: list[Sample], preds: list[dict]) -> list[dict]:
    """The same predictions in MedReasoner's published per-sample layout, with its own
    (stored) ``iou`` and ``pdice`` formulas: IoU with +1e-6, pDice = 2I / (A + B - I)."""
    by_id = {p["id"]: p for p in preds}
    rows = []
    for s in data:
        p = by_id.get(s.id)
        if p is None:
            continue
        bbox = p["boxes"][0] if p["boxes"] else None
        pts = p["points"]
        if s.id == "case-002":  # MedReasoner writes what the model wrote; here, pixels
            bbox, pts = s.boxes[0], s.points
        if bbox is None or pts is None or s.points is None:
            think, iou, pdice = "error", 0.0, 0.0
            bbox = pts = None
        else:
            think = "clinical reasoning"
            iou = float(box_iou([bbox], [s.boxes[0]])[0])
            d = float(disc_dice([pts], [s.points])[0])
            pdice = 2 * d / (2 - d)  # MedReasoner's 2I/(A+B-I) from the Dice 2I/(A+B)
        rows.append(
            {
                "id": s.id,
                "problem": s.query,
                "supercategory": s.supercategory,
                "category": s.category,
                "output": p["completion"] or "",
                "think": think,
                "bbox": bbox,
                "points": pts,
                "iou": round(iou, 4),
                "pdice": round(pdice, 4),
            }
        )
    return rows


BROKEN = [
    '{"id": "ok-1", "image": "images/chest1.png", "query": "nodule", "boxes": [[8, 8, 24, 24]]}',
    '{"id": "bad-box", "image": "images/chest1.png", "query": "nodule", "boxes": [[50, 8, 80, 24]]}',
    '{"id": "flat-box", "image": "images/chest1.png", "query": "nodule", "boxes": [[8, 8, 8, 24]]}',
    '{"id": "no-image", "image": "images/missing.png", "query": "nodule", "boxes": [[8, 8, 24, 24]]}',
    '{"id": "bad-mask", "image": "images/chest1.png", "query": "x", "boxes": [[8, 8, 24, 24]], "mask": "masks/small.png"}',
    '{"id": "ok-1", "image": "images/chest2.png", "query": "duplicate id", "boxes": [[8, 8, 24, 24]]}',
    '{"id": "no-query", "image": "images/chest2.png", "boxes": [[8, 8, 24, 24]]}',
    '{"id": "broken-json", "image": ',
]


def main(out: Path) -> None:
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "masks").mkdir(parents=True, exist_ok=True)
    Image.fromarray(phantom(0, [(16, 16, 7, 7), (48, 50, 10, 8)])).save(out / "images/chest1.png", optimize=True)
    Image.fromarray(phantom(1, [(32, 24, 15, 15)])).save(out / "images/chest2.png", optimize=True)
    Image.fromarray(phantom(2, [(18, 46, 5, 5)])).save(out / "images/chest3.png", optimize=True)
    save_mask_png(ellipse_mask(16, 16, 7, 7), out / "masks/case-001.png")
    save_mask_png(ellipse_mask(32, 24, 15, 15), out / "masks/case-002.png")
    save_mask_png(np.ones((16, 16), bool), out / "masks/small.png")
    data = samples()
    (out / "dataset.jsonl").write_text("".join(json.dumps(s.to_dict()) + "\n" for s in data))
    preds = predictions(Frame.parse("qwen2.5-vl"))
    (out / "predictions.jsonl").write_text("".join(json.dumps(p) + "\n" for p in preds))
    (out / "medreasoner_output.json").write_text(json.dumps(medreasoner_rows(data, preds), indent=4) + "\n")
    (out / "broken.jsonl").write_text("\n".join(BROKEN) + "\n")
    print(f"example written to {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent / "tiny")
