"""Evaluation of grounding predictions: ``evaluate(predictions, data) -> report``.

Example::

    report = evaluate("predictions.jsonl", data="test.jsonl")            # medground format
    report = evaluate("rec_results_cxr_test.json", format="vlm-r1", iou="vlm-r1")
    print(format_report(report))

The report is a plain dict (JSON-serialisable): ``n``, ``n_missing``, ``n_error``,
``n_unparseable``, ``miou``, ``acc@0.3``, ``acc@0.5``, ``acc@0.7`` (percent), ``pdice`` /
``dice`` / ``mask_iou`` when they apply, ``ci`` (metric -> [lo, hi], bootstrap 95 %),
``per_category`` and ``per_supercategory`` (the same for each group), ``format``,
``iou_variant``, ``iou_source``, ``n_extra`` / ``extra_ids`` (predictions for ids absent
from the dataset), ``source`` (what the file says about itself), ``bootstrap`` and
``warnings`` (an empty prediction file or dataset: what the user must hear about).
A prediction file none of whose ids is in the dataset is an error (the wrong
``--data``?) unless ``allow_missing=True``.  See ``docs/evaluation.md`` for every rule.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..data.schema import Sample, read_jsonl
from ..errors import MedgroundError
from ..fileio import atomic_json
from ..metrics import IOU_VARIANTS
from .readers import FORMATS, READERS, detect_format, extract_vlm_r1_box, read_predictions
from .report import THRESHOLDS, build_report
from .scoring import rows_from_stored_scores, score_against_dataset, score_with_embedded_truth
from .table import format_report

__all__ = [
    "FORMATS",
    "READERS",
    "THRESHOLDS",
    "detect_format",
    "evaluate",
    "extract_vlm_r1_box",
    "format_report",
    "parse_image_size",
    "write_report",
]

MAX_EXTRA_IDS = 20


def evaluate(
    predictions,
    data=None,
    *,
    format: str = "auto",
    iou: str = "standard",
    frame: str | None = None,
    image_size: tuple[int, int] | str | None = None,
    family: str | None = None,
    bootstrap: int = 1000,
    seed: int = 0,
    reextract: bool = False,
    per_sample: bool = False,
    progress: bool = False,
    allow_missing: bool = False,
    root=None,
) -> dict:
    """Score a prediction file; returns the report dict.

    * ``predictions``: a ``medground`` / ``vlm-r1`` / ``medreasoner`` file (``format="auto"``
      detects it), or an in-memory list of ``medground`` prediction dicts (e.g. the demo's).
    * ``data``: the canonical dataset JSONL (or a list of :class:`~medground.data.schema.Sample`).
      Required for ``medground``; for ``medreasoner`` it switches from the stored scores to
      recomputing IoU / pDice from ``bbox`` / ``points``; for ``vlm-r1`` it only adds ids and
      categories (joined by position; the ground truth stays the log's).
    * ``iou``: ``standard`` or ``vlm-r1`` (the inclusive-pixel IoU of those scripts).
    * ``frame``: the coordinate frame foreign predictions are in (``medreasoner`` with ``data``;
      ``vlm-r1`` with ``image_size = (W, H)`` — or ``"WxH"`` / ``"W"`` — of the ground truth's images,
      e.g. ``qwen2.5-vl`` answers in 644 px for 640-px images), and the fallback frame for ``medground``
      completions without a ``frame`` field.
    * ``family``: the model family (``medground model families``) whose answers these are, in
      place of ``frame``: completions in its native syntax (or ours) are read in its frame
      (:func:`medground.models.families.resolve_frame`).
    * ``bootstrap``: resamples for the 95 % intervals (0 turns them off), seeded by ``seed``.
    * ``reextract``: ``vlm-r1`` logs: extract the box again from ``model_output`` instead of
      using the stored ``extracted_answer``.
    * ``per_sample``: include the per-sample rows (``id``, ``status``, ``iou``... and the prediction
      scored, in original pixels: ``pred_box``, ``pred_points``); ``progress``: show progress.
    * ``allow_missing``: score a file none of whose ids is in the dataset (every sample
      missing) instead of raising :class:`MedgroundError`.
    * ``root``: the dataset's image and mask paths must lie under this folder.
    """
    if iou not in IOU_VARIANTS:
        raise MedgroundError(f"unknown IoU variant {iou!r}; choose one of {', '.join(IOU_VARIANTS)}")
    if bootstrap < 0:
        raise MedgroundError(f"--bootstrap must be >= 0, got {bootstrap}")
    if format not in (None, "", "auto"):
        READERS.entry(format)  # an unknown name fails here, with close matches
    if isinstance(image_size, str):
        image_size = parse_image_size(image_size)
    if family:
        from ..models.families import get_family

        if frame:
            raise MedgroundError(f"--family {family} and --frame {frame}: give one of them (a family implies its frame)")
        frame = get_family(family).frame().name
    fmt, records, source = read_predictions(predictions, format, reextract=reextract)
    truth = READERS.get(fmt).truth
    if image_size is not None and truth != "embedded":
        embedded = ", ".join(n for n in READERS if READERS.get(n).truth == "embedded")
        raise MedgroundError(f"--image-size applies to {embedded} logs only, not to format {fmt!r}")
    if frame and truth == "stored" and data is None:
        raise MedgroundError(f"--frame with a {fmt} file needs --data (the stored scores cannot be re-mapped)")
    samples = _samples(data, root)
    warnings = _check_join(records, samples, truth, predictions, data, allow_missing=allow_missing)
    if not isinstance(predictions, (str, os.PathLike)):
        predictions = "<predictions>"
    if data is not None and not isinstance(data, (str, os.PathLike)):
        data = "<dataset>"
    extra: list[str] = []
    iou_source = "recomputed"
    if truth == "embedded":
        rows = score_with_embedded_truth(records, variant=iou, samples=samples, pred_path=predictions,
                                         data_path=data, frame=frame, image_size=image_size)
    elif truth == "stored" and samples is None:  # the file's own per-sample scores
        rows = rows_from_stored_scores(records)
        iou_source = "stored"
    else:  # against the dataset: boxes in pixels (completions in their frame), or all in `frame`
        if samples is None:
            raise MedgroundError(f"{predictions}: format {fmt!r} needs --data DATASET.jsonl (the ground truth)")
        in_frame = truth == "stored"
        rows, extra = score_against_dataset(records, samples, variant=iou, pred_path=predictions, data_path=data,
                                            frame=(frame or "pixels") if in_frame else frame,
                                            convert_frame=in_frame, progress=progress)
    report = {
        "format": fmt,
        "iou_variant": iou if iou_source == "recomputed" else f"{fmt} (stored)",
        "iou_source": iou_source,
        "predictions": str(predictions),
        "data": None if data is None else str(data),
        "frame": frame,
        "family": family,
    }
    report.update(build_report(rows, resamples=bootstrap, seed=seed))
    report["n_extra"] = len(extra)
    report["extra_ids"] = extra[:MAX_EXTRA_IDS]
    report["bootstrap"] = {"resamples": bootstrap, "seed": seed, "level": 95}
    report["source"] = source
    report["warnings"] = warnings
    if per_sample:
        report["per_sample"] = rows
    return report


def _check_join(records, samples, truth: str, predictions, data, *, allow_missing: bool) -> list[str]:
    """Warnings about empty inputs; :class:`MedgroundError` when every prediction id misses
    the dataset (unless ``allow_missing``)."""
    pred_name = predictions if isinstance(predictions, (str, os.PathLike)) else "<predictions>"
    data_name = data if isinstance(data, (str, os.PathLike)) else "<dataset>"
    warnings = []
    if samples is not None and not samples:
        warnings.append(f"the dataset {data_name} has no samples: nothing is scored")
    if not records:
        n = len(samples) if samples is not None and truth != "embedded" else 0
        warnings.append(f"{pred_name} holds no predictions" + (f": all {n} samples count as missing (IoU 0)" if n
                                                                    else ": nothing is scored"))
        return warnings
    if samples and truth != "embedded":
        known = {s.id for s in samples}
        if not any(r.id in known for r in records):
            message = (f"none of the {len(records)} prediction ids of {pred_name} is in {data_name} (e.g. "
                       f"{records[0].id!r}; the dataset has ids like {samples[0].id!r})")
            if not allow_missing:
                raise MedgroundError(f"{message}: wrong --data? Pass --allow-missing to score every sample as missing")
            warnings.append(f"{message}: every sample counts as missing (IoU 0)")
    return warnings


def _samples(data, root=None) -> list[Sample] | None:
    """A dataset path (JSONL) or an in-memory list of :class:`Sample` / dicts."""
    if data is None:
        return None
    if isinstance(data, (str, os.PathLike)):
        return read_jsonl(data, root=root)
    return [
        s if isinstance(s, Sample) else Sample.from_dict(s, source="<dataset>", line=k + 1) for k, s in enumerate(data)
    ]


def write_report(report: dict, path) -> Path:
    """Write the report as JSON, atomically (temp file + rename)."""
    return atomic_json(report, path)


def parse_image_size(text: str | None) -> tuple[int, int] | None:
    """``"640"`` or ``"640x480"`` -> ``(W, H)`` (None stays None).

    >>> parse_image_size("640"), parse_image_size("640x480")
    ((640, 640), (640, 480))
    """
    if text is None:
        return None
    try:
        dims = [int(v) for v in text.lower().split("x")]
        if len(dims) == 1:
            dims *= 2
        if len(dims) != 2 or min(dims) <= 0:
            raise ValueError
    except ValueError:
        raise MedgroundError(f"--image-size must be W or WxH (positive integers), got {text!r}") from None
    return dims[0], dims[1]
