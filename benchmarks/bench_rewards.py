"""Time one GRPO step of the semantic reward three ways, in one run.

One step = P prompts x G completions (default 8 x 8 = 64) on P images of S x S pixels
(default 512), answers in Qwen2.5-VL's resized-pixel frame, scored by a CLIP
ViT-B/16-sized encoder built from config (random weights; weights do not change the
cost).  The three ways:

1. ours            ``medground.rewards.get("semantic", encoder=...)`` called once with
                   the 64 completions: one batched ``encode_images`` of all distinct
                   crops, distinct texts embedded once (the text cache is cleared
                   before every timed step, so no cross-step cache hits flatter it);
2. one at a time   the same reward and encoder object, called once per completion
                   with the text cache disabled (``cache_size=0``): 64 image and 64
                   text forward passes of batch 1;
3. released        the pattern of MedGround-R1's released ``medclip_reward``: the
                   encoder is loaded from disk inside every call, then the *whole*
                   images and the ground-truth texts of the 64 completions are encoded
                   in one batch (no crop, no cache) and thresholded at cos > 0.

Ways 1 and 2 compute the same rewards (checked); way 3 scores something else (the
whole image), as the release did.  By default every answer differs (no help from
de-duplication); ``--duplicates 0.5`` makes half the answers repeat one of their
group, as converged GRPO groups do.  The ways run in interleaved rounds (order rotated
each round) and the median wall-clock and process-CPU seconds are reported.

Usage (one command; about 10 minutes on 2 CPU cores with the default 3 rounds)::

    python benchmarks/bench_rewards.py                 # defaults above
    python benchmarks/bench_rewards.py --small         # tiny encoder: a quick smoke run
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from medground import rewards  # noqa: E402
from medground.geometry import Frame, map_boxes  # noqa: E402
from medground.models.encoders import HFEncoder  # noqa: E402
from medground.models.semantic_fit import build_dual_encoder, build_image_processor, build_tokenizer  # noqa: E402

QUERIES = [
    "small nodule in the right upper zone",
    "left lower zone consolidation",
    "right sided pleural effusion blunting the costophrenic angle",
    "large mass in the left mid zone",
    "left apical pneumothorax with a visible pleural line",
    "enlarged cardiac silhouette",
    "patchy airspace opacity in the right lower lobe",
    "calcified granuloma in the left upper zone",
]


def build_encoder(small: bool, batch_size: int):
    """A ViT-B/16 + 12-layer/512 text CLIP (or a tiny one) from config, with a
    word-level tokenizer and a 224-px image processor."""
    tok = build_tokenizer(QUERIES, max_length=77)
    if small:
        kw = dict(image_size=64, patch_size=16, hidden_size=64, layers=2, heads=4, projection_dim=64)
    else:
        kw = dict(image_size=224, patch_size=16, hidden_size=768, layers=12, heads=12, projection_dim=512,
                  text_hidden_size=512, text_layers=12, text_heads=8)
    torch.manual_seed(0)
    model = build_dual_encoder(len(tok), max_length=77, pad_id=tok.pad_token_id, bos_id=tok.bos_token_id,
                               eos_id=tok.eos_token_id, **kw)
    return HFEncoder(model, tok, build_image_processor(kw["image_size"]), batch_size=batch_size)


def make_step(prompts: int, generations: int, size: int, seed: int = 0, duplicates: float = 0.0):
    """Images, queries and completions (boxes jittered around a target, in the Qwen2.5-VL
    frame); a ``duplicates`` share of completions repeats an earlier answer of its group."""
    rng = np.random.default_rng(seed)
    frame = Frame.parse("qwen2.5-vl")
    images, queries, completions = [], [], []
    for p in range(prompts):
        im = Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8))
        w, h = rng.uniform(0.1, 0.4, 2) * size
        x, y = rng.uniform(0, size - w), rng.uniform(0, size - h)
        target = np.array([x, y, x + w, y + h])
        for g in range(generations):
            if g and rng.random() < duplicates:
                completions.append(completions[-1])
            else:
                box = target + rng.normal(0, 0.05 * size, 4)
                box = map_boxes([box], (size, size), dst=frame)[0].round().astype(int).tolist()
                completions.append(f"<think>the finding lies at {box}</think><answer>{{\"bbox_2d\": {box}}}</answer>")
            images.append(im)
            queries.append(QUERIES[p % len(QUERIES)])
    return images, queries, completions


def released_pattern(save_dir: str, images, queries, batch_size: int) -> list[float]:
    """MedGround-R1's released semantic reward, structurally: build the encoder in the
    call, score the whole images against the texts in one batch, 1.0 when cos > 0."""
    from transformers import AutoImageProcessor, AutoModel, AutoTokenizer

    model = AutoModel.from_pretrained(save_dir, local_files_only=True)
    enc = HFEncoder(model, AutoTokenizer.from_pretrained(save_dir), AutoImageProcessor.from_pretrained(save_dir),
                    batch_size=batch_size)
    cos = (enc.encode_images(images) * enc.encode_texts(queries)).sum(-1)
    return [1.0 if c > 0 else 0.0 for c in cos.tolist()]


def interleaved(ways: dict, repeats: int) -> dict:
    """Run every way ``repeats`` times, rotating the order each round so that a change
    in machine load hits all ways alike; per way the median wall-clock and process-CPU
    seconds and the last output."""
    names = list(ways)
    wall = {n: [] for n in names}
    cpu = {n: [] for n in names}
    out = {}
    for r in range(repeats):
        for n in names[r % len(names):] + names[: r % len(names)]:
            t, c = time.perf_counter(), time.process_time()
            out[n] = ways[n]()
            wall[n].append(time.perf_counter() - t)
            cpu[n].append(time.process_time() - c)
            print(f"    round {r + 1}: {n:<14} {wall[n][-1]:8.2f} s wall {cpu[n][-1]:8.2f} s cpu", flush=True)
    return {n: (statistics.median(wall[n]), statistics.median(cpu[n]), out[n]) for n in names}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--prompts", type=int, default=8)
    ap.add_argument("--generations", type=int, default=8)
    ap.add_argument("--size", type=int, default=512, help="image side in pixels")
    ap.add_argument("--repeats", type=int, default=3, help="interleaved rounds; the median per way is reported")
    ap.add_argument("--batch-size", type=int, default=64, help="encoder batch size of ours and the released pattern")
    ap.add_argument("--small", action="store_true", help="tiny encoder instead of CLIP-B/16 (smoke run)")
    ap.add_argument("--duplicates", type=float, default=0.0,
                    help="share of completions repeating an earlier answer of their group (default 0: all distinct)")
    args = ap.parse_args(argv)

    torch.set_grad_enabled(False)
    enc = build_encoder(args.small, args.batch_size)
    images, queries, completions = make_step(args.prompts, args.generations, args.size, duplicates=args.duplicates)
    n = len(completions)
    cols = dict(image=images, query=queries)
    ours = rewards.get("semantic", encoder=enc, frame="qwen2.5-vl")
    single = rewards.get("semantic", encoder=enc, frame="qwen2.5-vl", cache_size=0)
    print(f"{args.prompts} prompts x {args.generations} completions = {n} per step, {args.size}x{args.size} images, "
          f"encoder {'tiny' if args.small else 'CLIP ViT-B/16 (768x12 vision, 512x12 text)'} on "
          f"{enc.device} with {torch.get_num_threads()} threads; {len(set(completions))} distinct answers", flush=True)

    # warm-up (first-call allocations) on a few completions, not timed
    ours(completions=completions[:2], image=images[:2], query=queries[:2])

    def run_ours():
        ours.text_cache.clear()
        return ours(completions=completions, **cols)

    def run_single():
        return [single(completions=[c], image=[im], query=[q])[0] for c, im, q in zip(completions, images, queries)]

    with tempfile.TemporaryDirectory() as d:
        enc.model.save_pretrained(d)
        enc.tokenizer.save_pretrained(d)
        enc.image_processor.save_pretrained(d)
        res = interleaved({"ours": run_ours, "one-at-a-time": run_single,
                           "released": lambda: released_pattern(d, images, queries, args.batch_size)}, args.repeats)
    (t_ours, c_ours, r_ours), (t_single, c_single, r_single), (t_rel, c_rel, _) = res.values()
    diff = float(np.max(np.abs(np.array(r_ours) - np.array(r_single))))
    print(f"median of {args.repeats} round(s), seconds per step (wall / process CPU):")
    print(f"  ours (batched crops, cached text)      {t_ours:8.2f} / {c_ours:8.2f}")
    print(f"  one at a time (encoder built once)     {t_single:8.2f} / {c_single:8.2f}")
    print(f"  released (encoder loaded every call)   {t_rel:8.2f} / {c_rel:8.2f}")
    print(f"ratio one-at-a-time / ours: {t_single / t_ours:.2f}x wall, {c_single / c_ours:.2f}x CPU")
    print(f"ratio released / ours:      {t_rel / t_ours:.2f}x wall, {c_rel / c_ours:.2f}x CPU")
    print(f"ours and one-at-a-time agree: max |reward difference| = {diff:.2e}")
    return 0 if diff < 1e-4 else 1


if __name__ == "__main__":
    sys.exit(main())
