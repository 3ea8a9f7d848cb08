"""Turn one periodic snapshot into a DGL graph that follows :mod:`glassgnn.schema`."""

from __future__ import annotations

import dgl
import numpy as np
import torch

from glassgnn import schema
from glassgnn.neighbors import cell_matrix, radius_pairs


def build_graph(
    positions: np.ndarray,
    types: np.ndarray,
    cell: np.ndarray,
    cutoff: float,
    targets: np.ndarray | None = None,
    mask: np.ndarray | None = None,
    self_loops: bool = False,
) -> dgl.DGLGraph:
    """Radius graph of a periodic configuration.

    Args:
        positions: [n_atoms, 3] positions (length unit of the input).
        types: [n_atoms] integer types already mapped to 0..T-1.
        cell: (3,) box lengths or (3, 3) cell vectors as rows.
        cutoff: neighbour distance (same unit as ``positions``).
        targets: [n_atoms] or [n_atoms, k] per-particle targets; zeros if absent.
        mask: [n_atoms] bool, particles in loss and metrics; all if absent.
        self_loops: add (i, i) edges with zero displacement.

    Returns:
        A graph with the node and edge data of :mod:`glassgnn.schema`.
    """
    positions = np.asarray(positions, dtype=np.float64)
    n_atoms = len(positions)
    src, dst, disp = radius_pairs(positions, cell, cutoff, self_loops=self_loops)
    graph = dgl.graph((torch.from_numpy(src), torch.from_numpy(dst)), num_nodes=n_atoms)
    box = np.diag(cell_matrix(cell))
    graph.ndata[schema.POS] = torch.from_numpy(np.mod(positions, box)).float()
    graph.ndata[schema.TYPE] = torch.as_tensor(np.asarray(types), dtype=torch.int64)
    if targets is None:
        targets = np.zeros((n_atoms, 1))
    targets = np.asarray(targets, dtype=np.float32).reshape(n_atoms, -1)
    graph.ndata[schema.TARGET] = torch.from_numpy(targets)
    if mask is None:
        mask = np.ones(n_atoms, dtype=bool)
    graph.ndata[schema.MASK] = torch.as_tensor(np.asarray(mask), dtype=torch.bool)
    disp_t = torch.from_numpy(disp).float()
    graph.edata[schema.DISP] = disp_t
    graph.edata[schema.DIST] = disp_t.norm(dim=1, keepdim=True)
    return graph
