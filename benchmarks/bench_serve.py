"""The web app's two latencies: the first greedy answer, and opening Browse on a
1 000-sample prediction file — each measured in the library, over HTTP and in the page.

    python benchmarks/bench_serve.py [--samples 1000] [--max-new-tokens 32] [--model DIR] [--no-browser]

Builds the tiny Qwen2.5-VL (unless ``--model``) and a phantom dataset of at least
``--samples`` samples in a temporary folder, writes a prediction file answering every
sample with its truth box jittered (and its mask), starts ``medground serve`` in this
process on a free port, then times:

* first answer: ``Grounder.ground`` (the library), the ``/ground`` API through
  ``gradio_client`` (a fresh client, as a script would), and the page (headless Chromium:
  click *Ground* -> overlay shown), each the *first* call of its kind after start;
* Browse: ``Browser(data, [predictions])`` (read, check paths, score with ``evaluate``,
  1 000 bootstrap resamples) and the page (open the URL, click *Browse* -> rows shown).

The untrained tiny model never stops early, so ``--max-new-tokens`` bounds its answer (32
tokens is about the length of a trained model's ``<think>..</think><answer>{bbox}</answer>``).
Prints the times and the ratios of each path to the library call.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def write_predictions(data: Path, out: Path, seed: int = 0) -> int:
    import numpy as np

    from medground.data.masks import encode_rle, load_mask
    from medground.data.schema import read_jsonl

    rng = np.random.default_rng(seed)
    samples = read_jsonl(data)
    with open(out, "w") as fh:
        for s in samples:
            box = (np.asarray(s.boxes[0]) + rng.normal(0, 3, 4)).round(1).tolist()
            mask = encode_rle(load_mask(s.mask)) if s.mask else None
            fh.write(json.dumps({"id": s.id, "completion": f"<answer>{box}</answer>", "boxes": [box],
                                 "points": s.points, "mask": mask, "frame": "pixels", "error": None}) + "\n")
    return len(samples)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=1000)
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--model", default=None, help="checkpoint folder (default: build the tiny model)")
    ap.add_argument("--no-browser", action="store_true", help="skip the page measurements")
    args = ap.parse_args()

    from medground.data.phantom import generate_phantom_dataset
    from medground.data.schema import read_jsonl
    from medground.models.policy import load_policy
    from medground.models.tiny import build_tiny_model
    from medground.serve import Browser, Grounder, serve

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = args.model or build_tiny_model(tmp / "tiny", seed=0)
        n_images = max(1, args.samples // 3 + 10)
        generate_phantom_dataset(tmp / "data", n=n_images, seed=0, size=224, progress=False)
        samples = read_jsonl(tmp / "data" / "all.jsonl")[: args.samples]
        data = tmp / "data" / "bench.jsonl"
        data.write_text("".join(json.dumps(s.to_dict()) + "\n" for s in samples))
        pred = tmp / "data" / "pred.jsonl"
        n = write_predictions(data, pred)
        image = Path(samples[0].image)
        query = samples[0].query
        print(f"dataset: {n} samples; model: {model}; max_new_tokens {args.max_new_tokens}")

        t = time.perf_counter()
        handle = serve(model, segmenter="watershed", data=data, predictions=[pred], port=0,
                       max_new_tokens=args.max_new_tokens, device="cpu")
        print(f"start (model + Browse loaded, server listening): {time.perf_counter() - t:.2f} s")
        try:
            times = {}
            grounder = Grounder(load_policy(model, device="cpu"), None, max_new_tokens=args.max_new_tokens)
            t = time.perf_counter()
            grounder.ground(image, query)
            times["answer: library (Grounder.ground)"] = time.perf_counter() - t
            from gradio_client import Client, handle_file

            t = time.perf_counter()
            Client(handle.url, verbose=False).predict(handle_file(str(image)), query, api_name="/ground")
            times["answer: /ground API (new gradio_client)"] = time.perf_counter() - t
            t = time.perf_counter()
            Browser(data, [pred])
            times["browse: library (Browser, evaluate + checks)"] = time.perf_counter() - t
            exe = shutil.which("chromium") or shutil.which("chromium-browser")
            if exe and not args.no_browser:
                times.update(page_times(handle.url, exe, image, query))
        finally:
            handle.stop()
        base = {"answer": times["answer: library (Grounder.ground)"],
                "browse": times["browse: library (Browser, evaluate + checks)"]}
        for name, sec in times.items():
            print(f"{name:52s} {sec:6.2f} s   x{sec / base[name.split(':')[0]]:.2f} of the library call")


def page_times(url: str, exe: str, image: Path, query: str) -> dict:
    from playwright.sync_api import sync_playwright

    out = {}
    flags = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
             "--disable-component-update", "--disable-sync"]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, headless=True, args=flags)
        page = browser.new_page()
        page.set_default_timeout(120_000)
        page.goto(url)
        page.locator("#ground-file input[type=file]").set_input_files(str(image))
        page.wait_for_selector("#ground-preview img")
        page.fill("#ground-query textarea", query)
        t = time.perf_counter()
        page.click("#ground-submit")
        page.wait_for_selector("#ground-overlay img")
        out["answer: page (click Ground -> overlay shown)"] = time.perf_counter() - t
        page2 = browser.new_page()
        page2.set_default_timeout(120_000)
        t = time.perf_counter()
        page2.goto(url)
        page2.click("#tab-browse-button")
        page2.wait_for_selector("#browse-table [role=gridcell]")
        out["browse: page (open URL, click Browse -> rows shown)"] = time.perf_counter() - t
        browser.close()
    return out


if __name__ == "__main__":
    main()
