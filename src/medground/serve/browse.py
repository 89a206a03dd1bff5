"""The Browse tab without the page: a dataset and one or two prediction files as a
table of samples, filtered and sorted, and the overlay of truth and prediction of one
sample.

Scores and summary are :func:`medground.evaluate.evaluate`'s (any format it reads, the
bootstrap intervals included); this module only joins its per-sample rows to the
dataset, adds the *wrong side* flag and draws with :func:`medground.overlay.draw_overlay`.
Every image and mask named in the dataset or a prediction file must lie under the
folders the app was given (:func:`medground.data.roots.confine`); a file that
points elsewhere is refused as a whole, naming the line, before anything is read.

>>> wrong_side([150, 10, 190, 50], [[10, 10, 50, 50]], width=200)   # truth on the left half, answer on the right
True
>>> wrong_side([80, 10, 120, 50], [[10, 10, 190, 50]], width=200) is None   # truth across the midline
True
>>> filter_rows([{"id": "a", "category": "mass", "iou": 0.2, "status": "ok"},
...              {"id": "b", "category": "nodule", "iou": 0.9, "status": "ok"}], category="nodule")
[{'id': 'b', 'category': 'nodule', 'iou': 0.9, 'status': 'ok'}]
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..data.roots import confine, resolved_roots
from ..errors import MedgroundError, where

#: Statuses of a prediction (evaluate's): scored, absent from the file, failed, no box found.
STATUSES = ("ok", "missing", "error", "unparseable")
#: Longest query shown in the table (the detail shows it whole).
QUERY_CHARS = 80


@dataclass
class PredictionRun:
    """One prediction file: its ``name`` in the page, ``report`` (evaluate's, without the
    per-sample rows), ``rows`` (evaluate's per-sample rows by id) and what the overlay
    needs that the rows do not carry (``completions``, ``masks`` by id)."""

    path: Path
    name: str
    report: dict
    rows: dict[str, dict]
    completions: dict[str, str | None] = field(default_factory=dict)
    masks: dict[str, Any] = field(default_factory=dict)


class Browser:
    """A dataset and its prediction files, ready to show (see the module docstring).

    ``roots`` are the folders the app may read besides those of ``data`` and of each
    prediction file; ``iou``, ``fmt`` and ``bootstrap`` go to
    :func:`~medground.evaluate.evaluate`."""

    def __init__(self, data: str | os.PathLike, predictions: list, roots=(), *, iou: str = "standard",
                 fmt: str = "auto", bootstrap: int = 1000):
        from ..predict import read_samples

        if not predictions:
            raise MedgroundError("Browse needs at least one prediction file (--predictions)")
        if len(predictions) > 2:
            raise MedgroundError(f"Browse compares at most two prediction files, got {len(predictions)}")
        self.data = Path(data)
        self.roots = resolved_roots([self.data.parent, *(Path(p).parent for p in predictions), *roots])
        items = read_samples(self.data)
        for it in items:
            s = it.sample
            loc = where(self.data, it.line, s.id)
            confine(s.image, self.roots, what="image", where=loc)
            if isinstance(s.mask, str):
                confine(s.mask, self.roots, what="mask", where=loc)
        self.samples = [it.sample for it in items]
        self.by_id = {s.id: s for s in self.samples}
        self.runs = [self._run(Path(p), iou=iou, fmt=fmt, bootstrap=bootstrap) for p in predictions]
        _name_runs(self.runs)
        self.rows = [self._row(s) for s in self.samples]

    # ------------------------------------------------------------------ loading

    def _run(self, path: Path, *, iou: str, fmt: str, bootstrap: int) -> PredictionRun:
        from ..evaluate import evaluate
        from ..evaluate.readers import read_predictions

        fmt, records, _ = read_predictions(path, fmt)
        root = path.resolve().parent
        masks, completions = {}, {}
        for rec in records:
            if isinstance(rec.mask, str):  # a PNG path, relative to the prediction file
                target = rec.mask if os.path.isabs(rec.mask) else str(root / rec.mask)
                confine(target, self.roots, what="mask", where=where(path, rec.line, rec.id))
            if rec.id is not None:
                masks[str(rec.id)] = rec.mask
                completions[str(rec.id)] = rec.completion
        report = evaluate(path, data=self.samples, format=fmt, iou=iou, bootstrap=bootstrap, per_sample=True)
        per_sample = report.pop("per_sample")
        report["predictions"], report["data"] = str(path), str(self.data)
        if READ_BY_POSITION.get(fmt):  # logs joined to the dataset by position carry their own ids
            masks = {s.id: masks.get(str(r.id)) for s, r in zip(self.samples, records)}
            completions = {s.id: completions.get(str(r.id)) for s, r in zip(self.samples, records)}
        rows = {str(r["id"]): r for r in per_sample}
        return PredictionRun(path=path, name=path.stem, report=report, rows=rows, completions=completions, masks=masks)

    def _row(self, s) -> dict:
        row: dict[str, Any] = {"id": s.id, "category": s.category or "", "query": s.query}
        width = self._width(s)
        for k, run in enumerate(self.runs):
            r = run.rows.get(s.id, {})
            suffix = "" if k == 0 else "_b"
            row["iou" + suffix] = float(r.get("iou", 0.0))
            row["dice" + suffix] = r.get("dice")
            row["status" + suffix] = r.get("status", "missing")
            row["wrong_side" + suffix] = wrong_side(r.get("pred_box"), s.boxes, width)
        if len(self.runs) == 2:
            row["delta_iou"] = row["iou_b"] - row["iou"]
        return row

    def _width(self, s) -> float | None:
        if s.width:
            return float(s.width)
        from ..data.io import image_size

        try:
            return float(image_size(s.image)[0])
        except MedgroundError:
            return None

    # ------------------------------------------------------------------ what the page shows

    @property
    def has_dice(self) -> bool:
        return any(r.get("dice") is not None or r.get("dice_b") is not None for r in self.rows)

    def categories(self) -> list[str]:
        return sorted({r["category"] for r in self.rows if r["category"]})

    def columns(self) -> list[tuple[str, str]]:
        """``(key, header)`` of the table's columns, in order."""
        a = self.runs[0].name
        if len(self.runs) == 1:
            cols = [("id", "id"), ("category", "category"), ("query", "query"), ("iou", "IoU")]
            if self.has_dice:
                cols.append(("dice", "Dice"))
            return cols + [("status", "status"), ("wrong_side", "wrong side")]
        b = self.runs[1].name
        cols = [("id", "id"), ("category", "category"), ("query", "query"), ("iou", f"IoU {a}"),
                ("iou_b", f"IoU {b}"), ("delta_iou", "ΔIoU (B − A)")]
        if self.has_dice:
            cols += [("dice", f"Dice {a}"), ("dice_b", f"Dice {b}")]
        return cols + [("status", f"status {a}"), ("status_b", f"status {b}"), ("wrong_side", f"wrong side {a}"),
                       ("wrong_side_b", f"wrong side {b}")]

    def sort_keys(self) -> list[str]:
        """Headers the table can be sorted by (the numeric columns, id and category)."""
        return [h for k, h in self.columns() if k not in ("query", "status", "status_b", "wrong_side", "wrong_side_b")]

    def table(self, *, category: str | None = None, status: str | None = None, iou_min: float = 0.0,
              iou_max: float = 1.0, wrong_side_only: bool = False, sort_by: str | None = None,
              descending: bool = False) -> tuple[list[str], list[list]]:
        """``(headers, rows)`` after :func:`filter_rows` and :func:`sort_rows`; ``sort_by``
        is a header of :meth:`columns` (None: dataset order)."""
        rows = filter_rows(self.rows, category=category, status=status, iou_min=iou_min, iou_max=iou_max,
                           wrong_side_only=wrong_side_only)
        cols = self.columns()
        key = {h: k for k, h in cols}.get(sort_by or "", None)
        if sort_by and key is None:
            raise MedgroundError(f"cannot sort by {sort_by!r}; choose one of {', '.join(self.sort_keys())}")
        if key:
            rows = sort_rows(rows, key, descending=descending)
        return [h for _, h in cols], [[_cell(k, r.get(k)) for k, _ in cols] for r in rows]

    def summary_markdown(self) -> str:
        """evaluate's summary of each file: n, mIoU and Acc@t with their 95 % intervals,
        pDice / mask Dice when present, and the missing / failed / unparseable counts."""
        lines = []
        for run in self.runs:
            rep = run.report
            lines.append(f"**{run.name}** — {rep['n']} samples ({rep['n_missing']} missing, {rep['n_error']} errors, "
                         f"{rep['n_unparseable']} unparseable), format `{rep['format']}`, IoU `{rep['iou_variant']}`")
            lines.append("")
            keys = [k for k in ("miou", "acc@0.3", "acc@0.5", "acc@0.7", "pdice", "dice") if rep.get(k) is not None]
            names = {"miou": "mIoU", "pdice": "pDice", "dice": "mask Dice"}
            lines.append("| " + " | ".join(names.get(k, f"Acc (IoU > {k[4:]})") for k in keys) + " |")
            lines.append("|" + "---|" * len(keys))
            lines.append("| " + " | ".join(_with_ci(rep[k], rep.get("ci", {}).get(k)) for k in keys) + " |")
            lines.append("")
        lines.append("95 % bootstrap intervals (percent). IoU > t counts as a hit for Acc@t.")
        return "\n".join(lines)

    def detail(self, sample_id: str) -> list[tuple[Any, str, str]]:
        """For each prediction file: ``(overlay, completion, caption)`` of one sample."""
        from ..data.io import load_image
        from ..data.masks import load_mask
        from ..overlay import draw_overlay

        s = self.by_id.get(str(sample_id))
        if s is None:
            raise MedgroundError(f"no sample with id {sample_id!r} in {self.data.name}")
        image = load_image(s.image)
        gt_mask = load_mask(s.mask) if s.mask else None
        out = []
        for run in self.runs:
            r = run.rows.get(s.id, {})
            pred_mask = run.masks.get(s.id)
            try:
                pm = load_mask(pred_mask, root=run.path.resolve().parent) if pred_mask is not None else None
            except MedgroundError:
                pm = None
            status = r.get("status", "missing")
            caption = f"{run.name}: IoU {float(r.get('iou', 0.0)):.3f}, {status}"
            if r.get("dice") is not None:
                caption += f", Dice {float(r['dice']):.3f}"
            picture = draw_overlay(image, pred_box=r.get("pred_box"), pred_points=r.get("pred_points"), pred_mask=pm,
                                   gt_box=s.boxes, gt_points=s.points, gt_mask=gt_mask, title=caption)
            out.append((picture, run.completions.get(s.id) or "", caption))
        return out


#: Formats whose records are joined to the dataset by position, not by id.
READ_BY_POSITION = {"vlm-r1": True}


def _name_runs(runs: list[PredictionRun]) -> None:
    if len(runs) == 2 and runs[0].name == runs[1].name:
        for run in runs:
            run.name = f"{run.path.parent.name}/{run.path.stem}"
        if runs[0].name == runs[1].name:
            runs[0].name, runs[1].name = "A", "B"


def _cell(key: str, value):
    if key.startswith("wrong_side"):
        return "wrong side" if value else ""
    if key == "query":
        text = str(value)
        return text if len(text) <= QUERY_CHARS else text[: QUERY_CHARS - 1] + "…"
    if isinstance(value, float):
        return round(value, 3)
    return "" if value is None else value


def _with_ci(value: float, ci) -> str:
    if ci:
        return f"{value:.1f} [{ci[0]:.1f}, {ci[1]:.1f}]"
    return f"{value:.1f}"


# --------------------------------------------------------------------------- pure functions


def wrong_side(pred_box, gt_boxes, width: float | None) -> bool | None:
    """True when the predicted box's centre lies on the other half of the image (split
    at ``width / 2``) from the ground truth; None when that is undefined (no predicted
    box, no width, a truth box across the midline, truth on both halves)."""
    if pred_box is None or not gt_boxes or not width:
        return None
    mid = float(width) / 2
    sides = set()
    for b in gt_boxes:
        if b[2] <= mid:
            sides.add("left")
        elif b[0] >= mid:
            sides.add("right")
        else:
            return None
    if len(sides) != 1:
        return None
    cx = (float(pred_box[0]) + float(pred_box[2])) / 2
    if cx == mid:
        return None
    return ("left" if cx < mid else "right") != sides.pop()


def filter_rows(rows: list[dict], *, category: str | None = None, status: str | None = None, iou_min: float = 0.0,
                iou_max: float = 1.0, wrong_side_only: bool = False) -> list[dict]:
    """The rows of ``category`` (None / "all": every one) whose status (of any file) is
    ``status``, whose first file's IoU is in ``[iou_min, iou_max]`` and, with
    ``wrong_side_only``, that some file answers on the wrong side."""
    if iou_min > iou_max:
        raise MedgroundError(f"the IoU range is empty: minimum {iou_min} > maximum {iou_max}")
    out = []
    for r in rows:
        if category not in (None, "", "all") and r.get("category") != category:
            continue
        if status not in (None, "", "all") and status not in (r.get("status"), r.get("status_b")):
            continue
        if not iou_min <= float(r.get("iou", 0.0)) <= iou_max:
            continue
        if wrong_side_only and not (r.get("wrong_side") or r.get("wrong_side_b")):
            continue
        out.append(r)
    return out


def sort_rows(rows: list[dict], key: str, *, descending: bool = False) -> list[dict]:
    """Rows sorted by ``key`` (stable; rows without a value go last either way)."""
    present = [r for r in rows if r.get(key) is not None]
    absent = [r for r in rows if r.get(key) is None]
    return sorted(present, key=lambda r: r[key], reverse=descending) + absent
