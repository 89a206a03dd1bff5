"""Medical image IO on the real DICOM / NIfTI files pydicom, nibabel and nilearn ship,
plus synthetic files that pin down windowing, bit depths and orientation."""

from __future__ import annotations

import os
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from nibabel.testing import data_path as NIB_DATA
from PIL import Image
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

from medground.data.io import (
    WINDOW_PRESETS,
    apply_window,
    image_size,
    load_image,
    read_image,
    read_volume,
    resolve_window,
)
from medground.errors import MedgroundError

CT = get_testdata_file("CT_small.dcm")
MR = get_testdata_file("MR_small.dcm")
RTDOSE = get_testdata_file("rtdose.dcm")
RGB_DCM = get_testdata_file("examples_rgb_color.dcm")
YBR_DCM = get_testdata_file("examples_ybr_color.dcm")
PALETTE = get_testdata_file("examples_palette.dcm")
ANAT_LAS = os.path.join(NIB_DATA, "anatomical.nii")
ANAT_RAS = os.path.join(NIB_DATA, "reoriented_anat_moved.nii")
EX4D = os.path.join(NIB_DATA, "example4d.nii.gz")


def _gray(img):
    return np.asarray(img.convert("L")).astype(int)


def _mni_path():
    import nilearn

    p = Path(nilearn.__file__).parent / "datasets" / "data" / "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"
    if not p.exists():
        pytest.skip("nilearn's MNI152 template not shipped in this install")
    return str(p)


# ----------------------------------------------------------------------------- DICOM


def test_ct_rescale_then_window_in_hounsfield_units():
    ds = pydicom.dcmread(CT)
    hu = ds.pixel_array.astype(float) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    d = read_image(CT, window=(40, 400), as_rgb=False)
    assert d.meta["rescale"] == [1.0, -1024.0]
    expected = np.round(apply_window(hu, 40, 400) * 255).astype(int)
    np.testing.assert_array_equal(_gray(d.image), expected)
    # values below -160 HU are black, above 240 HU white: proves slope/intercept were applied
    g = _gray(d.image)
    assert (g[hu <= -161] == 0).all() and (g[hu > 240] == 255).all()
    assert (hu <= -161).any() and (hu > 240).any()


def test_ct_no_file_window_falls_back_to_minmax_and_preset_names_work():
    d = read_image(CT, as_rgb=False)
    g = _gray(d.image)
    assert g.min() == 0 and g.max() == 255
    assert d.meta["window_source"] == "minmax"
    assert (
        _gray(load_image(CT, window="lung")).tolist() == _gray(load_image(CT, window=WINDOW_PRESETS["lung"])).tolist()
    )
    assert resolve_window("40,400") == (40.0, 400.0) and resolve_window("-600, 1500") == (-600.0, 1500.0)
    with pytest.raises(MedgroundError, match="unknown window"):
        load_image(CT, window="nonsense")


def test_mr_uses_window_from_the_file():
    ds = pydicom.dcmread(MR)
    d = read_image(MR, as_rgb=False)
    assert d.meta["window_source"] == "file" and d.meta["window"] == [600.0, 1600.0]
    expected = np.round(apply_window(ds.pixel_array.astype(float), 600, 1600) * 255).astype(int)
    np.testing.assert_array_equal(_gray(d.image), expected)
    # a window given by the caller overrides the file's
    d2 = read_image(MR, window=(300, 200))
    assert d2.meta["window"] == [300.0, 200.0] and _gray(d2.image).tolist() != _gray(d.image).tolist()


def test_multivalued_window_uses_first_value(tmp_path):
    ds = pydicom.dcmread(CT)
    ds.WindowCenter = [40, -600]
    ds.WindowWidth = [400, 1500]
    p = tmp_path / "multi.dcm"
    ds.save_as(p)
    d = read_image(p)
    assert d.meta["window"] == [40.0, 400.0] and d.meta["window_source"] == "file"
    assert _gray(d.image).tolist() == _gray(load_image(CT, window=(40, 400))).tolist()


def test_voi_lut_sequence_is_applied_when_there_is_no_window(tmp_path):
    from pydicom.sequence import Sequence

    ds = pydicom.dcmread(MR)
    del ds.WindowCenter, ds.WindowWidth
    item = Dataset()
    item.LUTDescriptor = [256, 600, 8]  # 256 entries, first input value 600, 8-bit output
    item.add_new(0x00283006, "US", list(range(255, -1, -1)))  # a decreasing LUT: inverts
    ds.VOILUTSequence = Sequence([item])
    p = tmp_path / "voilut.dcm"
    ds.save_as(p)
    d = read_image(p, as_rgb=False)
    assert d.meta["window_source"] == "voi_lut"
    raw = ds.pixel_array.astype(int)
    expected = 255 - np.clip(raw - 600, 0, 255)
    np.testing.assert_array_equal(_gray(d.image), expected)


def test_monochrome1_is_inverted(tmp_path):
    ds = pydicom.dcmread(CT)
    ds.PhotometricInterpretation = "MONOCHROME1"
    p = tmp_path / "mono1.dcm"
    ds.save_as(p)
    mono2 = _gray(load_image(CT, window=(40, 400)))
    mono1 = _gray(load_image(p, window=(40, 400)))
    np.testing.assert_array_equal(mono1, 255 - mono2)
    assert read_image(p).meta["inverted"] is True


def _synthetic_dicom(path, arr, bits_stored, photometric="MONOCHROME2"):
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.Modality = "DX"
    ds.set_pixel_data(arr, photometric, bits_stored)
    ds.save_as(path, enforce_file_format=True)
    return path


@pytest.mark.parametrize("bits,dtype", [(8, np.uint8), (12, np.uint16), (16, np.uint16)])
def test_8_12_16_bit_dicom_use_the_full_display_range(tmp_path, bits, dtype):
    top = 2**bits - 1
    ramp = np.linspace(top // 10, top - top // 10, 64 * 32).reshape(32, 64).astype(dtype)
    p = _synthetic_dicom(tmp_path / f"b{bits}.dcm", ramp, bits)
    assert image_size(p) == (64, 32)
    g = _gray(load_image(p))
    assert g.shape == (32, 64)
    assert g.min() == 0 and g.max() == 255  # min–max: not truncated, not dark
    assert (np.diff(g.ravel()) >= 0).all()  # monotone ramp stays monotone


def test_multiframe_dicom_picks_a_frame():
    frames = pydicom.dcmread(RTDOSE).pixel_array
    a = read_image(RTDOSE, frame=0, as_rgb=False)
    b = read_image(RTDOSE, frame=7, as_rgb=False)
    assert a.meta["n_frames"] == 15 and b.meta["frame"] == 7
    assert (a.width, a.height) == (frames.shape[2], frames.shape[1])
    exp = np.round((frames[7] - frames[7].min()) / (frames[7].max() - frames[7].min()) * 255).astype(int)
    np.testing.assert_array_equal(_gray(b.image), exp)
    with pytest.raises(MedgroundError, match="frame 15 out of range"):
        read_image(RTDOSE, frame=15)


def test_colour_dicom_rgb_ybr_palette():
    ds = pydicom.dcmread(RGB_DCM)
    img = load_image(RGB_DCM)
    assert img.mode == "RGB" and img.size == (ds.Columns, ds.Rows)
    np.testing.assert_array_equal(np.asarray(img), ds.pixel_array)
    ybr = read_image(YBR_DCM, frame=2)
    assert ybr.image.mode == "RGB" and ybr.meta["n_frames"] == 30
    pal = load_image(PALETTE)
    assert pal.mode == "RGB" and pal.size == image_size(PALETTE)
    assert np.asarray(pal).std(axis=2).max() > 0  # palette produced colour


def test_image_size_reads_header_only_and_matches_load():
    for p in (CT, MR, RTDOSE, RGB_DCM):
        assert image_size(p) == load_image(p).size


def test_bad_dicom_and_missing_files_name_the_file(tmp_path):
    bad = tmp_path / "bad.dcm"
    bad.write_bytes(b"not a dicom at all" * 10)
    with pytest.raises(MedgroundError, match="bad.dcm"):
        load_image(bad)
    with pytest.raises(MedgroundError, match="nope.png: image file not found"):
        load_image(tmp_path / "nope.png")
    with pytest.raises(MedgroundError, match="nope.dcm"):
        image_size(tmp_path / "nope.dcm")
    ds = pydicom.dcmread(CT, stop_before_pixels=True)
    nopix = tmp_path / "nopix.dcm"
    ds.save_as(nopix)
    with pytest.raises(MedgroundError, match="no pixel data"):
        load_image(nopix)


# ----------------------------------------------------------------------------- NIfTI


def _asymmetric_volume():
    """RAS+ data (X=6 left->right, Y=5 posterior->anterior, Z=4 inferior->superior) with
    markers: patient right (x=5), anterior (y=4), superior (z=3)."""
    v = np.zeros((6, 5, 4), dtype=np.int16)
    v[5, 2, :] = 100  # right side column
    v[2, 4, :] = 200  # anterior
    v[:, :, 3] += 10  # superior slab (visible in coronal / sagittal)
    return v


def test_nifti_radiological_orientation_synthetic(tmp_path):
    v = _asymmetric_volume()
    ras = tmp_path / "ras.nii.gz"
    nib.save(nib.Nifti1Image(v, np.diag([1.0, 1.0, 1.0, 1.0])), ras)
    # the same anatomy stored LPS (x and y flipped) must display identically
    las = tmp_path / "lps.nii.gz"
    aff = np.diag([-1.0, -1.0, 1.0, 1.0])
    aff[:3, 3] = [5, 4, 0]
    nib.save(nib.Nifti1Image(v[::-1, ::-1, :].copy(), aff), las)
    for p in (ras, las):
        ax = read_image(p, axis=2, slice_index=1, window="minmax", as_rgb=False)
        g = _gray(ax.image)
        assert (ax.width, ax.height) == (6, 5) == image_size(p, axis=2)
        # patient right on image LEFT, anterior at the TOP
        assert g[2, 0] > 0 and g[:, 5].max() == 0  # right marker in column 0
        assert g[0, 3] == 255  # anterior marker in row 0 (x=2 -> column 6-1-2=3)
        cor = _gray(load_image(p, axis=1, slice_index=2, window="minmax"))
        assert cor.shape == (4, 6)
        assert cor[0].min() > 0 and cor[-1].mean() < cor[0].mean()  # superior slab on top
        assert cor[:, 0].max() == 255  # right marker on image left
        sag = _gray(load_image(p, axis=0, slice_index=2, window="minmax"))
        assert sag.shape == (4, 5)
        assert image_size(p, axis=0) == (5, 4) and image_size(p, axis=1) == (6, 4)
        assert sag[:, 0].max() == 255  # anterior on image left
        assert sag[0].mean() > sag[-1].mean()  # superior on top
    assert read_image(las).meta["original_orientation"] == "LPS"


@pytest.mark.parametrize("path", [ANAT_LAS, ANAT_RAS, "mni"])
def test_real_nifti_display_follows_world_coordinates(tmp_path, path):
    """Replace the real file's voxels by their world x / y (from its own affine): the
    displayed axial slice must then darken to the right (patient left) and downward
    (posterior), whatever the storage orientation."""
    if path == "mni":
        path = _mni_path()
    img = nib.load(path)
    shape = img.shape[:3]
    ijk = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), -1).reshape(-1, 3)
    world = nib.affines.apply_affine(img.affine, ijk).reshape(*shape, 3)
    for comp, check in ((0, "cols"), (1, "rows")):
        p = tmp_path / f"world{comp}.nii.gz"
        nib.save(nib.Nifti1Image(world[..., comp].astype(np.float32), img.affine), p)
        g = np.asarray(read_image(p, window="minmax", as_rgb=False).image).astype(int)
        if check == "cols":  # x_world (+ = patient right) decreases left -> right
            assert (np.diff(g.mean(axis=0)) <= 0).all() and g[:, 0].mean() > g[:, -1].mean()
        else:  # y_world (+ = anterior) decreases top -> bottom
            assert (np.diff(g.mean(axis=1)) <= 0).all() and g[0].mean() > g[-1].mean()
    # and the real data itself loads with the right size / metadata
    d = read_image(path)
    vol = read_volume(path)
    assert (d.width, d.height) == (vol.data.shape[0], vol.data.shape[1]) == image_size(path)
    assert d.meta["orientation"] == "radiological" and d.meta["slice_index"] == vol.data.shape[2] // 2
    assert _gray(d.image).std() > 5  # real anatomy, not a blank slice


def test_nifti_window_slice_and_4d(tmp_path):
    d = read_image(EX4D, frame=1, slice_index=3, axis=2)
    assert d.meta["slice_index"] == 3 and d.size == image_size(EX4D)
    with pytest.raises(MedgroundError, match="frame 2 out of range"):
        read_image(EX4D, frame=2)
    with pytest.raises(MedgroundError, match="slice 99 out of range"):
        read_image(ANAT_LAS, slice_index=99)
    with pytest.raises(MedgroundError, match="axis must be"):
        read_image(ANAT_LAS, axis=3)
    # a CT-like volume in HU with a window preset
    hu = np.full((8, 8, 3), -1000, dtype=np.int16)
    hu[2:6, 2:6, :] = 40
    p = tmp_path / "ct.nii.gz"
    nib.save(nib.Nifti1Image(hu, np.eye(4)), p)
    g = _gray(load_image(p, window="abdomen"))
    assert g.min() == 0 and set(np.unique(g)) == {0, int(round(apply_window(40, 40, 400) * 255))}


def test_bad_nifti_names_the_file(tmp_path):
    p = tmp_path / "broken.nii.gz"
    p.write_bytes(b"\x1f\x8b garbage")
    with pytest.raises(MedgroundError, match="broken.nii.gz"):
        load_image(p)


# ----------------------------------------------------------------------------- PNG / JPEG / TIFF


def test_16bit_png_and_tiff_scale_by_range(tmp_path):
    arr = np.zeros((10, 20), dtype=np.uint16)
    arr[:, 10:] = 4000  # a 12-bit value in a 16-bit file: low byte 0xA0, high byte 0x0F
    arr[0, 0] = 1000
    for ext in ("png", "tif"):
        p = tmp_path / f"x16.{ext}"
        Image.fromarray(arr).save(p)
        img = load_image(p, as_rgb=False)
        g = np.asarray(img).astype(int)
        assert img.mode == "L" and img.size == (20, 10) == image_size(p)
        assert g[5, 15] == 255 and g[5, 5] == 0
        assert g[0, 0] == round(1000 / 4000 * 255)
        assert load_image(p).mode == "RGB"
    # explicit window on a 16-bit image
    p = tmp_path / "x16.png"
    g = np.asarray(load_image(p, window=(1000, 2), as_rgb=False)).astype(int)
    assert g[5, 15] == 255 and g[5, 5] == 0


def test_float_tiff_and_8bit_images(tmp_path):
    f = np.linspace(-1, 1, 50, dtype=np.float32).reshape(5, 10)
    p = tmp_path / "f.tif"
    Image.fromarray(f).save(p)
    g = np.asarray(load_image(p, as_rgb=False)).astype(int)
    assert g.min() == 0 and g.max() == 255
    rgb = (np.arange(4 * 6 * 3) % 256).astype(np.uint8).reshape(4, 6, 3)
    for name in ("c.png", "c.tif"):
        Image.fromarray(rgb).save(tmp_path / name)
        np.testing.assert_array_equal(np.asarray(load_image(tmp_path / name)), rgb)
    gray = np.array([[3, 7], [100, 250]], dtype=np.uint8)
    Image.fromarray(gray).save(tmp_path / "g.png")
    img = load_image(tmp_path / "g.png")
    assert img.mode == "RGB"
    np.testing.assert_array_equal(np.asarray(img)[..., 0], gray)  # 8-bit left untouched
    Image.fromarray(gray).save(tmp_path / "g.jpg", quality=100)
    assert image_size(tmp_path / "g.jpg") == (2, 2)
    (tmp_path / "junk.png").write_bytes(b"junk")
    with pytest.raises(MedgroundError, match="junk.png: not a readable image"):
        load_image(tmp_path / "junk.png")
