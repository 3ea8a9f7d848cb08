"""CGCNN: the crystal graph convolutional neural network.

Xie & Grossman, "Crystal Graph Convolutional Neural Networks for an Accurate and
Interpretable Prediction of Material Properties", Phys. Rev. Lett. 120, 145301
(2018); layer details follow the authors' released code (github.com/txie-93/cgcnn).

- Node embedding: ``v_i = Linear(feat_i)`` (the paper embeds 92 elemental
  properties; here ``feat`` is the one-hot type plus any extra per-atom fields).
- Edge features: a Gaussian expansion of the distance,
  ``u_ijk = exp(-(d_ij - mu_k)^2 / sigma^2)``, ``mu_k = rbf_min + k * rbf_step``
  up to ``rbf_max``, ``sigma = rbf_width`` (paper: 0 to 8 Å in 0.2 Å steps,
  sigma = 0.2 Å; rescale these for other length units, e.g. Lennard-Jones sigma).
- Gated convolution (paper eq. 5), with ``z_ij = v_i ++ v_j ++ u_ij``, ``i`` the receiver::

      v_i <- softplus(v_i + BN2(sum_j w_ij * sigmoid(f_ij) * softplus(s_ij))),
      (f_ij, s_ij) = BN1(z_ij W + b)

  where ``w_ij`` is ``eweight`` (1 without it). Batch norm and the outer
  softplus are those of the released code, which produced the paper's numbers.
- Head: softplus, Linear(atom_fea_len, h_fea_len), softplus, ``n_h - 1`` more
  hidden layers, Linear(h_fea_len, out_dim); applied per particle (``pooling:
  none``, the default, so CGCNN joins the per-particle zoo) or after pooling the
  convolved features of each graph (``pooling: mean``, as published, or sum,
  max, attention), in which case ``forward`` returns [n_graphs, out_dim].

Only distances enter, so the output is invariant under rotations, translations
and particle relabelling.
"""

from __future__ import annotations

from dataclasses import dataclass

import dgl
import dgl.function as fn
import torch
import torch.nn.functional as F
from torch import nn

from glassgnn import schema
from models.contract import GlassModel, Invariance, OutputLevel
from models.models import ModelConfig, register_model
from models.readout import READOUT_OPS, Readout


@dataclass
class CGCNNConfig(ModelConfig):
    """Attributes (names and defaults of the released code):
    atom_fea_len: width of the particle features in the convolutions.
    n_conv: number of convolution layers.
    h_fea_len: width of the hidden layers of the head.
    n_h: number of hidden layers of the head.
    rbf_min, rbf_max, rbf_step: Gaussian centres from rbf_min to rbf_max in
        steps of rbf_step (length units of the graph; paper: 0, 8, 0.2 Å).
    rbf_width: Gaussian width sigma (paper: 0.2 Å, equal to the step).
    pooling: ``none`` for per-particle outputs, else one of mean, sum, max,
        attention for one output per graph (the paper uses mean).
    """

    atom_fea_len: int = 64
    n_conv: int = 3
    h_fea_len: int = 128
    n_h: int = 1
    rbf_min: float = 0.0
    rbf_max: float = 8.0
    rbf_step: float = 0.2
    rbf_width: float = 0.2
    pooling: str = "none"


class CGCNNConv(nn.Module):
    """One gated convolution of CGCNN (paper eq. 5, BN as in the released code).

    Args:
        atom_fea_len: width F of the particle features.
        nbr_fea_len: width K of the edge features.
    """

    def __init__(self, atom_fea_len: int, nbr_fea_len: int):
        super().__init__()
        self.fc_full = nn.Linear(2 * atom_fea_len + nbr_fea_len, 2 * atom_fea_len)
        self.bn1 = nn.BatchNorm1d(2 * atom_fea_len)
        self.bn2 = nn.BatchNorm1d(atom_fea_len)

    def forward(
        self, graph: dgl.DGLGraph, v: torch.Tensor, u: torch.Tensor, eweight: torch.Tensor | None
    ) -> torch.Tensor:
        """``v`` [n_atoms, F], ``u`` [n_edges, K], ``eweight`` [n_edges] or None -> [n_atoms, F]."""
        width = v.shape[1]
        w_dst, w_src, w_edge = self.fc_full.weight.split([width, width, u.shape[1]], dim=1)
        with graph.local_scope():
            # z_ij W splits into receiver, sender and edge parts; projecting the nodes
            # before gathering costs O(n_atoms) products instead of O(n_edges).
            graph.srcdata["a"] = F.linear(v, w_src, self.fc_full.bias)
            graph.dstdata["b"] = v @ w_dst.T
            graph.apply_edges(fn.u_add_v("a", "b", "z"))
            z = self.bn1(torch.addmm(graph.edata["z"], u, w_edge.T))
            gate, core = z.chunk(2, dim=1)
            message = torch.sigmoid(gate) * F.softplus(core)
            if eweight is not None:
                message = message * eweight.reshape(-1, 1).to(message.dtype)
            graph.edata["m"] = message
            graph.update_all(fn.copy_e("m", "m"), fn.sum("m", "s"))
            return F.softplus(v + self.bn2(graph.dstdata["s"]))


@register_model("cgcnn", CGCNNConfig)
class CGCNN(GlassModel):
    """CGCNN with a per-particle head or, with ``pooling``, a graph-level one."""

    invariance = Invariance.SO3

    def __init__(self, config: CGCNNConfig):
        super().__init__()
        if config.pooling != "none" and config.pooling not in READOUT_OPS:
            raise ValueError(
                f"unknown cgcnn pooling {config.pooling!r}; known: none, {', '.join(READOUT_OPS)}"
            )
        if config.rbf_step <= 0 or config.rbf_width <= 0 or config.rbf_max < config.rbf_min:
            raise ValueError("cgcnn needs rbf_step > 0, rbf_width > 0 and rbf_max >= rbf_min")
        n_rbf = int(round((config.rbf_max - config.rbf_min) / config.rbf_step)) + 1
        self.register_buffer("centres", torch.linspace(config.rbf_min, config.rbf_max, n_rbf))
        self.rbf_width = config.rbf_width
        self.embedding = nn.Linear(config.in_dim, config.atom_fea_len)
        self.convs = nn.ModuleList(CGCNNConv(config.atom_fea_len, n_rbf) for _ in range(config.n_conv))
        self.pool = None if config.pooling == "none" else Readout(config.pooling, config.atom_fea_len)
        dims = [config.atom_fea_len] + [config.h_fea_len] * config.n_h
        layers: list[nn.Module] = []
        for d_in, d_out in zip(dims[:-1], dims[1:], strict=True):
            layers += [nn.Softplus(), nn.Linear(d_in, d_out)]
        self.head = nn.Sequential(*layers, nn.Softplus(), nn.Linear(dims[-1], config.out_dim))

    @property
    def num_message_passing(self) -> int:
        return len(self.convs)

    @property
    def output_level(self) -> OutputLevel:
        return OutputLevel.NODE if self.pool is None else OutputLevel.GRAPH

    @property
    def decoder_prefixes(self) -> tuple[str, ...]:
        """The head after the last convolution, and the pooling before it when there is one."""
        return ("head",) if self.pool is None else ("pool", "head")

    def edge_features(self, dist: torch.Tensor) -> torch.Tensor:
        """Gaussian expansion of distances [n_edges, 1] -> [n_edges, n_rbf]."""
        dist = dist.reshape(-1, 1).to(self.centres.dtype)
        return torch.exp(-((dist - self.centres) ** 2) / self.rbf_width**2)

    def forward(
        self, graph: dgl.DGLGraph, feat: torch.Tensor, eweight: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Returns [n_atoms, out_dim], or [n_graphs, out_dim] with pooling."""
        u = self.edge_features(graph.edata[schema.DIST])
        v = self.embedding(feat)
        for conv in self.convs:
            v = conv(graph, v, u, eweight)
        if self.pool is not None:
            v = self.pool(graph, v)
        return self.head(v)
