"""A dataset folder: which files make it, read once, each sample once.

A converted dataset is a folder of ``{split}.jsonl`` files.  The files that make it:

1. those its manifest ``dataset.json`` lists (``{"splits": {"train": "train.jsonl", ...}}``),
   when it has one — ``medground data convert``, ``data phantom`` and the demo write it
   (:func:`write_dataset`); every other ``.jsonl`` beside them (``all.jsonl``, the demo's
   ``train_sft.jsonl``, predictions) is not part of the dataset;
2. without a manifest, every top-level ``*.jsonl`` except hidden files (an interrupted
   writer's temporary file) and ``all.jsonl`` when there are others (``all.jsonl`` is
   their union, as ``data phantom`` writes it); ``all.jsonl`` alone is read.

A sample id met twice — in two files, or twice in one — is an error naming both
places: a folder that holds a sample twice would be counted, exported and trained on
twice.  :meth:`Dataset.describe` says what was read and what was left out, and why.

>>> import tempfile, pathlib
>>> from medground.data.schema import Sample
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> s = lambda i, sp: Sample(id=i, image="a.png", query="the heart", boxes=[[1, 2, 3, 4]], split=sp)
>>> _ = write_dataset({"train": [s("a", "train"), s("b", "train")], "test": [s("c", "test")]}, d)
>>> _ = (d / "all.jsonl").write_text((d / "train.jsonl").read_text() + (d / "test.jsonl").read_text())
>>> ds = read_dataset(d)
>>> {k: len(v) for k, v in ds.by_split.items()}
{'test': 1, 'train': 2}
>>> print(ds.describe())  # doctest: +ELLIPSIS
read 3 samples from ...: test.jsonl 1, train.jsonl 2 (listed in dataset.json); not read: all.jsonl (not listed in dataset.json)
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..errors import MedgroundError, where
from ..fileio import atomic_json
from .schema import Sample, iter_samples, write_jsonl

#: The manifest of a dataset folder.
MANIFEST = "dataset.json"
#: The union file ``data phantom`` writes beside the split files.
UNION_FILE = "all.jsonl"
MANIFEST_FORMAT = "medground-dataset"


@dataclass
class Dataset:
    """What :func:`read_dataset` read: samples by split, the files read (name -> samples),
    the ``.jsonl`` files left out (name -> why) and the rule that chose the files."""

    source: Path
    by_split: dict[str, list[Sample]]
    files: dict[str, int] = field(default_factory=dict)
    ignored: dict[str, str] = field(default_factory=dict)
    rule: str = "one file"

    @property
    def samples(self) -> list[Sample]:
        """Every sample, split by split in file order."""
        return [s for ss in self.by_split.values() for s in ss]

    def select(self, splits: Iterable[str]) -> Dataset:
        """The same dataset with only the named splits, in that order (an unknown one is an
        error naming those there are); what was read stays as it was."""
        wanted = list(splits)
        unknown = [s for s in wanted if s not in self.by_split]
        if unknown:
            raise MedgroundError(f"{self.source}: no split(s) {', '.join(unknown)}; found "
                                 f"{', '.join(sorted(self.by_split))}")
        return replace(self, by_split={s: self.by_split[s] for s in wanted})

    def describe(self) -> str:
        """One line: how many samples from which files, and which files were not read."""
        n = sum(self.files.values())
        text = f"read {n} samples from {self.source}"
        if self.rule != "one file":
            text += ": " + ", ".join(f"{name} {k}" for name, k in self.files.items()) + f" ({self.rule})"
        if self.ignored:
            text += "; not read: " + ", ".join(f"{name} ({why})" for name, why in self.ignored.items())
        return text


def dataset_files(folder: str | os.PathLike) -> tuple[list[tuple[str | None, Path]], dict[str, str], str]:
    """The files that make the dataset folder ``folder``: ``([(split or None, path)], {name:
    why it is not read}, rule)``; a split of None takes each sample's own ``split`` (else
    the file's stem).  See the module docstring for the rules."""
    folder = Path(folder)
    candidates = sorted(p for p in folder.glob("*.jsonl") if p.is_file() and not p.name.startswith("."))
    manifest = folder / MANIFEST
    if manifest.is_file():
        listed = read_manifest(manifest)
        files = []
        for split, name in listed.items():
            path = folder / name
            if not path.is_file():
                raise MedgroundError(f"{manifest}: lists {name} for split {split!r}, which does not exist")
            files.append((split, path))
        names = {p.name for _, p in files}
        ignored = {p.name: f"not listed in {MANIFEST}" for p in candidates if p.name not in names}
        return files, ignored, f"listed in {MANIFEST}"
    if not candidates:
        raise MedgroundError(f"{folder}: no .jsonl files (a dataset folder has {{split}}.jsonl files or a {MANIFEST})")
    others = [p for p in candidates if p.name != UNION_FILE]
    if others:
        ignored = {UNION_FILE: "the union of the split files"} if len(others) < len(candidates) else {}
        return [(None, p) for p in others], ignored, "split files"
    return [(None, candidates[0])], {}, f"{UNION_FILE} only"


def read_manifest(path: str | os.PathLike) -> dict[str, str]:
    """``{split: file name}`` from a ``dataset.json``; a malformed manifest, or one naming
    a file outside its folder, raises :class:`MedgroundError`."""
    try:
        obj = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise MedgroundError(f"{path}: cannot read the dataset manifest ({exc})") from None
    except json.JSONDecodeError as exc:
        raise MedgroundError(f"{path}: invalid JSON ({exc.msg} at line {exc.lineno})") from None
    splits = obj.get("splits") if isinstance(obj, dict) else None
    if not isinstance(splits, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in splits.items()):
        raise MedgroundError(f'{path}: expected {{"splits": {{"SPLIT": "FILE.jsonl", ...}}}}')
    for split, name in splits.items():
        if Path(name).name != name or not name.endswith(".jsonl"):
            raise MedgroundError(f"{path}: split {split!r} names {name!r}; give a .jsonl file in the same folder")
    return dict(splits)


def read_dataset(data: str | os.PathLike, splits: Iterable[str] | None = None, *,
                 root: str | os.PathLike | None = None) -> Dataset:
    """Read a dataset folder (the files of :func:`dataset_files`) or one JSONL file,
    grouped by split; ``splits`` keeps only those (an unknown one is an error);
    ``root`` confines image and mask paths (:mod:`medground.data.roots`).  A sample id
    met twice raises :class:`MedgroundError` naming both places."""
    p = Path(data)
    if p.is_dir():
        files, ignored, rule = dataset_files(p)
    elif p.is_file():
        files, ignored, rule = [(None, p)], {}, "one file"
    else:
        raise MedgroundError(f"{data}: dataset not found")
    by_split: dict[str, list[Sample]] = {}
    counts: dict[str, int] = {}
    first: dict[str, str] = {}
    for split, f in files:
        counts[f.name] = 0
        for line, s in iter_samples(f, root=root):
            here = f"{f}:{line}"
            if s.id in first:
                raise MedgroundError(
                    f"{where(f, line, s.id)}: duplicate id, also at {first[s.id]}; a dataset holds each sample "
                    f"once (remove one, or list the files that make the dataset in {p if p.is_dir() else p.parent}"
                    f"/{MANIFEST})")
            first[s.id] = here
            by_split.setdefault(split or s.split or f.stem, []).append(s)
            counts[f.name] += 1
    dataset = Dataset(p, by_split, counts, ignored, rule)
    return dataset.select(splits) if splits else dataset


def write_dataset(by_split: dict[str, list[Sample]], out: str | os.PathLike) -> Path:
    """Write ``out/{split}.jsonl`` for every split (atomically, paths below ``out`` made
    relative) and then the manifest ``out/dataset.json`` naming them; returns the manifest."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for split, samples in sorted(by_split.items()):
        if Path(f"{split}.jsonl").name != f"{split}.jsonl" or split.startswith("."):
            raise MedgroundError(f"split name {split!r} cannot be a file name")
        write_jsonl(samples, out / f"{split}.jsonl")
    manifest = {"format": MANIFEST_FORMAT, "splits": {split: f"{split}.jsonl" for split in sorted(by_split)},
                "samples": {split: len(samples) for split, samples in sorted(by_split.items())}}
    return atomic_json(manifest, out / MANIFEST, indent=1)
