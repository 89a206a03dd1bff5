"""Batched, resumable inference: a dataset in, a prediction file out.

:func:`predict` renders each sample's query with a prompt template (stating the
policy's coordinate frame), runs greedy generation in left-padded batches, parses
each completion with :func:`medground.parsing.parse_completion`, maps the answer from
the model's frame to original-image pixels with :func:`medground.geometry.map_boxes` /
:func:`~medground.geometry.map_points`, and appends one JSON line per sample::

    {"id", "completion", "boxes": [[x1, y1, x2, y2], ...], "points": [[x, y], [x, y]] | null,
     "mask": null, "frame": "qwen2.5-vl", "error": null}

Lines are flushed (and fsync'ed) after every batch.  Rerunning the same command skips
the ids already in the output (a line cut short by an interruption is dropped
first), so an interrupted run loses at most one batch.  A sample whose image cannot
be read gets a line with ``"error"`` naming the file, line and id; the run goes on.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .data.schema import Sample, iter_jsonl, resolve
from .errors import MedgroundError, where
from .fileio import atomic_path, atomic_write
from .geometry import PIXELS, Frame, map_boxes, map_points
from .parsing import parse_completion


@dataclass
class PredictSummary:
    """What a run did: samples written now, skipped (already done), the ids whose line
    carries an error, time."""

    written: int = 0
    skipped: int = 0
    seconds: float = 0.0
    out: str = ""
    error_ids: list[str] = field(default_factory=list)

    @property
    def errors(self) -> int:
        return len(self.error_ids)

    def __str__(self) -> str:
        rate = self.written / self.seconds if self.seconds > 0 else 0.0
        return (f"wrote {self.written} predictions to {self.out} ({self.skipped} already done, "
                f"{self.errors} errors) in {self.seconds:.1f} s, {rate:.2f} samples/s")

    def failures(self) -> str | None:
        """A line about the samples that failed (None when none did)."""
        if not self.error_ids:
            return None
        return f"{self.errors} samples failed (first: {self.error_ids[0]}); see their \"error\" field"


@dataclass
class _Item:
    sample: Sample
    line: int


# --------------------------------------------------------------------------- input / output


def read_samples(path: str | os.PathLike) -> list[_Item]:
    """Samples with their line numbers (paths resolved against the file's folder); a
    malformed line raises :class:`MedgroundError` naming file, line and id."""
    root = Path(path).resolve().parent
    items, seen = [], {}
    for n, obj, err in iter_jsonl(path):
        if err:
            raise MedgroundError(f"{where(path, n)}: {err}")
        s = Sample.from_dict(obj, source=path, line=n)
        if s.id in seen:
            raise MedgroundError(f"{where(path, n, s.id)}: duplicate id (first on line {seen[s.id]})")
        seen[s.id] = n
        s.image = resolve(s.image, root)
        s.mask = resolve(s.mask, root)
        items.append(_Item(s, n))
    return items


def finished_ids(out: str | os.PathLike, *, retry_errors: bool = False) -> set[str]:
    """Ids already in a prediction file.  A trailing line cut short by an interruption
    is removed from the file; with ``retry_errors`` lines carrying an ``error`` are
    removed too (so they are predicted again)."""
    p = Path(out)
    if not p.exists():
        return set()
    raw = p.read_bytes()
    lines = raw.split(b"\n")
    keep, done, changed = [], set(), False
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            sid = str(rec["id"])
        except (json.JSONDecodeError, KeyError, TypeError):
            if i >= len(lines) - 2:  # the last line, interrupted mid-write
                changed = True
                continue
            raise MedgroundError(f"{where(out, i + 1)}: not a prediction line; remove it or use another --out") from None
        if retry_errors and rec.get("error"):
            changed = True
            continue
        keep.append(line)
        done.add(sid)
    if changed or (raw and not raw.endswith(b"\n")):
        atomic_write(p, b"".join(x + b"\n" for x in keep))
    return done


def _record(sid: str, frame: Frame, completion: str | None = None, boxes=None, points=None,
            error: str | None = None, mask=None) -> dict[str, Any]:
    return {"id": sid, "completion": completion, "boxes": boxes or [], "points": points, "mask": mask,
            "frame": frame.name, "error": error}


def decode_answer(completion: str, size: tuple[int, int], frame) -> tuple[list, list | None]:
    """Boxes (original pixels, rounded to 0.01) and the first key-point pair of a
    completion for an image of original ``size = (W, H)``.

    ``frame`` says what the completion's numbers mean: a :class:`Frame`, a frame spec
    (``"norm1000+yx"``), or a model family (``"gemma3"``, a
    :class:`~medground.models.families.Family`) whose frame is used — the one mapping
    from a family's answer, in its native syntax or ours, to canonical boxes.

    >>> decode_answer('```json\\n[{"box_2d": [100, 0, 500, 1000], "label": "lung"}]\\n```', (200, 100), "gemma3")
    ([[0.0, 10.0, 200.0, 50.0]], None)
    """
    from .models.families import resolve_frame

    frame = resolve_frame(frame)
    parsed = parse_completion(completion)
    boxes = map_boxes(parsed.boxes, size, src=frame, dst=PIXELS) if parsed.boxes else np.zeros((0, 4))
    pts = None
    if parsed.points:
        pts = np.round(map_points(parsed.points[0], size, src=frame, dst=PIXELS), 2).tolist()
    return np.round(boxes, 2).tolist(), pts


# --------------------------------------------------------------------------- generation


def build_messages(query: str, template, frame: Frame, width: int, height: int) -> list[dict]:
    """Conversational prompt: optional system message, then the image and the rendered query."""
    msgs = []
    if template.system:
        msgs.append({"role": "system", "content": [{"type": "text", "text": template.system}]})
    msgs.append({"role": "user", "content": [{"type": "image"},
                                             {"type": "text", "text": template.render(query, frame, width, height)}]})
    return msgs


def generate_batch(policy, images: list, prompts: list[str], *, max_new_tokens: int = 128) -> list[str]:
    """Greedy completions for ``prompts`` (chat-formatted, one image each), left-padded."""
    import torch

    proc = policy.processor
    # one list per prompt: processors that count images per sample (Gemma 3, Idefics3) need the nesting
    inputs = proc(text=prompts, images=[[im] for im in images], padding=True, return_tensors="pt").to(policy.device)
    tok = proc.tokenizer
    gen_kwargs = dict(max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tok.pad_token_id)
    gc = getattr(policy.model, "generation_config", None)
    if gc is not None:  # greedy: silence sampling settings a checkpoint may carry
        gen_kwargs.update(temperature=None, top_p=None, top_k=None)
    with torch.inference_mode():
        out = policy.model.generate(**inputs, **gen_kwargs)
    new = out[:, inputs["input_ids"].shape[1]:]
    return proc.batch_decode(new, skip_special_tokens=True, clean_up_tokenization_spaces=False)


def _free_accelerator_memory() -> None:
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except Exception:  # noqa: BLE001 - best effort only
        pass


def _load(item: _Item, data_path) -> tuple[Any, tuple[int, int]]:
    from .data.io import load_image

    s = item.sample
    try:
        img = load_image(s.image)
    except MedgroundError as exc:
        raise MedgroundError(f"{where(data_path, item.line, s.id)}: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - any decoder failure is a bad image
        raise MedgroundError(f"{where(data_path, item.line, s.id)}: cannot read image {s.image} "
                             f"({type(exc).__name__}: {exc})") from None
    size = img.size
    if s.width and s.height and (s.width, s.height) != size:
        raise MedgroundError(f"{where(data_path, item.line, s.id)}: image {s.image} is {size[0]}x{size[1]} "
                             f"but the sample says {s.width}x{s.height}")
    return img, size


def predict_items(policy, items: list[_Item], *, template=None, batch_size: int = 8, max_new_tokens: int = 128,
                  data_path=None) -> Iterable[list[dict]]:
    """Yield prediction records batch by batch (bad images become error records)."""
    from .models.families import resolve_template

    tpl = resolve_template(template or policy.template)
    frame = policy.frame
    for start in range(0, len(items), batch_size):
        chunk = items[start:start + batch_size]
        records: dict[str, dict] = {}
        good, images, prompts, sizes = [], [], [], []
        for it in chunk:
            try:
                img, size = _load(it, data_path)
            except MedgroundError as exc:
                records[it.sample.id] = _record(it.sample.id, frame, error=str(exc))
                continue
            msgs = build_messages(it.sample.query, tpl, frame, *size)
            prompts.append(policy.processor.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False))
            images.append(img)
            sizes.append(size)
            good.append(it)
        if good:
            try:
                texts = generate_batch(policy, images, prompts, max_new_tokens=max_new_tokens)
            except (RuntimeError, ValueError) as exc:  # e.g. out of memory: retry one by one
                _free_accelerator_memory()
                if len(good) == 1:
                    it = good[0]
                    msg = f"{where(data_path, it.line, it.sample.id)}: generation failed ({type(exc).__name__}: {exc})"
                    records[it.sample.id] = _record(it.sample.id, frame, error=msg)
                    texts = None
                else:
                    texts = []
                    for img, prompt in zip(images, prompts):
                        try:
                            texts.extend(generate_batch(policy, [img], [prompt], max_new_tokens=max_new_tokens))
                        except (RuntimeError, ValueError) as exc1:
                            texts.append(exc1)
            for it, size, text in zip(good, sizes, texts or []):
                sid = it.sample.id
                if isinstance(text, Exception):
                    records[sid] = _record(sid, frame, error=f"{where(data_path, it.line, sid)}: generation failed "
                                                             f"({type(text).__name__}: {text})")
                    continue
                boxes, points = decode_answer(text, size, frame)
                records[sid] = _record(sid, frame, completion=text, boxes=boxes, points=points)
        yield [records[it.sample.id] for it in chunk]


def _built_segmenter(segmenter):
    """A segmenter object from a registered name (objects and None pass through)."""
    if isinstance(segmenter, str):
        from .models.segmenters import get_segmenter

        return get_segmenter(segmenter)
    return segmenter


def _add_masks(records: list[dict], items: list[_Item], segmenter) -> None:
    """Masks (RLE) for the predicted box / key points of the records without an error,
    via :func:`medground.segment.segment_predictions`; a record the segmenter cannot
    serve keeps ``mask: null`` and gets ``mask_error``.  Changes ``records`` in place."""
    from .segment import segment_predictions

    ok = [i for i, r in enumerate(records) if not r.get("error")]
    if not ok:
        return
    done = segment_predictions([records[i] for i in ok], [items[i].sample for i in ok], segmenter)
    for i, rec in zip(ok, done):
        if not rec.get("mask_error"):
            rec.pop("mask_error", None)
        records[i] = rec


def predict(
    model,
    data: str | os.PathLike,
    out: str | os.PathLike,
    *,
    batch_size: int = 8,
    template: str | None = None,
    max_new_tokens: int = 128,
    limit: int | None = None,
    retry_errors: bool = False,
    overwrite: bool = False,
    segmenter=None,
    progress: bool = True,
) -> PredictSummary:
    """Predict every sample of ``data`` (a canonical JSONL) with ``model`` (a
    :class:`~medground.models.policy.Policy` or a checkpoint path) into ``out``,
    resuming from the ids already there (``overwrite=True`` starts again)."""
    from tqdm.auto import tqdm

    from .models.policy import Policy, load_policy

    if batch_size < 1:
        raise MedgroundError(f"--batch-size must be at least 1, got {batch_size}")
    policy = model if isinstance(model, Policy) else load_policy(model, template=template)
    items = read_samples(data)
    if limit is not None:
        items = items[:limit]
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if overwrite and out.exists():
        out.unlink()
    done = finished_ids(out, retry_errors=retry_errors)
    todo = [it for it in items if it.sample.id not in done]
    summary = PredictSummary(skipped=len(items) - len(todo), out=str(out))
    segmenter = _built_segmenter(segmenter)
    t0 = time.perf_counter()
    bar = tqdm(total=len(todo), desc="predict", unit="sample", disable=not progress)
    with open(out, "a", encoding="utf-8") as fh:
        pos = 0
        for records in predict_items(policy, todo, template=template, batch_size=batch_size,
                                     max_new_tokens=max_new_tokens, data_path=data):
            chunk = todo[pos:pos + len(records)]
            pos += len(records)
            if segmenter is not None:
                _add_masks(records, chunk, segmenter)
            for r in records:
                fh.write(json.dumps(r, ensure_ascii=False) + "\n")
                if r["error"]:
                    summary.error_ids.append(r["id"])
            fh.flush()
            os.fsync(fh.fileno())
            summary.written += len(records)
            bar.update(len(records))
    bar.close()
    summary.seconds = time.perf_counter() - t0
    return summary


# --------------------------------------------------------------------------- one image


def predict_image(model, image: str | os.PathLike, query: str, *, template: str | None = None,
                  max_new_tokens: int = 128, overlay: str | os.PathLike | None = None, segmenter=None) -> dict:
    """Ground ``query`` in one image; returns the prediction record and, with
    ``overlay``, writes a PNG of the image with the predicted box / points (/ mask)."""
    from .models.policy import Policy, load_policy

    policy = model if isinstance(model, Policy) else load_policy(model, template=template)
    sample = Sample(id=Path(image).stem, image=str(image), query=query)
    item = _Item(sample, 0)
    (record,) = next(iter(predict_items(policy, [item], template=template, batch_size=1,
                                        max_new_tokens=max_new_tokens, data_path=image)))
    if record["error"]:
        raise MedgroundError(record["error"])
    segmenter = _built_segmenter(segmenter)
    if segmenter is not None:
        records = [record]
        _add_masks(records, [item], segmenter)
        record = records[0]
    if overlay is not None:
        from .data.io import load_image
        from .data.masks import load_mask
        from .overlay import draw_overlay

        img = load_image(image)
        mask = load_mask(record["mask"]) if record.get("mask") else None
        drawn = draw_overlay(img, pred_box=record["boxes"][0] if record["boxes"] else None,
                             pred_points=record["points"], pred_mask=mask, title=query)
        with atomic_path(overlay) as tmp:  # keeps the suffix: PIL picks the format from it
            drawn.save(tmp)
    return record


def default_overlay_path(image: str | os.PathLike) -> Path:
    """Where the overlay of a single-image prediction goes unless told: ``NAME_pred.png``
    beside the image.

    >>> default_overlay_path("scans/cxr1.dcm").as_posix()
    'scans/cxr1_pred.png'
    """
    image = Path(image)
    return image.with_name(f"{image.stem}_pred.png")
