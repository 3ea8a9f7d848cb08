"""MPNN: message passing neural network with an edge network and GRU update (Gilmer et al. 2017).

Gilmer, J. et al. "Neural Message Passing for Quantum Chemistry", ICML 2017,
arXiv:1704.01212 (the "edge network" message function with GRU update).

    h^0 = ReLU(W feat)
    A(e_ij) = (W_2 z_ij + b_2) s_ij,  z_ij = ReLU(W_1 rbf(d_ij) + b_1)   (a d x d matrix per edge)
    m_i^{t+1} = sum_j A(e_ij) h_j^t + b                                (DGL ``NNConv``, sum)
    h_i^{t+1} = GRU(ReLU(m_i^{t+1}), h_i^t)
    out = MLP(h^T)

with s_ij = f_cut(d_ij) w_ij (cosine cutoff times edge weight). As in the
paper, the message function is tied across the T steps. Edge features are a
Gaussian radial basis of the distance (the paper's molecules also had bond
types; glasses have none), so the model is rotation invariant. The
per-particle readout replaces the paper's set2set graph readout.

Two ways to compute the same messages (``factorised``):

- ``false``: DGL's ``NNConv`` with the matrices A(e_ij) built once per call.
  It stores an [n_edges, d, d] tensor (1 GiB for an 8000-atom CuZr graph at
  d = 32), plus its gradient, which is what limits d.
- ``true`` (default): A is linear in z, so
  sum_j A(e_ij) h_j = sum_k W_2[k] (sum_j s_ij z_ijk h_j) + b_2 (sum_j s_ij h_j).
  The inner sums are one fused DGL ``u_mul_e``/``sum`` into an [n_atoms, k+1, d]
  tensor, then one matrix product with W_2: no per-edge matrix is ever formed,
  in the forward or (see :class:`NeighbourOuterSum`) the backward pass. Same
  parameters, outputs and gradients (tested equal to the ``NNConv`` path).
"""

from __future__ import annotations

from dataclasses import dataclass

import dgl
import torch
from dgl.nn import NNConv
from torch import nn

from models.common import RadialBasisConfig, cosine_cutoff, edge_geometry, edge_weights
from models.contract import GlassModel, Invariance, OutputLevel
from models.models import ModelConfig, register_model


@dataclass
class MPNNConfig(RadialBasisConfig, ModelConfig):
    """Attributes:
    hidden_dim: node state width d.
    edge_hidden_dim: hidden width k of the edge network.
    num_steps: message-passing steps T.
    cutoff, rbf_gap, rbf_gamma: the radial basis (:class:`models.common.RadialBasisConfig`).
    factorised: compute messages without per-edge matrices (same result, far less memory).
    """

    hidden_dim: int = 64
    edge_hidden_dim: int = 128
    num_steps: int = 3
    factorised: bool = True


class NeighbourOuterSum(torch.autograd.Function):
    """t_i = sum_j z_ij (outer) h_j as [n_atoms, k, d] from h [n_atoms, d] and z [n_edges, k].

    Hand-written backward because DGL's own one, for a broadcast ``u_mul_e``,
    forms the per-edge products [n_edges, k, d] (8 GiB for one CuZr graph at
    k = 129, d = 64) before reducing them. Here the edge gradient is a broadcast
    dot product (DGL ``u_dot_v``) and the node gradient a fused sum over the
    reversed graph, both without per-edge blocks.
    """

    @staticmethod
    def forward(ctx, graph: dgl.DGLGraph, h: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        ctx.graph = graph
        ctx.save_for_backward(h, z)
        return dgl.ops.u_mul_e_sum(graph, h.unsqueeze(1), z.unsqueeze(2))

    @staticmethod
    def backward(ctx, grad_t: torch.Tensor) -> tuple[None, torch.Tensor | None, torch.Tensor | None]:
        h, z = ctx.saved_tensors
        graph = ctx.graph
        grad_h = grad_z = None
        if ctx.needs_input_grad[1]:
            # dL/dh_j = sum over edges j -> i of sum_k z_ijk dL/dt_i[k]; dgl.reverse keeps edge ids.
            reverse = dgl.reverse(graph, copy_ndata=False, copy_edata=False)
            grad_h = dgl.ops.u_mul_e_sum(reverse, grad_t, z.unsqueeze(2)).sum(1)
        if ctx.needs_input_grad[2]:
            grad_z = dgl.ops.u_dot_v(graph, h.unsqueeze(1), grad_t).squeeze(2)
        return None, grad_h, grad_z


@register_model("mpnn", MPNNConfig)
class MPNN(GlassModel):
    invariance = Invariance.SO3
    output_level = OutputLevel.NODE
    decoder_prefixes = ("readout",)  # the MLP after the last GRU step

    def __init__(self, config: MPNNConfig):
        super().__init__()
        d, k = config.hidden_dim, config.edge_hidden_dim
        self.hidden_dim = d
        self.cutoff = config.cutoff
        self.num_steps = config.num_steps
        self.factorised = config.factorised
        self.rbf = config.radial_basis()
        self.embedding = nn.Sequential(nn.Linear(config.in_dim, d), nn.ReLU())
        # Edge network z -> A: first layer (with ReLU), then the linear map to d*d entries.
        self.edge_hidden = nn.Sequential(nn.Linear(self.rbf.num_basis, k), nn.ReLU())
        self.edge_out = nn.Linear(k, d * d)
        # NNConv's edge input is the finished matrix; it supplies the sum and the bias b.
        self.conv = NNConv(d, d, edge_func=nn.Identity(), aggregator_type="sum")
        self.gru = nn.GRUCell(d, d)
        self.readout = nn.Sequential(nn.Linear(d, d), nn.ReLU(), nn.Linear(d, config.out_dim))

    @property
    def num_message_passing(self) -> int:
        return self.num_steps

    def _factorised_messages(self, graph: dgl.DGLGraph, h: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """sum_j A(e_ij) h_j + b from z [n_edges, k + 1] (scaled, with a column of s_ij for b_2)."""
        d = self.hidden_dim
        t = NeighbourOuterSum.apply(graph, h, z)  # [n_atoms, k + 1, d]
        # W_2 and b_2 as [(k + 1) * d_in, d_out]: NNConv reads each edge's d*d row as [d_in, d_out].
        weight = torch.cat([self.edge_out.weight.T, self.edge_out.bias.unsqueeze(0)]).reshape(-1, d)
        return t.flatten(1) @ weight + self.conv.bias

    def forward(
        self, graph: dgl.DGLGraph, feat: torch.Tensor, eweight: torch.Tensor | None = None
    ) -> torch.Tensor:
        _, dist = edge_geometry(graph, feat.dtype)
        scale = cosine_cutoff(dist, self.cutoff) * edge_weights(graph, eweight, feat.dtype)
        z = self.edge_hidden(self.rbf(dist))
        if self.factorised:
            edge_input = torch.cat([z, torch.ones_like(scale)], dim=1) * scale
        else:
            edge_input = self.edge_out(z) * scale  # the matrices A(e_ij), flattened
        h = self.embedding(feat)
        for _ in range(self.num_steps):
            if self.factorised:
                m = self._factorised_messages(graph, h, edge_input)
            else:
                m = self.conv(graph, h, edge_input)
            h = self.gru(torch.relu(m), h)
        return self.readout(h)
