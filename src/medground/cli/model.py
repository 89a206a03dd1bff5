"""`medground model tiny`: build a tiny offline Qwen2.5-VL checkpoint."""

from __future__ import annotations

from pathlib import Path

import typer

from ._apps import OVERRIDES, config_command, model_app


@model_app.command("tiny", cls=config_command("medground.models.tiny:TinyConfig", title="Model fields", dashes=True),
                   context_settings=OVERRIDES)
def tiny(
    ctx: typer.Context,
    out: Path = typer.Option(..., "--out", help="Checkpoint folder to write (model + processor)."),
    seed: int = typer.Option(0, "--seed", help="Initialisation seed; the same seed writes the same weights."),
    config: Path = typer.Option(None, "--config", help="YAML file of model fields (below)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a non-empty folder that is not a tiny checkpoint."),
) -> None:
    """A small Qwen2.5-VL from config with a tokenizer trained on the templates; nothing is downloaded.

    Set model fields after the options, e.g. --hidden-size 64 --layers 1.
    """
    from ..config import load_config
    from ..fileio import check_output_dir
    from ..models.tiny import TinyConfig, build_tiny_model

    cfg = load_config(TinyConfig, config, ctx.args)
    check_output_dir(out)
    path = build_tiny_model(out, seed=seed, config=cfg, overwrite=overwrite)
    typer.echo(f"wrote tiny Qwen2.5-VL to {path}")
