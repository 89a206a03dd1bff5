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
        assert all(isinstance(v, str) and v for v in s.options.values())


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
