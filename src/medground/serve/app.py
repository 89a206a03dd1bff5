"""The web app: a Gradio page with two tabs (Ground, Browse) mounted on a FastAPI
application that also answers ``GET /healthz``.

:func:`build_app` turns a :class:`~medground.serve.ground.Grounder` and / or a
:class:`~medground.serve.browse.Browser` into that application; :func:`run_server`
serves it with uvicorn and returns once it listens (the URL is in the handle).
Gradio is imported here only: ``pip install "medground[serve]"``.

Requests queue: every call that runs the model (the page's *Ground* button and the
``/ground`` API) shares one concurrency slot, so the model never runs twice at once.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import MedgroundError
from .browse import STATUSES, Browser
from .ground import AXES, MAX_SAMPLES, WINDOWS, Grounder
from .limits import Limits

log = logging.getLogger("medground.serve")

TITLE = "medground"
MODEL_SLOT = "model"  # the concurrency id every model call shares
CSS = """
#ground-status p, #browse-selected p { font-weight: 600; }
"""


def require_gradio():
    """The ``gradio`` module, or a :class:`MedgroundError` that says how to install it."""
    try:
        import gradio
    except ImportError:
        raise MedgroundError('the web app needs Gradio: pip install "medground[serve]"') from None
    return gradio


# --------------------------------------------------------------------------- handlers (no Gradio types)


class GroundHandlers:
    """What the Ground tab's events call: plain values in, plain values out; a bad
    input becomes a message for the page, never an exception."""

    def __init__(self, grounder: Grounder | None):
        self.grounder = grounder

    def view(self, path, window, axis, slice_index):
        """(preview image, slider settings, status) for an upload."""
        if not path:
            return None, None, ""
        if self.grounder is None:
            return None, None, _warn("no model loaded: start medground serve with --model to ground images")
        try:
            v = self.grounder.view(path, window=window, axis=axis, slice_index=slice_index)
        except MedgroundError as exc:
            return None, None, _warn(str(exc))
        except Exception as exc:  # noqa: BLE001 - the page must stay alive
            log.exception("view failed")
            return None, None, _warn(f"{type(exc).__name__}: {exc}")
        slider = None
        if v.n_slices is not None:
            slider = {"maximum": max(0, v.n_slices - 1), "value": int(v.meta.get("slice_index") or 0)}
        fmt = v.format.upper() or "image"
        note = f"{v.name}: {fmt}, {v.width} x {v.height}"
        if v.meta.get("window") is not None:
            c, w = v.meta["window"]
            note += f", window {c:g} / {w:g} ({v.meta.get('window_source', '')})"
        if v.n_slices is not None:
            note += f", {v.meta.get('plane', '')} slice {v.meta.get('slice_index')} of {v.n_slices}"
        return v.image, slider, note

    def ground(self, path, query, template, samples, temperature, window, axis, slice_index) -> dict:
        """The answer dict plus ``_overlay`` (PIL) and ``_files`` (JSON and PNG paths); raises MedgroundError."""
        if self.grounder is None:
            raise MedgroundError("no model loaded: start medground serve with --model to ground images")
        result = self.grounder.ground(path, query, template=template or None, samples=int(samples or 1),
                                      temperature=float(temperature or 1.0), window=window, axis=axis,
                                      slice_index=None if slice_index is None or int(slice_index) < 0 else int(slice_index))
        return {"answer": result.answer, "overlay": result.overlay, "files": save_result(result, self.grounder.workdir)}


def save_result(result, workdir: Path) -> tuple[str, str]:
    """The answer as JSON and the overlay as PNG, in a fresh folder under ``workdir``."""
    import tempfile

    from ..fileio import atomic_json

    folder = Path(tempfile.mkdtemp(dir=workdir, prefix="answer-"))
    stem = Path(result.answer.get("image", {}).get("name") or "image").name.split(".")[0] or "image"
    js = atomic_json(result.answer, folder / f"{stem}_answer.json")
    png = folder / f"{stem}_overlay.png"
    result.overlay.save(png)
    return str(js), str(png)


def agreement_markdown(answer: dict) -> str:
    a = answer.get("agreement")
    if not a:
        return "Greedy answer (one completion)."
    mean = "n/a" if a["mean_iou"] is None else f"{a['mean_iou']:.2f}"
    return (f"**{a['n']} sampled answers** (temperature {a['temperature']:g}, seed {a['seed']}): "
            f"{a['n_with_box']} with a box; mean pairwise IoU {mean}; {a['agree'] * 100:.0f} % agree "
            f"(IoU > 0.5) with the answer shown, sample {a['consensus'] + 1}. Faint boxes: every sample.")


def _warn(text: str) -> str:
    return f"⚠️ {text}"


def _public(answer: dict) -> dict:
    """The answer as returned by the API and shown in the page (JSON-ready)."""
    return json.loads(json.dumps(answer, default=str))


# --------------------------------------------------------------------------- the page


def build_blocks(grounder: Grounder | None, browser_factory=None, *, browser: Browser | None = None,
                 limits: Limits | None = None):
    """The Gradio page.  ``browser_factory`` builds a :class:`Browser` (at start unless
    ``browser`` is given, and on *Reload*); without either Browse is empty."""
    gr = require_gradio()
    from ..templates import TEMPLATES

    limits = limits or (grounder.limits if grounder else Limits())
    handlers = GroundHandlers(grounder)
    templates = sorted(TEMPLATES)
    default_template = grounder.policy.template if grounder else templates[0]
    holder: dict[str, Any] = {"browser": browser}
    if browser is None and browser_factory is not None:
        holder["browser"] = browser_factory()

    with gr.Blocks(title=TITLE) as blocks:
        gr.Markdown(f"# medground — ground clinical language in medical images\n{_header(grounder, holder)}")
        with gr.Tabs():
            with gr.Tab("Ground", id="ground", elem_id="tab-ground"):
                _ground_tab(gr, handlers, grounder, templates, default_template, limits)
            with gr.Tab("Browse", id="browse", elem_id="tab-browse"):
                _browse_tab(gr, holder, browser_factory)
    blocks.queue(default_concurrency_limit=1)
    return blocks


def _header(grounder, holder) -> str:
    parts = []
    if grounder is not None:
        d = grounder.describe()
        parts.append(f"model `{d['model']}` (frame `{d['frame']}`, template `{d['template']}`"
                     + (f", segmenter `{d['segmenter']}`" if d["segmenter"] else "") + ")")
    if holder.get("browser") is not None:
        b = holder["browser"]
        parts.append(f"browsing `{b.data.name}` with " + ", ".join(f"`{r.path.name}`" for r in b.runs))
    return " · ".join(parts)


def _ground_tab(gr, handlers: GroundHandlers, grounder, templates, default_template, limits: Limits) -> None:
    if grounder is None:
        gr.Markdown("Started without `--model`: only **Browse** is available here.", elem_id="ground-disabled")
    with gr.Row():
        with gr.Column(scale=1):
            upload = gr.File(label="Image: PNG, JPEG, TIFF (16-bit too), DICOM, NIfTI", type="filepath",
                             elem_id="ground-file")
            with gr.Row():
                window = gr.Dropdown(list(WINDOWS), value="auto", label="Window (DICOM / NIfTI / 16-bit)",
                                     elem_id="ground-window")
                axis = gr.Radio(list(AXES), value="axial", label="Volume axis (NIfTI)", elem_id="ground-axis")
            slice_ = gr.Slider(-1, 1, value=-1, step=1, label="Slice (NIfTI; -1 = the middle one)", visible=False,
                               elem_id="ground-slice")
            preview = gr.Image(label="Image shown to the model", type="pil", interactive=False,
                               elem_id="ground-preview", height=320)
            query = gr.Textbox(label="Phrase or clinical question", lines=2, elem_id="ground-query",
                               placeholder="e.g. left pleural effusion — or: where would you place a chest drain?")
            with gr.Row():
                template = gr.Dropdown(templates, value=default_template, label="Template", elem_id="ground-template")
                samples = gr.Slider(1, MAX_SAMPLES, value=1, step=1, label="Answers (1 = greedy, N = sampled)",
                                    elem_id="ground-samples")
                temperature = gr.Slider(0.1, 2.0, value=1.0, step=0.1, label="Temperature (sampled)",
                                        elem_id="ground-temperature")
            submit = gr.Button("Ground", variant="primary", elem_id="ground-submit", interactive=grounder is not None)
            gr.Markdown(f"Limits: {limits.describe()}.", elem_id="ground-limits")
        with gr.Column(scale=1):
            status = gr.Markdown("", elem_id="ground-status")
            overlay = gr.Image(label="Overlay", show_label=False, type="pil", interactive=False, elem_id="ground-overlay",
                               format="png")
            agreement = gr.Markdown("", elem_id="ground-agreement")
            reasoning = gr.Textbox(label="Reasoning", lines=3, interactive=False, elem_id="ground-reasoning")
            answer = gr.Code(label="Answer (original-image pixels)", language="json", interactive=False,
                             elem_id="ground-answer")
            with gr.Row():
                dl_json = gr.DownloadButton("Download answer (JSON)", visible=False, elem_id="ground-download-json")
                dl_png = gr.DownloadButton("Download overlay (PNG)", visible=False, elem_id="ground-download-png")
    api_out = gr.JSON(visible=False)
    api_trigger = gr.Button(visible=False)

    def on_view(path, window_, axis_, slice_value=None, keep_slice=False):
        img, slider, note = handlers.view(path, window_, axis_, slice_value if keep_slice else None)
        if slider is None:
            return img, gr.update(visible=False), note
        return img, gr.update(visible=True, minimum=0, maximum=slider["maximum"], value=slider["value"]), note

    def on_slice(path, window_, axis_, slice_value):
        return on_view(path, window_, axis_, slice_value, keep_slice=True)

    view_inputs = [upload, window, axis]
    view_outputs = [preview, slice_, status]
    upload.change(on_view, view_inputs, view_outputs, api_visibility="private", concurrency_id="view",
                  concurrency_limit=4)
    window.change(on_slice, [*view_inputs, slice_], view_outputs, api_visibility="private", concurrency_id="view",
                  concurrency_limit=4)
    axis.change(on_view, view_inputs, view_outputs, api_visibility="private", concurrency_id="view",
                concurrency_limit=4)
    slice_.release(on_slice, [*view_inputs, slice_], view_outputs, api_visibility="private", concurrency_id="view",
                   concurrency_limit=4)

    ground_inputs = [upload, query, template, samples, temperature, window, axis, slice_]

    def on_ground(path, query_, template_, samples_, temperature_, window_, axis_, slice_value):
        try:
            out = handlers.ground(path, query_, template_, samples_, temperature_, window_, axis_,
                                  slice_value if _is_volume(path) else None)
        except MedgroundError as exc:
            return (_warn(str(exc)), None, "", "", "", gr.update(visible=False), gr.update(visible=False))
        except Exception as exc:  # noqa: BLE001 - the page must stay alive
            log.exception("ground failed")
            return (_warn(f"{type(exc).__name__}: {exc}"), None, "", "", "", gr.update(visible=False),
                    gr.update(visible=False))
        ans = _public(out["answer"])
        js, png = out["files"]
        shown = {k: v for k, v in ans.items() if k not in ("mask", "samples")}
        n_boxes = len(ans["boxes"])
        note = f"Answered: {n_boxes} box{'es' if n_boxes != 1 else ''}" + (", key points" if ans["points"] else "")
        return (note, out["overlay"], agreement_markdown(ans), ans.get("reasoning") or "",
                json.dumps(shown, indent=1, ensure_ascii=False), gr.update(value=js, visible=True),
                gr.update(value=png, visible=True))

    submit.click(on_ground, ground_inputs, [status, overlay, agreement, reasoning, answer, dl_json, dl_png],
                 api_visibility="private", concurrency_id=MODEL_SLOT, concurrency_limit=1)
    query.submit(on_ground, ground_inputs, [status, overlay, agreement, reasoning, answer, dl_json, dl_png],
                 api_visibility="private", concurrency_id=MODEL_SLOT, concurrency_limit=1)

    def api_ground(path, query_, template_, samples_, temperature_, window_, axis_, slice_value):
        try:
            out = handlers.ground(path, query_, template_, samples_, temperature_, window_, axis_,
                                  slice_value if _is_volume(path) else None)
        except MedgroundError as exc:
            raise gr.Error(str(exc)) from None
        return _public(out["answer"])

    api_trigger.click(api_ground, ground_inputs, [api_out], api_name="ground", concurrency_id=MODEL_SLOT,
                      concurrency_limit=1)


def _is_volume(path) -> bool:
    if not path:
        return False
    try:
        from ..data.io import detect_format

        return detect_format(path) == "nifti"
    except MedgroundError:
        return False


def _browse_tab(gr, holder: dict, browser_factory) -> None:
    browser: Browser | None = holder["browser"]
    if browser is None:
        gr.Markdown("Start `medground serve` with `--data DATA.jsonl --predictions A.jsonl [B.jsonl]` to browse "
                    "a prediction file against its truth.", elem_id="browse-empty")
        return
    summary = gr.Markdown(browser.summary_markdown(), elem_id="browse-summary")
    with gr.Row():
        category = gr.Dropdown(["all", *browser.categories()], value="all", label="Category", elem_id="browse-category")
        status = gr.Dropdown(["all", *STATUSES], value="all", label="Status", elem_id="browse-status")
        iou_min = gr.Number(0.0, minimum=0, maximum=1, step=0.05, label="IoU from", elem_id="browse-iou-min")
        iou_max = gr.Number(1.0, minimum=0, maximum=1, step=0.05, label="IoU to", elem_id="browse-iou-max")
        wrong = gr.Checkbox(False, label="Wrong side only", elem_id="browse-wrong-side")
    with gr.Row():
        sort_by = gr.Dropdown(["dataset order", *browser.sort_keys()], value="dataset order", label="Sort by",
                              elem_id="browse-sort")
        descending = gr.Checkbox(False, label="Descending", elem_id="browse-descending")
        reload_ = gr.Button("Reload files", elem_id="browse-reload", size="sm")
    count = gr.Markdown("", elem_id="browse-count")
    headers, rows = browser.table()
    table = gr.Dataframe(value=rows, headers=headers, interactive=False, elem_id="browse-table", max_height=420,
                         wrap=True)
    message = gr.Markdown("Select a row to see its overlay.", elem_id="browse-selected")
    with gr.Row():
        pictures = [gr.Image(label=run.name, type="pil", interactive=False, elem_id=f"browse-overlay-{k}", format="png")
                    for k, run in enumerate(browser.runs)]
    with gr.Row():
        texts = [gr.Textbox(label=f"completion — {run.name}", lines=4, interactive=False,
                            elem_id=f"browse-completion-{k}") for k, run in enumerate(browser.runs)]
    filters = [category, status, iou_min, iou_max, wrong, sort_by, descending]

    def on_filter(category_, status_, lo, hi, wrong_, sort_, desc):
        b: Browser = holder["browser"]
        try:
            heads, body = b.table(category=category_, status=status_, iou_min=float(lo or 0), iou_max=float(hi if hi
                                  is not None else 1), wrong_side_only=bool(wrong_),
                                  sort_by=None if sort_ in (None, "dataset order") else sort_, descending=bool(desc))
        except MedgroundError as exc:
            return gr.update(), _warn(str(exc))
        import pandas as pd

        return pd.DataFrame(body, columns=heads), f"{len(body)} of {len(b.rows)} samples"

    for f in filters:
        f.change(on_filter, filters, [table, count], api_visibility="private", concurrency_id="browse",
                 concurrency_limit=4)

    def on_select(evt):
        b: Browser = holder["browser"]
        row = evt.row_value or []
        sid = str(row[0]) if row else None
        try:
            details = b.detail(sid)
        except MedgroundError as exc:
            return [_warn(str(exc))] + [None] * len(pictures) + [""] * len(texts)
        except Exception as exc:  # noqa: BLE001
            log.exception("browse detail failed")
            return [_warn(f"{type(exc).__name__}: {exc}")] + [None] * len(pictures) + [""] * len(texts)
        s = b.by_id[sid]
        note = f"**{s.id}** — {s.category or ''}: {s.query}"
        return [note] + [d[0] for d in details] + [d[1] for d in details]

    on_select.__annotations__ = {"evt": gr.SelectData}  # Gradio passes the selection by this annotation
    table.select(on_select, None, [message, *pictures, *texts], api_visibility="private", concurrency_id="browse",
                 concurrency_limit=4)

    def on_reload(*values):
        try:
            holder["browser"] = browser_factory()
        except MedgroundError as exc:
            return gr.update(), gr.update(), _warn(str(exc))
        body, counted = on_filter(*values)
        return holder["browser"].summary_markdown(), body, counted

    reload_.click(on_reload, filters, [summary, table, count], api_visibility="private", concurrency_id="browse")


# --------------------------------------------------------------------------- the application and its server


def build_app(grounder: Grounder | None = None, browser_factory=None, *, browser: Browser | None = None,
              limits: Limits | None = None, host: str = "127.0.0.1", port: int = 7860):
    """The FastAPI application: ``GET /healthz`` and the Gradio page at ``/`` (arguments as
    :func:`build_blocks`)."""
    gr = require_gradio()
    from fastapi import FastAPI

    limits = limits or (grounder.limits if grounder else Limits())
    blocks = build_blocks(grounder, browser_factory, browser=browser, limits=limits)
    health = {"status": "ready", **(grounder.describe() if grounder else
                                    {"model": None, "family": None, "frame": None, "template": None,
                                     "segmenter": None})}
    app = FastAPI(title=TITLE)

    @app.get("/healthz")
    def healthz() -> dict:
        return health

    allowed = [str(grounder.workdir)] if grounder else []
    return gr.mount_gradio_app(app, blocks, path="/", server_name=host, server_port=port, allowed_paths=allowed,
                               max_file_size=limits.max_upload_bytes, show_error=True, footer_links=["api"],
                               css=CSS, run_history=False)


@dataclass
class ServerHandle:
    """A running server: its ``url``; :meth:`stop` shuts it down."""

    url: str
    server: Any
    thread: threading.Thread

    def stop(self, timeout: float = 10.0) -> None:
        self.server.should_exit = True
        self.thread.join(timeout)

    def wait(self) -> None:
        """Block until the server stops (Ctrl-C stops it)."""
        try:
            while self.thread.is_alive():
                self.thread.join(0.5)
        except KeyboardInterrupt:
            self.stop()


def run_server(app, *, host: str = "127.0.0.1", port: int = 7860, timeout: float = 60.0) -> ServerHandle:
    """Serve ``app`` with uvicorn in a background thread; returns once it listens
    (``port=0`` picks a free port, reported in the handle's ``url``)."""
    import uvicorn

    config = uvicorn.Config(app, host=host, port=int(port), log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="medground-serve", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive():
            raise MedgroundError(f"the server could not start on {host}:{port} (is the port in use?)")
        if time.monotonic() > deadline:
            server.should_exit = True
            raise MedgroundError(f"the server did not start within {timeout:g} s")
        time.sleep(0.05)
    bound = server.servers[0].sockets[0].getsockname()[1] if server.servers else port
    shown = host if host not in ("0.0.0.0", "::") else "127.0.0.1"
    return ServerHandle(url=f"http://{shown}:{bound}", server=server, thread=thread)
