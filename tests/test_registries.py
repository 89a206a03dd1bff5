"""Adding a reward, a converter or a segmenter is one file: each module of those packages
registers what it defines, and importing the package imports every module."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

from medground.data.converters import CONVERTERS
from medground.models.segmenters import SEGMENTERS
from medground.rewards import REWARDS

PACKAGES = [
    ("medground.rewards", REWARDS, {"base", "registry"}),
    ("medground.models.segmenters", SEGMENTERS, {"base"}),
    ("medground.data.converters", CONVERTERS, {"base"}),
]


def _module_of(entry) -> str:
    if entry.lazy:
        return entry.target.partition(":")[0]
    return entry.target.__module__


@pytest.mark.parametrize("package, registry, helpers", PACKAGES, ids=[p for p, _, _ in PACKAGES])
def test_every_module_of_the_package_registers_itself(package, registry, helpers):
    pkg = importlib.import_module(package)
    modules = {f"{package}.{m.name}" for m in pkgutil.iter_modules(pkg.__path__) if m.name not in helpers}
    registered = {_module_of(e) for e in registry.entries()}
    assert modules <= registered, f"modules that register nothing: {sorted(modules - registered)}"
    assert registered <= modules | {package}, f"entries defined outside the package: {sorted(registered - modules)}"
