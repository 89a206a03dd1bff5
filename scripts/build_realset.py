#!/usr/bin/env python
"""Build medground's small real test set from images that installed packages ship.

    python scripts/build_realset.py --out data/realset [--sources mni152 ct retina] [--preview]

Writes ``images/*.png``, ``masks/*.png`` and ``realset.jsonl`` (canonical samples with
boxes and two key points per target); with ``--preview`` also ``preview/*.png``
overlays of every reference mask.  The rules are documented in
``medground.data.realset``; the output is byte-identical on every run.
"""

from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main(argv=None) -> int:
    from medground.data.realset import SOURCES, build_realset
    from medground.data.schema import read_jsonl
    from medground.errors import MedgroundError

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="data/realset", help="output folder (default data/realset)")
    ap.add_argument("--sources", nargs="+", default=list(SOURCES), choices=list(SOURCES))
    ap.add_argument("--preview", action="store_true", help="also write overlay PNGs of the reference masks")
    args = ap.parse_args(argv)
    try:
        path = build_realset(args.out, sources=args.sources)
        samples = read_jsonl(path)
    except MedgroundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {len(samples)} samples to {path}")
    if args.preview:
        from medground.data.io import load_image
        from medground.data.masks import load_mask
        from medground.fileio import atomic_path
        from medground.overlay import draw_overlay

        folder = os.path.join(args.out, "preview")
        for s in samples:
            im = draw_overlay(load_image(s.image), gt_box=s.box, gt_points=s.points, gt_mask=load_mask(s.mask),
                              title=f"{s.id}: {s.query}")
            with atomic_path(os.path.join(folder, f"{s.id}.png")) as tmp:
                im.save(tmp, format="PNG")
        print(f"wrote {len(samples)} previews to {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
