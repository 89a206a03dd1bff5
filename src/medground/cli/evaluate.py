"""``medground evaluate PREDICTIONS``: score predictions, print a table, write JSON."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..errors import MedgroundError
from ._apps import app


@app.command("evaluate")
def evaluate(
    predictions: Path = typer.Argument(..., help="Prediction file: medground JSONL, VLM-R1 log or MedReasoner output."),
    data: Optional[Path] = typer.Option(None, "--data", help="Dataset JSONL with the ground truth (joined by id)."),
    format: str = typer.Option("auto", "--format", help="auto | medground | vlm-r1 | medreasoner."),
    iou: str = typer.Option(
        "standard", "--iou", help="standard | vlm-r1 (inclusive-pixel IoU of VLM-R1 / MedGround-R1)."
    ),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the full report (incl. breakdowns) here."),
    bootstrap: int = typer.Option(1000, "--bootstrap", help="Bootstrap resamples for the 95% intervals (0: none)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the bootstrap."),
    frame: Optional[str] = typer.Option(
        None,
        "--frame",
        help="Coordinate frame of foreign predictions (medreasoner with --data, vlm-r1 with --image-size) "
        "or of completions without a 'frame' field: pixels, qwen2.5-vl, norm1000, norm1, fixed:640.",
    ),
    image_size: Optional[str] = typer.Option(
        None, "--image-size", help="WxH of the images a vlm-r1 log's ground truth refers to (with --frame)."
    ),
    family: Optional[str] = typer.Option(
        None, "--family", help="Model family whose answers these are (medground model families): its native "
        "syntax and frame, in place of --frame (e.g. gemma3: box_2d [y0, x0, y1, x1] in 0-1000)."
    ),
    reextract: bool = typer.Option(False, "--reextract", help="vlm-r1 logs: extract boxes again from model_output."),
    max_groups: int = typer.Option(40, "--max-groups", help="Rows printed per breakdown table."),
    allow_missing: bool = typer.Option(False, "--allow-missing", help="Score a file none of whose ids is in --data (every sample missing) instead of stopping."),
    root: Optional[Path] = typer.Option(None, "--root", help="Image and mask paths of --data must lie under this folder (symlinks resolved)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
) -> None:
    """Score grounding predictions: mIoU, Acc@0.3/0.5/0.7, pDice and mask Dice.

    With bootstrap 95% intervals, per category and super-category.  Missing or
    unparseable predictions count as IoU 0 and are counted in the report."""
    from ..evaluate import evaluate as run_evaluation
    from ..evaluate import format_report, write_report
    from ..fileio import check_output_file
    from ..progress import set_quiet

    set_quiet(quiet)
    if json_out is not None:
        check_output_file(json_out, option="--json", example="report.json")
    if max_groups < 0:
        raise MedgroundError(f"--max-groups must be 0 or more, got {max_groups}")
    report = run_evaluation(predictions, data, format=format, iou=iou, frame=frame, image_size=image_size,
                            family=family, bootstrap=bootstrap, seed=seed, reextract=reextract, progress=not quiet,
                            allow_missing=allow_missing, root=root)
    for warning in report.get("warnings", []):
        typer.echo(f"warning: {warning}", err=True)
    typer.echo(format_report(report, max_group_rows=max_groups))
    if json_out is not None:
        write_report(report, json_out)
        typer.echo(f"report written to {json_out}")

