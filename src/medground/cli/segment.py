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
    limit: Optional[int] = typer.Option(None, "--limit", help="Only the first N samples."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Start again instead of resuming."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    """Segment every sample of DATA from its ground-truth box and/or key points and
    report mask Dice / IoU against its reference masks."""
    from ..data.schema import read_jsonl
    from ..models.segmenters import get_segmenter
    from ..segment import segment_samples, summarize

    seg = get_segmenter(segmenter, checkpoint=checkpoint, device=device)
    samples = read_jsonl(data)
    if limit is not None:
        samples = samples[: max(0, limit)]
    records = segment_samples(samples, seg, prompt=prompt, out=out, progress=progress, resume=not overwrite)
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
