"""The reward registry: names, options, TRL's calling convention, `medground rewards list`."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from medground import rewards  # noqa: E402
from medground.errors import MedgroundError  # noqa: E402
from medground.rewards.registry import register  # noqa: E402

EXPECTED = {"format", "iou", "giou", "chain_of_box", "semantic", "medground_r1_accuracy", "medground_r1_format",
            "medreasoner", "mask_dice"}
GOOD = "<think>the lesion is at [10, 10, 50, 50]</think><answer>[10, 10, 50, 50]</answer>"


def trl_kwargs(n, **columns):
    """What TRL 1.16 `_calculate_rewards` passes besides prompts/completions/completion_ids."""
    logged = []
    kwargs = dict(
        trainer_state=object(),
        log_extra=lambda column, values: None,
        log_metric=lambda name, value: logged.append((name, value)),
        **columns,
    )
    return kwargs, logged


def test_every_reward_is_registered_with_description_and_options():
    names = {s.name for s in rewards.available()}
    assert EXPECTED <= names
    for s in rewards.available():
        assert s.description and "\n" not in s.description
        assert all(isinstance(v.help, str) and v.help for v in s.options.values())


def test_get_returns_trl_callable_with_distinct_names():
    from trl.trainer.utils import get_callable_name, is_async_callable

    a = rewards.get("iou")
    b = rewards.get("iou", soft=True)
    c = rewards.get("iou", threshold=0.7)
    names = [get_callable_name(f) for f in (a, b, c, rewards.get("giou"), rewards.get("format"))]
    assert len(set(names)) == len(names)
    assert names[0] == "iou"
    assert not any(is_async_callable(f) for f in (a, b, c))
    # frame does not change the value's meaning, so it does not rename the reward
    assert rewards.get("iou", frame="norm1000").__name__ == "iou"


def test_trl_calling_convention_conversational_and_plain():
    f = rewards.get("iou")
    n = 2
    kwargs, logged = trl_kwargs(n, boxes=[[[10, 10, 50, 50]]] * n, id=["a", "b"], query=["q", "q"])
    conv = [[{"role": "assistant", "content": GOOD}], [{"role": "assistant", "content": "no idea"}]]
    prompts = [[{"role": "user", "content": "where?"}]] * n
    assert f(prompts=prompts, completions=conv, completion_ids=[[1, 2], [3]], **kwargs) == [1.0, 0.0]
    plain = [GOOD, "no idea"]
    assert f(prompts=["where?"] * n, completions=plain, completion_ids=[[1], [2]], **kwargs) == [1.0, 0.0]
    assert ("iou/iou", 1.0) in logged and ("iou/parsed", 0.5) in logged


def test_unknown_reward_and_option_are_clear_errors():
    with pytest.raises(MedgroundError, match="unknown reward 'iuo'.*did you mean iou"):
        rewards.get("iuo")
    with pytest.raises(MedgroundError, match="no option.*thresh"):
        rewards.get("iou", thresh=0.3)


def test_register_adds_a_reward_that_get_builds():
    @register("test_constant_reward", description="always 0.25", options={"value": "the constant"})
    def factory(value=0.25):
        def f(prompts=None, completions=None, **kwargs):
            return [float(value)] * len(completions)

        return f

    f = rewards.get("test_constant_reward", value=0.5)
    assert f(completions=["x", "y"]) == [0.5, 0.5]
    assert f.__name__ == "test_constant_reward_value0.5"
    assert "test_constant_reward" in {s.name for s in rewards.available()}


def test_missing_ground_truth_column_names_it():
    with pytest.raises(MedgroundError, match="no 'boxes' column"):
        rewards.get("iou")(completions=[GOOD], query=["x"])


def test_cli_rewards_list_prints_every_name_and_options():
    from typer.testing import CliRunner

    from medground.cli import app

    result = CliRunner().invoke(app, ["rewards", "list"])
    assert result.exit_code == 0, result.output
    for name in EXPECTED:
        assert f"{name}: " in result.output
    assert "threshold:" in result.output and "max_area_frac:" in result.output


class _Encoder:
    def encode_images(self, images):
        raise AssertionError("not called")

    def encode_texts(self, texts):
        raise AssertionError("not called")


# The names TRL logs rewards under (checked against the registry before rewards became classes).
LOGGED_NAMES = [
    ("iou", {}, "iou"),
    ("iou", {"threshold": 0.7}, "iou_threshold0.7"),
    ("iou", {"soft": True}, "iou_soft"),
    ("iou", {"soft": False}, "iou_no_soft"),
    ("iou", {"frame": "norm1000", "min_pixels": 3136, "gt_column": "boxes"}, "iou"),
    ("iou", {"variant": "vlm-r1", "max_boxes": "gt", "single_answer": True, "max_area_frac": 0.8},
     "iou_max_area_frac0.8_max_boxesgt_single_answer_variantvlmr1"),
    ("giou", {"max_area_frac": 0.5}, "giou_max_area_frac0.5"),
    ("chain_of_box", {"agree_iou": 0.3, "soft": True}, "chain_of_box_agree_iou0.3_soft"),
    ("format", {"require_think": False}, "format_no_require_think"),
    ("semantic", {"encoder": _Encoder(), "cache_size": 0, "margin": 0.1, "device": "cpu", "batch_size": 8,
                  "text_column": "query"}, "semantic_cache_size0_margin0.1"),
    ("semantic", {"encoder": _Encoder(), "mode": "threshold", "threshold": 0.2}, "semantic_modethreshold_threshold0.2"),
    ("mask_dice", {"segmenter": "watershed", "prompt": "box", "device": "cpu", "cache_size": 4},
     "mask_dice_cache_size4_promptbox_segmenterwatershed"),
    ("medreasoner", {"mode": "hard", "frame": "qwen2.5-vl"}, "medreasoner_modehard"),
    ("medground_r1_accuracy", {}, "medground_r1_accuracy"),
    ("medground_r1_format", {}, "medground_r1_format"),
]


@pytest.mark.parametrize("name, options, logged", LOGGED_NAMES)
def test_logged_names_carry_exactly_the_options_that_change_the_result(name, options, logged):
    assert rewards.get(name, **options).__name__ == logged


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_options_are_documented_once_with_defaults_from_the_constructor(name):
    import inspect

    entry = rewards.spec(name)
    cls = entry.load()
    params = {}
    for klass in cls.__mro__[:-1]:  # a base's parameters count while **options passes them on
        if "__init__" in vars(klass):
            sig = inspect.signature(vars(klass)["__init__"]).parameters.values()
            for p in sig:
                if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name != "self":
                    params.setdefault(p.name, p.default)
            if not any(p.kind == p.VAR_KEYWORD for p in sig):
                break
    assert set(entry.options) == set(params)  # every option the reward takes is documented, and no other
    doc = cls.__doc__
    for key, opt in entry.options.items():
        assert opt.default == (None if params[key] is inspect.Parameter.empty else params[key])
        assert f"{key} (default ``{opt.default!r}``): {opt.help}" in doc  # the docstring's Args come from the option
    sections = [line.strip() for line in doc.splitlines()]
    assert ("Args:" in sections) == bool(entry.options)
    assert "Returns:" in sections and "Example:" in sections and ">>> " in doc


def test_register_checks_documented_options_against_the_constructor():
    from medground.registry import Option

    class Stub:
        def __init__(self, scale: float = 2.0):
            self.scale = scale

    with pytest.raises(ValueError, match="does not take"):
        register("test_bad_option_reward", description="x", options={"sacle": "typo"})(Stub)
    with pytest.raises(ValueError, match="states default 3.0"):
        register("test_bad_default_reward", description="x", options={"scale": Option("x", default=3.0)})(Stub)
    with pytest.raises(ValueError, match="lower_snake_case"):
        register("Bad-Name", description="x")
    assert "test_bad_option_reward" not in rewards.REWARDS and "test_bad_default_reward" not in rewards.REWARDS


def test_cli_rewards_list_json_keeps_help_per_option_and_adds_defaults():
    import json

    from typer.testing import CliRunner

    from medground.cli import app

    result = CliRunner().invoke(app, ["rewards", "list", "--json"])
    assert result.exit_code == 0, result.output
    listed = {r["name"]: r for r in json.loads(result.output)}
    assert EXPECTED <= set(listed)
    iou = listed["iou"]
    assert iou["options"]["threshold"] == rewards.spec("iou").options["threshold"].help
    assert iou["defaults"]["threshold"] == 0.5 and iou["defaults"]["frame"] == "pixels"
