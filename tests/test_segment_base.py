"""Segmenter interface: prompt sanitising, per-image state cache, registry, image input."""

from __future__ import annotations

import numpy as np
import pytest

from medground.errors import MedgroundError
from medground.models.segmenters import (
    SEGMENTER_NAMES,
    StateCache,
    get_segmenter,
    image_array,
    image_key,
    prepare_prompts,
)
from medground.models.segmenters.base import ImageState
from medground.models.segmenters.watershed import WatershedSegmenter


class CountingWatershed(WatershedSegmenter):
    """Watershed that counts how often the image state is computed."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.embeds = 0

    def _embed(self, rgb):
        self.embeds += 1
        return super()._embed(rgb)


def blob(h=80, w=100, box=(30, 20, 70, 60), value=200):
    img = np.full((h, w), 30, np.uint8)
    x1, y1, x2, y2 = box
    img[y1:y2, x1:x2] = value
    return img


def test_registry_names_and_errors():
    assert set(SEGMENTER_NAMES) == {"watershed", "litemedsam", "sam", "sam2"}
    assert get_segmenter("Watershed").name == "watershed"
    with pytest.raises(MedgroundError, match="unknown segmenter 'nope'"):
        get_segmenter("nope")
    with pytest.raises(MedgroundError, match="no option.*not_an_option"):
        get_segmenter("watershed", not_an_option=1)
    seg = WatershedSegmenter()
    assert get_segmenter(seg) is seg


@pytest.mark.parametrize("name", SEGMENTER_NAMES)
def test_registry_documents_exactly_the_constructor_options(name):
    import inspect

    from medground.models.segmenters import SEGMENTERS

    entry = SEGMENTERS.entry(name)
    cls = entry.load()
    params = {p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "kw", "kwargs")}
    assert set(entry.options) == params
    assert all(opt.help for opt in entry.options.values())


def test_device_is_ignored_only_where_a_segmenter_takes_none_and_none_means_default():
    seg = get_segmenter("watershed", device="cuda:3", checkpoint=None, cache_size=None, sigma=2.0)
    assert seg.name == "watershed" and seg.sigma == 2.0 and seg.cache.maxsize == 8
    with pytest.raises(MedgroundError, match="no option.*checkpoint"):
        get_segmenter("watershed", checkpoint="/some/folder")
    with pytest.raises(MedgroundError, match="unknown segmenter 'sma'; did you mean sam"):
        get_segmenter("sma")


def test_segmenter_pickles_as_its_constructor_arguments_with_an_empty_cache():
    import pickle

    seg = CountingWatershed(sigma=2.0, cache_size=3)
    img = blob()
    masks = seg.segment_image(img, [[25, 15, 75, 65]])
    assert len(seg.cache) == 1 and seg.embeds == 1
    copy = pickle.loads(pickle.dumps(seg))
    assert type(copy) is CountingWatershed and copy.sigma == 2.0 and copy.cache.maxsize == 3
    assert len(copy.cache) == 0 and copy.embeds == 0
    assert (copy.segment_image(img, [[25, 15, 75, 65]]) == masks).all()


def test_prepare_prompts_clips_and_drops_with_reasons():
    p = prepare_prompts(
        [[-10, -5, 50, 40], [20, 20, 20, 30], [np.nan, 0, 10, 10], [200, 200, 300, 300], [10, 10, 40, 40]],
        [[[5, 5], [45, 35]], None, [[5, 5], [6, 6]], None, [[20, 20], [np.nan, 3], [60, 60], [-4, 2]]],
        (100, 80),
    )
    assert p.boxes[0].tolist() == [0, 0, 50, 40]
    assert "clipped" in p.issues[0]
    assert not p.has_box[1] and "no area" in p.issues[1]  # zero width
    assert not p.has_box[2] and "NaN" in p.issues[2]
    assert p.points[2].tolist() == [[5, 5], [6, 6]] and p.usable[2]  # points survive a NaN box
    assert not p.usable[3] and "no usable box or point" in p.issues[3]  # entirely outside
    assert p.points[4].tolist() == [[20, 20]]  # NaN, outside-box and outside-image points dropped
    assert "NaN point" in p.issues[4] and "outside the box" in p.issues[4] and "outside the image" in p.issues[4]
    assert p.issues[0] is not None and prepare_prompts([[1, 1, 5, 5]], None, (10, 10)).issues == [None]


def test_prepare_prompts_accepts_one_prompt_and_points_only():
    p = prepare_prompts([2, 2, 8, 8], [[3, 3], [7, 7]], (10, 10))
    assert len(p) == 1 and p.points[0].shape == (2, 2)
    q = prepare_prompts(None, [[[3, 3], [7, 7]], [[1, 1], [2, 2]]], (10, 10))
    assert len(q) == 2 and not q.has_box.any() and q.has_points.all()
    with pytest.raises(MedgroundError, match="point sets"):
        prepare_prompts([[0, 0, 5, 5], [1, 1, 4, 4]], [[[1, 1]]] * 3, (10, 10))


def test_segment_shapes_and_bad_prompts_never_crash():
    seg = WatershedSegmenter()
    img = blob()
    one = seg.segment_image(img, [28, 18, 72, 62])
    assert one.shape == (80, 100) and one.dtype == bool
    many = seg.segment_image(img, [[28, 18, 72, 62], [-50, -50, 500, 500], [10, 10, 10, 30], [np.nan, 1, 2, 3]])
    assert many.shape == (4, 80, 100)
    assert many[0].any() and many[1].any()  # clipped box still segments
    assert not many[2].any() and not many[3].any()  # zero-area and NaN boxes: empty masks
    with pytest.raises(MedgroundError, match="needs boxes, points or both"):
        seg.segment(seg.embed(img))


def test_state_is_computed_once_per_image_content():
    seg = CountingWatershed()
    img = blob()
    a = seg.segment_image(img, [[28, 18, 72, 62]])
    b = seg.segment_image(img.copy(), [[28, 18, 72, 62], [0, 0, 50, 50]])  # new object, same pixels
    assert seg.embeds == 1 and seg.cache.hits == 1
    assert (a[0] == b[0]).all()
    seg.segment_image(blob(value=150), [[28, 18, 72, 62]])
    assert seg.embeds == 2


def test_state_cache_is_lru():
    cache = StateCache(maxsize=2)
    for k in "abc":
        cache.put(ImageState(key=k, width=1, height=1))
    assert "a" not in cache and "b" in cache and "c" in cache
    cache.get("b")
    cache.put(ImageState(key="d", width=1, height=1))
    assert "b" in cache and "c" not in cache


def test_image_array_normalises_inputs():
    grey16 = (np.arange(12, dtype=np.uint16).reshape(3, 4) * 1000)
    arr = image_array(grey16)
    assert arr.shape == (3, 4, 3) and arr.dtype == np.uint8 and arr.max() == 255 and arr.min() == 0
    rgba = np.zeros((3, 4, 4), np.uint8)
    assert image_array(rgba).shape == (3, 4, 3)
    assert image_key(image_array(grey16)) == image_key(image_array(grey16.copy()))
    with pytest.raises(MedgroundError, match="expected an image"):
        image_array(np.zeros((3, 4, 5)))
