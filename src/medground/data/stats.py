"""Dataset statistics: counts, box-size and aspect distributions per category.

:func:`compute_stats` reads a converted dataset (a folder of ``{split}.jsonl`` or one
file) and returns per-split counts and, per category, the number of samples / boxes and
quantiles of

* ``size``   — ``sqrt(box area / image area)``: the box side relative to the image
  (0.1 = a box a tenth of the image wide and high),
* ``aspect`` — box width / height,
* ``width`` / ``height`` — box sides in original pixels.

:func:`format_table` prints them; :func:`plot_stats` writes ``stats.png`` (beside the
dataset unless told otherwise) with one histogram of relative size and one of
``log2(aspect)`` per category (matplotlib, Agg).

>>> default_plot_path("data/mscxr/test.jsonl").as_posix()
'data/mscxr/stats.png'
"""

from __future__ import annotations

import os
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from ..errors import MedgroundError
from ..fileio import save_figure

QUANTILES = (0.0, 0.25, 0.5, 0.75, 1.0)


def _box_arrays(samples):
    from .trl_dataset import sample_size

    per_cat: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for s in samples:
        cat = s.category or "(none)"
        try:
            W, H = sample_size(s)
        except MedgroundError:
            W = H = None
        per_cat[cat]["samples"].append(1)
        for b in s.boxes:
            x1, y1, x2, y2 = (float(v) for v in b)
            w, h = max(x2 - x1, 0.0), max(y2 - y1, 0.0)
            per_cat[cat]["width"].append(w)
            per_cat[cat]["height"].append(h)
            per_cat[cat]["aspect"].append(w / h if h > 0 else np.nan)
            per_cat[cat]["size"].append(np.sqrt(w * h / (W * H)) if W and H else np.nan)
    return per_cat


def _quantiles(values) -> dict[str, float] | None:
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if not v.size:
        return None
    q = np.quantile(v, QUANTILES)
    return {"min": float(q[0]), "q25": float(q[1]), "median": float(q[2]), "q75": float(q[3]),
            "max": float(q[4]), "mean": float(v.mean())}


def compute_stats(data, *, root: str | os.PathLike | None = None) -> dict:
    """Statistics of a converted dataset — a dataset folder, one JSONL file or a
    :class:`~medground.data.dataset_dir.Dataset` already read (see the module docstring);
    ``read`` says which files were read (each sample once)."""
    from .dataset_dir import Dataset, read_dataset

    dataset = data if isinstance(data, Dataset) else read_dataset(data, root=root)
    data = dataset.source
    by_split = dataset.by_split
    samples = [s for ss in by_split.values() for s in ss]
    splits = {sp: len(ss) for sp, ss in sorted(by_split.items())}
    split_cat = {sp: dict(sorted(Counter(s.category or "(none)" for s in ss).items())) for sp, ss in sorted(by_split.items())}
    per_cat = _box_arrays(samples)
    cats = {}
    for cat, arr in sorted(per_cat.items(), key=lambda kv: (-len(kv[1]["samples"]), kv[0])):
        cats[cat] = {
            "samples": len(arr["samples"]),
            "boxes": len(arr["width"]),
            "size": _quantiles(arr["size"]),
            "aspect": _quantiles(arr["aspect"]),
            "width": _quantiles(arr["width"]),
            "height": _quantiles(arr["height"]),
        }
    all_arr = defaultdict(list)
    for arr in per_cat.values():
        for k in ("size", "aspect", "width", "height"):
            all_arr[k].extend(arr[k])
    overall = {"samples": len(samples), "boxes": len(all_arr["width"]),
               **{k: _quantiles(all_arr[k]) for k in ("size", "aspect", "width", "height")}}
    return {"data": str(data), "read": dataset.describe(), "splits": splits, "split_categories": split_cat,
            "categories": cats, "overall": overall, "_raw": per_cat}


def format_table(stats: dict) -> str:
    """Plain-text report: split counts, then one line per category."""
    lines = [f"dataset {stats['data']}: {stats['overall']['samples']} samples, {stats['overall']['boxes']} boxes"]
    if stats.get("read"):
        lines.append(stats["read"])
    lines.append("splits: " + ", ".join(f"{k} {v}" for k, v in stats["splits"].items()))
    head = f"{'category':<28} {'samples':>7} {'boxes':>6}  {'size med [q25-q75]':>22}  {'aspect med [q25-q75]':>22}  {'w px med':>8} {'h px med':>8}"
    lines += ["", head, "-" * len(head)]

    def fmt(q, nd=3):
        if not q:
            return f"{'n/a':>22}"
        return f"{q['median']:.{nd}f} [{q['q25']:.{nd}f}-{q['q75']:.{nd}f}]".rjust(22)

    rows = list(stats["categories"].items()) + [("ALL", stats["overall"])]
    for cat, c in rows:
        w = c["width"]["median"] if c["width"] else float("nan")
        h = c["height"]["median"] if c["height"] else float("nan")
        name = cat if len(cat) <= 28 else cat[:25] + "..."
        lines.append(f"{name:<28} {c['samples']:>7} {c['boxes']:>6}  {fmt(c['size'])}  {fmt(c['aspect'], 2)}  {w:>8.1f} {h:>8.1f}")
    return "\n".join(lines)


def default_plot_path(data: str | os.PathLike) -> Path:
    """Where the histograms of a dataset go by default: ``stats.png`` in the dataset
    folder (or beside the JSONL file)."""
    p = Path(data)
    return (p if p.is_dir() else p.parent) / "stats.png"


def plot_stats(stats: dict, out: str | os.PathLike | None = None, *, top: int = 8) -> Path:
    """Histograms of relative box size and log2 aspect per category (the ``top`` largest
    categories, the rest pooled as "other") written to ``out`` (PNG; default
    :func:`default_plot_path` of the dataset)."""
    if top < 0:
        raise MedgroundError(f"--top must be 0 or more, got {top}")
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    raw = stats["_raw"]
    order = [c for c in stats["categories"]]
    shown = order[:top]
    groups = {c: raw[c] for c in shown}
    rest = order[top:]
    if rest:
        pooled = defaultdict(list)
        for c in rest:
            for k in ("size", "aspect"):
                pooled[k].extend(raw[c][k])
        groups["other"] = pooled
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    size_all = np.asarray([v for g in groups.values() for v in g["size"]], dtype=float)
    size_all = size_all[np.isfinite(size_all)]
    asp_all = np.asarray([v for g in groups.values() for v in g["aspect"]], dtype=float)
    asp_all = np.log2(asp_all[np.isfinite(asp_all) & (asp_all > 0)])
    bins_s = np.linspace(0, max(1e-3, size_all.max()) if size_all.size else 1, 31)
    lo, hi = (asp_all.min(), asp_all.max()) if asp_all.size else (-1, 1)
    bins_a = np.linspace(min(lo, -0.5), max(hi, 0.5), 31)
    for name, g in groups.items():
        s = np.asarray(g["size"], dtype=float)
        a = np.asarray(g["aspect"], dtype=float)
        s = s[np.isfinite(s)]
        a = a[np.isfinite(a) & (a > 0)]
        axes[0].hist(s, bins=bins_s, histtype="step", linewidth=1.5, label=f"{name} ({len(s)})")
        axes[1].hist(np.log2(a), bins=bins_a, histtype="step", linewidth=1.5, label=name)
    axes[0].set_xlabel("box size: sqrt(box area / image area)")
    axes[0].set_ylabel("boxes")
    axes[1].set_xlabel("log2(box width / height)")
    axes[0].set_title("relative box size per category")
    axes[1].set_title("box aspect per category")
    axes[0].legend(fontsize=7)
    fig.suptitle(f"{stats['data']} — {stats['overall']['boxes']} boxes")
    fig.tight_layout()
    out = Path(out) if out is not None else default_plot_path(stats["data"])
    return save_figure(fig, out, dpi=100)


def public(stats: dict) -> dict:
    """The JSON-serialisable part of :func:`compute_stats`' result."""
    return {k: v for k, v in stats.items() if not k.startswith("_")}
