"""Periodic neighbour search (DGL-free).

First version: orthorhombic cells with scipy's cKDTree (``boxsize``).
To be extended (triclinic cells, k nearest neighbours, per-pair cutoffs) by the
construct_graph issue; keep the signature of :func:`radius_pairs`.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree


def cell_matrix(cell: np.ndarray) -> np.ndarray:
    """Return the cell as a (3, 3) matrix with cell vectors as rows.

    Args:
        cell: (3,) orthorhombic box lengths or a (3, 3) matrix of cell vectors (rows).
    """
    cell = np.asarray(cell, dtype=np.float64)
    return np.diag(cell) if cell.shape == (3,) else cell


def radius_pairs(
    positions: np.ndarray, cell: np.ndarray, cutoff: float, self_loops: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All ordered pairs (src, dst) closer than ``cutoff`` under periodic boundaries.

    Args:
        positions: [n_atoms, 3] positions (any image; they are wrapped here).
        cell: (3,) box lengths or (3, 3) cell vectors as rows.
        cutoff: neighbour distance, same length unit as ``positions``.
        self_loops: also return (i, i) with zero displacement.

    Returns:
        ``src`` [n_edges] int64, ``dst`` [n_edges] int64 and
        ``disp`` [n_edges, 3] float64 = r_dst - r_src (minimum image).
        Both directions of every pair are present.
    """
    matrix = cell_matrix(cell)
    if not np.allclose(matrix, np.diag(np.diag(matrix))):
        raise NotImplementedError("triclinic cells are not supported yet")
    box = np.diag(matrix)
    if cutoff >= box.min() / 2:
        raise ValueError(f"cutoff {cutoff} is not below half the shortest box length {box.min()}")
    wrapped = np.mod(positions, box)
    # cKDTree's boxsize rejects coordinates equal to the box length after rounding.
    wrapped[wrapped >= box] = 0.0
    tree = cKDTree(wrapped, boxsize=box)
    pairs = tree.query_pairs(cutoff, output_type="ndarray")
    src = np.concatenate([pairs[:, 0], pairs[:, 1]])
    dst = np.concatenate([pairs[:, 1], pairs[:, 0]])
    if self_loops:
        loop = np.arange(len(positions))
        src = np.concatenate([src, loop])
        dst = np.concatenate([dst, loop])
    disp = wrapped[dst] - wrapped[src]
    disp -= box * np.round(disp / box)
    return src.astype(np.int64), dst.astype(np.int64), disp
