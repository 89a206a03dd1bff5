"""Data-parallel work over processes: which shard of the samples a process takes,
where it writes its part, and merging the parts into one file.

A launcher (``accelerate launch --num_processes N``, ``torchrun``, SLURM) starts N
copies of one command and tells each its ``RANK`` and ``WORLD_SIZE``; each takes every
N-th item (:meth:`Shard.take`), writes its own part beside the output
(:func:`part_path`), and the process that finds every part complete merges them, in the
original order, into the output with one atomic write (:func:`merge_parts`).  Parts are
only read by the other processes, never rewritten, so a process still writing its part is
never disturbed; an interrupted shard resumes from its own part when the same command is
run again.

>>> import json, tempfile, pathlib
>>> out = pathlib.Path(tempfile.mkdtemp()) / "pred.jsonl"
>>> ids = ["a", "b", "c"]
>>> for shard in (Shard(0, 2), Shard(1, 2)):
...     part = part_path(out, shard)
...     _ = part.write_text("".join(json.dumps({"id": i}) + "\\n" for i in shard.take(ids)))
>>> part_path(out, Shard(1, 2)).name
'pred.part-1-of-2.jsonl'
>>> merge_parts(out, [part_path(out, s) for s in (Shard(0, 2), Shard(1, 2))], ids)
True
>>> [json.loads(x)["id"] for x in out.read_text().splitlines()]
['a', 'b', 'c']
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from .errors import MedgroundError
from .fileio import atomic_write

T = TypeVar("T")


@dataclass(frozen=True)
class Shard:
    """Process ``rank`` of ``world``."""

    rank: int = 0
    world: int = 1

    def take(self, items: Sequence[T]) -> list[T]:
        """This process's items: every ``world``-th one from ``rank`` (disjoint, together all).

        >>> Shard(1, 3).take(list(range(8)))
        [1, 4, 7]
        """
        return list(items[self.rank::self.world])

    @property
    def parallel(self) -> bool:
        return self.world > 1


def current_shard(env: Mapping[str, str] | None = None) -> Shard:
    """The shard of this process from ``RANK`` / ``WORLD_SIZE`` (set by ``accelerate
    launch`` and ``torchrun``); ``Shard(0, 1)`` when they are absent.

    >>> current_shard({"RANK": "1", "WORLD_SIZE": "2"})
    Shard(rank=1, world=2)
    >>> current_shard({})
    Shard(rank=0, world=1)
    """
    env = os.environ if env is None else env
    try:
        world = int(env.get("WORLD_SIZE", "1") or 1)
        rank = int(env.get("RANK", "0") or 0)
    except ValueError:
        raise MedgroundError(f"RANK={env.get('RANK')!r} / WORLD_SIZE={env.get('WORLD_SIZE')!r} are not integers") \
            from None
    if world < 1 or not 0 <= rank < world:
        raise MedgroundError(f"RANK={rank} does not fit WORLD_SIZE={world}")
    return Shard(rank, world)


def local_device(device: str | None, env: Mapping[str, str] | None = None) -> str | None:
    """The device a process of a data-parallel run uses: ``auto`` becomes ``cuda:LOCAL_RANK``
    when the launcher set ``LOCAL_RANK`` for several processes and a GPU is there (one GPU
    per process); anything else is returned unchanged.

    >>> local_device("cpu", {"LOCAL_RANK": "1", "WORLD_SIZE": "2"})
    'cpu'
    """
    env = os.environ if env is None else env
    if device not in (None, "", "auto") or int(env.get("WORLD_SIZE", "1") or 1) < 2 or "LOCAL_RANK" not in env:
        return device
    import torch

    return f"cuda:{int(env['LOCAL_RANK'])}" if torch.cuda.is_available() else device


def part_path(out: str | os.PathLike, shard: Shard) -> Path:
    """Where ``shard`` writes its part of ``out``: ``NAME.part-R-of-N.SUFFIX`` beside it."""
    out = Path(out)
    return out.with_name(f"{out.stem}.part-{shard.rank}-of-{shard.world}{out.suffix}")


def read_part(path: str | os.PathLike) -> dict[str, bytes]:
    """``id -> line`` of a JSONL part, read only (a line cut short by a process still
    writing or interrupted is skipped; a later line for the same id wins)."""
    p = Path(path)
    if not p.exists():
        return {}
    done: dict[str, bytes] = {}
    for line in p.read_bytes().split(b"\n"):
        if not line.strip():
            continue
        try:
            done[str(json.loads(line)["id"])] = line
        except (json.JSONDecodeError, KeyError, TypeError):
            continue
    return done


def merge_parts(out: str | os.PathLike, parts: Sequence[str | os.PathLike], order: Sequence[str]) -> bool:
    """Write ``out`` from ``parts`` with one line per id of ``order``, in that order, when
    every id is in some part (returns True); leave it alone otherwise (False)."""
    lines: dict[str, bytes] = {}
    for part in parts:
        lines.update(read_part(part))
    if any(sid not in lines for sid in order):
        return False
    atomic_write(out, b"".join(lines[sid] + b"\n" for sid in order))
    return True
