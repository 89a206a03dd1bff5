"""The real test set: built offline from package data, deterministic, consistent targets."""

from __future__ import annotations

import hashlib
import socket

import numpy as np
import pytest

from medground.data.masks import load_mask
from medground.data.realset import build_realset
from medground.data.schema import read_jsonl


def _digest(folder):
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            h.update(p.relative_to(folder).as_posix().encode())
            h.update(p.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def realset(tmp_path_factory):
    out = tmp_path_factory.mktemp("realset")

    def no_network(*args, **kwargs):
        raise AssertionError("building the real set tried to open a network connection")

    mp = pytest.MonkeyPatch()
    mp.setattr(socket.socket, "connect", no_network)
    try:
        path = build_realset(out)
    finally:
        mp.undo()
    return out, path


def test_realset_is_offline_small_and_real(realset):
    out, path = realset
    samples = read_jsonl(path)
    assert 10 <= len(samples) <= 30
    assert {s.modality for s in samples} == {"mri", "ct", "fundus"}
    assert len({s.image for s in samples}) >= 5  # several real images, several targets each
    assert len({s.id for s in samples}) == len(samples)


def test_targets_are_consistent(realset):
    _, path = realset
    from PIL import Image

    for s in read_jsonl(path):
        with Image.open(s.image) as im:
            assert im.size == (s.width, s.height), s.id
        m = load_mask(s.mask)
        assert m.shape == (s.height, s.width) and m.sum() >= 20, s.id
        ys, xs = np.nonzero(m)
        assert s.boxes == [[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]], s.id
        for x, y in s.points:
            assert m[int(round(y)), int(round(x))], s.id  # key points lie on the target
        assert np.hypot(*np.subtract(*s.points)) > 0.5 * max(np.ptp(xs), np.ptp(ys)), s.id  # and span it


def test_rebuild_is_byte_identical(realset, tmp_path):
    out, _ = realset
    build_realset(tmp_path / "again")
    assert _digest(out) == _digest(tmp_path / "again")
