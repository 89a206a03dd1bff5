"""Synthetic chest-radiograph phantoms with grounded findings.

:func:`generate_phantom_dataset` writes a canonical medground dataset (``images/``,
``masks/``, ``train.jsonl``, ``val.jsonl``, ``test.jsonl``, the manifest ``dataset.json``
naming those three, and ``all.jsonl``, their union, for convenience) of
frontal chest-radiograph-like images: thorax, two lung fields with faint markings,
mediastinum and spine, heart, ribs, a little blur and noise.  Each image carries two
to four findings from six categories; every finding is the target of one sample
whose query (explicit phrase or implicit clinical question) picks it out from the
others in the same image.  On request (``negative_frac``, ``multi_frac``) an image also
gets *negative* queries — a finding, side or zone the image does not have (``boxes: []``)
— and *multi-target* queries naming several regions at once ("bilateral pleural
effusions", "the masses", "both lungs": every box).

Conventions (see ``docs/phantom.md``):

* laterality is radiological: the patient's *right* lung is on the *left* of the
  image;
* zones are the upper / mid / lower thirds of the lung's vertical extent;
* a box is the tight box of the target mask in pixel-edge coordinates
  (``[x_min, y_min, x_max + 1, y_max + 1]``);
* ``points`` are the two ends of the mask's principal axis (the line through the
  centroid along the main eigenvector of the pixel covariance, cut where the mask
  ends: the mask pixels with extreme projections), pixel-centre coordinates.

The same ``seed`` (and options) gives byte-identical files; image ``i`` depends only
on ``(seed, i)``.  With ``negative_frac = multi_frac = 0`` (the defaults) the files are
those of the generator before these options existed.

>>> ph = render_phantom(0, 0, size=96)
>>> ph.image.shape, ph.image.dtype.name, 2 <= len(ph.findings) <= 4
((96, 96), 'uint8', True)
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from ..errors import MedgroundError
from ..fileio import atomic_json
from .dataset_dir import write_dataset
from .masks import mask_box, save_mask_png, save_png
from .schema import Sample, write_jsonl

CATEGORIES = ("nodule", "mass", "consolidation", "effusion", "pneumothorax", "cardiomegaly")
#: The multi-target query about the two lung fields ("both lungs"): an anatomical target.
LUNGS = "lungs"
SUPERCATEGORY = {
    LUNGS: "anatomy",
    "nodule": "lung parenchyma",
    "mass": "lung parenchyma",
    "consolidation": "lung parenchyma",
    "effusion": "pleura",
    "pneumothorax": "pleura",
    "cardiomegaly": "heart",
}
SIDES = ("right", "left")  # patient sides; right = image left
ZONES = ("upper", "mid", "lower")
SPLITS = ("train", "val", "test")

# ---------------------------------------------------------------- query phrasing

EXPLICIT = {
    "nodule": ["nodule in the {side} {zone} zone", "{side} {zone} zone pulmonary nodule",
               "small round nodule, {side} {zone} zone", "a {mm} mm nodule in the {side} {zone} zone"],
    "mass": ["mass in the {side} {zone} zone", "large {side} {zone} zone mass",
             "{side} {zone} zone lung mass", "a {cm} cm mass in the {side} {zone} zone"],
    "consolidation": ["consolidation in the {side} {zone} zone", "{side} {zone} zone airspace opacity",
                      "patchy {side} {zone} zone consolidation", "{side} {zone} zone pneumonia"],
    "effusion": ["{side} pleural effusion", "small {side} pleural effusion",
                 "blunting of the {side} costophrenic angle", "{side} basal effusion"],
    "pneumothorax": ["{side} pneumothorax", "{side} apical pneumothorax", "small {side} pneumothorax",
                     "{side} sided pneumothorax with a visible pleural line"],
    "cardiomegaly": ["cardiomegaly", "enlarged cardiac silhouette", "enlarged heart",
                     "cardiothoracic ratio above 0.5"],
}

IMPLICIT = {
    "nodule": ["An incidental small round lesion{loc} needs follow-up CT. Where is it?",
               "Which spot{loc} should be followed up as a possible early lung cancer?",
               "A screening film shows a solitary well-defined opacity{loc}. Where is it?"],
    "mass": ["A heavy smoker has haemoptysis and weight loss. Where is the lesion most suspicious for lung cancer{loc}?",
             "Which lesion{loc} is large enough that it should be biopsied?",
             "Where is the bulky opacity{loc} that could explain this patient's chronic cough and weight loss?"],
    "consolidation": ["The patient has fever, productive cough and crackles{loc}. Which region shows the likely pneumonia?",
                      "Where is the airspace disease{loc} that explains this patient's fever and cough?",
                      "Which area{loc} would you treat as community-acquired pneumonia?"],
    "effusion": ["Dullness to percussion and reduced breath sounds at the {side} base. What finding explains this?",
                 "Where is the fluid that blunts the costophrenic angle on the {side}?",
                 "Where would you aim a diagnostic thoracentesis on the {side}?"],
    "pneumothorax": ["Sudden pleuritic chest pain and absent breath sounds on the {side}. Where is the abnormality?",
                     "After a central line on the {side}, the patient is breathless. Where is the free pleural air?",
                     "Where is the region without lung markings on the {side} that needs a chest drain?"],
    "cardiomegaly": ["The patient has orthopnoea and ankle swelling. Which structure appears abnormal?",
                     "Which structure explains this patient's signs of heart failure?",
                     "Where is the finding that suggests a dilated cardiomyopathy?"],
}

#: Multi-target phrasing: every finding of the category is a target (pleural: both sides).
MULTI_EXPLICIT = {
    "nodule": ["multiple pulmonary nodules", "{n} lung nodules", "all pulmonary nodules", "the nodules"],
    "mass": ["multiple lung masses", "{n} lung masses", "all lung masses", "the masses"],
    "consolidation": ["multifocal consolidation", "{n} areas of consolidation", "all areas of airspace opacity",
                      "the consolidations"],
    "effusion": ["bilateral pleural effusions", "pleural effusions on both sides", "blunting of both costophrenic angles",
                 "bilateral basal effusions"],
    "pneumothorax": ["bilateral pneumothoraces", "pneumothorax on both sides", "bilateral apical pneumothoraces",
                     "pneumothoraces in both lungs"],
    LUNGS: ["both lungs", "the lung fields", "both lung fields", "the right and left lungs"],
}
MULTI_IMPLICIT = {
    "nodule": ["Several small round lesions need follow-up CT. Where are they?",
               "Which spots should be followed up as possible metastases?"],
    "mass": ["A patient with a known primary tumour has weight loss. Where are the lesions suspicious for metastases?",
             "Which lesions are large enough that they should be biopsied?"],
    "consolidation": ["The patient has fever and crackles over several areas. Where is the multifocal pneumonia?",
                      "Which regions show the airspace disease that explains this patient's fever?"],
    "effusion": ["Dullness to percussion at both bases. What findings explain this?",
                 "Where would you aim a diagnostic thoracentesis on each side?"],
    "pneumothorax": ["Absent breath sounds on both sides after chest trauma. Where is the free pleural air?",
                     "Where are the regions without lung markings that need chest drains on both sides?"],
    LUNGS: ["Where is the aerated lung parenchyma?", "Which regions would a lung ventilation scan show?"],
}
NUMBER_WORDS = {2: "two", 3: "three", 4: "four"}
NODULE_MM = tuple(range(5, 35, 5))  # sizes a negative query names (those of query_bank)
PAIR_CATEGORIES = ("effusion", "pneumothorax", "mass", "mass", "nodule", "consolidation")

# ---------------------------------------------------------------- data classes


@dataclass
class Finding:
    """One rendered finding: its category, location words and mask."""

    category: str
    side: str | None
    zone: str | None
    mask: np.ndarray  # bool (H, W)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Phantom:
    """A rendered image (uint8, H×W), its findings and the two lung fields (side -> mask)."""

    image: np.ndarray
    findings: list[Finding]
    lungs: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class _Anatomy:
    size: int
    lungs: dict[str, np.ndarray]  # side -> bool mask
    lung_box: dict[str, tuple[float, float, float, float]]  # side -> (x0, y0, x1, y1) fractions*size
    hilum: dict[str, tuple[float, float]]
    heart: dict[str, float]


# ---------------------------------------------------------------- geometry helpers


def _grid(size: int):
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    return yy, xx


def _ellipse(yy, xx, cy, cx, ry, rx, angle=0.0):
    c, s = np.cos(angle), np.sin(angle)
    dy, dx = yy - cy, xx - cx
    u = (dx * c + dy * s) / rx
    v = (-dx * s + dy * c) / ry
    return u * u + v * v <= 1.0


def principal_axis_points(mask: np.ndarray) -> list[list[float]]:
    """The two ends of ``mask``'s principal axis (pixel-centre ``[x, y]`` pairs): the
    mask pixels with the smallest and largest projection on the main eigenvector of
    the pixel covariance (ties: the pixel nearest the axis through the centroid).

    >>> m = np.zeros((9, 9), bool); m[4, 1:8] = True
    >>> principal_axis_points(m)
    [[1.0, 4.0], [7.0, 4.0]]
    """
    ys, xs = np.nonzero(mask)
    if xs.size == 0:
        raise ValueError("empty mask has no principal axis")
    pts = np.stack([xs, ys], axis=1).astype(np.float64)
    centre = pts.mean(axis=0)
    d = pts - centre
    if xs.size == 1:
        axis = np.array([1.0, 0.0])
    else:
        cov = d.T @ d / len(d)
        vals, vecs = np.linalg.eigh(cov)
        axis = vecs[:, int(np.argmax(vals))]
        # canonical orientation: point towards +x (or +y when vertical)
        if axis[0] < -1e-9 or (abs(axis[0]) <= 1e-9 and axis[1] < 0):
            axis = -axis
    proj = d @ axis
    perp = np.abs(d @ np.array([-axis[1], axis[0]]))
    # extreme mask pixels along the axis; among ties the one nearest the axis line
    i1 = np.lexsort((perp, proj))[0]
    i2 = np.lexsort((perp, -proj))[0]
    p1, p2 = pts[i1], pts[i2]
    return [[round(float(p1[0]), 2), round(float(p1[1]), 2)], [round(float(p2[0]), 2), round(float(p2[1]), 2)]]


# ---------------------------------------------------------------- anatomy


def _anatomy(rng: np.random.Generator, size: int, yy, xx, cardiomegaly: bool):
    S = float(size)
    img = np.full((size, size), 0.06)
    # thorax / soft tissue
    thorax = _ellipse(yy, xx, S * rng.uniform(0.54, 0.58), S * 0.5, S * 0.50, S * rng.uniform(0.44, 0.47))
    img[thorax] = 0.42
    # neck and shoulder girdle: one broad band merging with the thorax
    img[_ellipse(yy, xx, S * 0.16, S * 0.5, S * 0.09, S * 0.47) | ((np.abs(xx - S * 0.5) < S * 0.09) & (yy < S * 0.2))] = 0.42
    lungs, lung_box, hilum = {}, {}, {}
    cy = S * rng.uniform(0.47, 0.51)
    ry = S * rng.uniform(0.27, 0.30)
    for side, sgn in (("right", -1), ("left", +1)):  # patient right = image left
        cx = S * (0.5 + sgn * rng.uniform(0.19, 0.21))
        rx = S * rng.uniform(0.125, 0.14)
        lung = _ellipse(yy, xx, cy, cx, ry, rx, angle=sgn * rng.uniform(0.02, 0.08))
        # flatten the medial top a little and cut the base with the dome of the diaphragm
        dome = cy + ry * 0.86 - S * 0.05 * (1 - ((xx - cx) / rx) ** 2).clip(0)
        lung &= yy < dome
        lungs[side] = lung
        ys, xs = np.nonzero(lung)
        lung_box[side] = (float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1))
        hilum[side] = (cx - sgn * rx * 0.45, cy + ry * 0.05)
    both = lungs["right"] | lungs["left"]
    img[both] = 0.17
    # lung markings: smooth low-amplitude texture, denser towards the hila
    tex = ndimage.gaussian_filter(rng.standard_normal((size, size)), sigma=max(1.0, S / 90))
    tex /= np.abs(tex).max() + 1e-9
    img += np.where(both, 0.045 * tex, 0.0)
    # mediastinum and spine
    med = (np.abs(xx - S * 0.5) < S * rng.uniform(0.06, 0.07)) & (yy > S * 0.08) & thorax
    img[med] = 0.55
    spine = (np.abs(xx - S * 0.5) < S * 0.03) & thorax
    img[spine] = np.maximum(img[spine], 0.62)
    # heart: shifted to the image right (patient left)
    heart_rx = S * (rng.uniform(0.17, 0.20) if cardiomegaly else rng.uniform(0.10, 0.115))
    heart = {"cy": cy + ry * 0.52, "cx": S * 0.5 + S * rng.uniform(0.04, 0.06), "ry": S * rng.uniform(0.11, 0.13),
             "rx": heart_rx, "angle": rng.uniform(-0.25, -0.1)}
    hmask = _ellipse(yy, xx, heart["cy"], heart["cx"], heart["ry"], heart["rx"], heart["angle"]) & thorax
    img[hmask] = 0.60
    heart["mask"] = hmask
    # ribs: arcs over the lung fields (posterior ribs), sloping down laterally
    n_ribs = 9
    thick = max(1.0, S * 0.011)
    y_top = cy - ry * 0.95
    for side, sgn in (("right", -1), ("left", +1)):
        x0, _, x1, _ = lung_box[side]
        medial = x1 if sgn < 0 else x0
        for k in range(n_ribs):
            y0 = y_top + k * (2 * ry * 0.95) / n_ribs + rng.uniform(-0.5, 0.5)
            t = np.abs(xx - medial) / max(1.0, (x1 - x0))
            curve = y0 + S * 0.05 * t - S * 0.06 * t * t + S * 0.08 * t**3
            rib = (np.abs(yy - curve) < thick) & (t <= 1.05) & thorax & ~hmask & (yy < lung_box[side][3] + S * 0.03)
            img[rib] += 0.07
    # clavicles
    for sgn in (-1, +1):
        t = (xx - S * 0.5) * sgn
        curve = S * 0.2 - S * 0.05 * (t / (S * 0.35))
        clav = (np.abs(yy - curve) < thick * 1.3) & (t > S * 0.04) & (t < S * 0.33)
        img[clav] += 0.1
    return img, _Anatomy(size, lungs, lung_box, hilum, heart)


# ---------------------------------------------------------------- findings


def _zone_band(an: _Anatomy, side: str, zone: str):
    _, y0, _, y1 = an.lung_box[side]
    k = ZONES.index(zone)
    h = (y1 - y0) / 3
    return y0 + k * h, y0 + (k + 1) * h


def _sample_centre(rng, an: _Anatomy, side, zone, radius, occupied, yy, xx):
    """A centre inside ``side``'s lung, in ``zone``, at least ``radius`` from the
    lung border and away from other findings; None when none fits."""
    lo, hi = _zone_band(an, side, zone)
    inside = ndimage.distance_transform_edt(an.lungs[side]) > radius + 1
    band = (yy >= lo) & (yy < hi)
    free = ndimage.distance_transform_edt(~occupied) > radius + 2 if occupied.any() else np.ones_like(inside)
    cand = np.argwhere(inside & band & free)
    if len(cand) == 0:
        return None
    cy, cx = cand[rng.integers(len(cand))]
    return float(cy), float(cx)


def _place(rng, an: _Anatomy, side, zone, occupied, yy, xx, radius: tuple[float, float], margin: float = 1.0):
    """A random radius ``r`` (a fraction of the image size drawn from ``radius``) and a
    centre for it (:func:`_sample_centre`, ``margin * r`` from the lung border):
    ``(r, (cy, cx))``, or None when nothing fits."""
    r = an.size * rng.uniform(*radius)
    c = _sample_centre(rng, an, side, zone, r * margin, occupied, yy, xx)
    return None if c is None else (r, c)


def _draw_nodule(rng, img, an, side, zone, occupied, yy, xx):
    placed = _place(rng, an, side, zone, occupied, yy, xx, (0.022, 0.032))
    if placed is None:
        return None
    r, c = placed
    mask = _ellipse(yy, xx, c[0], c[1], r, r * rng.uniform(0.9, 1.1))
    img[mask] = rng.uniform(0.78, 0.85)
    return Finding("nodule", side, zone, mask, {"diameter_mm": int(round(2 * r / an.size * 350 / 5) * 5) or 5})


def _draw_mass(rng, img, an, side, zone, occupied, yy, xx):
    placed = _place(rng, an, side, zone, occupied, yy, xx, (0.06, 0.075))
    if placed is None:
        return None
    r, c = placed
    mask = _ellipse(yy, xx, c[0], c[1], r * rng.uniform(0.8, 0.95), r, rng.uniform(0, np.pi))
    for _ in range(3):  # lobulated outline
        a = rng.uniform(0, 2 * np.pi)
        mask |= _ellipse(yy, xx, c[0] + 0.55 * r * np.sin(a), c[1] + 0.55 * r * np.cos(a), r * 0.5, r * 0.5)
    mask &= an.lungs[side]
    img[mask] = rng.uniform(0.62, 0.68)
    return Finding("mass", side, zone, mask, {"diameter_cm": round(float(2 * r / an.size * 35), 1)})


def _draw_consolidation(rng, img, an, side, zone, occupied, yy, xx):
    placed = _place(rng, an, side, zone, occupied, yy, xx, (0.045, 0.06), margin=0.6)
    if placed is None:
        return None
    r, c = placed
    mask = np.zeros_like(an.lungs[side])
    for _ in range(5):  # patchy union of ellipses
        mask |= _ellipse(yy, xx, c[0] + rng.uniform(-0.7, 0.7) * r, c[1] + rng.uniform(-0.7, 0.7) * r,
                         r * rng.uniform(0.45, 0.8), r * rng.uniform(0.45, 0.8), rng.uniform(0, np.pi))
    mask &= an.lungs[side]
    if occupied.any():
        mask &= ~ndimage.binary_dilation(occupied, iterations=2)
    mask = _largest_component(mask)
    if mask.sum() < 12:
        return None
    # mottled mid-grey opacity with darker air bronchograms
    mottle = ndimage.gaussian_filter(rng.standard_normal(mask.shape), 1.2)
    img[mask] = 0.40 + 0.06 * np.clip(mottle[mask] / (np.abs(mottle).max() + 1e-9), -1, 1)
    return Finding("consolidation", side, zone, mask)


def _draw_effusion(rng, img, an, side, zone, occupied, yy, xx):
    x0, y0, x1, y1 = an.lung_box[side]
    h = y1 - y0
    level = y1 - h * rng.uniform(0.2, 0.3)
    lateral = x0 if side == "right" else x1  # chest wall side in the image
    width = x1 - x0
    # meniscus: fluid climbs the lateral chest wall
    meniscus = level - h * 0.12 * (1 - np.abs(xx - lateral) / width).clip(0) ** 2
    mask = an.lungs[side] & (yy >= meniscus)
    if occupied.any() and (mask & occupied).any():
        return None
    if mask.sum() < 12:
        return None
    img[mask] = 0.52
    return Finding("effusion", side, "lower", mask)


def _draw_pneumothorax(rng, img, an, side, zone, occupied, yy, xx):
    x0, y0, x1, y1 = an.lung_box[side]
    hx, hy = an.hilum[side]
    lung = an.lungs[side]
    f = rng.uniform(0.72, 0.82)
    # collapsed lung: the lung shrunk towards the hilum
    sy = hy + (yy - hy) / f
    sx = hx + (xx - hx) / f
    coords = np.stack([sy.ravel(), sx.ravel()])
    collapsed = ndimage.map_coordinates(lung.astype(np.float32), coords, order=0).reshape(lung.shape) > 0.5
    lateral = (xx < hx) if side == "right" else (xx > hx)  # apical and lateral, not medial
    mask = lung & ~collapsed & (yy < y0 + (y1 - y0) * 0.55) & (lateral | (yy < y0 + (y1 - y0) * 0.12))
    mask = _largest_component(mask)
    if mask.sum() < 12 or (occupied.any() and (mask & ndimage.binary_dilation(occupied, iterations=2)).any()):
        return None
    img[mask] = 0.06  # free air: dark, no lung markings
    line = collapsed & ~ndimage.binary_erosion(collapsed, iterations=1) & ndimage.binary_dilation(mask, iterations=1)
    img[line] = 0.45  # visceral pleural line
    return Finding("pneumothorax", side, "upper", mask)


def _cardiomegaly(an: _Anatomy):
    return Finding("cardiomegaly", None, None, an.heart["mask"].copy())


def _largest_component(mask: np.ndarray) -> np.ndarray:
    lab, n = ndimage.label(mask)
    if n <= 1:
        return mask
    sizes = ndimage.sum(mask, lab, index=np.arange(1, n + 1))
    return lab == (1 + int(np.argmax(sizes)))


_DRAW = {"nodule": _draw_nodule, "mass": _draw_mass, "consolidation": _draw_consolidation,
         "effusion": _draw_effusion, "pneumothorax": _draw_pneumothorax}


def _plan(rng: np.random.Generator, pair: list[tuple[str, str, str]] | None = None
          ) -> list[tuple[str, str | None, str | None]]:
    """Choose 2–4 (category, side, zone) slots, distinct per category and location,
    often with two findings of the same category (the query must decide).  ``pair``:
    slots planted first (two findings of one category, for multi-target queries)."""
    k = int(rng.integers(2, 5))
    slots: list[tuple[str, str | None, str | None]] = list(pair or [])
    if rng.random() < 0.3:
        slots.append(("cardiomegaly", None, None))
    pleural_sides: set[str] = {s[1] for s in slots if s[0] in ("effusion", "pneumothorax")}
    tries = 0
    while len(slots) < k and tries < 50:
        tries += 1
        lung_slots = [s for s in slots if s[0] in ("nodule", "mass", "consolidation")]
        if lung_slots and rng.random() < 0.45:  # repeat a parenchymal category already planned
            cat = lung_slots[int(rng.integers(len(lung_slots)))][0]
        else:
            cat = CATEGORIES[int(rng.integers(5))]  # cardiomegaly only once, above
        if cat == "cardiomegaly":
            continue
        side = SIDES[int(rng.integers(2))]
        if cat in ("effusion", "pneumothorax"):
            if side in pleural_sides:
                continue
            zone = "lower" if cat == "effusion" else "upper"
        else:
            zone = ZONES[int(rng.integers(3))]
        if any(s[1] == side and s[2] == zone for s in slots):
            continue  # one finding per lung zone keeps the queries unambiguous
        if cat in ("effusion", "pneumothorax"):
            pleural_sides.add(side)
        slots.append((cat, side, zone))
    # pleural findings change the lung fields; draw them first
    order = {"effusion": 0, "pneumothorax": 1, "cardiomegaly": 2}
    return sorted(slots, key=lambda s: order.get(s[0], 3))


def render_phantom(seed: int, index: int, size: int = 224, pair: list[tuple[str, str, str]] | None = None) -> Phantom:
    """Render image ``index`` of the phantom set with ``seed`` (pure function); ``pair``
    plants two findings of one category first (see :func:`plan_pair`)."""
    if size < 64:
        raise MedgroundError(f"phantom size must be at least 64 px, got {size}")
    rng = np.random.default_rng([int(seed), int(index)])
    yy, xx = _grid(size)
    plan = _plan(rng, pair)
    img, an = _anatomy(rng, size, yy, xx, cardiomegaly=any(p[0] == "cardiomegaly" for p in plan))
    findings: list[Finding] = []
    occupied = np.zeros((size, size), bool)
    for cat, side, zone in plan:
        if cat == "cardiomegaly":
            f = _cardiomegaly(an)
        else:
            f = _DRAW[cat](rng, img, an, side, zone, occupied, yy, xx)
        if f is None or not f.mask.any():
            continue
        findings.append(f)
        if cat != "cardiomegaly":
            occupied |= f.mask
    # a finding that did not fit is dropped; keep at least two (rare fallback: nodules in free zones)
    used = {(f.side, f.zone) for f in findings}
    for side in SIDES:
        for zone in ZONES:
            if len(findings) >= 2:
                break
            if (side, zone) not in used:
                f = _draw_nodule(rng, img, an, side, zone, occupied, yy, xx)
                if f is not None:
                    findings.append(f)
                    occupied |= f.mask
    if not findings:
        findings.append(_cardiomegaly(an))
    img = ndimage.gaussian_filter(img, sigma=0.6)
    img = img + rng.normal(0, 0.018, img.shape)
    out = (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)
    return Phantom(out, findings, {side: m.copy() for side, m in an.lungs.items()})


def plan_pair(rng: np.random.Generator) -> list[tuple[str, str, str]]:
    """Two slots of one category for a multi-target query: both pleural sides, or two
    parenchymal findings in different lung zones."""
    cat = PAIR_CATEGORIES[int(rng.integers(len(PAIR_CATEGORIES)))]
    if cat in ("effusion", "pneumothorax"):
        zone = "lower" if cat == "effusion" else "upper"
        return [(cat, "right", zone), (cat, "left", zone)]
    slots = [(side, zone) for side in SIDES for zone in ZONES]
    a, b = rng.choice(len(slots), size=2, replace=False)
    return [(cat, *slots[int(a)]), (cat, *slots[int(b)])]


# ---------------------------------------------------------------- queries


def _query(rng, f: Finding, others: list[Finding], task: str) -> str:
    same = [o for o in others if o.category == f.category]
    if task == "explicit":
        tpl = EXPLICIT[f.category][int(rng.integers(len(EXPLICIT[f.category])))]
        return tpl.format(side=f.side, zone=f.zone, mm=f.extra.get("diameter_mm", 10),
                          cm=f.extra.get("diameter_cm", 5.0))
    tpl = IMPLICIT[f.category][int(rng.integers(len(IMPLICIT[f.category])))]
    if f.category in ("nodule", "mass", "consolidation"):
        # a location hint only where the category alone would be ambiguous
        if same:
            loc = f" in the {f.side} {f.zone} zone" if any(o.side == f.side for o in same) else f" on the {f.side}"
        else:
            loc = ""
        return tpl.format(loc=loc)
    return tpl.format(side=f.side)


def query_bank() -> list[str]:
    """Every query text the generator can write (all phrasings, sides, zones and
    location hints; sizes 5-30 mm / 2.0-6.9 cm), sorted.  Used to train the tiny
    model's tokenizer."""
    out = set()
    for tpls in EXPLICIT.values():
        for tpl in tpls:
            for side in SIDES:
                for zone in ZONES:
                    for mm in range(5, 35, 5):
                        out.add(tpl.format(side=side, zone=zone, mm=mm, cm=f"{2 + mm / 10:.1f}"))
    for tpls in IMPLICIT.values():
        for tpl in tpls:
            for side in SIDES:
                locs = [""] + [f" on the {side}"] + [f" in the {side} {z} zone" for z in ZONES]
                for loc in locs:
                    out.add(tpl.format(side=side, loc=loc))
    return sorted(out)


def open_query_bank() -> list[str]:
    """The query texts only the open-set options write: the multi-target phrasings (negative
    queries reuse the single-target phrasing of :func:`query_bank`), sorted."""
    out = set()
    for tpls in MULTI_EXPLICIT.values():
        for tpl in tpls:
            out.update(tpl.format(n=word) for word in NUMBER_WORDS.values())
    for tpls in MULTI_IMPLICIT.values():
        out.update(tpls)
    return sorted(out)


def _negative_slots(findings: list[Finding]) -> dict[str, list[tuple[str | None, str | None]]]:
    """Per category, the ``(side, zone)`` slots the image has no finding of that category in:
    what a negative query may ask for (cardiomegaly: ``(None, None)`` when the heart is normal)."""
    have = {(f.category, f.side, f.zone) for f in findings}
    cats = {f.category for f in findings}
    out: dict[str, list] = {}
    if "cardiomegaly" not in cats:
        out["cardiomegaly"] = [(None, None)]
    for cat, zone in (("effusion", "lower"), ("pneumothorax", "upper")):
        free = [(side, zone) for side in SIDES if not any(f.category == cat and f.side == side for f in findings)]
        if free:
            out[cat] = free
    for cat in ("nodule", "mass", "consolidation"):
        out[cat] = [(side, zone) for side in SIDES for zone in ZONES if (cat, side, zone) not in have]
    return {c: v for c, v in out.items() if v}


def _negative_query(rng, cat: str, side, zone, findings: list[Finding], task: str) -> str:
    """A query for a ``cat`` finding at ``(side, zone)`` that the image does not have, in the
    phrasing of a real one; an implicit question names the location wherever the category
    is present elsewhere in the image."""
    if task == "explicit":
        tpl = EXPLICIT[cat][int(rng.integers(len(EXPLICIT[cat])))]
        mm = NODULE_MM[int(rng.integers(len(NODULE_MM)))]
        return tpl.format(side=side, zone=zone, mm=mm, cm=f"{2 + mm / 10:.1f}")
    tpl = IMPLICIT[cat][int(rng.integers(len(IMPLICIT[cat])))]
    if cat in ("nodule", "mass", "consolidation"):
        same = [f for f in findings if f.category == cat]
        if any(f.side == side for f in same):
            loc = f" in the {side} {zone} zone"
        elif same or rng.random() < 0.5:
            loc = f" on the {side}"
        else:
            loc = ""
        return tpl.format(loc=loc)
    return tpl.format(side=side)


def _multi_query(rng, cat: str, n: int, task: str) -> str:
    bank = MULTI_EXPLICIT if task == "explicit" else MULTI_IMPLICIT
    return bank[cat][int(rng.integers(len(bank[cat])))].format(n=NUMBER_WORDS.get(n, str(n)))


def findings_text(findings: list[Finding], category: str) -> str:
    """What the image shows of ``category``, as a reasoning would say it: the findings of
    that category with their location ("right effusion", "left upper mass, right lower
    mass"), "no <category>" when there is none; the heart is "enlarged heart" / "normal
    heart", the lung fields "both lungs".  The open-set phantom stores it as ``meta.findings``
    (a warm start's ``think: "{findings}"`` reasons with it).

    >>> m = np.zeros((4, 4), bool)
    >>> findings_text([Finding("mass", "left", "upper", m), Finding("effusion", "right", "lower", m)], "mass")
    'left upper mass'
    >>> findings_text([], "pneumothorax"), findings_text([], "cardiomegaly")
    ('no pneumothorax', 'normal heart')
    """
    if category == LUNGS:
        return "both lungs"
    same = [f for f in findings if f.category == category]
    if category == "cardiomegaly":
        return "enlarged heart" if same else "normal heart"
    if not same:
        return f"no {category}"
    words = [f"{f.side} {category}" if category in ("effusion", "pneumothorax") else f"{f.side} {f.zone} {category}"
             for f in sorted(same, key=lambda f: (SIDES.index(f.side), ZONES.index(f.zone)))]
    return ", ".join(words)


def findings_bank() -> list[str]:
    """Every single-finding text of :func:`findings_text` (the tiny tokenizer learns them)."""
    out = {"both lungs", "enlarged heart", "normal heart"}
    for cat in CATEGORIES[:5]:
        out.add(f"no {cat}")
        for side in SIDES:
            out.update([f"{side} {cat}"] + [f"{side} {zone} {cat}" for zone in ZONES])
    return sorted(out)


def _stochastic_count(rng, expected: float) -> int:
    """``floor(expected)`` plus one with probability ``expected - floor(expected)``."""
    whole = int(np.floor(expected))
    return whole + int(rng.random() < expected - whole)


def open_set_samples(ph: Phantom, image_id: str, rng: np.random.Generator, *, size: int, split: str, seed: int,
                     n_negative: int, n_multi: int, implicit_frac: float, taken: set[str]):
    """Up to ``n_negative`` negative and ``n_multi`` multi-target samples of one phantom
    image: ``[(sample, mask or None)]``.  A multi-target query names every finding of a
    category that occurs more than once (pleural findings: both sides), else both lungs;
    ``taken`` (the image's queries so far) keeps every query of the image distinct."""
    out = []
    common = {"image_id": image_id, "n_findings": len(ph.findings), "generator": "medground.phantom", "seed": int(seed)}
    groups = {}
    for f in ph.findings:
        if f.category != "cardiomegaly":
            groups.setdefault(f.category, []).append(f)
    cats = [c for c, fs in groups.items() if len(fs) >= 2]
    rng.shuffle(cats)
    if len(cats) < n_multi and ph.lungs:
        cats.append(LUNGS)
    for k, cat in enumerate(cats[:n_multi]):
        task = "implicit" if rng.random() < implicit_frac else "explicit"
        if cat == LUNGS:
            masks = [ph.lungs[side] for side in SIDES]
        else:
            masks = [f.mask for f in groups[cat]]
        query = _multi_query(rng, cat, len(masks), task)
        if query in taken:
            continue
        taken.add(query)
        masks.sort(key=lambda m: mask_box(m))
        union = np.logical_or.reduce(masks)
        sid = f"{image_id}-m{k}"
        others = [f.category for f in ph.findings if cat == LUNGS or f.category != cat]
        s = Sample(id=sid, image=f"images/{image_id}.png", query=query, boxes=[mask_box(m) for m in masks],
                   mask=f"masks/{sid}.png", category=cat, supercategory=SUPERCATEGORY[cat], modality="xray",
                   split=split, width=size, height=size,
                   meta={"task": task, "kind": "multi", "laterality": None, "zone": None, "n_targets": len(masks),
                         "distractors": sorted(others), **common})
        validate_targets(s, masks)
        out.append((s, union))
    slots = _negative_slots(ph.findings)
    for k in range(n_negative):
        if not slots:
            break
        for _ in range(8):  # a few draws until the query is new in this image
            names = sorted(slots)
            cat = names[int(rng.integers(len(names)))]
            side, zone = slots[cat][int(rng.integers(len(slots[cat])))]
            task = "implicit" if rng.random() < implicit_frac else "explicit"
            query = _negative_query(rng, cat, side, zone, ph.findings, task)
            if query not in taken:
                break
        else:
            continue
        taken.add(query)
        slots[cat].remove((side, zone))
        if not slots[cat]:
            del slots[cat]
        s = Sample(id=f"{image_id}-n{k}", image=f"images/{image_id}.png", query=query, boxes=[], category=cat,
                   supercategory=SUPERCATEGORY[cat], modality="xray", split=split, width=size, height=size,
                   meta={"task": task, "kind": "negative", "laterality": side, "zone": zone,
                         "distractors": sorted(f.category for f in ph.findings), **common})
        out.append((s, None))
    return out


# ---------------------------------------------------------------- dataset


def _split_of(n: int, seed: int, val_frac: float, test_frac: float) -> list[str]:
    """Deterministic image-level split: a seeded permutation cut by fractions, with
    at least one val and one test image once there are three images."""
    perm = np.random.default_rng([int(seed), 2**31 - 1]).permutation(n)
    n_val = int(round(n * val_frac))
    n_test = int(round(n * test_frac))
    if n >= 3:
        n_val, n_test = max(1, n_val), max(1, n_test)
    splits = ["train"] * n
    for j, i in enumerate(perm):
        if j < n_test:
            splits[i] = "test"
        elif j < n_test + n_val:
            splits[i] = "val"
    return splits


def validate_target(sample: Sample, mask: np.ndarray) -> None:
    """Check a generated target: box inside the image with positive area, equal to
    the mask's tight box, key points inside the box."""
    W, H = sample.width, sample.height
    x0, y0, x1, y1 = sample.boxes[0]
    loc = f"phantom [id={sample.id}]"
    if not (0 <= x0 < x1 <= W and 0 <= y0 < y1 <= H):
        raise MedgroundError(f"{loc}: box {sample.boxes[0]} outside the {W}x{H} image or empty")
    if mask.shape != (H, W) or not mask.any():
        raise MedgroundError(f"{loc}: mask empty or of the wrong size {mask.shape}")
    if mask_box(mask) != sample.boxes[0]:
        raise MedgroundError(f"{loc}: box {sample.boxes[0]} does not match mask box {mask_box(mask)}")
    for x, y in sample.points or []:
        if not (x0 <= x <= x1 and y0 <= y <= y1):
            raise MedgroundError(f"{loc}: key point {[x, y]} outside box {sample.boxes[0]}")


def validate_targets(sample: Sample, masks: list[np.ndarray]) -> None:
    """Check a multi-target sample: box ``k`` is the tight box of mask ``k``, inside the image."""
    W, H = sample.width, sample.height
    loc = f"phantom [id={sample.id}]"
    for box, mask in zip(sample.boxes, masks, strict=True):
        x0, y0, x1, y1 = box
        if not (0 <= x0 < x1 <= W and 0 <= y0 < y1 <= H) or mask_box(mask) != box:
            raise MedgroundError(f"{loc}: box {box} outside the {W}x{H} image or not its mask's box {mask_box(mask)}")


def phantom_samples(seed: int, index: int, size: int, split: str, implicit_frac: float = 0.3,
                    negative_frac: float = 0.0, multi_frac: float = 0.0):
    """Render image ``index`` and build its samples; returns ``(phantom, [(sample, mask or None)])``.

    ``negative_frac`` / ``multi_frac``: the expected share of negative / multi-target samples
    among all samples (0 each: the single-target samples only, bytes unchanged).  They draw
    from their own random streams: with ``multi_frac`` an image may get two findings of one
    category planted (:func:`plan_pair`)."""
    pair = None
    if multi_frac > 0:
        prng = np.random.default_rng([int(seed), int(index), 3])
        if prng.random() < min(1.0, 2 * multi_frac):
            pair = plan_pair(prng)
    ph = render_phantom(seed, index, size, pair)
    qrng = np.random.default_rng([int(seed), int(index), 1])
    image_id = f"phantom-{seed}-{index:06d}"
    out = []
    for j, f in enumerate(ph.findings):
        sid = f"{image_id}-{j}"
        task = "implicit" if qrng.random() < implicit_frac else "explicit"
        others = [o for o in ph.findings if o is not f]
        query = _query(qrng, f, others, task)
        meta = {"task": task, "laterality": f.side, "zone": f.zone, "image_id": image_id,
                "n_findings": len(ph.findings), "distractors": sorted(o.category for o in others),
                "generator": "medground.phantom", "seed": int(seed)}
        meta.update(f.extra)
        s = Sample(
            id=sid, image=f"images/{image_id}.png", query=query, boxes=[mask_box(f.mask)],
            mask=f"masks/{sid}.png", points=principal_axis_points(f.mask), category=f.category,
            supercategory=SUPERCATEGORY[f.category], modality="xray", split=split, width=size, height=size,
            meta=meta,
        )
        validate_target(s, f.mask)
        out.append((s, f.mask))
    if negative_frac > 0 or multi_frac > 0:
        orng = np.random.default_rng([int(seed), int(index), 2])
        singles = len(out) / max(1e-9, 1.0 - negative_frac - multi_frac)
        out += open_set_samples(ph, image_id, orng, size=size, split=split, seed=seed,
                                n_negative=_stochastic_count(orng, singles * negative_frac),
                                n_multi=_stochastic_count(orng, singles * multi_frac),
                                implicit_frac=implicit_frac, taken={s.query for s, _ in out})
        for s, _ in out:  # what the image shows of the queried category (a reasoning text)
            s.meta["findings"] = findings_text(ph.findings, s.category)
    return ph, out


def generate_phantom_dataset(
    out: str | os.PathLike,
    n: int = 200,
    seed: int = 0,
    size: int = 224,
    val_frac: float = 0.1,
    test_frac: float = 0.1,
    implicit_frac: float = 0.3,
    progress: bool = True,
    negative_frac: float = 0.0,
    multi_frac: float = 0.0,
) -> dict[str, int]:
    """Write ``n`` phantom images and their samples to ``out``; returns sample counts
    per split (and ``"images"``).  Rerunning with the same arguments rewrites the
    same bytes, so an interrupted run is simply run again.  ``negative_frac`` /
    ``multi_frac`` add negative / multi-target queries (expected shares of all samples)."""
    if n < 1:
        raise MedgroundError(f"--n must be at least 1, got {n}")
    if not (0 <= val_frac < 1 and 0 <= test_frac < 1 and val_frac + test_frac < 1):
        raise MedgroundError(f"val/test fractions must be in [0, 1) and sum below 1, got {val_frac}, {test_frac}")
    if not 0 <= implicit_frac <= 1:
        raise MedgroundError(f"--implicit-frac must be in [0, 1], got {implicit_frac}")
    if size < 64:
        raise MedgroundError(f"--size must be at least 64 (pixels), got {size}")
    if not (0 <= negative_frac < 1 and 0 <= multi_frac < 1 and negative_frac + multi_frac < 1):
        raise MedgroundError(f"--negative-frac and --multi-frac must be in [0, 1) and sum below 1, got "
                             f"{negative_frac}, {multi_frac}")
    from ..progress import progress as progress_bar

    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    splits = _split_of(n, seed, val_frac, test_frac)
    by_split: dict[str, list[Sample]] = {s: [] for s in SPLITS}
    for i in progress_bar(range(n), desc="phantom", unit="img", enabled=progress):
        ph, items = phantom_samples(seed, i, size, splits[i], implicit_frac, negative_frac, multi_frac)
        save_png(ph.image, root / items[0][0].image)
        for s, mask in items:
            if mask is not None:
                save_mask_png(mask, root / s.mask)
            by_split[s.split].append(s)
    write_dataset({split: _absolute(by_split[split], root) for split in SPLITS}, root)
    write_jsonl(_absolute([s for sp in SPLITS for s in by_split[sp]], root), root / "all.jsonl")
    info = {"generator": "medground.phantom", "seed": seed, "n_images": n, "size": size,
            "val_frac": val_frac, "test_frac": test_frac, "implicit_frac": implicit_frac,
            "categories": list(CATEGORIES), "samples": {s: len(v) for s, v in by_split.items()}}
    if negative_frac or multi_frac:  # (absent at 0: the file of a closed-set run is unchanged)
        info.update({"negative_frac": negative_frac, "multi_frac": multi_frac,
                     "kinds": {sp: _kind_counts(v) for sp, v in by_split.items()}})
    atomic_json(info, root / "phantom.json", indent=1, sort_keys=True)
    return {"images": n, **{s: len(v) for s, v in by_split.items()}}


def _absolute(samples: list[Sample], root: Path) -> list[Sample]:
    """Copies with image/mask paths absolute so write_jsonl stores them relative."""
    res = []
    for s in samples:
        d = s.to_dict()
        d["image"] = str((root / s.image).resolve())
        d["mask"] = str((root / s.mask).resolve()) if s.mask else None
        res.append(Sample(**d))
    return res


def _kind_counts(samples: list[Sample]) -> dict[str, int]:
    kinds = {"negative": 0, "single": 0, "multi": 0}
    for s in samples:
        kinds[s.kind] += 1
    return kinds
