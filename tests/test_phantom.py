"""The phantom chest-radiograph generator: deterministic, valid, unambiguous targets."""

from __future__ import annotations

import json
import os
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from medground.cli import main  # noqa: E402
from medground.data.masks import load_mask  # noqa: E402
from medground.data.phantom import (  # noqa: E402
    CATEGORIES,
    SUPERCATEGORY,
    generate_phantom_dataset,
    principal_axis_points,
    render_phantom,
)
from medground.data.schema import read_jsonl  # noqa: E402
from medground.errors import MedgroundError  # noqa: E402


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("phantom")
    counts = generate_phantom_dataset(out, n=40, seed=7, size=160, progress=False)
    return out, counts, read_jsonl(out / "all.jsonl")


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_gives_byte_identical_files_and_other_seed_differs(tmp_path):
    generate_phantom_dataset(tmp_path / "a", n=6, seed=11, size=96, progress=False)
    generate_phantom_dataset(tmp_path / "b", n=6, seed=11, size=96, progress=False)
    generate_phantom_dataset(tmp_path / "c", n=6, seed=12, size=96, progress=False)
    a, b = _files(tmp_path / "a"), _files(tmp_path / "b")
    assert a.keys() == b.keys() and len(a) > 10
    assert all(a[k] == b[k] for k in a)
    assert not [k for k in a if ".tmp" in k or Path(k).name.startswith(".")]  # no temporary file left
    assert (tmp_path / "a" / "images" / "phantom-11-000000.png").read_bytes() != (
        tmp_path / "c" / "images" / "phantom-12-000000.png"
    ).read_bytes()


def test_layout_splits_and_counts(dataset):
    out, counts, samples = dataset
    for split in ("train", "val", "test"):
        part = read_jsonl(out / f"{split}.jsonl")
        assert len(part) == counts[split] > 0
        assert {s.split for s in part} == {split}
    assert len(samples) == counts["train"] + counts["val"] + counts["test"]
    # splits are by image: no image appears in two splits
    split_of = defaultdict(set)
    for s in samples:
        split_of[s.image].add(s.split)
    assert all(len(v) == 1 for v in split_of.values())
    assert len(split_of) == 40
    assert len({s.id for s in samples}) == len(samples)


def test_images_are_8bit_grey_of_the_requested_size(dataset):
    _, _, samples = dataset
    for path in {s.image for s in samples}:
        with Image.open(path) as im:
            assert im.mode == "L" and im.size == (160, 160)


def test_every_target_has_valid_box_mask_and_points(dataset):
    _, _, samples = dataset
    for s in samples:
        assert s.width == s.height == 160 and s.modality == "xray"
        assert s.supercategory == SUPERCATEGORY[s.category]
        mask = load_mask(s.mask)
        assert mask.shape == (160, 160) and mask.any()
        ys, xs = np.nonzero(mask)
        assert s.boxes == [[xs.min(), ys.min(), xs.max() + 1.0, ys.max() + 1.0]]
        x0, y0, x1, y1 = s.boxes[0]
        assert 0 <= x0 < x1 <= 160 and 0 <= y0 < y1 <= 160
        for x, y in s.points:  # key points are mask pixels
            assert mask[int(round(y)), int(round(x))]
        assert s.meta["task"] in ("explicit", "implicit")


def test_all_six_categories_both_tasks_and_several_findings_per_image(dataset):
    _, _, samples = dataset
    assert {s.category for s in samples} == set(CATEGORIES)
    assert {s.meta["task"] for s in samples} == {"explicit", "implicit"}
    per_image = defaultdict(list)
    for s in samples:
        per_image[s.image].append(s)
    assert all(2 <= len(v) <= 4 for v in per_image.values())
    # some images hold two findings of the same category: only the query can decide
    assert any(len({x.category for x in v}) < len(v) for v in per_image.values())


def test_queries_pick_out_one_target_per_image(dataset):
    _, _, samples = dataset
    per_image = defaultdict(list)
    for s in samples:
        per_image[s.image].append(s)
    for group in per_image.values():
        assert len({s.query for s in group}) == len(group)
        for s in group:
            same = [o for o in group if o is not s and o.category == s.category]
            if s.meta["task"] == "explicit" and s.category != "cardiomegaly":
                assert s.meta["laterality"] in s.query
            if s.category in ("nodule", "mass", "consolidation") and s.meta["task"] == "explicit":
                assert f"{s.meta['zone']} zone" in s.query
            if same:  # ambiguous category: the query must name the side (and zone when sides agree)
                assert s.meta["laterality"] in s.query
                if any(o.meta["laterality"] == s.meta["laterality"] for o in same):
                    assert s.meta["zone"] in s.query


def test_laterality_follows_the_radiological_convention(dataset):
    _, _, samples = dataset
    for s in samples:
        cx = (s.boxes[0][0] + s.boxes[0][2]) / 2
        if s.meta["laterality"] == "right":  # patient right = image left
            assert cx < s.width / 2
        elif s.meta["laterality"] == "left":
            assert cx > s.width / 2
        else:
            assert s.category == "cardiomegaly"


def test_zones_order_from_top_to_bottom(dataset):
    _, _, samples = dataset
    ys = defaultdict(list)
    for s in samples:
        if s.category in ("nodule", "mass", "consolidation"):
            ys[s.meta["zone"]].append((s.boxes[0][1] + s.boxes[0][3]) / 2)
    assert np.mean(ys["upper"]) < np.mean(ys["mid"]) < np.mean(ys["lower"])
    assert max(ys["upper"]) < min(ys["lower"])


def test_categories_look_different(dataset):
    """Mean grey inside the target: nodules brightest, free air darkest."""
    _, _, samples = dataset
    grey = defaultdict(list)
    for s in samples:
        img = np.asarray(Image.open(s.image), dtype=float)
        grey[s.category].append(img[load_mask(s.mask)].mean())
    m = {k: np.mean(v) for k, v in grey.items()}
    assert m["nodule"] > m["mass"] > m["consolidation"] > m["pneumothorax"]
    assert m["pneumothorax"] < 40
    area = defaultdict(list)
    for s in samples:
        area[s.category].append(load_mask(s.mask).sum())
    assert np.median(area["nodule"]) * 3 < np.median(area["mass"])


def test_render_is_a_pure_function_of_seed_and_index():
    a, b = render_phantom(5, 3, size=96), render_phantom(5, 3, size=96)
    assert np.array_equal(a.image, b.image)
    assert [f.category for f in a.findings] == [f.category for f in b.findings]
    assert not np.array_equal(a.image, render_phantom(5, 4, size=96).image)


def test_principal_axis_of_a_tilted_bar():
    m = np.zeros((20, 20), bool)
    for i in range(3, 17):
        m[i, i] = True  # diagonal bar from (3, 3) to (16, 16)
    assert principal_axis_points(m) == [[3.0, 3.0], [16.0, 16.0]]
    with pytest.raises(ValueError):
        principal_axis_points(np.zeros((4, 4), bool))


def test_bad_arguments_raise_clear_errors(tmp_path):
    with pytest.raises(MedgroundError, match="--n"):
        generate_phantom_dataset(tmp_path, n=0)
    with pytest.raises(MedgroundError, match="fractions"):
        generate_phantom_dataset(tmp_path, n=3, val_frac=0.6, test_frac=0.5)
    with pytest.raises(MedgroundError, match="at least 64"):
        render_phantom(0, 0, size=32)


def test_cli_writes_dataset_and_reports_errors(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["data", "phantom", "--n", "3", "--seed", "2", "--size", "96", "--out", str(tmp_path / "d")])
    assert exc.value.code in (0, None)
    assert "wrote 3 images" in capsys.readouterr().out
    info = json.loads((tmp_path / "d" / "phantom.json").read_text())
    assert info["seed"] == 2 and info["size"] == 96
    with pytest.raises(SystemExit) as exc:
        main(["data", "phantom", "--n", "-1", "--out", str(tmp_path / "e")])
    assert exc.value.code == 2
    assert "--n must be at least 1" in capsys.readouterr().err
