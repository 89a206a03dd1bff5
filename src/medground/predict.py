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
first), so an interrupted run loses at most one batch.  A rerun resumes only what the
same model, template, frame, ``max_new_tokens``, segmenter and dataset made: they are
stored in ``PRED.meta.json`` beside the output and compared (:mod:`medground.resume`);
anything else is refused unless ``overwrite=True`` (``--overwrite``).  A sample whose
image cannot be read gets a line with ``"error"`` naming the file, line and id; the
run goes on.  :func:`check_options` checks every argument before a model is loaded.
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

from .data.schema import Sample, iter_samples
from .errors import MedgroundError, where
from .fileio import atomic_path, atomic_write, check_output_file
from .geometry import PIXELS, Frame, map_boxes, map_points
from .parsing import parse_completion
from .resume import check_resume, claim_output, file_digest, folder_stamp, sidecar_path
from .shards import Shard, current_shard, merge_parts, part_path


@dataclass
class PredictSummary:
    """What a run did: samples written now, skipped (already done), the ids whose line
    carries an error, time."""

    written: int = 0
    skipped: int = 0
    seconds: float = 0.0
    out: str = ""
    error_ids: list[str] = field(default_factory=list)
    #: samples asked for (after ``limit``); 0 means the dataset was empty
    total: int = -1
    data: str = ""
    merged: str = ""  # data-parallel run: the file this process merged every part into ("" if it did not)

    @property
    def errors(self) -> int:
        return len(self.error_ids)

    def __str__(self) -> str:
        rate = self.written / self.seconds if self.seconds > 0 else 0.0
        return (f"wrote {self.written} predictions to {self.out} ({self.skipped} already done, "
                f"{self.errors} errors) in {self.seconds:.1f} s, {rate:.2f} samples/s")

    @property
    def warning(self) -> str | None:
        """What the user must hear about (None when nothing): an empty dataset."""
        if self.total == 0:
            return f"{self.data} has no samples: nothing was predicted and {self.out} holds no prediction"
        return None

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


def read_samples(path: str | os.PathLike, *, root: str | os.PathLike | None = None) -> list[_Item]:
    """Samples with their line numbers (paths resolved against the file's folder; with
    ``root``, confined to it); a malformed line or a duplicate id raises
    :class:`MedgroundError` naming file, line and id."""
    items, seen = [], {}
    for n, s in iter_samples(path, root=root):
        if s.id in seen:
            raise MedgroundError(f"{where(path, n, s.id)}: duplicate id (first on line {seen[s.id]})")
        seen[s.id] = n
        items.append(_Item(s, n))
    return items


def check_options(*, data=None, out=None, image=None, query=None, batch_size: int = 8, max_new_tokens: int = 128,
                  limit: int | None = None, template: str | None = None, frame: str | Frame | None = None,
                  segmenter=None, min_pixels: int | None = None, max_pixels: int | None = None,
                  device: str | None = None) -> None:
    """Check the arguments of a prediction before anything heavy (a model) loads; a bad
    one raises :class:`MedgroundError` naming it as the command line spells it.  With
    ``data`` the run writes the JSONL ``out``; with ``image`` (and ``query``) it writes
    the overlay image ``out`` (None: :func:`default_overlay_path`)."""
    if (image is None) == (data is None):
        raise MedgroundError("give either --data DATA.jsonl --out PRED.jsonl, or --image PATH --query TEXT")
    for name, value, low in (("--batch-size", batch_size, 1), ("--max-new-tokens", max_new_tokens, 1),
                             ("--limit", limit, 1), ("--min-pixels", min_pixels, 1), ("--max-pixels", max_pixels, 1)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < low):
            raise MedgroundError(f"{name} must be an integer of at least {low}, got {value!r}")
    if min_pixels and max_pixels and min_pixels > max_pixels:
        raise MedgroundError(f"--min-pixels {min_pixels} exceeds --max-pixels {max_pixels}")
    if template is not None:
        from .models.families import resolve_template

        try:
            resolve_template(template)
        except MedgroundError as exc:
            raise MedgroundError(f"--template: {exc}") from None
    if frame is not None and not isinstance(frame, Frame):
        from .models.families import resolve_frame

        try:
            resolve_frame(frame)  # a frame spec or a family name
        except MedgroundError as exc:
            raise MedgroundError(f"--frame {frame!r}: {exc}") from None
    if device not in (None, "", "auto"):
        check_device(device)
    if isinstance(segmenter, str):
        from .models.segmenters import SEGMENTERS

        try:
            SEGMENTERS.entry(segmenter)
        except MedgroundError as exc:
            raise MedgroundError(f"--segmenter: {exc}") from None
    if data is not None:
        if out is None:
            raise MedgroundError("--data needs --out PRED.jsonl")
        _check_input(data, "--data")
        check_output_file(out, example="pred.jsonl")
        if _same_file(out, data):
            raise MedgroundError(f"--out {out} is the dataset itself; give another file for the predictions")
        return
    if not (query and str(query).strip()):
        raise MedgroundError("--image needs --query TEXT")
    _check_input(image, "--image")
    overlay = Path(out) if out is not None else default_overlay_path(image)
    check_output_file(overlay, example="overlay.png")
    suffixes = overlay_suffixes()
    if overlay.suffix.lower() not in suffixes:
        raise MedgroundError(f"--out {overlay}: with --image, --out is the overlay image; give a name ending in "
                             f"{', '.join(sorted(s for s in suffixes if s in ('.png', '.jpg', '.tif', '.webp')))}")
    if _same_file(overlay, image):
        raise MedgroundError(f"--out {overlay} is the input image itself; give another file for the overlay")


def check_device(device: str, option: str = "--device") -> None:
    """A torch device string (``cpu``, ``cuda``, ``cuda:1``...) or :class:`MedgroundError` naming ``option``."""
    import torch

    try:
        torch.device(device)
    except (RuntimeError, ValueError, TypeError):
        raise MedgroundError(f"{option} {device!r} is not a torch device (auto, cpu, cuda, cuda:1, mps...)") from None


def overlay_suffixes() -> set[str]:
    """File suffixes an overlay can be written as (the formats PIL can save)."""
    from PIL import Image

    Image.init()
    return {ext for ext, fmt in Image.registered_extensions().items() if fmt in Image.SAVE}


def _check_input(path, option: str) -> None:
    p = Path(path)
    if p.is_dir():
        raise MedgroundError(f"{option} {p} is a folder; give a file")
    if not p.is_file():
        raise MedgroundError(f"{option} {p}: file not found")


def _same_file(a, b) -> bool:
    return Path(a).resolve() == Path(b).resolve()


def check_resumable(model, data, out, *, template: str | None = None, max_new_tokens: int = 128,
                    overwrite: bool = False) -> None:
    """Before a model loads: refuse (:class:`MedgroundError`) to resume ``out`` when the
    settings known without the model (model folder and weights, dataset, explicit
    template, ``max_new_tokens``) differ from those that wrote it; :func:`predict`
    checks them all again, frame and segmenter included, once the model is loaded."""
    if overwrite:
        return
    early = _model_identity(str(model))
    early.update({"max_new_tokens": int(max_new_tokens), "data": str(Path(data).resolve()),
                  "data_sha256": file_digest(data)})
    if template is not None:
        early["template"] = template
    shard = current_shard()
    for path in (out, part_path(out, shard)) if shard.parallel else (out,):
        check_resume(path, early, only_given=True)


def _model_identity(source: str) -> dict[str, Any]:
    local = bool(source) and Path(source).is_dir()
    return {"model": str(Path(source).resolve()) if local else source,
            "weights": folder_stamp(source) if local else None}


def run_settings(policy, data, *, template: str | None, max_new_tokens: int, segmenter) -> dict[str, Any]:
    """What makes the lines of a prediction file (stored in its ``.meta.json`` and
    compared on resume): the model and a stamp of its weights, template, frame,
    ``max_new_tokens``, segmenter, and the dataset file with a digest of its bytes."""
    frame = policy.frame
    frame_text = frame.name
    if frame.kind == "qwen2.5-vl":
        frame_text += f" (factor {frame.factor}, min_pixels {frame.min_pixels}, max_pixels {frame.max_pixels})"
    seg = None
    if segmenter is not None:
        from .segment import segmenter_identity

        seg = segmenter_identity(_built_segmenter(segmenter))
    return {
        "command": "medground predict",
        **_model_identity(str(policy.source or "")),
        "template": template or policy.template,
        "frame": frame_text,
        "max_new_tokens": int(max_new_tokens),
        "segmenter": seg,
        "data": str(Path(data).resolve()),
        "data_sha256": file_digest(data),
    }


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


def generate_batch(policy, images: list, prompts: list[str], *, max_new_tokens: int = 128, num_samples: int = 1,
                   temperature: float = 1.0) -> list[str]:
    """Greedy completions for ``prompts`` (chat-formatted, one image each), left-padded;
    with ``num_samples > 1``, that many sampled completions per prompt (at ``temperature``),
    prompt after prompt."""
    import torch

    proc = policy.processor
    # one list per prompt: processors that count images per sample (Gemma 3, Idefics3) need the nesting
    inputs = proc(text=prompts, images=[[im] for im in images], padding=True, return_tensors="pt").to(policy.device)
    tok = proc.tokenizer
    gen_kwargs = dict(max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tok.pad_token_id)
    gc = getattr(policy.model, "generation_config", None)
    if gc is not None:  # greedy: silence sampling settings a checkpoint may carry
        gen_kwargs.update(temperature=None, top_p=None, top_k=None)
    if num_samples > 1:
        gen_kwargs.update(do_sample=True, num_return_sequences=num_samples, temperature=temperature)
    with torch.inference_mode():
        out = policy.model.generate(**inputs, **gen_kwargs)
    new = out[:, inputs["input_ids"].shape[1]:]
    return proc.batch_decode(new, skip_special_tokens=True, clean_up_tokenization_spaces=False)


def _generator(policy):
    """How ``policy`` generates: an engine's own ``generate`` (:mod:`medground.engines`),
    or :func:`generate_batch` (transformers) on a :class:`~medground.models.policy.Policy`."""
    if callable(getattr(policy, "generate", None)):
        return policy.generate
    return lambda images, prompts, *, max_new_tokens: generate_batch(policy, images, prompts,
                                                                      max_new_tokens=max_new_tokens)


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
    generate = _generator(policy)
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
                texts = generate(images, prompts, max_new_tokens=max_new_tokens)
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
                            texts.extend(generate([img], [prompt], max_new_tokens=max_new_tokens))
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


def _loaded(model, template: str | None):
    """``model`` itself when it is a loaded policy or an engine, else the HF policy of a checkpoint path."""
    from .models.policy import Policy, load_policy

    if isinstance(model, Policy) or callable(getattr(model, "generate", None)):
        return model
    return load_policy(model, template=template)


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
    root: str | os.PathLike | None = None,
) -> PredictSummary:
    """Predict every sample of ``data`` (a canonical JSONL) with ``model`` (a
    :class:`~medground.models.policy.Policy`, an engine from :func:`medground.engines.load_engine`
    or a checkpoint path) into ``out``, resuming from the ids already there when the same
    settings made them (else :class:`MedgroundError`; ``overwrite=True`` starts again).
    ``root`` confines the dataset's image paths (:mod:`medground.data.roots`).  An empty
    dataset is reported in the summary's ``warning``.

    Under a launcher (``accelerate launch --num_processes N``: ``RANK`` / ``WORLD_SIZE``
    set) each process predicts its shard into its own part (:func:`medground.shards.part_path`)
    and the one that finds every part complete merges them into ``out`` in the order of
    ``data`` (``summary.merged``)."""
    from .progress import progress as progress_bar

    check_options(data=data, out=out, batch_size=batch_size, max_new_tokens=max_new_tokens, limit=limit,
                  template=template, segmenter=segmenter)
    items = read_samples(data, root=root)
    policy = _loaded(model, template)
    if limit is not None:
        items = items[:limit]
    shard, final, every = current_shard(), Path(out), items
    if shard.parallel:
        out, items = part_path(final, shard), shard.take(items)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if overwrite:  # this process's part (and, in parallel, the merged file: no part is complete yet)
        for path in {out, final}:
            path.unlink(missing_ok=True)
            sidecar_path(path).unlink(missing_ok=True)
    segmenter = _built_segmenter(segmenter)
    settings = run_settings(policy, data, template=template, max_new_tokens=max_new_tokens, segmenter=segmenter)
    if shard.parallel:
        check_resume(final, settings)  # a merged file from another run is refused before any work
    claim_output(out, settings)
    done = finished_ids(out, retry_errors=retry_errors)
    todo = [it for it in items if it.sample.id not in done]
    summary = PredictSummary(skipped=len(items) - len(todo), out=str(out), total=len(items), data=str(data))
    t0 = time.perf_counter()
    bar = progress_bar(total=len(todo), desc="predict", unit="sample", enabled=progress)
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
    if shard.parallel:
        parts = [part_path(final, Shard(r, shard.world)) for r in range(shard.world)]
        claim_output(final, settings)  # the merged file says what made it, as a single-process one does
        if merge_parts(final, parts, [it.sample.id for it in every]):
            summary.merged = str(final)
    return summary


# --------------------------------------------------------------------------- one image


def predict_image(model, image: str | os.PathLike, query: str, *, template: str | None = None,
                  max_new_tokens: int = 128, overlay: str | os.PathLike | None = None, segmenter=None) -> dict:
    """Ground ``query`` in one image; returns the prediction record and, with
    ``overlay``, writes a PNG of the image with the predicted box / points (/ mask)."""
    check_options(image=image, query=query, out=overlay or default_overlay_path(image), max_new_tokens=max_new_tokens,
                  template=template, segmenter=segmenter)
    policy = _loaded(model, template)
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
        drawn = draw_overlay(img, pred_box=record["boxes"][:1], pred_points=record["points"], pred_mask=mask,
                             title=query)
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
