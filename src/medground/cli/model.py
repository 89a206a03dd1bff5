"""`medground model tiny`: build a tiny offline Qwen2.5-VL checkpoint."""

from __future__ import annotations

from pathlib import Path

import typer

from ._apps import model_app


@model_app.command("tiny")
def tiny(
    out: Path = typer.Option(..., "--out", help="Checkpoint folder to write (model + processor)."),
    seed: int = typer.Option(0, "--seed", help="Initialisation seed; the same seed writes the same weights."),
    hidden_size: int = typer.Option(128, "--hidden-size", help="Text hidden size (vision output size follows)."),
    layers: int = typer.Option(2, "--layers", help="Text decoder layers."),
    vision_depth: int = typer.Option(2, "--vision-depth", help="Vision transformer blocks."),
    max_pixels: int = typer.Option(224 * 224, "--max-pixels", help="Image processor max_pixels."),
    min_pixels: int = typer.Option(56 * 56, "--min-pixels", help="Image processor min_pixels."),
    template: str = typer.Option("r1", "--template", help="Default prompt template stored in medground.json."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a non-empty folder that is not a tiny checkpoint."),
) -> None:
    """A small Qwen2.5-VL from config with a tokenizer trained on the templates; nothing is downloaded."""
    from ..models.tiny import TinyConfig, build_tiny_model
    from ..templates import get_template

    get_template(template)  # unknown names fail before any work
    cfg = TinyConfig(hidden_size=hidden_size, intermediate_size=2 * hidden_size, num_hidden_layers=layers,
                     vision_depth=vision_depth, min_pixels=min_pixels, max_pixels=max_pixels, template=template)
    path = build_tiny_model(out, seed=seed, config=cfg, overwrite=overwrite)
    typer.echo(f"wrote tiny Qwen2.5-VL to {path}")
