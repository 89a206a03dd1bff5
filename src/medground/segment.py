"""Masks from prompts, for a whole dataset (layer 5).

* :func:`segment_samples` segments every sample from its *ground-truth* prompts —
  the segmenter's own ceiling — and writes a prediction file
  (``medground predict``'s format, masks as RLE), one line per sample id (a sample id
  given twice is an error).  The run is resumable: finished ids are kept and skipped;
  a line cut off by a crash is dropped and redone; a file another segmenter, prompt or
  dataset wrote is refused (its settings are in ``OUT.meta.json``, :mod:`medground.resume`).
* :func:`segment_predictions` adds masks to prediction records from their *predicted*
  box and key points (``medground predict --segmenter``).

Samples are grouped by image so that each image is embedded once, whatever the
number of targets on it.  A sample with several boxes gets the union of the masks of
its boxes; its key points go with its first box.  A bad sample (missing image,
unusable prompt) yields a record with ``mask: null`` and ``error`` naming the
problem, and the run goes on.
"""

from __future__ import annotations

import json
import os
from collections import OrderedDict
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from .data.masks import encode_rle
from .data.schema import Sample
from .errors import MedgroundError, where
from .models.segmenters import PROMPT_KINDS, ImageState, Segmenter, get_segmenter, prepare_prompts
from .resume import claim_output, file_digest, sidecar_path


def check_prompt_kind(segmenter: Segmenter | None, prompt: str) -> None:
    """``prompt`` is a prompt kind (and one ``segmenter`` takes, when given)."""
    if prompt not in PROMPT_KINDS:
        raise MedgroundError(f"--prompt must be one of {', '.join(PROMPT_KINDS)}, got {prompt!r}")
    if segmenter is not None and prompt not in segmenter.prompts:
        raise MedgroundError(
            f"segmenter {segmenter.name!r} does not take {prompt!r} prompts (it takes: {', '.join(segmenter.prompts)})"
        )


def _prompt_parts(boxes, points, prompt: str):
    """(boxes, points-per-box) for ``prompt`` from a sample's boxes and key points."""
    boxes = [list(b) for b in (boxes or [])]
    pts = None if points is None else [list(p) for p in points]
    if prompt == "points":
        return None, ([pts] if pts else [])
    if prompt == "box":
        return boxes, None
    return boxes, [pts] + [None] * (len(boxes) - 1) if boxes else None


def _union_mask(segmenter: Segmenter, state, boxes, points, size) -> tuple[np.ndarray | None, str | None]:
    """Union of the masks of one sample's prompts, and the issues met (None when clean)."""
    if boxes is None and not points:
        return None, "no prompt (the sample has no key points)"
    if boxes is not None and not boxes:
        return None, "no prompt (the sample has no box)"
    p = prepare_prompts(boxes, points, size)
    issues = "; ".join(i for i in p.issues if i) or None
    if not p.usable.any():
        return None, issues or "no usable prompt"
    masks = segmenter.segment(state, None if boxes is None else p.boxes, p.points)
    return masks.any(axis=0), issues


def _record(sid, boxes, points, mask, error, segmenter: Segmenter, prompt: str) -> dict:
    return {
        "id": sid,
        "completion": None,
        "boxes": boxes or [],
        "points": points,
        "mask": None if mask is None else encode_rle(mask),
        "frame": "pixels",
        "error": error,
        "segmenter": segmenter.name,
        "prompt": prompt,
    }


# --------------------------------------------------------------------------- resumable output


def read_done(path: Path) -> dict[str, dict]:
    """Records already in ``path`` by id; a truncated last line is cut off the file."""
    done: dict[str, dict] = {}
    if not path.exists():
        return done
    good_bytes = 0
    with path.open("rb") as fh:
        for raw in fh:
            try:
                rec = json.loads(raw)
                if not raw.endswith(b"\n") or not isinstance(rec, dict) or "id" not in rec:
                    break
            except (json.JSONDecodeError, UnicodeDecodeError):
                break
            done[str(rec["id"])] = rec
            good_bytes += len(raw)
    if good_bytes != path.stat().st_size:
        with path.open("r+b") as fh:
            fh.truncate(good_bytes)
    return done


class _Appender:
    """Appends one JSON line per record, flushed and fsynced, so a crash loses at most
    the line being written (which :func:`read_done` then drops)."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.fh = path.open("a", encoding="utf-8")

    def write(self, rec: dict) -> None:
        self.fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
        self.fh.flush()
        os.fsync(self.fh.fileno())

    def close(self) -> None:
        self.fh.close()


def check_unique_ids(samples: Iterable[Sample]) -> None:
    """:class:`MedgroundError` naming the first sample id given twice (each id is one line
    of a prediction file; ``evaluate`` rejects a file with two)."""
    seen: set[str] = set()
    for s in samples:
        if s.id in seen:
            raise MedgroundError(f"{where(None, None, s.id)}: duplicate sample id; every sample needs its own id")
        seen.add(s.id)


def segmenter_identity(segmenter: Segmenter) -> dict:
    """What makes a segmenter's masks: its name and constructor options (but not the
    device or the cache size), as stored beside a prediction file."""
    args, kwargs = getattr(segmenter, "_init_args", ((), {}))
    options = {k: str(v) for k, v in sorted(kwargs.items()) if k not in ("device", "cache_size") and v is not None}
    return {"name": segmenter.name, "args": [str(a) for a in args], "options": options}


def _data_identity(source) -> dict:
    """The dataset a run read: its file and a digest of its bytes (a folder: its path;
    samples given in memory: nothing, so a rerun may add samples)."""
    if source is None:
        return {"data": None}
    if Path(source).is_file():
        return {"data": str(Path(source).resolve()), "data_sha256": file_digest(source)}
    return {"data": str(Path(source).resolve())}


def _progress(total: int, enabled: bool, desc: str):
    from .progress import progress

    return progress(total=total, enabled=enabled, desc=desc, unit="sample")


def _embed(segmenter: Segmenter, image_path) -> tuple[ImageState | None, str | None]:
    """The segmenter's state of the image at ``image_path``, or ``(None, the reason)``
    when the image cannot be read."""
    from .data.io import load_image

    try:
        return segmenter.embed(load_image(image_path)), None
    except MedgroundError as exc:
        return None, str(exc)


# --------------------------------------------------------------------------- ground-truth prompts


def segment_samples(
    samples: Iterable[Sample],
    segmenter: Segmenter | str = "watershed",
    prompt: str = "box",
    out: str | os.PathLike | None = None,
    *,
    progress: bool = True,
    resume: bool = True,
    source: str | os.PathLike | None = None,
    **segmenter_options,
) -> list[dict]:
    """Segment every sample from its ground-truth prompt (``box``, ``points`` or
    ``box+points``); returns the prediction records in sample order and, with ``out``,
    appends them to that JSONL file (resuming: ids already there are not redone, when
    the same segmenter, prompt and dataset — ``source``, the dataset file, when given —
    wrote them).  ``segmenter_options`` go to
    :func:`~medground.models.segmenters.get_segmenter` when ``segmenter`` is a name.
    A sample id given twice raises :class:`MedgroundError` before any work."""
    check_prompt_kind(None, prompt)
    samples = list(samples)
    check_unique_ids(samples)
    seg = get_segmenter(segmenter, **segmenter_options)
    check_prompt_kind(seg, prompt)
    out_path = Path(out) if out is not None else None
    if out_path is not None:
        if not resume:
            out_path.unlink(missing_ok=True)
            sidecar_path(out_path).unlink(missing_ok=True)
        claim_output(out_path, {"command": "medground segment", "segmenter": segmenter_identity(seg),
                                "prompt": prompt, **_data_identity(source)})
    done = read_done(out_path) if out_path is not None else {}
    todo: OrderedDict[str, list[Sample]] = OrderedDict()
    for s in samples:
        if s.id not in done:
            todo.setdefault(str(s.image), []).append(s)
    writer = _Appender(out_path) if out_path is not None else None
    new: dict[str, dict] = {}
    bar = _progress(sum(len(v) for v in todo.values()), progress, f"segment [{seg.name}, {prompt}]")
    try:
        for image_path, group in todo.items():
            state, load_error = _embed(seg, image_path)
            for s in group:
                boxes, points = _prompt_parts(s.boxes, s.points, prompt)
                if state is None:
                    mask, error = None, f"{where(None, None, s.id)}: {load_error}"
                else:
                    mask, issue = _union_mask(seg, state, boxes, points, state.size)
                    error = f"{where(None, None, s.id)}: {issue}" if issue else None
                rec = _record(s.id, s.boxes, s.points, mask, error, seg, prompt)
                new[s.id] = rec
                if writer is not None:
                    writer.write(rec)
                bar.update(1)
    finally:
        bar.close()
        if writer is not None:
            writer.close()
    return [done.get(s.id) or new[s.id] for s in samples if s.id in done or s.id in new]


# --------------------------------------------------------------------------- predicted prompts


def segment_predictions(
    pred_records: Iterable[dict],
    samples: Iterable[Sample] | dict[str, Sample],
    segmenter: Segmenter | str = "watershed",
    *,
    prompt: str = "auto",
    progress: bool = False,
) -> list[dict]:
    """Prediction records with ``mask`` (RLE) added from their predicted ``boxes`` /
    ``points`` (original pixels), joined to ``samples`` by ``id`` for the image.

    ``prompt="auto"`` uses box + points when the segmenter takes both, else the box.
    A record whose id is unknown, whose image fails to load or that has no usable box /
    point gets ``mask: null`` and a ``mask_error`` naming the problem; records are
    copied, never changed in place, and returned in input order."""
    seg = get_segmenter(segmenter)
    if prompt == "auto":
        prompt = "box+points" if "box+points" in seg.prompts else "box"
    check_prompt_kind(seg, prompt)
    by_id = samples if isinstance(samples, dict) else {s.id: s for s in samples}
    records = [dict(r) for r in pred_records]
    groups: OrderedDict[str, list[int]] = OrderedDict()
    for i, rec in enumerate(records):
        rec["mask"], rec["mask_error"] = None, None
        s = by_id.get(str(rec.get("id")))
        if s is None:
            rec["mask_error"] = f"{where(None, None, rec.get('id'))}: id not in the dataset"
            continue
        groups.setdefault(str(s.image), []).append(i)
    bar = _progress(sum(len(v) for v in groups.values()), progress, f"masks [{seg.name}]")
    try:
        for image_path, idx in groups.items():
            state, load_error = _embed(seg, image_path)
            if state is None:
                for i in idx:
                    records[i]["mask_error"] = f"{where(None, None, records[i].get('id'))}: {load_error}"
                bar.update(len(idx))
                continue
            for i in idx:
                rec = records[i]
                boxes, points = _predicted_prompt(rec, prompt)
                mask, issue = _union_mask(seg, state, boxes, points, state.size)
                rec["mask"] = None if mask is None else encode_rle(mask)
                if issue:
                    rec["mask_error"] = f"{where(None, None, rec.get('id'))}: {issue}"
                bar.update(1)
    finally:
        bar.close()
    return records


def _predicted_prompt(rec: dict, prompt: str):
    """The first predicted box (the answer's primary target) and the key points."""
    boxes = rec.get("boxes") or []
    points = rec.get("points")
    first = [boxes[0]] if boxes else []
    if prompt == "points":
        return None, ([points] if points else [])
    if prompt == "box":
        return first, None
    if not first and points:  # box+points without a box: fall back to the points
        return None, [points]
    return first, ([points] if points else None)


def summarize(records: list[dict], samples: Iterable[Sample]) -> dict:
    """Mean mask Dice / IoU against the samples' reference masks (where they have one),
    the number of records without a mask and the ids with a reference mask of the
    wrong size (reported, not scored)."""
    from .data.masks import load_mask
    from .metrics import mask_dice, mask_iou

    by_id = {s.id: s for s in samples}
    dice, iou, missing, wrong_size = [], [], 0, []
    for rec in records:
        s = by_id.get(rec["id"])
        if s is None or not s.mask:
            continue
        gt = load_mask(s.mask)
        if rec.get("mask") is None:
            missing += 1
            dice.append(0.0)
            iou.append(0.0)
            continue
        pred = load_mask(rec["mask"])
        if pred.shape != gt.shape:
            wrong_size.append(rec["id"])
            continue
        dice.append(float(mask_dice(pred, gt)[0]))
        iou.append(float(mask_iou(pred, gt)[0]))
    return {
        "n": len(dice),
        "dice": float(np.mean(dice)) if dice else float("nan"),
        "iou": float(np.mean(iou)) if iou else float("nan"),
        "no_mask": missing,
        "wrong_size": wrong_size,
    }
