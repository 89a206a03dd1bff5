"""The table of image readers (``medground.data.io.READERS``): a file goes to the reader
its suffix names, else to the one that recognises its first bytes; a file nobody
recognises is a clear error naming it; a new format is one reader and one registration."""

from __future__ import annotations

import shutil

import nibabel as nib
import numpy as np
import pytest
from PIL import Image
from pydicom.data import get_testdata_file

from medground.data import io
from medground.data.io import (
    READERS,
    ImageData,
    ImageReader,
    detect_format,
    image_size,
    load_image,
    read_image,
    reader_for,
)
from medground.data.io.base import to_pil
from medground.errors import MedgroundError
from medground.registry import Option, Registry

CT = get_testdata_file("CT_small.dcm")


def test_the_table_lists_the_three_formats_each_with_read_size_and_extensions():
    assert READERS.names() == ["dicom", "nifti", "raster"]
    assert READERS.kind == "image reader"
    for name in READERS.names():
        reader = READERS.get(name)
        assert isinstance(reader, ImageReader) and reader.name == name
        assert callable(reader.read) and callable(reader.size) and reader.extensions
        assert READERS.entry(name).options == reader.options and "window" in reader.options
    claimed = [ext for name in READERS.names() for ext in READERS.get(name).extensions]
    assert len(claimed) == len(set(claimed)), "a suffix claimed by two readers"
    assert [r.name for r in io.readers()][-1] == "raster"  # Pillow's permissive check is asked last


@pytest.mark.parametrize("name, fmt", [
    ("a/scan.dcm", "dicom"), ("SCAN.DCM", "dicom"), ("x.IMA", "dicom"),
    ("brain.nii", "nifti"), ("brain.nii.gz", "nifti"), ("Brain.NII.GZ", "nifti"), ("t1.mgz", "nifti"),
    ("cxr.png", "raster"), ("cxr.JPEG", "raster"), ("page.tiff", "raster"),
])
def test_dispatch_by_suffix_needs_no_file(name, fmt):
    assert detect_format(name) == fmt  # none of these files exists: the name decides


def test_dispatch_by_magic_bytes_when_the_name_says_nothing(tmp_path):
    nifti = tmp_path / "vol.nii"
    vol = np.arange(6 * 5 * 4, dtype=np.int16).reshape(6, 5, 4)
    nib.save(nib.Nifti1Image(vol, np.eye(4)), nifti)
    png = tmp_path / "pic.png"
    Image.fromarray(np.arange(12, dtype=np.uint8).reshape(3, 4) * 20).save(png)
    for original, fmt in ((CT, "dicom"), (nifti, "nifti"), (png, "raster")):
        for stem in ("nosuffix", "data.bin"):
            copy = tmp_path / f"{fmt}_{stem}"
            shutil.copy(original, copy)
            assert reader_for(copy).name == fmt and READERS.get(fmt).can_read(copy)
            # the same pixels, size and metadata as the correctly named file
            a, b = read_image(original, window="minmax"), read_image(copy, window="minmax")
            assert np.array_equal(np.asarray(a.image), np.asarray(b.image)) and a.size == b.size
            assert {k: v for k, v in a.meta.items() if k != "path"} == {k: v for k, v in b.meta.items() if k != "path"}
            assert image_size(copy) == image_size(original)
    assert not READERS.get("dicom").can_read(png) and not READERS.get("nifti").can_read(png)


def test_the_suffix_wins_over_the_content(tmp_path):
    fake = tmp_path / "photo.dcm"  # a PNG named .dcm goes to the DICOM reader, which names the file
    Image.new("L", (4, 4)).save(fake, format="PNG")
    assert detect_format(fake) == "dicom"
    with pytest.raises(MedgroundError, match=r"photo\.dcm: .*DICOM"):
        load_image(fake)


@pytest.mark.parametrize("name, content", [("notes.xyz", b"junk" * 100), ("README", b"plain text\n"),
                                           ("empty", b"")])
def test_an_unknown_format_names_the_file(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    for call in (detect_format, load_image, read_image, image_size):
        with pytest.raises(MedgroundError) as err:
            call(path)
        message = str(err.value)
        assert message.startswith(f"{path}: unknown image format")
        assert "dicom, nifti, raster" in message and ".dcm" in message and ".nii.gz" in message


def test_a_missing_file_is_not_found_not_unknown(tmp_path):
    with pytest.raises(MedgroundError, match="nothing: image file not found"):
        load_image(tmp_path / "nothing")
    with pytest.raises(MedgroundError, match="cannot read image"):
        detect_format(tmp_path / "nothing")  # no suffix: the content must be read


def test_a_new_format_is_one_reader_and_one_registration(tmp_path, monkeypatch):
    """Register a reader for a made-up format: the table dispatches to it by suffix and by
    magic bytes, and it receives only the options it declares."""
    calls = []

    def read(path, window=None, as_rgb=True):
        calls.append({"window": window, "as_rgb": as_rgb})
        pixels = np.frombuffer(path.read_bytes()[4:], dtype=np.uint8).reshape(2, -1)
        return ImageData(to_pil(pixels, as_rgb), pixels.shape[1], pixels.shape[0], {"format": "tiny"})

    def size(path):
        return (len(path.read_bytes()) - 4) // 2, 2

    tiny = ImageReader("tiny", (".tiny",), read=read, size=size, sniff=lambda path, head: head[:4] == b"TINY",
                       options={"window": Option("unused"), "as_rgb": Option("gray or RGB")})
    table = Registry("image reader")
    for name in READERS.names():
        table.register(name, READERS.get(name))
    table.register("tiny", tiny)
    monkeypatch.setattr(io, "READERS", table)

    named, unnamed = tmp_path / "a.tiny", tmp_path / "a.dat"
    for p in (named, unnamed):
        p.write_bytes(b"TINY" + bytes([0, 50, 100, 150, 200, 250]))
    for p in (named, unnamed):
        assert detect_format(p) == "tiny"
        img = load_image(p, as_rgb=False, axis=1, slice_index=3, frame=2)  # axis / slice / frame not passed on
        assert img.mode == "L" and np.asarray(img).tolist() == [[0, 50, 100], [150, 200, 250]]
        assert image_size(p, axis=1) == (3, 2)
    assert calls == [{"window": None, "as_rgb": False}] * 2
    assert read_image(named).meta == {"format": "tiny", "path": str(named)}
    assert detect_format(CT) == "dicom"  # the built-in readers still answer


def test_readers_get_only_their_options(tmp_path):
    """2-D formats ignore the volume options (as before the table); a volume uses them."""
    png = tmp_path / "g.png"
    Image.fromarray(np.arange(12, dtype=np.uint8).reshape(3, 4)).save(png)
    for path in (png, CT):
        base = np.asarray(load_image(path))
        assert np.array_equal(np.asarray(load_image(path, axis=0, slice_index=99)), base)
        assert image_size(path, axis=0) == image_size(path)
    assert set(READERS.get("raster").options) == set(READERS.get("dicom").options) == {"window", "frame", "as_rgb"}
    assert set(READERS.get("nifti").options) == {"window", "frame", "as_rgb", "axis", "slice_index"}
