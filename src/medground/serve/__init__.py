"""``medground serve``: a web app to try a model on an image (Ground) and to browse a
prediction file against its truth (Browse), on top of ``predict``, ``segment``,
``evaluate`` and ``overlay``.

* :mod:`.ground` — :class:`Grounder`: upload + query -> answer JSON, overlay, agreement of N samples.
* :mod:`.browse` — :class:`Browser`: dataset + one or two prediction files -> table, filters, overlays.
* :mod:`.limits` — what the app refuses (upload size, decompression bombs, queries).
* :mod:`.app` — the Gradio page and ``GET /healthz`` (needs ``pip install "medground[serve]"``).

Python users get the same as the page without a browser:

>>> from medground.serve import box_agreement
>>> box_agreement([[0, 0, 10, 10], None])["n_with_box"]
1

and a running app answers scripts through Gradio's client::

    from gradio_client import Client, handle_file
    answer = Client("http://127.0.0.1:7860").predict(handle_file("cxr.png"), "left pleural effusion",
                                                     api_name="/ground")
"""

from __future__ import annotations

from .browse import Browser, filter_rows, sort_rows, wrong_side
from .ground import Grounder, GroundResult, View, box_agreement, render_view
from .limits import Limits, check_query, check_upload

__all__ = [
    "Browser",
    "GroundResult",
    "Grounder",
    "Limits",
    "View",
    "box_agreement",
    "check_query",
    "check_upload",
    "filter_rows",
    "render_view",
    "serve",
    "sort_rows",
    "wrong_side",
]


def serve(model=None, *, frame=None, template=None, family=None, segmenter=None, data=None, predictions=(), roots=(),
          host: str = "127.0.0.1", port: int = 7860, limits: Limits | None = None, device: str | None = None,
          dtype="auto", max_new_tokens: int = 128, iou: str = "standard", bootstrap: int = 1000,
          on_ready=None):
    """Load the model and segmenter once, open the files to browse, start the app and
    return its :class:`~medground.serve.app.ServerHandle` (``on_ready(handle)`` is called
    once it listens).  ``model=None`` only browses; without ``predictions`` Browse is empty."""
    from ..errors import MedgroundError
    from .app import build_app, require_gradio, run_server

    require_gradio()
    if model is None and not predictions:
        raise MedgroundError("nothing to serve: give --model to ground images and/or --data with --predictions to "
                             "browse")
    if predictions and data is None:
        raise MedgroundError("--predictions needs --data DATA.jsonl (the ground truth)")
    limits = limits or Limits()
    grounder = None
    if model is not None:
        from ..models.policy import load_policy
        from ..models.segmenters import get_segmenter

        policy = load_policy(model, frame=frame, template=template, device=device, dtype=dtype, family=family)
        seg = get_segmenter(segmenter) if segmenter else None
        grounder = Grounder(policy, seg, limits=limits, max_new_tokens=max_new_tokens)
    factory = first = None
    if predictions:
        preds, extra = list(predictions), list(roots)

        def factory():
            return Browser(data, preds, extra, iou=iou, bootstrap=bootstrap)

        first = factory()  # bad files fail here, before the server starts
    app = build_app(grounder, factory, browser=first, limits=limits, host=host, port=port)
    handle = run_server(app, host=host, port=port)
    if on_ready is not None:
        on_ready(handle)
    return handle
