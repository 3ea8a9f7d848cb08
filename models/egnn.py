"""EGNN: E(n)-equivariant graph neural network (Satorras, Hoogeboom & Welling 2021).

Satorras, V. G., Hoogeboom, E. & Welling, M. "E(n) Equivariant Graph Neural
Networks", ICML 2021, arXiv:2102.09844. Per layer (Eqs. 3-6), with x_ij the
displacement from sender j to receiver i and w_ij the edge weight:

    m_ij = phi_e(h_i, h_j, |x_ij|^2)
    x_ij <- x_ij + dx_i - dx_j,   dx_i = (1/deg_i) sum_j w_ij (x_ij / |x_ij|) phi_x(m_ij)
    h_i  <- h_i + phi_h(h_i, sum_j w_ij m_ij)

The MLP shapes are those of DGL's ``EGNNConv`` (which also normalises x_ij,
for stability), but DGL's forward takes absolute coordinates and subtracts
them, which is wrong under periodic boundaries, and has no edge weight; so this
layer updates the per-edge minimum-image displacements directly (the same
update, since every image moves with its atom) and is written with fused DGL
kernels. The output reads only the invariant h: it is invariant under
rotations, reflections and translations, and the coordinate updates are kept
because they change which invariant distances later layers see.
"""

from __future__ import annotations

from dataclasses import dataclass

import dgl
import dgl.function as fn
import torch
from torch import nn

from models.common import edge_geometry, edge_weights, mean_in_degree_norm, mlp
from models.contract import GlassModel, Invariance, OutputLevel
from models.models import ModelConfig, register_model


@dataclass
class EGNNConfig(ModelConfig):
    """Attributes:
    hidden_dim: width of h and of the messages.
    num_layers: number of EGNN layers.
    update_coords: update the displacements between layers (Eq. 4); off gives an invariant GNN.
    """

    hidden_dim: int = 64
    num_layers: int = 4
    update_coords: bool = True


class EGNNLayer(nn.Module):
    """One E(n)-equivariant layer on per-edge displacements; see the module docstring."""

    def __init__(self, dim: int, update_coords: bool):
        super().__init__()
        # phi_e's first layer, W [h_i, h_j, r] = W_i h_i + W_j h_j + w_r r, split by block.
        self.edge_dst = nn.Linear(dim, dim)
        self.edge_src = nn.Linear(dim, dim, bias=False)
        self.edge_radial = nn.Linear(1, dim, bias=False)
        self.edge_rest = nn.Sequential(nn.SiLU(), nn.Linear(dim, dim), nn.SiLU())
        self.node_mlp = mlp([2 * dim, dim, dim], activation=nn.SiLU)
        self.coord_mlp = (
            nn.Sequential(nn.Linear(dim, dim), nn.SiLU(), nn.Linear(dim, 1, bias=False))
            if update_coords
            else None
        )

    def forward(
        self, graph: dgl.DGLGraph, h: torch.Tensor, disp: torch.Tensor, weight: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        radial = disp.square().sum(dim=1, keepdim=True)
        with graph.local_scope():
            graph.srcdata["s"] = self.edge_src(h)
            graph.dstdata["d"] = self.edge_dst(h)
            graph.apply_edges(fn.u_add_v("s", "d", "sd"))
            m = self.edge_rest(graph.edata["sd"] + self.edge_radial(radial))
            agg = dgl.ops.copy_e_sum(graph, m * weight)
            if self.coord_mlp is not None:
                # The epsilon keeps gradients finite on self-pairs (zero displacement).
                unit = disp / torch.sqrt(radial + 1e-12)
                shift = dgl.ops.copy_e_sum(graph, unit * self.coord_mlp(m) * weight)
                graph.ndata["dx"] = shift * mean_in_degree_norm(graph, h.dtype)
                graph.apply_edges(fn.v_sub_u("dx", "dx", "ddx"))
                disp = disp + graph.edata["ddx"]
        return h + self.node_mlp(torch.cat([h, agg], dim=1)), disp


@register_model("egnn", EGNNConfig)
class EGNN(GlassModel):
    invariance = Invariance.SO3
    output_level = OutputLevel.NODE
    decoder_prefixes = ("decoder",)  # the MLP after the last EGNN layer

    def __init__(self, config: EGNNConfig):
        super().__init__()
        d = config.hidden_dim
        self.embedding = nn.Linear(config.in_dim, d)
        # The last layer's displacements would never be read: it has no coordinate update.
        self.layers = nn.ModuleList(
            EGNNLayer(d, config.update_coords and i < config.num_layers - 1) for i in range(config.num_layers)
        )
        self.decoder = mlp([d, d, config.out_dim], activation=nn.SiLU)

    @property
    def num_message_passing(self) -> int:
        return len(self.layers)

    def forward(
        self, graph: dgl.DGLGraph, feat: torch.Tensor, eweight: torch.Tensor | None = None
    ) -> torch.Tensor:
        disp, _ = edge_geometry(graph, feat.dtype)
        weight = edge_weights(graph, eweight, feat.dtype)
        h = self.embedding(feat)
        for layer in self.layers:
            h, disp = layer(graph, h, disp, weight)
        return self.decoder(h)
