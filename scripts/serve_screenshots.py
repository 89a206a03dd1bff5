"""Screenshots of `medground serve`'s two tabs for the docs (headless Chromium).

    python scripts/serve_screenshots.py --model runs/demo/grpo/final --data runs/demo/data/test.jsonl \\
        --predictions runs/demo/predictions_sft.jsonl runs/demo/predictions_grpo.jsonl --out docs/images

Starts the app on a free port, grounds the first test sample's query in its image (Ground)
and opens the first row of the table sorted by ΔIoU (Browse), then writes
``serve_ground.png`` and ``serve_browse.png`` (palette PNGs, small) to ``--out``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]


def small_png(src: Path, dst: Path, width: int = 1100) -> None:
    from PIL import Image

    im = Image.open(src).convert("RGB")
    if im.width > width:
        im = im.resize((width, round(im.height * width / im.width)), Image.Resampling.LANCZOS)
    im.quantize(colors=128, method=Image.Quantize.MEDIANCUT).save(dst, optimize=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--predictions", nargs="+", required=True)
    ap.add_argument("--out", default="docs/images")
    ap.add_argument("--sample", type=int, default=0, help="which test sample to ground")
    args = ap.parse_args()

    from playwright.sync_api import sync_playwright

    from medground.data.schema import read_jsonl
    from medground.serve import serve

    sample = read_jsonl(args.data)[args.sample]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    raw = Path(tempfile.mkdtemp())  # full-size screenshots; only the small copies go to --out
    handle = serve(args.model, segmenter="watershed", data=args.data, predictions=args.predictions, port=0,
                   device="cpu")
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=shutil.which("chromium"), headless=True, args=FLAGS)
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.set_default_timeout(120_000)
            page.goto(handle.url)
            page.locator("#ground-file input[type=file]").set_input_files(sample.image)
            page.wait_for_selector("#ground-preview img")
            page.fill("#ground-query textarea", sample.query)
            page.click("#ground-submit")
            page.wait_for_selector("#ground-overlay img")
            time.sleep(1)
            page.screenshot(path=str(raw / "serve_ground.png"), full_page=True)
            page.click("#tab-browse-button")
            page.wait_for_selector("#browse-table [role=gridcell]")
            page.click("#browse-sort input")
            page.get_by_role("option", name="ΔIoU (B − A)", exact=True).first.click()
            time.sleep(1.5)
            page.locator("#browse-table [role=row][data-index='0'] [role=gridcell]").nth(2).click()
            page.wait_for_selector("#browse-overlay-0 img")
            time.sleep(1)
            page.screenshot(path=str(raw / "serve_browse.png"), full_page=True)
            browser.close()
    finally:
        handle.stop()
    for name in ("serve_ground", "serve_browse"):
        small_png(raw / f"{name}.png", out / f"{name}.png")
        print(out / f"{name}.png", (out / f"{name}.png").stat().st_size // 1024, "KB")


if __name__ == "__main__":
    main()
