"""The one config loader (medground.config): YAML, values and command-line overrides onto
dataclasses, type conversion, clear errors naming the key, the file and the line, and the
field descriptions --help and the docs are generated from."""

# no `from __future__ import annotations`: the toy configs below keep real annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import pytest

from medground.config import (
    ConfigError,
    check_choice,
    check_range,
    describe,
    load_config,
    markdown,
    parse_overrides,
    save_config,
)
from medground.errors import MedgroundError


@dataclass
class Net:
    """The network."""

    width: int = field(default=64, metadata={"help": "Hidden width."})
    depth: int = field(default=2, metadata={"help": "Blocks.", "aliases": ["layers"]})
    act: str = field(default="gelu", metadata={"help": "Activation."})
    dropout: Optional[float] = field(default=None, metadata={"help": "Dropout (null: none)."})

    def __post_init__(self):
        check_choice(self, "act", ("gelu", "relu"))


@dataclass
class Optim:
    """The optimiser."""

    lr: float = field(default=1e-3, metadata={"help": "Learning rate."})
    steps: int = field(default=-1, metadata={"help": "Steps."})
    modules: list = field(default_factory=lambda: ["q", "v"], metadata={"help": "Trained modules."})
    extra: dict = field(default_factory=dict, metadata={"help": "Passed unchanged."})
    plot: bool = field(default=True, metadata={"help": "Draw the curve."})

    def __post_init__(self):
        check_range(self, "lr", low=0, low_open=True)


@dataclass
class Run:
    """A run."""

    net: Net = field(default_factory=Net)
    optim: Optim = field(default_factory=lambda: Optim(lr=5e-4))
    name: str = field(default="run", metadata={"help": "Run name."})

    def __post_init__(self):
        if self.net.width < self.net.depth:
            raise ConfigError(("net.width", "net.depth"), "narrower than deep")


@dataclass
class Recipe:
    """A recipe holding a partial Run and a plain mapping."""

    seed: int = field(default=0, metadata={"help": "Seed."})
    run: dict = field(default_factory=dict, metadata={"help": "Run fields.", "config": Run})
    fit: dict = field(default_factory=lambda: {"epochs": 6}, metadata={"help": "Fit options."})
    tags: list = field(default_factory=list, metadata={"help": "Tags."})


YAML = """\
net:
  width: 32
  act: relu
optim: {steps: 10, extra: {a: 1}}
name: first
"""


@pytest.fixture
def run_yaml(tmp_path):
    p = tmp_path / "run.yaml"
    p.write_text(YAML)
    return p


def test_yaml_then_values_then_overrides(run_yaml):
    cfg = load_config(Run, run_yaml, ["--steps", "20", "--net.layers=3", "--optim.extra.b", "2"],
                      values={"optim": {"steps": 15, "plot": False}})
    assert cfg.net == Net(width=32, depth=3, act="relu")
    assert (cfg.optim.steps, cfg.optim.plot, cfg.optim.extra) == (20, False, {"a": 1, "b": 2})
    assert cfg.name == "first"
    # a section given in part keeps its own default (the default_factory's lr, not the class's)
    assert cfg.optim.lr == 5e-4


def test_values_are_converted_to_the_field_types():
    cfg = load_config(Run, overrides=["--width", "1e2", "--dropout", "null", "--modules", "a,b", "--lr", "2e-3",
                                      "--plot", "--name", "0123"])
    assert cfg.net.width == 100 and cfg.net.dropout is None
    assert cfg.optim.modules == ["a", "b"] and cfg.optim.lr == 0.002
    assert cfg.optim.plot is True  # a bool given alone
    assert cfg.name == "0123"  # a text field keeps the text as written
    cfg = load_config(Run, overrides=["--optim.plot", "no", "--dropout", "0.1"])
    assert cfg.optim.plot is False and cfg.net.dropout == 0.1


def test_unknown_yaml_key_names_file_line_and_close_match(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("net:\n  width: 8\n  dephs: 2\n")
    with pytest.raises(MedgroundError) as exc:
        load_config(Run, p)
    assert str(exc.value) == (f"{p}:3: unknown config field 'net.dephs'; did you mean depth? "
                              "(fields of net: width, depth, act, dropout)")


def test_bad_value_and_bad_combination_name_the_field_and_where_it_came_from(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("name: x\noptim:\n  steps: many\n")
    with pytest.raises(MedgroundError, match=r"bad\.yaml:3: optim\.steps: cannot use 'many' as int"):
        load_config(Run, p)
    p.write_text("net:\n  act: tanh\n")
    with pytest.raises(MedgroundError, match=r"bad\.yaml:2: net\.act: must be one of gelu, relu; got 'tanh'"):
        load_config(Run, p)
    # the same bad value from the command line: named without the file
    with pytest.raises(MedgroundError) as exc:
        load_config(Run, p, ["--net.act", "sigmoid"])
    assert str(exc.value) == "net.act: must be one of gelu, relu; got 'sigmoid'"
    # a check of the whole config names both fields
    with pytest.raises(ConfigError, match=r"net\.width, net\.depth: narrower than deep") as exc:
        load_config(Run, overrides=["--width", "2", "--depth", "3"])
    assert exc.value.fields == ("net.width", "net.depth")


@pytest.mark.parametrize("args, message", [
    (["--nope", "1"], r"unknown config field 'nope' \(sections: net, optim, name"),
    (["--widht", "1"], "did you mean width"),
    (["--optim.lrr", "1"], r"unknown config field 'optim.lrr'; did you mean lr"),
    (["--bogus.x", "1"], "unknown config section 'bogus' in --bogus.x; sections: net, optim"),
    (["--net", "1"], "net is a section; set its fields, e.g. --net.width"),
    (["--name.first", "x"], "name takes a value, it has no field 'first'"),
    (["--steps"], "override --steps needs a value"),
    (["steps", "3"], "unexpected argument 'steps'"),
])
def test_bad_overrides(args, message):
    with pytest.raises(MedgroundError, match=message):
        load_config(Run, overrides=args)


def test_mapping_fields_replace_merge_and_check():
    # a mapping's value is laid over its default; a command-line mapping replaces the field
    cfg = load_config(Recipe, overrides=["--fit", "{layers: 2}"])
    assert cfg.fit == {"epochs": 6, "layers": 2}
    cfg = load_config(Recipe, values={"fit": {"epochs": 1}, "run": {"optim": {"steps": 3}}},
                      overrides=["--fit.lr", "0.1", "--run.net.width", "16"])
    assert cfg.fit == {"epochs": 1, "lr": 0.1}
    assert cfg.run == {"optim": {"steps": 3}, "net": {"width": 16}}  # a partial Run, kept as given
    # a unique field name inside the held config resolves to its section
    assert load_config(Recipe, overrides=["--run.steps", "7"]).run == {"optim": {"steps": 7}}
    # keys and values of the held config are checked when the recipe loads
    with pytest.raises(MedgroundError, match=r"unknown config field 'run.optim.step'; did you mean steps"):
        load_config(Recipe, values={"run": {"optim": {"step": 3}}})
    with pytest.raises(MedgroundError, match=r"run\.net\.act: must be one of gelu, relu"):
        load_config(Recipe, overrides=["--run.net.act", "tanh"])
    with pytest.raises(MedgroundError, match=r"did you mean width"):
        load_config(Recipe, overrides=["--run.net.widht", "3"])


def test_parse_overrides_resolves_paths():
    assert parse_overrides(Run, ["--layers", "4", "--optim.extra.k=v", "--name", "n"]) == [
        (("net", "depth"), 4), (("optim", "extra", "k"), "v"), (("name",), "n")]


def test_saved_config_loads_back_identically(run_yaml, tmp_path):
    cfg = load_config(Run, run_yaml, ["--dropout", "0.2"])
    assert load_config(Run, save_config(cfg, tmp_path / "saved.yaml")) == cfg


def test_describe_reads_help_types_defaults_and_aliases():
    docs = {d.name: d for d in describe(Run)}
    assert list(docs) == ["net.width", "net.depth", "net.act", "net.dropout", "optim.lr", "optim.steps",
                          "optim.modules", "optim.extra", "optim.plot", "name"]
    assert (docs["net.depth"].flags, docs["net.depth"].help) == (["--net.depth", "--net.layers"], "Blocks.")
    assert docs["optim.lr"].default == "0.0005"  # the section's own default
    assert docs["net.dropout"].default is None and docs["optim.modules"].default == "[q, v]"
    assert (docs["optim.plot"].type, docs["optim.plot"].default) == ("bool", "true")
    # with a loaded instance: its values, and the keys a held config's mapping sets
    recipe = load_config(Recipe, overrides=["--run.optim.steps", "9"])
    docs = {d.name: d for d in describe(Recipe, recipe)}
    assert docs["run.optim.steps"].default == "9" and docs["run.optim.steps"].help == "Steps."
    assert docs["run.optim.steps"].section == "run"


def test_markdown_lists_every_field_per_section():
    text = markdown(Run)
    assert "### `net`: The network" in text and "### `optim`: The optimiser" in text
    assert "| `net.depth`, `layers` | int | `2` | Blocks. |" in text
    assert "| `name` | str | `run` | Run name. |" in text


def test_any_typed_field_keeps_yaml_values():
    @dataclass
    class Loose:
        anything: Any = None

    assert load_config(Loose, overrides=["--anything", "[1, {a: b}]"]).anything == [1, {"a": "b"}]
