"""What the web app refuses before decoding (medground.serve.limits, .paths): oversized
uploads, decompression bombs, unreadable files, empty / overlong queries, and paths that
leave the folders the app was given."""

from __future__ import annotations

import os
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from medground.data.roots import confine, is_inside
from medground.errors import MedgroundError
from medground.serve.ground import render_view
from medground.serve.limits import Limits, check_query, check_upload, parse_size


def bomb_png(path, side: int = 30000) -> str:
    """A valid 1-bit PNG of ``side`` x ``side`` pixels, all black, written row by row
    (small on disk; decoding it would need side * side bytes)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    row = b"\0" * (1 + (side + 7) // 8)
    z = zlib.compressobj(9)
    body = b"".join(z.compress(row) for _ in range(side)) + z.flush()
    with open(path, "wb") as fh:
        fh.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0))
                 + chunk(b"IDAT", body) + chunk(b"IEND", b""))
    return str(path)


@pytest.fixture
def png(tmp_path):
    p = tmp_path / "ok.png"
    Image.fromarray((np.arange(64 * 48) % 251).astype(np.uint8).reshape(48, 64)).save(p)
    return p


def test_queries_are_stripped_and_bounded():
    assert check_query("  left pleural effusion \n") == "left pleural effusion"
    for empty in ("", "   ", None):
        with pytest.raises(MedgroundError, match="type a phrase"):
            check_query(empty)
    assert check_query("x" * 1000) == "x" * 1000  # the default limit is inclusive
    with pytest.raises(MedgroundError, match="10000 characters; the limit is 1000"):
        check_query("x" * 10_000)


def test_an_upload_above_the_size_limit_is_refused_before_decoding(tmp_path):
    big = tmp_path / "big.png"
    big.write_bytes(b"\x89PNG" + os.urandom(4096))  # not even a valid PNG: the size check comes first
    with pytest.raises(MedgroundError, match=r"big.png: the file is 0.0 MB; uploads are limited to"):
        check_upload(big, Limits(max_upload_bytes=1024))
    with pytest.raises(MedgroundError, match="upload an image first"):
        check_upload(None)
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(MedgroundError, match="empty"):
        check_upload(empty)


def test_a_decompression_bomb_is_refused_from_its_header(tmp_path):
    path = bomb_png(tmp_path / "bomb.png")
    assert os.path.getsize(path) < 200_000  # tiny on disk, 900 megapixels once decoded
    with pytest.raises(MedgroundError, match=r"bomb.png: the image is (30000 x 30000 = )?900 megapixels; the limit is 64 megapixels"):
        render_view(path)
    with pytest.raises(MedgroundError, match="the limit is 0.0001 megapixels"):
        check_upload(path, Limits(max_image_pixels=100))


def test_unreadable_uploads_name_the_file(tmp_path, png):
    text = tmp_path / "notes.png"
    text.write_text("this is a text file renamed .png\n" * 10)
    with pytest.raises(MedgroundError, match="notes.png: not a readable image"):
        render_view(text)
    cut = tmp_path / "cut.png"
    cut.write_bytes(png.read_bytes()[: png.stat().st_size // 2])
    with pytest.raises(MedgroundError, match="cut.png"):
        render_view(cut)
    view = render_view(png)
    assert view.size == (64, 48) and view.image.mode == "RGB"


def test_parse_size():
    assert parse_size("1MB") == 1024 * 1024 and parse_size("3 kb") == 3072 and parse_size(12) == 12
    with pytest.raises(MedgroundError, match="not a size"):
        parse_size("lots")


# ------------------------------------------------------------------ containment


def test_paths_stay_under_the_given_folders(tmp_path):
    root = tmp_path / "data"
    (root / "images").mkdir(parents=True)
    inside = root / "images" / "a.png"
    inside.write_bytes(b"x")
    (tmp_path / "secret.txt").write_text("no")
    assert confine(inside, [root]) == str(inside.resolve())
    assert is_inside(root / "images" / ".." / "images" / "a.png", [root, tmp_path / "other"])
    with pytest.raises(MedgroundError, match=r"d.jsonl:3 \[id=s1\]: image .*secret.txt lies outside the dataset root"):
        confine(root / ".." / "secret.txt", [root], what="image", where="d.jsonl:3 [id=s1]")
    with pytest.raises(MedgroundError, match="outside"):
        confine("/etc/passwd", [root, tmp_path / "other"])
    with pytest.raises(MedgroundError, match="no folder is open"):
        confine(inside, [])


def test_symbolic_links_are_followed_before_the_check(tmp_path):
    root = tmp_path / "data"
    root.mkdir()
    (tmp_path / "outside.png").write_bytes(b"x")
    (root / "link.png").symlink_to(tmp_path / "outside.png")
    with pytest.raises(MedgroundError, match="outside the dataset root"):
        confine(root / "link.png", [root])
    alias = tmp_path / "alias"
    alias.symlink_to(root, target_is_directory=True)  # a root given through a link still contains its files
    (root / "real.png").write_bytes(b"x")
    assert confine(alias / "real.png", [alias]) == str((root / "real.png").resolve())
