"""U-MRG-14K (MedReasoner, Yan et al. 2025) parquet files -> canonical samples.

The release is verl-style parquet, one row per sample:

* ``data_source`` (str), ``ability`` (str)
* ``prompt``: chat messages ``[{"role": "user", "content": <implicit clinical question>}]``
* ``images`` / ``masks``: lists of Hugging Face image structs ``{"bytes": ..., "path": ...}``
* ``reward_model``: ``{"style": "rule", "ground_truth": '{"bbox_2d": [x1, y1, x2, y2],
  "point_2d": [[x, y], [x, y]]}'}`` (a JSON string)
* ``extra_info``: ``{"id", "supercategory", "category", "data_source", ...}``

MedReasoner compares its model's answers with ``bbox_2d`` / ``point_2d`` directly, so
they are in the pixels of the stored image (the release stores images pre-resized);
``meta.box_frame`` records ``pixels:WxH`` of the stored image.  Image and mask bytes are
written to ``DIR/images/{split}`` / ``DIR/masks/{split}`` (masks binarised, any non-zero pixel is the
target).  Input: one parquet file or a folder of them; the split comes from the file
name (``train-00000-of-00001.parquet``) or ``--split``.
"""

from __future__ import annotations

import ast
import io as _io
import json
import re
from pathlib import Path

import numpy as np
from PIL import Image

from ...errors import MedgroundError
from ..schema import Sample
from .base import Context, Option, register, split_from_name

_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_name(text: str) -> str:
    """A file-name-safe version of an id.

    >>> safe_name("ct/liver 01")
    'ct_liver_01'
    """
    return _SAFE.sub("_", str(text)).strip("._") or "x"


def parse_ground_truth(gt) -> dict:
    """``reward_model.ground_truth`` (JSON string, or a dict) -> dict."""
    if isinstance(gt, dict):
        return gt
    if not isinstance(gt, str) or not gt.strip():
        raise ValueError("empty ground_truth")
    try:
        return json.loads(gt)
    except json.JSONDecodeError:
        val = ast.literal_eval(gt)  # single-quoted Python dict literals
        if not isinstance(val, dict):
            raise ValueError("ground_truth is not an object") from None
        return val


def _first(v):
    if isinstance(v, (list, tuple)):
        return v[0] if v else None
    if isinstance(v, np.ndarray):
        return v[0] if v.size else None
    return v


def _question(prompt) -> str | None:
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, np.ndarray):
        prompt = list(prompt)
    if not isinstance(prompt, (list, tuple)) or not prompt:
        return None
    users = [m for m in prompt if isinstance(m, dict) and m.get("role") == "user"] or list(prompt)
    msg = users[0]
    content = msg.get("content") if isinstance(msg, dict) else msg
    if isinstance(content, list):  # structured content
        content = " ".join(c.get("text", "") for c in content if isinstance(c, dict))
    if not isinstance(content, str):
        return None
    return content.replace("<image>", "").strip()


def _ext(data: bytes, path: str | None) -> str:
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return ".png"
    if data[:3] == b"\xff\xd8\xff":
        return ".jpg"
    suffix = Path(path or "").suffix.lower()
    return suffix if suffix in (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp") else ".png"


def _parquets(inp: Path) -> list[Path]:
    if inp.is_file():
        return [inp]
    files = sorted(inp.rglob("*.parquet"))
    if not files:
        raise MedgroundError(f"{inp}: no .parquet files in this folder")
    return files


def _split_of(path: Path, root: Path) -> str | None:
    s = split_from_name(path)
    if s:
        return s
    for part in reversed(path.relative_to(root).parts[:-1] if root in path.parents else ()):
        s = split_from_name(Path(part))
        if s:
            return s
    return None


@register(
    "umrg",
    "U-MRG-14K parquet (MedReasoner): images, masks, bbox_2d / point_2d ground truth",
    {"batch_size": Option("rows read from the parquet at a time", default=64)},
)
def convert(ctx: Context):
    import pyarrow.parquet as pq

    from ..masks import save_mask_png

    img_dir, mask_dir = ctx.out / "images", ctx.out / "masks"
    root = ctx.input if ctx.input.is_dir() else ctx.input.parent
    for path in _parquets(ctx.input):
        try:
            pf = pq.ParquetFile(path)
        except Exception as exc:  # noqa: BLE001
            raise MedgroundError(f"{path}: not a readable parquet file ({exc})") from None
        cols = set(pf.schema_arrow.names)
        missing = [c for c in ("prompt", "images", "reward_model") if c not in cols]
        if missing:
            raise MedgroundError(f"{path}: not U-MRG layout — missing column(s) {', '.join(missing)}; "
                                 f"found {', '.join(sorted(cols))}")
        split = _split_of(path, root) or ctx.split
        n = 0
        bar = ctx.progress(range(pf.metadata.num_rows), total=pf.metadata.num_rows, desc=f"umrg {path.name}")
        it = iter(bar)
        for batch in pf.iter_batches(batch_size=max(1, int(ctx.option("batch_size")))):
            for rec in batch.to_pylist():
                n += 1
                next(it, None)
                ctx.report.rows_read += 1
                sample = _convert_row(ctx, rec, n, path, split, img_dir, mask_dir, save_mask_png)
                if sample is not None:
                    yield sample
        close = getattr(bar, "close", None)
        if close:
            close()


def _convert_row(ctx, rec: dict, n: int, path: Path, split, img_dir: Path, mask_dir: Path, save_mask_png):
    extra = rec.get("extra_info") or {}
    if not isinstance(extra, dict):
        extra = {}
    rid = extra.get("id")
    rid = str(rid) if rid not in (None, "") else f"{path.stem}-{n}"
    sid = f"umrg-{rid}"
    question = _question(rec.get("prompt"))
    if not question:
        ctx.skip(n, "no question in prompt", sid, file=path)
        return None
    try:
        gt = parse_ground_truth((rec.get("reward_model") or {}).get("ground_truth"))
        box = [float(v) for v in gt["bbox_2d"]]
        if len(box) != 4:
            raise ValueError(f"bbox_2d has {len(box)} values")
        pts = gt.get("point_2d")
        points = None
        if pts is not None and len(pts):
            points = [[float(v) for v in p] for p in pts]
            if len(points) != 2 or any(len(p) != 2 for p in points):
                raise ValueError("point_2d must be two [x, y] pairs")
    except (KeyError, TypeError, ValueError, SyntaxError) as exc:
        ctx.skip(n, f"malformed reward_model.ground_truth: {exc}", sid, file=path)
        return None

    img = _first(rec.get("images"))
    data = img.get("bytes") if isinstance(img, dict) else (img if isinstance(img, bytes) else None)
    ipath = img.get("path") if isinstance(img, dict) else None
    if not data:
        cand = (path.parent / ipath) if ipath else None
        if cand is None or not ctx.image_exists(cand, n, sid):
            ctx.skip(n, f"no image bytes and image path not found: {ipath}", sid, file=path)
            return None
        data = cand.read_bytes()
    try:
        with Image.open(_io.BytesIO(data)) as im:
            W, H = im.size
    except Exception as exc:  # noqa: BLE001
        ctx.skip(n, f"undecodable image bytes ({exc})", sid, file=path)
        return None
    sub = safe_name(split or "all")  # per split: equal ids in two splits never overwrite each other
    (img_dir / sub).mkdir(parents=True, exist_ok=True)
    out_img = img_dir / sub / f"{safe_name(rid)}{_ext(data, ipath)}"
    out_img.write_bytes(data)

    mask_out = None
    m = _first(rec.get("masks"))
    mdata = m.get("bytes") if isinstance(m, dict) else (m if isinstance(m, bytes) else None)
    if mdata:
        try:
            with Image.open(_io.BytesIO(mdata)) as mim:
                marr = np.asarray(mim)
            if marr.ndim == 3:
                marr = marr[..., :3].max(axis=-1)
            if marr.shape != (H, W):
                ctx.warn("masks whose size differs from their image: mask dropped")
            else:
                mask_out = str(save_mask_png(marr > 0, mask_dir / sub / f"{safe_name(rid)}.png"))
        except Exception as exc:  # noqa: BLE001
            ctx.warn(f"undecodable mask bytes: mask dropped ({type(exc).__name__})")

    data_source = extra.get("data_source") or rec.get("data_source")
    return Sample(
        id=sid,
        image=str(out_img),
        query=question,
        boxes=[box],
        mask=mask_out,
        points=points,
        category=extra.get("category"),
        supercategory=extra.get("supercategory"),
        modality=extra.get("modality"),
        split=split,
        width=int(W),
        height=int(H),
        meta={
            "source": "umrg",
            "file": str(path),
            "row": n,
            "umrg_id": rid,
            "data_source": data_source,
            "ability": rec.get("ability"),
            "question": question,
            "box_frame": f"pixels:{W}x{H}",
            "ground_truth": gt,
            "extra_info": {k: v for k, v in extra.items() if isinstance(v, (str, int, float, bool)) or v is None},
            "image_path_in_release": ipath,
        },
    )
