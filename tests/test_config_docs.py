"""docs/configuration.md is generated from the config dataclasses and cannot drift from them."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def generator():
    spec = importlib.util.spec_from_file_location("config_docs", ROOT / "scripts" / "config_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_page_matches_the_dataclasses(generator):
    page = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert page == generator.render(), "docs/configuration.md is stale: run python scripts/config_docs.py"
    assert generator.main(["--check"]) == 0


@pytest.mark.parametrize("target", ["medground.train.config:SFTRunConfig", "medground.train.config:GRPORunConfig",
                                    "medground.demo:DemoConfig", "medground.models.semantic_fit:FitConfig",
                                    "medground.models.tiny:TinyConfig"])
def test_every_field_is_on_the_page_with_its_help(generator, target):
    from medground.config import describe
    from medground.registry import Entry

    page = generator.render()
    for d in describe(Entry("config", target).load()):
        assert f"| `{d.name}`" in page and d.help in page, d.name
