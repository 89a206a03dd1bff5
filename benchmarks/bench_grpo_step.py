"""Where the time of one GRPO step of the demo recipe goes, phase by phase, with HF
``generate`` and with vLLM rollouts, in one run; then ``predict --engine vllm`` against
``--engine hf`` on the same samples.

    python benchmarks/bench_grpo_step.py                     # HF only (no vLLM in this environment)
    .venv-vllm/bin/python benchmarks/bench_grpo_step.py      # HF and vLLM (colocate), same prompts

The step is the demo's (``configs/demo_cpu.yaml``): its tiny Qwen2.5-VL (or ``--model DIR``,
e.g. a demo's ``sft/final``: an untrained model writes every completion to the length
limit), its phantom data (fewer images), its GRPO section (4 prompts x 8 completions,
T 0.8, 40 tokens) and its rewards (format, IoU > 0.5, soft IoU, semantic with an encoder
fitted for one epoch: the cost does not depend on the fit).  Each engine runs
``--steps`` timed steps after one warm-up step, from the same initial weights and data
order, so both see the same prompts in the first step (later ones differ only by their
sampled completions); each engine's steps run in a fresh process (vLLM's CPU engine pins the
OpenMP threads of the process it starts in).  Phases (exclusive wall seconds per step, median
over the steps):

* generation -- TRL's ``_generate_single_turn`` (HF ``generate``, or ``vllm.LLM.generate``),
  without the weight sync to vLLM, which is its own row;
* reward functions -- each one;
* log-probs without grad -- the old-policy / reference passes (TRL computes old log-probs
  only for the importance-sampling correction of vLLM rollouts or when generation and
  optimisation steps are misaligned, reference ones only with ``beta > 0``: the demo has
  ``beta: 0``);
* policy forward + loss, backward, optimizer step; other (data, logging, the rest of
  ``training_step``).

Then generation speed: generated tokens per second inside the step (both engines) and
``medground.predict`` on ``--predict-n`` training samples at batch 16 with each engine (greedy,
``--predict-tokens``), with the speed-up and the count of identical completions.

Runs unchanged on a GPU (the device is picked automatically; use the GPU build of vLLM,
``pip install 'medground[vllm]'``).  On a CPU, vLLM's caches and sockets stay in the
benchmark's temporary folder.
"""

from __future__ import annotations

import argparse
import collections
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")  # GiB of KV cache on a CPU
os.environ.setdefault("VLLM_CPU_CI_ENV", "1")  # CPU: no torch.compile in TRL's colocate engine (it sets no eager flag)
os.environ.setdefault("VLLM_NO_USAGE_STATS", "1")


class PhaseClock:
    """Exclusive wall time per named phase: a phase nested in another is subtracted from it."""

    def __init__(self):
        self.stack: list[list] = []  # [name, start, child seconds]
        self.step: dict[str, float] = collections.defaultdict(float)
        self.steps: list[dict[str, float]] = []
        self.tokens = 0
        self.step_tokens: list[int] = []

    def wrap(self, fn, name):
        def timed(*args, **kwargs):
            label = name(*args, **kwargs) if callable(name) else name
            self.stack.append([label, time.perf_counter(), 0.0])
            try:
                return fn(*args, **kwargs)
            finally:
                label, start, child = self.stack.pop()
                spent = time.perf_counter() - start
                self.step[label] += spent - child
                if self.stack:
                    self.stack[-1][2] += spent
        timed.__name__ = getattr(fn, "__name__", "timed")
        return timed

    def inside(self, label: str) -> bool:
        return any(frame[0] == label for frame in self.stack)

    def close_step(self, total: float) -> None:
        self.step["total"] = total
        self.steps.append(dict(self.step))
        self.step_tokens.append(self.tokens)
        self.step.clear()
        self.tokens = 0


def _timed_reward(clock: PhaseClock, fn, name: str):
    class Timed:
        __name__ = name

        def __call__(self, *args, **kwargs):
            return clock.wrap(fn, f"reward: {name}")(*args, **kwargs)

    return Timed()


def instrument(trainer, clock: PhaseClock) -> None:
    """Wrap the trainer's phases with ``clock`` (instance attributes only)."""
    from transformers import TrainerCallback

    gen = trainer._generate_single_turn

    def generate(*args, **kwargs):
        out = gen(*args, **kwargs)
        completion_ids = out[0] if isinstance(out, tuple) else None  # (completion_ids, logprobs)
        if completion_ids is not None:
            clock.tokens += sum(len(c) for c in completion_ids)
        return out

    trainer._generate_single_turn = clock.wrap(generate, "generation")
    vg = getattr(trainer, "vllm_generation", None)
    if vg is not None:
        vg.sync_weights = clock.wrap(vg.sync_weights, "weight sync to vLLM")
    trainer.reward_funcs = [_timed_reward(clock, f, n) for f, n in zip(trainer.reward_funcs, trainer.reward_func_names)]
    trainer._get_per_token_logps_and_entropies = clock.wrap(
        trainer._get_per_token_logps_and_entropies,
        lambda *a, **k: "policy forward + loss" if clock.inside("policy forward + loss") else "log-probs without grad")
    trainer.compute_loss = clock.wrap(trainer.compute_loss, "policy forward + loss")
    trainer.accelerator.backward = clock.wrap(trainer.accelerator.backward, "backward")

    class StepClock(TrainerCallback):
        def on_step_begin(self, args, state, control, **kw):
            self.t0 = time.perf_counter()

        def on_pre_optimizer_step(self, args, state, control, **kw):
            self.o0 = time.perf_counter()

        def on_optimizer_step(self, args, state, control, **kw):
            clock.step["optimizer step"] += time.perf_counter() - self.o0

        def on_step_end(self, args, state, control, **kw):
            clock.close_step(time.perf_counter() - self.t0)

    trainer.add_callback(StepClock())


def clock_from_json(data: dict) -> PhaseClock:
    clock = PhaseClock()
    clock.steps, clock.step_tokens = data["steps"], data["step_tokens"]
    return clock


def run_in_child(engine: str, tmp: Path, args) -> PhaseClock:
    """One engine's GRPO steps in a fresh process: vLLM's CPU engine pins the OpenMP threads of
    the process it starts in, which would change the other engine's times in a shared one."""
    import json
    import subprocess

    out = tmp / f"clock-{engine}.json"
    cmd = [sys.executable, __file__, "--child", engine, "--assets", str(tmp), "--steps", str(args.steps),
           "--images", str(args.images), "--threads", str(args.threads)] + (["--model", args.model] if args.model else [])
    subprocess.run(cmd, check=True)
    return clock_from_json(json.loads(out.read_text()))


def build_assets(tmp: Path, args) -> tuple:
    from medground import demo

    cfg = demo.load_demo_config(None, ["--images", str(args.images), "--semantic_fit.epochs", "1"])
    stages: dict = {}  # the demo's stage records (written under tmp)
    data = demo.select_categories(cfg, demo.make_data(cfg, tmp, stages), tmp)
    model = Path(args.model) if args.model else demo.make_model(cfg, tmp, stages)
    encoder = demo.make_encoder(cfg, tmp, data, stages)
    return cfg, data, model, encoder


def run_engine(engine: str, cfg, data: Path, model: Path, encoder, tmp: Path, steps: int) -> PhaseClock:
    import torch

    from medground import demo
    from medground.train.grpo import build_grpo_trainer

    gcfg = demo.grpo_run_config(cfg, tmp / f"grpo-{engine}", model, data, encoder)
    on_gpu = torch.cuda.is_available()
    gcfg.train.max_steps = steps + 1
    gcfg.train.save_steps = 10_000
    gcfg.train.use_cpu = not on_gpu
    gcfg.train.bf16 = None  # bf16 where the GPU has it, float32 on a CPU
    gcfg.train.report_to = []
    gcfg.train.logging_steps = 1
    gcfg.eval.every_steps = 0
    gcfg.grpo.log_completions = False
    gcfg.grpo.use_vllm = engine == "vllm"
    gcfg.grpo.vllm_mode = "colocate"
    trainer, *_ = build_grpo_trainer(gcfg)
    clock = PhaseClock()
    instrument(trainer, clock)
    trainer.train()
    clock.steps, clock.step_tokens = clock.steps[1:], clock.step_tokens[1:]  # drop the warm-up step
    if engine == "vllm":
        vg = getattr(trainer, "vllm_generation", None)
        llm = getattr(vg, "llm", None)
        core = getattr(getattr(llm, "llm_engine", None), "engine_core", None)
        if core is not None and hasattr(core, "shutdown"):
            core.shutdown()
    return clock


def phase_table(clocks: dict[str, PhaseClock]) -> str:
    names = []
    for c in clocks.values():
        for s in c.steps:
            names += [n for n in s if n not in names and n != "total"]
    order = ["generation", "weight sync to vLLM"] + sorted(n for n in names if n.startswith("reward")) + [
        "log-probs without grad", "policy forward + loss", "backward", "optimizer step"]
    order += [n for n in names if n not in order]
    med = {e: {n: statistics.median(s.get(n, 0.0) for s in c.steps) for n in order + ["total"]}
           for e, c in clocks.items()}
    for e in med:
        med[e]["other"] = max(0.0, med[e]["total"] - sum(med[e][n] for n in order))
    engines = list(clocks)
    head = "| phase | " + " | ".join(f"{e} s | {e} share" for e in engines)
    head += " | vllm / hf |" if len(engines) == 2 else " |"
    lines = [head, "|" + "---|" * (1 + 2 * len(engines) + (len(engines) == 2))]
    for n in order + ["other", "total"]:
        row = f"| {n} | " + " | ".join(f"{med[e][n]:.3f} | {100 * med[e][n] / med[e]['total']:.1f} %" for e in engines)
        if len(engines) == 2:
            a, b = med["hf"][n], med["vllm"][n]
            row += f" | {b / a:.2f}x |" if a > 1e-4 else " | - |"
        else:
            row += " |"
        lines.append(row)
    return "\n".join(lines)


def generation_rates(clocks: dict[str, PhaseClock]) -> list[str]:
    out = []
    for e, c in clocks.items():
        secs = sum(s.get("generation", 0.0) for s in c.steps)
        toks = sum(c.step_tokens)
        out.append(f"{e}: {toks} tokens generated in {secs:.2f} s of generation = {toks / max(secs, 1e-9):.0f} tokens/s")
    return out


def predict_speed(model: Path, data: Path, tmp: Path, n: int, max_new_tokens: int, have_vllm: bool) -> list[str]:
    from medground.engines import load_engine
    from medground.predict import predict_items, read_samples

    items = read_samples(data / "train.jsonl")[:n]  # the same samples for both engines
    res = {}
    for name in ["hf", "vllm"] if have_vllm else ["hf"]:
        opts = {"cache_dir": tmp / "vllm-cache"} if name == "vllm" else {}
        with load_engine(name, model, **opts) as engine:
            list(predict_items(engine, items[:16], batch_size=16, max_new_tokens=4))  # warm-up
            t = time.perf_counter()
            texts = [r["completion"] for recs in predict_items(engine, items, batch_size=16,
                                                                max_new_tokens=max_new_tokens) for r in recs]
            secs = time.perf_counter() - t
            tok = engine.processor.tokenizer
            ntok = sum(len(tok(x or "", add_special_tokens=False)["input_ids"]) for x in texts)
            res[name] = (secs, ntok, texts)
    lines = [f"predict {name}: {len(items)} samples, batch 16, {secs:.2f} s, {len(items) / secs:.2f} samples/s, "
             f"{ntok / secs:.0f} tokens/s" for name, (secs, ntok, _) in res.items()]
    if len(res) == 2:
        same = sum(a == b for a, b in zip(res["hf"][2], res["vllm"][2]))
        lines.append(f"predict speed-up vllm vs hf: {res['hf'][0] / res['vllm'][0]:.2f}x; identical completions "
                     f"{same}/{len(items)}")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=3, help="timed GRPO steps per engine (after one warm-up step)")
    ap.add_argument("--images", type=int, default=120, help="phantom images (the demo has 800)")
    ap.add_argument("--model", default=None, help="policy checkpoint (default: the demo's tiny model, untrained)")
    ap.add_argument("--engines", default="auto", help="hf, vllm or hf,vllm (auto: vllm too when installed)")
    ap.add_argument("--predict-n", type=int, default=64, help="samples for the predict comparison (0: skip)")
    ap.add_argument("--predict-tokens", type=int, default=64)
    ap.add_argument("--threads", type=int, default=0, help="torch threads, set as the demo sets them (0: every core)")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)  # internal: one engine, in its own process
    ap.add_argument("--assets", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()

    from medground.demo import set_cpu_threads

    set_cpu_threads(args.threads)  # before torch is imported: the demo's OpenMP waiting too
    import torch

    try:
        import vllm  # noqa: F401
        have_vllm = True
    except ImportError:
        have_vllm = False
    engines = ["hf", "vllm"] if args.engines == "auto" and have_vllm else (
        ["hf"] if args.engines == "auto" else args.engines.split(","))
    if "vllm" in engines and not have_vllm:
        sys.exit("vllm is not installed here: run this with .venv-vllm/bin/python (scripts/install_vllm_cpu.sh)")
    from medground.engines.vllm import vllm_cache_env

    if args.child:
        import json

        tmp = Path(args.assets)
        for k, v in vllm_cache_env(tmp / f"vllm-cache-{args.child}").items():
            os.environ.setdefault(k, v)
        cfg, data, model, encoder = build_assets(tmp, args)
        clock = run_engine(args.child, cfg, data, model, encoder, tmp, args.steps)
        (tmp / f"clock-{args.child}.json").write_text(json.dumps({"steps": clock.steps,
                                                                  "step_tokens": clock.step_tokens}))
        return
    with tempfile.TemporaryDirectory(prefix="bench_grpo_step_", dir=os.environ.get("BENCH_TMP")) as tmp:
        tmp = Path(tmp)
        for k, v in vllm_cache_env(tmp / "vllm-cache").items():
            os.environ.setdefault(k, v)
        cfg, data, model, encoder = build_assets(tmp, args)
        device = "cuda" if torch.cuda.is_available() else "cpu"
        print(f"device {device}, torch threads {torch.get_num_threads()}, model {model}, "
              f"{cfg.grpo['grpo']['num_generations']} completions x "
              f"{cfg.grpo['train']['per_device_train_batch_size'] // cfg.grpo['grpo']['num_generations']} prompts per "
              f"step, {args.steps} timed steps per engine", flush=True)
        clocks = {e: run_in_child(e, tmp, args) for e in engines}
        print("\nGRPO step by phase (median exclusive seconds per step):\n")
        print(phase_table(clocks))
        print()
        print("\n".join(generation_rates(clocks)))
        if args.predict_n:
            print("\n".join(predict_speed(model, data, tmp, args.predict_n, args.predict_tokens, "vllm" in engines)))


if __name__ == "__main__":
    main()
