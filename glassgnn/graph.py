"""Turn one periodic snapshot into a DGL graph that follows :mod:`glassgnn.schema`."""

from __future__ import annotations

import dgl
import numpy as np
import torch

from glassgnn import schema
from glassgnn.neighbors import knn_pairs, radius_pairs, wrap


def build_graph(
    positions: np.ndarray,
    types: np.ndarray,
    cell: np.ndarray,
    cutoff: float | None,
    targets: np.ndarray | None = None,
    mask: np.ndarray | None = None,
    self_loops: bool = False,
    *,
    knn: int | None = None,
    pair_cutoffs: np.ndarray | None = None,
    extra_fields: dict[str, np.ndarray] | None = None,
) -> dgl.DGLGraph:
    """Radius (or k-nearest-neighbour) graph of a periodic configuration.

    Args:
        positions: [n_atoms, 3] positions relative to the cell origin (length unit of
            the input); wrapped into the cell for ``ndata["pos"]``.
        types: [n_atoms] integer types already mapped to 0..T-1.
        cell: (3,) box lengths or (3, 3) cell vectors as rows (triclinic allowed).
        cutoff: neighbour distance (same unit as ``positions``); with ``knn``, an optional
            upper bound on the neighbour distance.
        targets: [n_atoms] or [n_atoms, k] per-particle targets; one column of zeros if
            absent (pass an [n_atoms, 0] array for a graph without targets).
        mask: [n_atoms] bool, particles in loss and metrics; all if absent.
        self_loops: add (i, i) edges with zero displacement.
        knn: connect each atom to its ``knn`` nearest neighbours instead (edges point
            from the neighbour to the atom).
        pair_cutoffs: [T, T] cutoff per pair of type indices, replacing ``cutoff``.
        extra_fields: name -> [n_atoms] or [n_atoms, m] per-atom values, stored as
            ``ndata["x_<name>"]`` float32.

    Returns:
        A graph with the node and edge data of :mod:`glassgnn.schema`; ``disp`` is
        float32 r_dst - r_src (minimum image) and ``dist`` its norm, [n_edges, 1].
    """
    positions = np.asarray(positions, dtype=np.float64)
    types = np.asarray(types, dtype=np.int64)
    n_atoms = len(positions)
    if knn is not None:
        src, dst, disp = knn_pairs(positions, cell, knn, self_loops, max_cutoff=cutoff, dtype=np.float32)
    else:
        src, dst, disp = radius_pairs(
            positions, cell, cutoff, self_loops, types=types, pair_cutoffs=pair_cutoffs, dtype=np.float32
        )
    graph = dgl.graph((torch.from_numpy(src), torch.from_numpy(dst)), num_nodes=n_atoms)
    del src, dst
    graph.ndata[schema.POS] = torch.from_numpy(wrap(positions, cell)[0]).float()
    graph.ndata[schema.TYPE] = torch.from_numpy(types)
    if targets is None:
        targets = np.zeros((n_atoms, 1))
    targets = np.asarray(targets, dtype=np.float32).reshape(n_atoms, -1)
    graph.ndata[schema.TARGET] = torch.from_numpy(targets)
    if mask is None:
        mask = np.ones(n_atoms, dtype=bool)
    graph.ndata[schema.MASK] = torch.as_tensor(np.asarray(mask), dtype=torch.bool)
    for name, value in (extra_fields or {}).items():
        graph.ndata[schema.EXTRA_PREFIX + name] = torch.from_numpy(np.array(value, dtype=np.float32))
    disp_t = torch.from_numpy(disp)
    graph.edata[schema.DISP] = disp_t
    graph.edata[schema.DIST] = torch.linalg.vector_norm(disp_t, dim=1, keepdim=True)
    return graph
