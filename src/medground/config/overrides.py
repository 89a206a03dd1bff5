"""Command-line overrides of a config: ``--section.field value``, ``--field value``, ``--field=value``.

:func:`parse_overrides` resolves each key against the config class (a section and a
field, a field name unique across sections, an alias from ``metadata["aliases"]``,
dashes for underscores, a key inside a mapping field) and parses the value as a YAML
scalar (a text field keeps the text as written; a bool field given alone is true).

>>> from dataclasses import field, make_dataclass
>>> Train = make_dataclass("Train", [("max_steps", int, -1), ("trl", dict, field(default_factory=dict))])
>>> Eval = make_dataclass("Eval", [("max_samples", int, 64), ("plot", bool, True)])
>>> Run = make_dataclass("Run", [("train", Train, field(default_factory=Train)),
...                              ("eval", Eval, field(default_factory=Eval))])
>>> parse_overrides(Run, ["--max-steps", "10", "--eval.plot", "--train.trl.beta=0.1"])
[(('train', 'max_steps'), 10), (('eval', 'plot'), True), (('train', 'trl', 'beta'), 0.1)]
>>> parse_overrides(Run, ["--max_samplse", "3"])
Traceback (most recent call last):
  ...
medground.errors.MedgroundError: unknown config field 'max_samplse'; did you mean max_samples? (sections: train, eval; a field name unique across them may stand alone)
"""

from __future__ import annotations

import dataclasses
import difflib
import typing
from collections.abc import Iterable, Mapping
from typing import Any

import yaml

from ..errors import MedgroundError
from .build import CLOSE_MATCH, canonical, field_types, fields_of, mapping_config, section_type, strip_optional


def _leaves(cls) -> dict[str, list[tuple[str, ...]]]:
    """``{name or alias: [path, ...]}`` for every non-section field, sections included."""
    out: dict[str, list[tuple[str, ...]]] = {}
    for f in dataclasses.fields(cls):
        section = section_type(field_types(cls)[f.name])
        if section is not None:
            for name, paths in _leaves(section).items():
                out.setdefault(name, []).extend((f.name, *p) for p in paths)
        else:
            for name in (f.name, *f.metadata.get("aliases", ())):
                out.setdefault(name, []).append((f.name,))
    return out


def _has_sections(cls) -> bool:
    return any(section_type(t) is not None for t in field_types(cls).values())


def _resolve(cls, parts: list[str], token: str, prefix: str = "") -> tuple[str, ...]:
    """The field path a command-line key (split at dots) names in ``cls`` (``prefix``:
    the path above ``cls``, for messages)."""
    head, rest = canonical(cls, parts[0]), [p.replace("-", "_") for p in parts[1:]]
    path = _first(cls, head, bool(rest), token, prefix)
    return path + _descend(cls, path, rest, token, prefix) if rest else path


def _first(cls, head: str, more: bool, token: str, prefix: str) -> tuple[str, ...]:
    """The path of the field the first key names: a field of ``cls`` (a section only when
    ``more`` keys follow), else a field name unique across the sections."""
    fields, types_ = fields_of(cls), field_types(cls)
    if head in fields and (more or section_type(types_[head]) is None):
        return (head,)
    found = _leaves(cls).get(head, [])
    if len(found) == 1:
        return found[0]
    if found:
        raise MedgroundError(f"{token} is ambiguous; write one of "
                             + ", ".join(f"--{prefix}{'.'.join(p)}" for p in found))
    sections = [name for name in fields if section_type(types_[name]) is not None]
    if head in fields:
        example = next(iter(fields_of(section_type(types_[head]))))
        raise MedgroundError(f"{token}: {prefix}{head} is a section; set its fields, e.g. --{prefix}{head}.{example}")
    if more and sections:
        raise MedgroundError(f"unknown config section '{prefix}{head}' in {token}; sections: {', '.join(sections)}")
    close = difflib.get_close_matches(head, [*_leaves(cls), *fields], n=3, cutoff=CLOSE_MATCH)
    hint = f"; did you mean {', '.join(dict.fromkeys(close))}?" if close else ""
    where = f"fields of {prefix.rstrip('.')}" if prefix else "fields"
    known = (f"sections: {', '.join(fields)}; a field name unique across them may stand alone" if sections
             else f"{where}: {', '.join(fields)}")
    raise MedgroundError(f"unknown config field '{prefix}{head}'{hint} ({known})")


def _descend(cls, path: tuple[str, ...], rest: list[str], token: str, prefix: str) -> tuple[str, ...]:
    """The rest of a key below the field at ``path``: into a section, into the config a
    mapping field holds a section of, or free keys of a plain mapping (``train.trl.*``)."""
    owner = cls
    for name in path[:-1]:
        owner = section_type(field_types(owner)[name])
    f, tp = fields_of(owner)[path[-1]], field_types(owner)[path[-1]]
    target = section_type(tp) or mapping_config(f)
    if target is not None:
        return _resolve(target, rest, token, f"{prefix}{'.'.join(path)}.")
    base, _ = strip_optional(tp)
    if base is dict or typing.get_origin(base) is dict:
        return tuple(rest)
    raise MedgroundError(f"{token}: {prefix}{'.'.join(path)} takes a value, it has no field {rest[0]!r}")


def _path_type(cls, path: tuple[str, ...]):
    """The annotated type at ``path`` (``Any`` inside free mappings)."""
    owner = cls
    for i, name in enumerate(path):
        if owner is None or not dataclasses.is_dataclass(owner):
            return Any
        f = fields_of(owner).get(name)
        if f is None:
            return Any
        tp = field_types(owner)[name]
        if i == len(path) - 1:
            return tp
        owner = section_type(tp) or mapping_config(f)
    return Any


def _parse_value(raw: str, tp):
    base, optional = strip_optional(tp)
    if base is str:
        return None if optional and raw.strip().lower() in ("none", "null", "~") else raw
    if raw == "":
        return ""
    try:
        return yaml.safe_load(raw)
    except yaml.YAMLError:
        return raw


def parse_overrides(cls, args: Iterable[str]) -> list[tuple[tuple[str, ...], Any]]:
    """``["--section.field", "v", "--field=v", "--flag", ...]`` -> ``[(path, value), ...]``
    for config class ``cls`` (keys resolved, values parsed as YAML scalars)."""
    args = list(args)
    out = []
    i = 0
    while i < len(args):
        tok = args[i]
        if not tok.startswith("--") or tok == "--":
            raise MedgroundError(f"unexpected argument {tok!r}; overrides look like --field value")
        key, eq, raw = tok[2:].partition("=")
        path = _resolve(cls, key.split("."), tok.split("=")[0])
        tp = _path_type(cls, path)
        if eq:
            i += 1
        elif i + 1 < len(args) and not args[i + 1].startswith("--"):
            raw = args[i + 1]
            i += 2
        elif strip_optional(tp)[0] is bool:
            raw = "true"  # a bare boolean flag
            i += 1
        else:
            raise MedgroundError(f"override {tok} needs a value")
        out.append((path, _parse_value(raw, tp)))
    return out


# --------------------------------------------------------------------------- merging


def set_path(data: dict, path: tuple[str, ...], value) -> None:
    """Set ``data[path[0]][path[1]]... = value``, creating (and copying) the mappings on the way."""
    node = data
    for i, key in enumerate(path[:-1]):
        child = node.get(key)
        if child is None:
            child = node[key] = {}
        elif not isinstance(child, dict):
            raise MedgroundError(f"--{'.'.join(path)}: {'.'.join(path[:i + 1])} is {child!r}, not a mapping")
        else:
            child = node[key] = dict(child)
        node = child
    node[path[-1]] = value


def merge(base: dict, extra: Mapping) -> dict:
    """``base`` with ``extra`` laid over it, mapping by mapping (lists and values replaced)."""
    out = dict(base)
    for k, v in extra.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = merge(dict(out[k]), v)
        else:
            out[k] = v
    return out


def paths_of(data: Mapping, prefix: tuple = ()) -> set[tuple]:
    """Every key path of a nested mapping."""
    out = set()
    for k, v in data.items():
        out.add(prefix + (k,))
        if isinstance(v, Mapping):
            out |= paths_of(v, prefix + (k,))
    return out
