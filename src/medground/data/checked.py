"""Read a dataset only after checking it the way ``medground data validate`` does.

Training must not start on a file with a NaN box, a box with ``x2 < x1``, a duplicate id
or a missing image: it would crash minutes later without naming the sample, or train
on garbage silently.  :func:`read_valid_samples` runs the validator
(:func:`medground.data.validate.validate_file`) over the whole file first and either
raises one :class:`~medground.errors.MedgroundError` listing every problem with its
``FILE:LINE [id=...]``, or — with ``skip_invalid`` — leaves those samples out and says
how many.

>>> import json, tempfile, pathlib
>>> from PIL import Image
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> Image.new("L", (32, 32)).save(d / "a.png")
>>> rows = [{"id": "ok", "image": "a.png", "query": "q", "boxes": [[1, 1, 9, 9]]},
...         {"id": "bad", "image": "a.png", "query": "q", "boxes": [[9, 1, 1, 9]]}]
>>> _ = (d / "train.jsonl").write_text("".join(json.dumps(r) + "\\n" for r in rows))
>>> try:
...     read_valid_samples(d / "train.jsonl")
... except MedgroundError as exc:
...     print(str(exc).splitlines()[-1].replace(str(d), "D"))   # after a summary line, each problem
  D/train.jsonl:2 [id=bad]: box 1 [9, 1, 1, 9] has no positive area (need x1 < x2 and y1 < y2)
>>> [s.id for s in read_valid_samples(d / "train.jsonl", skip_invalid=True, note=lambda m: print(m.replace(str(d), "D")))]
D/train.jsonl: left out 1 of 2 samples with problems (first: D/train.jsonl:2 [id=bad]: box 1 [9, 1, 1, 9] has no positive area (need x1 < x2 and y1 < y2))
['ok']
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ..errors import MedgroundError, where
from .schema import Sample, iter_jsonl, resolve
from .validate import validate_file

MAX_LISTED = 200  # problems written into one error message; the rest are counted


def read_valid_samples(path, *, skip_invalid: bool = False, hint: str = "",
                       note: Callable[[str], None] | None = None) -> list[Sample]:
    """The samples of dataset ``path`` (paths resolved), checked first.

    A file with problems raises :class:`MedgroundError`: a summary line (ending with
    ``hint``, e.g. how to skip them), then one line per problem.  With ``skip_invalid``
    the samples whose lines have problems are left out instead and ``note`` (default:
    nothing) is told how many; a problem of the whole file (missing, empty) or no valid
    sample left still raises."""
    result = validate_file(path)
    if result.ok:
        return _read(path, skip=set())
    bad_lines = {p.line for p in result.problems}
    if not skip_invalid or None in bad_lines:
        listed = [f"  {p.format(path)}" for p in result.problems[:MAX_LISTED]]
        if len(result.problems) > MAX_LISTED:
            listed.append(f"  ... and {len(result.problems) - MAX_LISTED} more (medground data validate {path})")
        raise MedgroundError("\n".join([f"{result.summary()}{hint}:", *listed]))
    samples = _read(path, skip=bad_lines)
    if not samples:
        raise MedgroundError(f"{path}: no valid sample left after leaving out {len(bad_lines)} with problems")
    if note is not None:
        note(f"{path}: left out {len(bad_lines)} of {result.n_samples} samples with problems "
             f"(first: {result.problems[0].format(path)})")
    return samples


def _read(path, *, skip: set) -> list[Sample]:
    """The samples of ``path`` except the lines in ``skip`` (image and mask paths resolved)."""
    root = Path(path).resolve().parent
    out = []
    for line, obj, err in iter_jsonl(path):
        if line in skip:
            continue
        if err:  # the validator saw the same line: unreachable unless the file changed meanwhile
            raise MedgroundError(f"{where(path, line)}: {err}")
        s = Sample.from_dict(obj, source=path, line=line)
        s.image, s.mask = resolve(s.image, root), resolve(s.mask, root)
        out.append(s)
    return out
