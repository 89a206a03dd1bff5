"""The distributed path: two GRPO steps in two CPU processes, under
`accelerate launch --multi_gpu --num_processes 2` with `train.use_cpu: true`.

(accelerate's `--cpu --num_processes 2` starts ONE process unless MPI is set up; its
`--multi_gpu` launcher is torchrun, which starts N processes, and with `use_cpu` they
join over gloo.)  Both processes generate, score and reduce gradients; the validation
evaluation shards the samples and gathers them; only the main process writes the final
policy.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from medground.data.phantom import generate_phantom_dataset
from medground.models.tiny import TinyConfig, build_tiny_model

TINY = TinyConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=1, vision_hidden_size=32,
                  vision_intermediate_size=64, vision_depth=1, max_pixels=64 * 64)


@pytest.mark.slow
def test_grpo_two_processes(tmp_path):
    generate_phantom_dataset(tmp_path / "data", n=6, seed=5, size=64, val_frac=0.34, test_frac=0.0, progress=False)
    build_tiny_model(tmp_path / "tiny", seed=0, config=TINY)
    out = tmp_path / "run"
    cfg = tmp_path / "grpo.yaml"
    cfg.write_text(f"""
model: {{path: {tmp_path / 'tiny'}}}
data: {{train: {tmp_path / 'data/train.jsonl'}, val: {tmp_path / 'data/val.jsonl'}, template: r1}}
train: {{output_dir: {out}, max_steps: 2, per_device_train_batch_size: 2, learning_rate: 1.0e-3, logging_steps: 1,
        save_steps: 2, use_cpu: true, bf16: false, report_to: []}}
grpo: {{num_generations: 2, max_completion_length: 16, num_completions_to_print: 0}}
eval: {{every_steps: 2, max_samples: 3, batch_size: 2, max_new_tokens: 16}}
rewards: [{{name: format}}, {{name: iou, weight: 2.0}}]
""")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "2", "--num_machines", "1",
           "--multi_gpu", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "29517",
           "-m", "medground", "train", "grpo", "--config", str(cfg)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["global_step"] == 2
    hist = state["log_history"]
    steps = [h for h in hist if "reward" in h]
    assert [h["step"] for h in steps] == [1, 2]
    # 2 processes x 2 prompts x 2 generations = 8 completions per step, all scored
    assert all("rewards/format/mean" in h and "rewards/iou/mean" in h for h in steps)
    vals = [h for h in hist if "val/miou" in h]
    assert [h["step"] for h in vals] == [0, 2]
    assert (out / "final" / "model.safetensors").exists() and (out / "final" / "medground.json").exists()
    # two processes really ran: the trainer saves one RNG state per process
    assert sorted(p.name for p in (out / "checkpoint-2").glob("rng_state*.pth")) == ["rng_state_0.pth", "rng_state_1.pth"]
    # the run's summary is printed once, by the main process
    assert proc.stdout.count('"global_step": 2') == 1
