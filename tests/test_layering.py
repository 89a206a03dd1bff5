"""The package's layers, checked on its source: no module imports a higher layer, and
no two packages import each other.

The order (docs/CONTRIBUTING.md, ../shared/DESIGN.md):

    core (errors, geometry, parsing, metrics, templates, crops, registry, fileio, config, shards)
      < data < models (policy, families, encoders, segmenters) < rewards
      < train / predict / evaluate / segment / serve (+ overlay, integrations)
      < demo < cli

Every ``import`` / ``from ... import`` is read with :mod:`ast`, at module level *and*
inside functions (a lazy import is still a dependency).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "medground"

LAYERS = [
    ("core", {"__init__", "errors", "geometry", "parsing", "metrics", "templates", "crops", "registry", "fileio",
              "config", "progress", "resume", "shards"}),
    ("data", {"data"}),
    ("models", {"models"}),
    ("rewards", {"rewards"}),
    ("apps", {"train", "predict", "evaluate", "segment", "serve", "overlay", "integrations", "engines"}),
    ("demo", {"demo"}),
    ("cli", {"cli", "__main__"}),
]
LEVEL = {top: i for i, (_, tops) in enumerate(LAYERS) for top in tops}


def _modules() -> list[tuple[str, Path]]:
    out = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__" and len(parts) > 1:
            parts = parts[:-1]
        out.append((".".join(["medground", *parts]), path))
    return out


def _is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def imported_modules(module: str, path: Path) -> list[tuple[int, str]]:
    """``(line, absolute module)`` for every medground import in the file, at any depth."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module if _is_package(path) else module.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "medground"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "medground":
                continue
            if node.module is None or target == "medground":  # from . import x / from medground import x
                found += [(node.lineno, f"{target}.{a.name}") for a in node.names]
            else:
                found.append((node.lineno, target))
    return found


def top_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_every_top_level_module_has_a_layer():
    tops = {top_of(m) for m, _ in _modules()}
    missing = sorted(tops - set(LEVEL))
    assert not missing, f"add these to LAYERS in tests/test_layering.py: {missing}"


def test_no_module_imports_a_higher_layer():
    faults = []
    for module, path in _modules():
        here = LEVEL[top_of(module)]
        for line, target in imported_modules(module, path):
            there = LEVEL.get(top_of(target))
            if there is not None and there > here:
                faults.append(f"{path.relative_to(SRC.parent)}:{line} {module} ({LAYERS[here][0]}) imports "
                              f"{target} ({LAYERS[there][0]})")
    assert not faults, "upward imports:\n" + "\n".join(faults)


def test_no_cycle_between_packages():
    """Sub-packages (``medground.models.segmenters``, ``medground.rewards``...) form no import cycle
    with one another (a module may import its siblings; two packages may not import each other)."""
    def pkg(module: str) -> str:
        return ".".join(module.split(".")[:2])

    graph: dict[str, set[str]] = {}
    for module, path in _modules():
        for _, target in imported_modules(module, path):
            a, b = pkg(module), pkg(target)
            if a != b:
                graph.setdefault(a, set()).add(b)
    cycles = sorted(f"{a} <-> {b}" for a, deps in graph.items() for b in deps if a < b and a in graph.get(b, ()))
    assert not cycles, f"package cycles: {cycles}"


@pytest.mark.parametrize("source, expected", [
    ("from ..rewards.semantic import crop_regions", "medground.rewards.semantic"),
    ("def f():\n    from ..rewards import get", "medground.rewards"),
    ("import medground.rewards.base", "medground.rewards.base"),
    ("from .. import rewards", "medground.rewards"),
])
def test_the_checker_sees_upward_imports(tmp_path, source, expected):
    """The checker itself: relative, function-level, absolute and package imports are all found."""
    f = tmp_path / "m.py"
    f.write_text(source + "\n")
    found = [t for _, t in imported_modules("medground.models.fake", f)]
    assert found == [expected]
    assert LEVEL[top_of(found[0])] > LEVEL["models"]
