"""Several canonical datasets as one (``medground data merge``): e.g. MS-CXR and ChestX-ray8
for one training run.

Each input's image and mask paths are resolved against its own folder, and written relative
to the output's folder where they lie below it (absolute otherwise), so the merged file works
from where it is.  Ids must be unique across the inputs; ``prefix`` adds the input's name
(``mscxr/...``) to tell colliding ids apart.

>>> import tempfile, pathlib
>>> from medground.data.schema import Sample, read_jsonl, write_jsonl
>>> root = pathlib.Path(tempfile.mkdtemp())
>>> _ = write_jsonl([Sample(id="a", image=str(root / "x" / "a.png"), query="q", boxes=[[1, 2, 3, 4]])], root / "x" / "train.jsonl")
>>> _ = write_jsonl([Sample(id="b", image=str(root / "y" / "b.png"), query="q", boxes=[])], root / "y" / "train.jsonl")
>>> counts = merge_datasets([root / "x" / "train.jsonl", root / "y" / "train.jsonl"], root / "both" / "train.jsonl")
>>> counts, [s.kind for s in read_jsonl(root / "both" / "train.jsonl")]
({'samples': 2, 'negative': 1, 'single': 1, 'multi': 0}, ['single', 'negative'])
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import MedgroundError, where
from .schema import TARGET_KINDS, Sample, read_jsonl, write_jsonl


def merge_datasets(inputs: list[str | os.PathLike], out: str | os.PathLike, *, prefix: bool = False) -> dict[str, int]:
    """Write the samples of every input JSONL, in order, to ``out`` (atomically); returns the
    number of samples and of each target kind.  A repeated id raises naming both places."""
    if not inputs:
        raise MedgroundError("merge needs at least one dataset file")
    samples: list[Sample] = []
    first: dict[str, str] = {}
    for path in inputs:
        name = Path(path).parent.name or Path(path).stem
        for s in read_jsonl(path):
            if prefix:
                s.id = f"{name}/{s.id}"
            if s.id in first:
                raise MedgroundError(f"{where(path, None, s.id)}: id already in {first[s.id]} "
                                     "(use --prefix to tell the datasets apart)")
            first[s.id] = str(path)
            samples.append(s)
    write_jsonl(samples, out)
    counts = {"samples": len(samples), **{k: 0 for k in TARGET_KINDS}}
    for s in samples:
        if s.kind:
            counts[s.kind] += 1
    return counts
