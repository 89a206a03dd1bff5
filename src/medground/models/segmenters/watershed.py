"""``watershed``: the embedded default segmenter — no weights, deterministic, fast.

For each prompt the region of interest is the box grown by a margin.  On that crop
(subsampled so that it has at most ``max_pixels`` pixels) a marker-controlled
watershed runs on the Sobel gradient of the Gaussian-smoothed intensity:

* background marker: the margin ring outside the box (and the image border of the
  crop when the box touches the image edge, so the object cannot be starved),
* foreground marker: small discs (radius ``seed_radius`` × the box's short side) along
  the inner 70 % of the segment between the two key points (key points mark the ends
  of the target, so they lie on its border), or one disc of radius ``centre_radius`` ×
  the short side at the box centre when the prompt has no points.

The foreground basin, restricted to the box and with holes filled, is the mask.  When
it is empty or floods the box (more than ``flood`` of its area), the fallback keeps
the Otsu class of the box that contains the seeds, restricted to the connected
components that touch a seed; when that is empty too, the ellipse inscribed in the
box.  A points-only prompt uses the square around the disc whose diameter joins the
two points, grown by ``points_margin``.

>>> import numpy as np
>>> img = np.zeros((64, 64), np.uint8); img[20:40, 16:48] = 200
>>> m = WatershedSegmenter().segment_image(img, [10, 12, 54, 48])
>>> from medground.metrics import mask_dice
>>> round(float(mask_dice(m, img > 0)[0]), 2), bool(m[5, 5])
(1.0, False)
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from ...registry import Option
from .base import CACHE_OPTION, SEGMENTERS, ImageState, Prompts, Segmenter, to_gray


@SEGMENTERS.register(
    "watershed",
    description="marker watershed inside the box; no weights, deterministic, CPU",
    options={
        "sigma": Option("Gaussian smoothing (pixels) before the Sobel gradient"),
        "margin": Option("the region of interest is the box grown by this fraction on each side"),
        "max_pixels": Option("crops larger than this many pixels are subsampled"),
        "seed_radius": Option("radius of the foreground seeds along the key-point segment, x the box's short side"),
        "centre_radius": Option("radius of the foreground seed at the box centre (no points), x the short side"),
        "flood": Option("a mask covering more than this fraction of the box falls back to Otsu"),
        "points_margin": Option("points-only prompt: the square around the key-point disc grown by this fraction"),
        **CACHE_OPTION,
    },
)
class WatershedSegmenter(Segmenter):
    name = "watershed"

    def __init__(
        self,
        sigma: float = 1.0,
        margin: float = 0.1,
        max_pixels: int = 160 * 160,
        seed_radius: float = 0.06,
        centre_radius: float = 0.2,
        flood: float = 0.97,
        points_margin: float = 0.25,
        cache_size: int = 8,
    ):
        super().__init__(cache_size=cache_size)
        self.sigma = float(sigma)
        self.margin = float(margin)
        self.max_pixels = int(max_pixels)
        self.seed_radius = float(seed_radius)
        self.centre_radius = float(centre_radius)
        self.flood = float(flood)
        self.points_margin = float(points_margin)

    def _embed(self, rgb: np.ndarray) -> np.ndarray:
        gray = to_gray(rgb)
        return ndi.gaussian_filter(gray, self.sigma) if self.sigma > 0 else gray

    def _segment(self, state: ImageState, prompts: Prompts) -> np.ndarray:
        out = np.zeros((len(prompts), state.height, state.width), dtype=bool)
        for i in range(len(prompts)):
            box = prompts.boxes[i]
            pts = prompts.points[i]
            if not np.isfinite(box).all():
                box = _points_box(pts, self.points_margin, state.width, state.height)
            out[i] = self._one(state.data, box, pts)
        return out

    # ------------------------------------------------------------------------------
    def _one(self, smooth: np.ndarray, box: np.ndarray, pts: np.ndarray) -> np.ndarray:
        from skimage.segmentation import watershed

        H, W = smooth.shape
        x1, y1, x2, y2 = box
        bw, bh = x2 - x1, y2 - y1
        mx, my = max(2.0, self.margin * bw), max(2.0, self.margin * bh)
        # crop = box + margin, in integer pixels
        cx1, cy1 = int(max(0, np.floor(x1 - mx))), int(max(0, np.floor(y1 - my)))
        cx2, cy2 = int(min(W, np.ceil(x2 + mx))), int(min(H, np.ceil(y2 + my)))
        crop = smooth[cy1:cy2, cx1:cx2]
        step = max(1, int(np.ceil(np.sqrt(crop.size / self.max_pixels))))
        small = crop[::step, ::step]
        h, w = small.shape
        # pixel centres of the small grid, in original coordinates
        ys = cy1 + (np.arange(h) * step + (step - 1) / 2.0)
        xs = cx1 + (np.arange(w) * step + (step - 1) / 2.0)
        in_box = ((ys[:, None] >= y1) & (ys[:, None] < y2)) & ((xs[None, :] >= x1) & (xs[None, :] < x2))
        if not in_box.any():  # box thinner than the grid step: take the nearest cells
            in_box[np.clip(np.searchsorted(ys, (y1 + y2) / 2) - 1, 0, h - 1), :] |= (xs >= x1 - step) & (xs < x2 + step)
        if len(pts):
            seeds, radius = _point_seeds(pts), self.seed_radius
        else:
            seeds, radius = np.array([[(x1 + x2) / 2, (y1 + y2) / 2]]), self.centre_radius
        seed_mask = self._seed_mask(seeds, xs, ys, bw, bh, step, radius) & in_box
        if not seed_mask.any():
            seed_mask = in_box & (_nearest_cell(seeds, xs, ys, h, w))
        markers = np.zeros((h, w), dtype=np.int32)
        markers[~in_box] = 1
        markers[seed_mask] = 2
        if not (markers == 1).any():  # box covers the whole image: the image border is background
            border = np.zeros((h, w), dtype=bool)
            border[[0, -1], :] = True
            border[:, [0, -1]] = True
            markers[border & ~seed_mask] = 1
        grad = np.hypot(ndi.sobel(small, axis=0), ndi.sobel(small, axis=1))
        fg = (watershed(grad, markers) == 2) & in_box
        fg = ndi.binary_fill_holes(fg)
        area = in_box.sum()
        if not fg.any() or fg.sum() > self.flood * area:
            fg = self._fallback(small, in_box, seed_mask)
        return _upsample(fg, step, (cy1, cx1), (H, W), box)

    def _seed_mask(self, seeds, xs, ys, bw, bh, step, radius) -> np.ndarray:
        r = max(step * 0.75, radius * min(bw, bh))
        mask = np.zeros((len(ys), len(xs)), dtype=bool)
        for sx, sy in seeds:
            mask |= ((xs[None, :] - sx) ** 2 + (ys[:, None] - sy) ** 2) <= r * r
        return mask

    def _fallback(self, small, in_box, seed_mask) -> np.ndarray:
        from skimage.filters import threshold_otsu

        vals = small[in_box]
        if vals.size > 1 and vals.max() > vals.min():
            t = threshold_otsu(vals)
            bright = small > t
            seed_bright = bright[seed_mask].mean() >= 0.5 if seed_mask.any() else True
            cls = (bright if seed_bright else ~bright) & in_box
            labels, _ = ndi.label(cls)
            keep = np.unique(labels[seed_mask & cls])
            keep = keep[keep > 0]
            fg = np.isin(labels, keep) if len(keep) else np.zeros_like(cls)
            fg = ndi.binary_fill_holes(fg)
            area = in_box.sum()
            if fg.any() and fg.sum() <= self.flood * area:
                return fg
        return _ellipse(in_box)


def _point_seeds(pts: np.ndarray, inner: float = 0.15, n: int = 9) -> np.ndarray:
    """Seeds for key points: one point as is; for two or more, samples of the inner part
    (``inner`` .. ``1 - inner``) of the segment between the first two — key points mark
    the ends of the target, so the points themselves sit on its border."""
    if len(pts) < 2:
        return pts
    t = np.linspace(inner, 1 - inner, n)[:, None]
    return pts[0] + t * (pts[1] - pts[0])


def _points_box(pts: np.ndarray, margin: float, W: int, H: int) -> np.ndarray:
    """Box of a points-only prompt: the square around the disc whose diameter joins the
    first and last point (MedReasoner's pDice disc), its half-side ``(1 + margin)`` × the
    radius (at least 8 px), clipped to the image."""
    centre = (pts[0] + pts[-1]) / 2
    r = max(float(np.hypot(*(pts[-1] - pts[0]))) / 2, 8.0) * (1 + margin)
    x1, y1 = np.maximum(centre - r, 0)
    x2, y2 = np.minimum(centre + r, [W, H])
    return np.array([x1, y1, x2, y2], dtype=np.float64)


def _nearest_cell(seeds, xs, ys, h, w) -> np.ndarray:
    mask = np.zeros((h, w), dtype=bool)
    for sx, sy in seeds:
        mask[int(np.argmin(np.abs(ys - sy))), int(np.argmin(np.abs(xs - sx)))] = True
    return mask


def _ellipse(in_box: np.ndarray) -> np.ndarray:
    rows, cols = np.nonzero(in_box)
    if rows.size == 0:
        return in_box.copy()
    r0, r1, c0, c1 = rows.min(), rows.max(), cols.min(), cols.max()
    cy, cx = (r0 + r1) / 2, (c0 + c1) / 2
    ry, rx = max((r1 - r0 + 1) / 2, 0.5), max((c1 - c0 + 1) / 2, 0.5)
    yy, xx = np.mgrid[: in_box.shape[0], : in_box.shape[1]]
    return ((((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2) <= 1.0) & in_box


def _upsample(fg: np.ndarray, step: int, origin, shape, box) -> np.ndarray:
    """Place the small-grid mask back into a full-size mask, clipped to the box."""
    H, W = shape
    cy1, cx1 = origin
    big = np.repeat(np.repeat(fg, step, axis=0), step, axis=1) if step > 1 else fg
    out = np.zeros((H, W), dtype=bool)
    h = min(big.shape[0], H - cy1)
    w = min(big.shape[1], W - cx1)
    out[cy1 : cy1 + h, cx1 : cx1 + w] = big[:h, :w]
    x1, y1, x2, y2 = box
    bx1, by1 = int(np.floor(x1)), int(np.floor(y1))
    bx2, by2 = int(np.ceil(x2)), int(np.ceil(y2))
    out[:by1] = False
    out[by2:] = False
    out[:, :bx1] = False
    out[:, bx2:] = False
    return out
