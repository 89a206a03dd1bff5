"""`medground data phantom`: write a synthetic chest-radiograph grounding dataset."""

from __future__ import annotations

from pathlib import Path

import typer

from ._apps import data_app


@data_app.command("phantom")
def phantom(
    out: Path = typer.Option(..., "--out", help="Output folder (images/, masks/, train/val/test.jsonl, their manifest dataset.json, and all.jsonl: their union)."),
    n: int = typer.Option(200, "--n", help="Number of images; each gives one sample per finding (2-4)."),
    seed: int = typer.Option(0, "--seed", help="Random seed; the same seed writes byte-identical files."),
    size: int = typer.Option(224, "--size", help="Image side in pixels (square, 8-bit grey)."),
    val_frac: float = typer.Option(0.1, "--val-frac", help="Fraction of images in the val split."),
    test_frac: float = typer.Option(0.1, "--test-frac", help="Fraction of images in the test split."),
    implicit_frac: float = typer.Option(0.3, "--implicit-frac", help="Fraction of implicit clinical questions."),
    negative_frac: float = typer.Option(
        0.0, "--negative-frac", help="Expected share of negative queries (a finding, side or zone the image does "
                                     "not have; boxes: [])."),
    multi_frac: float = typer.Option(
        0.0, "--multi-frac", help="Expected share of multi-target queries (bilateral effusions, the masses, both "
                                  "lungs: every box)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Synthetic chest radiographs with six finding categories, explicit and implicit queries.

    Negative and multi-target queries on request (--negative-frac, --multi-frac)."""
    from ..data.phantom import generate_phantom_dataset
    from ..fileio import check_output_dir
    from ..progress import set_quiet

    set_quiet(quiet)
    check_output_dir(out)
    counts = generate_phantom_dataset(out, n=n, seed=seed, size=size, val_frac=val_frac, test_frac=test_frac,
                                      implicit_frac=implicit_frac, negative_frac=negative_frac,
                                      multi_frac=multi_frac, progress=not quiet)
    typer.echo(f"wrote {counts['images']} images to {out}: "
               + ", ".join(f"{s} {counts[s]} samples" for s in ("train", "val", "test")))
