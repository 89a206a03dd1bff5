"""What a rerun of ``medground train sft|grpo`` may reuse from its run folder (``train.output_dir``).

A run folder holds ``config.yaml`` (the settings of the run that made it), its
``checkpoint-N`` folders and ``final/``.  :func:`plan_run` decides, before anything
heavy happens, from ``train.resume``:

``auto`` (the default)
    A previous run in the folder (a checkpoint or ``final/``) is continued only if its
    ``config.yaml`` holds the same settings as this run — all but :data:`RERUN_KEYS`,
    which change what is logged or kept, not what is trained.  Otherwise the run stops
    with a :class:`~medground.errors.MedgroundError` that names every differing key.
    It resumes from the newest *complete* checkpoint
    (:func:`medground.models.checkpoints.latest_complete_checkpoint`) and says which one
    (``resuming from checkpoint-4 (step 4 of 10)``) and why a newer one was skipped.
``never``
    Start over: the previous run's checkpoints, ``final/`` and logs
    (:data:`PREVIOUS_OUTPUTS`) are removed first, and the removal is announced, so that
    a later ``auto`` cannot resume from a checkpoint of the old run.
a checkpoint folder
    Resume from it; it must be complete.  A ``config.yaml`` with other settings beside
    it is announced, not refused (the user chose that checkpoint).

>>> config_differences({"train": {"max_steps": 4, "seed": 0, "save_steps": 2}},
...                    {"train": {"max_steps": 6, "seed": 0, "save_steps": 5}})
['train.max_steps: 4 -> 6']
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..config import to_dict
from ..config.compare import differences
from ..errors import MedgroundError
from ..models.checkpoints import checkpoint_problems, checkpoint_step, latest_complete_checkpoint

CONFIG_FILE = "config.yaml"
#: Settings a rerun may change without making it another run (prefixes end with ".").
RERUN_KEYS = ("train.resume", "train.output_dir", "train.logging_steps", "train.save_steps", "train.save_total_limit",
              "train.report_to", "train.dataloader_num_workers", "grpo.log_completions",
              "grpo.num_completions_to_print", "eval.")
#: Settings that name files: equal when they name the same file, however written.
PATH_KEYS = ("model.path", "data.train", "data.val")
#: What a run writes into its folder besides ``checkpoint-N`` (removed when a run starts over).
PREVIOUS_OUTPUTS = ("final", "trainer_state.json", "training_curves.png", "val_completions.jsonl", "completions")
NEVER = ("never", "no", "false", "none", "")


def say(message: str) -> None:
    """A line for the user on stderr (what a run decided and why); in a distributed run,
    from the main process only."""
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"[train {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@dataclass
class RunPlan:
    """What :func:`start_run` will do: resume from ``checkpoint`` (None: from the start),
    after removing ``remove``; ``notes`` are said first."""

    output_dir: Path
    checkpoint: Path | None = None
    remove: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def plan_run(cfg) -> RunPlan:
    """Decide how the run of ``cfg`` uses its folder (see the module docstring); no side
    effects, so it can run before the model loads.  Raises :class:`MedgroundError` for a
    folder made with other settings (``resume: auto``) or an incomplete checkpoint given
    by path."""
    out = Path(cfg.train.output_dir)
    spec = (cfg.train.resume or "auto").strip()
    plan = RunPlan(out)
    previous = previous_outputs(out)
    if spec.lower() in NEVER:
        if previous:
            plan.remove = previous
            plan.notes.append(f"train.resume is never: starting over in {out}, removing the previous run's "
                              + ", ".join(p.name for p in previous))
        return plan
    if spec.lower() != "auto":
        ckpt = Path(spec)
        if not ckpt.is_dir():
            raise MedgroundError(f"train.resume: checkpoint folder {spec} not found")
        problems = checkpoint_problems(ckpt)
        if problems:
            raise MedgroundError(f"train.resume: cannot resume from {ckpt}: {problems[0]}")
        diffs = _differences_from_saved(ckpt.parent / CONFIG_FILE, cfg)
        if diffs:
            plan.notes.append(f"{ckpt.parent / CONFIG_FILE} was written with other settings ({'; '.join(diffs)}); "
                              f"resuming from {ckpt} as asked")
        plan.checkpoint = ckpt
        plan.notes.append(resume_line(ckpt))
        return plan
    if not previous:
        return plan
    saved = out / CONFIG_FILE
    diffs = _differences_from_saved(saved, cfg)
    if diffs:
        raise MedgroundError(
            f"{out} holds a run made with other settings ({saved}): {'; '.join(diffs)}. Rerun with its settings to "
            f"resume it, pass --train.resume never to start over (its checkpoints and final/ are removed), or "
            f"choose another --train.output_dir")
    if not saved.exists():
        plan.notes.append(f"{out} has no {CONFIG_FILE}: cannot check that its checkpoints were made with these "
                          "settings; resuming anyway")
    choice = latest_complete_checkpoint(out)
    plan.notes += [f"skipping {p.name}: {why}" for p, why in choice.skipped]
    if choice.path is not None:
        plan.checkpoint = choice.path
        plan.notes.append(resume_line(choice.path))
    elif choice.skipped:
        plan.notes.append("no complete checkpoint to resume from: starting from step 0")
    return plan


def start_run(plan: RunPlan) -> str | None:
    """Carry out ``plan`` (remove, then say the notes); the checkpoint to resume from."""
    for p in plan.remove:
        shutil.rmtree(p) if p.is_dir() else p.unlink(missing_ok=True)
    for note in plan.notes:
        say(note)
    return str(plan.checkpoint) if plan.checkpoint is not None else None


def previous_outputs(out: Path) -> list[Path]:
    """The checkpoints and :data:`PREVIOUS_OUTPUTS` of an earlier run in ``out``; [] when
    it holds nothing a rerun could reuse (no checkpoint and no ``final/``)."""
    if not out.is_dir():
        return []
    checkpoints = sorted((p for p in out.iterdir() if p.is_dir() and checkpoint_step(p) is not None),
                         key=checkpoint_step)
    if not checkpoints and not (out / "final").exists():
        return []
    return checkpoints + [out / name for name in PREVIOUS_OUTPUTS if (out / name).exists()]


def resume_line(checkpoint: Path) -> str:
    """``resuming from checkpoint-4 (step 4 of 10)`` (the total from its trainer state)."""
    step, total = checkpoint_step(checkpoint), None
    try:
        state = json.loads((checkpoint / "trainer_state.json").read_text(encoding="utf-8"))
        step, total = int(state.get("global_step", step)), state.get("max_steps")
    except (OSError, ValueError, TypeError):
        pass
    of = f" of {total}" if isinstance(total, int) and total > 0 else ""
    return f"resuming from {checkpoint.name} (step {step}{of})"


def _differences_from_saved(saved: Path, cfg) -> list[str]:
    if not saved.exists():
        return []
    try:
        old = yaml.safe_load(saved.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise MedgroundError(f"{saved}: cannot read the settings of the previous run ({exc})") from None
    if not isinstance(old, dict):
        raise MedgroundError(f"{saved}: not a run config (a mapping of sections)")
    return config_differences(old, to_dict(cfg))


# --------------------------------------------------------------------------- pure helpers


def _same_path(key: str, a, b) -> bool:
    if key not in PATH_KEYS or not a or not b:
        return False
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def config_differences(saved: dict, current: dict) -> list[str]:
    """``"key: old -> new"`` for every setting that differs between two run configs
    (sections compared field by field; :data:`RERUN_KEYS` ignored, :data:`PATH_KEYS`
    compared as files; a key only one side has — a field added or removed by another
    medground version — is ignored)."""
    return differences(saved, current, depth=1, ignore=RERUN_KEYS, one_sided=False, same=_same_path)
