"""Fields as ``--help`` and the docs show them, read from a config dataclass.

>>> from dataclasses import dataclass, field
>>> @dataclass
... class Fit:
...     '''Encoder training.'''
...     epochs: int = field(default=30, metadata={"help": "Passes over the data."})
...     layers: int = field(default=4, metadata={"help": "Blocks.", "aliases": ["depth"]})
>>> [(d.flags, d.type, d.default, d.help) for d in describe(Fit)]
[(['--epochs'], 'int', '30', 'Passes over the data.'), (['--layers', '--depth'], 'int', '4', 'Blocks.')]
>>> print(markdown(Fit))
### Encoder training
<BLANKLINE>
| field | type | default | help |
|---|---|---|---|
| `epochs` | int | `30` | Passes over the data. |
| `layers`, `depth` | int | `4` | Blocks. |
<BLANKLINE>
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from .build import default_of, field_types, fields_of, mapping_config, section_type, type_name


@dataclasses.dataclass(frozen=True)
class FieldDoc:
    """One field as ``--help`` and the docs show it."""

    name: str  # dotted path: "train.learning_rate"
    type: str  # "float", "list[str]", "mapping", ...
    default: str | None  # YAML-like text; None when the default is null
    help: str
    aliases: tuple[str, ...] = ()  # other names on the command line (same section)
    section: str = ""  # "" for a field of the config itself

    @property
    def flags(self) -> list[str]:
        parent = self.name.rpartition(".")[0]
        return [f"--{self.name}"] + [f"--{parent + '.' if parent else ''}{a}" for a in self.aliases]


def _show(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value if value else '""'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_show(v) or "null" for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k}: {_show(v) or 'null'}" for k, v in value.items()) + "}"
    if dataclasses.is_dataclass(value):
        return _show(dataclasses.asdict(value))
    return repr(value)


def describe(cls, instance=None, section: str = "") -> list[FieldDoc]:
    """Every field of ``cls`` (sections flattened, in order) with its type, default and
    help; defaults are read from ``instance`` when given (e.g. a loaded recipe), and then
    a mapping field holding a section of another config also lists the keys its value
    sets, as fields of that config (``sft.train.max_steps``), in a section named after it."""
    out = []
    for f in dataclasses.fields(cls):
        tp = field_types(cls)[f.name]
        value = getattr(instance, f.name) if instance is not None else default_of(f)
        name = f"{section}.{f.name}" if section else f.name
        sub = section_type(tp)
        if sub is not None:
            out += describe(sub, value, name)
            continue
        target = mapping_config(f)
        expand = instance is not None and target is not None and isinstance(value, Mapping) and bool(value)
        text = f.metadata.get("default_text")
        shown = None if expand else text if text is not None and value == default_of(f) else _show(value)
        out.append(FieldDoc(name, f.metadata.get("metavar", type_name(tp)), shown, f.metadata.get("help", ""),
                            tuple(f.metadata.get("aliases", ())), section))
        if expand:
            out += _describe_given(target, value, name, name)
    return out


def _describe_given(cls, given: Mapping, prefix: str, section: str) -> list[FieldDoc]:
    """The keys set in ``given`` (a partial mapping of ``cls``) as fields of ``cls``."""
    out = []
    fields, hints = fields_of(cls), field_types(cls)
    for key, value in given.items():
        f = fields.get(key)
        if f is None:
            continue
        sub = section_type(hints[key])
        if sub is not None and isinstance(value, Mapping):
            out += _describe_given(sub, value, f"{prefix}.{key}", section)
        else:
            out.append(FieldDoc(f"{prefix}.{key}", f.metadata.get("metavar", type_name(hints[key])), _show(value),
                                f.metadata.get("help", ""), tuple(f.metadata.get("aliases", ())), section))
    return out


def section_titles(cls) -> dict[str, str]:
    """``{section: short title}``: a section's from the first sentence of its class
    docstring, a mapping field's from its help (``""``: the config itself)."""
    out = {"": _title(cls.__doc__)}
    for f in dataclasses.fields(cls):
        sub = section_type(field_types(cls)[f.name])
        if sub is not None:
            out[f.name] = _title(sub.__doc__)
        elif mapping_config(f) is not None:
            out[f.name] = _title(f.metadata.get("help"))
    return out


def _title(text: str | None) -> str:
    """The first sentence of ``text`` up to a colon or a parenthesis."""
    first = " ".join((text or "").replace("``", "").strip().split("\n\n")[0].split())
    return first.split(": ")[0].split(" (")[0].split(". ")[0].rstrip(".")


def notes(cls) -> dict[str, str]:
    """``{section: its class docstring's "NOTE:" paragraph}`` (e.g. defaults that differ
    from TRL's), one line each; ``""`` is the config itself."""
    out = {}
    for section, owner in _section_classes(cls).items():
        for para in (owner.__doc__ or "").split("\n\n"):
            text = " ".join(para.split())
            if text.startswith("NOTE:"):
                out[section] = text
    return out


def _section_classes(cls) -> dict[str, type]:
    out = {"": cls}
    for f in dataclasses.fields(cls):
        sub = section_type(field_types(cls)[f.name])
        if sub is not None:
            out[f.name] = sub
    return out


def markdown(cls, instance=None, *, sections: list[str] | None = None, heading: str = "###") -> str:
    """The fields of ``cls`` as Markdown tables, one per section (``sections``: only these;
    ``""`` is the config's own fields), each after its title and NOTE (for the docs)."""
    titles, notes_ = section_titles(cls), notes(cls)
    docs = describe(cls, instance)
    lines = []
    for section in dict.fromkeys(d.section for d in docs):
        if sections is not None and section not in sections:
            continue
        label = f"`{section}`: {titles.get(section, '')}" if section else titles[""]
        lines += [f"{heading} {label}".rstrip(), ""]
        if notes_.get(section):
            lines += [notes_[section], ""]
        lines += ["| field | type | default | help |", "|---|---|---|---|"]
        for d in (d for d in docs if d.section == section):
            names = ", ".join(f"`{n}`" for n in (d.name, *d.aliases))
            default = f"`{d.default}`" if d.default is not None else "—"
            lines.append(f"| {names} | {d.type} | {default} | {d.help.replace('|', '/')} |")
        lines.append("")
    return "\n".join(lines)
