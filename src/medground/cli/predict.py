"""`medground predict`: batched, resumable grounding inference (or one image with an overlay)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from ..errors import MedgroundError
from ._apps import app


@app.command("predict")
def predict(
    model: str = typer.Option(..., "--model", help="Checkpoint folder (or hub id when online)."),
    data: Optional[Path] = typer.Option(None, "--data", help="Canonical dataset JSONL to predict."),
    out: Optional[Path] = typer.Option(None, "--out", help="Prediction JSONL (with --data) or overlay PNG (with --image)."),
    batch_size: int = typer.Option(8, "--batch-size", help="Samples per generation batch."),
    template: Optional[str] = typer.Option(None, "--template", help="Prompt template (default: the checkpoint's, else r1)."),
    frame: Optional[str] = typer.Option(None, "--frame", help="Override the coordinate frame (qwen2.5-vl, norm1000, norm1000+yx, fixed:640...)."),
    family: Optional[str] = typer.Option(None, "--family", help="Model family when config.json's model_type is not one a family covers (medground model families)."),
    max_new_tokens: int = typer.Option(128, "--max-new-tokens", help="Generation length limit."),
    limit: Optional[int] = typer.Option(None, "--limit", help="Only the first N samples."),
    retry_errors: bool = typer.Option(False, "--retry-errors", help="Predict again the ids whose line has an error."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Start again instead of resuming from --out."),
    segmenter: Optional[str] = typer.Option(None, "--segmenter", help="Add masks from box/points prompts (e.g. watershed)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:1..."),
    dtype: str = typer.Option("auto", "--dtype", help="auto, float32, bfloat16, float16."),
    min_pixels: Optional[int] = typer.Option(None, "--min-pixels", help="Override the processor's min_pixels."),
    max_pixels: Optional[int] = typer.Option(None, "--max-pixels", help="Override the processor's max_pixels."),
    image: Optional[Path] = typer.Option(None, "--image", help="Single-image mode: the image to ground the query in."),
    query: Optional[str] = typer.Option(None, "--query", help="Single-image mode: the referring expression or question."),
) -> None:
    """Predict boxes (and key points) for a dataset, or for one image with --image/--query."""
    from ..models.policy import load_policy
    from ..predict import default_overlay_path, predict_image
    from ..predict import predict as run_predict

    if (image is None) == (data is None):
        raise MedgroundError("give either --data DATA.jsonl --out PRED.jsonl, or --image PATH --query TEXT")
    if image is not None and not query:
        raise MedgroundError("--image needs --query")
    if data is not None and out is None:
        raise MedgroundError("--data needs --out PRED.jsonl")
    policy = load_policy(model, frame=frame, template=template, device=device, dtype=dtype,
                         min_pixels=min_pixels, max_pixels=max_pixels, family=family)
    if image is not None:
        overlay = out or default_overlay_path(image)
        record = predict_image(policy, image, query, template=template, max_new_tokens=max_new_tokens,
                               overlay=overlay, segmenter=segmenter)
        shown = {k: v for k, v in record.items() if k != "mask" or not isinstance(v, dict)}
        typer.echo(json.dumps(shown, ensure_ascii=False))
        typer.echo(f"overlay written to {overlay}")
        return
    summary = run_predict(policy, data, out, batch_size=batch_size, template=template,
                          max_new_tokens=max_new_tokens, limit=limit, retry_errors=retry_errors,
                          overwrite=overwrite, segmenter=segmenter)
    typer.echo(str(summary))
    if summary.failures():
        typer.echo(summary.failures(), err=True)
