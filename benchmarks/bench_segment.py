#!/usr/bin/env python
"""Per-image state cache vs re-encoding per prompt, and watershed latency.

    python benchmarks/bench_segment.py [--g 8] [--repeats 3] [--device cpu] [--skip-litemedsam]

1. LiteMedSAM, G prompts on one 512 x 512 image (the G completions of one GRPO prompt):
   *cached*  = one embedding + one batched decoder call for the G boxes;
   *uncached* = a cache-less segmenter that re-encodes the image for every prompt.
   Prints both medians and the speed-up; the two paths must give identical masks.
2. watershed on the same image: median time per prompt (target < 50 ms), cached vs
   uncached (the smoothing is the image state), and the ratio.

The image is scikit-image's retina fundus photograph resized to 512 x 512; the G
boxes are the optic-disc box of the real test set jittered by up to 8 px.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402


def _image_and_boxes(g: int, seed: int = 0):
    import skimage.data
    from PIL import Image

    img = np.asarray(Image.fromarray(skimage.data.retina()).resize((512, 512), Image.Resampling.LANCZOS))
    rng = np.random.default_rng(seed)
    base = np.array([46.0, 184.0, 125.0, 289.0])  # optic disc (medground.data.realset)
    boxes = base + rng.uniform(-8, 8, size=(g, 4))
    return img, boxes


def _median_time(fn, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def bench_cache(name: str, img, boxes, repeats: int, **options) -> tuple[float, float]:
    from medground.models.segmenters import get_segmenter

    cached_seg = get_segmenter(name, **options)
    uncached_seg = get_segmenter(name, cache_size=0, **options)
    if name != "watershed":  # share the weights: only the caching differs
        uncached_seg.model = cached_seg.model

    def cached():
        cached_seg.cache.clear()  # each repeat starts from a new image: one embedding per repeat
        state = cached_seg.embed(img)
        return cached_seg.segment(state, boxes)

    def uncached():
        return np.stack([uncached_seg.segment_image(img, b[None])[0] for b in boxes])

    cached()  # warm-up (allocations, lazy imports)
    t_cached, m_cached = _median_time(cached, repeats)
    t_uncached, m_uncached = _median_time(uncached, repeats)
    same = bool((m_cached == m_uncached).all())
    print(f"{name:10s} G={len(boxes)}  cached {t_cached * 1e3:9.1f} ms   re-encode per prompt {t_uncached * 1e3:9.1f} ms   "
          f"speed-up x{t_uncached / t_cached:.2f}   identical masks: {same}")
    return t_cached, t_uncached


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--g", type=int, default=8, help="prompts per image (GRPO group size)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--skip-litemedsam", action="store_true")
    args = ap.parse_args(argv)
    import torch

    img, boxes = _image_and_boxes(args.g)
    print(f"image 512x512, G={args.g}, torch threads {torch.get_num_threads()}, repeats {args.repeats} (medians)")
    if not args.skip_litemedsam:
        bench_cache("litemedsam", img, boxes, args.repeats, device=args.device)
    t_c, t_u = bench_cache("watershed", img, boxes, max(args.repeats, 5))
    print(f"watershed per prompt: cached {t_c / args.g * 1e3:.1f} ms, uncached {t_u / args.g * 1e3:.1f} ms "
          f"(target < 50 ms on 512x512)")
    from medground.models.segmenters import get_segmenter

    ws = get_segmenter("watershed")
    state = ws.embed(img)
    full = np.array([[0.0, 0.0, 512.0, 512.0]])
    t_full, _ = _median_time(lambda: ws.segment(state, full), 7)
    print(f"watershed whole-image box (worst case, ROI subsampled): {t_full * 1e3:.1f} ms per prompt")


if __name__ == "__main__":
    main()
