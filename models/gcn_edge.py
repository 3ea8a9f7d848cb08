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

Two ways to compute the same thing (``fast``, tested equal in values and gradients): the
plain path, :meth:`EdgeConcatLayer.plain`, in autograd ops with DGL's message passing, and
the fast one (default), :class:`_EdgeEncoder` and :class:`_EdgeUpdate`, which run the
edge encoder and each layer's edge update over chunks of edges that stay in cache. The
model is memory-bound: autograd makes about twenty passes over [n_edges, hidden_dim]
tensors per layer, the chunked update about ten.
"""

from __future__ import annotations

from dataclasses import dataclass

import dgl
import dgl.function as fn
import torch
from torch import nn

from models.common import edge_geometry, edge_weights, mean_in_degree_norm, mlp, row_chunks
from models.contract import GlassModel, Invariance, OutputLevel
from models.models import ModelConfig, register_model


@dataclass
class GCNEdgeConfig(ModelConfig):
    """Attributes:
    hidden_dim: width of node and edge states.
    num_layers: number of message-passing layers.
    dropout: dropout on node and edge states after each layer.
    fast: chunked edge update (same results as the plain path, which ``false`` runs).
    """

    hidden_dim: int = 32
    num_layers: int = 4
    dropout: float = 0.0
    fast: bool = True


class _EdgeEncoder(torch.autograd.Function):
    """e0 = ReLU(ReLU(disp W1^T + b1) W2^T + b2) over chunks of edges, with a hand-written backward.

    Equals the edge encoder ``mlp([3, d, d], last_activation=True)`` of the plain path.
    Autograd keeps four [n_edges, d] tensors and makes about a dozen passes over them;
    here only e0 is kept and the hidden layer is recomputed from the 3 displacement
    components in the backward pass, chunk by chunk while the chunk is in cache. No
    gradient flows to ``disp`` (the caller takes the plain path when it needs one).
    """

    @staticmethod
    def forward(ctx, disp, w1, b1, w2, b2):
        e0 = disp.new_empty(len(disp), w2.shape[0])
        for rows in row_chunks(len(disp)):
            hidden = torch.addmm(b1, disp[rows], w1.t()).clamp_min_(0.0)
            torch.addmm(b2, hidden, w2.t(), out=e0[rows]).clamp_min_(0.0)
        ctx.save_for_backward(disp, e0, w1, b1, w2)
        return e0

    @staticmethod
    def backward(ctx, grad_e0):
        disp, e0, w1, b1, w2 = ctx.saved_tensors
        grad_w1, grad_b1 = torch.zeros_like(w1), torch.zeros_like(b1)
        grad_w2, grad_b2 = torch.zeros_like(w2), w2.new_zeros(w2.shape[0])
        for rows in row_chunks(len(disp)):
            hidden = torch.addmm(b1, disp[rows], w1.t()).clamp_min_(0.0)
            g2 = torch.ops.aten.threshold_backward(grad_e0[rows], e0[rows], 0.0)  # ReLU from its output
            grad_w2.addmm_(g2.t(), hidden)
            grad_b2 += g2.sum(0)
            g1 = torch.ops.aten.threshold_backward(g2 @ w2, hidden, 0.0)
            grad_w1.addmm_(g1.t(), disp[rows])
            grad_b1 += g1.sum(0)
        return None, grad_w1, grad_b1, grad_w2, grad_b2


class _EdgeUpdate(torch.autograd.Function):
    """m_ij = ReLU(e_ij W^T + s_j + d_i) -> (e_ij + m_ij, sum_j w_ij m_ij), with a hand-written backward.

    Equals the edge part of :meth:`EdgeConcatLayer.plain` (s = W_src h and d = W_dst h + b
    are per-node products, the edge bias folded into d, gathered here for sender j and
    receiver i). The whole update of a chunk of edges (gathers, product, activation,
    residual and, in the backward pass, the gradients of all of them) is done while the
    chunk is in cache; autograd would make a pass over memory per operation. Only m is
    kept for the backward pass, as autograd would.
    ``weight`` [n_edges, 1] or None (all ones); the sum over in-edges is DGL's fused kernel.
    With ``need_edges`` false (the last layer, whose edge states nobody reads) e + m is
    not formed and None is returned in its place.
    """

    @staticmethod
    def forward(ctx, graph, e, s, d, weight, w_edge, need_edges):
        src, dst = (ids.long() for ids in graph.edges())
        m = torch.empty_like(e)
        e_new = torch.empty_like(e) if need_edges else None
        weighted = None if weight is None else torch.empty_like(e)
        for rows in row_chunks(len(e)):
            pre = torch.mm(e[rows], w_edge.t())
            pre += s.index_select(0, src[rows])
            pre += d.index_select(0, dst[rows])
            torch.clamp_min(pre, 0.0, out=m[rows])
            if e_new is not None:
                torch.add(e[rows], m[rows], out=e_new[rows])
            if weighted is not None:
                torch.mul(m[rows], weight[rows], out=weighted[rows])
        agg = dgl.ops.copy_e_sum(graph, m if weighted is None else weighted)
        ctx.graph = graph
        ctx.save_for_backward(e, m, weight, w_edge)
        return e_new, agg

    @staticmethod
    def backward(ctx, grad_e_new, grad_agg):
        e, m, weight, w_edge = ctx.saved_tensors
        graph = ctx.graph
        src, dst = (ids.long() for ids in graph.edges())
        grad_pre, grad_e = torch.empty_like(m), torch.empty_like(e)
        grad_weight = None if weight is None else torch.zeros_like(weight)
        grad_w_edge = torch.zeros_like(w_edge)
        for rows in row_chunks(len(m)):
            # dL/dm = dL/de_new + w * dL/dagg[receiver]; unused outputs have no gradient.
            if grad_agg is None:
                grad_m = torch.zeros_like(m[rows])
            else:
                grad_m = grad_agg.index_select(0, dst[rows])
                if grad_weight is not None:
                    torch.sum(grad_m * m[rows], 1, keepdim=True, out=grad_weight[rows])
                    grad_m *= weight[rows]
            if grad_e_new is not None:
                grad_m += grad_e_new[rows]
            g = grad_pre[rows]
            # ReLU's backward from its output (m > 0 exactly where the input was), as autograd's.
            torch.ops.aten.threshold_backward.grad_input(grad_m, m[rows], 0.0, grad_input=g)
            if grad_e_new is None:
                torch.mm(g, w_edge, out=grad_e[rows])
            else:
                torch.addmm(grad_e_new[rows], g, w_edge, out=grad_e[rows])
            grad_w_edge.addmm_(g.t(), e[rows])
        grad_s = dgl.ops.copy_e_sum(dgl.reverse(graph), grad_pre)  # sums over each sender's edges
        grad_d = dgl.ops.copy_e_sum(graph, grad_pre)
        return None, grad_e, grad_s, grad_d, grad_weight, grad_w_edge, None


class EdgeConcatLayer(nn.Module):
    """One node-and-edge update of :class:`GCNEdge`."""

    def __init__(self, dim: int, fast: bool = True):
        super().__init__()
        self.fast = fast
        self.src = nn.Linear(dim, dim, bias=False)
        self.dst = nn.Linear(dim, dim, bias=False)
        self.edge = nn.Linear(dim, dim)
        self.node = nn.Sequential(nn.Linear(2 * dim, dim), nn.ReLU())

    def forward(
        self,
        graph: dgl.DGLGraph,
        h: torch.Tensor,
        e: torch.Tensor,
        weight: torch.Tensor | None,
        need_edges: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """h [n_atoms, dim], e [n_edges, dim], weight [n_edges, 1] or None (all ones) -> new h and e
        (new e None when ``need_edges`` is false and the fast path runs)."""
        if not self.fast:
            return self.plain(graph, h, e, weight)
        e_new, agg = _EdgeUpdate.apply(
            graph, e, self.src(h), self.dst(h) + self.edge.bias, weight, self.edge.weight, need_edges
        )
        agg = agg * mean_in_degree_norm(graph, h.dtype)
        return h + self.node(torch.cat([h, agg], dim=1)), e_new

    def plain(
        self, graph: dgl.DGLGraph, h: torch.Tensor, e: torch.Tensor, weight: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The layer in autograd ops (the reference of the fast path)."""
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
class GCNEdge(GlassModel):
    invariance = Invariance.NONE
    output_level = OutputLevel.NODE
    decoder_prefixes = ("decoder",)  # the MLP after the last layer

    def __init__(self, config: GCNEdgeConfig):
        super().__init__()
        d = config.hidden_dim
        self.node_encoder = mlp([config.in_dim, d, d], last_activation=True)
        self.edge_encoder = mlp([3, d, d], last_activation=True)
        self.fast = config.fast
        self.layers = nn.ModuleList(EdgeConcatLayer(d, config.fast) for _ in range(config.num_layers))
        self.dropout = nn.Dropout(config.dropout)
        self.decoder = mlp([d, d, d, config.out_dim])

    @property
    def num_message_passing(self) -> int:
        return len(self.layers)

    def forward(
        self, graph: dgl.DGLGraph, feat: torch.Tensor, eweight: torch.Tensor | None = None
    ) -> torch.Tensor:
        disp, _ = edge_geometry(graph, feat.dtype)
        weight = None if eweight is None else edge_weights(graph, eweight, feat.dtype)
        h = self.node_encoder(feat)
        if self.fast and not disp.requires_grad:
            first, _, second, _ = self.edge_encoder
            e = _EdgeEncoder.apply(disp, first.weight, first.bias, second.weight, second.bias)
        else:
            e = self.edge_encoder(disp)
        for i, layer in enumerate(self.layers):
            last = i == len(self.layers) - 1
            h, e = layer(graph, h, e, weight, need_edges=not last)  # the last edge states are never read
            h = self.dropout(h)
            if not last:
                e = self.dropout(e)
        return self.decoder(h)
