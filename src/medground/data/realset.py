"""A small *real* test set built from images that installed packages ship.

No download: every image comes from a Python package already installed — pydicom and
scikit-image with medground itself, nilearn with its ``realset`` extra
(``pip install -e ".[realset]"``; the ``dev`` extra has it too) — and every reference
mask is derived from it by a fixed, documented rule (below), so
``scripts/build_realset.py`` rebuilds byte-identical files on any machine.

Sources and rules (``largest`` = largest 8-connected component; ``fill`` = holes filled):

``mni152`` — nilearn's MNI152 2009 template (1 mm, T1 plus grey / white-matter
probability maps and brain mask, shipped inside nilearn).  Axial slices at z = 0, 10,
20 mm, shown in radiological convention (:func:`medground.data.io.to_display`):

* ``brain``: fill(largest(brain mask));
* ``left / right cerebral white matter``: largest(WM probability > 0.5 on the
  patient's left (x < 0 mm) / right (x > 0 mm) side);
* ``lateral ventricles`` (z = 10 and 20 mm): the two largest components of
  opening(T1 < 0.45 inside the brain, |x| < 30 mm, -50 < y < 40 mm).

``ct`` — pydicom's ``CT_small.dcm`` (128 × 128 thoracic CT, HU = pixel × slope +
intercept), shown in a soft-tissue window (centre 40, width 400):

* ``vertebra``: fill(largest(HU > 200));
* ``right lung`` / ``left lung``: the two largest components of HU < -400 (the one
  on the image left is the patient's right);
* ``descending aorta``: fill(largest(opening²(80 < HU < 200) in the top-right
  quadrant, x > 70, y < 50)).

``retina`` — scikit-image's ``retina()`` fundus photograph (1411², resized to 512²
with Lanczos):

* ``retinal field of view``: fill(largest(mean RGB > 0.08));
* ``optic disc``: convex hull of largest(Gaussian-smoothed (σ = 6) mean RGB above its
  97.5th percentile inside the field of view).

Each target becomes one :class:`~medground.data.schema.Sample` with its image PNG,
mask PNG, tight box (``[x_min, y_min, x_max + 1, y_max + 1]``) and the two key points
of :func:`medground.data.phantom.principal_axis_points`.
"""

from __future__ import annotations

import importlib.util
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

from ..errors import MedgroundError
from .masks import mask_box, save_mask_png, save_png
from .schema import Sample, write_jsonl

SOURCES = ("mni152", "ct", "retina")
MNI_SLICES_MM = (0, 10, 20)
VENTRICLE_SLICES_MM = (10, 20)


@dataclass
class Target:
    name: str
    mask: np.ndarray
    query: str
    category: str
    supercategory: str


@dataclass
class Scene:
    key: str
    image: np.ndarray  # uint8 (H, W) or (H, W, 3)
    modality: str
    targets: list[Target]
    meta: dict


# --------------------------------------------------------------------------- helpers


def largest(mask: np.ndarray, k: int = 1) -> np.ndarray:
    """The ``k`` largest 8-connected components of ``mask`` (ties: lower label first)."""
    lab, n = ndi.label(mask, structure=np.ones((3, 3)))
    if n == 0:
        return np.zeros_like(mask, dtype=bool)
    sizes = ndi.sum(mask, lab, np.arange(1, n + 1))
    order = np.argsort(-sizes, kind="stable")[:k]
    return np.isin(lab, order + 1)


def fill(mask: np.ndarray) -> np.ndarray:
    return ndi.binary_fill_holes(mask)


def _u8(unit: np.ndarray) -> np.ndarray:
    return np.clip(np.round(unit * 255), 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------- sources


def mni152_scenes() -> list[Scene]:
    from nilearn import datasets

    from .io import to_display

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t1 = datasets.load_mni152_template(resolution=1)
        wm_img = datasets.load_mni152_wm_template(resolution=1)
        brain_img = datasets.load_mni152_brain_mask(resolution=1)
    aff = t1.affine
    T = np.asarray(t1.dataobj, dtype=np.float32)
    WM = np.asarray(wm_img.dataobj, dtype=np.float32)
    BM = np.asarray(brain_img.dataobj) > 0
    if not (T.shape == WM.shape == BM.shape):
        raise MedgroundError(f"nilearn MNI152 maps disagree in shape: {T.shape}, {WM.shape}, {BM.shape}")
    xs = aff[0, 0] * np.arange(T.shape[0]) + aff[0, 3]
    ys = aff[1, 1] * np.arange(T.shape[1]) + aff[1, 3]
    X = to_display(np.broadcast_to(xs[:, None], T.shape[:2]))
    Y = to_display(np.broadcast_to(ys[None, :], T.shape[:2]))
    inv = np.linalg.inv(aff)
    scenes = []
    for z in MNI_SLICES_MM:
        k = int(round((inv @ [0, 0, z, 1])[2]))
        t1s = to_display(T[:, :, k])
        brain = fill(largest(to_display(BM[:, :, k])))
        wm = to_display(WM[:, :, k]) > 0.5
        targets = [
            Target("brain", brain, "the brain", "brain", "brain"),
            Target("right_wm", largest(wm & (X > 0)), "white matter of the right cerebral hemisphere",
                   "cerebral white matter", "brain"),
            Target("left_wm", largest(wm & (X < 0)), "white matter of the left cerebral hemisphere",
                   "cerebral white matter", "brain"),
        ]
        if z in VENTRICLE_SLICES_MM:
            v = (t1s < 0.45) & brain & (np.abs(X) < 30) & (Y > -50) & (Y < 40)
            targets.append(Target("ventricles", largest(ndi.binary_opening(v), 2), "the lateral ventricles",
                                  "lateral ventricles", "brain"))
        scenes.append(Scene(f"mni152_z{z:+03d}".replace("+", "p").replace("-", "m"), _u8(t1s / max(T.max(), 1e-6)),
                            "mri", targets, {"source": "nilearn MNI152 2009 template, 1 mm", "z_mm": z, "slice": k}))
    return scenes


def ct_scenes() -> list[Scene]:
    import pydicom
    from pydicom.data import get_testdata_file

    path = get_testdata_file("CT_small.dcm")
    if path is None:
        raise MedgroundError("pydicom's test file CT_small.dcm is missing")
    ds = pydicom.dcmread(path)
    hu = ds.pixel_array.astype(np.float64) * float(getattr(ds, "RescaleSlope", 1)) + float(
        getattr(ds, "RescaleIntercept", 0))
    H, W = hu.shape
    yy, xx = np.mgrid[:H, :W]
    lungs = largest(hu < -400, 2)
    lab, n = ndi.label(lungs, structure=np.ones((3, 3)))
    comps = sorted((lab == i for i in range(1, n + 1)), key=lambda m: np.nonzero(m)[1].mean())
    soft = ndi.binary_opening((hu > 80) & (hu < 200), iterations=2) & (xx > 70) & (yy < 50)
    targets = [Target("vertebra", fill(largest(hu > 200)), "the vertebra", "vertebra", "bone")]
    if len(comps) == 2:
        targets.append(Target("right_lung", comps[0], "the right lung", "lung", "lung"))
        targets.append(Target("left_lung", comps[1], "the left lung", "lung", "lung"))
    targets.append(Target("aorta", fill(largest(soft)), "the descending aorta", "aorta", "vessel"))
    image = _u8((hu - (40 - 200)) / 400)
    return [Scene("ct_small", image, "ct", targets, {"source": "pydicom test file CT_small.dcm", "window": [40, 400]})]


def retina_scenes() -> list[Scene]:
    import skimage.data
    from PIL import Image
    from skimage.morphology import convex_hull_image

    rgb = np.asarray(Image.fromarray(skimage.data.retina()).resize((512, 512), Image.Resampling.LANCZOS))
    g = rgb.astype(np.float64).mean(axis=-1) / 255
    fov = fill(largest(g > 0.08))
    s = ndi.gaussian_filter(g, 6)
    disc = convex_hull_image(largest(s > np.percentile(s[fov], 97.5)))
    targets = [
        Target("fov", fov, "the retinal field of view", "field of view", "retina"),
        Target("optic_disc", disc, "the optic disc", "optic disc", "retina"),
    ]
    return [Scene("retina", rgb, "fundus", targets, {"source": "scikit-image data.retina(), resized to 512x512"})]


SOURCE_BUILDERS = {"mni152": mni152_scenes, "ct": ct_scenes, "retina": retina_scenes}


# --------------------------------------------------------------------------- build


def _target_sample(scene: Scene, t: Target, image_rel: str, mask_rel: str) -> Sample:
    from .phantom import principal_axis_points

    H, W = scene.image.shape[:2]
    return Sample(
        id=f"{scene.key}-{t.name}", image=image_rel, query=t.query, boxes=[mask_box(t.mask)], mask=mask_rel,
        points=principal_axis_points(t.mask), category=t.category, supercategory=t.supercategory,
        modality=scene.modality, split="test", width=W, height=H,
        meta={**scene.meta, "rule": "see medground.data.realset", "area": int(t.mask.sum())},
    )


#: source -> modules it needs beyond the base install (the ``realset`` extra installs them)
SOURCE_NEEDS = {"mni152": ("nilearn",)}


def build_realset(out_dir, sources=SOURCES, min_area: int = 20) -> Path:
    """Write ``images/``, ``masks/`` and ``realset.jsonl`` under ``out_dir``; returns the
    JSONL path.  Deterministic: the same packages give the same files."""
    out = Path(out_dir)
    unknown = [s for s in sources if s not in SOURCE_BUILDERS]
    if unknown:
        raise MedgroundError(f"unknown real-set source(s) {unknown}; choose from {', '.join(SOURCES)}")
    missing = [f"{source} needs {module}" for source in sources for module in SOURCE_NEEDS.get(source, ())
               if importlib.util.find_spec(module) is None]
    if missing:
        raise MedgroundError(f"real set: {'; '.join(missing)} — install it with pip install -e '.[realset]' "
                             f"(or pip install 'medground[realset]'), or leave the source out with --sources")
    samples = []
    for source in sources:
        for scene in SOURCE_BUILDERS[source]():
            image_rel = f"images/{scene.key}.png"
            save_png(scene.image, out / image_rel)
            for t in scene.targets:
                if t.mask.sum() < min_area:
                    raise MedgroundError(f"real set: target {scene.key}-{t.name} has only {int(t.mask.sum())} pixels")
                mask_rel = f"masks/{scene.key}-{t.name}.png"
                save_mask_png(t.mask, out / mask_rel)
                samples.append(_target_sample(scene, t, str((out / image_rel).resolve()), str((out / mask_rel).resolve())))
    return write_jsonl(samples, out / "realset.jsonl")
