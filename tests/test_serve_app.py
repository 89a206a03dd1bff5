"""`medground serve` as its users meet it: a server started from the command line, a
script calling it through gradio_client, and a real (headless Chromium) browser
uploading images, typing queries and browsing predictions.

Outside CI the module skips, saying why, when Gradio, Playwright or Chromium is
missing; in CI (``CI`` set) a missing piece fails instead.  ``MEDGROUND_SCREENSHOTS=DIR``
keeps the screenshots of both tabs in DIR (the README's come from there).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from pydicom.data import get_testdata_file

IN_CI = os.environ.get("CI", "").lower() not in ("", "0", "false", "no")
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]
MAX_NEW_TOKENS = 16
QUERY = "left pleural effusion"


def _missing(reason: str):
    if IN_CI:
        pytest.fail(f"{reason} (CI must run the web app's tests; .ci/run installs it)", pytrace=False)
    pytest.skip(f"SKIPPED LOUDLY: {reason}", allow_module_level=True)


try:
    import gradio_client  # noqa: F401
    from gradio_client import Client, handle_file
except ImportError:
    _missing('gradio_client is not installed: pip install -e ".[dev]"')


def sibling(name: str):
    """Another test module of this folder (the suite imports in importlib mode: no package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name(f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def chromium_path() -> str | None:
    for name in (os.environ.get("MEDGROUND_CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


# ------------------------------------------------------------------ the server


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    """A tiny model, phantom images and two prediction files (the model's, and one
    that answers with the truth) in one folder."""
    from medground.data.phantom import generate_phantom_dataset
    from medground.data.schema import read_jsonl
    from medground.models.tiny import build_tiny_model
    from medground.predict import predict

    root = tmp_path_factory.mktemp("serve")
    build_tiny_model(root / "tiny", seed=0)
    generate_phantom_dataset(root / "data", n=3, seed=2, size=160, progress=False)
    data = root / "data" / "all.jsonl"
    predict(root / "tiny", data, root / "data" / "model.jsonl", max_new_tokens=8, batch_size=16, progress=False)
    with open(root / "data" / "truth.jsonl", "w") as fh:
        for k, s in enumerate(read_jsonl(data)):
            box = s.boxes[0] if k % 2 == 0 else [s.width - s.boxes[0][2], s.boxes[0][1], s.width - s.boxes[0][0],
                                                  s.boxes[0][3]]
            fh.write(json.dumps({"id": s.id, "completion": "<answer>truth</answer>", "boxes": [box], "points": None,
                                 "mask": None, "frame": "pixels", "error": None}) + "\n")
    return root


@pytest.fixture(scope="module")
def server(assets):
    """``medground serve`` in a subprocess on a free port; stopped at the end."""
    cmd = [sys.executable, "-m", "medground", "serve", "--model", str(assets / "tiny"), "--segmenter", "watershed",
           "--data", str(assets / "data" / "all.jsonl"), "--predictions", str(assets / "data" / "model.jsonl"),
           str(assets / "data" / "truth.jsonl"), "--port", "0", "--max-new-tokens", str(MAX_NEW_TOKENS),
           "--max-upload-mb", "2"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ})
    lines: list[str] = []
    url = None
    deadline = time.monotonic() + 240
    while url is None and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            if proc.poll() is not None:
                break
            continue
        lines.append(line)
        m = re.search(r"medground serve: (http://127\.0\.0\.1:\d+)", line)
        url = m.group(1) if m else None
    if url is None:
        proc.kill()
        pytest.fail("medground serve did not start:\n" + "".join(lines[-30:]))
    drain = threading.Thread(target=lambda: [lines.append(x) for x in proc.stdout], daemon=True)
    drain.start()
    yield url
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="module")
def image(assets) -> Path:
    return sorted((assets / "data" / "images").glob("*.png"))[0]


@pytest.fixture(scope="module")
def cli_answer(assets, image, tmp_path_factory):
    """What `medground predict --image` answers for the same image and query."""
    out = tmp_path_factory.mktemp("cli") / "overlay.png"
    proc = subprocess.run([sys.executable, "-m", "medground", "predict", "--model", str(assets / "tiny"), "--image",
                           str(image), "--query", QUERY, "--out", str(out), "--max-new-tokens", str(MAX_NEW_TOKENS),
                           "--segmenter", "watershed"], capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.splitlines()[0])


# ------------------------------------------------------------------ HTTP and scripts


def test_healthz_names_model_and_segmenter(server, assets):
    with urllib.request.urlopen(f"{server}/healthz", timeout=10) as r:
        assert r.status == 200
        health = json.loads(r.read())
    assert health == {"status": "ready", "model": str(assets / "tiny"), "family": None, "frame": "qwen2.5-vl",
                      "template": "r1", "segmenter": "watershed"}


def test_a_script_gets_the_answer_json_predict_gives(server, image, cli_answer):
    answer = Client(server, verbose=False).predict(handle_file(str(image)), QUERY, api_name="/ground")
    for key in ("completion", "boxes", "points", "frame", "error"):
        assert answer[key] == cli_answer[key], key
    assert answer["query"] == QUERY and answer["image"]["width"] == 160


def test_scripts_get_errors_as_messages(server, image, assets):
    from gradio_client.exceptions import AppError

    client = Client(server, verbose=False)
    with pytest.raises(AppError, match="type a phrase or a clinical question first"):
        client.predict(handle_file(str(image)), "   ", api_name="/ground")
    with pytest.raises(Exception, match="FileData"):  # a server path is not an upload: nothing is read
        client.predict("/etc/passwd", QUERY, api_name="/ground")
    assert client.predict(handle_file(str(image)), "cardiomegaly", api_name="/ground")["query"] == "cardiomegaly"


def test_concurrent_requests_queue_and_each_gets_its_own_answer(server, image):
    queries = ["left pleural effusion", "right apical pneumothorax", "cardiomegaly", "mass in the left mid zone"]
    results: dict[str, dict] = {}

    def ask(q):
        results[q] = Client(server, verbose=False).predict(handle_file(str(image)), q, api_name="/ground")

    threads = [threading.Thread(target=ask, args=(q,)) for q in queries]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert {q: results[q]["query"] for q in queries} == {q: q for q in queries}


def test_the_command_line_refuses_bad_starts_in_one_line(assets, tmp_path):
    env = {**os.environ}
    run = subprocess.run([sys.executable, "-m", "medground", "serve", "--port", "0"], capture_output=True, text=True,
                         env=env, timeout=120)
    assert run.returncode == 2 and run.stderr.strip().startswith("error: nothing to serve")
    assert len(run.stderr.strip().splitlines()) == 1
    bad = tmp_path / "bad.jsonl"
    line = json.loads((assets / "data" / "all.jsonl").read_text().splitlines()[0])
    line["image"] = "../../../../etc/hostname"
    bad.write_text(json.dumps(line) + "\n")
    run = subprocess.run([sys.executable, "-m", "medground", "serve", "--data", str(bad), "--predictions",
                          str(assets / "data" / "model.jsonl"), "--port", "0"], capture_output=True, text=True,
                         env=env, timeout=120)
    assert run.returncode == 2 and "bad.jsonl:1" in run.stderr and "lies outside the" in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1


# ------------------------------------------------------------------ in a real browser


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing('playwright is not installed: pip install -e ".[dev]"')
    exe = chromium_path()
    if exe is None:
        _missing("Chromium is not installed: apt-get install -y chromium (or set MEDGROUND_CHROMIUM)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, headless=True, args=CHROMIUM_FLAGS)
        yield b
        b.close()


@pytest.fixture
def page(browser, server):
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    pg = context.new_page()
    pg.set_default_timeout(120_000)  # generous: CI shares two cores
    pg.goto(server)
    pg.wait_for_selector("#ground-file")
    yield pg
    context.close()


def screenshot_dir(tmp_path) -> Path:
    d = Path(os.environ.get("MEDGROUND_SCREENSHOTS") or tmp_path)
    d.mkdir(parents=True, exist_ok=True)
    return d


def upload(pg, path) -> None:
    """Upload ``path`` through the file box (emptied first, as a user clicks its ×)."""
    pg.wait_for_selector("#ground-file")
    if not pg.locator("#ground-file input[type=file]").count():
        pg.locator("#ground-file button[aria-label='Clear']").first.click()
        pg.wait_for_selector("#ground-file input[type=file]", state="attached")
    pg.locator("#ground-file input[type=file]").set_input_files(str(path))


def status(pg) -> str:
    return pg.inner_text("#ground-status").strip()


def wait_status(pg, pattern: str) -> str:
    pg.wait_for_function("([sel, pat]) => new RegExp(pat).test(document.querySelector(sel).innerText)",
                         arg=["#ground-status", pattern])
    return status(pg)


def answer_json(pg) -> dict:
    return json.loads(pg.locator("#ground-answer .cm-content").inner_text())


def preview_src(pg) -> str:
    return pg.get_attribute("#ground-preview img", "src") or ""


def test_ground_an_uploaded_image(page, image, cli_answer, tmp_path):
    upload(page, image)
    page.wait_for_selector("#ground-preview img")
    page.fill("#ground-query textarea", QUERY)
    page.click("#ground-submit")
    wait_status(page, "^Answered")
    page.wait_for_selector("#ground-overlay img")
    shown = answer_json(page)
    for key in ("completion", "boxes", "points", "frame"):
        assert shown[key] == cli_answer[key], key
    assert shown["query"] == QUERY
    assert page.is_visible("#ground-download-json") and page.is_visible("#ground-download-png")
    with page.expect_download() as dl:
        page.click("#ground-download-json")
    saved = json.loads(Path(dl.value.path()).read_text())
    assert saved["boxes"] == cli_answer["boxes"] and saved["frame"] == "qwen2.5-vl"
    page.screenshot(path=str(screenshot_dir(tmp_path) / "serve_ground.png"))


def test_dicom_and_nifti_uploads_with_window_and_slice(page, tmp_path):
    import nibabel as nib
    import numpy as np

    upload(page, get_testdata_file("CT_small.dcm"))
    assert "DICOM, 128 x 128" in wait_status(page, "DICOM")
    assert not page.is_visible("#ground-slice")
    volume = np.zeros((24, 20, 9), np.int16)
    for z in range(9):
        volume[4:4 + 2 * z, 3:17, z] = 100 * (z + 1)  # every slice differs
    path = tmp_path / "vol.nii.gz"
    nib.save(nib.Nifti1Image(volume, np.diag([1.0, 1.0, 2.0, 1.0])), path)
    upload(page, path)
    assert "axial slice 4 of 9" in wait_status(page, "NIFTI")
    assert page.is_visible("#ground-slice")
    before = preview_src(page)
    track = page.locator("#ground-slice input[type=range]").bounding_box()
    page.mouse.click(track["x"] + track["width"] * 0.9, track["y"] + track["height"] / 2)  # move the slider right
    moved = int(re.search(r"axial slice (\d+) of 9", wait_status(page, r"axial slice [5-8] of 9")).group(1))
    page.wait_for_function("([before]) => document.querySelector('#ground-preview img').src !== before", arg=[before])
    page.fill("#ground-query textarea", "the bright block")
    page.click("#ground-submit")
    wait_status(page, "^Answered")
    assert answer_json(page)["image"]["slice"] == moved


def test_bad_input_gets_a_message_and_the_app_lives_on(page, tmp_path, image):
    bomb_png = sibling("test_serve_limits").bomb_png

    text = tmp_path / "notes.png"
    text.write_text("not an image\n" * 100)
    upload(page, text)
    assert "notes.png: not a readable image" in wait_status(page, "not a readable image")
    cut = tmp_path / "cut.png"
    cut.write_bytes(image.read_bytes()[:600])
    upload(page, cut)
    assert "cut.png" in wait_status(page, "cut.png")
    upload(page, bomb_png(tmp_path / "bomb.png"))
    assert "limit is 64 megapixels" in wait_status(page, "megapixels")
    page.fill("#ground-query textarea", QUERY)
    page.click("#ground-submit")  # the bomb is refused at submit too, never decoded
    wait_status(page, "^⚠️ bomb.png: .*megapixels")
    big = tmp_path / "big.png"
    big.write_bytes(os.urandom(3 * 1024 * 1024))
    upload(page, big)
    page.wait_for_selector("text=/exceed|maximum/i")
    upload(page, image)
    wait_status(page, "PNG, 160 x 160")
    page.fill("#ground-query textarea", "")
    page.click("#ground-submit")
    wait_status(page, "type a phrase")
    page.fill("#ground-query textarea", "x" * 10_000)
    page.click("#ground-submit")
    assert "10000 characters; the limit is 1000" in wait_status(page, "characters")
    page.fill("#ground-query textarea", QUERY)
    page.click("#ground-submit")
    wait_status(page, "^Answered")  # still alive


def test_two_tabs_submitting_at_once_get_their_own_answers(browser, server, image):
    context = browser.new_context()
    pages = [context.new_page(), context.new_page()]
    queries = ["right apical pneumothorax", "cardiomegaly"]
    try:
        for pg, q in zip(pages, queries):
            pg.set_default_timeout(90_000)
            pg.goto(server)
            upload(pg, image)
            pg.wait_for_selector("#ground-preview img")
            pg.fill("#ground-query textarea", q)
        for pg in pages:
            pg.click("#ground-submit")
        for pg, q in zip(pages, queries):
            wait_status(pg, "^Answered")
            assert answer_json(pg)["query"] == q
    finally:
        context.close()


#: The table's rendered rows, in order (the grid draws the rows in view as ``role=row`` divs).
ROWS_JS = ("[...document.querySelectorAll('#browse-table [role=row][data-index]')]"
           ".sort((a, b) => a.dataset.index - b.dataset.index)")
CELLS_JS = "r => [...r.querySelectorAll('[role=gridcell]')]"


def table_rows(pg) -> list[list[str]]:
    return pg.evaluate(f"() => {ROWS_JS}.map(r => ({CELLS_JS})(r).map(c => c.innerText.trim()))")


def choose(pg, dropdown: str, option: str) -> None:
    pg.click(f"{dropdown} input")
    pg.get_by_role("option", name=option, exact=True).first.click()


def test_browse_sort_filter_and_open_a_row(page, tmp_path):
    page.click("#tab-browse-button")
    page.wait_for_selector("#browse-table [role=gridcell]")
    summary = page.inner_text("#browse-summary")
    assert "model" in summary and "truth" in summary and "mIoU" in summary
    rows = table_rows(page)
    assert len(rows) >= 6
    header = page.eval_on_selector_all("#browse-table th[role=columnheader]", "hs => hs.map(h => h.innerText.trim())")
    col = next(i for i, h in enumerate(header) if h.startswith("IoU truth"))
    choose(page, "#browse-sort", "IoU truth")
    page.click("#browse-descending input")
    page.wait_for_function(f"([k]) => {{ const v = {ROWS_JS}.map(r => +({CELLS_JS})(r)[k].innerText);"
                           " return v.length > 1 && v.every((x, i) => i === 0 || v[i - 1] >= x) && v[0] > v[v.length - 1]; }",
                           arg=[col])
    rows = table_rows(page)
    values = [float(r[col]) for r in rows]
    assert values == sorted(values, reverse=True) and values[0] > values[-1]
    category = rows[0][1]
    choose(page, "#browse-category", category)
    page.wait_for_function(f"([c]) => {ROWS_JS}.every(r => ({CELLS_JS})(r)[1].innerText.trim() === c)",
                           arg=[category])
    filtered = table_rows(page)
    assert filtered and all(r[1] == category for r in filtered)
    page.locator("#browse-table [role=row][data-index='0'] [role=gridcell]").nth(2).click()
    page.wait_for_selector("#browse-overlay-0 img")
    page.wait_for_selector("#browse-overlay-1 img")
    assert filtered[0][0] in page.inner_text("#browse-selected")
    page.screenshot(path=str(screenshot_dir(tmp_path) / "serve_browse.png"), full_page=True)
