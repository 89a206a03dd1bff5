"""The ``hf`` engine: transformers ``generate`` on a :class:`~medground.models.policy.Policy`.

:func:`medground.predict.predict` runs this path for a plain ``Policy`` too (the demo
and the training evaluation do); the class gives it the engine interface that
``--engine vllm`` shares, so that benchmarks and callers can swap one for the other::

    from medground.engines import load_engine
    engine = load_engine("hf", "models/tiny", device="cpu")
    engine.generate([image], [prompt], max_new_tokens=64)   # greedy completions
"""

from __future__ import annotations

import os
from typing import Any


class HFEngine:
    """Greedy generation with transformers on a loaded policy (``model`` is a checkpoint
    folder or an already loaded :class:`~medground.models.policy.Policy`)."""

    name = "hf"

    def __init__(self, model: str | os.PathLike | Any, *, frame=None, template: str | None = None,
                 dtype: Any = "auto", min_pixels: int | None = None, max_pixels: int | None = None,
                 device: str | None = "auto", family: str | None = None):
        from ..models.policy import Policy, load_policy
        from ..shards import local_device

        if isinstance(model, Policy):
            self.policy = model
        else:  # in a data-parallel run, "auto" is this process's own GPU
            self.policy = load_policy(model, frame=frame, template=template, device=local_device(device),
                                      dtype=dtype, min_pixels=min_pixels, max_pixels=max_pixels, family=family)

    @property
    def processor(self):
        return self.policy.processor

    @property
    def frame(self):
        return self.policy.frame

    @property
    def template(self) -> str:
        return self.policy.template

    @property
    def source(self) -> str:
        return self.policy.source

    def generate(self, images: list, prompts: list[str], *, max_new_tokens: int = 128) -> list[str]:
        """Greedy completions of ``prompts`` (chat-formatted, one image each) in one left-padded batch."""
        from ..predict import generate_batch

        return generate_batch(self.policy, images, prompts, max_new_tokens=max_new_tokens)

    def close(self) -> None:
        """Nothing to release (the model is freed with the object)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
