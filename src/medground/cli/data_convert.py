"""``medground data convert | export | stats``: public releases -> canonical -> trainers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from ..errors import MedgroundError
from ._apps import data_app


def _parse_options(items: list[str] | None) -> dict[str, str]:
    out = {}
    for item in items or []:
        if "=" not in item:
            raise MedgroundError(f"--option expects KEY=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        out[k.strip().replace("-", "_")] = v.strip()
    return out


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
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
) -> None:
    """Convert a public release to the canonical schema once (validated, with a report)."""
    from ..data.converters import CONVERTERS, run

    if source == "list":
        for name, spec in sorted(CONVERTERS.items()):
            typer.echo(f"{name:<12} {spec.description}")
            for key, opt in spec.options.items():
                typer.echo(f"    -o {f'{key}={opt.default}':<28} {opt.help}")
        return
    if input is None or out is None:
        raise MedgroundError("convert needs SOURCE INPUT --out DIR (see 'medground data convert list')")
    rep = run(source, input, out, images=images, strict=strict, split=split, limit=limit,
              skip_missing=skip_missing, options=_parse_options(option), progress=not quiet)
    typer.echo(rep.summary())
    for reason, n in rep.skip_reasons.most_common(5):
        typer.echo(f"  skipped {n}: {reason}")
    for msg, n in rep.warnings.most_common(5):
        typer.echo(f"  warning ({n}x): {msg}")
    typer.echo(f"report: {Path(out) / 'convert_report.json'}")


@data_app.command("export")
def export(
    fmt: str = typer.Argument(..., metavar="FORMAT", help="verl (MedReasoner parquet), trl (datasets.save_to_disk) or r1-json."),
    data: Path = typer.Argument(..., help="Converted dataset folder ({split}.jsonl) or one JSONL file."),
    out: Path = typer.Option(..., "--out", help="Output folder."),
    frame: Optional[str] = typer.Option(None, "--frame", help="Coordinate frame of the targets = the policy's answer frame: qwen2.5-vl, norm1000, pixels, fixed:640 (default: trl / verl qwen2.5-vl, r1-json pixels)."),
    template: Optional[str] = typer.Option(None, "--template", help="Prompt template (trl: default r1; verl: default the bare question as in MedReasoner)."),
    split: Optional[list[str]] = typer.Option(None, "--split", help="Only these splits (repeat)."),
    ability: str = typer.Option("medical_grounding", "--ability", help="verl 'ability' column."),
    kind: str = typer.Option("grpo", "--kind", help="trl: grpo (prompt + ground truth) or sft (adds the teacher completion)."),
    no_embed: bool = typer.Option(False, "--no-embed", help="verl: store image paths instead of bytes."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
) -> None:
    """Export a canonical dataset for a trainer (TRL or verl) or as MedGround-R1 JSON."""
    from ..data import export as ex

    by_split = ex.load_dataset_dir(data, split)
    fmt = fmt.lower()
    if fmt == "verl":
        written = ex.export_verl(by_split, out, frame=frame or "qwen2.5-vl", template=template, ability=ability,
                                 embed_images=not no_embed, progress=not quiet)
        for sp, path in written.items():
            typer.echo(f"{sp}: {len(by_split[sp])} rows -> {path}")
    elif fmt == "trl":
        dd = ex.export_trl(by_split, out, template=template or "r1", frame=frame or "qwen2.5-vl", kind=kind)
        typer.echo(f"saved {', '.join(f'{k} {len(v)}' for k, v in dd.items())} to {out} (datasets.load_from_disk)")
    elif fmt in ("r1-json", "r1_json", "r1"):
        written = ex.export_r1_json(by_split, out, frame=frame or "pixels", image_root=Path(data) if Path(data).is_dir() else None)
        for sp, path in written.items():
            typer.echo(f"{sp}: {len(by_split[sp])} records -> {path}")
    else:
        raise MedgroundError(f"unknown export format {fmt!r}; choose verl, trl or r1-json")


@data_app.command("stats")
def stats(
    data: Path = typer.Argument(..., help="Converted dataset folder ({split}.jsonl) or one JSONL file."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Histogram PNG (default DIR/stats.png)."),
    top: int = typer.Option(8, "--top", help="Categories drawn separately in the plot; the rest pooled."),
    as_json: bool = typer.Option(False, "--json", help="Print the statistics as JSON instead of a table."),
) -> None:
    """Counts, box-size and aspect distributions per category, and a histogram PNG."""
    from ..data.stats import compute_stats, format_table, plot_stats, public

    st = compute_stats(data)
    target = plot or ((Path(data) if Path(data).is_dir() else Path(data).parent) / "stats.png")
    png = plot_stats(st, target, top=top)
    if as_json:
        typer.echo(json.dumps(public(st), indent=2))
    else:
        typer.echo(format_table(st))
        typer.echo(f"\nhistograms: {png}")
