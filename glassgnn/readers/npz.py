"""Plain NumPy ``.npz`` reader: one configuration per file.

Keys: ``positions`` [n_atoms, 3], ``types`` [n_atoms], ``box`` (3,) lengths or (3, 3)
cell vectors as rows, optional ``origin`` (3,) (default 0), and any per-atom array
([n_atoms] or [n_atoms, k]) as a field; ``targets`` is the default target. Scalar
(0-d) arrays are per-snapshot values (metadata), e.g. ``temperature``.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from glassgnn.readers.base import ReaderError, Snapshot, encode_types, orthorhombic_cell

NPZ_TARGET = "targets"


def read_npz(path: str | Path) -> list[Snapshot]:
    """Read a ``.npz`` snapshot."""
    path = Path(path)
    if path.stat().st_size == 0:
        raise ReaderError(path, "empty file")
    try:
        with np.load(path, allow_pickle=False) as archive:
            data = {key: archive[key] for key in archive.files}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
        raise ReaderError(path, f"truncated or corrupt npz ({type(exc).__name__}: {exc})") from None
    missing = [key for key in ("positions", "types", "box") if key not in data]
    if missing:
        raise ReaderError(path, f"missing key(s) {missing} for the npz format (has: {sorted(data)})")
    positions = np.asarray(data["positions"], dtype=np.float64)
    if positions.ndim != 2 or positions.shape[1] != 3:
        raise ReaderError(path, f"positions must have shape (N, 3), got {positions.shape}")
    origin = np.asarray(data.get("origin", np.zeros(3)), dtype=np.float64)
    types, labels = encode_types(path, data["types"])
    fields, metadata = {}, {}
    for key, value in data.items():
        if key in ("positions", "types", "box", "origin"):
            continue
        if value.ndim == 0:  # a per-snapshot value (temperature, energy, ...)
            metadata[key] = value.item() if value.dtype.kind in "fiub" else str(value)
            continue
        if value.dtype.kind not in "fiub" or value.ndim not in (1, 2):
            raise ReaderError(path, f"key {key!r} is not a per-atom numeric array (shape {value.shape})")
        fields[key] = value.astype(np.float64)
    return [
        Snapshot(
            positions=positions - origin,
            types=types,
            type_labels=labels,
            cell=orthorhombic_cell(path, data["box"]),
            source=str(path),
            fields=fields,
            default_target=NPZ_TARGET if NPZ_TARGET in fields else None,
            metadata=metadata,
        )
    ]
