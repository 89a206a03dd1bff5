"""Name -> reward factory registry.

A reward module registers a factory::

    from medground.rewards.registry import register

    @register("iou", description="IoU of the answer box with the truth", options={"threshold": "..."})
    def iou(threshold=0.5, **options):
        return Reward(...)

and users build callables with ``medground.rewards.get("iou", threshold=0.7)``.  The
callable's ``__name__`` (what TRL logs the reward under) is the registered name plus a
suffix of the options that change its value, so two variants in one run log apart.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from ..errors import MedgroundError


@dataclass(frozen=True)
class RewardSpec:
    """A registered reward: its name, one-line description, options and factory."""

    name: str
    description: str
    options: dict[str, str] = field(default_factory=dict)
    factory: Callable = field(default=None, repr=False, compare=False)


_REGISTRY: dict[str, RewardSpec] = {}

# Options that never change what a reward computes, so they stay out of its name.
_SILENT = {"encoder", "frame", "min_pixels", "max_pixels", "batch_size", "device", "gt_column", "text_column"}


def register(name: str, *, description: str, options: dict[str, str] | None = None):
    """Decorator registering ``factory(**options) -> callable`` under ``name``."""
    if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
        raise ValueError(f"reward name {name!r} must be lower_snake_case")

    def deco(factory: Callable) -> Callable:
        existing = _REGISTRY.get(name)
        if existing is not None and existing.factory is not factory and getattr(existing.factory, "__qualname__", None) != getattr(factory, "__qualname__", None):
            raise ValueError(f"reward {name!r} is already registered by {existing.factory.__module__}")
        _REGISTRY[name] = RewardSpec(name, description.strip(), dict(options or {}), factory)
        return factory

    return deco


def available() -> list[RewardSpec]:
    """Every registered reward, sorted by name."""
    return [_REGISTRY[k] for k in sorted(_REGISTRY)]


def spec(name: str) -> RewardSpec:
    if name not in _REGISTRY:
        close = difflib.get_close_matches(name, list(_REGISTRY), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise MedgroundError(f"unknown reward {name!r}{hint} (see `medground rewards list`)")
    return _REGISTRY[name]


def _suffix(options: dict) -> str:
    parts = []
    for key in sorted(options):
        if key in _SILENT:
            continue
        value = options[key]
        if isinstance(value, bool):
            text = key if value else f"no_{key}"
        elif isinstance(value, (int, float, str)) or value is None:
            text = f"{key}{value}"
        else:
            continue
        parts.append(re.sub(r"[^A-Za-z0-9_.]+", "", text))
    return "_".join(p for p in parts if p)


def get(name: str, **options):
    """Build reward ``name`` with ``options``; unknown options raise :class:`MedgroundError`."""
    s = spec(name)
    unknown = sorted(set(options) - set(s.options))
    if unknown:
        raise MedgroundError(
            f"reward {name!r} has no option(s) {', '.join(unknown)}; options: {', '.join(sorted(s.options)) or 'none'}"
        )
    fn = s.factory(**options)
    suffix = _suffix(options)
    display = f"{name}_{suffix}" if suffix else name
    try:
        fn.__name__ = display
    except (AttributeError, TypeError):
        pass
    return fn
