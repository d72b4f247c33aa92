"""SITS data: sequences, readers and writers, datasets, the DataModule, inspection.

Names are imported on first use (PEP 562), so `import tamms.data` stays light: the CLI can read a
sequence without importing torch or Lightning.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "SitsSequence": "sequence", "Scaling": "sequence", "parse_date": "sequence",
    "date_from_filename": "sequence", "to_days": "sequence", "from_days": "sequence",
    "ChangePair": "sequence",
    "RasterImage": "readers", "read_image": "readers", "read_sequence": "readers",
    "read_sequences": "readers", "find_sequence_folders": "readers", "read_levir_cd": "readers",
    "read_levir_cc": "readers", "align_to": "readers", "read_pairs": "readers", "read_oscd": "readers",
    "read_dataset": "readers", "detect_layout": "readers", "DatasetContents": "readers", "LAYOUTS": "readers",
    "attach_captions": "readers",
    "BAND_VOCABULARY": "bands", "select_bands": "bands", "standard_band_name": "bands",
    "standard_band_names": "bands", "default_band_names": "bands", "rgb_indices": "bands",
    "keep_bands": "transforms",
    "write_geotiff": "writers", "write_png": "writers", "save_sequence": "writers", "save_pairs": "writers",
    "compute_scaling": "transforms", "apply_scaling": "transforms", "resolve_bands": "transforms",
    "display_stretch": "transforms",
    "SitsWindowDataset": "datasets", "SitsPairDataset": "datasets", "collate_sits": "datasets",
    "build_windows": "datasets", "sequence_split": "datasets", "split_sequences": "datasets",
    "hash_split": "datasets",
    "SitsDataModule": "datamodule",
    "inspect_path": "inspect", "inspect_sequence": "inspect", "contact_sheet": "inspect",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'tamms.data' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"tamms.data.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
