"""One small generic registry: a name maps to an entry (an object, or a lazy
``"module:attr"`` reference), with a description and documented options.

medground keeps one :class:`Registry` per kind of thing a user picks by name —
rewards, dataset converters, exporters, segmenters, prompt templates, evaluation
readers and model families — so that adding one touches one file: the module that
defines it calls ``REGISTRY.register(...)`` (or the table lists it lazily).

>>> colours = Registry("colour", hint="see `colours list`")
>>> @colours.register("red", description="a warm colour", options={"shade": Option("how dark", default=0)})
... def red(shade=0):
...     return f"red/{shade}"
>>> colours.build("red", shade=2)
'red/2'
>>> colours.register("blue", "medground.geometry:PIXELS", description="a lazy entry")
'medground.geometry:PIXELS'
>>> colours.get("blue").name
'pixels'
>>> colours.get("rde")
Traceback (most recent call last):
  ...
medground.errors.MedgroundError: unknown colour 'rde'; did you mean red? (see `colours list`)

Names are matched case-insensitively, surrounding spaces ignored.  Registering a
second, different object under a taken name raises ``ValueError`` (a programming
error); re-registering the same function (a module imported twice) is allowed.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import MedgroundError

_UNSET = object()


@dataclass(frozen=True)
class Option:
    """One documented option of an entry.

    ``help``            what the option does (shown by the CLI's ``list`` commands and in docs);
    ``default``         its default (informational for entries whose factory has its own);
    ``changes_result``  False for options that never change what the entry computes (a
                        device, a batch size, where a file is): rewards leave those out of
                        the name TRL logs them under.
    """

    help: str
    default: Any = None
    changes_result: bool = True


@dataclass(frozen=True)
class Entry:
    """A registered name: its target (an object or ``"module:attr"``), description and options."""

    name: str
    target: Any = field(repr=False)
    description: str = ""
    options: Mapping[str, Option] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()

    @property
    def lazy(self) -> bool:
        return isinstance(self.target, str)

    def load(self) -> Any:
        """The registered object (imported on first use for a lazy entry)."""
        if not self.lazy:
            return self.target
        module, _, attr = self.target.partition(":")
        obj = importlib.import_module(module)
        for part in attr.split(".") if attr else ():
            obj = getattr(obj, part)
        return obj

    def check_options(self, given: Mapping[str, Any], kind: str) -> None:
        """Raise :class:`MedgroundError` naming any option this entry does not take."""
        unknown = sorted(set(given) - set(self.options))
        if unknown:
            known = ", ".join(sorted(self.options)) or "none"
            raise MedgroundError(f"{kind} {self.name!r} has no option(s) {', '.join(unknown)}; options: {known}")


def _options(options: Mapping[str, Option | str] | None) -> dict[str, Option]:
    return {k: v if isinstance(v, Option) else Option(str(v)) for k, v in (options or {}).items()}


def _identity(target: Any) -> Any:
    """What makes two registrations "the same": the lazy path, or module + qualname."""
    if isinstance(target, str):
        return target
    return (getattr(target, "__module__", None), getattr(target, "__qualname__", None)) if hasattr(
        target, "__qualname__") else id(target)


class Registry:
    """Name -> :class:`Entry` for one kind of thing (``kind`` names it in messages;
    ``hint`` says where the user finds the list, e.g. ``"see `medground rewards list`"``)."""

    def __init__(self, kind: str, *, hint: str = ""):
        self.kind = kind
        self.hint = hint
        self._entries: dict[str, Entry] = {}
        self._aliases: dict[str, str] = {}

    # ---------------------------------------------------------------- registering

    def register(self, name: str, target: Any = _UNSET, *, description: str = "",
                 options: Mapping[str, Option | str] | None = None, aliases: tuple[str, ...] = ()):
        """Register ``target`` under ``name``; without ``target``, a decorator.

        ``target`` may be any object or a lazy ``"module:attr"`` string."""

        def add(obj: Any) -> Any:
            key = self._key(name)
            old = self._entries.get(key)
            if old is not None and _identity(old.target) != _identity(obj):
                where = old.target if old.lazy else getattr(old.target, "__module__", "?")
                raise ValueError(f"{self.kind} {key!r} is already registered (by {where})")
            if not description and not isinstance(obj, str):  # default: the first line of the docstring
                doc = (obj.__doc__ or "").strip().split("\n")[0]
            else:
                doc = description
            self._entries[key] = Entry(key, obj, " ".join(doc.split()), _options(options), tuple(aliases))
            for alias in aliases:
                self._aliases[self._key(alias)] = key
            return obj

        return add if target is _UNSET else add(target)

    # ---------------------------------------------------------------- looking up

    @staticmethod
    def _key(name: str) -> str:
        return str(name).strip().lower()

    def entry(self, name: str) -> Entry:
        """The entry called ``name`` (or an alias); an unknown name raises
        :class:`MedgroundError` with close matches and the list hint."""
        key = self._key(name)
        key = self._aliases.get(key, key)
        if key in self._entries:
            return self._entries[key]
        close = difflib.get_close_matches(key, [*self._entries, *self._aliases], n=3)
        msg = f"unknown {self.kind} {name!r}"
        msg += f"; did you mean {', '.join(close)}?" if close else f"; choose one of {', '.join(self.names())}"
        raise MedgroundError(msg + (f" ({self.hint})" if self.hint else ""))

    def get(self, name: str) -> Any:
        """The object registered as ``name`` (lazy entries are imported now)."""
        return self.entry(name).load()

    def build(self, name: str, /, **options) -> Any:
        """Call the entry's target with ``options`` after checking every option is documented."""
        e = self.entry(name)
        e.check_options(options, self.kind)
        return e.load()(**options)

    def names(self) -> list[str]:
        return sorted(self._entries)

    def entries(self) -> list[Entry]:
        return [self._entries[k] for k in self.names()]

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        key = self._key(name)
        return key in self._entries or key in self._aliases

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}: {', '.join(self.names())})"

