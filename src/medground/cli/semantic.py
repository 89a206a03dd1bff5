"""`medground semantic fit | eval`: train our small dual encoder for the semantic reward,
and measure any encoder's held-out crop→text retrieval top-1."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from ._apps import OVERRIDES, config_command, semantic_app


@semantic_app.command("fit", cls=config_command("medground.models.semantic_fit:FitConfig", title="Fit fields",
                                            dashes=True),
                      context_settings=OVERRIDES)
def fit(
    ctx: typer.Context,
    data: Path = typer.Option(..., "--data", help="Training set (canonical JSONL)."),
    out: Path = typer.Option(..., "--out", help="Output directory (a transformers CLIP checkpoint)."),
    val: Path = typer.Option(None, "--val", help="Held-out set; default: --val-fraction of --data."),
    config: Path = typer.Option(None, "--config", help="YAML file of fit fields (below)."),
) -> None:
    """Train a CLIP-architecture encoder (built from config, no download) on (truth crop, query) pairs.

    Set fit fields after the options, e.g. --epochs 12 --batch-size 32 --margin 0.2.
    """
    from ..config import load_config
    from ..fileio import check_output_dir
    from ..models.semantic_fit import FitConfig
    from ..models.semantic_fit import fit as run_fit

    cfg = load_config(FitConfig, config, ctx.args)
    check_output_dir(out)
    report = run_fit(data, out, val=val, config=cfg, log=typer.echo)
    typer.echo(f"saved encoder to {out}")
    typer.echo(f"held-out crop->text top-1 {report['heldout_top1']:.3f} vs chance {report['heldout_chance']:.3f} "
               f"({report['n_heldout']} crops, {report['heldout_texts']} distinct texts); report: {out / 'fit_report.json'}")
    if report.get("heldout_category_top1") is not None:
        typer.echo(f"same-category top-1 {report['heldout_category_top1']:.3f} "
                   f"vs chance {report['heldout_category_chance']:.3f}")


@semantic_app.command("eval")
def evaluate(
    encoder: str = typer.Option(..., "--encoder", help="Encoder directory or spec (open_clip:local-dir:PATH ...)."),
    data: Path = typer.Option(..., "--data", help="Canonical JSONL with boxes and queries."),
    margin: float = typer.Option(None, "--margin", help="Crop margin; default: the encoder's training margin, else 0."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Crop→text retrieval top-1 of an encoder (candidates: the distinct queries of --data)."""
    from ..models.semantic_fit import evaluate as run_eval

    result = run_eval(encoder, data, margin=margin)
    if as_json:
        typer.echo(json.dumps(result))
    else:
        line = (f"crop->text top-1 {result['top1']:.3f} vs chance {result['chance']:.3f} "
                f"({result['n']} crops, {result['n_texts']} distinct texts, margin {result['margin']})")
        if "category_top1" in result:
            line += f"; same-category top-1 {result['category_top1']:.3f} vs chance {result['category_chance']:.3f}"
        typer.echo(line)
