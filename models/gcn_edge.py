"""GCN with edge features: the "GCN with edge features" baseline of SymGNN (Li et al., ICML 2024).

Li, H. et al. "Predicting and Interpreting Energy Barriers of Metallic Glasses
with Graph Neural Networks", ICML 2024 (repository haoyuli02/SymGNN, ``GCN_Edge``).

Node states h and edge states e (encoded from the displacement vector) are
updated together, with residuals, in every layer:

    m_ij = ReLU(W_e [h_src, e_ij, h_dst] + b)          (new edge message)
    h_i' = h_i + ReLU(W_n [h_i, mean_j w_ij m_ij] + b)
    e_ij' = e_ij + m_ij

where w_ij is ``eweight``. The concatenation is split by block,
W_e [a, b, c] = W_a a + W_b b + W_c c, so the node-side products are computed
once per node and gathered by a fused DGL ``u_add_v`` (same function, fewer
operations). Because it reads the raw displacement vector, the model is not
rotation invariant (``invariance = "none"``).
"""

from __future__ import annotations

from dataclasses import dataclass

import dgl
import dgl.function as fn
import torch
from torch import nn

from models.common import edge_geometry, edge_weights, mean_in_degree_norm, mlp
from models.models import ModelConfig, register_model


@dataclass
class GCNEdgeConfig(ModelConfig):
    """Attributes:
    hidden_dim: width of node and edge states.
    num_layers: number of message-passing layers.
    dropout: dropout on node and edge states after each layer.
    """

    hidden_dim: int = 32
    num_layers: int = 4
    dropout: float = 0.0


class EdgeConcatLayer(nn.Module):
    """One node-and-edge update of :class:`GCNEdge`."""

    def __init__(self, dim: int):
        super().__init__()
        self.src = nn.Linear(dim, dim, bias=False)
        self.dst = nn.Linear(dim, dim, bias=False)
        self.edge = nn.Linear(dim, dim)
        self.node = nn.Sequential(nn.Linear(2 * dim, dim), nn.ReLU())

    def forward(
        self, graph: dgl.DGLGraph, h: torch.Tensor, e: torch.Tensor, weight: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """h [n_atoms, dim], e [n_edges, dim], weight [n_edges, 1] or None (all ones) -> new h and e."""
        with graph.local_scope():
            graph.srcdata["s"] = self.src(h)
            graph.dstdata["d"] = self.dst(h)
            graph.apply_edges(fn.u_add_v("s", "d", "sd"))
            # In place: one [n_edges, dim] tensor for the pre-activation and m, not three.
            m = self.edge(e).add_(graph.edata.pop("sd")).relu_()
            weighted = m if weight is None else m * weight
            agg = dgl.ops.copy_e_sum(graph, weighted) * mean_in_degree_norm(graph, h.dtype)
        return h + self.node(torch.cat([h, agg], dim=1)), e + m


@register_model("gcn_edge", GCNEdgeConfig)
class GCNEdge(nn.Module):
    invariance = "none"

    def __init__(self, config: GCNEdgeConfig):
        super().__init__()
        d = config.hidden_dim
        self.node_encoder = mlp([config.in_dim, d, d], last_activation=True)
        self.edge_encoder = mlp([3, d, d], last_activation=True)
        self.layers = nn.ModuleList(EdgeConcatLayer(d) for _ in range(config.num_layers))
        self.dropout = nn.Dropout(config.dropout)
        self.decoder = mlp([d, d, d, config.out_dim])

    def forward(
        self, graph: dgl.DGLGraph, feat: torch.Tensor, eweight: torch.Tensor | None = None
    ) -> torch.Tensor:
        disp, _ = edge_geometry(graph, feat.dtype)
        weight = None if eweight is None else edge_weights(graph, eweight, feat.dtype)
        h = self.node_encoder(feat)
        e = self.edge_encoder(disp)
        for layer in self.layers:
            h, e = layer(graph, h, e, weight)
            h, e = self.dropout(h), self.dropout(e)
        return self.decoder(h)
