"""The converter registry (medground.registry.Registry): names, options, `data convert list`,
typo suggestions, adding a converter in a module of its own, and what every converter shares
(placing annotated boxes on the image found)."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from PIL import Image

import medground.data.converters as converters_pkg
from medground.cli import main
from medground.data.converters import CONVERTERS, convert, get_spec
from medground.data.converters.base import parse_option_items, parse_options, register
from medground.data.schema import read_jsonl
from medground.errors import MedgroundError

V110 = "dicom_id,category_name,label_text,path,x,y,w,h,image_width,image_height,split"
P1 = "files/p10/p10000001/s50000001/aaa-111.dcm"


def test_every_module_of_the_package_is_one_registered_converter():
    """Adding a dataset is one file: the package imports each of its modules, and each one
    registers its converter (its function lives in that module)."""
    modules = {f"medground.data.converters.{m.name}" for m in pkgutil.iter_modules(converters_pkg.__path__)
               if m.name != "base" and not m.name.startswith("_")}
    registered = {CONVERTERS.entry(name).load().__module__ for name in CONVERTERS}
    assert registered == modules
    for name in CONVERTERS:
        entry = CONVERTERS.entry(name)
        assert entry.description and all(opt.help for opt in entry.options.values())


def test_unknown_converter_gets_a_close_match(tmp_path, capsys):
    with pytest.raises(MedgroundError, match=r"unknown converter 'msxcr'; did you mean mscxr\?"):
        get_spec("msxcr")
    with pytest.raises(MedgroundError, match=r"unknown converter 'chestxray'; did you mean chestxray8\?"):
        convert("chestxray", tmp_path, tmp_path / "o")
    with pytest.raises(SystemExit) as e:
        main(["data", "convert", "m3d_refseg", str(tmp_path), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "did you mean m3d-refseg?" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_options_are_checked_and_read_as_the_default_type():
    entry = get_spec("m3d-refseg")
    opts = parse_options(entry, parse_option_items(["slices=3", "min-area=5", "window=lung"]))
    assert opts == {"axis": 2, "slices": 3, "window": "lung", "query": "text", "min_area": 5}
    assert parse_options(get_spec("chestxray8"), {"group": "no", "val_frac": "0.25"})["group"] is False
    with pytest.raises(MedgroundError, match="option slices expects an integer, got 'many'"):
        parse_options(entry, {"slices": "many"})
    with pytest.raises(MedgroundError, match=r"converter 'm3d-refseg' has no option\(s\) slice; options: axis, "):
        parse_options(entry, {"slice": "2"})
    with pytest.raises(MedgroundError, match="--option expects KEY=VALUE, got 'slices'"):
        parse_option_items(["slices"])


def test_list_prints_every_converter_with_its_options(capsys):
    with pytest.raises(SystemExit) as e:
        main(["data", "convert", "list"])
    assert e.value.code in (0, None)
    lines = capsys.readouterr().out.splitlines()
    names = [ln.split()[0] for ln in lines if not ln.startswith(" ")]
    assert names == sorted(CONVERTERS)
    assert "umrg         U-MRG-14K parquet (MedReasoner): images, masks, bbox_2d / point_2d ground truth" in lines
    assert "    -o batch_size=64                rows read from the parquet at a time" in lines
    assert "    -o window=auto                  auto (by region), a preset (lung, abdomen, bone, brain...) or " \
           "'center,width'" in lines
    n_options = sum(len(CONVERTERS.entry(n).options) for n in CONVERTERS)
    assert sum(ln.startswith("    -o ") for ln in lines) == n_options


def test_a_name_taken_by_another_converter_is_refused():
    def convert_other(ctx):
        yield from ()

    with pytest.raises(ValueError, match="converter 'mscxr' is already registered"):
        register("mscxr", "another MS-CXR reader")(convert_other)
    assert CONVERTERS.entry("mscxr").load().__module__ == "medground.data.converters.mscxr"


NEW_CONVERTER = '''
"""A user's converter, in a module of its own."""
import json

from medground.data.converters.base import Context, Option, register
from medground.data.schema import Sample


@register("toyjson", "rows of a JSON list: image, text, box", {"scale": Option("multiply boxes by this", default=1.0)})
def convert(ctx: Context):
    for n, rec in enumerate(json.loads(ctx.input.read_text()), 1):
        ctx.report.rows_read += 1
        sample = Sample(id=f"toy-{n}", image=str(ctx.resolve_image(rec["image"])), query=rec["text"],
                        boxes=[[v * ctx.option("scale") for v in rec["box"]]], meta={"row": n})
        if ctx.fit_to_image(sample, None):
            yield sample
'''


def test_a_converter_in_a_new_module_registers_itself(tmp_path):
    """A fresh interpreter: importing one new module is all it takes for the converter to be
    listed, to run with its options, and to be suggested on a typo."""
    (tmp_path / "toyconv.py").write_text(NEW_CONVERTER)
    Image.fromarray(np.zeros((40, 60), np.uint8)).save(tmp_path / "a.png")
    (tmp_path / "rows.json").write_text('[{"image": "a.png", "text": "left lung", "box": [1, 2, 10, 12]}]')
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(tmp_path)!r})
        import toyconv  # noqa: F401
        from medground.cli import main
        for argv in (["data", "convert", "list"],
                     ["data", "convert", "toyjson", {str(tmp_path / "rows.json")!r}, "--out", {str(tmp_path / "out")!r},
                      "-o", "scale=2", "--quiet"],
                     ["data", "convert", "toyjsn", "x", "--out", "y"]):
            try:
                main(argv)
            except SystemExit as exc:
                print("exit", exc.code)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    out = proc.stdout
    assert "toyjson      rows of a JSON list: image, text, box" in out
    assert "    -o scale=1.0" in out
    assert "toyjson: 1 samples (all 1)" in out
    assert "did you mean toyjson?" in proc.stderr and "exit 2" in out
    (s,) = read_jsonl(tmp_path / "out" / "all.jsonl")
    assert s.boxes == [[2.0, 4.0, 20.0, 24.0]] and (s.width, s.height) == (60, 40)


def _csv(tmp_path, size_in_csv=(250, 300)):
    csv = tmp_path / "ms.csv"
    csv.write_text(V110 + "\n" + f"aaa-111,Edema,pulmonary edema,{P1},50,60,100,30,{size_in_csv[0]},"
                   f"{size_in_csv[1]},test\n")
    return csv


def test_fit_to_image_maps_resized_copies_records_missing_and_skips_unreadable(tmp_path):
    mimic = tmp_path / "mimic"
    jpg = mimic / P1.replace(".dcm", ".jpg")
    jpg.parent.mkdir(parents=True)
    Image.fromarray(np.zeros((150, 125), np.uint8)).save(jpg)  # half the CSV's 250 x 300
    rep = convert("mscxr", _csv(tmp_path), tmp_path / "resized", images=mimic, progress=False)
    (s,) = read_jsonl(tmp_path / "resized" / "test.jsonl")
    assert (s.width, s.height) == (125, 150) and s.boxes == [[25.0, 30.0, 75.0, 45.0]]
    assert s.meta["resized_from"] == [250, 300] and "image_missing" not in s.meta
    assert list(rep.warnings) == ["images whose size differs from the CSV image_width/height: boxes mapped to the "
                                  "file's pixels"]

    jpg.unlink()
    convert("mscxr", _csv(tmp_path), tmp_path / "missing", images=mimic, progress=False)
    (s,) = read_jsonl(tmp_path / "missing" / "test.jsonl")
    assert s.meta["image_missing"] is True and (s.width, s.height) == (250, 300)
    assert s.boxes == [[50.0, 60.0, 150.0, 90.0]] and "resized_from" not in s.meta

    jpg.write_bytes(b"\xff\xd8\xff not really a JPEG")
    rep = convert("mscxr", _csv(tmp_path), tmp_path / "broken", images=mimic, progress=False)
    assert rep.counts == {} and rep.skipped[0]["row"] == 1 and "unreadable image" in rep.skipped[0]["reason"]
    assert rep.skipped[0]["id"] == "mscxr-aaa-111-0"


def test_cli_prints_the_report_description(tmp_path, capsys):
    mimic = tmp_path / "mimic"
    mimic.mkdir()
    with pytest.raises(SystemExit) as e:
        main(["data", "convert", "mscxr", str(_csv(tmp_path)), "--out", str(tmp_path / "o"), "--images", str(mimic),
              "--skip-missing", "--quiet"])
    assert e.value.code in (0, None)
    out = capsys.readouterr().out.splitlines()
    assert out == ["mscxr: 0 samples (none); 1 row(s) skipped; 1 missing image(s)",
                   "  skipped 1: image not found",
                   f"report: {tmp_path / 'o' / 'convert_report.json'}"]

