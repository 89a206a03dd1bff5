"""Progress in a log file is a line every few seconds, not tqdm redraws; ``--quiet`` is
quiet, other libraries' bars included; one module decides (issue 12, item 12)."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from medground import progress as pg
from medground.cli import main
from medground.data.phantom import generate_phantom_dataset

SRC = Path(__file__).resolve().parents[1] / "src" / "medground"


class _Tty(io.StringIO):
    def isatty(self):
        return True


def test_the_mode_follows_the_stream_the_environment_and_quiet(monkeypatch):
    monkeypatch.delenv(pg.PROGRESS_ENV, raising=False)
    assert pg.progress_mode(io.StringIO()) == "lines"
    assert pg.progress_mode(_Tty()) == "bar"
    monkeypatch.setenv(pg.PROGRESS_ENV, "off")
    assert pg.progress_mode(_Tty()) == "off"
    monkeypatch.setenv(pg.PROGRESS_ENV, "lines")
    assert pg.progress_mode(_Tty()) == "lines"
    monkeypatch.delenv(pg.PROGRESS_ENV)
    pg.set_quiet(True)
    try:
        assert pg.progress_mode(_Tty()) == "off"
        log = io.StringIO()
        for _ in pg.progress(range(3), stream=log, mode="lines", interval=0):
            pass
        assert log.getvalue() == ""
    finally:
        pg.set_quiet(False)


def test_lines_mode_writes_whole_lines_every_interval():
    log = io.StringIO()
    bar = pg.progress(total=12, desc="predict", unit="sample", stream=log, mode="lines", interval=0.1)
    for _ in range(12):
        time.sleep(0.03)
        bar.update(1)
    bar.close()
    text = log.getvalue()
    lines = text.splitlines()
    assert "\r" not in text and 2 <= len(lines) <= 6  # ~0.36 s at one line per 0.1 s, not one per update
    assert all(re.match(r"predict: \d+/12 sample \(\d+%\)", line) for line in lines)
    assert lines[-1].startswith("predict: 12/12 sample (100%)")
    short = io.StringIO()
    for _ in pg.progress(range(100), desc="quick", stream=short, mode="lines"):
        pass
    assert short.getvalue() == ""  # done before the first interval: nothing to report


def test_set_quiet_silences_the_datasets_library_and_comes_back():
    import datasets
    from datasets.utils import are_progress_bars_disabled

    pg.set_quiet(True)
    try:
        assert are_progress_bars_disabled() and pg.is_quiet()
    finally:
        pg.set_quiet(False)
    assert not are_progress_bars_disabled() and not pg.is_quiet()
    assert datasets is not None


def test_export_quiet_prints_no_bar_at_all(tmp_path, capsys):
    data = tmp_path / "data"
    generate_phantom_dataset(data, n=2, seed=0, size=64, progress=False)
    with pytest.raises(SystemExit) as exc:
        main(["data", "export", "trl", str(data), "--out", str(tmp_path / "trl"), "--quiet"])
    captured = capsys.readouterr()
    assert (exc.value.code or 0) == 0
    assert captured.err == "" and "Saving the dataset" not in captured.out
    assert "saved" in captured.out


def test_the_command_line_slows_other_libraries_bars_when_not_a_terminal():
    code = ("from medground.progress import configure_library_bars; configure_library_bars(); "
            "import io, tqdm; print(tqdm.tqdm(total=1, file=io.StringIO()).mininterval)")
    env = {k: v for k, v in os.environ.items() if k not in ("TQDM_MININTERVAL", pg.PROGRESS_ENV)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert float(out.stdout) == pg.LINE_INTERVAL


def test_every_progress_bar_in_the_package_is_made_by_the_progress_module():
    offenders = []
    for path in sorted(SRC.rglob("*.py")):
        if path.name == "progress.py" and path.parent == SRC:
            continue
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if re.search(r"\bfrom tqdm\b|\bimport tqdm\b|\btqdm\(", line):
                offenders.append(f"{path.relative_to(SRC)}:{n}: {line.strip()}")
    assert not offenders, "use medground.progress.progress instead:\n" + "\n".join(offenders)
