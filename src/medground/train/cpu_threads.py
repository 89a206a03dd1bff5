"""Torch CPU threads that give way to other work on the machine.

A laptop is rarely idle.  With every core in torch's thread pool, one other busy process
makes each parallel region wait for a core that is taken: the demo's GRPO steps slowed
several-fold with OpenMP's spinning waits, and by about 1.4x with passive ones.  When
:func:`enable` has been called (``medground demo`` with ``threads: 0`` does), every trainer
gets :class:`AdaptiveThreads`: at each step it measures how many cores *other* processes
kept busy since the previous step (the machine's busy time from ``/proc/stat`` minus this
process's own CPU time) and runs the next step on the cores left, at least one.  On a quiet
machine that is every core, as before.

>>> free_cores(busy=3.0, own=2.0, wall=1.0, cores=2)   # another process kept one core busy
1
>>> free_cores(busy=1.9, own=1.9, wall=1.0, cores=2)   # only we were running
2
"""

from __future__ import annotations

import os
import time

_ENABLED: dict[str, int] = {}


def enable(cores: int) -> None:
    """Give every trainer built from now on an :class:`AdaptiveThreads` over ``cores``."""
    _ENABLED["cores"] = int(cores)


def disable() -> None:
    _ENABLED.clear()


def free_cores(*, busy: float, own: float, wall: float, cores: int) -> int:
    """Cores left for us: ``cores`` minus the cores other processes kept busy over ``wall``
    seconds (``busy``: the machine's busy CPU seconds, ``own``: ours), rounded, at least 1."""
    others = max(0.0, busy - own) / max(wall, 1e-6)
    return max(1, min(cores, cores - int(others + 0.5)))


def machine_busy_seconds(path: str = "/proc/stat") -> float | None:
    """CPU seconds the whole machine spent busy since boot (None where ``/proc/stat`` is missing)."""
    try:
        with open(path) as fh:
            fields = [float(x) for x in fh.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)  # idle + iowait
    return (sum(fields[:8]) - idle) / ticks


def own_cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


def adaptive_threads_callback():
    """An :class:`AdaptiveThreads` trainer callback when :func:`enable` was called and
    ``/proc/stat`` exists, else None."""
    if not _ENABLED or machine_busy_seconds() is None:
        return None
    return AdaptiveThreads(_ENABLED["cores"])


class AdaptiveThreads:
    """Trainer callback (transformers' ``TrainerCallback`` protocol): before each step,
    ``torch.set_num_threads`` to the cores other processes left free during the previous
    step (see the module docstring).  Imports nothing heavy, so that :func:`enable` can run
    before torch is imported."""

    def __init__(self, cores: int, *, busy=machine_busy_seconds, own=own_cpu_seconds, clock=time.monotonic):
        self.cores, self._busy, self._own, self._clock = cores, busy, own, clock
        self._last = None
        self.history: list[int] = []

    def __getattr__(self, name: str):
        if name.startswith("on_"):  # every other TrainerCallback event: nothing to do
            return lambda *args, **kwargs: None
        raise AttributeError(name)

    def _sample(self):
        return self._busy(), self._own(), self._clock()

    def on_step_begin(self, args, state, control, **kwargs):
        import torch

        now = self._sample()
        if self._last is not None and now[0] is not None and self._last[0] is not None:
            n = free_cores(busy=now[0] - self._last[0], own=now[1] - self._last[1], wall=now[2] - self._last[2],
                           cores=self.cores)
            if n != torch.get_num_threads():
                torch.set_num_threads(n)
            self.history.append(n)
        self._last = now
