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

    entries = available()
    if as_json:
        typer.echo(json.dumps([
            {"name": e.name, "description": e.description,
             "options": {k: o.help for k, o in e.options.items()},
             "defaults": {k: _plain(o.default) for k, o in e.options.items()}}
            for e in entries
        ], indent=2))
        return
    for e in entries:
        typer.echo(f"{e.name}: {e.description}")
        for key, opt in e.options.items():
            default = "" if opt.default is None else f" (default {opt.default!r})"
            typer.echo(f"    {key}: {opt.help}{default}")


def _plain(value):
    """A default as JSON can hold it (anything else as its repr)."""
    return value if value is None or isinstance(value, (bool, int, float, str)) else repr(value)
