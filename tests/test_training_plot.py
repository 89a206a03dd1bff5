"""The training plot (``training_curves.png``) is written whole: a valid PNG, no temporary
file beside it, an old plot replaced only by a complete new one."""

from __future__ import annotations

import os

import pytest
from PIL import Image

from medground.train.callbacks import CURVES_PNG, write_training_plot

HISTORY = [{"step": s, "reward": 0.1 * s, "rewards/iou/mean": 0.05 * s, "val/miou": 0.2 + 0.01 * s} for s in range(5)]


def test_plot_is_a_complete_png_and_no_temporary_file_is_left(tmp_path):
    path = write_training_plot(HISTORY, tmp_path / "run" / CURVES_PNG)
    assert path == tmp_path / "run" / CURVES_PNG
    with Image.open(path) as im:
        assert im.format == "PNG" and im.width > 300
    assert os.listdir(path.parent) == [CURVES_PNG]
    assert write_training_plot([{"step": 1, "epoch": 0.5}], tmp_path / "none.png") is None  # nothing to draw


def test_a_failed_plot_keeps_the_previous_one(tmp_path, monkeypatch):
    import matplotlib.figure

    path = write_training_plot(HISTORY, tmp_path / CURVES_PNG)
    before = path.read_bytes()

    def crash(self, fname, **kwargs):
        with open(fname, "wb") as fh:
            fh.write(b"\x89PNG half")
        raise OSError("No space left on device")

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", crash)
    with pytest.raises(OSError, match="No space"):
        write_training_plot(HISTORY, path)
    assert path.read_bytes() == before and os.listdir(tmp_path) == [CURVES_PNG]
