"""Batched vs one-at-a-time prediction on the tiny model (CPU or GPU).

    python benchmarks/bench_predict.py [--n 32] [--batch 16] [--max-new-tokens 32] [--model DIR]

Builds the tiny Qwen2.5-VL and a phantom dataset in a temporary folder (unless
``--model`` is given), warms both paths up, then predicts the same ``n`` samples
with batch size 1 and with ``--batch``, printing the times and the speed-up.  Both
runs must agree on every completion (greedy decoding, left padding).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=32)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--model", default=None, help="checkpoint folder (default: build the tiny model)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--repeats", type=int, default=2, help="timed repetitions per setting (best is kept)")
    args = ap.parse_args()

    import torch

    from medground.data.phantom import generate_phantom_dataset
    from medground.models.policy import load_policy
    from medground.models.tiny import build_tiny_model
    from medground.predict import predict_items, read_samples

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model_dir = args.model or build_tiny_model(tmp / "tiny", seed=0)
        generate_phantom_dataset(tmp / "data", n=max(4, args.n // 2 + 2), seed=0, progress=False)
        items = read_samples(tmp / "data" / "all.jsonl")[: args.n]
        if len(items) < args.n:
            raise SystemExit(f"only {len(items)} samples generated")
        policy = load_policy(model_dir, device=args.device)
        print(f"model {model_dir} on {policy.device}, {len(items)} samples, "
              f"max_new_tokens {args.max_new_tokens}, torch threads {torch.get_num_threads()}")

        def run(bs: int) -> tuple[float, list[str]]:
            t = time.perf_counter()
            texts = []
            for recs in predict_items(policy, items, batch_size=bs, max_new_tokens=args.max_new_tokens):
                texts.extend(r["completion"] for r in recs)
            return time.perf_counter() - t, texts

        # warm-up: kernels and allocator for both shapes
        list(predict_items(policy, items[: args.batch], batch_size=args.batch, max_new_tokens=4))
        list(predict_items(policy, items[:2], batch_size=1, max_new_tokens=4))
        t1, texts1 = min((run(1) for _ in range(args.repeats)), key=lambda r: r[0])
        tb, textsb = min((run(args.batch) for _ in range(args.repeats)), key=lambda r: r[0])
        same = sum(a == b for a, b in zip(texts1, textsb))
        print(f"batch 1 : {t1:7.2f} s  ({len(items) / t1:6.2f} samples/s)")
        print(f"batch {args.batch:<2}: {tb:7.2f} s  ({len(items) / tb:6.2f} samples/s)")
        print(f"speed-up batch {args.batch} vs batch 1: {t1 / tb:.2f}x; identical completions: {same}/{len(items)}")


if __name__ == "__main__":
    main()
