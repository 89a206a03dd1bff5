"""The demo's GRPO step alone and beside one competing CPU-bound process, for several
thread settings, in one run.

    python benchmarks/bench_demo_load.py                  # every setting, 8 steps each (2 warm-up)
    python benchmarks/bench_demo_load.py --settings demo,spin --steps 12

A user's machine is rarely idle.  With every core in torch's thread pool and OpenMP's
default waiting (threads spin while they wait for work), a second busy process makes the
pool's threads wait for a core that is taken, and each step slows several-fold.  Each
setting runs the demo recipe's GRPO stage (``configs/demo_cpu.yaml``: its tiny model,
4 prompts x 8 completions, its rewards; phantom data) in a fresh process, set up the way
``medground demo`` sets itself up (:func:`medground.demo.set_cpu_threads` before torch is
imported), first alone, then beside ``python -c "while True: pass"`` (one core's worth of
competing work).  Printed: the median seconds per step after the warm-up, and the slow-down
under the competing process.

Settings (``--settings``, comma-separated):

* ``demo``     -- what ``medground demo`` does (``threads: 0``): every core, passive OpenMP
                  waiting, and each step on the cores other processes left free
                  (:mod:`medground.train.cpu_threads`);
* ``fixed``    -- every core for every step, passive waiting (the demo before the adaptive threads);
* ``spin``     -- every core, OpenMP's default waiting (threads spin before they sleep);
* ``one``      -- one thread;
* ``spinN``    -- every core, ``GOMP_SPINCOUNT=N`` (threads spin N times, then sleep).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
SETTINGS = {  # name -> (environment changes, threads passed to set_cpu_threads)
    "demo": ({}, 0),
    "fixed": ({"OMP_WAIT_POLICY": "PASSIVE"}, CORES),
    "spin": ({"OMP_WAIT_POLICY": "", "GOMP_SPINCOUNT": None}, CORES),  # empty: libgomp's default (spin, then sleep)
    "one": ({}, 1),
}


def setting(name: str) -> tuple[dict, int]:
    if name.startswith("spin") and name[4:].isdigit():
        return {"OMP_WAIT_POLICY": "", "GOMP_SPINCOUNT": name[4:]}, CORES
    if name not in SETTINGS:
        sys.exit(f"unknown setting {name!r}; choose from {', '.join(SETTINGS)}, spinN")
    return SETTINGS[name]


def worker(root: Path, threads: int, steps: int) -> None:
    """One GRPO run of ``steps`` steps; prints the seconds of each step as JSON."""
    from medground import demo

    demo.set_cpu_threads(threads)  # before torch is imported, as `medground demo` does
    import torch
    from transformers import TrainerCallback

    from medground.train.grpo import build_grpo_trainer

    cfg = demo.load_demo_config(None, ["--images", "120"])
    gcfg = demo.grpo_run_config(cfg, root / f"grpo-{os.getpid()}", root / "tiny", root / "subset", root / "encoder")
    gcfg.train.max_steps = steps
    gcfg.train.save_steps = 10_000
    gcfg.train.report_to = []
    gcfg.eval.every_steps = 0
    gcfg.grpo.log_completions = False
    times: list[float] = []

    class Clock(TrainerCallback):
        def on_step_begin(self, args, state, control, **kw):
            self.t0 = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            times.append(time.perf_counter() - self.t0)

    trainer, *_ = build_grpo_trainer(gcfg)
    trainer.add_callback(Clock())
    trainer.train()
    print("STEPS " + json.dumps({"threads": threads or CORES, "times": times, "threads_end": torch.get_num_threads(),
                                 "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
                                 "gomp_spincount": os.environ.get("GOMP_SPINCOUNT")}), flush=True)


def prepare(root: Path) -> None:
    from medground import demo

    cfg = demo.load_demo_config(None, ["--images", "120", "--semantic_fit.epochs", "1"])
    stages: dict = {}  # the demo's stage records (written under root)
    data = demo.select_categories(cfg, demo.make_data(cfg, root, stages), root)
    demo.make_model(cfg, root, stages)
    demo.make_encoder(cfg, root, data, stages)


def run(root: Path, name: str, steps: int, warmup: int, competing: bool) -> dict:
    env_changes, threads = setting(name)
    env = dict(os.environ)
    for k, v in env_changes.items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = v
    env.pop("OMP_NUM_THREADS", None)
    rival = None
    if competing:
        rival = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        proc = subprocess.run([sys.executable, __file__, "--worker", str(root), str(threads), str(steps)], env=env,
                              capture_output=True, text=True, timeout=3600)
    finally:
        if rival is not None:
            rival.kill()
            rival.wait()
    line = next((x for x in proc.stdout.splitlines() if x.startswith("STEPS ")), None)
    if proc.returncode != 0 or line is None:
        sys.exit(f"{name}: the GRPO run failed:\n{proc.stderr[-3000:]}")
    got = json.loads(line[6:])
    got["median"] = statistics.median(got["times"][warmup:])
    return got


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker(Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--settings", default="demo,fixed,spin,one")
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--warmup", type=int, default=2)
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    print(f"{CORES} cores; load average before: {os.getloadavg()[0]:.2f}", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench_demo_load_", dir=os.environ.get("BENCH_TMP")) as tmp:
        root = Path(tmp)
        prepare(root)
        rows = []
        for name in args.settings.split(","):
            alone = run(root, name, args.steps, args.warmup, competing=False)
            busy = run(root, name, args.steps, args.warmup, competing=True)
            rows.append((name, alone, busy))
            print(f"{name}: alone {alone['median']:.2f} s/step ({alone['threads_end']} threads at the end), beside one "
                  f"busy process {busy['median']:.2f} s/step ({busy['threads_end']} threads at the end), "
                  f"{busy['median'] / alone['median']:.2f}x", flush=True)
        print("\n| setting | alone s/step (threads) | beside one busy process (threads) | slow-down |")
        print("|---|---|---|---|")
        for name, alone, busy in rows:
            print(f"| {name} | {alone['median']:.2f} ({alone['threads_end']}) | {busy['median']:.2f} "
                  f"({busy['threads_end']}) | {busy['median'] / alone['median']:.2f}x |")


if __name__ == "__main__":
    main()
