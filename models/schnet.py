"""SchNet: continuous-filter convolutional network (Schütt et al. 2017).

Schütt, K. T. et al. "SchNet: A continuous-filter convolutional neural network
for modeling quantum interactions", NeurIPS 2017, arXiv:1706.08566; with the
cosine cutoff of Schütt et al., J. Chem. Phys. 148, 241722 (2018).

    x^0 = W_emb feat                                  (type embedding of the one-hot input)
    rbf_k(d) = exp(-gamma (d - mu_k)^2), mu_k = 0, 0.1, ... cutoff (Å)
    filter_ij = ssp(W_2 ssp(W_1 rbf(d_ij))) * f_cut(d_ij) * w_ij
    v_i = sum_j (W_in x_j) * filter_ij               (continuous-filter convolution)
    x_i <- x_i + W_b ssp(W_a v_i)                    (interaction block with residual)
    out = W_o2 ssp(W_o1 x)                           (atom-wise output network)

The convolution is the one of DGL's ``CFConv``, written here as one fused
``update_all(u_mul_e, sum)`` so that the filter can carry the smooth cutoff and
the edge weight w_ij (``CFConv`` applies its edge network internally and takes
neither). Depends on distances only, hence rotation invariant.
"""

from __future__ import annotations

from dataclasses import dataclass

import dgl
import dgl.function as fn
import torch
from torch import nn

from models.common import GaussianRBF, ShiftedSoftplus, cosine_cutoff, edge_geometry, edge_weights
from models.models import ModelConfig, register_model


@dataclass
class SchNetConfig(ModelConfig):
    """Attributes (paper defaults):
    hidden_dim: atom-wise feature width (64).
    num_filters: filter width of the continuous-filter convolutions (64).
    num_interactions: number of interaction blocks (3).
    cutoff: radius (Å) of the smooth cutoff and of the last RBF centre; match the graph's cutoff.
    rbf_gap: spacing of the Gaussian centres (0.1 Å).
    rbf_gamma: Gaussian width parameter (10 Å^-2).
    """

    hidden_dim: int = 64
    num_filters: int = 64
    num_interactions: int = 3
    cutoff: float = 5.0
    rbf_gap: float = 0.1
    rbf_gamma: float = 10.0


class Interaction(nn.Module):
    """SchNet interaction block: in2f, cfconv with filter network, f2out, residual."""

    def __init__(self, dim: int, num_filters: int, num_rbf: int):
        super().__init__()
        self.filter_net = nn.Sequential(
            nn.Linear(num_rbf, num_filters),
            ShiftedSoftplus(),
            nn.Linear(num_filters, num_filters),
            ShiftedSoftplus(),
        )
        self.in2f = nn.Linear(dim, num_filters, bias=False)
        self.f2out = nn.Sequential(nn.Linear(num_filters, dim), ShiftedSoftplus(), nn.Linear(dim, dim))

    def forward(
        self, graph: dgl.DGLGraph, x: torch.Tensor, rbf: torch.Tensor, envelope: torch.Tensor
    ) -> torch.Tensor:
        with graph.local_scope():
            graph.srcdata["h"] = self.in2f(x)
            graph.edata["w"] = self.filter_net(rbf) * envelope
            graph.update_all(fn.u_mul_e("h", "w", "m"), fn.sum("m", "v"))
            v = graph.dstdata["v"]
        return x + self.f2out(v)


@register_model("schnet", SchNetConfig)
class SchNet(nn.Module):
    invariance = "so3"

    def __init__(self, config: SchNetConfig):
        super().__init__()
        self.cutoff = config.cutoff
        self.rbf = GaussianRBF(config.cutoff, config.rbf_gap, config.rbf_gamma)
        self.embedding = nn.Linear(config.in_dim, config.hidden_dim)
        self.interactions = nn.ModuleList(
            Interaction(config.hidden_dim, config.num_filters, self.rbf.num_basis)
            for _ in range(config.num_interactions)
        )
        self.output = nn.Sequential(
            nn.Linear(config.hidden_dim, config.hidden_dim // 2),
            ShiftedSoftplus(),
            nn.Linear(config.hidden_dim // 2, config.out_dim),
        )

    def forward(
        self, graph: dgl.DGLGraph, feat: torch.Tensor, eweight: torch.Tensor | None = None
    ) -> torch.Tensor:
        _, dist = edge_geometry(graph, feat.dtype)
        rbf = self.rbf(dist)
        # The cutoff and the edge weight multiply every filter, in every block.
        envelope = cosine_cutoff(dist, self.cutoff) * edge_weights(graph, eweight, feat.dtype)
        x = self.embedding(feat)
        for block in self.interactions:
            x = block(graph, x, rbf, envelope)
        return self.output(x)
