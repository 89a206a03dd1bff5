"""Aggregation of per-sample scores into a report: means, Acc@t, bootstrap 95 % CIs,
and the same broken down per category and super-category.

Input rows are dicts with ``iou`` (a fraction; 0 for a missing or unparseable
prediction), optional ``pdice`` / ``dice`` / ``mask_iou`` (fractions, or None where the
sample has no such ground truth), ``status`` (``ok``, ``missing``, ``error``,
``unparseable``), ``category`` and ``supercategory``; rows scored against a dataset also
carry the zero/one/many-target fields of :func:`medground.evaluate.scoring.set_fields`
(``kind``, ``empty``, ``hit``, ``f1``, ...), from which :func:`set_summary` computes the
open-set metrics.

Conventions
-----------
* ``miou``, ``acc@t``, ``pdice``, ``dice``, ``mask_iou`` are percentages; ``miou`` and
  ``acc@t`` are over the positive samples (a negative has no box to overlap), ``n`` counts
  every sample.
* Open-set metrics (percent, each over its own samples; :data:`SET_METRICS`):
  ``specificity`` / ``fpr`` on negatives, ``sensitivity`` / ``center_acc`` on positives,
  ``precision`` / ``recall`` / ``f1`` / ``matched_iou`` on multi-target samples,
  ``sample_f1`` on every sample, ``laterality_error`` on positives whose query names a side.
  Their intervals come from a second bootstrap stream, so the intervals of the metrics
  above are those of a report without them.
* ``acc@t`` is the share of samples with IoU **strictly greater** than ``t`` (the
  VLM-R1 / MedGround-R1 rule ``iou > 0.5``), computed as ``hits / n * 100`` — the same
  float operations as those scripts, so their ``accuracy`` is reproduced bit for bit.
* Confidence intervals: percentile bootstrap over samples (``resamples`` draws with
  replacement, ``numpy.random.default_rng(seed)``), 2.5th and 97.5th percentiles.

>>> rows = [{"iou": v, "status": "ok"} for v in (0.9, 0.6, 0.4, 0.0)]
>>> r = summarize(rows, resamples=0)
>>> r["n"], r["miou"], r["acc@0.5"]
(4, 47.5, 50.0)
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

THRESHOLDS = (0.3, 0.5, 0.7)
OPTIONAL_METRICS = ("pdice", "dice", "mask_iou", "pdice_medreasoner")
#: The zero/one/many-target metrics: name -> (rows it is computed over, per-row value).
SET_METRICS = {
    "sensitivity": ("positive", lambda r: r["hit"]),
    "center_acc": ("positive", lambda r: r["center"]),
    "sample_f1": ("all", lambda r: r["sample_f1"]),
    "specificity": ("negative", lambda r: r["empty"]),
    "fpr": ("negative", lambda r: r["n_pred"] > 0),
    "precision": ("multi", lambda r: r["precision"]),
    "recall": ("multi", lambda r: r["recall"]),
    "f1": ("multi", lambda r: r["f1"]),
    "matched_iou": ("multi", lambda r: r["matched_iou"]),
    "laterality_error": ("sided", lambda r: r["wrong_side"]),
}
NO_GROUP = "(none)"
CHUNK = 100  # bootstrap resamples drawn at once (bounds memory to CHUNK x n indices)


def acc_key(t: float) -> str:
    return f"acc@{t:g}"


def build_report(rows: list[dict], *, resamples: int = 1000, seed: int = 0, thresholds=THRESHOLDS) -> dict:
    """Overall summary plus ``per_category`` and ``per_supercategory`` summaries."""
    report = summarize(rows, resamples=resamples, seed=seed, thresholds=thresholds)
    for key, out in (("category", "per_category"), ("supercategory", "per_supercategory")):
        report[out] = group_summaries(rows, key, resamples=resamples, seed=seed, thresholds=thresholds)
    if any("kind" in r for r in rows):
        report["per_kind"] = group_summaries(rows, "kind", resamples=resamples, seed=seed, thresholds=thresholds)
    return report


def group_summaries(rows: list[dict], key: str, *, resamples: int = 1000, seed: int = 0,
                    thresholds=THRESHOLDS) -> dict[str, dict]:
    """:func:`summarize` of each group of :func:`group_rows` (its own bootstrap stream per group)."""
    return {
        name: summarize(members, resamples=resamples, seed=_group_seed(seed, key, k), thresholds=thresholds)
        for k, (name, members) in enumerate(group_rows(rows, key).items())
    }


def summarize(rows: list[dict], *, resamples: int = 1000, seed: int = 0, thresholds=THRESHOLDS) -> dict:
    """Counts, metrics (percent) and their bootstrap CIs for one group of rows."""
    n = len(rows)
    status = [r.get("status", "ok") for r in rows]
    out: dict = {
        "n": n,
        "n_missing": status.count("missing"),
        "n_error": status.count("error"),
        "n_unparseable": status.count("unparseable"),
    }
    positive = [r for r in rows if r.get("kind") != "negative"]  # rows without a kind: positives
    iou = np.array([float(r["iou"]) for r in positive], dtype=np.float64)
    samples: dict[str, np.ndarray] = {}
    if len(positive):
        out["miou"] = float(iou.mean() * 100)
        samples["miou"] = iou
        for t in thresholds:
            hits = iou > t
            out[acc_key(t)] = int(hits.sum()) / len(positive) * 100
            samples[acc_key(t)] = hits.astype(np.float64)
    else:
        out["miou"] = None
        for t in thresholds:
            out[acc_key(t)] = None
    for key in OPTIONAL_METRICS:
        vals = np.array([float(r[key]) for r in rows if r.get(key) is not None], dtype=np.float64)
        if len(vals):
            out[key] = float(vals.mean() * 100)
            out[f"n_{key}"] = int(len(vals))
            samples[key] = vals
    out["ci"] = bootstrap_ci(samples, resamples=resamples, seed=seed) if resamples > 0 else {}
    counts, values = set_summary(rows)
    out.update(counts)
    for key, arr in values.items():
        out[key] = float(arr.mean() * 100) if len(arr) else None
    if resamples > 0 and values:
        out["ci"].update(bootstrap_ci({k: v for k, v in values.items() if len(v)}, resamples=resamples,
                                      seed=[*np.atleast_1d(seed).tolist(), SET_STREAM]))
    return out


def set_summary(rows: list[dict]) -> tuple[dict[str, int], dict[str, np.ndarray]]:
    """The sample counts (``n_positive``, ``n_negative``, ``n_single``, ``n_multi``,
    ``n_laterality``) and, per metric of :data:`SET_METRICS`, its per-sample values (0/1 or a
    fraction); empty when the rows carry no ``kind`` (a log scored from stored values).

    >>> rows = [{"kind": "negative", "empty": True, "n_pred": 0, "sample_f1": 1.0, "iou": 0.0},
    ...         {"kind": "negative", "empty": False, "n_pred": 2, "sample_f1": 0.0, "iou": 0.0}]
    >>> counts, values = set_summary(rows)
    >>> counts["n_negative"], values["specificity"].tolist(), values["fpr"].tolist(), len(values["f1"])
    (2, [1.0, 0.0], [0.0, 1.0], 0)
    """
    if not any("kind" in r for r in rows):
        return {}, {}
    groups = {
        "all": rows,
        "negative": [r for r in rows if r.get("kind") == "negative"],
        "positive": [r for r in rows if r.get("kind") in ("single", "multi")],
        "multi": [r for r in rows if r.get("kind") == "multi"],
    }
    groups["sided"] = [r for r in groups["positive"] if r.get("wrong_side") is not None]
    counts = {"n_positive": len(groups["positive"]), "n_negative": len(groups["negative"]),
              "n_single": sum(r.get("kind") == "single" for r in rows), "n_multi": len(groups["multi"]),
              "n_laterality": len(groups["sided"])}
    values = {name: np.array([float(get(r)) for r in groups[over]], dtype=np.float64)
              for name, (over, get) in SET_METRICS.items()}
    return counts, values


def bootstrap_ci(samples: dict[str, np.ndarray], *, resamples: int = 1000, seed: int = 0, level: float = 0.95) -> dict:
    """Percentile bootstrap interval (in percent) of the mean of each per-sample array.

    Arrays of the same length share the same resampled indices (so ``miou`` and
    ``acc@t`` are resampled together); each length gets its own draws, in a fixed
    order, from one ``default_rng(seed)``.

    >>> ci = bootstrap_ci({"x": np.ones(5)}, resamples=50)
    >>> ci["x"]
    [100.0, 100.0]
    """
    rng = np.random.default_rng(seed)
    lo_q, hi_q = 50 * (1 - level), 50 * (1 + level)
    by_len: dict[int, list[str]] = defaultdict(list)
    for name, arr in samples.items():
        if len(arr):
            by_len[len(arr)].append(name)
    out: dict[str, list[float]] = {}
    for n in sorted(by_len):
        names = by_len[n]
        means = np.empty((len(names), resamples))
        for start in range(0, resamples, CHUNK):
            stop = min(start + CHUNK, resamples)
            idx = rng.integers(0, n, size=(stop - start, n), dtype=np.int32)
            for m, name in enumerate(names):
                means[m, start:stop] = samples[name][idx].mean(axis=1)
        lo, hi = np.percentile(means, [lo_q, hi_q], axis=1)
        for k, name in enumerate(names):
            out[name] = [float(lo[k] * 100), float(hi[k] * 100)]
    return {name: out[name] for name in samples if name in out}


def group_rows(rows: list[dict], key: str) -> dict[str, list[dict]]:
    """Rows grouped by ``row[key]`` (sorted by name; missing values under ``"(none)"``);
    empty when no row has the key."""
    if not any(r.get(key) not in (None, "") for r in rows):
        return {}
    groups: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        v = r.get(key)
        groups[NO_GROUP if v in (None, "") else str(v)].append(r)
    return dict(sorted(groups.items(), key=lambda kv: kv[0].lower()))


SET_STREAM = 3  # bootstrap stream of the open-set metrics (the others use the report's own seed)


def _group_seed(seed: int, key: str, k: int) -> list[int]:
    return [seed, {"category": 1, "kind": 4}.get(key, 2), k]
