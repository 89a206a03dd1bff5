"""The Ground tab without the page: an uploaded image and a query in, the answer
(JSON), the overlay and, with N sampled answers, how well they agree out.

Everything is the library's: images are read by :func:`medground.data.io.read_image`
(the same reader table as every command: DICOM window from the file or a preset,
NIfTI axis / slice / window, 16-bit PNG and TIFF), a greedy answer is
:func:`medground.predict.predict_image` on the image shown, sampled answers come from
:func:`medground.predict.generate_batch` and :func:`~medground.predict.decode_answer`,
masks from :func:`medground.segment.segment_predictions` and the picture from
:func:`medground.overlay.draw_overlay`.

The 2-D image shown (a DICOM under the chosen window, a NIfTI slice) is saved as an
8-bit PNG and that file is what the model sees, so the greedy answer is exactly what
``medground predict --image`` gives for that PNG — and, under the default window and
slice, for the uploaded file itself.  A :class:`Grounder` holds the loaded policy and
segmenter and a lock: answers are computed one at a time, whoever asks.

>>> box_agreement([[0, 0, 10, 10], [0, 0, 10, 10], [50, 50, 60, 60]])
{'n': 3, 'n_with_box': 3, 'consensus': 0, 'mean_iou': 0.333, 'agree': 0.667}
"""

from __future__ import annotations

import os
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..data.io import WINDOW_PRESETS
from ..errors import MedgroundError
from .limits import Limits, check_query, check_upload

#: Windows offered in the page: ``auto`` (the file's own window for DICOM, the format's
#: default otherwise), the presets of :data:`medground.data.io.WINDOW_PRESETS`, and ``minmax``.
WINDOWS = ("auto", *WINDOW_PRESETS, "minmax")
#: Axes of a volume in RAS+ (``read_image``'s ``axis``).
AXES = {"sagittal": 0, "coronal": 1, "axial": 2}
#: Most sampled answers one request may ask for.
MAX_SAMPLES = 16
#: Two sampled boxes agree when their IoU is above this.
AGREE_IOU = 0.5


@dataclass
class View:
    """The 2-D image shown for an upload: ``image`` (8-bit RGB), original ``width`` /
    ``height``, the reader's ``meta`` (format, window used, slice...) and, for volumes,
    ``n_slices`` along the chosen axis."""

    image: Any
    width: int
    height: int
    meta: dict = field(default_factory=dict)
    name: str = ""

    @property
    def format(self) -> str:
        return str(self.meta.get("format", ""))

    @property
    def size(self) -> tuple[int, int]:
        return self.width, self.height

    @property
    def n_slices(self) -> int | None:
        n = self.meta.get("n_slices")
        return int(n) if n is not None else None

    def describe(self) -> dict:
        """What the answer JSON records about the image."""
        out = {"name": self.name, "format": self.format, "width": self.width, "height": self.height,
               "window": self.meta.get("window"), "window_source": self.meta.get("window_source")}
        if self.n_slices is not None:
            out.update(axis=self.meta.get("axis"), plane=self.meta.get("plane"), slice=self.meta.get("slice_index"),
                       n_slices=self.n_slices)
        return out


@dataclass
class GroundResult:
    """One answer: ``answer`` (JSON-ready dict), ``overlay`` (PIL image), ``view``."""

    answer: dict
    overlay: Any
    view: View


class Grounder:
    """A loaded policy (and optional segmenter) answering one request at a time.

    ``policy`` is a :class:`~medground.models.policy.Policy`; ``segmenter`` a built
    segmenter or None.  Rendered views go to a private temporary folder."""

    def __init__(self, policy, segmenter=None, *, limits: Limits | None = None, max_new_tokens: int = 128,
                 workdir: str | os.PathLike | None = None):
        self.policy = policy
        self.segmenter = segmenter
        self.limits = limits or Limits()
        self.max_new_tokens = int(max_new_tokens)
        self.workdir = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="medground-serve-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.lock = threading.Lock()

    def describe(self) -> dict:
        """Model, family, frame, template and segmenter (what ``GET /healthz`` reports)."""
        return {
            "model": self.policy.source,
            "family": self.policy.meta.get("family"),
            "frame": self.policy.frame.name,
            "template": self.policy.template,
            "segmenter": getattr(self.segmenter, "name", None),
        }

    def view(self, path, *, window: str | None = None, axis: int | str = 2, slice_index: int | None = None) -> View:
        """The image shown for an upload, after the size and pixel checks of :mod:`.limits`."""
        return render_view(path, self.limits, window=window, axis=axis, slice_index=slice_index)

    def ground(self, path, query: str, *, template: str | None = None, samples: int = 1, temperature: float = 1.0,
               window: str | None = None, axis: int | str = 2, slice_index: int | None = None,
               seed: int = 0) -> GroundResult:
        """Answer ``query`` on the uploaded file at ``path`` (see the module docstring).

        ``samples=1`` is the greedy answer; ``samples=N`` draws N completions at
        ``temperature`` (seeded by ``seed``), answers with the one whose box agrees best
        with the others and reports :func:`box_agreement`."""
        from ..templates import get_template

        query = check_query(query, self.limits)
        samples = int(samples)
        if not 1 <= samples <= MAX_SAMPLES:
            raise MedgroundError(f"samples must be between 1 and {MAX_SAMPLES}, got {samples}")
        if samples > 1 and not (0 < float(temperature) <= 5):
            raise MedgroundError(f"temperature must be in (0, 5], got {temperature}")
        name = template or self.policy.template
        get_template(name)  # unknown names fail here, with close matches
        view = self.view(path, window=window, axis=axis, slice_index=slice_index)
        shown = self._save_view(view, Path(path).name)
        with self.lock:
            if samples == 1:
                answer = self._greedy(shown, query, name)
            else:
                answer = self._sampled(shown, view, query, name, samples, float(temperature), int(seed))
        answer.update(query=query, template=name, image=view.describe())
        overlay = _draw(view, answer, query)
        return GroundResult(answer=answer, overlay=overlay, view=view)

    # ------------------------------------------------------------------ internals

    def _save_view(self, view: View, upload_name: str) -> Path:
        folder = Path(tempfile.mkdtemp(dir=self.workdir))
        out = folder / f"{_stem(upload_name)}.png"
        view.image.save(out)
        return out

    def _greedy(self, shown: Path, query: str, template: str) -> dict:
        from ..predict import predict_image

        record = predict_image(self.policy, shown, query, template=template, max_new_tokens=self.max_new_tokens,
                               segmenter=self.segmenter)
        record.update(_reading(record["completion"]))
        return record

    def _sampled(self, shown: Path, view: View, query: str, template: str, n: int, temperature: float,
                 seed: int) -> dict:
        import torch

        from ..data.schema import Sample
        from ..predict import build_messages, decode_answer, generate_batch
        from ..templates import get_template

        policy = self.policy
        msgs = build_messages(query, get_template(template), policy.frame, view.width, view.height)
        prompt = policy.processor.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)
        torch.manual_seed(seed)
        texts = generate_batch(policy, [view.image], [prompt], max_new_tokens=self.max_new_tokens,
                               num_samples=n, temperature=temperature)
        decoded = [decode_answer(t, view.size, policy.frame) for t in texts]
        agreement = box_agreement([b[0] if b else None for b, _ in decoded])
        best = agreement["consensus"]
        boxes, points = decoded[best]
        record = {"id": shown.stem, "completion": texts[best], "boxes": boxes, "points": points, "mask": None,
                  "frame": policy.frame.name, "error": None}
        if self.segmenter is not None:
            from ..segment import segment_predictions

            (record,) = segment_predictions([record], [Sample(id=shown.stem, image=str(shown), query=query)],
                                            self.segmenter)
            if not record.get("mask_error"):
                record.pop("mask_error", None)
        record.update(_reading(texts[best]))
        record["samples"] = [{"completion": t, "boxes": b, "points": p} for t, (b, p) in zip(texts, decoded)]
        record["agreement"] = {**agreement, "temperature": temperature, "seed": seed}
        return record


def render_view(path, limits: Limits | None = None, *, window: str | None = None, axis: int | str = 2,
                slice_index: int | None = None) -> View:
    """Check an upload (:func:`~medground.serve.limits.check_upload`) and read the 2-D image
    shown with :func:`medground.data.io.read_image`; any decoder failure becomes a
    :class:`MedgroundError` naming the file."""
    from ..data.io import read_image

    p = check_upload(path, limits or Limits())
    win = None if window in (None, "", "auto") else window
    ax = AXES.get(axis, axis) if isinstance(axis, str) else axis
    try:
        data = read_image(p, window=win, axis=int(ax), slice_index=None if slice_index is None else int(slice_index))
    except MedgroundError as exc:
        raise MedgroundError(str(exc).replace(str(p), p.name)) from None
    except Exception as exc:  # noqa: BLE001 - any decoder failure is a bad upload
        raise MedgroundError(f"{p.name}: not a readable image ({type(exc).__name__}: {exc})") from None
    return View(image=data.image.convert("RGB"), width=data.width, height=data.height, meta=dict(data.meta), name=p.name)


def _draw(view: View, answer: dict, query: str):
    from ..data.masks import load_mask
    from ..overlay import draw_overlay

    mask = load_mask(answer["mask"]) if isinstance(answer.get("mask"), dict) else None
    sampled = [s["boxes"][0] for s in answer.get("samples", []) if s["boxes"]]
    return draw_overlay(view.image, pred_box=answer["boxes"] or None, pred_points=answer["points"], pred_mask=mask,
                        title=query, sample_boxes=sampled or None)


def _reading(completion: str | None) -> dict:
    """The reasoning and the answer text of a completion (parsed, never raises)."""
    from ..parsing import parse_completion

    parsed = parse_completion(completion or "")
    return {"reasoning": parsed.think, "answer_text": parsed.answer}


def _stem(name: str) -> str:
    base = Path(name).name
    for suffix in (".nii.gz", ".gz"):
        if base.lower().endswith(suffix):
            return base[: -len(suffix)].rsplit(".", 1)[0] or "image"
    return Path(base).stem or "image"


# --------------------------------------------------------------------------- pure functions


def box_agreement(boxes: list, threshold: float = AGREE_IOU) -> dict:
    """How well N sampled answers agree.

    ``boxes`` holds each sample's first box (``xyxy``) or None.  Returns ``n``,
    ``n_with_box``, ``consensus`` (the sample whose box has the highest mean IoU with the
    other samples' boxes; the first on ties, 0 when none has a box), ``mean_iou`` (mean
    IoU over all pairs of samples, a sample without a box scoring 0 with every other)
    and ``agree`` (the share of samples whose box has IoU > ``threshold`` with the
    consensus box, the consensus included).  Values are rounded to 3 decimals.
    """
    from ..metrics import box_iou_matrix

    n = len(boxes)
    have = [i for i, b in enumerate(boxes) if b is not None]
    if n == 0:
        return {"n": 0, "n_with_box": 0, "consensus": 0, "mean_iou": None, "agree": 0.0}
    iou = np.zeros((n, n))
    if have:
        iou[np.ix_(have, have)] = box_iou_matrix([boxes[i] for i in have], [boxes[i] for i in have])
    if n == 1:
        return {"n": 1, "n_with_box": len(have), "consensus": 0, "mean_iou": None, "agree": float(len(have))}
    off = ~np.eye(n, dtype=bool)
    per_sample = (iou * off).sum(axis=1) / (n - 1)
    consensus = int(np.argmax(per_sample)) if have else 0
    agree = 0.0
    if have:  # the consensus agrees with itself, whatever the threshold
        agree = (float(np.sum(iou[consensus][off[consensus]] > threshold)) + 1) / n
    return {"n": n, "n_with_box": len(have), "consensus": consensus, "mean_iou": round(float(iou[off].mean()), 3),
            "agree": round(agree, 3)}
