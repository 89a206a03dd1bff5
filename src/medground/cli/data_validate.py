"""``medground data validate FILE``: check every sample of a dataset JSONL.

Prints one line per problem (``FILE:LINE [id=...]: message``) and a summary line.
Exit status: 0 when the file is clean, 1 when problems were found, 2 when the file
could not be checked at all (e.g. it does not exist).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..data.validate import validate_file
from ._apps import data_app


@data_app.command("validate")
def validate(
    file: Path = typer.Argument(..., help="Dataset JSONL in the canonical sample schema."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only the summary line."),
    root: Optional[Path] = typer.Option(None, "--root", help="Image and mask paths must lie under this folder (symlinks resolved); those outside are problems, never opened."),
) -> None:
    """Check every sample of a dataset file and report each problem with its line and id.

    Checks: JSON, fields, the image decodes, boxes inside the image with positive area,
    key points, mask size, duplicate ids.  Exit status 0 only when clean (1: problems
    found, 2: could not run)."""

    def show(problem):
        if not quiet:
            typer.echo(problem.format(file))

    result = validate_file(file, on_problem=show, root=root)
    typer.echo(result.summary())
    if not result.ok:
        raise typer.Exit(1)
