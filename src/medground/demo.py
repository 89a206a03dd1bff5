"""``medground demo``: the whole pipeline on a CPU, measured honestly.

phantom data -> tiny model (Qwen2.5-VL, or ``--family``) -> SFT warm start (the recipe: on the explicit phrases
only, ``sft_tasks``) -> GRPO on every training query (format + IoU + semantic, the
semantic encoder fitted by ``medground semantic fit``) -> greedy evaluation of the SFT
and the GRPO model on the held-out test split, overall, per query type and per
category.  The open-set recipe (``configs/demo_open_cpu.yaml``: ``negative_frac``,
``multi_frac``) adds negative and multi-target queries and reports specificity, set F1
and single-target accuracy per target kind.  Writes to ``DIR``:

* ``report.json`` — ``{"sft": {...}, "grpo": {...}, "config": ..., "seconds": ...,
  "seconds_total": ..., "stages": {...}, "peak_rss_mb": ...}`` (metrics from
  :func:`medground.evaluate.evaluate`, percent; ``seconds`` is the wall time of this
  invocation, ``seconds_total`` that of the whole run: this invocation plus the time
  earlier invocations spent on the stages it reused or resumed; ``stages`` gives each
  stage's time and whether it was reused),
* ``report.md`` — the same, readable, with the learning curve,
* ``sft_curves.png``, ``grpo_curves.png`` — training plots,
* ``overlays/`` — a few test images with the SFT / GRPO / true boxes.

Every stage (``data``, ``model``, ``encoder``, ``sft``, ``grpo``, ``evaluate_sft``,
``evaluate_grpo``) writes into its own folder and records the settings that made it
in ``stages/<stage>.json`` (with the fingerprints of the stages it builds on).  A rerun
reuses a completed stage whose recorded settings equal this invocation's, resumes an
unfinished one (the trainers from their last checkpoint), and makes any other stage
again, replacing its output and naming the settings that changed — so an interrupted
demo is rerun with the same command, and a report never describes models made with
other settings.  The recipe is ``configs/demo_cpu.yaml`` (see :class:`DemoConfig`).
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

from .config import ConfigError, check_range, load_config
from .errors import MedgroundError

STAGES = ("data", "model", "semantic", "sft", "grpo", "evaluate")


DEFAULT_RECIPE = Path(__file__).resolve().parent / "configs" / "demo_cpu.yaml"
PHANTOM_TASKS = ("explicit", "implicit")  # query types of the phantom data (sample meta.task)
TARGET_KINDS = ("negative", "single", "multi")  # what a sample's boxes say (Sample.kind)


@dataclass
class DemoConfig:
    """The demo recipe (``configs/demo_cpu.yaml`` sets every field; these are the bare defaults).

    ``tiny``, ``semantic_fit``, ``sft`` and ``grpo`` hold fields of :class:`TinyConfig`,
    :class:`FitConfig`, :class:`SFTRunConfig` and :class:`GRPORunConfig`, checked against
    them when the recipe loads (``--grpo.train.max_steps 50``); paths, the template and the
    seed are filled in by the demo.
    """

    seed: int = field(default=0, metadata={
        "help": "Seed of the images, the splits, the initialisation and the training runs."})
    threads: int = field(default=0, metadata={
        "help": "torch CPU threads; 0: every core this process may use, less the cores other busy processes "
                "take, re-checked at every training step (see set_cpu_threads)."})
    images: int = field(default=600, metadata={"help": "Phantom images (2-4 findings each, one sample per finding)."})
    size: int = field(default=112, metadata={"help": "Image side in pixels."})
    implicit_frac: float = field(default=0.3, metadata={"help": "Share of implicit clinical questions."})
    negative_frac: float = field(default=0.0, metadata={
        "help": "Expected share of negative queries in the phantom data (boxes: []; 0: none, the closed-set demo)."})
    multi_frac: float = field(default=0.0, metadata={
        "help": "Expected share of multi-target queries in the phantom data (every box; 0: none)."})
    val_frac: float = field(default=0.1, metadata={"help": "Share of the images in the validation split."})
    test_frac: float = field(default=0.1, metadata={"help": "Share of the images in the test split."})
    exclude_categories: list[str] = field(default_factory=list, metadata={
        "help": "Finding categories left out as targets of every split (still drawn; named in the report)."})
    sft_tasks: list[str] = field(default_factory=list, metadata={
        "help": "Query types (explicit, implicit) the SFT warm start sees; []: all.  GRPO sees all."})
    sft_kinds: list[str] = field(default_factory=list, metadata={
        "help": "Target kinds (negative, single, multi) the SFT warm start sees; []: all.  GRPO sees all."})
    sft_repeat: dict[str, int] = field(default_factory=dict, metadata={
        "help": "Copies of each target kind in the SFT warm start (e.g. {negative: 3}); a kind not named: 1."})
    grpo_repeat: dict[str, int] = field(default_factory=dict, metadata={
        "help": "Copies of each target kind among the GRPO prompts (e.g. {negative: 2}); a kind not named: 1."})
    family: str = field(default="qwen2.5-vl", metadata={
        "help": "Model family of the tiny model (medground model families)."})
    tiny: dict[str, Any] = field(default_factory=dict, metadata={
        "help": "Tiny model sizes: TinyConfig fields (medground model tiny --help); max_pixels defaults to the "
                "square of size rounded up to the family's image-token side (size² for qwen2.5-vl).",
        "config": "medground.models.tiny:TinyConfig"})
    template: str = field(default="r1", metadata={"help": "Prompt template of the model, SFT and GRPO."})
    semantic: bool = field(default=True, metadata={"help": "Add the semantic reward (false: the paper's ablation)."})
    semantic_weight: float = field(default=1.0, metadata={"help": "Weight of the semantic reward."})
    semantic_fit: dict[str, Any] = field(default_factory=lambda: {"epochs": 6}, metadata={
        "help": "Semantic encoder training: FitConfig fields (medground semantic fit --help).",
        "config": "medground.models.semantic_fit:FitConfig"})
    sft: dict[str, Any] = field(default_factory=dict, metadata={
        "help": "SFT warm start: sections of medground train sft (e.g. --sft.train.max_steps 100).",
        "config": "medground.train.config:SFTRunConfig"})
    grpo: dict[str, Any] = field(default_factory=dict, metadata={
        "help": "GRPO: sections of medground train grpo (e.g. --grpo.train.max_steps 50); the semantic reward "
                "is added by the demo.",
        "config": "medground.train.config:GRPORunConfig"})
    eval_batch_size: int = field(default=32, metadata={"help": "Batch size of the test-split predictions."})
    max_new_tokens: int = field(default=64, metadata={"help": "Generation length limit of the test predictions."})
    bootstrap: int = field(default=1000, metadata={"help": "Bootstrap resamples of the 95 % intervals (0: none)."})
    overlays: int = field(default=6, metadata={"help": "Test images drawn with the SFT, GRPO and true boxes."})

    def __post_init__(self):
        from .models.families import get_family, resolve_template

        check_range(self, "images", "eval_batch_size", "max_new_tokens", low=1)
        check_range(self, "size", low=28)
        check_range(self, "implicit_frac", low=0, high=1)
        check_range(self, "negative_frac", "multi_frac", low=0, high=1, high_open=True)
        if self.negative_frac + self.multi_frac >= 1:
            raise ConfigError(("negative_frac", "multi_frac"), f"leave no single-target query ({self.negative_frac} + "
                                                               f"{self.multi_frac} >= 1)")
        check_range(self, "val_frac", "test_frac", low=0, high=1, high_open=True)
        if self.val_frac + self.test_frac >= 1:
            raise ConfigError(("val_frac", "test_frac"), f"leave no training images ({self.val_frac} + "
                                                         f"{self.test_frac} >= 1)")
        check_range(self, "semantic_weight", "bootstrap", "overlays", low=0)
        bad = sorted(set(self.sft_tasks) - set(PHANTOM_TASKS))
        if bad:
            raise ConfigError("sft_tasks", f"unknown query type(s) {', '.join(bad)}; choose from "
                                           f"{', '.join(PHANTOM_TASKS)}")
        bad = sorted(set(self.sft_kinds) - set(TARGET_KINDS))
        if bad:
            raise ConfigError("sft_kinds", f"unknown target kind(s) {', '.join(bad)}; choose from "
                                           f"{', '.join(TARGET_KINDS)}")
        for name in ("sft_repeat", "grpo_repeat"):
            repeat = getattr(self, name)
            if set(repeat) - set(TARGET_KINDS) or any(not isinstance(v, int) or v < 1 for v in repeat.values()):
                raise ConfigError(name, f"must map target kinds ({', '.join(TARGET_KINDS)}) to copies >= 1; "
                                        f"got {repeat}")
        try:
            self.family = get_family(self.family).name
        except MedgroundError as exc:
            raise ConfigError("family", str(exc)) from None
        try:
            resolve_template(self.template)
        except MedgroundError as exc:
            raise ConfigError("template", str(exc)) from None


def load_demo_config(path=None, overrides: list[str] | None = None) -> DemoConfig:
    """The demo recipe from YAML ``path`` (default: the packaged ``configs/demo_cpu.yaml``)
    with command-line overrides (``--images 300``, ``--grpo.train.max_steps 50``)."""
    if path is None and DEFAULT_RECIPE.exists():
        path = DEFAULT_RECIPE
    return load_config(DemoConfig, path, overrides)


def _log(msg: str) -> None:
    print(f"[demo {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def set_cpu_threads(n: int) -> int:
    """Use ``n`` torch CPU threads (``n <= 0``: every core this process may use, giving way
    to other busy processes at each training step: :mod:`medground.train.cpu_threads`).

    When torch is not imported yet, OpenMP's idle threads are also told to sleep
    (``OMP_WAIT_POLICY=PASSIVE`` unless already set): with the default spinning, two
    threads are ~1.5x faster than one on a quiet 2-core machine but ~4x slower than
    one when another job shares the cores; passive waiting keeps most of the gain
    (1.92 vs 2.46 s per GRPO step) and loses little under contention (2.75 s), and
    giving the busy core away loses less (``benchmarks/bench_demo_load.py``).
    Returns the thread count used.
    """
    from .train import cpu_threads  # light: imports neither torch nor transformers

    cpu_threads.disable()
    if n <= 0:
        n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        cpu_threads.enable(n)
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

STAGES_DIR = "stages"  # out/stages/<stage>.json: the settings that made each stage's output, and its time


class Stage:
    """One resumable step of the demo and its record (``out/stages/<name>.json``).

    The record holds the settings that produced the stage's ``outputs`` (including the
    fingerprints of the stages it builds on), whether it completed, and the seconds
    spent on it (over every invocation that worked on it).  :meth:`begin` reuses a
    completed stage with the same settings, resumes an unfinished one with the same
    settings (its trainer or fitter continues from its checkpoint), and otherwise
    removes the outputs and starts the stage again, saying which settings changed.
    """

    def __init__(self, out: Path, name: str, settings: dict, outputs: list[Path], made: list[Path] | None = None):
        from .config.compare import fingerprint

        self.name, self.settings, self.outputs = name, json.loads(json.dumps(settings, default=str)), outputs
        self.made = made if made is not None else outputs  # what must exist for the stage to count as done
        self.path = out / STAGES_DIR / f"{name}.json"
        self.fingerprint = fingerprint(self.settings)
        self.reused = False
        self.seconds = 0.0  # spent on the stage, all invocations
        self.earlier = 0.0  # of which in earlier invocations
        self._t0 = 0.0

    def _record(self) -> dict | None:
        try:
            record = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return None
        return record if isinstance(record, dict) else None

    def begin(self) -> bool:
        """Decide what to do; True when the stage is complete and reused (skip it)."""
        from .config.compare import differences

        record = self._record()
        same = record is not None and record.get("settings") == self.settings
        made = all(p.exists() for p in self.made)
        if same and record.get("complete") and made:
            self.reused = True
            self.seconds = self.earlier = float(record.get("seconds", 0.0))
            return True
        carried = 0.0
        if same and not record.get("complete"):  # interrupted: keep the time it took (up to its last file)
            carried = float(record.get("seconds", 0.0)) + max(0.0, _newest_mtime(self.outputs) - record.get("started", 0))
            _log(f"{self.name}: resuming the unfinished stage (same settings)")
        elif any(p.exists() for p in self.outputs):
            if record is None:
                why = "no record of the settings that made it"
            elif same:
                why = "part of its output is missing"
            else:
                why = "; ".join(_readable(d) for d in differences(record.get("settings", {}), self.settings))
            _log(f"{self.name}: {', '.join(str(p) for p in self.outputs if p.exists())} was made with other "
                 f"settings ({why}): making it again")
            for p in self.outputs:
                shutil.rmtree(p) if p.is_dir() else p.unlink(missing_ok=True)
        self._t0 = time.time()
        self._write(complete=False, seconds=round(carried, 1), started=self._t0)
        self.seconds = self.earlier = carried
        return False

    def done(self) -> None:
        """Record the stage as complete (with its settings and time)."""
        self.seconds += time.time() - self._t0
        self._write(complete=True, seconds=round(self.seconds, 1), started=self._t0)

    def _write(self, **fields) -> None:
        from .fileio import atomic_json

        atomic_json({"stage": self.name, "settings": self.settings, **fields}, self.path, indent=1)

    def summary(self) -> dict:
        """``seconds`` spent on the stage in all, ``reused`` (made by an earlier invocation)."""
        return {"seconds": round(self.seconds, 1), "reused": self.reused}


def _readable(diff: str) -> str:
    """``after.sft: 3fa2… -> 9bc1…`` -> ``the sft stage changed``."""
    if diff.startswith("after."):
        return f"the {diff[len('after.'):].split(':')[0]} stage it builds on changed"
    return diff


def _newest_mtime(paths: list[Path]) -> float:
    newest = 0.0
    for p in paths:
        if p.is_file():
            newest = max(newest, p.stat().st_mtime)
        elif p.is_dir():
            newest = max([newest, *(f.stat().st_mtime for f in p.rglob("*") if f.is_file())])
    return newest


def files_fingerprint(*paths: Path) -> str:
    """Digest of the bytes of dataset files (which samples a stage saw)."""
    import hashlib

    h = hashlib.sha256()
    for p in paths:
        h.update(str(Path(p).name).encode() + b"\0" + (Path(p).read_bytes() if Path(p).exists() else b"") + b"\0")
    return h.hexdigest()[:16]


def phantom_settings(cfg: DemoConfig) -> dict:
    """What the phantom data is made with; the open-set rates only when not 0 (a closed-set run's
    record is the one it always was)."""
    settings = {"seed": cfg.seed, "n_images": cfg.images, "size": cfg.size, "implicit_frac": cfg.implicit_frac,
                "val_frac": cfg.val_frac, "test_frac": cfg.test_frac}
    if cfg.negative_frac or cfg.multi_frac:
        settings.update(negative_frac=cfg.negative_frac, multi_frac=cfg.multi_frac)
    return settings


def make_data(cfg: DemoConfig, out: Path, stages: dict) -> Path:
    from .data.phantom import generate_phantom_dataset

    root = out / "data"
    stage = stages["data"] = Stage(out, "data", phantom_settings(cfg), [root], [root / "phantom.json"])
    if stage.begin():
        _log(f"data: {root} already generated")
        return root
    _log(f"data: {cfg.images} phantom images of {cfg.size} px")
    generate_phantom_dataset(root, n=cfg.images, seed=cfg.seed, size=cfg.size, val_frac=cfg.val_frac,
                             test_frac=cfg.test_frac, implicit_frac=cfg.implicit_frac,
                             negative_frac=cfg.negative_frac, multi_frac=cfg.multi_frac)
    stage.done()
    return root


def select_categories(cfg: DemoConfig, data: Path, out: Path) -> Path:
    """The splits without ``exclude_categories`` (written to ``out/subset``); ``data`` itself when none."""
    if not cfg.exclude_categories:
        return data
    from .data.dataset_dir import write_dataset
    from .data.schema import read_jsonl

    sub, excluded, by_split = out / "subset", set(cfg.exclude_categories), {}
    for split in ("train", "val", "test"):
        kept = [s for s in read_jsonl(data / f"{split}.jsonl") if s.category not in excluded]
        if not kept:
            raise MedgroundError(f"demo: excluding {cfg.exclude_categories} leaves no {split} sample")
        by_split[split] = kept
    write_dataset(by_split, sub)  # with its manifest: train_sft.jsonl, written beside later, is not a split
    _log(f"data: without {', '.join(cfg.exclude_categories)} -> {sub}")
    return sub


def tiny_config(cfg: DemoConfig):
    """The :class:`~medground.models.tiny.TinyConfig` of the demo's model: pixel limits of a
    square of ``size`` rounded up to whole image tokens of the family (112 px for
    Qwen2.5-VL's 28); with negative or multi-target queries the tokenizer learns the
    open-set queries too (``open_set``)."""
    from .models.families import get_family
    from .models.tiny import TinyConfig

    fam = get_family(cfg.family)
    side = -(-cfg.size // fam.image_factor) * fam.image_factor
    open_set = bool(cfg.negative_frac or cfg.multi_frac)
    return load_config(TinyConfig, values={"template": cfg.template, "max_pixels": side * side, "open_set": open_set,
                                           **cfg.tiny})


def make_model(cfg: DemoConfig, out: Path, stages: dict) -> Path:
    from .models.families import get_family
    from .models.tiny import build_tiny_model

    path = out / "tiny"
    tiny = tiny_config(cfg)
    settings = dataclasses.asdict(tiny)
    if not settings["open_set"]:  # the closed-set tokenizer of every earlier run: its record stays the same
        del settings["open_set"]
    stage = stages["model"] = Stage(out, "model", {"seed": cfg.seed, "family": cfg.family, "tiny": settings}, [path],
                                    [path / "config.json"])
    if stage.begin():
        _log(f"model: {path} already built")
        return path
    fam = get_family(cfg.family)
    _log(f"model: tiny {fam.title or fam.name} ({tiny.hidden_size}-d, {tiny.num_hidden_layers} layers"
         + (", open-set tokenizer" if tiny.open_set else "") + ")")
    build_tiny_model(path, seed=cfg.seed, config=tiny, family=fam.name)
    stage.done()
    return path


def fit_config(cfg: DemoConfig):
    """The :class:`~medground.models.semantic_fit.FitConfig` of the demo's encoder."""
    from .models.semantic_fit import FitConfig

    return load_config(FitConfig, values={"seed": cfg.seed, **cfg.semantic_fit})


def make_encoder(cfg: DemoConfig, out: Path, data: Path, stages: dict) -> Path | None:
    if not cfg.semantic:
        return None
    from .models.semantic_fit import fit

    path = out / "encoder"
    fc = fit_config(cfg)
    settings = {"fit": dataclasses.asdict(fc), "data": files_fingerprint(data / "train.jsonl", data / "val.jsonl")}
    stage = stages["encoder"] = Stage(out, "encoder", settings, [path], [path / "fit_report.json"])
    if stage.begin():
        _log(f"semantic: encoder {path} already fitted")
        return path
    _log(f"semantic: fitting the crop/text encoder ({fc.epochs} epochs)")
    fit(data / "train.jsonl", path, val=data / "val.jsonl", config=fc, progress=True)
    stage.done()
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


def sft_run_config(cfg: DemoConfig, run: Path, model: Path, data: Path, train_file: Path | None = None):
    """The SFT run of the demo (``train_file``: the warm start's training samples, see
    :func:`sft_train_file`; default ``data/train.jsonl``)."""
    from .train import SFTRunConfig

    values = _train_values(cfg.sft, model=model, data=data, out=run, template=cfg.template, seed=cfg.seed)
    if train_file is not None:
        values["data"]["train"] = str(train_file)
    return load_config(SFTRunConfig, values=values)


def _after(stages: dict, *names: str) -> dict:
    return {n: stages[n].fingerprint for n in names if n in stages}


def run_sft_stage(cfg: DemoConfig, out: Path, model: Path, data: Path, stages: dict) -> Path:
    from .config import to_dict
    from .train import run_sft

    run = out / "sft"
    final = run / "final"
    subset = cfg.sft_tasks or cfg.sft_kinds or cfg.sft_repeat
    scfg = sft_run_config(cfg, run, model, data, sft_train_file(cfg, data) if subset else None)
    settings = {"run": to_dict(scfg), "after": _after(stages, "model"),
                "data": files_fingerprint(Path(scfg.data.train), data / "val.jsonl")}
    stage = stages["sft"] = Stage(out, "sft", settings, [run], [final / "medground.json"])
    if stage.begin():
        _log(f"sft: {final} already trained")
        return final
    _log(f"sft: {scfg.train.max_steps} steps, lr {scfg.train.learning_rate:g}")
    run_sft(scfg)
    stage.done()
    return final


def sft_train_file(cfg: DemoConfig, data: Path) -> Path:
    """The training samples whose query type (``meta.task``) is in ``cfg.sft_tasks`` and
    whose target kind is in ``cfg.sft_kinds`` (an empty list: any), each written
    ``cfg.sft_repeat[kind]`` times (default once) to ``data/train_sft.jsonl``: the warm start
    sees only these, GRPO sees all."""
    from .data.schema import read_jsonl, write_jsonl

    tasks, kinds = set(cfg.sft_tasks or PHANTOM_TASKS), set(cfg.sft_kinds or TARGET_KINDS)
    kept = [copy for s in read_jsonl(data / "train.jsonl") if (s.meta or {}).get("task") in tasks and s.kind in kinds
            for copy in repeated(s, cfg.sft_repeat.get(s.kind, 1))]
    if not kept:
        raise MedgroundError(f"demo: no training sample has a query type in sft_tasks={cfg.sft_tasks} and a "
                             f"target kind in sft_kinds={cfg.sft_kinds}")
    path = data / "train_sft.jsonl"
    write_jsonl(kept, path)
    what = " and ".join(x for x in (", ".join(cfg.sft_tasks), ", ".join(cfg.sft_kinds)) if x) or "every"
    repeat = "".join(f", {k} x{n}" for k, n in sorted(cfg.sft_repeat.items()))
    _log(f"sft: warm start on the {what} queries ({len(kept)} samples{repeat}) -> {path}")
    return path


def grpo_run_config(cfg: DemoConfig, out: Path, model: Path, data: Path, encoder: Path | None):
    from .train.config import GRPORunConfig, RewardTerm, parse_rewards

    values = _train_values(cfg.grpo, model=model, data=data, out=out, template=cfg.template, seed=cfg.seed)
    if cfg.grpo_repeat:
        values["data"]["train"] = str(repeated_file(data / "train.jsonl", data / "train_grpo.jsonl", cfg.grpo_repeat))
    rewards = [r for r in parse_rewards(values.pop("rewards", None) or "format,iou") if r.name != "semantic"]
    if encoder is not None:
        rewards.append(RewardTerm("semantic", cfg.semantic_weight, {"encoder": str(encoder)}))
    values["rewards"] = rewards
    return load_config(GRPORunConfig, values=values)


def repeated(sample, n: int) -> list:
    """``sample`` and ``n - 1`` copies of it, the copies with ids ``<id>#2``, ``<id>#3``, … (a
    training file's ids are unique: ``data validate`` rejects a repeated one)."""
    return [sample] + [dataclasses.replace(sample, id=f"{sample.id}#{k}") for k in range(2, n + 1)]


def repeated_file(src: Path, dst: Path, repeat: dict[str, int]) -> Path:
    """``src`` with every sample of target kind ``k`` written ``repeat[k]`` times (default once) to ``dst``."""
    from .data.schema import read_jsonl, write_jsonl

    samples = [copy for s in read_jsonl(src) for copy in repeated(s, repeat.get(s.kind, 1))]
    write_jsonl(samples, dst)
    _log(f"grpo: {len(samples)} prompts ({', '.join(f'{k} x{n}' for k, n in sorted(repeat.items()))}) -> {dst}")
    return dst


def run_grpo_stage(cfg: DemoConfig, out: Path, sft_final: Path, data: Path, encoder: Path | None,
                   stages: dict) -> Path:
    from .config import to_dict
    from .train import run_grpo

    run = out / "grpo"
    final = run / "final"
    gcfg = grpo_run_config(cfg, run, sft_final, data, encoder)
    settings = {"run": to_dict(gcfg), "after": _after(stages, "sft", "encoder"),
                "data": files_fingerprint(Path(gcfg.data.train), data / "val.jsonl")}
    stage = stages["grpo"] = Stage(out, "grpo", settings, [run], [final / "medground.json"])
    if stage.begin():
        _log(f"grpo: {final} already trained")
        return final
    names = ", ".join(f"{r.name}x{r.weight:g}" for r in gcfg.rewards)
    _log(f"grpo: {gcfg.train.max_steps} steps, G={gcfg.grpo.num_generations}, rewards {names}")
    run_grpo(gcfg)
    stage.done()
    return final


def evaluate_model(cfg: DemoConfig, model: Path, data: Path, out: Path, name: str, stages: dict) -> dict:
    """Greedy predictions on the test split (resumable file) and their report; reused
    when the model, its weights files, the test split and the settings are unchanged."""
    from .evaluate import evaluate
    from .models.policy import load_policy
    from .predict import predict

    pred, report_file = out / f"predictions_{name}.jsonl", out / f"eval_{name}.json"
    weights = [[w.name, w.stat().st_size, w.stat().st_mtime_ns] for w in sorted(Path(model).glob("*.safetensors"))]
    settings = {"model": str(model), "weights": weights, "after": _after(stages, name),
                "test": files_fingerprint(data / "test.jsonl"), "batch_size": cfg.eval_batch_size,
                "max_new_tokens": cfg.max_new_tokens, "bootstrap": cfg.bootstrap, "seed": cfg.seed}
    stage = stages[f"evaluate_{name}"] = Stage(out, f"evaluate_{name}", settings, [pred, report_file])
    if stage.begin():
        return json.loads(report_file.read_text())
    policy = load_policy(model, device="cpu")
    predict(policy, data / "test.jsonl", pred, batch_size=cfg.eval_batch_size, max_new_tokens=cfg.max_new_tokens)
    report = evaluate(pred, data=data / "test.jsonl", bootstrap=cfg.bootstrap, seed=cfg.seed, per_sample=True)
    report["per_task"] = per_task(report.pop("per_sample"), data / "test.jsonl", bootstrap=cfg.bootstrap, seed=cfg.seed)
    report_file.write_text(json.dumps(report, indent=1) + "\n")
    stage.done()
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
            # [] when the answer had no box: said so in the legend
            if s.kind == "single":  # the primary answer box
                box, truth = (rec.get("boxes") or [])[:1], s.boxes[0]
            else:  # a negative or a multi-target query: every box (none for a right negative)
                box, truth = rec.get("boxes") or [], s.boxes or None
            ov = draw_overlay(img, pred_box=box, gt_box=truth, title=f"{name}: {s.query}")
            path = odir / f"{s.id}_{name}.png"
            ov.save(path)
            written.append(str(path.relative_to(out)))
    return written


#: Open-set figures kept in report.json (per target kind too).
OPEN_KEYS = ("specificity", "fpr", "sensitivity", "f1", "precision", "recall", "matched_iou", "sample_f1",
             "center_acc", "laterality_error", "n_negative", "n_single", "n_multi")


def _metrics(report: dict) -> dict:
    keep = ("n", "miou", "acc@0.3", "acc@0.5", "acc@0.7", "n_unparseable", "ci")
    out = {k: report[k] for k in keep if k in report}
    if report.get("n_negative") or report.get("n_multi"):
        out.update({k: report[k] for k in OPEN_KEYS if k in report})
    for group in ("per_category", "per_task", "per_kind"):
        if group in report and (group != "per_kind" or "specificity" in out or "f1" in out):
            keys = ("n", "miou", "acc@0.5") + (("specificity", "f1", "sample_f1") if "sample_f1" in out else ())
            out[group] = {c: {k: v.get(k) for k in keys} for c, v in report[group].items()}
    return out


def write_reports(out: Path, result: dict) -> None:
    (out / "report.json").write_text(json.dumps(result, indent=1) + "\n")
    (out / "report.md").write_text(format_markdown(result))


def format_markdown(r: dict) -> str:
    s, g = r["sft"], r["grpo"]
    lines = ["# medground CPU demo", "",
             f"Phantom chest radiographs ({r['config']['images']} images, {r['config']['size']} px), "
             f"tiny {_family_title(r['config'].get('family'))}, "
             f"template `{r['config']['template']}`, semantic reward {'on' if r['config']['semantic'] else 'off'}.",
             f"Held-out test split, greedy decoding, {s.get('n')} samples. {_wall_time(r)}, "
             f"peak RSS {r['peak_rss_mb']:.0f} MiB.", "",
             "| model | mIoU | Acc@0.3 | Acc@0.5 | Acc@0.7 | 95 % CI Acc@0.5 |", "|---|---|---|---|---|---|"]
    for name, m in (("SFT warm start", s), ("SFT + GRPO", g)):
        ci = (m.get("ci") or {}).get("acc@0.5")
        ci_txt = f"{ci[0]:.1f}–{ci[1]:.1f}" if ci else ""
        lines.append(f"| {name} | {m.get('miou', 0):.1f} | {m.get('acc@0.3', 0):.1f} | {m.get('acc@0.5', 0):.1f} | "
                     f"{m.get('acc@0.7', 0):.1f} | {ci_txt} |")
    lines += ["", f"GRPO − SFT: Acc@0.5 {g.get('acc@0.5', 0) - s.get('acc@0.5', 0):+.1f} points, "
              f"mIoU {g.get('miou', 0) - s.get('miou', 0):+.1f} points.", ""]
    open_set = "sample_f1" in s and "sample_f1" in g
    if open_set:
        lines += open_set_lines(s, g)
    sft_tasks = r["config"].get("sft_tasks")
    if sft_tasks:
        lines += [f"The SFT warm start saw only the {' and '.join(sft_tasks)} queries of the training split; "
                  "GRPO saw all of them (rewarded on the box alone).", ""]
    sft_kinds = r["config"].get("sft_kinds")
    if sft_kinds:
        lines += [f"The SFT warm start saw only the {', '.join(sft_kinds)} target kinds; GRPO saw every kind.", ""]
    for stage, name in (("sft_repeat", "The SFT warm start"), ("grpo_repeat", "GRPO")):
        repeat = r["config"].get(stage)
        if repeat:
            lines += [f"{name} saw " + ", ".join(f"every {k} sample {n} times" for k, n in sorted(repeat.items())) + ".",
                      ""]
    excluded = r["config"].get("exclude_categories")
    if excluded:
        lines += [f"Targets left out of every split (still drawn in the images as distractors): {', '.join(excluded)} "
                  "(`exclude_categories`).", ""]
    groups = (("per_kind", "target"), ("per_task", "query type"), ("per_category", "category"))
    for group, title in groups:
        names = sorted(set(s.get(group, {})) | set(g.get(group, {})))
        if not names:
            continue
        if open_set:
            lines += [f"| {title} | n | SFT Acc@0.5 | GRPO Acc@0.5 | SFT F1 | GRPO F1 |", "|---|---|---|---|---|---|"]
        else:
            lines += [f"| {title} | n | SFT Acc@0.5 | GRPO Acc@0.5 |", "|---|---|---|---|"]
        for c in names:
            a, b = s.get(group, {}).get(c, {}), g.get(group, {}).get(c, {})
            row = f"| {c} | {a.get('n', b.get('n'))} | {_pct(a.get('acc@0.5'))} | {_pct(b.get('acc@0.5'))} |"
            if open_set:
                row += f" {_pct(a.get('sample_f1'))} | {_pct(b.get('sample_f1'))} |"
            lines.append(row)
        lines.append("")
    for name in ("sft", "grpo"):
        curve = r.get("curves", {}).get(name) or []
        if curve:
            extra = [k for k in ("val/specificity", "val/f1_multi", "val/sample_f1") if any(k in p for p in curve)]
            lines += [f"Validation during {name.upper()} (greedy, {name} run):", "",
                      "| step | val mIoU | val Acc@0.5 |" + "".join(f" {k} |" for k in extra),
                      "|---|---|---|" + "---|" * len(extra)]
            for p in curve:
                lines.append(f"| {p['step']} | {100 * p.get('val/miou', 0):.1f} | {100 * p.get('val/acc@0.5', 0):.1f} |"
                             + "".join(f" {_pct(100 * p[k] if k in p else None)} |" for k in extra))
            lines.append("")
    lines += ["![SFT](sft_curves.png)", "", "![GRPO](grpo_curves.png)", ""]
    if r.get("overlays"):
        lines += ["Overlays (prediction and dashed truth box, legend in each image): " + ", ".join(f"[{Path(p).name}]({p})" for p in r["overlays"]), ""]
    return "\n".join(lines)


def _wall_time(r: dict) -> str:
    """``Wall time 1210 s`` (a run made in one go), or both figures of a resumed run."""
    total = r.get("seconds_total", r["seconds"])
    if total <= r["seconds"]:
        return f"Wall time {r['seconds']:.0f} s"
    reused = [name for name, st in (r.get("stages") or {}).items() if st.get("reused")]
    what = f"; reused: {', '.join(reused)}" if reused else ""
    return f"Wall time {total:.0f} s for the whole run, {r['seconds']:.0f} s in the last invocation{what}"


def _family_title(name: str | None) -> str:
    from .models.families import get_family

    fam = get_family(name or "qwen2.5-vl")
    return fam.title or fam.name


def open_set_lines(s: dict, g: dict) -> list[str]:
    """The open-set table of report.md: single-target accuracy, specificity, multi-target F1."""
    def single(m):
        return (m.get("per_kind") or {}).get("single", {})

    rows = [("SFT warm start", s), ("SFT + GRPO", g)]
    lines = ["Zero, one or many targets (mIoU and Acc@t above are over the samples with a target, first answer box):",
             "", f"| model | single-target Acc@0.5 (n={single(s).get('n', 0)}) | specificity on negatives "
             f"(n={s.get('n_negative', 0)}) | FPR | multi-target F1 (n={s.get('n_multi', 0)}) | F1, every sample |",
             "|---|---|---|---|---|---|"]
    for name, m in rows:
        lines.append(f"| {name} | {_pct(single(m).get('acc@0.5'))} | {_pct(m.get('specificity'))} | "
                     f"{_pct(m.get('fpr'))} | {_pct(m.get('f1'))} | {_pct(m.get('sample_f1'))} |")

    def gain(key, get=lambda m, k: m.get(k)):
        a, b = get(s, key), get(g, key)
        return "–" if a is None or b is None else f"{b - a:+.1f}"

    lines += ["", f"GRPO − SFT: specificity {gain('specificity')}, multi-target F1 {gain('f1')}, single-target "
              f"Acc@0.5 {gain('acc@0.5', lambda m, k: single(m).get(k))} points.", ""]
    return lines


def _pct(v) -> str:
    return "–" if v is None else f"{v:.1f}"


def run_demo(out, config: DemoConfig | None = None) -> dict:
    """Run (or resume) the whole demo into ``out``; returns the report dict."""
    cfg = config or load_demo_config()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    set_cpu_threads(cfg.threads)
    t0 = time.time()
    stages: dict[str, Stage] = {}
    data = select_categories(cfg, make_data(cfg, out, stages), out)
    model = make_model(cfg, out, stages)
    encoder = make_encoder(cfg, out, data, stages)
    sft_final = run_sft_stage(cfg, out, model, data, stages)
    grpo_final = run_grpo_stage(cfg, out, sft_final, data, encoder, stages)
    _log("evaluate: SFT and GRPO models on the test split")
    sft_report = evaluate_model(cfg, sft_final, data, out, "sft", stages)
    grpo_report = evaluate_model(cfg, grpo_final, data, out, "grpo", stages)
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
        "peak_rss_mb": peak_rss_mb(),
        "stages": {name: stage.summary() for name, stage in stages.items()},
    }
    result["seconds"] = round(time.time() - t0, 1)
    result["seconds_total"] = round(result["seconds"] + sum(s.earlier for s in stages.values()), 1)
    write_reports(out, result)
    reused = [name for name, s in stages.items() if s.reused]
    _log(f"done in {result['seconds']:.0f} s ({result['seconds_total']:.0f} s for the whole run"
         + (f", reusing {', '.join(reused)}" if reused else "") + f"): SFT Acc@0.5 "
         f"{result['sft'].get('acc@0.5', 0):.1f} -> GRPO {result['grpo'].get('acc@0.5', 0):.1f} "
         f"(report: {out / 'report.md'})")
    if "sample_f1" in result["grpo"]:
        _log("open set: specificity {} -> {}, multi-target F1 {} -> {}".format(
            *(_pct(result[m].get(k)) for k in ("specificity", "f1") for m in ("sft", "grpo"))))
    return result
