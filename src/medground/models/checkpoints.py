"""Is a checkpoint folder complete?  Checked before anything loads it.

A run killed while it saved leaves a half-written ``checkpoint-N``; a copy cut short
leaves a truncated ``model.safetensors``.  Loading either fails deep inside a library
(``SafetensorError: incomplete metadata``) without naming the file.  These checks read
only headers and file lengths, name the file and say what is wrong:

* :func:`safetensors_problem` — the 8-byte header length, the JSON header, and the file
  length the header's tensor offsets imply;
* :func:`weights_problems` — a model or adapter folder: its ``config.json`` /
  ``adapter_config.json`` and every weights file (shards of an index included);
* :func:`checkpoint_problems` — a trainer checkpoint: the weights, ``trainer_state.json``
  (written last by the trainer) and the optimiser / scheduler / RNG files;
* :func:`latest_complete_checkpoint` — the newest ``checkpoint-N`` of a run folder that
  passes, with the reason each newer one was skipped.

>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> _ = (d / "model.safetensors").write_bytes((100).to_bytes(8, "little") + b"{}")
>>> safetensors_problem(d / "model.safetensors")
'truncated: its header is 100 bytes long but only 2 follow'
"""

from __future__ import annotations

import json
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import MedgroundError

CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")
MAX_HEADER_BYTES = 100 * 1024 * 1024  # what the safetensors library accepts
#: Files a trainer checkpoint may hold besides the weights, saved with ``torch.save`` (zip archives).
TRAINER_FILES = ("optimizer.pt", "scheduler.pt", "scaler.pt")
TRAINER_STATE = "trainer_state.json"


def safetensors_problem(path) -> str | None:
    """Why the ``.safetensors`` file at ``path`` cannot load (None when its header parses
    and the file is as long as the header says); reads the header only."""
    p = Path(path)
    try:
        size = p.stat().st_size
        with p.open("rb") as fh:
            head = fh.read(8)
            if len(head) < 8:
                return f"truncated: {size} bytes, shorter than the 8-byte header length"
            n = int.from_bytes(head, "little")
            if n > MAX_HEADER_BYTES:
                return f"not a safetensors file (header length {n} bytes)"
            if n > size - 8:
                return f"truncated: its header is {n} bytes long but only {size - 8} follow"
            raw = fh.read(n)
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    try:
        header = json.loads(raw)
        ends = [int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"]
    except (ValueError, TypeError, KeyError, IndexError, AttributeError):
        return "its header is not valid safetensors metadata"
    expected = 8 + n + max(ends, default=0)
    if size < expected:
        return f"truncated: {size} bytes, its header describes {expected}"
    if size > expected:
        return f"{size} bytes, but its header describes {expected} (not a complete safetensors file)"
    return None


def _json_problem(path: Path) -> str | None:
    try:
        json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        return f"{path.name} cannot be read ({exc})"
    except ValueError as exc:
        return f"{path.name} is not valid JSON ({exc})"
    return None


def _zip_problem(path: Path) -> str | None:
    try:
        with zipfile.ZipFile(path):
            return None
    except (zipfile.BadZipFile, OSError):
        return "incomplete (not a readable torch.save archive)"


def weights_problems(folder) -> list[str]:
    """What keeps the model or adapter in ``folder`` from loading, one message per file
    (``"FILE: problem"``); empty when complete.  Only files the folder uses are checked:
    the shards an index names, else every ``*.safetensors``."""
    d = Path(folder)
    out = []
    configs = [d / name for name in ("config.json", "adapter_config.json") if (d / name).exists()]
    if not configs:
        out.append(f"{d}: not a model checkpoint (no config.json or adapter_config.json)")
    out += [f"{c}: {msg}" for c in configs if (msg := _json_problem(c))]
    index = d / "model.safetensors.index.json"
    if index.exists():
        try:
            shards = sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()))
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return out + [f"{index}: not a valid safetensors index"]
        files = [d / s for s in shards]
        out += [f"{f}: missing (named by {index.name})" for f in files if not f.exists()]
        files = [f for f in files if f.exists()]
    else:
        files = sorted(d.glob("*.safetensors"))
        legacy = [f for f in (d / "pytorch_model.bin", d / "adapter_model.bin") if f.exists()]
        if not files and not legacy and configs:
            out.append(f"{d}: no weights file (model.safetensors)")
        out += [f"{f}: {msg}" for f in legacy if (msg := _zip_problem(f))]
    out += [f"{f}: {msg}" for f in files if (msg := safetensors_problem(f))]
    return out


def require_complete_weights(folder) -> None:
    """Raise :class:`MedgroundError` naming the first incomplete file of ``folder``."""
    problems = weights_problems(folder)
    if problems:
        more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
        raise MedgroundError(problems[0] + more)


def checkpoint_problems(folder) -> list[str]:
    """What keeps a trainer checkpoint from resuming (see the module docstring); empty when complete."""
    d = Path(folder)
    out = weights_problems(d)
    state = d / TRAINER_STATE
    if not state.exists():
        out.append(f"{state}: missing (the trainer writes it last, so the save did not finish)")
    else:
        try:
            step = json.loads(state.read_text(encoding="utf-8"))["global_step"]
            if not isinstance(step, int):
                raise TypeError(step)
        except (OSError, ValueError, KeyError, TypeError):
            out.append(f"{state}: incomplete or not a trainer state")
    for name in TRAINER_FILES:
        if (d / name).exists() and (msg := _zip_problem(d / name)):
            out.append(f"{d / name}: {msg}")
    for rng in sorted(d.glob("rng_state*.pth")):
        if msg := _zip_problem(rng):
            out.append(f"{rng}: {msg}")
    return out


def checkpoint_step(path) -> int | None:
    """``N`` of a ``checkpoint-N`` folder name (None for any other name)."""
    m = CHECKPOINT_RE.match(Path(path).name)
    return int(m.group(1)) if m else None


@dataclass
class CheckpointChoice:
    """The newest complete checkpoint of a run folder (None: none), and the newer ones
    skipped with their reasons."""

    path: Path | None = None
    skipped: list[tuple[Path, str]] = field(default_factory=list)

    @property
    def step(self) -> int | None:
        return checkpoint_step(self.path) if self.path is not None else None


def latest_complete_checkpoint(run_dir) -> CheckpointChoice:
    """The newest ``checkpoint-N`` of ``run_dir`` that :func:`checkpoint_problems` passes."""
    d = Path(run_dir)
    found = sorted((p for p in d.iterdir() if p.is_dir() and checkpoint_step(p) is not None),
                   key=checkpoint_step, reverse=True) if d.is_dir() else []
    choice = CheckpointChoice()
    for p in found:
        problems = checkpoint_problems(p)
        if not problems:
            choice.path = p
            break
        choice.skipped.append((p, problems[0]))
    return choice
