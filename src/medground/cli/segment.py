"""`medground segment`: masks from ground-truth prompts — a segmenter's own ceiling."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ._apps import app


@app.command("segment")
def segment(
    data: Path = typer.Option(..., "--data", help="Canonical dataset JSONL (boxes, points, masks)."),
    out: Path = typer.Option(..., "--out", help="Prediction JSONL to write (masks as RLE); resumes if it exists."),
    segmenter: str = typer.Option("watershed", "--segmenter", help="watershed, litemedsam, sam, sam2."),
    prompt: str = typer.Option("box", "--prompt", help="Which ground-truth prompt to give: box, points, box+points."),
    checkpoint: Optional[Path] = typer.Option(None, "--checkpoint", help="Local checkpoint folder (sam, sam2)."),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda, cuda:1... (neural segmenters)."),
    limit: Optional[int] = typer.Option(None, "--limit", help="Only the first N samples (N >= 1)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Start again instead of resuming (a resume needs the same segmenter, prompt and dataset)."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show progress (--no-progress: as --quiet)."),
    root: Optional[Path] = typer.Option(None, "--root", help="Image and mask paths of --data must lie under this folder (symlinks resolved)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
) -> None:
    """Segment every sample of DATA from its ground-truth prompts and score the masks.

    The prompts are each sample's box and/or key points; mask Dice / IoU are measured
    against its reference masks."""
    from ..data.dataset_dir import read_dataset
    from ..errors import MedgroundError
    from ..fileio import check_output_file
    from ..models.segmenters import SEGMENTERS, get_segmenter
    from ..predict import check_device
    from ..progress import set_quiet
    from ..segment import check_prompt_kind, segment_samples, summarize

    set_quiet(quiet or not progress)
    check_prompt_kind(None, prompt)
    try:
        SEGMENTERS.entry(segmenter)  # an unknown name fails before anything loads
    except MedgroundError as exc:
        raise MedgroundError(f"--segmenter: {exc}") from None
    if limit is not None and limit < 1:
        raise MedgroundError(f"--limit must be an integer of at least 1, got {limit}")
    if device not in ("auto", ""):
        check_device(device)
    check_output_file(out, example="masks.jsonl")
    if Path(out).resolve() == Path(data).resolve():
        raise MedgroundError(f"--out {out} is the dataset itself; give another file for the masks")
    samples = read_dataset(data, root=root).samples  # a duplicate id fails here, naming both lines
    if limit is not None:
        samples = samples[:limit]
    seg = get_segmenter(segmenter, checkpoint=checkpoint, device=device)
    records = segment_samples(samples, seg, prompt=prompt, out=out, progress=not (quiet or not progress),
                              resume=not overwrite, source=data)
    errors = [r for r in records if r.get("error")]
    for r in errors[:10]:
        typer.echo(f"warning: {r['error']}", err=True)
    if len(errors) > 10:
        typer.echo(f"warning: ... and {len(errors) - 10} more samples with problems", err=True)
    s = summarize(records, samples)
    typer.echo(
        f"{len(records)} samples -> {out}  [{seg.name}, prompt {prompt}]  "
        f"mask Dice {s['dice']:.4f}  IoU {s['iou']:.4f}  (n={s['n']}, without mask {s['no_mask']})"
    )
    if s["wrong_size"]:
        typer.echo(f"warning: reference mask of the wrong size (not scored): {', '.join(s['wrong_size'][:10])}", err=True)
