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
    limit: Optional[int] = typer.Option(None, "--limit", help="Only the first N samples (N >= 1)."),
    retry_errors: bool = typer.Option(False, "--retry-errors", help="Predict again the ids whose line has an error."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Start again instead of resuming from --out (a resume needs the same model, template, frame, --max-new-tokens, segmenter and dataset)."),
    segmenter: Optional[str] = typer.Option(None, "--segmenter", help="Add masks from box/points prompts (e.g. watershed)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:1..."),
    dtype: str = typer.Option("auto", "--dtype", help="auto, float32, bfloat16, float16."),
    min_pixels: Optional[int] = typer.Option(None, "--min-pixels", help="Override the processor's min_pixels."),
    max_pixels: Optional[int] = typer.Option(None, "--max-pixels", help="Override the processor's max_pixels."),
    image: Optional[Path] = typer.Option(None, "--image", help="Single-image mode: the image to ground the query in."),
    query: Optional[str] = typer.Option(None, "--query", help="Single-image mode: the referring expression or question."),
    root: Optional[Path] = typer.Option(None, "--root", help="Image paths of --data must lie under this folder (symlinks resolved)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
    engine: str = typer.Option("hf", "--engine", help="hf (transformers generate) or vllm (offline vLLM)."),
    tensor_parallel_size: int = typer.Option(1, "--tensor-parallel-size", help="vllm: GPUs one model is split over."),
    data_parallel_size: int = typer.Option(1, "--data-parallel-size", help="vllm: passed to vLLM (data parallel "
                                           "over processes: accelerate launch --num_processes N)."),
    vllm_cache_dir: Optional[Path] = typer.Option(None, "--vllm-cache-dir", help="vllm: folder for its caches and "
                                                  "sockets (default: vLLM's own)."),
) -> None:
    """Predict boxes (and key points) for a dataset, or for one image with --image/--query.

    Data parallel: `accelerate launch --num_processes N -m medground predict ...` -- each
    process predicts its shard into OUT's part, the last one to finish merges them into OUT."""
    from ..engines import load_engine
    from ..models.policy import check_family
    from ..models.source import resolve_model_source
    from ..predict import check_options, check_resumable, read_samples
    from ..progress import set_quiet

    set_quiet(quiet)
    check_options(data=data, out=out, image=image, query=query, batch_size=batch_size, max_new_tokens=max_new_tokens,
                  limit=limit, template=template, frame=frame, segmenter=segmenter, min_pixels=min_pixels,
                  max_pixels=max_pixels, device=device)
    if family is not None:
        from ..models.families import get_family

        get_family(family)  # a mistyped family fails before anything loads
    options = dict(frame=frame, template=template, dtype=dtype, min_pixels=min_pixels, max_pixels=max_pixels,
                   family=family)
    if engine.strip().lower() == "vllm":
        from ..engines.vllm import import_vllm

        if device not in ("auto", "cpu"):
            raise MedgroundError("--device is for --engine hf; vLLM uses the GPUs in CUDA_VISIBLE_DEVICES")
        import_vllm()  # a missing vLLM is said before anything is read or loaded
        options.update(tensor_parallel_size=tensor_parallel_size, data_parallel_size=data_parallel_size,
                       cache_dir=vllm_cache_dir)
    else:
        options.update(device=device)
    if data is not None:
        read_samples(data, root=root)  # a bad dataset fails now, not after the model has loaded
    check_family(model, family=family, frame=frame)  # a model type no family covers: before its weights are read
    source = resolve_model_source(model)  # a mistyped folder fails here, offline
    if data is not None:
        check_resumable(model, data, out, template=template, max_new_tokens=max_new_tokens, overwrite=overwrite)
    typer.echo(source.describe(), err=True)
    policy = load_engine(engine, model, **options)
    try:
        _run(policy, data, out, image, query, template, batch_size, max_new_tokens, limit, retry_errors, overwrite,
             segmenter, quiet, root)
    finally:
        policy.close()


def _run(policy, data, out, image, query, template, batch_size, max_new_tokens, limit, retry_errors, overwrite,
         segmenter, quiet, root) -> None:
    from ..predict import default_overlay_path, predict_image
    from ..predict import predict as run_predict

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
                          overwrite=overwrite, segmenter=segmenter, progress=not quiet, root=root)
    if summary.warning:
        typer.echo(f"warning: {summary.warning}", err=True)
    typer.echo(str(summary))
    if summary.merged:
        typer.echo(f"merged every part into {summary.merged}")
    if summary.failures():
        typer.echo(summary.failures(), err=True)
