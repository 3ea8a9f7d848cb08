"""MGCN: multilevel graph convolutional network (Lu et al. 2019).

Lu, C. et al. "Molecular Property Prediction: A Multilevel Quantum
Interactions Modeling Perspective", AAAI 2019, arXiv:1906.11081. The layer
structure follows DGL-LifeSci's ``MGCNGNN``, the implementation the SymGNN
paper benchmarked.

    h^0 = W_emb feat;  e^0_ij = W_p softplus(U feat_i + U feat_j)   (embedding of the unordered pair)
    level l: g_i = W_in h_i
             v_i = sum_j s_ij [ g_j * D_l(rbf(d_ij)) + W_e e_ij ]    (vertex-edge convolution)
             h_i <- h_i + MLP_l(v_i)
             e_ij <- softplus(W_u W_e e_ij)                             (edge-state update)
    out = MLP([h^0, h^1, ..., h^L])                                     (levels concatenated)

with s_ij = f_cut(d_ij) w_ij: the edge weight, times a cosine cutoff that makes
the output continuous when a neighbour crosses the cutoff (an addition to the
paper). Both sums are DGL fused kernels. Distances only: rotation invariant.
"""

from __future__ import annotations

from dataclasses import dataclass

import dgl
import dgl.function as fn
import torch
from torch import nn

from models.common import RadialBasisConfig, cosine_cutoff, edge_geometry, edge_weights
from models.contract import Ability, GlassModel, Invariance, OutputLevel
from models.models import ModelConfig, register_model


def _softplus() -> nn.Module:
    # The softplus of DGL-LifeSci's MGCN.
    return nn.Softplus(beta=0.5, threshold=14)


@dataclass
class MGCNConfig(RadialBasisConfig, ModelConfig):
    """Attributes:
    hidden_dim: width of node and edge states.
    num_layers: number of interaction levels L.
    readout_dim: hidden width of the readout MLP.
    cutoff, rbf_gap, rbf_gamma: the radial basis (:class:`models.common.RadialBasisConfig`).
    """

    hidden_dim: int = 64
    num_layers: int = 3
    readout_dim: int = 64


class MultiLevelInteraction(nn.Module):
    """One MGCN level: vertex-edge convolution, node residual, edge-state update."""

    def __init__(self, dim: int, num_rbf: int, update_edges: bool = True):
        super().__init__()
        self.project_in = nn.Linear(dim, dim)
        self.dist_net = nn.Sequential(nn.Linear(num_rbf, dim), _softplus(), nn.Linear(dim, dim))
        self.edge_in = nn.Linear(dim, dim)
        self.project_out = nn.Sequential(nn.Linear(dim, dim), _softplus(), nn.Linear(dim, dim))
        # The last level's edge states would never be read: it has no edge update.
        self.edge_update = nn.Sequential(nn.Linear(dim, dim), _softplus()) if update_edges else None

    def forward(
        self, graph: dgl.DGLGraph, h: torch.Tensor, e: torch.Tensor, rbf: torch.Tensor, scale: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        e = self.edge_in(e)
        with graph.local_scope():
            graph.srcdata["g"] = self.project_in(h)
            graph.edata["d"] = self.dist_net(rbf) * scale
            graph.update_all(fn.u_mul_e("g", "d", "m"), fn.sum("m", "v"))
            v = graph.dstdata["v"] + dgl.ops.copy_e_sum(graph, e * scale)
        if self.edge_update is not None:
            e = self.edge_update(e)
        return h + self.project_out(v), e


@register_model("mgcn", MGCNConfig)
class MGCN(GlassModel):
    invariance = Invariance.SO3
    output_level = OutputLevel.NODE
    decoder_prefixes = ("readout",)  # the per-particle MLP on the concatenated levels
    abilities = frozenset({Ability.NODE_EMBEDDING})

    def __init__(self, config: MGCNConfig):
        super().__init__()
        d = config.hidden_dim
        self.cutoff = config.cutoff
        self.rbf = config.radial_basis()
        self.node_embedding = nn.Linear(config.in_dim, d)
        self.pair_in = nn.Linear(config.in_dim, d)
        self.pair_out = nn.Sequential(_softplus(), nn.Linear(d, d))
        self.levels = nn.ModuleList(
            MultiLevelInteraction(d, self.rbf.num_basis, update_edges=i < config.num_layers - 1)
            for i in range(config.num_layers)
        )
        self.readout = nn.Sequential(
            nn.Linear(d * (config.num_layers + 1), config.readout_dim),
            _softplus(),
            nn.Linear(config.readout_dim, config.out_dim),
        )

    @property
    def num_message_passing(self) -> int:
        return len(self.levels)

    def forward(
        self, graph: dgl.DGLGraph, feat: torch.Tensor, eweight: torch.Tensor | None = None
    ) -> torch.Tensor:
        return self.readout(self.embed_nodes(graph, feat, eweight))

    def embed_nodes(
        self, graph: dgl.DGLGraph, feat: torch.Tensor, eweight: torch.Tensor | None = None
    ) -> torch.Tensor:
        """[n_atoms, hidden_dim x (L + 1)]: the levels [h^0, ..., h^L] concatenated (the readout's input)."""
        _, dist = edge_geometry(graph, feat.dtype)
        rbf = self.rbf(dist)
        scale = cosine_cutoff(dist, self.cutoff) * edge_weights(graph, eweight, feat.dtype)
        h = self.node_embedding(feat)
        with graph.local_scope():
            graph.ndata["p"] = self.pair_in(feat)
            graph.apply_edges(fn.u_add_v("p", "p", "pair"))
            e = self.pair_out(graph.edata["pair"])
        levels = [h]
        for level in self.levels:
            h, e = level(graph, h, e, rbf, scale)
            levels.append(h)
        return torch.cat(levels, dim=1)
