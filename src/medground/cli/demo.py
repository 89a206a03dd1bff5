"""`medground demo --out DIR`: phantom data -> tiny model -> SFT -> GRPO -> test report."""

from __future__ import annotations

from pathlib import Path

import typer

from ._apps import app


@app.command("demo", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def demo(
    ctx: typer.Context,
    out: Path = typer.Option(..., "--out", help="Output folder (report.json, report.md, plots, overlays)."),
    config: Path = typer.Option(None, "--config", help="Demo recipe (default: configs/demo_cpu.yaml)."),
    no_semantic: bool = typer.Option(False, "--no-semantic", help="GRPO without the semantic reward (ablation)."),
) -> None:
    """The whole pipeline on this CPU in about 20 minutes; rerun to resume.

    Override recipe fields after the options, e.g. --grpo.train.max_steps 50 --images 300.
    """
    from ..demo import load_demo_config, run_demo

    cfg = load_demo_config(config, list(ctx.args))
    if no_semantic:
        cfg.semantic = False
    run_demo(out, cfg)
