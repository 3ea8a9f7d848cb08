"""Building blocks shared by several models.

Radial bases and cutoffs take distances in the length unit of the graph (Å for
the CuZr data) and are written for [n_edges, 1] inputs as stored under
``schema.DIST``.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import dgl
import torch
from torch import nn

from glassgnn import schema


def mlp(
    dims: list[int], activation: type[nn.Module] = nn.ReLU, last_activation: bool = False
) -> nn.Sequential:
    """Linear layers of widths ``dims`` with ``activation`` between them (and after the last if asked)."""
    layers: list[nn.Module] = []
    for i, (d_in, d_out) in enumerate(zip(dims[:-1], dims[1:], strict=False)):
        layers.append(nn.Linear(d_in, d_out))
        if i < len(dims) - 2 or last_activation:
            layers.append(activation())
    return nn.Sequential(*layers)


class ShiftedSoftplus(nn.Module):
    """ssp(x) = softplus(x) - log 2, SchNet's activation (Schütt et al. 2017); ssp(0) = 0."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.softplus(x) - math.log(2.0)


class GaussianRBF(nn.Module):
    """Gaussian radial basis exp(-gamma (d - mu_k)^2) on centres 0, gap, 2 gap, ... up to ``cutoff``.

    SchNet's expansion (Schütt et al. 2017: gap 0.1 Å, gamma 10 Å^-2), also used by
    MGCN and our MPNN. Args: cutoff and gap in length units, gamma in 1/length^2.
    """

    def __init__(self, cutoff: float, gap: float = 0.1, gamma: float = 10.0):
        super().__init__()
        centres = torch.arange(0.0, cutoff + 0.5 * gap, gap)
        self.register_buffer("centres", centres, persistent=False)
        self.gamma = gamma

    @property
    def num_basis(self) -> int:
        return len(self.centres)

    def forward(self, dist: torch.Tensor) -> torch.Tensor:
        """[n_edges, 1] distances -> [n_edges, num_basis]."""
        centres = self.centres.to(dist.dtype)
        return torch.exp(-self.gamma * (dist - centres) ** 2)


@dataclass
class RadialBasisConfig:
    """Config mixin of the models that expand distances in :class:`GaussianRBF` (schnet, mpnn, mgcn).

    Attributes:
        cutoff: radius (Å) of the smooth cutoff and of the last RBF centre; match the graph's cutoff.
        rbf_gap: spacing of the Gaussian centres (0.1 Å, SchNet's).
        rbf_gamma: Gaussian width parameter (10 Å^-2, SchNet's).
    """

    cutoff: float = 5.0
    rbf_gap: float = 0.1
    rbf_gamma: float = 10.0

    def radial_basis(self) -> GaussianRBF:
        return GaussianRBF(self.cutoff, self.rbf_gap, self.rbf_gamma)


def cosine_cutoff(dist: torch.Tensor, cutoff: float) -> torch.Tensor:
    """Smooth envelope 0.5 (cos(pi d / cutoff) + 1) for d < cutoff, else 0 (Behler 2011; SchNet 2018).

    Multiplying every message by it makes a model's output continuous when a
    neighbour crosses the cutoff. Shape is kept: [n_edges, 1] -> [n_edges, 1].
    """
    envelope = 0.5 * (torch.cos(dist * (math.pi / cutoff)) + 1.0)
    return envelope * (dist < cutoff).to(dist.dtype)


# Edges per chunk of the fused fast paths: [chunk, 64] float32 blocks of 16 MiB stay in the last-level
# cache, and few chunks keep the per-operation overhead (thread start-up, dispatch) small.
EDGE_CHUNK = 65536


def row_chunks(n: int, size: int | None = None) -> list[slice]:
    """Consecutive row slices of at most ``size`` (default ``EDGE_CHUNK``) rows covering ``range(n)``."""
    size = size or EDGE_CHUNK
    return [slice(lo, min(lo + size, n)) for lo in range(0, n, size)]


def ssp_(x: torch.Tensor) -> torch.Tensor:
    """Shifted softplus of ``x``, the subtraction done in place (for buffers no autograd tracks)."""
    return nn.functional.softplus(x).sub_(math.log(2.0))


def edge_weights(graph: dgl.DGLGraph, eweight: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor:
    """``eweight`` as an [n_edges, 1] column (all ones when None) of ``dtype`` on the graph's device."""
    if eweight is None:
        return torch.ones(graph.num_edges(), 1, dtype=dtype, device=graph.device)
    if eweight.shape != (graph.num_edges(),):
        raise ValueError(f"eweight must have shape ({graph.num_edges()},), got {tuple(eweight.shape)}")
    return eweight.to(dtype).unsqueeze(1)


def edge_geometry(graph: dgl.DGLGraph, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Displacements [n_edges, 3] and distances [n_edges, 1] of ``graph`` cast to ``dtype``."""
    return graph.edata[schema.DISP].to(dtype), graph.edata[schema.DIST].to(dtype)


def cubic_group(dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The 48 orthogonal transforms of the full cubic (octahedral) group O_h as [48, 3, 3].

    They are the signed permutation matrices: 6 axis permutations times 8 sign
    choices, 24 rotations and 24 improper ones. This is the group under which
    Bapst et al. (2020) augment their training data. The identity comes first.
    """
    mats = []
    for perm in itertools.permutations(range(3)):
        for signs in itertools.product((1.0, -1.0), repeat=3):
            mat = torch.zeros(3, 3, dtype=dtype)
            for row, (col, sign) in enumerate(zip(perm, signs, strict=True)):
                mat[row, col] = sign
            mats.append(mat)
    return torch.stack(mats)


def mean_in_degree_norm(graph: dgl.DGLGraph, dtype: torch.dtype) -> torch.Tensor:
    """1 / max(in-degree, 1) per node as [n_nodes, 1]: turns a fused sum into a mean."""
    return 1.0 / graph.in_degrees().clamp(min=1).to(dtype).unsqueeze(1)
