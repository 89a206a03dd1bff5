"""Reward names, on the generic :class:`medground.registry.Registry`.

A reward module registers its reward class with the options it takes.  Each option is
an :class:`~medground.registry.Option` declared once, where the reward is registered:
its help text, and whether it changes what the reward computes.  The option's default is read from the class's
constructor, and an ``Args:`` section listing every option is written into the class
docstring, so ``help(IoUReward)``, ``medground rewards list`` and the docs show one text::

    @register("iou", description="...", options={"threshold": Option("IoU above which ..."), **FRAME_OPTIONS})
    class IoUReward(GuardedReward):
        def __init__(self, threshold: float = 0.5, **options): ...

``get(name, **options)`` builds one.  Its ``__name__`` (what TRL logs the reward under)
is the registered name plus the options that change its value, so two variants in
one run log apart; options with ``changes_result=False`` (a frame, a device, a column
name) leave the name alone.

>>> from medground.rewards import get, spec
>>> r = get("iou", threshold=0.7, frame="norm1000")
>>> r.__name__
'iou_threshold0.7'
>>> spec("iou").options["threshold"].default
0.5
"""

from __future__ import annotations

import dataclasses
import inspect
import re
from collections.abc import Callable, Mapping

from ..registry import Entry, Option, Registry

REWARDS = Registry("reward", hint="see `medground rewards list`")

_NAME_RE = re.compile(r"[a-z][a-z0-9_]*")


def register(name: str, *, description: str, options: Mapping[str, Option | str] | None = None):
    """Decorator registering a reward class (or a factory ``f(**options) -> callable``)
    under ``name``; ``options`` maps each option to its :class:`Option` (a plain string
    is its help text).  Raises ``ValueError`` for a name that is not lower_snake_case,
    an option the constructor does not take, or a stated default that differs from
    the constructor's."""
    if not _NAME_RE.fullmatch(name):
        raise ValueError(f"reward name {name!r} must be lower_snake_case")

    def deco(target: Callable) -> Callable:
        opts = _with_defaults(name, target, {k: Option(v) if isinstance(v, str) else v for k, v in (options or {}).items()})
        _document(target, opts)
        REWARDS.register(name, target, description=description.strip(), options=opts)
        return target

    return deco


def get(name: str, **options):
    """Reward ``name`` built with ``options``; an unknown name or option raises
    :class:`~medground.errors.MedgroundError` (with close matches)."""
    reward = REWARDS.build(name, **options)
    entry = REWARDS.entry(name)
    suffix = _suffix(options, entry.options)
    try:
        reward.__name__ = f"{entry.name}_{suffix}" if suffix else entry.name
    except (AttributeError, TypeError):
        pass
    return reward


def available() -> list[Entry]:
    """Every registered reward (its :class:`~medground.registry.Entry`), sorted by name."""
    return REWARDS.entries()


def spec(name: str) -> Entry:
    """The registry entry of reward ``name``: ``name``, ``description``, ``options``."""
    return REWARDS.entry(name)


# --------------------------------------------------------------------------- helpers


def _suffix(given: Mapping, options: Mapping[str, Option]) -> str:
    """``key value`` of the given options that change the result, sorted, joined by ``_``."""
    parts = []
    for key in sorted(given):
        if not options[key].changes_result:
            continue
        value = given[key]
        if isinstance(value, bool):
            text = key if value else f"no_{key}"
        elif isinstance(value, (int, float, str)) or value is None:
            text = f"{key}{value}"
        else:
            continue
        parts.append(re.sub(r"[^A-Za-z0-9_.]+", "", text))
    return "_".join(p for p in parts if p)


def _constructors(target) -> list[Callable]:
    """The callables whose parameters a reward takes: a class's ``__init__``, then those
    of its bases for as long as each passes ``**options`` on; or the factory itself."""
    if not isinstance(target, type):
        return [target]
    out = []
    for klass in target.__mro__[:-1]:  # not object
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        out.append(init)
        if not any(p.kind == p.VAR_KEYWORD for p in inspect.signature(init).parameters.values()):
            break
    return out


def _with_defaults(name: str, target, options: dict[str, Option]) -> dict[str, Option]:
    """``options`` with each default read from the constructor's signature."""
    params: dict[str, inspect.Parameter] = {}
    for fn in _constructors(target):
        for p in inspect.signature(fn).parameters.values():
            if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL) and p.name != "self":
                params.setdefault(p.name, p)
    out = {}
    for key, opt in options.items():
        if key not in params:
            raise ValueError(f"reward {name!r} documents option {key!r}, which its constructor does not take")
        default = params[key].default
        default = None if default is inspect.Parameter.empty else default
        if opt.default is not None and opt.default != default:
            raise ValueError(f"reward {name!r}: option {key!r} states default {opt.default!r}, the constructor {default!r}")
        out[key] = dataclasses.replace(opt, default=default)
    return out


def _document(target, options: Mapping[str, Option]) -> None:
    """Write an ``Args:`` section listing ``options`` into the target's docstring,
    before its ``Returns:`` section (unless the docstring has one already)."""
    if not target.__doc__ or not options:
        return
    lines = inspect.cleandoc(target.__doc__).splitlines()
    if any(line.strip() == "Args:" for line in lines):
        return
    args = ["Args:"] + [f"    {key} (default ``{opt.default!r}``): {opt.help}" for key, opt in options.items()] + [""]
    at = next((i for i, line in enumerate(lines) if line.strip() == "Returns:"), len(lines))
    target.__doc__ = "\n".join(lines[:at] + args + lines[at:])
