"""The demo's torch threads give way to other busy processes: each training step runs on
the cores other processes left free during the previous one (never fewer than one), and
on every core again once they stop."""

from __future__ import annotations

import pytest
import torch

from medground.train import cpu_threads
from medground.train.cpu_threads import AdaptiveThreads, free_cores, machine_busy_seconds


@pytest.mark.parametrize("busy, own, wall, cores, want", [
    (2.0, 2.0, 1.0, 2, 2),    # alone, both cores ours
    (3.0, 2.0, 1.0, 2, 1),    # one busy core elsewhere
    (2.0, 1.0, 1.0, 2, 1),
    (8.0, 1.0, 1.0, 2, 1),    # a crowded machine: still one thread
    (4.2, 3.0, 1.0, 4, 3),
    (0.3, 0.1, 1.0, 4, 4),    # a little background noise is not a busy core
])
def test_free_cores(busy, own, wall, cores, want):
    assert free_cores(busy=busy, own=own, wall=wall, cores=cores) == want


def test_machine_busy_seconds_reads_proc_stat(tmp_path):
    import os

    stat = tmp_path / "stat"
    stat.write_text("cpu  100 0 50 1000 20 0 10 0 0 0\ncpu0 1 2 3\n")
    assert machine_busy_seconds(str(stat)) == pytest.approx(160 / os.sysconf("SC_CLK_TCK"))
    assert machine_busy_seconds(str(tmp_path / "missing")) is None


def test_threads_follow_the_competing_load():
    before = torch.get_num_threads()
    # (machine busy s, own cpu s, wall s) at the start of each step
    samples = iter([(0, 0, 0), (2.0, 2.0, 1.0), (5.0, 3.0, 2.0), (7.0, 4.0, 3.0), (8.0, 5.0, 4.0)])
    cb = AdaptiveThreads(2)
    current = {}
    cb._sample = lambda: current["s"]
    try:
        torch.set_num_threads(2)
        for s in samples:
            current["s"] = s
            cb.on_step_begin(None, None, None)
        # alone -> 2; another process busy for two steps -> 1, 1; it stopped -> 2
        assert cb.history == [2, 1, 1, 2]
        assert torch.get_num_threads() == 2
        assert cb.on_log(None, None, None) is None  # every other trainer event is a no-op
    finally:
        torch.set_num_threads(before)


def test_the_demo_default_turns_it_on():
    from medground.demo import set_cpu_threads

    before = torch.get_num_threads()
    try:
        set_cpu_threads(0)
        assert isinstance(cpu_threads.adaptive_threads_callback(), AdaptiveThreads)
        set_cpu_threads(1)  # an explicit count is kept as given
        assert cpu_threads.adaptive_threads_callback() is None and torch.get_num_threads() == 1
    finally:
        cpu_threads.disable()
        torch.set_num_threads(before)
