"""Image and mask paths kept under a dataset root (issue 12, item 14): ``..``, absolute
paths and symlinks that leave the root are refused by the loader, reported by ``data
validate --root`` without being opened, and refused by ``predict``, ``segment``,
``evaluate`` and ``data stats`` / ``export`` given ``--root``."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from medground.data.dataset_dir import read_dataset
from medground.data.phantom import generate_phantom_dataset
from medground.data.roots import confine, is_inside
from medground.data.schema import read_jsonl, write_jsonl
from medground.data.validate import validate_file
from medground.errors import MedgroundError


@pytest.fixture(scope="module")
def phantom(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("root") / "data"
    generate_phantom_dataset(out, n=3, seed=2, size=64, progress=False)
    return out


def _escaping(phantom: Path, tmp_path: Path) -> dict[str, Path]:
    """One dataset file per way out of the root: a parent path, an absolute path and a
    symlink inside the root that points outside it."""
    good = read_jsonl(phantom / "test.jsonl")[0]
    outside = tmp_path / "outside.png"
    outside.write_bytes(Path(good.image).read_bytes())
    link = phantom / "images" / "link_out.png"
    if not link.exists():
        os.symlink(outside, link)
    files = {}
    for name, image in (("parent", "../../outside.png"), ("absolute", "/etc/passwd"), ("symlink", "images/link_out.png")):
        d = good.to_dict() | {"image": image, "mask": None}
        f = phantom / f"escape_{name}.jsonl"
        f.write_text(json.dumps(d) + "\n")
        files[name] = f
    return files


def test_confine_resolves_symlinks_and_parents(tmp_path):
    root = tmp_path / "root"
    (root / "images").mkdir(parents=True)
    (tmp_path / "secret.png").write_bytes(b"x")
    os.symlink(tmp_path / "secret.png", root / "images" / "s.png")
    assert is_inside(root / "images" / "a.png", root)
    assert not is_inside(root / "images" / ".." / ".." / "secret.png", root)
    assert not is_inside(root / "images" / "s.png", root)  # the link leaves the root
    assert not is_inside(tmp_path / "root2" / "a.png", root)  # a sibling sharing the prefix
    with pytest.raises(MedgroundError, match=r"data.jsonl:3 \[id=a\]: image images/s.png lies outside the dataset root"):
        confine("images/s.png", root, where="data.jsonl:3 [id=a]")


def test_read_jsonl_with_a_root_refuses_each_way_out(phantom, tmp_path):
    files = _escaping(phantom, tmp_path)
    assert len(read_jsonl(phantom / "test.jsonl", root=phantom)) >= 1  # the dataset's own files are fine
    for f in files.values():
        assert len(read_jsonl(f)) == 1  # without a root: the user's own business
        with pytest.raises(MedgroundError, match=rf"{f.name}:1 \[id=.*\]: image .* lies outside the dataset root"):
            read_jsonl(f, root=phantom)
        with pytest.raises(MedgroundError, match="lies outside"):
            read_dataset(f, root=phantom)


def test_a_mask_outside_the_root_is_refused_too(phantom, tmp_path):
    s = read_jsonl(phantom / "test.jsonl")[0]
    s.mask = "/etc/hostname"
    write_jsonl([s], tmp_path / "m.jsonl")
    with pytest.raises(MedgroundError, match="mask /etc/hostname lies outside"):
        read_jsonl(tmp_path / "m.jsonl", root=phantom)


def test_validate_with_a_root_reports_and_never_opens(phantom, tmp_path, monkeypatch):
    files = _escaping(phantom, tmp_path)
    opened = []
    import medground.data.io as io

    real = io.load_image
    monkeypatch.setattr(io, "load_image", lambda p, *a, **k: opened.append(str(p)) or real(p, *a, **k))
    result = validate_file(files["absolute"], root=phantom)
    assert [p.message.split(" lies")[0] for p in result.problems] == ["image /etc/passwd"]
    assert "/etc/passwd" not in opened
    without = validate_file(files["absolute"])  # no root: checked (and found not to decode) as before
    assert any("does not decode" in p.message for p in without.problems)


@pytest.mark.parametrize("command", [
    ["data", "validate", "{f}", "--root", "{root}"],
    ["data", "stats", "{f}", "--root", "{root}", "--plot", "{tmp}/s.png"],
    ["data", "export", "r1-json", "{f}", "--out", "{tmp}/r1", "--root", "{root}"],
    ["segment", "--data", "{f}", "--out", "{tmp}/seg.jsonl", "--root", "{root}"],
    ["evaluate", "{tmp}/pred.jsonl", "--data", "{f}", "--root", "{root}"],
    ["predict", "--model", "{tmp}/no-model", "--data", "{f}", "--out", "{tmp}/p.jsonl", "--root", "{root}"],
])
def test_every_command_with_a_root_refuses_the_symlink(phantom, tmp_path, capsys, run, command):
    files = _escaping(phantom, tmp_path)
    (tmp_path / "pred.jsonl").write_text('{"id": "x", "boxes": [[1, 2, 3, 4]]}\n')
    argv = [a.format(f=files["symlink"], root=phantom, tmp=tmp_path) for a in command]
    code, out, err = run(argv, capsys)
    text = out + err
    assert code in (1, 2) and "link_out.png lies outside the dataset root" in text
    if command[:2] != ["data", "validate"]:  # validate lists problems (exit 1); the others stop at once
        assert code == 2 and err.count("\n") == 1 and err.startswith("error: ")


def test_samples_inside_the_root_still_work_end_to_end(phantom, tmp_path, capsys, run):
    code, out, err = run(["segment", "--data", str(phantom / "test.jsonl"), "--out", str(tmp_path / "s.jsonl"),
                          "--root", str(phantom), "--quiet"], capsys)
    assert code == 0, err
    assert len((tmp_path / "s.jsonl").read_text().splitlines()) == len(read_jsonl(phantom / "test.jsonl"))

