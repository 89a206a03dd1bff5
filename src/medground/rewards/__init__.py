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
reward module, so all names are registered.
"""

from __future__ import annotations

from . import grounding, mask_dice, medground_r1, medreasoner, semantic, sets  # noqa: F401  (registration)
from .base import Reward
from .registry import REWARDS, available, get, register, spec

__all__ = ["REWARDS", "Reward", "available", "get", "register", "spec"]
