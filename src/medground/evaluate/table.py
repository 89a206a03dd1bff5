"""Plain-text tables of an evaluation report (what ``medground evaluate`` prints).

>>> rep = {"format": "medground", "iou_variant": "standard", "n": 2, "n_missing": 0, "n_error": 0,
...        "n_unparseable": 0, "miou": 50.0, "acc@0.5": 50.0, "ci": {"miou": [0.0, 100.0]}}
>>> print(format_report(rep).splitlines()[2])
mIoU         50.00  [  0.00, 100.00]
"""

from __future__ import annotations

from .report import THRESHOLDS, acc_key

LABELS = {"miou": "mIoU", "pdice": "pDice", "dice": "Dice", "mask_iou": "mask IoU", "pdice_medreasoner": "pDice (MR)"}
MAX_GROUP_ROWS = 40


def metric_keys(report: dict) -> list[str]:
    """Metrics present in a report, in display order."""
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
    source = report.get("source") or {}
    if source.get("accuracy_in_file") is not None:
        lines.append(f"accuracy stored in the file: {source['accuracy_in_file']}")
    for title, key in (("super-category", "per_supercategory"), ("category", "per_category")):
        groups = report.get(key) or {}
        if groups:
            lines.append("")
            lines.extend(format_groups(groups, title, max_rows=max_group_rows))
    return "\n".join(lines)


def format_groups(groups: dict, title: str, *, max_rows: int = MAX_GROUP_ROWS) -> list[str]:
    """One row per group: name, n, and each metric."""
    first = next(iter(groups.values()))
    keys = metric_keys(first)
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
