"""`medground serve`: the web app (Ground an image, Browse a prediction file)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ._apps import app


@app.command("serve")
def serve(
    model: Optional[str] = typer.Option(None, "--model", help="Checkpoint folder to ground images with (omit to only browse)."),
    frame: Optional[str] = typer.Option(None, "--frame", help="Override the coordinate frame (qwen2.5-vl, norm1000, norm1000+yx, fixed:640...)."),
    family: Optional[str] = typer.Option(None, "--family", help="Model family when config.json's model_type is not one a family covers (medground model families)."),
    template: Optional[str] = typer.Option(None, "--template", help="Default prompt template (default: the checkpoint's, else r1)."),
    segmenter: Optional[str] = typer.Option(None, "--segmenter", help="Add masks from the answer's box / points (e.g. watershed)."),
    data: Optional[Path] = typer.Option(None, "--data", help="Canonical dataset JSONL: the truth Browse compares with."),
    predictions: Optional[list[Path]] = typer.Option(None, "--predictions", help="Prediction file to browse (any format evaluate reads); give a second one to compare."),
    more: Optional[list[Path]] = typer.Argument(None, metavar="[B.jsonl]", help="A second prediction file (same as repeating --predictions)."),
    root: Optional[list[Path]] = typer.Option(None, "--root", help="Another folder Browse may read images and masks from (besides those of --data and --predictions)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind (0.0.0.0 exposes the app to the network)."),
    port: int = typer.Option(7860, "--port", help="Port (0: any free port)."),
    max_upload_mb: float = typer.Option(100.0, "--max-upload-mb", help="Refuse uploads larger than this."),
    max_image_pixels: int = typer.Option(64_000_000, "--max-image-pixels", help="Refuse images with more pixels (width x height) than this."),
    max_query_chars: int = typer.Option(1000, "--max-query-chars", help="Refuse longer queries."),
    max_new_tokens: int = typer.Option(128, "--max-new-tokens", help="Generation length limit."),
    iou: str = typer.Option("standard", "--iou", help="IoU variant for Browse: standard or vlm-r1."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:1..."),
    dtype: str = typer.Option("auto", "--dtype", help="auto, float32, bfloat16, float16."),
) -> None:
    """Start the web app: Ground (try the model on an uploaded image) and Browse (a prediction file against its truth)."""
    from ..errors import MedgroundError
    from ..serve import serve as run
    from ..serve.limits import MB, Limits

    files = [*(predictions or []), *(more or [])]
    if more and not predictions:
        raise MedgroundError(f"unexpected argument {more[0]}; prediction files go after --predictions")
    limits = Limits(max_upload_bytes=int(max_upload_mb * MB), max_image_pixels=max_image_pixels,
                    max_query_chars=max_query_chars)

    def ready(handle) -> None:
        typer.echo(f"medground serve: {handle.url}  (health: {handle.url}/healthz; Ctrl-C stops)", err=False)

    handle = run(model, frame=frame, template=template, family=family, segmenter=segmenter, data=data, predictions=files,
                 roots=root or (), host=host, port=port, limits=limits, device=device, dtype=dtype,
                 max_new_tokens=max_new_tokens, iou=iou, on_ready=ready)
    handle.wait()
