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

Two ways to compute the same thing (``fast``, tested equal in values and gradients):
the plain path, :meth:`Interaction.plain`, is the readable reference in autograd ops;
the fast one (default, :class:`_FusedCFConv`) runs the filter network over chunks of
edges that stay in cache and keeps two [n_edges, num_filters] tensors per block for the
backward pass instead of about six, so that a full batch of six 8000-atom CuZr graphs
(1.6 M edges) trains in well under half the plain path's memory.
"""

from __future__ import annotations

from dataclasses import dataclass

import dgl
import dgl.function as fn
import torch
from torch import nn

from models.common import (
    RadialBasisConfig,
    ShiftedSoftplus,
    cosine_cutoff,
    edge_geometry,
    edge_weights,
    row_chunks,
    ssp_,
)
from models.contract import Ability, GlassModel, Invariance, OutputLevel
from models.masked_conv import MaskedFilterConv
from models.models import ModelConfig, register_model


@dataclass
class SchNetConfig(RadialBasisConfig, ModelConfig):
    """Attributes (paper defaults):
    hidden_dim: atom-wise feature width (64).
    num_filters: filter width of the continuous-filter convolutions (64).
    num_interactions: number of interaction blocks (3).
    cutoff, rbf_gap, rbf_gamma: the radial basis (:class:`models.common.RadialBasisConfig`).
    fast: fused, memory-lean computation (same results as the plain path, which ``false`` runs).
    """

    hidden_dim: int = 64
    num_filters: int = 64
    num_interactions: int = 3
    fast: bool = True


class _FusedCFConv(torch.autograd.Function):
    """v_i = sum_j x_j * ssp(W_2 ssp(W_1 rbf_ij + b_1) + b_2) * s_ij, with a hand-written backward.

    Equals :meth:`Interaction.plain` (filter network, then DGL's ``u_mul_e``/``sum``).
    Autograd would keep both pre-activations, both activations and the filter
    ([n_edges, 64] each); here the filter network runs over chunks of edges, only the
    two pre-activations are kept, and the backward pass recomputes the rest chunk by
    chunk. Message passing stays in DGL's fused kernels (no per-edge messages).
    Gradients flow to x, the envelope s (hence to ``eweight``) and the filter weights;
    the radial basis gets none (the caller takes the plain path when it needs one).
    """

    @staticmethod
    def forward(ctx, graph, x, rbf, envelope, w1, b1, w2, b2):
        a1 = rbf.new_empty(len(rbf), w1.shape[0])
        a2 = rbf.new_empty(len(rbf), w2.shape[0])
        filters = torch.empty_like(a2)
        for rows in row_chunks(len(rbf)):
            torch.addmm(b1, rbf[rows], w1.t(), out=a1[rows])
            torch.addmm(b2, ssp_(a1[rows]), w2.t(), out=a2[rows])
            torch.mul(ssp_(a2[rows]), envelope[rows], out=filters[rows])
        ctx.graph = graph
        ctx.save_for_backward(x, rbf, envelope, w2, a1, a2)
        return dgl.ops.u_mul_e_sum(graph, x, filters)

    @staticmethod
    def backward(ctx, grad_v):
        x, rbf, envelope, w2, a1, a2 = ctx.saved_tensors
        need_x, need_env = ctx.needs_input_grad[1], ctx.needs_input_grad[3]
        need_weights = any(ctx.needs_input_grad[4:8])
        grad_x = grad_env = grad_w1 = grad_b1 = grad_w2 = grad_b2 = None
        filters = torch.empty_like(a2) if need_x else None
        grad_filters = None
        if need_env or need_weights:
            grad_filters = dgl.ops.u_mul_v(ctx.graph, x, grad_v)  # [n_edges, F]: x_src * grad_dst
        if need_env:
            grad_env = torch.empty_like(envelope)
        if need_weights:
            grad_w1, grad_b1 = a1.new_zeros(a1.shape[1], rbf.shape[1]), a1.new_zeros(a1.shape[1])
            grad_w2, grad_b2 = torch.zeros_like(w2), a2.new_zeros(a2.shape[1])
        for rows in row_chunks(len(a2)):
            s2 = ssp_(a2[rows])
            if need_x:
                torch.mul(s2, envelope[rows], out=filters[rows])
            if grad_filters is None:
                continue
            g = grad_filters[rows]
            if need_env:
                torch.sum(g * s2, 1, keepdim=True, out=grad_env[rows])
            if need_weights:
                g2 = g.mul_(envelope[rows]).mul_(torch.sigmoid(a2[rows]))  # d/d a2
                grad_w2.addmm_(g2.t(), ssp_(a1[rows]))
                grad_b2 += g2.sum(0)
                g1 = (g2 @ w2).mul_(torch.sigmoid(a1[rows]))  # d/d a1
                grad_w1.addmm_(g1.t(), rbf[rows])
                grad_b1 += g1.sum(0)
        del grad_filters
        if need_x:  # d v_i / d x_j = filter_ij: the sum runs over the reversed edges.
            grad_x = dgl.ops.u_mul_e_sum(dgl.reverse(ctx.graph), grad_v, filters)
        return None, grad_x, None, grad_env, grad_w1, grad_b1, grad_w2, grad_b2


class Interaction(nn.Module):
    """SchNet interaction block: in2f, cfconv with filter network, f2out, residual."""

    def __init__(self, dim: int, num_filters: int, num_rbf: int, fast: bool = True):
        super().__init__()
        self.fast = fast
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
        """x [n_atoms, dim] -> x + f2out(cfconv(in2f(x))); rbf [n_edges, num_rbf], envelope [n_edges, 1]."""
        # The fused path recomputes the filters in chunks to save memory while training; with
        # frozen weights (explainers) the filters are memoised per subgraph and only the mask changes.
        if self.fast and not rbf.requires_grad and not self.filter_net[0].weight.requires_grad:
            src, dst = graph.edges()
            filters = self.filter_net(rbf)
            v = MaskedFilterConv.apply(src, dst, graph.num_dst_nodes(), self.in2f(x), filters, envelope)
        elif self.fast and not rbf.requires_grad:
            first, _, second, _ = self.filter_net
            v = _FusedCFConv.apply(
                graph, self.in2f(x), rbf, envelope, first.weight, first.bias, second.weight, second.bias
            )
        else:
            v = self.plain(graph, x, rbf, envelope)
        return x[: graph.num_dst_nodes()] + self.f2out(v)  # a DGL block updates its dst nodes only

    def plain(
        self, graph: dgl.DGLGraph, x: torch.Tensor, rbf: torch.Tensor, envelope: torch.Tensor
    ) -> torch.Tensor:
        """The continuous-filter convolution in autograd ops (the reference of the fast path)."""
        with graph.local_scope():
            graph.srcdata["h"] = self.in2f(x)
            graph.edata["w"] = self.filter_net(rbf) * envelope
            graph.update_all(fn.u_mul_e("h", "w", "m"), fn.sum("m", "v"))
            return graph.dstdata["v"]


@register_model("schnet", SchNetConfig)
class SchNet(GlassModel):
    invariance = Invariance.SO3
    output_level = OutputLevel.NODE
    decoder_prefixes = ("output",)  # the atom-wise MLP after the last interaction block
    abilities = frozenset({Ability.LAYERS, Ability.BLOCKS})  # forward_layers also takes DGL blocks

    def __init__(self, config: SchNetConfig):
        super().__init__()
        self.cutoff = config.cutoff
        self.rbf = config.radial_basis()
        self.embedding = nn.Linear(config.in_dim, config.hidden_dim)
        self.interactions = nn.ModuleList(
            Interaction(config.hidden_dim, config.num_filters, self.rbf.num_basis, config.fast)
            for _ in range(config.num_interactions)
        )
        self.output = nn.Sequential(
            nn.Linear(config.hidden_dim, config.hidden_dim // 2),
            ShiftedSoftplus(),
            nn.Linear(config.hidden_dim // 2, config.out_dim),
        )

    @property
    def num_message_passing(self) -> int:
        return len(self.interactions)

    def forward(
        self, graph: dgl.DGLGraph, feat: torch.Tensor, eweight: torch.Tensor | None = None
    ) -> torch.Tensor:
        blocks = len(self.interactions)
        return self.forward_layers([graph] * blocks, feat, [eweight] * blocks)

    def forward_layers(
        self, graphs: list[dgl.DGLGraph], feat: torch.Tensor, eweights: list[torch.Tensor | None]
    ) -> torch.Tensor:
        """Interaction block i reads ``graphs[i]`` with ``eweights[i]``; ``forward`` is this with
        the same graph for every block. ``graphs`` may be DGL blocks (message flow graphs, block
        i's source nodes are block i-1's destination nodes, ``feat`` is given for block 0's source
        nodes, the output rows are the last block's destination nodes): the explainer passes
        each block only the edges and particles it needs (:func:`glassgnn.explain_subgraph.layer_blocks`).
        """
        if len(graphs) != len(self.interactions) or len(eweights) != len(graphs):
            raise ValueError(
                f"schnet has {len(self.interactions)} blocks: pass one graph and one eweight per block"
            )
        x = self.embedding(feat)
        for i, (block, graph, eweight) in enumerate(zip(self.interactions, graphs, eweights, strict=True)):
            if i == 0 or graph is not graphs[i - 1] or eweight is not eweights[i - 1]:
                _, dist = edge_geometry(graph, feat.dtype)
                rbf = self.rbf(dist)  # shared by the blocks that read the same graph
                # The cutoff and the edge weight multiply every filter, in every block.
                envelope = cosine_cutoff(dist, self.cutoff) * edge_weights(graph, eweight, feat.dtype)
            x = block(graph, x, rbf, envelope)
        return self.output(x)
