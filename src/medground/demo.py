"""``medground demo``: the whole pipeline on a CPU, measured honestly.

phantom data -> tiny Qwen2.5-VL -> SFT warm start (the recipe: on the explicit phrases
only, ``sft_tasks``) -> GRPO on every training query (format + IoU + semantic, the
semantic encoder fitted by ``medground semantic fit``) -> greedy evaluation of the SFT
and the GRPO model on the held-out test split, overall, per query type and per
category.  Writes to ``DIR``:

* ``report.json`` — ``{"sft": {...}, "grpo": {...}, "config": ..., "seconds": ...,
  "peak_rss_mb": ...}`` (metrics from :func:`medground.evaluate.evaluate`, percent;
  ``seconds`` is the wall time of this invocation, so a resumed demo counts what it redid),
* ``report.md`` — the same, readable, with the learning curve,
* ``sft_curves.png``, ``grpo_curves.png`` — training plots,
* ``overlays/`` — a few test images with the SFT / GRPO / true boxes.

Every stage writes into its own folder and is skipped when already complete, and the
trainers resume from their last checkpoint, so an interrupted demo is rerun with the
same command.  The recipe is ``configs/demo_cpu.yaml`` (see :class:`DemoConfig`).
"""

from __future__ import annotations

import dataclasses
import json
import os
import resource
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import MedgroundError

STAGES = ("data", "model", "semantic", "sft", "grpo", "evaluate")


@dataclass
class DemoConfig:
    """The demo recipe.  ``sft`` / ``grpo`` are sections of :class:`SFTRunConfig` /
    :class:`GRPORunConfig` (paths are filled in by the demo)."""

    seed: int = 0
    threads: int = 0  # torch CPU threads; 0 = every core this process may use (see set_cpu_threads)
    images: int = 600
    size: int = 112
    implicit_frac: float = 0.3
    val_frac: float = 0.1  # fractions of the images in the val / test splits
    test_frac: float = 0.1
    exclude_categories: list[str] = field(default_factory=list)  # targets left out of every split (see report)
    sft_tasks: list[str] = field(default_factory=list)  # query types (explicit / implicit) the SFT warm start sees; [] = all
    tiny: dict[str, Any] = field(default_factory=dict)  # medground.models.tiny.TinyConfig fields
    template: str = "r1"
    semantic: bool = True
    semantic_weight: float = 1.0
    semantic_fit: dict[str, Any] = field(default_factory=lambda: {"epochs": 6})
    sft: dict[str, Any] = field(default_factory=dict)
    grpo: dict[str, Any] = field(default_factory=dict)
    eval_batch_size: int = 32
    max_new_tokens: int = 64
    bootstrap: int = 1000
    overlays: int = 6


def load_demo_config(path=None, overrides: list[str] | None = None) -> DemoConfig:
    """The demo recipe from YAML (default: the packaged ``configs/demo_cpu.yaml`` when
    found) with ``--field value`` / ``--sft.train.max_steps 10`` overrides."""
    import yaml

    data: dict = {}
    if path is None:
        default = Path(__file__).resolve().parent / "configs" / "demo_cpu.yaml"
        path = default if default.exists() else None
    if path is not None:
        from .train.config import load_yaml

        data = load_yaml(path)
    names = {f.name for f in dataclasses.fields(DemoConfig)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise MedgroundError(f"{path}: unknown demo field(s) {', '.join(unknown)}")
    args = list(overrides or [])
    i = 0
    while i < len(args):
        tok = args[i]
        if not tok.startswith("--") or i + 1 >= len(args):
            raise MedgroundError(f"demo override {tok!r}: expected --field value")
        keys = tok[2:].replace("-", "_").split(".")
        value = yaml.safe_load(args[i + 1])
        if keys[0] not in names:
            raise MedgroundError(f"unknown demo field {keys[0]!r}; known: {', '.join(sorted(names))}")
        node = data
        for k in keys[:-1]:
            node = node.setdefault(k, {})
            if not isinstance(node, dict):
                raise MedgroundError(f"demo override {tok}: {k} is not a section")
        node[keys[-1]] = value
        i += 2
    cfg = DemoConfig()
    for k, v in data.items():
        default = getattr(cfg, k)
        if isinstance(default, dict):
            if not isinstance(v, dict):
                raise MedgroundError(f"demo field {k!r} must be a mapping")
            setattr(cfg, k, {**default, **v} if k == "semantic_fit" else v)
        elif isinstance(default, list):
            setattr(cfg, k, [str(x) for x in (v if isinstance(v, list) else [v])])
        elif isinstance(default, bool):
            setattr(cfg, k, bool(v))
        elif isinstance(default, (int, float)) and not isinstance(v, (int, float)):
            raise MedgroundError(f"demo field {k!r} must be a number, got {v!r}")
        else:
            setattr(cfg, k, type(default)(v) if v is not None else v)
    return cfg


def _log(msg: str) -> None:
    print(f"[demo {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def set_cpu_threads(n: int) -> int:
    """Use ``n`` torch CPU threads (``n <= 0``: every core this process may use).

    When torch is not imported yet, OpenMP's idle threads are also told to sleep
    (``OMP_WAIT_POLICY=PASSIVE`` unless already set): with the default spinning, two
    threads are ~1.5x faster than one on a quiet 2-core machine but ~4x slower than
    one when another job shares the cores; passive waiting keeps most of the gain
    (1.92 vs 2.46 s per GRPO step) and loses little under contention (2.75 s).
    Returns the thread count used.
    """
    if n <= 0:
        n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if "torch" not in sys.modules:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import torch

    torch.set_num_threads(n)
    return n


def peak_rss_mb() -> float:
    """Peak resident memory of this process and its finished children, MiB."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return round(max(own, kids) / 1024.0, 1)


# --------------------------------------------------------------------------- stages


def make_data(cfg: DemoConfig, out: Path) -> Path:
    from .data.phantom import generate_phantom_dataset

    root = out / "data"
    info = root / "phantom.json"
    want = {"seed": cfg.seed, "n_images": cfg.images, "size": cfg.size, "implicit_frac": cfg.implicit_frac,
            "val_frac": cfg.val_frac, "test_frac": cfg.test_frac}
    if info.exists():
        have = json.loads(info.read_text())
        if all(have.get(k) == v for k, v in want.items()):
            _log(f"data: {root} already generated")
            return root
    _log(f"data: {cfg.images} phantom images of {cfg.size} px")
    generate_phantom_dataset(root, n=cfg.images, seed=cfg.seed, size=cfg.size, val_frac=cfg.val_frac,
                             test_frac=cfg.test_frac, implicit_frac=cfg.implicit_frac)
    return root


def select_categories(cfg: DemoConfig, data: Path, out: Path) -> Path:
    """The splits without ``exclude_categories`` (written to ``out/subset``); ``data`` itself when none."""
    if not cfg.exclude_categories:
        return data
    from .data.schema import read_jsonl, write_jsonl

    sub, excluded = out / "subset", set(cfg.exclude_categories)
    for split in ("train", "val", "test"):
        kept = [s for s in read_jsonl(data / f"{split}.jsonl") if s.category not in excluded]
        if not kept:
            raise MedgroundError(f"demo: excluding {cfg.exclude_categories} leaves no {split} sample")
        write_jsonl(kept, sub / f"{split}.jsonl")
    _log(f"data: without {', '.join(cfg.exclude_categories)} -> {sub}")
    return sub


def make_model(cfg: DemoConfig, out: Path) -> Path:
    from .models.tiny import TinyConfig, build_tiny_model

    path = out / "tiny"
    if (path / "config.json").exists():
        _log(f"model: {path} already built")
        return path
    fields = {f.name for f in dataclasses.fields(TinyConfig)}
    bad = sorted(set(cfg.tiny) - fields)
    if bad:
        raise MedgroundError(f"demo tiny: unknown TinyConfig field(s) {', '.join(bad)}")
    tiny = TinyConfig(**{"template": cfg.template, "max_pixels": cfg.size * cfg.size, **cfg.tiny})
    _log(f"model: tiny Qwen2.5-VL ({tiny.hidden_size}-d, {tiny.num_hidden_layers} layers)")
    return build_tiny_model(path, seed=cfg.seed, config=tiny)


def make_encoder(cfg: DemoConfig, out: Path, data: Path) -> Path | None:
    if not cfg.semantic:
        return None
    from .models.semantic_fit import FitConfig, fit

    path = out / "encoder"
    if (path / "fit_report.json").exists():
        _log(f"semantic: encoder {path} already fitted")
        return path
    fc = FitConfig(**{"seed": cfg.seed, **cfg.semantic_fit})
    _log(f"semantic: fitting the crop/text encoder ({fc.epochs} epochs)")
    fit(data / "train.jsonl", path, val=data / "val.jsonl", config=fc, progress=True)
    return path


def _train_values(section: dict, *, model: Path, data: Path, out: Path, template: str, seed: int) -> dict:
    values = json.loads(json.dumps(section))  # deep copy
    values.setdefault("model", {})["path"] = str(model)
    d = values.setdefault("data", {})
    d.update({"train": str(data / "train.jsonl"), "val": str(data / "val.jsonl"), "template": template})
    t = values.setdefault("train", {})
    t["output_dir"] = str(out)
    t.setdefault("seed", seed)
    return values


def run_sft_stage(cfg: DemoConfig, out: Path, model: Path, data: Path) -> Path:
    from .train import SFTRunConfig, load_config, run_sft

    run = out / "sft"
    final = run / "final"
    if (final / "medground.json").exists():
        _log(f"sft: {final} already trained")
        return final
    values = _train_values(cfg.sft, model=model, data=data, out=run, template=cfg.template, seed=cfg.seed)
    if cfg.sft_tasks:
        values["data"]["train"] = str(sft_train_file(cfg, data))
    scfg = load_config(SFTRunConfig, values=values)
    _log(f"sft: {scfg.train.max_steps} steps, lr {scfg.train.learning_rate:g}")
    run_sft(scfg)
    return final


def sft_train_file(cfg: DemoConfig, data: Path) -> Path:
    """The training samples whose query type (``meta.task``) is in ``cfg.sft_tasks``,
    written to ``data/train_sft.jsonl``: the warm start sees only these, GRPO sees all."""
    from .data.schema import read_jsonl, write_jsonl

    tasks = set(cfg.sft_tasks)
    kept = [s for s in read_jsonl(data / "train.jsonl") if (s.meta or {}).get("task") in tasks]
    if not kept:
        raise MedgroundError(f"demo: no training sample has a query type in sft_tasks={cfg.sft_tasks}")
    path = data / "train_sft.jsonl"
    write_jsonl(kept, path)
    _log(f"sft: warm start on the {', '.join(cfg.sft_tasks)} queries only ({len(kept)} samples) -> {path}")
    return path


def grpo_run_config(cfg: DemoConfig, out: Path, model: Path, data: Path, encoder: Path | None):
    from .train import GRPORunConfig, load_config

    values = _train_values(cfg.grpo, model=model, data=data, out=out, template=cfg.template, seed=cfg.seed)
    rewards = values.pop("rewards", None) or [{"name": "format"}, {"name": "iou"}]
    rewards = [r for r in rewards if r.get("name") != "semantic"]
    if encoder is not None:
        rewards.append({"name": "semantic", "weight": cfg.semantic_weight, "options": {"encoder": str(encoder)}})
    values["rewards"] = rewards
    return load_config(GRPORunConfig, values=values)


def run_grpo_stage(cfg: DemoConfig, out: Path, sft_final: Path, data: Path, encoder: Path | None) -> Path:
    from .train import run_grpo

    run = out / "grpo"
    final = run / "final"
    if (final / "medground.json").exists():
        _log(f"grpo: {final} already trained")
        return final
    gcfg = grpo_run_config(cfg, run, sft_final, data, encoder)
    names = ", ".join(f"{r.name}x{r.weight:g}" for r in gcfg.rewards)
    _log(f"grpo: {gcfg.train.max_steps} steps, G={gcfg.grpo.num_generations}, rewards {names}")
    run_grpo(gcfg)
    return final


def evaluate_model(cfg: DemoConfig, model: Path, data: Path, out: Path, name: str) -> dict:
    """Greedy predictions on the test split (resumable file) and their report."""
    from .evaluate import evaluate
    from .models.policy import load_policy
    from .predict import predict

    pred = out / f"predictions_{name}.jsonl"
    # predictions resume (predict skips finished ids) only for the same weights
    weights = sorted(Path(model).glob("*.safetensors"))
    stamp = {"model": str(model), "mtime": [w.stat().st_mtime for w in weights]}
    source = out / f"predictions_{name}.source.json"
    if pred.exists() and (not source.exists() or json.loads(source.read_text()) != stamp):
        pred.unlink()
    source.write_text(json.dumps(stamp))
    policy = load_policy(model, device="cpu")
    predict(policy, data / "test.jsonl", pred, batch_size=cfg.eval_batch_size, max_new_tokens=cfg.max_new_tokens)
    report = evaluate(pred, data=data / "test.jsonl", bootstrap=cfg.bootstrap, seed=cfg.seed, per_sample=True)
    report["per_task"] = per_task(report.pop("per_sample"), data / "test.jsonl", bootstrap=cfg.bootstrap, seed=cfg.seed)
    (out / f"eval_{name}.json").write_text(json.dumps(report, indent=1) + "\n")
    return report


def per_task(rows: list[dict], test: Path, *, bootstrap: int, seed: int) -> dict:
    """Metrics of the per-sample ``rows`` grouped by query type (``meta.task`` of the test samples)."""
    from .data.schema import read_jsonl
    from .evaluate.report import group_summaries

    task = {s.id: (s.meta or {}).get("task") for s in read_jsonl(test)}
    return group_summaries([{**r, "task": task.get(r["id"])} for r in rows], "task", resamples=bootstrap, seed=seed)


def _val_curve(run: Path) -> list[dict]:
    """Validation points logged during a run (from its trainer state)."""
    states = sorted(run.glob("checkpoint-*/trainer_state.json"), key=lambda p: int(p.parent.name.split("-")[1]))
    hist = []
    final_state = run / "trainer_state.json"
    for p in ([final_state] if final_state.exists() else []) + states[::-1]:
        hist = json.loads(p.read_text()).get("log_history", [])
        break
    return [{"step": h["step"], **{k: v for k, v in h.items() if k.startswith("val/")}}
            for h in hist if any(k.startswith("val/") for k in h)]


def write_overlays(out: Path, data: Path, k: int) -> list[str]:
    from .data.io import load_image
    from .data.schema import read_jsonl
    from .overlay import draw_overlay

    if k <= 0:
        return []
    preds = {}
    for name in ("sft", "grpo"):
        f = out / f"predictions_{name}.jsonl"
        if f.exists():
            preds[name] = {json.loads(line)["id"]: json.loads(line) for line in f.read_text().splitlines() if line}
    odir = out / "overlays"
    odir.mkdir(exist_ok=True)
    written = []
    for s in read_jsonl(data / "test.jsonl")[:k]:
        img = load_image(s.image)
        for name, table in preds.items():
            rec = table.get(s.id) or {}
            box = rec.get("boxes")[0] if rec.get("boxes") else None
            ov = draw_overlay(img, pred_box=box, gt_box=s.boxes[0] if s.boxes else None,
                              title=f"{name}: {s.query}")
            path = odir / f"{s.id}_{name}.png"
            ov.save(path)
            written.append(str(path.relative_to(out)))
    return written


def _metrics(report: dict) -> dict:
    keep = ("n", "miou", "acc@0.3", "acc@0.5", "acc@0.7", "n_unparseable", "ci")
    out = {k: report[k] for k in keep if k in report}
    for group in ("per_category", "per_task"):
        if group in report:
            out[group] = {c: {k: v.get(k) for k in ("n", "miou", "acc@0.5")} for c, v in report[group].items()}
    return out


def write_reports(out: Path, result: dict) -> None:
    (out / "report.json").write_text(json.dumps(result, indent=1) + "\n")
    (out / "report.md").write_text(format_markdown(result))


def format_markdown(r: dict) -> str:
    s, g = r["sft"], r["grpo"]
    lines = ["# medground CPU demo", "",
             f"Phantom chest radiographs ({r['config']['images']} images, {r['config']['size']} px), tiny Qwen2.5-VL, "
             f"template `{r['config']['template']}`, semantic reward {'on' if r['config']['semantic'] else 'off'}.",
             f"Held-out test split, greedy decoding, {s.get('n')} samples. Wall time {r['seconds']:.0f} s, "
             f"peak RSS {r['peak_rss_mb']:.0f} MiB.", "",
             "| model | mIoU | Acc@0.3 | Acc@0.5 | Acc@0.7 | 95 % CI Acc@0.5 |", "|---|---|---|---|---|---|"]
    for name, m in (("SFT warm start", s), ("SFT + GRPO", g)):
        ci = (m.get("ci") or {}).get("acc@0.5")
        ci_txt = f"{ci[0]:.1f}–{ci[1]:.1f}" if ci else ""
        lines.append(f"| {name} | {m.get('miou', 0):.1f} | {m.get('acc@0.3', 0):.1f} | {m.get('acc@0.5', 0):.1f} | "
                     f"{m.get('acc@0.7', 0):.1f} | {ci_txt} |")
    lines += ["", f"GRPO − SFT: Acc@0.5 {g.get('acc@0.5', 0) - s.get('acc@0.5', 0):+.1f} points, "
              f"mIoU {g.get('miou', 0) - s.get('miou', 0):+.1f} points.", ""]
    sft_tasks = r["config"].get("sft_tasks")
    if sft_tasks:
        lines += [f"The SFT warm start saw only the {' and '.join(sft_tasks)} queries of the training split; "
                  "GRPO saw all of them (rewarded on the box alone).", ""]
    excluded = r["config"].get("exclude_categories")
    if excluded:
        lines += [f"Targets left out of every split (still drawn in the images as distractors): {', '.join(excluded)} "
                  "(`exclude_categories`).", ""]
    for group, title in (("per_task", "query type"), ("per_category", "category")):
        names = sorted(set(s.get(group, {})) | set(g.get(group, {})))
        if names:
            lines += [f"| {title} | n | SFT Acc@0.5 | GRPO Acc@0.5 |", "|---|---|---|---|"]
            for c in names:
                a, b = s.get(group, {}).get(c, {}), g.get(group, {}).get(c, {})
                lines.append(f"| {c} | {a.get('n', b.get('n'))} | {a.get('acc@0.5', 0):.1f} | {b.get('acc@0.5', 0):.1f} |")
            lines.append("")
    for name in ("sft", "grpo"):
        curve = r.get("curves", {}).get(name) or []
        if curve:
            lines += [f"Validation during {name.upper()} (greedy, {name} run):", "",
                      "| step | val mIoU | val Acc@0.5 |", "|---|---|---|"]
            for p in curve:
                lines.append(f"| {p['step']} | {100 * p.get('val/miou', 0):.1f} | {100 * p.get('val/acc@0.5', 0):.1f} |")
            lines.append("")
    lines += ["![SFT](sft_curves.png)", "", "![GRPO](grpo_curves.png)", ""]
    if r.get("overlays"):
        lines += ["Overlays (prediction and dashed truth box, legend in each image): " + ", ".join(f"[{Path(p).name}]({p})" for p in r["overlays"]), ""]
    return "\n".join(lines)


def run_demo(out, config: DemoConfig | None = None) -> dict:
    """Run (or resume) the whole demo into ``out``; returns the report dict."""
    cfg = config or load_demo_config()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    set_cpu_threads(cfg.threads)
    t0 = time.time()
    data = select_categories(cfg, make_data(cfg, out), out)
    model = make_model(cfg, out)
    encoder = make_encoder(cfg, out, data)
    sft_final = run_sft_stage(cfg, out, model, data)
    grpo_final = run_grpo_stage(cfg, out, sft_final, data, encoder)
    _log("evaluate: SFT and GRPO models on the test split")
    sft_report = evaluate_model(cfg, sft_final, data, out, "sft")
    grpo_report = evaluate_model(cfg, grpo_final, data, out, "grpo")
    for name in ("sft", "grpo"):
        png = out / name / "training_curves.png"
        if png.exists():
            shutil.copyfile(png, out / f"{name}_curves.png")
    result = {
        "sft": _metrics(sft_report),
        "grpo": _metrics(grpo_report),
        "config": dataclasses.asdict(cfg),
        "curves": {"sft": _val_curve(out / "sft"), "grpo": _val_curve(out / "grpo")},
        "overlays": write_overlays(out, data, cfg.overlays),
        "seconds": round(time.time() - t0, 1),
        "peak_rss_mb": peak_rss_mb(),
    }
    write_reports(out, result)
    _log(f"done in {result['seconds']:.0f} s: SFT Acc@0.5 {result['sft'].get('acc@0.5', 0):.1f} -> "
         f"GRPO {result['grpo'].get('acc@0.5', 0):.1f} (report: {out / 'report.md'})")
    return result
