"""`medground train sft|grpo --config FILE [--section.field value ...]`."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from ._apps import train_app

_EXTRA = {"allow_extra_args": True, "ignore_unknown_options": True}


def _run(kind: str, config: Path | None, ctx: typer.Context, print_config: bool) -> None:
    from ..train import GRPORunConfig, SFTRunConfig, load_config
    from ..train.config import to_dict

    cls = SFTRunConfig if kind == "sft" else GRPORunConfig
    cfg = load_config(cls, config, list(ctx.args))
    if print_config:
        import yaml

        typer.echo(yaml.safe_dump(to_dict(cfg), sort_keys=False))
        return
    from ..train import run_grpo, run_sft
    from ..train.common import is_main_process

    summary = (run_sft if kind == "sft" else run_grpo)(cfg)
    summary.pop("config", None)
    if is_main_process():
        typer.echo(json.dumps(summary, indent=1))


@train_app.command("sft", context_settings=_EXTRA)
def sft(
    ctx: typer.Context,
    config: Path = typer.Option(None, "--config", help="YAML config (sections model, data, train, lora, eval, sft)."),
    print_config: bool = typer.Option(False, "--print-config", help="Print the resolved config and exit."),
) -> None:
    """Supervised warm start (TRL SFTTrainer) on teacher completions from the ground truth.

    Any field can be overridden after the options: --train.max_steps 100 --data.template chain_of_box.
    """
    _run("sft", config, ctx, print_config)


@train_app.command("grpo", context_settings=_EXTRA)
def grpo(
    ctx: typer.Context,
    config: Path = typer.Option(None, "--config", help="YAML config (sections model, data, train, lora, eval, grpo, rewards)."),
    print_config: bool = typer.Option(False, "--print-config", help="Print the resolved config and exit."),
) -> None:
    """GRPO (TRL GRPOTrainer) with medground rewards by name.

    Override fields after the options: --num_generations 8 --grpo.beta 0.04 --rewards format,iou:2.
    """
    _run("grpo", config, ctx, print_config)
