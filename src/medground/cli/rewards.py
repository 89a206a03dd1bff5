"""`medground rewards list`: every registered reward with its description and options."""

from __future__ import annotations

import json

import typer

from ._apps import rewards_app


@rewards_app.command("list")
def list_rewards(
    as_json: bool = typer.Option(False, "--json", help="Print a JSON list instead of text."),
) -> None:
    """Every reward name usable in `medground.rewards.get(name, **options)` and recipes."""
    from ..rewards import available

    specs = available()
    if as_json:
        typer.echo(json.dumps([{"name": s.name, "description": s.description, "options": s.options} for s in specs], indent=2))
        return
    for s in specs:
        typer.echo(f"{s.name}: {s.description}")
        for opt, text in s.options.items():
            typer.echo(f"    {opt}: {text}")
