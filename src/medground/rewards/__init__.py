"""Reward functions for GRPO with TRL's signature, by name.

>>> from medground import rewards
>>> f = rewards.get("iou", threshold=0.7, frame="norm1000")
>>> f.__name__
'iou_threshold0.7'
>>> f(completions=[[{"role": "assistant", "content": "<answer>[0, 0, 500, 500]</answer>"}]],
...   boxes=[[[0, 0, 100, 100]]], width=[200], height=[200])
[1.0]

Every reward is an instance of a picklable class (:class:`~medground.rewards.base.Reward`).
``available()`` lists every registered reward (``medground rewards list`` prints it),
``spec(name)`` gives one's registry entry (description and options), ``register`` adds
one (see :mod:`medground.rewards.registry`).  Importing this package imports every
module in it, and each reward module registers its rewards: adding a reward is one file.
"""

from __future__ import annotations

import importlib
import pkgutil

from .base import Reward
from .registry import REWARDS, available, get, register, spec

for _mod in pkgutil.iter_modules(__path__):  # each reward module registers its rewards
    if _mod.name not in ("base", "registry"):
        importlib.import_module(f"{__name__}.{_mod.name}")

__all__ = ["REWARDS", "Reward", "available", "get", "register", "spec"]
