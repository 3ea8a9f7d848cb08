"""Rotation augmentation of edge displacements for models that are not rotation invariant.

``cubic``: the 48 symmetries of the cube (axis permutations and reflections), the
augmentation of Bapst et al., Nat. Phys. 16, 448 (2020). ``rotation``: rotations
drawn uniformly from SO(3) (Haar measure, via scipy). One transform per graph,
applied to ``disp``; distances are unchanged, so ``dist`` is left as is.
"""

from __future__ import annotations

import itertools

import dgl
import numpy as np
import torch
from scipy.spatial.transform import Rotation

from glassgnn import schema


def cubic_group() -> torch.Tensor:
    """The 48 orthogonal matrices mapping the cube onto itself, [48, 3, 3] float64."""
    mats = []
    for perm in itertools.permutations(range(3)):
        for signs in itertools.product((1.0, -1.0), repeat=3):
            mat = np.zeros((3, 3))
            mat[np.arange(3), perm] = signs
            mats.append(mat)
    return torch.tensor(np.array(mats))


_CUBIC = cubic_group()


def random_transforms(kind: str, count: int, generator: torch.Generator) -> torch.Tensor:
    """``count`` random [3, 3] matrices of kind ``cubic`` or ``rotation``, [count, 3, 3] float64."""
    if kind == "cubic":
        return _CUBIC[torch.randint(len(_CUBIC), (count,), generator=generator)]
    if kind == "rotation":
        seed = int(torch.randint(2**31 - 1, (1,), generator=generator))
        return torch.from_numpy(Rotation.random(count, random_state=seed).as_matrix().reshape(count, 3, 3))
    raise ValueError(f"unknown augmentation {kind!r}; known: cubic, rotation")


def augment_graph(graph: dgl.DGLGraph, kind: str, generator: torch.Generator) -> dgl.DGLGraph:
    """Rotate ``disp`` of every graph in a batch by its own random transform (in place, returns graph).

    The batched graph owns its edge tensors, so the stored dataset graphs are not touched.
    """
    if kind == "none":
        return graph
    counts = graph.batch_num_edges()
    mats = random_transforms(kind, len(counts), generator).to(graph.device, torch.float32)
    per_edge = torch.repeat_interleave(mats, counts.to(graph.device), dim=0)  # [n_edges, 3, 3]
    disp = graph.edata[schema.DISP]
    graph.edata[schema.DISP] = torch.einsum("eij,ej->ei", per_edge, disp)
    return graph
