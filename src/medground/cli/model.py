"""`medground model tiny`: build a tiny offline checkpoint of a model family;
`medground model families`: the families, their frames and native answer syntax."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from ._apps import OVERRIDES, config_command, model_app


@model_app.command("tiny", cls=config_command("medground.models.tiny:TinyConfig", title="Model fields", dashes=True),
                   context_settings=OVERRIDES)
def tiny(
    ctx: typer.Context,
    out: Path = typer.Option(..., "--out", help="Checkpoint folder to write (model + processor)."),
    family: str = typer.Option("qwen2.5-vl", "--family", help="Model family (medground model families)."),
    seed: int = typer.Option(0, "--seed", help="Initialisation seed; the same seed writes the same weights."),
    config: Path = typer.Option(None, "--config", help="YAML file of model fields (below)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a non-empty folder that is not a tiny checkpoint."),
) -> None:
    """Build a small model of a family (default Qwen2.5-VL) from config; nothing is downloaded.

    Its tokenizer is trained on the prompt templates, with the family's special tokens and
    chat template.

    Set model fields after the options, e.g. --hidden-size 64 --layers 1.
    """
    from ..config import load_config
    from ..fileio import check_output_dir
    from ..models.families import get_family
    from ..models.tiny import TinyConfig, build_tiny_model

    fam = get_family(family)
    cfg = load_config(TinyConfig, config, ctx.args)
    check_output_dir(out)
    path = build_tiny_model(out, seed=seed, config=cfg, overwrite=overwrite, family=fam.name)
    typer.echo(f"wrote tiny {fam.title or fam.name} to {path}")


@model_app.command("families")
def list_families(
    as_json: bool = typer.Option(False, "--json", help="Print a JSON list instead of text."),
) -> None:
    """Every model family: the model types it covers, its coordinate frame and native answer syntax."""
    from ..models.families import families

    rows = [{"name": f.name, "model_types": list(f.model_types), "frame": f.frame_spec,
             "native_template": f.native_template, "native_syntax": f.native_syntax,
             "description": f.description} for f in families()]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    for r in rows:
        typer.echo(f"{r['name']}: {r['description']}")
        typer.echo(f"    model types: {', '.join(r['model_types'])}; frame: {r['frame']}; "
                   f"native template: {r['native_template'] or 'none'}")
        typer.echo(f"    native answer: {r['native_syntax']}")

