"""``medground data convert | export | stats``: public releases -> canonical -> trainers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from ..errors import MedgroundError
from ._apps import data_app


def _print_entries(registry, prefix: str) -> None:
    """One line per registered name, then its options as ``PREFIX key=default  help``."""
    for entry in registry.entries():
        also = f" (also {', '.join(entry.aliases)})" if entry.aliases else ""
        typer.echo(f"{entry.name:<12} {entry.description}{also}")
        for key, opt in entry.options.items():
            typer.echo(f"    {prefix}{f'{key}={opt.default}':<28} {opt.help}")


@data_app.command("convert")
def convert(
    source: str = typer.Argument(..., help="Converter: mscxr, medrpg, chestxray8, m3d-refseg, umrg ('list' shows them)."),
    input: Optional[Path] = typer.Argument(None, help="The release file or folder (CSV, .pth, parquet...)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Output folder: {split}.jsonl + convert_report.json."),
    images: Optional[Path] = typer.Option(None, "--images", help="Image root (MIMIC-CXR-JPG, NIH images, M3D...)."),
    strict: bool = typer.Option(False, "--strict", help="Any skipped row or missing image is an error."),
    split: Optional[str] = typer.Option(None, "--split", help="Split for sources without one (default 'all')."),
    limit: Optional[int] = typer.Option(None, "--limit", help="Stop after this many samples."),
    skip_missing: bool = typer.Option(False, "--skip-missing", help="Drop samples whose image is missing."),
    option: Optional[list[str]] = typer.Option(None, "--option", "-o", help="Converter option KEY=VALUE (repeat)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
) -> None:
    """Convert a public release to the canonical schema once (validated, with a report)."""
    from ..data.converters import CONVERTERS, run
    from ..data.converters.base import parse_option_items
    from ..fileio import check_output_dir
    from ..progress import set_quiet

    set_quiet(quiet)
    if source == "list":
        _print_entries(CONVERTERS, "-o ")
        return
    if input is None or out is None:
        raise MedgroundError("convert needs SOURCE INPUT --out DIR (see 'medground data convert list')")
    check_output_dir(out)
    rep = run(source, input, out, images=images, strict=strict, split=split, limit=limit,
              skip_missing=skip_missing, options=parse_option_items(option), progress=not quiet)
    typer.echo(rep.describe())


@data_app.command("export")
def export(
    fmt: str = typer.Argument(..., metavar="FORMAT", help="verl (MedReasoner parquet), trl (datasets.save_to_disk) or r1-json ('list' shows them and their options)."),
    data: Optional[Path] = typer.Argument(None, help="Converted dataset folder ({split}.jsonl) or one JSONL file."),
    out: Optional[Path] = typer.Option(None, "--out", help="Output folder."),
    frame: Optional[str] = typer.Option(None, "--frame", help="Coordinate frame of the targets = the policy's answer frame: qwen2.5-vl, norm1000, pixels, fixed:640 (default: trl / verl qwen2.5-vl, r1-json pixels)."),
    template: Optional[str] = typer.Option(None, "--template", help="Prompt template (trl: default r1; verl: default the bare question as in MedReasoner)."),
    split: Optional[list[str]] = typer.Option(None, "--split", help="Only these splits (repeat)."),
    ability: Optional[str] = typer.Option(None, "--ability", help="verl 'ability' column (default medical_grounding)."),
    kind: Optional[str] = typer.Option(None, "--kind", help="trl: grpo (prompt + ground truth, the default) or sft (adds the teacher completion)."),
    no_embed: bool = typer.Option(False, "--no-embed", help="verl: store image paths instead of bytes."),
    root: Optional[Path] = typer.Option(None, "--root", help="Image and mask paths must lie under this folder (symlinks resolved)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars (the datasets library's included)."),
) -> None:
    """Export a canonical dataset for a trainer (TRL or verl) or as MedGround-R1 JSON."""
    from ..data.export import EXPORTERS
    from ..data.export import export as run_export
    from ..fileio import check_output_dir
    from ..progress import set_quiet

    set_quiet(quiet)
    if fmt == "list":
        _print_entries(EXPORTERS, "")
        return
    if data is None or out is None:
        raise MedgroundError("export needs FORMAT DATA --out DIR (see 'medground data export list')")
    check_output_dir(out)
    result = run_export(fmt, data, out, splits=split, progress=not quiet, frame=frame, template=template,
                        ability=ability, kind=kind, embed_images=False if no_embed else None, root=root)
    typer.echo(result.read)
    typer.echo(result.summary())


@data_app.command("stats")
def stats(
    data: Path = typer.Argument(..., help="Converted dataset folder ({split}.jsonl) or one JSONL file."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Histogram PNG (default DIR/stats.png)."),
    top: int = typer.Option(8, "--top", help="Categories drawn separately in the plot; the rest pooled."),
    as_json: bool = typer.Option(False, "--json", help="Print the statistics as JSON instead of a table."),
    root: Optional[Path] = typer.Option(None, "--root", help="Image and mask paths must lie under this folder (symlinks resolved)."),
) -> None:
    """Counts, box-size and aspect distributions per category, and a histogram PNG."""
    from ..data.stats import compute_stats, format_table, plot_stats, public
    from ..fileio import check_output_file

    if plot is not None:
        check_output_file(plot, option="--plot", example="stats.png")
    st = compute_stats(data, root=root)
    png = plot_stats(st, plot, top=top)
    if as_json:
        typer.echo(json.dumps(public(st), indent=2))
    else:
        typer.echo(format_table(st))
        typer.echo(f"\nhistograms: {png}")


@data_app.command("merge")
def merge(
    inputs: list[Path] = typer.Argument(..., help="Dataset JSONL files (e.g. data/mscxr/train.jsonl data/cxr8/train.jsonl)."),
    out: Path = typer.Option(..., "--out", help="Merged JSONL (image paths rewritten relative to its folder)."),
    prefix: bool = typer.Option(False, "--prefix", help="Prefix each id with its dataset's folder name."),
) -> None:
    """One dataset from several (one training run on MS-CXR and ChestX-ray8); ids must be unique."""
    from ..data.merge import merge_datasets

    counts = merge_datasets(inputs, out, prefix=prefix)
    typer.echo(f"wrote {counts['samples']} samples to {out} ({counts['single']} single-target, "
               f"{counts['multi']} multi-target, {counts['negative']} negatives)")
