"""The command line's manners (issue 12, items 11 and 13): flags show no ``<bool>``,
help text is never cut mid-sentence, an overlay always has a legend for the prediction,
and the README's set-up commands for the real test set work as written."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import numpy as np
import pytest
import typer

from medground.cli import main
from medground.cli._apps import app

REPO = Path(__file__).resolve().parents[1]


def _commands():
    """``(path, click command)`` for every command and group of ``medground``."""
    root = typer.main.get_command(app)
    out, todo = [], [((), root)]
    while todo:
        path, cmd = todo.pop()
        out.append((path, cmd))
        for name, sub in sorted(getattr(cmd, "commands", {}).items()):
            todo.append(((*path, name), sub))
    return out


COMMANDS = _commands()


def _help(path, capsys, monkeypatch) -> str:
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setenv("TERMINAL_WIDTH", "200")
    with pytest.raises(SystemExit) as exc:
        main([*path, "--help"])
    assert (exc.value.code or 0) == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("path", [p for p, _ in COMMANDS], ids=[" ".join(p) or "medground" for p, _ in COMMANDS])
def test_help_shows_no_bool_beside_a_flag(path, capsys, monkeypatch):
    text = _help(path, capsys, monkeypatch)
    assert "<bool>" not in text and "--help" in text


@pytest.mark.parametrize("path, cmd", COMMANDS, ids=[" ".join(p) or "medground" for p, _ in COMMANDS])
def test_the_summary_of_every_command_is_one_whole_sentence(path, cmd):
    """``medground --help`` lists a command by its first help paragraph: one line, ending
    a sentence (a hard line break there is shown as a cut)."""
    first = inspect.cleandoc(cmd.help or "").split("\n\n")[0]
    assert first and "\n" not in first and first.rstrip().endswith("."), first


def test_long_help_is_reflowed_not_cut(capsys, monkeypatch):
    text = _help(("data", "validate"), capsys, monkeypatch)
    flat = re.sub(r"\s+", " ", text)
    assert "boxes inside the image with positive area, key points, mask size, duplicate ids." in flat
    line = next(x for x in text.splitlines() if "positive" in x)
    assert "positive area" in line  # on a wide terminal the sentence is not broken where the docstring was
    group = _help((), capsys, monkeypatch)
    assert "Score grounding predictions: mIoU, Acc@0.3/0.5/0.7, pDice and mask Dice." in group


def test_a_flag_given_a_value_is_refused_clearly(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["data", "validate", "x.jsonl", "--quiet", "true"])
    assert exc.value.code == 2 and "true" in capsys.readouterr().err


# ------------------------------------------------------------------ overlay legend


def test_an_overlay_without_a_predicted_box_says_so_in_its_legend():
    from medground.overlay import PRED, draw_overlay

    img = np.zeros((64, 64), np.uint8)
    none_given = draw_overlay(img, title="q")
    no_box = draw_overlay(img, pred_box=[], title="q")
    with_box = draw_overlay(img, pred_box=[10, 10, 30, 30], title="q")
    assert no_box.height > none_given.height  # a legend line was added
    assert no_box.height == with_box.height
    legend = np.asarray(no_box)[-(no_box.height - none_given.height):]
    assert (legend.reshape(-1, 3) == np.asarray(PRED)).all(axis=1).any()  # the prediction's swatch is there


def test_predict_image_draws_the_legend_when_the_answer_has_no_box(tmp_path, monkeypatch):
    """``predict --image`` whose completion has no box still writes a legend entry."""
    import medground.predict as predict_mod
    from medground.geometry import Frame
    from medground.models.policy import Policy

    calls = {}

    def fake_draw(image, **kw):
        calls.update(kw)
        from PIL import Image

        return Image.new("RGB", (8, 8))

    monkeypatch.setattr("medground.overlay.draw_overlay", fake_draw)
    monkeypatch.setattr(predict_mod, "predict_items",
                        lambda *a, **k: iter([[{"id": "x", "completion": "no idea", "boxes": [], "points": None,
                                                "mask": None, "frame": "pixels", "error": None}]]))
    from PIL import Image

    image = tmp_path / "x.png"
    Image.new("L", (16, 16)).save(image)
    policy = Policy(model=None, processor=None, frame=Frame("pixels"))
    predict_mod.predict_image(policy, image, "the heart", overlay=tmp_path / "ov.png")
    assert calls["pred_box"] == []  # "predicted nothing", which the legend names, not None ("not given")


# ------------------------------------------------------------------ set-up (README)


def test_the_realset_extra_installs_nilearn_and_the_readme_says_so():
    extra = re.search(r"^realset = \[(.*)\]$", (REPO / "pyproject.toml").read_text(), re.M)
    assert extra and '"nilearn' in extra.group(1)
    readme = (REPO / "README.md").read_text()
    before_script = readme[: readme.index("python scripts/build_realset.py")]
    assert '.[realset]"' in before_script[-600:], "the README must install the extra right before the script"


def test_build_realset_without_nilearn_fails_clearly_before_writing(tmp_path, monkeypatch):
    import importlib.util

    from medground.data.realset import build_realset
    from medground.errors import MedgroundError

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "nilearn" else real(name, *a))
    with pytest.raises(MedgroundError, match=r"mni152 needs nilearn .*\[realset\]"):
        build_realset(tmp_path / "rs")
    assert not (tmp_path / "rs").exists()
