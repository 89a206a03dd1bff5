"""`medground demo --out DIR`: phantom data -> tiny model -> SFT -> GRPO -> test report."""

from __future__ import annotations

from pathlib import Path

import typer

from ._apps import OVERRIDES, app, config_command


@app.command("demo", cls=config_command("medground.demo:DemoConfig", defaults="medground.demo:load_demo_config",
                                        title="Recipe fields"), context_settings=OVERRIDES)
def demo(
    ctx: typer.Context,
    out: Path = typer.Option(..., "--out", help="Output folder (report.json, report.md, plots, overlays)."),
    config: Path = typer.Option(None, "--config", help="Demo recipe (default: configs/demo_cpu.yaml)."),
    no_semantic: bool = typer.Option(False, "--no-semantic", help="GRPO without the semantic reward (ablation)."),
) -> None:
    """The whole pipeline on this CPU in about 20 minutes; rerun to resume.

    Override recipe fields after the options, e.g. --grpo.train.max_steps 50 --images 300
    (the defaults below are the recipe's).
    """
    from ..demo import load_demo_config, run_demo
    from ..fileio import check_output_dir

    check_output_dir(out)
    cfg = load_demo_config(config, [*ctx.args, *(["--semantic", "false"] if no_semantic else [])])
    run_demo(out, cfg)
