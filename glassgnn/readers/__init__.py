"""Readers: every supported file format to a list of :class:`Snapshot` (one per frame).

``read_snapshots(path, format="auto", **options)`` is the one entry point. Formats:

========  =========================================  =====================================
format    files                                      module
========  =========================================  =====================================
symgnn    SymGNN pickle (Li et al. 2024)             :mod:`glassgnn.readers.pickles`
bapst     DeepMind glassy dynamics (Bapst 2020)      :mod:`glassgnn.readers.pickles`
lammps    ``.dump``, ``.lammpstrj`` text dumps       :mod:`glassgnn.readers.lammps`
extxyz    ``.xyz``, ``.extxyz`` (via ASE)            :mod:`glassgnn.readers.extxyz`
npz       ``.npz``                                   :mod:`glassgnn.readers.npz`
========  =========================================  =====================================

``auto`` picks by file extension; a pickle is ``bapst`` when it has propensity
trajectories or targets, ``symgnn`` otherwise; an unknown extension is sniffed for a
LAMMPS header. Per-snapshot values (temperature, energy, ...) are in each snapshot's
``metadata``: see :mod:`glassgnn.readers.graph_values`.
"""

from __future__ import annotations

from pathlib import Path

from glassgnn.readers.base import ReaderError, Snapshot, encode_types, validate
from glassgnn.readers.extxyz import read_extxyz
from glassgnn.readers.graph_values import apply_value_table, graph_values, read_value_table
from glassgnn.readers.lammps import read_lammps
from glassgnn.readers.npz import read_npz
from glassgnn.readers.pickles import is_bapst, load_pickle, propensity, read_bapst, read_symgnn

FORMATS = ("symgnn", "bapst", "lammps", "extxyz", "npz")
_EXTENSIONS = {
    ".pickle": "pickle",
    ".pkl": "pickle",
    ".dump": "lammps",
    ".lammpstrj": "lammps",
    ".xyz": "extxyz",
    ".extxyz": "extxyz",
    ".npz": "npz",
}

__all__ = [
    "FORMATS",
    "ReaderError",
    "Snapshot",
    "apply_value_table",
    "detect_format",
    "encode_types",
    "graph_values",
    "propensity",
    "read_snapshots",
    "read_value_table",
]


def detect_format(path: str | Path) -> str:
    """The format of ``path`` (one of :data:`FORMATS`), from its extension or content."""
    path = Path(path)
    kind = _EXTENSIONS.get(path.suffix.lower())
    if kind == "pickle":
        return "bapst" if is_bapst(load_pickle(path)) else "symgnn"
    if kind is not None:
        return kind
    with open(path, "rb") as handle:
        head = handle.read(64)
    if head.startswith(b"ITEM: TIMESTEP"):
        return "lammps"
    raise ReaderError(
        path, f"unknown format (extension {path.suffix!r}); pass --format, one of {', '.join(FORMATS)}"
    )


def read_snapshots(path: str | Path, format: str = "auto", time_index: int | None = None) -> list[Snapshot]:
    """Read every frame of ``path``.

    Args:
        path: input file.
        format: one of :data:`FORMATS` or ``"auto"``.
        time_index: ``bapst`` only: keep this propensity time index (None: all).

    Returns:
        One validated :class:`Snapshot` per frame.

    Raises:
        ReaderError: one line naming the file and the problem.
    """
    path = Path(path)
    if path.is_dir():
        raise ReaderError(path, "is a directory, not an input file (give the files, e.g. 'DIR/*.pickle')")
    if not path.is_file():
        raise ReaderError(path, "no such file")
    if format == "auto":
        format = detect_format(path)
    if format not in FORMATS:
        raise ReaderError(path, f"unknown format {format!r}; known: auto, {', '.join(FORMATS)}")
    if time_index is not None and format != "bapst":
        raise ReaderError(path, f"time_index applies to bapst files only, this is {format}")
    if format == "bapst":
        snapshots = read_bapst(path, time_index=time_index)
    else:
        snapshots = {"symgnn": read_symgnn, "lammps": read_lammps, "extxyz": read_extxyz, "npz": read_npz}[
            format
        ](path)
    return [validate(snapshot) for snapshot in snapshots]
