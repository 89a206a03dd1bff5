"""The benchmark scripts still run against today's package, at toy sizes, and the two ways
each one compares still agree.  No timing is asserted: speed claims live in the scripts'
own output (README, docs).  The GRPO-step, demo-load and web-app benchmarks train or serve
a model and are left to their own commands."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"

CASES = {
    "bench_parsing.py": (["--sizes", "2000", "--repeats", "1"], "balanced nesting"),
    "bench_released_patterns.py": (["--sizes", "1000", "--big", "20000", "--repeats", "1"], "ratio"),
    "bench_rewards.py": (["--prompts", "2", "--generations", "2", "--size", "64", "--repeats", "1"],
                         "ours and one-at-a-time agree"),
    "bench_predict.py": (["--n", "4", "--batch", "2", "--max-new-tokens", "4", "--repeats", "1"],
                         "identical completions: 4/4"),
    "bench_segment.py": (["--g", "2", "--repeats", "1", "--skip-litemedsam"], "identical masks: True"),
}


@pytest.mark.parametrize("script", sorted(CASES))
def test_benchmark_runs_and_its_two_ways_agree(script, tmp_path):
    args, expected = CASES[script]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, str(BENCH / script), *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert expected in done.stdout, done.stdout[-2000:]
    assert "identical masks: False" not in done.stdout and "Traceback" not in done.stderr
