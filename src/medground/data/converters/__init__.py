"""Converters from public releases to the canonical schema.

``CONVERTERS`` maps a source name to a :class:`~.base.ConverterSpec`; each converter is
one module of this package that decorates its ``convert(ctx)`` function with
:func:`~.base.register`, so adding a dataset means adding one file here.

=================  ===========================================================================
``mscxr``          PhysioNet MS-CXR CSV (v1.0.0 and v1.1.0 layouts), MIMIC-CXR-JPG images
``medrpg``         MedRPG split manifests ``MS_CXR_*.pth`` / ``ChestXray8_*.pth`` (+ R1 JSON)
``chestxray8``     NIH ChestX-ray8 ``BBox_List_2017.csv``
``m3d-refseg``     M3D-RefSeg CSV + CT / mask NIfTI volumes -> 2-D slices
``umrg``           U-MRG-14K parquet (MedReasoner)
=================  ===========================================================================

>>> sorted(CONVERTERS)
['chestxray8', 'm3d-refseg', 'medrpg', 'mscxr', 'umrg']
"""

from __future__ import annotations

import importlib
import pkgutil

from .base import REGISTRY, ConverterSpec, Report, get_spec, run

for _mod in pkgutil.iter_modules(__path__):
    if _mod.name != "base" and not _mod.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_mod.name}")

CONVERTERS: dict[str, ConverterSpec] = REGISTRY


def convert(source: str, input, out, **kwargs) -> Report:
    """Run converter ``source`` (see :func:`.base.run` for the keyword arguments)."""
    return run(source, input, out, **kwargs)


__all__ = ["CONVERTERS", "ConverterSpec", "Report", "convert", "get_spec", "run"]
