"""One configuration loader: dataclasses from YAML, a mapping and command-line overrides.

Every config in medground is a dataclass whose fields carry their help text, as in TRL's
``GRPOConfig`` (``field(default=..., metadata={"help": ...})``), so that ``--help``, the
docs (``docs/configuration.md``) and the loader read one source.  Checks that relate
fields live in the dataclass's ``__post_init__`` and raise :class:`ConfigError` naming
them.  A field whose type is a dataclass is a *section* (``train.learning_rate``).

:func:`load_config` reads, in this order, a YAML file, a nested mapping (``values``) and
command-line overrides:

* ``--section.field value``, ``--field value`` (a name unique across sections) or
  ``--field=value``; dashes may stand for underscores (``--batch-size``) and
  ``metadata["aliases"]`` adds other names (``--layers``);
* a value is a YAML scalar (``1e-5``, ``true``, ``[a, b]``, ``{k: v}``) converted to the
  field's type; a text field takes the text as written; a bool field given without a
  value is true; a list also takes ``a,b``;
* a command-line value replaces the field (a mapping too); to change one key of a
  mapping, name it: ``--train.trl.max_prompt_length 512``.  A mapping field that holds a
  section of another config (``metadata["config"] = "module:Class"``) is checked against
  that config (``--sft.train.max_steps 6``); ``values`` are merged key by key;
* a mapping field's value is laid over its default mapping, a section's values over the
  section's default (what its ``default_factory`` builds).

An unknown key or a bad value raises :class:`~medground.errors.MedgroundError` that names
the key, a close match, and the file and line it came from.

>>> from dataclasses import dataclass, field
>>> @dataclass
... class Fit:
...     epochs: int = field(default=30, metadata={"help": "passes over the data"})
...     lr: float = field(default=5e-4, metadata={"help": "learning rate"})
...     layers: int = field(default=4, metadata={"help": "transformer blocks", "aliases": ["depth"]})
...     def __post_init__(self):
...         check_range(self, "lr", low=0, low_open=True)
>>> load_config(Fit, overrides=["--epochs", "3", "--lr=2e-3", "--depth", "2"])
Fit(epochs=3, lr=0.002, layers=2)
>>> load_config(Fit, overrides=["--epoch", "3"])
Traceback (most recent call last):
  ...
medground.errors.MedgroundError: unknown config field 'epoch'; did you mean epochs? (fields: epochs, lr, layers)
>>> load_config(Fit, values={"lr": 0})
Traceback (most recent call last):
  ...
medground.config.checks.ConfigError: lr: must be > 0; got 0.0
>>> [(d.name, d.type, d.default) for d in describe(Fit)][:2]
[('epochs', 'int', '30'), ('lr', 'float', '0.0005')]
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from pathlib import Path

import yaml

from ..errors import MedgroundError
from ..fileio import atomic_write
from .build import from_dict
from .checks import ConfigError, check_choice, check_range
from .fields import FieldDoc, describe, markdown, notes, section_titles
from .overrides import merge, parse_overrides, paths_of, set_path

__all__ = [
    "ConfigError", "FieldDoc", "check_choice", "check_range", "describe", "from_dict", "load_config",
    "load_yaml", "markdown", "notes", "parse_overrides", "save_config", "section_titles", "to_dict",
]


def _key_lines(node, prefix: tuple = ()) -> dict[tuple, int]:
    """``{key path: 1-based line}`` of every mapping key in a composed YAML node."""
    out: dict[tuple, int] = {}
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            path = prefix + (key.value,)
            out[path] = key.start_mark.line + 1
            out.update(_key_lines(value, path))
    elif isinstance(node, yaml.SequenceNode):
        for i, value in enumerate(node.value):
            out.update(_key_lines(value, prefix + (i,)))
    return out


def _read_yaml(path) -> tuple[dict, dict[tuple, int]]:
    p = Path(path)
    if not p.is_file():
        raise MedgroundError(f"{path}: config file not found")
    text = p.read_text(encoding="utf-8")
    try:
        data = yaml.safe_load(text) or {}
        lines = _key_lines(yaml.compose(text))
    except yaml.YAMLError as exc:
        raise MedgroundError(f"{path}: invalid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise MedgroundError(f"{path}: a config file must be a mapping of fields")
    return data, lines


def load_yaml(path) -> dict:
    """The mapping in YAML file ``path`` (MedgroundError if missing, invalid or not a mapping)."""
    return _read_yaml(path)[0]


def _locate(exc: ConfigError, path, lines: dict, overridden: set) -> ConfigError:
    """``exc`` with ``FILE:LINE`` when its first field was read from the file."""
    if path is None:
        return exc
    for name in exc.fields:
        key = tuple(name.replace("]", "").replace("[", ".").split("."))
        key = tuple(int(k) if k.isdigit() else k for k in key)
        if key in overridden:
            return exc
        for n in range(len(key), 0, -1):
            if key[:n] in lines and key[:n] not in overridden:
                return exc.at(f"{path}:{lines[key[:n]]}")
    return exc.at(str(path))


def load_config(cls, path=None, overrides: Iterable[str] | None = None, values: Mapping | None = None):
    """Config ``cls`` from YAML ``path`` (optional), then ``values`` (a nested mapping,
    merged key by key), then command-line ``overrides``; see the module docstring."""
    data, lines = _read_yaml(path) if path is not None else ({}, {})
    overridden: set = set()
    if values:
        data = merge(data, values)
        overridden |= paths_of(values)
    for key, value in parse_overrides(cls, overrides or []):
        set_path(data, key, value)
        overridden.add(key)
    try:
        return from_dict(cls, data)
    except ConfigError as exc:
        raise _locate(exc, path, lines, overridden) from None


def to_dict(cfg) -> dict:
    """A plain nested dict (saved next to a run, printed by ``--print-config``)."""
    return dataclasses.asdict(cfg)


def save_config(cfg, path) -> Path:
    """Write ``cfg`` as YAML (atomically); :func:`load_config` reads it back identically."""
    return atomic_write(path, yaml.safe_dump(to_dict(cfg), sort_keys=False))
