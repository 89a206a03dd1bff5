"""Jobs that tests/test_vllm.py runs inside the vLLM environment (``.venv-vllm``).

    .venv-vllm/bin/python tests/vllm_jobs.py engines MODEL DATA OUT_DIR

``engines`` predicts DATA with ``--engine hf`` and ``--engine vllm`` (the vLLM run in two
parts, to check that it resumes) and checks, with the vLLM engine already loaded, the
vision-GRPO bugs that apply to our path; it writes ``OUT_DIR/report.json`` for the test
to assert on.  Nothing here imports vLLM at module level (pytest imports this file for
its doctests in the main environment), and vLLM starts only under the ``__main__`` guard.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def _image_token_runs(ids: list[int], token: int) -> list[int]:
    """Lengths of the runs of ``token`` in ``ids``.

    >>> _image_token_runs([1, 7, 7, 7, 2, 7, 3], 7)
    [3, 1]
    """
    runs, n = [], 0
    for t in list(ids) + [None]:
        if t == token:
            n += 1
        elif n:
            runs.append(n)
            n = 0
    return runs


def _hf_inputs(processor, image, prompt):
    return processor(text=[prompt], images=[image], return_tensors="pt")


def _hf_prompt_logprobs(model, inputs, *, rope_1d: bool = False):
    """Log-probabilities of each prompt token given the ones before it (HF forward);
    ``rope_1d`` feeds plain 1-D positions instead of Qwen's M-RoPE (the bug to detect)."""
    import torch

    kwargs = dict(inputs)
    if rope_1d:
        n = inputs["input_ids"].shape[1]
        kwargs["position_ids"] = torch.arange(n).view(1, 1, n).expand(3, 1, n)
    with torch.inference_mode():
        logits = model(**kwargs).logits[0, :-1].float()
    ids = inputs["input_ids"][0, 1:]
    return torch.log_softmax(logits, -1).gather(1, ids[:, None])[:, 0]


def engines(model_dir: str, data: str, out_dir: str) -> None:
    import torch
    from PIL import Image

    from medground.engines import load_engine
    from medground.predict import build_messages, predict, read_samples
    from medground.templates import get_template

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    report: dict = {}

    hf = load_engine("hf", model_dir, device="cpu")
    predict(hf, data, out / "hf.jsonl", batch_size=4, max_new_tokens=40, overwrite=True, progress=False)

    vl = load_engine("vllm", model_dir, cache_dir=out / "vllm-cache")
    report["vllm_dtype"] = vl.dtype
    first = predict(vl, data, out / "vllm.jsonl", batch_size=16, max_new_tokens=40, limit=3, overwrite=True,
                    progress=False)
    rest = predict(vl, data, out / "vllm.jsonl", batch_size=16, max_new_tokens=40, progress=False)
    report["resume"] = {"first_written": first.written, "then_written": rest.written, "then_skipped": rest.skipped}

    # -- vision-GRPO bugs, on three images of different sizes
    items = read_samples(data)
    sizes_seen, picked = set(), []
    for it in items:
        img = Image.open(it.sample.image).convert("RGB")
        if img.size not in sizes_seen:
            sizes_seen.add(img.size)
            picked.append((it.sample, img))
    tpl = get_template(hf.template)
    proc, net = hf.processor, hf.policy.model
    image_token = proc.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    prompts = [proc.apply_chat_template(build_messages(s.query, tpl, hf.frame, *img.size), add_generation_prompt=True,
                                        tokenize=False) for s, img in picked]
    images = [img for _, img in picked]
    from vllm import SamplingParams

    greedy = SamplingParams(temperature=0.0, max_tokens=1, prompt_logprobs=0, detokenize=False)
    text_out = vl.llm.generate([{"prompt": p, "multi_modal_data": {"image": i}} for p, i in zip(prompts, images)],
                               greedy, use_tqdm=False)
    hf_ids = [_hf_inputs(proc, i, p)["input_ids"][0].tolist() for p, i in zip(prompts, images)]
    # TRL's colocate path hands vLLM token ids the HF processor already expanded, plus the image
    from medground.train.vllm_rollouts import collapse_image_runs

    # TRL's colocate path hands vLLM the ids the HF processor expanded; medground collapses them first
    raw_out = vl.llm.generate([{"prompt_token_ids": ids, "multi_modal_data": {"image": i}}
                               for ids, i in zip(hf_ids, images)], greedy, use_tqdm=False)
    ids_out = vl.llm.generate([{"prompt_token_ids": collapse_image_runs(ids, image_token), "multi_modal_data": {
        "image": i}} for ids, i in zip(hf_ids, images)], greedy, use_tqdm=False)
    report["image_tokens"] = [
        {"size": list(img.size), "hf": _image_token_runs(h, image_token),
         "vllm_from_text": _image_token_runs(list(t.prompt_token_ids), image_token),
         "vllm_from_collapsed_ids": _image_token_runs(list(o.prompt_token_ids), image_token),
         "vllm_from_expanded_ids": _image_token_runs(list(r.prompt_token_ids), image_token),
         "same_ids_from_text": list(t.prompt_token_ids) == h, "same_ids_from_collapsed_ids": list(o.prompt_token_ids) == h}
        for img, h, t, o, r in zip(images, hf_ids, text_out, ids_out, raw_out)]

    # M-RoPE: vLLM's log-prob of every prompt token after the image vs HF's, and HF's with 1-D positions
    rope = []
    for p, img, t in zip(prompts, images, text_out):
        inputs = _hf_inputs(proc, img, p)
        ids = inputs["input_ids"][0].tolist()
        start = max(i for i, x in enumerate(ids) if x == image_token) + 1  # the text after the image
        ref = _hf_prompt_logprobs(net, inputs)
        wrong = _hf_prompt_logprobs(net, inputs, rope_1d=True)
        got = torch.tensor([next(iter(d.values())).logprob for d in t.prompt_logprobs[1:]])
        sl = slice(start - 1, None)
        rope.append({"n": len(ref[sl]), "vllm_vs_hf": float((got[sl] - ref[sl]).abs().max()),
                     "hf_1d_vs_hf": float((wrong[sl] - ref[sl]).abs().max())})
    report["mrope"] = rope

    # left padding with mixed image sizes: HF in one padded batch, HF one by one, vLLM in one batch
    batch = hf.generate(images, prompts, max_new_tokens=40)
    alone = [hf.generate([i], [p], max_new_tokens=40)[0] for p, i in zip(prompts, images)]
    report["mixed_sizes"] = {"sizes": [list(i.size) for i in images], "hf_batch_equals_alone": batch == alone,
                             "vllm_batch_equals_hf": vl.generate(images, prompts, max_new_tokens=40) == alone}
    vl.close()
    (out / "report.json").write_text(json.dumps(report, indent=1))


def grpo(config: str, out_dir: str) -> None:
    """GRPO from a YAML config (vLLM colocate), recording every prompt vLLM generated from:
    its runs of image tokens and the visual tokens its image has."""
    from medground.config import load_config
    from medground.train import GRPORunConfig
    from medground.train.common import train_and_save
    from medground.train.grpo import build_grpo_trainer

    cfg = load_config(GRPORunConfig, config)
    trainer, processor, frame, _ = build_grpo_trainer(cfg)
    llm = trainer.vllm_generation.llm
    token = trainer._image_pad_token_id
    merge = processor.image_processor.merge_size ** 2
    seen = []
    generate = llm.generate

    def recording(prompts, *args, **kwargs):
        outputs = generate(prompts, *args, **kwargs)
        for p, o in zip(prompts, outputs):
            grid = processor.image_processor(images=[p["multi_modal_data"]["image"]])["image_grid_thw"]
            seen.append({"runs": _image_token_runs(list(o.prompt_token_ids), token),
                         "visual_tokens": int(grid.prod()) // merge})
        return outputs

    llm.generate = recording
    train_and_save(trainer, processor, frame, cfg)
    Path(out_dir, "vllm_prompts.json").write_text(json.dumps(seen))


JOBS = {"engines": engines, "grpo": grpo}

if __name__ == "__main__":
    JOBS[sys.argv[1]](*sys.argv[2:])
