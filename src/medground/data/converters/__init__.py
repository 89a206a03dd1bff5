"""Converters from public releases to the canonical schema.

``CONVERTERS`` is the converter registry (a :class:`medground.registry.Registry`: name
-> entry with a description and documented options); each converter is one module of
this package that decorates its ``convert(ctx)`` function with :func:`~.base.register`,
and every module here is imported below, so adding a dataset means adding one file.

=================  ===========================================================================
``mscxr``          PhysioNet MS-CXR CSV (v1.0.0 and v1.1.0 layouts), MIMIC-CXR-JPG images
``medrpg``         MedRPG split manifests ``MS_CXR_*.pth`` / ``ChestXray8_*.pth`` (+ R1 JSON)
``chestxray8``     NIH ChestX-ray8 ``BBox_List_2017.csv``
``m3d-refseg``     M3D-RefSeg CSV + CT / mask NIfTI volumes -> 2-D slices
``umrg``           U-MRG-14K parquet (MedReasoner)
=================  ===========================================================================

>>> sorted(CONVERTERS)
['chestxray8', 'm3d-refseg', 'medrpg', 'mscxr', 'umrg']
>>> CONVERTERS.entry("umrg").options["batch_size"].default
64
"""

from __future__ import annotations

import importlib
import pkgutil

from .base import REGISTRY, Report, get_spec, run

for _mod in pkgutil.iter_modules(__path__):
    if _mod.name != "base" and not _mod.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_mod.name}")

#: The converter registry (iterating gives the names; ``.entry(name)`` the description and options).
CONVERTERS = REGISTRY


def convert(source: str, input, out, **kwargs) -> Report:
    """Run converter ``source`` (see :func:`.base.run` for the keyword arguments)."""
    return run(source, input, out, **kwargs)


__all__ = ["CONVERTERS", "Report", "convert", "get_spec", "run"]
