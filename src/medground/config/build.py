"""Dataclasses from nested mappings: field introspection, type conversion, clear errors.

:func:`from_dict` builds a config from a mapping (what :func:`medground.config.load_config`
does once the YAML file, ``values`` and overrides are merged): unknown keys raise
:class:`~medground.config.checks.ConfigError` with a close match, values are converted
to the annotated types (``Optional``, ``list``, ``dict``, ``bool`` strings, nested
dataclasses), mapping fields are laid over their default mapping and ``__post_init__``
runs on every section.

>>> from dataclasses import field, make_dataclass
>>> Lora = make_dataclass("Lora", [("r", int, 16),
...                                ("target_modules", list[str], field(default_factory=lambda: ["q_proj"]))])
>>> Run = make_dataclass("Run", [("lora", Lora, field(default_factory=Lora)),
...                              ("trl", dict, field(default_factory=dict))])
>>> from_dict(Run, {"lora": {"r": "8", "target_modules": "q_proj,k_proj"}, "trl": {"beta": 0.1}})
Run(lora=Lora(r=8, target_modules=['q_proj', 'k_proj']), trl={'beta': 0.1})
>>> from_dict(Run, {"lora": {"rank": 8}})
Traceback (most recent call last):
  ...
medground.config.checks.ConfigError: unknown config field 'lora.rank' (fields of lora: r, target_modules)
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import types
import typing
from collections.abc import Mapping
from typing import Any

from ..errors import MedgroundError
from ..registry import Entry
from .checks import ConfigError

CLOSE_MATCH = 0.7  # difflib ratio for "did you mean"


def strip_optional(tp):
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return tp, False


@functools.cache
def field_types(cls) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def fields_of(cls) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(cls)}


def section_type(tp):
    base, _ = strip_optional(tp)
    return base if dataclasses.is_dataclass(base) and isinstance(base, type) else None


def list_item_dataclass(tp):
    base, _ = strip_optional(tp)
    if typing.get_origin(base) is list:
        (item,) = typing.get_args(base) or (Any,)
        if dataclasses.is_dataclass(item) and isinstance(item, type):
            return item
    return None


def mapping_config(f: dataclasses.Field):
    """The config class a mapping field holds a section of (``metadata["config"]``), or None."""
    target = f.metadata.get("config")
    if target is None:
        return None
    return Entry(f.name, target).load() if isinstance(target, str) else target


def default_of(f: dataclasses.Field):
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None


def _changed(instance) -> dict[str, Any]:
    """Init values of ``instance`` that differ from its class defaults: what a section's
    ``default_factory`` sets (``field(default_factory=lambda: Train(lr=2e-5))``)."""
    return {f.name: getattr(instance, f.name) for f in dataclasses.fields(instance)
            if f.init and getattr(instance, f.name) != default_of(f)}


def type_name(tp) -> str:
    base, _ = strip_optional(tp)
    if base is Any:
        return "yaml"
    if isinstance(base, type) and not typing.get_args(base) and base in (bool, int, float, str):
        return base.__name__
    origin = typing.get_origin(base)
    if origin is list or base is list:
        (item,) = typing.get_args(base) or (Any,)
        return f"list[{type_name(item)}]"
    if origin is dict or base is dict:
        return "mapping"
    return getattr(base, "__name__", str(base))


def canonical(cls, key: str) -> str:
    """A field name, alias or dashed spelling -> the field name (unchanged if unknown)."""
    key = str(key).replace("-", "_")
    for f in dataclasses.fields(cls):
        if key == f.name or key in f.metadata.get("aliases", ()):
            return f.name
    return key


def aliases_of(cls) -> list[str]:
    return [a for f in dataclasses.fields(cls) for a in f.metadata.get("aliases", ())]


# --------------------------------------------------------------------------- values


def _to_bool(value) -> bool:
    if isinstance(value, str) and value.strip().lower() in ("true", "yes", "1", "on", "false", "no", "0", "off"):
        return value.strip().lower() in ("true", "yes", "1", "on")
    if isinstance(value, (bool, int)) and value in (0, 1):
        return bool(value)
    raise ValueError(value)


def _to_int(value) -> int:
    if isinstance(value, str):
        value = float(value) if any(c in value for c in ".eE") else int(value)
    if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
        raise ValueError(value)
    return int(value)


def _to_float(value) -> float:
    if isinstance(value, bool):
        raise ValueError(value)
    return float(value)


def _to_str(value) -> str:
    if isinstance(value, (dict, list)):
        raise ValueError(value)
    return str(value)


_SCALARS = {bool: _to_bool, int: _to_int, float: _to_float, str: _to_str}


def _coerce(value, tp, name: str):
    """``value`` (YAML-loaded) as the annotated type ``tp``; :class:`ConfigError` otherwise."""
    base, optional = strip_optional(tp)
    if optional and isinstance(value, str) and value.strip().lower() in ("none", "null", "~"):
        value = None
    if value is None:
        if optional or base is Any:
            return None
        raise ConfigError(name, "may not be null")
    origin = typing.get_origin(base)
    try:
        if base in _SCALARS:
            return _SCALARS[base](value)
        if origin is list or base is list:
            if isinstance(value, str):
                value = [v.strip() for v in value.split(",") if v.strip()]
            if not isinstance(value, (list, tuple)):
                value = [value]
            item_cls = list_item_dataclass(base)
            if item_cls is not None:
                return [v if isinstance(v, item_cls) else _build(item_cls, v, f"{name}[{i}].")
                        for i, v in enumerate(value)]
            (item,) = typing.get_args(base) or (Any,)
            return [_coerce(v, item, name) for v in value]
        if origin is dict or base is dict:
            if not isinstance(value, Mapping):
                raise ValueError(value)
            return dict(value)
    except (TypeError, ValueError):
        raise ConfigError(name, f"cannot use {value!r} as {type_name(tp)}") from None
    return value  # Any, or a type the loader does not convert


def _leaf(f: dataclasses.Field, tp, value, name: str):
    """A non-section field's value: converted (``metadata["convert"]``), checked against the
    config it holds a section of, coerced, and laid over the default mapping."""
    convert = f.metadata.get("convert")
    if convert is not None:
        try:
            value = convert(value)
        except MedgroundError as exc:
            raise ConfigError(name, str(exc)) from None
    target = mapping_config(f)
    if target is not None and isinstance(value, Mapping):
        _check(target, value, f"{name}.")
    out = _coerce(value, tp, name)
    default = default_of(f)
    if isinstance(out, dict) and isinstance(default, dict):
        out = {**default, **out}
    return out


def _unknown(cls, key: str, prefix: str) -> ConfigError:
    names = list(fields_of(cls))
    close = difflib.get_close_matches(key, names + aliases_of(cls), n=3, cutoff=CLOSE_MATCH)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    where = f"fields of {prefix.rstrip('.')}:" if prefix else "fields:"
    return ConfigError(f"{prefix}{key}", f"unknown config field '{prefix}{key}'{hint} ({where} {', '.join(names)})",
                       named=False)


def _as_mapping(data, name: str, cls) -> Mapping:
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise ConfigError(name or cls.__name__, f"must be a mapping of fields, got {data!r}")
    return data


def _build(cls, data, prefix: str = "", base: Mapping | None = None):
    """Dataclass ``cls`` from a mapping (keys checked, values coerced, ``__post_init__`` run)."""
    if isinstance(data, cls):
        return data
    kwargs = dict(base or {})
    kwargs.update(_values(cls, data, prefix))
    try:
        return cls(**kwargs)
    except ConfigError as exc:
        raise exc.within(prefix.rstrip(".")) from None


def _check(cls, data, prefix: str) -> None:
    """Check a partial mapping of ``cls`` without building ``cls`` itself: its keys, the
    types of its values, and every section it gives (built, so their own checks run)."""
    _values(cls, data, prefix)


def _values(cls, data, prefix: str) -> dict[str, Any]:
    """``{field: value}`` for the keys of mapping ``data`` (unknown keys raise)."""
    data = _as_mapping(data, prefix.rstrip("."), cls)
    fields, types_ = fields_of(cls), field_types(cls)
    out = {}
    for key, value in data.items():
        if key not in fields:
            raise _unknown(cls, str(key), prefix)
        f, tp, name = fields[key], types_[key], f"{prefix}{key}"
        section = section_type(tp)
        if section is None:
            out[key] = _leaf(f, tp, value, name)
        else:
            default = default_of(f)
            out[key] = _build(section, value, f"{name}.", _changed(default) if default is not None else None)
    return out


def from_dict(cls, data: Mapping | None, prefix: str = ""):
    """Dataclass ``cls`` from a nested mapping (what :func:`load_config` does after merging)."""
    return _build(cls, data, prefix)
