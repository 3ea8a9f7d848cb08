"""SE(3)-equivariant tensor-product network on e3nn, for per-particle invariants.

In the spirit of Pezzicoli, Charpiat & Landes, "SE(3)-equivariant graph neural
networks for learning glassy liquids representations" (arXiv:2211.03226,
2022), with the convolution of NequIP (Batzner et al., Nat. Commun. 13, 2453,
2022) and e3nn (Geiger & Smidt, arXiv:2207.09453).

    h^0 = W feat                                   (mul x 0e: type embedding)
    Y_ij = Y^{0..l_max}(x_ij / |x_ij|)             (spherical harmonics of edge directions)
    R_ij = MLP(B(|x_ij|)) * w_ij                   (radial MLP on a smooth finite basis that
                                                    vanishes at the cutoff, times the edge weight)
    layer: v_i = (1 / sqrt(n_avg)) sum_j TP(h_j, Y_ij; R_ij)     ("uvu" tensor product)
           h_i <- Gate(Linear(v_i) + Linear(h_i))                 (gated nonlinearity, self-connection)
    out = Linear(h)[0e]                            (invariant l = 0 output)

Hidden features are ``mul`` copies of every l <= l_max with parity (-1)^l, the
irreps the spherical harmonics generate. Each layer is equivariant under
rotations and inversion, so the scalar output is invariant and
:meth:`SE3Net.equivariant_features` returns the per-particle equivariant
features (irreps :attr:`SE3Net.irreps_hidden`, e3nn layout).
"""

from __future__ import annotations

from dataclasses import dataclass

import dgl
import torch
from e3nn import o3
from e3nn.math import soft_one_hot_linspace
from e3nn.nn import FullyConnectedNet, Gate
from torch import nn

from models.common import edge_geometry, edge_weights
from models.contract import GlassModel, Invariance, OutputLevel
from models.models import ModelConfig, register_model


@dataclass
class SE3Config(ModelConfig):
    """Attributes:
    mul: multiplicity of every irrep l = 0..l_max in the hidden features.
    l_max: largest degree of the spherical harmonics and hidden features.
    num_layers: number of convolution layers.
    num_basis: size of the smooth radial basis.
    radial_hidden: hidden width of the radial MLP.
    cutoff: radius (Å) where the radial basis reaches zero; match the graph's cutoff.
    avg_num_neighbors: normalisation of the neighbour sum (about 32 for CuZr at 5 Å).
    """

    mul: int = 16
    l_max: int = 2
    num_layers: int = 3
    num_basis: int = 8
    radial_hidden: int = 32
    cutoff: float = 5.0
    avg_num_neighbors: float = 32.0


class Convolution(nn.Module):
    """Equivariant convolution with gated nonlinearity (NequIP-style, "uvu" paths)."""

    def __init__(self, irreps_in: o3.Irreps, irreps_sh: o3.Irreps, irreps_out: o3.Irreps, cfg: SE3Config):
        super().__init__()
        scalars = o3.Irreps([(mul, ir) for mul, ir in irreps_out if ir.l == 0])
        gated = o3.Irreps([(mul, ir) for mul, ir in irreps_out if ir.l > 0])
        gates = o3.Irreps(f"{gated.num_irreps}x0e")
        self.gate = Gate(scalars, [nn.functional.silu], gates, [torch.sigmoid], gated)
        irreps_gate_in = self.gate.irreps_in

        mid, instructions = [], []
        for i, (mul, ir_in) in enumerate(irreps_in):
            for j, (_, ir_sh) in enumerate(irreps_sh):
                for ir in ir_in * ir_sh:
                    if ir in irreps_gate_in:
                        instructions.append((i, j, len(mid), "uvu", True))
                        mid.append((mul, ir))
        irreps_mid = o3.Irreps(mid)
        irreps_mid_sorted, perm, _ = irreps_mid.sort()
        instructions = [(i, j, perm[k], mode, train) for i, j, k, mode, train in instructions]
        self.tp = o3.TensorProduct(
            irreps_in,
            irreps_sh,
            irreps_mid_sorted,
            instructions,
            shared_weights=False,
            internal_weights=False,
        )
        self.radial = FullyConnectedNet(
            [cfg.num_basis, cfg.radial_hidden, cfg.radial_hidden, self.tp.weight_numel], nn.functional.silu
        )
        self.linear_in = o3.Linear(irreps_in, irreps_in)
        self.linear_out = o3.Linear(irreps_mid_sorted, irreps_gate_in)
        self.self_connection = o3.Linear(irreps_in, irreps_gate_in)
        self.norm = cfg.avg_num_neighbors**-0.5

    def forward(
        self,
        graph: dgl.DGLGraph,
        h: torch.Tensor,
        sh: torch.Tensor,
        basis: torch.Tensor,
        weight: torch.Tensor,
    ) -> torch.Tensor:
        src, _ = graph.edges()
        messages = self.tp(self.linear_in(h)[src], sh, self.radial(basis) * weight)
        # Linear maps commute with the neighbour sum: mix channels after aggregating (fewer rows).
        v = dgl.ops.copy_e_sum(graph, messages) * self.norm
        return self.gate(self.linear_out(v) + self.self_connection(h))


@register_model("se3", SE3Config)
class SE3Net(GlassModel):
    invariance = Invariance.SO3
    output_level = OutputLevel.NODE
    decoder_prefixes = ("output",)  # the linear map of the last layer's features to the invariant output

    def __init__(self, config: SE3Config):
        super().__init__()
        self.config = config
        self.irreps_sh = o3.Irreps.spherical_harmonics(config.l_max)
        self.irreps_hidden = o3.Irreps([(config.mul, (l, (-1) ** l)) for l in range(config.l_max + 1)])
        irreps_embed = o3.Irreps(f"{config.mul}x0e")
        self.embedding = nn.Linear(config.in_dim, config.mul)
        self.layers = nn.ModuleList(
            Convolution(
                irreps_embed if i == 0 else self.irreps_hidden, self.irreps_sh, self.irreps_hidden, config
            )
            for i in range(config.num_layers)
        )
        self.output = o3.Linear(self.irreps_hidden, o3.Irreps(f"{config.out_dim}x0e"))

    @property
    def num_message_passing(self) -> int:
        return len(self.layers)

    def equivariant_features(
        self, graph: dgl.DGLGraph, feat: torch.Tensor, eweight: torch.Tensor | None = None
    ) -> torch.Tensor:
        """[n_atoms, irreps_hidden.dim] per-particle features, equivariant under rotations."""
        disp, dist = edge_geometry(graph, feat.dtype)
        # Self-pairs (zero displacement) have no direction: give them zero harmonics, and keep
        # the normalisation's gradient finite by normalising a dummy vector there.
        moving = dist > 0
        direction = torch.where(moving, disp, torch.ones_like(disp))
        sh = o3.spherical_harmonics(self.irreps_sh, direction, normalize=True, normalization="component")
        sh = sh * moving
        n = self.config.num_basis
        basis = soft_one_hot_linspace(
            dist.squeeze(1), 0.0, self.config.cutoff, n, basis="smooth_finite", cutoff=True
        ) * (n**0.5)
        weight = edge_weights(graph, eweight, feat.dtype)
        h = self.embedding(feat)
        for layer in self.layers:
            h = layer(graph, h, sh, basis, weight)
        return h

    def forward(
        self, graph: dgl.DGLGraph, feat: torch.Tensor, eweight: torch.Tensor | None = None
    ) -> torch.Tensor:
        return self.output(self.equivariant_features(graph, feat, eweight))
