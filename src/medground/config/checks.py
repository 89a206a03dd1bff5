"""Checks for a config's ``__post_init__``, and the error they raise.

A config dataclass checks the fields that relate to each other in ``__post_init__``
and raises :class:`ConfigError` naming them; the loader adds the section
(``grpo.vllm_mode``) and the file and line the value came from.

>>> from dataclasses import dataclass
>>> @dataclass
... class Sampling:
...     mode: str = "colocate"
...     temperature: float = 1.0
...     def __post_init__(self):
...         check_choice(self, "mode", ("colocate", "server"))
...         check_range(self, "temperature", low=0, low_open=True)
>>> Sampling(mode="remote")
Traceback (most recent call last):
  ...
medground.config.checks.ConfigError: mode: must be one of colocate, server; got 'remote'
>>> Sampling(temperature=0)
Traceback (most recent call last):
  ...
medground.config.checks.ConfigError: temperature: must be > 0; got 0
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from ..errors import MedgroundError


class ConfigError(MedgroundError):
    """A bad value or combination of values; ``fields`` names them (``grpo.vllm_mode``).

    Raised by ``__post_init__`` checks with the field names of that dataclass; the
    loader qualifies them with the section and adds the file and line."""

    def __init__(self, fields: str | Iterable[str], reason: str, *, where: str = "", named: bool = True):
        self.fields = (fields,) if isinstance(fields, str) else tuple(fields)
        self.reason = reason
        self.where = where
        self.named = named  # False: ``reason`` already names the field
        text = f"{', '.join(self.fields)}: {reason}" if named else reason
        super().__init__(f"{where}: {text}" if where else text)

    def within(self, section: str) -> ConfigError:
        """The same error with the field names qualified by ``section``."""
        if not section:
            return self
        return ConfigError([f"{section}.{f}" for f in self.fields], self.reason, named=self.named)

    def at(self, where: str) -> ConfigError:
        """The same error located at ``where`` (``FILE:LINE``)."""
        return ConfigError(self.fields, self.reason, where=where, named=self.named)


# --------------------------------------------------------------------------- checks (for __post_init__)


def check_choice(cfg, name: str, choices: Iterable[Any]) -> None:
    """Raise :class:`ConfigError` unless ``cfg.<name>`` is one of ``choices``."""
    choices = list(choices)
    value = getattr(cfg, name)
    if value not in choices:
        raise ConfigError(name, f"must be one of {', '.join(map(str, choices))}; got {value!r}")


def check_range(cfg, *names: str, low=None, high=None, low_open: bool = False, high_open: bool = False) -> None:
    """Raise :class:`ConfigError` unless every ``cfg.<name>`` (``None`` is skipped) lies in
    the range ``low``..``high`` (closed unless ``low_open`` / ``high_open``); ``inf`` and
    ``nan`` lie in no range."""
    for name in names:
        value = getattr(cfg, name)
        if value is None:
            continue
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(name, f"must be a finite number; got {value!r}")
        ok = low is None or (value > low if low_open else value >= low)
        ok = ok and (high is None or (value < high if high_open else value <= high))
        if not ok:
            raise ConfigError(name, f"must be {_range_text(low, high, low_open, high_open)}; got {value!r}")


def _range_text(low, high, low_open, high_open) -> str:
    if high is None:
        return f"{'>' if low_open else '>='} {low}"
    if low is None:
        return f"{'<' if high_open else '<='} {high}"
    return f"in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
