"""Data-parallel predict: `accelerate launch --multi_gpu --num_processes 2 -m medground predict ...`
on two CPU processes (accelerate's `--multi_gpu` is its torchrun launcher and starts N processes
on a machine without GPUs too; its `--cpu` starts one process unless MPI is set up).

Each process predicts a disjoint shard into its own part; the parts merge into one
prediction file identical to a single-process run; an interrupted shard resumes from its
part.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from medground.data.phantom import generate_phantom_dataset
from medground.models.policy import load_policy
from medground.models.tiny import build_tiny_model
from medground.predict import predict
from medground.resume import sidecar_path
from medground.shards import Shard, part_path

pytestmark = pytest.mark.usefixtures("one_thread")

ARGS = ["--max-new-tokens", "12", "--batch-size", "3"]


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    root = tmp_path_factory.mktemp("dp")
    generate_phantom_dataset(root / "data", n=4, seed=4, size=64, progress=False)
    build_tiny_model(root / "tiny", seed=0)
    return root


def _launch(assets, out: Path, port: int, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "2", "--num_machines", "1",
           "--multi_gpu", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(port),
           "-m", "medground", "predict", "--model", str(assets / "tiny"), "--data", str(assets / "data/all.jsonl"),
           "--out", str(out), *ARGS, *extra]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, cwd=assets)


@pytest.mark.slow
def test_two_processes_merge_into_the_single_process_file_and_resume(assets, tmp_path):
    single = tmp_path / "single.jsonl"
    predict(load_policy(assets / "tiny", device="cpu"), assets / "data/all.jsonl", single, max_new_tokens=12,
            batch_size=3, progress=False)
    ids = [json.loads(x)["id"] for x in single.read_text().splitlines()]
    assert len(ids) >= 8

    # rank 0 was interrupted: one finished line and one cut short
    out = tmp_path / "parallel" / "pred.jsonl"
    out.parent.mkdir()
    part0, part1 = part_path(out, Shard(0, 2)), part_path(out, Shard(1, 2))
    first = single.read_text().splitlines()[0]
    part0.write_text(first + "\n" + first[:25])
    sidecar_path(part0).write_text(sidecar_path(single).read_text())  # what rank 0 had claimed before its kill

    proc = _launch(assets, out, 29531)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert out.read_text() == single.read_text()  # same records, same (data) order
    got0 = [json.loads(x)["id"] for x in part0.read_text().splitlines()]
    got1 = [json.loads(x)["id"] for x in part1.read_text().splitlines()]
    assert got0 == ids[0::2] and got1 == ids[1::2]  # disjoint shards, together every sample
    assert "(1 already done" in proc.stdout  # rank 0 resumed from its part
    assert proc.stdout.count("merged every part into") >= 1

    rerun = _launch(assets, out, 29532)  # everything done: nothing predicted again, same file
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert rerun.stdout.count("wrote 0 predictions") == 2
    assert out.read_text() == single.read_text()
    # the merged file records what made it, so one process resumes it like its own file
    assert json.loads(sidecar_path(out).read_text()) == json.loads(sidecar_path(single).read_text())
    again = predict(load_policy(assets / "tiny", device="cpu"), assets / "data/all.jsonl", out, max_new_tokens=12,
                    batch_size=3, progress=False)
    assert again.written == 0 and again.skipped == len(ids)

    # a merged file made with other settings is refused; --overwrite starts every part and it again
    stale = json.loads(sidecar_path(out).read_text())
    sidecar_path(out).write_text(json.dumps({**stale, "max_new_tokens": 5}))
    refused = _launch(assets, out, 29533)
    assert refused.returncode != 0 and "max_new_tokens: 5 -> 12" in refused.stderr
    redone = _launch(assets, out, 29534, "--overwrite")
    assert redone.returncode == 0, redone.stderr[-3000:]
    assert out.read_text() == single.read_text() and json.loads(sidecar_path(out).read_text()) == stale
