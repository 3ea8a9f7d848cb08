"""Extended XYZ reader, through ASE (``ase.io.read(..., format="extxyz")``).

Every frame must be periodic in all three directions. Types are the chemical symbols
(or a ``type`` per-atom column when present); every other per-atom array, and any
per-atom result stored with the frame (e.g. ``forces``), becomes a field. The frame's
``info`` keys and scalar results (e.g. ``energy``) are per-snapshot values (metadata).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from glassgnn.readers.base import ReaderError, Snapshot, encode_types

_NOT_FIELDS = {"numbers", "positions", "type", "species"}


def read_extxyz(path: str | Path) -> list[Snapshot]:
    """Read every frame of an extended XYZ file."""
    import ase.io  # imported here: ASE is only needed for this format

    path = Path(path)
    if path.stat().st_size == 0:
        raise ReaderError(path, "empty file")
    try:
        frames = ase.io.read(path, index=":", format="extxyz")
    except Exception as exc:  # ASE raises many types on malformed input
        raise ReaderError(path, f"unreadable extxyz ({type(exc).__name__}: {exc})") from None
    if not frames:
        raise ReaderError(path, "no frame in the file")
    snapshots = []
    for frame, atoms in enumerate(frames):
        if not atoms.pbc.all():
            raise ReaderError(
                path, f"frame {frame}: not periodic in all directions (pbc={atoms.pbc.tolist()})"
            )
        arrays = dict(atoms.arrays)
        # ASE parses comment-line numbers as numpy scalars (np.int64, ...) as well as Python ones.
        scalars = int | float | str | np.integer | np.floating
        metadata = {
            k: v.item() if isinstance(v, np.generic) else v
            for k, v in atoms.info.items()
            if isinstance(v, scalars)
        }
        if atoms.calc is not None:
            results = atoms.calc.results
            arrays.update({k: v for k, v in results.items() if np.ndim(v) >= 1 and len(v) == len(atoms)})
            # ASE moves per-frame `energy`, `free_energy`, ... from the comment line to the calculator.
            metadata.update({k: float(v) for k, v in results.items() if np.ndim(v) == 0})
        labels = arrays["type"] if "type" in arrays else np.array(atoms.get_chemical_symbols())
        types, type_labels = encode_types(path, labels)
        fields = {}
        for name, value in arrays.items():
            value = np.asarray(value)
            if name not in _NOT_FIELDS and value.dtype.kind in "fiub":
                fields[name] = value.astype(np.float64)
        snapshots.append(
            Snapshot(
                positions=np.asarray(atoms.positions, dtype=np.float64),
                types=types,
                type_labels=type_labels,
                cell=np.asarray(atoms.cell[:], dtype=np.float64),
                source=str(path),
                frame=frame,
                fields=fields,
                metadata=metadata,
            )
        )
    return snapshots
