"""`medground train sft|grpo --config FILE [--section.field value ...]`."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from ._apps import OVERRIDES, config_command, train_app

_DOCS = {
    "sft": """Supervised warm start (TRL SFTTrainer) on teacher completions from the ground truth.

    Override any field after the options: --train.max_steps 100 --data.template chain_of_box
    (--FIELD alone when its name is unique across sections).""",
    "grpo": """GRPO (TRL GRPOTrainer) with medground rewards by name.

    Override any field after the options: --num_generations 8 --grpo.beta 0.04 --rewards format,iou:2
    (--FIELD alone when its name is unique across sections).""",
}
_CONFIGS = {"sft": "medground.train.config:SFTRunConfig", "grpo": "medground.train.config:GRPORunConfig"}


def _register(kind: str) -> None:
    def command(
        ctx: typer.Context,
        config: Path = typer.Option(None, "--config", help="YAML config (the sections below)."),
        print_config: bool = typer.Option(False, "--print-config", help="Print the resolved config and exit."),
    ) -> None:
        from ..config import load_config, to_dict
        from ..train import GRPORunConfig, SFTRunConfig, run_grpo, run_sft

        cfg = load_config(SFTRunConfig if kind == "sft" else GRPORunConfig, config, ctx.args)
        if print_config:
            import yaml

            typer.echo(yaml.safe_dump(to_dict(cfg), sort_keys=False))
            return
        from ..models.source import resolve_model_source
        from ..train.common import is_main_process

        if cfg.model.path and is_main_process():
            typer.echo(resolve_model_source(cfg.model.path, check_weights=False).describe(), err=True)
        summary = (run_sft if kind == "sft" else run_grpo)(cfg)
        summary.pop("config", None)
        if is_main_process():
            typer.echo(json.dumps(summary, indent=1))

    command.__doc__ = _DOCS[kind]
    train_app.command(kind, cls=config_command(_CONFIGS[kind]), context_settings=OVERRIDES)(command)


for _kind in _CONFIGS:
    _register(_kind)
