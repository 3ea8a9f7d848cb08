"""Brute-force O(N^2 x images) periodic neighbour reference for the neighbour-search tests."""

from __future__ import annotations

import itertools

import numpy as np


def random_cell(rng: np.random.Generator, triclinic: bool) -> np.ndarray:
    """A right-handed cell (rows), lengths 6-12, strongly sheared when ``triclinic``."""
    cell = np.diag(rng.uniform(6.0, 12.0, size=3))
    if triclinic:
        cell[1, 0], cell[2, 0], cell[2, 1] = rng.uniform(-0.5, 0.5, size=3) * cell[0, 0]
    return cell


def widths(cell: np.ndarray) -> np.ndarray:
    """Perpendicular distances between opposite faces."""
    a, b, c = cell
    volume = abs(np.linalg.det(cell))
    return volume / np.linalg.norm([np.cross(b, c), np.cross(c, a), np.cross(a, b)], axis=1)


def brute_force_edges(positions, cell, cutoff, self_loops=False, types=None, pair_cutoffs=None) -> np.ndarray:
    """Every (src, dst, image) with |r_dst + image - r_src| < cutoff, by checking all pairs
    against every image that can be in range.

    Returns:
        [n_edges, 5] rows (src, dst, dx, dy, dz), sorted; disp = r_dst - r_src.
    """
    cell = np.asarray(cell, dtype=np.float64)
    positions = np.asarray(positions, dtype=np.float64)
    reach = np.ceil(cutoff / widths(cell)).astype(int) + 1
    rows = []
    for shift in itertools.product(*(range(-r, r + 1) for r in reach)):
        image = np.asarray(shift, dtype=np.float64) @ cell
        disp = positions[None, :, :] + image - positions[:, None, :]  # [src, dst, 3]
        dist = np.linalg.norm(disp, axis=-1)
        limit = cutoff if pair_cutoffs is None else pair_cutoffs[types[:, None], types[None, :]]
        close = dist < limit
        if not any(shift):
            np.fill_diagonal(close, False)
        src, dst = np.nonzero(close)
        rows.append(np.column_stack([src, dst, disp[src, dst]]))
    if self_loops:
        n = len(positions)
        rows.append(np.column_stack([np.arange(n), np.arange(n), np.zeros((n, 3))]))
    return sort_edges(np.concatenate(rows))


def sort_edges(edges: np.ndarray) -> np.ndarray:
    """Rows (src, dst, dx, dy, dz) in lexicographic order (disp rounded for ordering only)."""
    keys = np.round(edges[:, 2:5], 6)
    order = np.lexsort((keys[:, 2], keys[:, 1], keys[:, 0], edges[:, 1], edges[:, 0]))
    return edges[order]


def as_edges(src, dst, disp) -> np.ndarray:
    return sort_edges(np.column_stack([src, dst, disp]).astype(np.float64))
