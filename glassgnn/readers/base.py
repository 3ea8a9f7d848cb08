"""The :class:`Snapshot` record every reader returns, and the checks every snapshot passes.

Readers are DGL-free: they turn one file into a list of :class:`Snapshot` (one per
frame) and raise :class:`ReaderError` (one line: the file and the problem) on bad input.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

#: Farthest an atom may lie from the cell, in cell lengths: beyond, float64 wrapping keeps
#: less than 1e-10 of the cell (relative precision 2.2e-16 times 1e6 cells).
MAX_CELLS_AWAY = 1e6


class ReaderError(ValueError):
    """A file cannot be read as a snapshot; the message names the file and the problem."""

    def __init__(self, path: str | Path, problem: str):
        super().__init__(f"{path}: {problem}")
        self.path = str(path)
        self.problem = problem

    def __reduce__(self):  # keeps the two arguments across process boundaries (--num_workers)
        return type(self), (self.path, self.problem)


@dataclass
class Snapshot:
    """One periodic configuration, as read from a file.

    Attributes:
        positions: [n_atoms, 3] float64 positions relative to the cell origin, in the
            file's length unit. They may lie outside the cell (unwrapped); the graph
            builder wraps them.
        types: [n_atoms] int64 type indices 0..T-1 into ``type_labels``.
        type_labels: original label of each type index (``type_labels[t]``), as str:
            ``"1"``/``"2"`` for LAMMPS or SymGNN types, ``"Cu"`` for extxyz symbols.
        cell: [3, 3] float64 cell vectors as rows (orthorhombic: diagonal).
        fields: per-atom numeric fields, name -> [n_atoms] or [n_atoms, k] float64.
            Any of them can be the target or an extra node feature.
        column_names: for a field with k > 1 columns, the name of each column.
        default_target: field used as target when the user names none (None: no target).
        default_mask_labels: type labels entering loss and metrics by default
            (None: every particle). Bapst et al. 2020 evaluate on type A only.
        source: the file the snapshot came from.
        frame: index of the frame inside ``source``.
        units: unit of each quantity when known (``{"length": "angstrom", ...}``).
        metadata: anything else the file says (temperature, time step, ...); its numeric
            scalars are the per-snapshot values ``construct_graph.py --graph_target`` can
            store as graph targets (:mod:`glassgnn.readers.graph_values`).
    """

    positions: np.ndarray
    types: np.ndarray
    type_labels: list[str]
    cell: np.ndarray
    source: str
    frame: int = 0
    fields: dict[str, np.ndarray] = field(default_factory=dict)
    column_names: dict[str, list[str]] = field(default_factory=dict)
    default_target: str | None = None
    default_mask_labels: tuple[str, ...] | None = None
    units: dict[str, str] = field(default_factory=dict)
    metadata: dict = field(default_factory=dict)

    @property
    def num_atoms(self) -> int:
        return len(self.positions)

    @property
    def type_map(self) -> dict[str, int]:
        """Original type label -> type index."""
        return {label: index for index, label in enumerate(self.type_labels)}

    def target_columns(self, name: str) -> list[str]:
        """Names of the columns of field ``name`` (one per column)."""
        if name in self.column_names:
            return list(self.column_names[name])
        return [name]


def _label(value) -> str:
    """A type label as text: ``2`` and ``2.0`` both give ``"2"``."""
    if isinstance(value, bytes):
        value = value.decode()
    if isinstance(value, float | np.floating) and float(value).is_integer():
        value = int(value)
    return str(value)


def label_sort_key(label: str):
    """Numeric labels in numeric order (``"2"`` before ``"10"``), then text labels."""
    try:
        return (0, float(label), "")
    except ValueError:
        return (1, 0.0, label)


def encode_types(path: str | Path, labels) -> tuple[np.ndarray, list[str]]:
    """Map raw per-atom type labels to indices 0..T-1 (labels sorted numerically, then by text).

    Returns:
        ``types`` [n_atoms] int64 and ``type_labels`` (label of each index).
    """
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ReaderError(path, f"types must be one label per atom, got shape {labels.shape}")
    if labels.dtype.kind == "f" and not np.all(np.isfinite(labels)):
        raise ReaderError(path, "types contain NaN or inf")
    unique, inverse = np.unique(labels, return_inverse=True)
    text = [_label(value) for value in unique]
    order = sorted(range(len(text)), key=lambda i: label_sort_key(text[i]))
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    return rank[inverse.reshape(-1)], [text[i] for i in order]


def orthorhombic_cell(path: str | Path, box) -> np.ndarray:
    """A (3, 3) cell from (3,) box lengths or an already (3, 3) matrix."""
    box = np.asarray(box, dtype=np.float64)
    if box.shape == (3,):
        return np.diag(box)
    if box.shape == (3, 3):
        return box
    raise ReaderError(path, f"box must have shape (3,) or (3, 3), got {box.shape}")


def validate(snapshot: Snapshot) -> Snapshot:
    """Check shapes, finiteness and the cell of a snapshot; raise :class:`ReaderError` otherwise."""
    path = snapshot.source
    pos = np.asarray(snapshot.positions, dtype=np.float64)
    if pos.ndim != 2 or pos.shape[1] != 3:
        raise ReaderError(path, f"positions must have shape (N, 3), got {pos.shape}")
    n_atoms = len(pos)
    if n_atoms == 0:
        raise ReaderError(path, "the configuration has no atoms")
    if not np.all(np.isfinite(pos)):
        raise ReaderError(path, f"positions contain NaN or inf ({int(np.sum(~np.isfinite(pos)))} values)")
    types = np.asarray(snapshot.types)
    if types.shape != (n_atoms,):
        raise ReaderError(path, f"shape mismatch: {n_atoms} positions but types of shape {types.shape}")
    cell = np.asarray(snapshot.cell, dtype=np.float64)
    if cell.shape != (3, 3) or not np.all(np.isfinite(cell)):
        raise ReaderError(path, f"the cell must be a finite (3, 3) matrix, got {cell.tolist()}")
    lengths = np.linalg.norm(cell, axis=1)
    if np.allclose(cell, np.diag(np.diag(cell))) and np.any(np.diag(cell) <= 0):
        raise ReaderError(path, f"non-positive box length(s) {np.diag(cell).tolist()}")
    if np.any(lengths <= 0):
        raise ReaderError(path, f"non-positive cell vector length(s) {lengths.tolist()}")
    volume = abs(np.linalg.det(cell))
    if volume <= 1e-9 * np.prod(lengths):
        raise ReaderError(path, f"degenerate cell (volume {volume:g}) with vectors {cell.tolist()}")
    if np.linalg.det(cell) < 0:
        raise ReaderError(path, "the cell vectors are left-handed (negative determinant)")
    frac = np.abs(pos @ np.linalg.inv(cell))
    if frac.max() > MAX_CELLS_AWAY:
        atom = int(np.argmax(frac.max(axis=1)))
        raise ReaderError(
            path,
            f"atom {atom} at {pos[atom].tolist()} is {frac[atom].max():.3g} cell lengths from the cell: "
            f"wrapping it would lose its position (limit {MAX_CELLS_AWAY:.0e})",
        )
    for name, value in snapshot.fields.items():
        value = np.asarray(value)
        if value.shape[:1] != (n_atoms,):
            raise ReaderError(
                path, f"shape mismatch: {n_atoms} positions but field {name!r} has {value.shape}"
            )
        if not np.all(np.isfinite(value)):
            raise ReaderError(path, f"field {name!r} contains NaN or inf")
    snapshot.positions = pos
    snapshot.types = types.astype(np.int64)
    snapshot.cell = cell
    return snapshot
