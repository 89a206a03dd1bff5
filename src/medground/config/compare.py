"""Compare the settings that made an output with the settings of this run.

Whatever a rerun may reuse — a training run's folder, a demo stage — is reused only if
the settings recorded beside it equal this run's.  :func:`differences` lists what
changed, one ``key: old -> new`` per setting, for the message that refuses or redoes
the work; :func:`fingerprint` is a short stable digest of a settings mapping, for
settings that depend on the output of an earlier stage.

>>> differences({"seed": 0, "grpo": {"train": {"max_steps": 4}}}, {"seed": 1, "grpo": {"train": {"max_steps": 6}}})
['grpo.train.max_steps: 4 -> 6', 'seed: 0 -> 1']
>>> fingerprint({"b": [1, 2], "a": 0}) == fingerprint({"a": 0, "b": [1, 2]})
True
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any


def flatten(settings: Mapping, depth: int | None = None, prefix: str = "") -> dict[str, Any]:
    """Nested mappings as dotted keys, ``depth`` levels down (None: all); lists, and the
    mappings below ``depth``, stay whole values (an empty mapping is a value too)."""
    out: dict[str, Any] = {}
    for key, value in settings.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value and (depth is None or depth > 0):
            out.update(flatten(value, None if depth is None else depth - 1, f"{name}."))
        else:
            out[name] = value
    return out


def differences(old: Mapping, new: Mapping, *, depth: int | None = None, ignore: Iterable[str] = (),
                one_sided: bool = True, same: Callable[[str, Any, Any], bool] | None = None) -> list[str]:
    """``"key: old -> new"`` for every setting (flattened by :func:`flatten`) that differs,
    sorted by key.  ``ignore``: keys, or prefixes ending with ``.``, left out;
    ``one_sided``: also list a key only one side has (else such keys are skipped, e.g.
    a field another version added); ``same(key, a, b)``: a custom equality (paths).
    Numbers compare by value (``1 == 1.0``)."""
    a, b = flatten(old, depth), flatten(new, depth)
    ignored = tuple(ignore)
    missing = object()
    out = []
    for key in sorted(a.keys() | b.keys()):
        if any(key == k or (k.endswith(".") and key.startswith(k)) for k in ignored):
            continue
        x, y = a.get(key, missing), b.get(key, missing)
        if x is missing or y is missing:
            if one_sided:
                out.append(f"{key}: {_show(x, missing)} -> {_show(y, missing)}")
            continue
        if x == y or _same_number(x, y) or (same is not None and same(key, x, y)):
            continue
        out.append(f"{key}: {_show(x, missing)} -> {_show(y, missing)}")
    return out


def fingerprint(settings: Any) -> str:
    """A 16-hex-digit digest of a JSON-able value (mapping key order does not matter)."""
    text = json.dumps(settings, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _same_number(x, y) -> bool:
    numbers = (int, float)
    return (isinstance(x, numbers) and isinstance(y, numbers) and not isinstance(x, bool)
            and not isinstance(y, bool) and float(x) == float(y))


def _show(v, missing) -> str:
    if v is missing:
        return "(unset)"
    return json.dumps(v, ensure_ascii=False) if isinstance(v, (dict, list, str)) else str(v)
