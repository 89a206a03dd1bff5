"""GRPO with vLLM rollouts: two adapters between TRL 1.16's vLLM integration and our path.

**Image tokens expanded once (colocate).**  TRL's colocate mode hands vLLM the prompt's
token ids as the HF processor made them -- each image placeholder already expanded into
one ``<|image_pad|>`` per visual token -- together with the image, and vLLM 0.32 expands
the first of those tokens again: a 112-px image (16 visual tokens) arrives as a run of 31,
and the rollouts are sampled from a corrupted context (TRL #6294 / #6401).
:func:`collapse_image_runs` shortens every run to the one placeholder vLLM expects before
the ids reach ``vllm.LLM.generate``; vLLM's prompt is then token for token the HF
processor's (``tests/test_vllm.py`` checks both).

**Weights into a colocated CPU engine.**  TRL copies each updated tensor into vLLM's model
with ``model.load_weights``; vLLM's CPU build has by then packed its linear layers for
oneDNN and dropped the tensors that call writes into (``'Parameter' object has no attribute
'weight_loader'``).  On a CPU medground syncs through vLLM's ``reload_weights`` instead (the
same tensors, in memory), which unpacks, loads and packs again
(:func:`reload_colocated_weights`).

**Fresh vision features after every weight sync.**  vLLM caches the vision encoder's
output per image; after the policy's weights change, a cached entry was computed with the old
vision tower (vLLM's ``reset_encoder_cache``: "should be called when model weights are
updated").  TRL's sync does not call it, so an image seen again in a later step would be
encoded by stale weights; :func:`fresh_vision_after_sync` drops the cache after every sync.

**Server logprobs from vLLM 0.32.**  TRL 1.16 (which supports vLLM up to 0.31) reads the
multimodal ``/inference/v1/generate`` answer's log-probs as ``{"token": "token_id:N"}``;
vLLM 0.32 writes ``{"token_id": N}``.  :func:`tokens_as_token_ids` rewrites the answer into
the form TRL reads (nothing changes with a server that already writes it).

**Weights to a server from a CPU trainer.**  TRL pushes the policy's weights to
``trl vllm-serve`` after every optimisation step over vLLM's NCCL weight-transfer engine,
which needs a CUDA device: ``VLLMClient.init_communicator`` refuses a CPU.  For a CPU
trainer (tests, CI, a laptop) the main process instead saves the policy into a folder the
server can read (``OUTPUT/vllm-weights``: ``save_pretrained``, the checkpoint's own tensor
names) and asks every vLLM worker to reload its weights from there (vLLM's
``reload_weights`` through the server's ``/collective_rpc``, one of the development
endpoints ``trl vllm-serve`` turns on).  The server must see the trainer's file system
(same machine or a shared disk).  On GPUs TRL's NCCL path runs unchanged.

>>> collapse_image_runs([1, 9, 9, 9, 2, 9, 9, 3], 9)
[1, 9, 2, 9, 3]
>>> from types import SimpleNamespace as NS
>>> needs_file_sync(NS(use_vllm=True, vllm_mode="server", use_cpu=True))
True
>>> needs_file_sync(NS(use_vllm=True, vllm_mode="colocate", use_cpu=True))
False
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

from ..errors import MedgroundError


def collapse_image_runs(ids: list[int], token: int) -> list[int]:
    """``ids`` with every run of ``token`` shortened to a single ``token``."""
    out: list[int] = []
    for t in ids:
        if t != token or not out or out[-1] != token:
            out.append(t)
    return out


def expand_images_once(trainer) -> None:
    """Make a colocate-mode trainer hand vLLM one placeholder per image (see above)."""
    generation = getattr(trainer, "vllm_generation", None)
    token = getattr(trainer, "_image_pad_token_id", None)
    if generation is None or token is None or getattr(generation, "mode", None) != "colocate":
        return
    generate = generation.generate

    def generate_once(prompts, images, num_generations, profiler=None):
        if images is not None:
            prompts = [collapse_image_runs(list(p), token) if imgs is not None else p
                       for p, imgs in zip(prompts, images)]
        return generate(prompts, images, num_generations, profiler)

    generation.generate = generate_once


def tokens_as_token_ids(response: dict) -> dict:
    """A ``/inference/v1/generate`` answer with every log-prob entry also named the way
    TRL 1.16 reads it (``"token": "token_id:N"``).

    >>> r = {"choices": [{"logprobs": {"content": [{"token_id": 7, "logprob": -0.1,
    ...                                             "top_logprobs": [{"token_id": 7, "logprob": -0.1}]}]}}]}
    >>> tokens_as_token_ids(r)["choices"][0]["logprobs"]["content"][0]["token"]
    'token_id:7'
    """
    for choice in response.get("choices") or []:
        content = (choice.get("logprobs") or {}).get("content") or []
        for entry in content:
            for e in [entry, *(entry.get("top_logprobs") or [])]:
                if "token" not in e and "token_id" in e:
                    e["token"] = f"token_id:{e['token_id']}"
    return response


def fresh_vision_after_sync(trainer) -> None:
    """After every weight sync, drop vLLM's cached vision-encoder outputs (see above); on a
    server, also read its log-probs the way TRL does (:func:`tokens_as_token_ids`)."""
    generation = getattr(trainer, "vllm_generation", None)
    if generation is None:
        return
    sync = generation.sync_weights

    def sync_then_reset() -> None:
        sync()
        if generation.mode == "colocate":
            generation.llm.llm_engine.reset_encoder_cache()
        elif trainer.accelerator.is_main_process:
            client = generation.vllm_client
            client.session.post(f"{client.base_url}/reset_encoder_cache", timeout=60).raise_for_status()

    generation.sync_weights = sync_then_reset
    client = getattr(generation, "vllm_client", None)
    if client is not None:
        post = client._post
        client._post = lambda url, **kw: (tokens_as_token_ids(post(url, **kw)) if url.endswith("/inference/v1/generate")
                                          else post(url, **kw))


def reload_colocated_weights(trainer) -> None:
    """On a CPU, make a colocate-mode trainer push its weights into vLLM through
    ``reload_weights`` (see the module docstring); a no-op elsewhere."""
    generation = getattr(trainer, "vllm_generation", None)
    if generation is None or getattr(generation, "mode", None) != "colocate":
        return
    from vllm.platforms import current_platform

    if not current_platform.is_cpu():
        return

    def sync_weights() -> None:
        runner = generation.llm.llm_engine.model_executor.driver_worker.model_runner
        runner.reload_weights(weights_iterator=generation._iter_named_params())
        generation.llm.reset_prefix_cache()

    generation.sync_weights = sync_weights


def needs_file_sync(args) -> bool:
    """True for GRPO arguments that ask for a vLLM server while the trainer is on a CPU."""
    if not (getattr(args, "use_vllm", False) and getattr(args, "vllm_mode", "") == "server"):
        return False
    if getattr(args, "use_cpu", False):
        return True
    import torch

    return not torch.cuda.is_available()


def reload_from_folder(client, folder: Path) -> None:
    """Ask every worker of the server behind ``client`` (TRL's ``VLLMClient``) to reload
    its weights from ``folder``, then drop the prefix cache computed with the old ones."""
    response = client.session.post(f"{client.base_url}/collective_rpc", timeout=600,
                                   json={"method": "reload_weights", "kwargs": {"weights_path": str(folder)}})
    if response.status_code != 200:
        raise MedgroundError(f"the vLLM server at {client.base_url} did not reload the weights from {folder}: "
                             f"HTTP {response.status_code} {response.text[:300]}")
    client.reset_prefix_cache()


@contextlib.contextmanager
def cpu_server_weight_sync(args, folder: str | Path) -> Iterator[Callable]:
    """Around building a ``GRPOTrainer``: when :func:`needs_file_sync`, TRL's NCCL
    communicator is not opened, and the ``attach(trainer)`` this yields makes the
    trainer's weight sync go through ``folder``.  Otherwise ``attach`` does nothing."""
    if not needs_file_sync(args):
        yield lambda trainer: None
        return
    from trl.generation.vllm_client import VLLMClient

    folder = Path(folder).resolve()
    original = VLLMClient.init_communicator
    VLLMClient.init_communicator = lambda self, device=0: None  # the NCCL group: CUDA only

    def attach(trainer) -> None:
        generation = trainer.vllm_generation

        def sync_weights() -> None:
            accelerator = trainer.accelerator
            if accelerator.is_main_process:
                model = accelerator.unwrap_model(trainer.model)
                if hasattr(model, "peft_config"):
                    raise MedgroundError("LoRA with vllm_mode: server on a CPU is not supported; merge the adapter "
                                         "or use vllm_mode: colocate")
                model.save_pretrained(folder)
                reload_from_folder(generation.vllm_client, folder)
            accelerator.wait_for_everyone()

        generation.sync_weights = sync_weights

    try:
        yield attach
    finally:
        VLLMClient.init_communicator = original
