"""Plain-text tables of an evaluation report (what ``medground evaluate`` prints).

>>> rep = {"format": "medground", "iou_variant": "standard", "n": 2, "n_missing": 0, "n_error": 0,
...        "n_unparseable": 0, "miou": 50.0, "acc@0.5": 50.0, "ci": {"miou": [0.0, 100.0]}}
>>> print(format_report(rep).splitlines()[2])
mIoU         50.00  [  0.00, 100.00]
"""

from __future__ import annotations

from .report import THRESHOLDS, acc_key

LABELS = {"miou": "mIoU", "pdice": "pDice", "dice": "Dice", "mask_iou": "mask IoU", "pdice_medreasoner": "pDice (MR)",
          "sensitivity": "Sens.", "center_acc": "Center-Acc", "sample_f1": "F1 (all)", "laterality_error": "Wrong side",
          "specificity": "Spec.", "fpr": "FPR", "precision": "Precision", "recall": "Recall", "f1": "F1 (multi)",
          "matched_iou": "mIoU-set"}
MAX_GROUP_ROWS = 40
#: The open-set metrics by the samples they are computed over (printed as blocks under the headline).
SET_BLOCKS = (
    ("positive samples", "n_positive", ("sensitivity", "center_acc")),
    ("phrases naming a side", "n_laterality", ("laterality_error",)),
    ("negatives", "n_negative", ("specificity", "fpr")),
    ("multi-target samples", "n_multi", ("precision", "recall", "f1", "matched_iou")),
    ("every sample", "n", ("sample_f1",)),
)
#: Open-set columns of the per-group tables.
GROUP_SET_KEYS = ("sample_f1", "specificity", "f1")


def metric_keys(report: dict) -> list[str]:
    """Metrics present in a report, in display order (the open-set ones are in :data:`SET_BLOCKS`)."""
    keys = ["miou"] + [acc_key(t) for t in THRESHOLDS]
    keys += [k for k in ("pdice", "dice", "mask_iou", "pdice_medreasoner") if k in report]
    return [k for k in keys if k in report]


def label(key: str) -> str:
    return LABELS.get(key) or key.replace("acc@", "Acc@")


def format_report(report: dict, *, max_group_rows: int = MAX_GROUP_ROWS) -> str:
    """The headline table (metric, value, 95 % CI) then one table per breakdown."""
    lines = [
        f"format {report.get('format')}, IoU {report.get('iou_variant')}, "
        f"n={report.get('n')} (missing {report.get('n_missing', 0)}, error {report.get('n_error', 0)}, "
        f"unparseable {report.get('n_unparseable', 0)})"
        + (f", predictions in frame {report['frame']}" if report.get("frame") else ""),
    ]
    if report.get("n_extra"):
        lines.append(
            f"{report['n_extra']} prediction(s) for ids not in the dataset, e.g. "
            + ", ".join(map(str, report.get("extra_ids", [])[:5]))
        )
    lines.append(f"{'metric':<10} {'value':>7}  95% CI")
    ci = report.get("ci") or {}
    for key in metric_keys(report):
        lo_hi = ci.get(key)
        interval = f"[{lo_hi[0]:6.2f}, {lo_hi[1]:6.2f}]" if lo_hi else ""
        lines.append(f"{label(key):<10} {_fmt(report[key]):>7}  {interval}".rstrip())
    lines.extend(format_set_metrics(report))
    source = report.get("source") or {}
    if source.get("accuracy_in_file") is not None:
        lines.append(f"accuracy stored in the file: {source['accuracy_in_file']}")
    for title, key in (("target", "per_kind"), ("super-category", "per_supercategory"), ("category", "per_category")):
        groups = report.get(key) or {}
        if groups:
            lines.append("")
            lines.extend(format_groups(groups, title, max_rows=max_group_rows))
    return "\n".join(lines)


def format_set_metrics(report: dict) -> list[str]:
    """The open-set metrics, one block per set of samples they are computed over (only the
    blocks with samples; nothing for a report without them)."""
    ci = report.get("ci") or {}
    lines = []
    for title, count, keys in SET_BLOCKS:
        keys = [k for k in keys if report.get(k) is not None]
        if not keys or not report.get(count):
            continue
        lines.append(f"{title} (n={report[count]})")
        for key in keys:
            lo_hi = ci.get(key)
            interval = f"[{lo_hi[0]:6.2f}, {lo_hi[1]:6.2f}]" if lo_hi else ""
            lines.append(f"{label(key):<10} {_fmt(report[key]):>7}  {interval}".rstrip())
    return lines


def format_groups(groups: dict, title: str, *, max_rows: int = MAX_GROUP_ROWS) -> list[str]:
    """One row per group: name, n, and each metric."""
    keys = list(dict.fromkeys(k for rep in groups.values() for k in metric_keys(rep)))
    keys += [k for k in GROUP_SET_KEYS if any(rep.get(k) is not None for rep in groups.values())]
    width = max(len(title), *(len(str(g)) for g in groups)) if groups else len(title)
    width = min(width, 40)
    header = f"{title:<{width}} {'n':>5} " + " ".join(f"{label(k):>9}" for k in keys)
    out = [header]
    for k, (name, rep) in enumerate(groups.items()):
        if k == max_rows:
            out.append(f"... {len(groups) - max_rows} more (see --json)")
            break
        out.append(
            f"{str(name)[:width]:<{width}} {rep.get('n', 0):>5} " + " ".join(f"{_fmt(rep.get(m)):>9}" for m in keys)
        )
    return out


def _fmt(v) -> str:
    return "-" if v is None else f"{v:.2f}"
