"""SymGNN: edge-featured graph attention with a symmetrised edge encoder (Li et al., ICML 2024).

Li, H. et al. "Predicting and Interpreting Energy Barriers of Metallic Glasses
with Graph Neural Networks", ICML 2024 (repository haoyuli02/SymGNN).

    h^0 = node encoder(feat)          Linear-BN-ReLU-Linear-BN-ReLU
    e^0_ij = sum_{T in set} edge encoder(x_ij T)   (symmetrisation module; x_ij displacement row vector)
    layer k (heads 8, 4, 2, 1): EGATConv -> concatenate heads (mean in the last layer)
                                -> BatchNorm -> Linear projection -> + input (skip)
    out = decoder(h)                  4 x (Linear-BN-PReLU), Linear

``eweight`` multiplies every attention coefficient (DGL ``EGATConv``'s
``edge_weight``), so it scales every message into every node. ``EGATConv``
refuses graphs with a particle that has no incoming edge.

In training mode the layers take a memory-lean path by default (``fast``; tested equal
to ``EGATConv`` in values and gradients): :class:`_EdgeAttentionNorm` computes the
attention logits and the batch-normalised edge projection from the [n_edges,
heads x hidden_dim] pre-activation and keeps only that for the backward pass, where
autograd would keep three such tensors (1.6 GB each in the first layer on a full batch
of six 8000-atom CuZr graphs), and the symmetrised edge encoder is recomputed in the
backward pass instead of keeping its activations. ``fast: false`` runs the plain path.

The transform set (``transforms``) decides what invariance the model has:

- ``"released"``: the identity and one fixed rotation R = R_z(1) R_y(1) R_x(1)
  (angles in radians), the set in the released code. No invariance: the output
  changes under rotations and reflections (``invariance = "none"``).
- ``"cubic"``: the 48 elements of the full cubic group O_h (signed permutation
  matrices, proper and improper). Since x -> x g permutes the group, the summed
  encoding and therefore the output are exactly invariant under these 48
  transforms of all displacements, and under no others (``"cubic"``). Costs
  48 edge-encoder passes instead of 2.
- ``"random"``: ``num_random`` rotations drawn uniformly from SO(3), redrawn at
  every forward call in training mode; in evaluation mode a fixed set drawn
  once from ``random_seed`` (saved in the state dict). Training then pushes the
  model towards rotation invariance in expectation, but no transform of the
  input leaves the evaluation output exactly unchanged (``"none"``).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass, field

import dgl
import torch
from dgl.nn import EGATConv
from dgl.nn.functional import edge_softmax
from torch import nn
from torch.utils.checkpoint import checkpoint

from models.common import cubic_group, edge_geometry, edge_weights, row_chunks
from models.models import ModelConfig, register_model

TRANSFORM_SETS = ("released", "cubic", "random")


@dataclass
class SymGNNConfig(ModelConfig):
    """Attributes (defaults of the released code):
    hidden_dim: node and edge state width (32).
    heads: attention heads of each EGATConv layer; one layer per entry ([8, 4, 2, 1]).
    dropout: dropout on node and edge states after each layer (0.25).
    transforms: transform set of the symmetrisation module: released, cubic or random.
    num_random: number K of rotations for ``transforms: random``.
    random_seed: seed of the fixed evaluation rotations for ``transforms: random``.
    fast: memory-lean training path (same results as the plain ``EGATConv`` path, which ``false`` runs).
    """

    hidden_dim: int = 32
    heads: list[int] = field(default_factory=lambda: [8, 4, 2, 1])
    dropout: float = 0.25
    transforms: str = "released"
    num_random: int = 4
    random_seed: int = 0
    fast: bool = True


class _EdgeAttentionNorm(torch.autograd.Function):
    """From pre = W_i h_src + W_j h_dst + W_f e + b [n_edges, H*D]: f = LeakyReLU(pre),
    attention logits (f * attn).sum(-1) [n_edges, H] and the edge output
    Linear(BatchNorm(f)) [n_edges, D] with batch statistics (training mode).

    The same operations as ``EGATConv`` followed by :class:`SymGNNLayer`'s edge norm and
    projection, with a hand-written backward that keeps only ``pre``, recomputes f and
    the normalised f over chunks of edges, and returns the gradient in ``pre``'s storage
    (the batch-norm gradient is the standard one, Ioffe & Szegedy 2015). Also returns the
    batch mean and biased variance of f, for the running statistics.
    """

    @staticmethod
    def forward(ctx, pre, attn, gamma, beta, proj_w, proj_b, eps):
        n, heads = len(pre), attn.shape[1]
        f = nn.functional.leaky_relu(pre)
        logits = torch.einsum("ehd,hd->eh", f.view(n, heads, -1), attn[0]).contiguous()
        # Not torch.var_mean(f, 0): its column reduction is ~10x slower than two passes on CPU.
        mean = f.sum(0) / n
        var = sum(((f[rows] - mean) ** 2).sum(0) for rows in row_chunks(n)) / n
        invstd = torch.rsqrt(var + eps)
        scale = gamma * invstd
        # Linear(BatchNorm(f)) = f A + c with A = diag(scale) W^T: no normalised copy of f.
        shift = proj_b + (beta - mean * scale) @ proj_w.t()
        out = torch.addmm(shift, f, scale.unsqueeze(1) * proj_w.t())
        ctx.save_for_backward(pre, attn, gamma, beta, proj_w, mean, invstd)
        ctx.pre_consumed = False
        ctx.mark_non_differentiable(mean, var)
        return logits, out, mean, var

    @staticmethod
    def backward(ctx, grad_logits, grad_out, _grad_mean, _grad_var):
        if ctx.pre_consumed:
            raise RuntimeError("symgnn's lean path supports one backward pass (no retain_graph)")
        ctx.pre_consumed = True
        pre, attn, gamma, beta, proj_w, mean, invstd = ctx.saved_tensors
        n, heads = len(pre), attn.shape[1]
        grad_attn = torch.zeros_like(attn[0])
        f_t_grad_out = torch.zeros_like(proj_w.t())  # f^T grad_out [heads * dim, dim]
        # Pass 1 needs only sums over edges: with g = grad_out W (the gradient of BatchNorm(f)),
        # sum(g) = sum(grad_out) W and sum(g * f_hat) = diag(W^T-weighted f_hat^T grad_out).
        for rows in row_chunks(n):
            f = nn.functional.leaky_relu(pre[rows])
            grad_attn += torch.einsum("eh,ehd->hd", grad_logits[rows], f.view(len(f), heads, -1))
            f_t_grad_out.addmm_(f.t(), grad_out[rows])
        grad_proj_b = grad_out.sum(0)
        fhat_t_grad_out = (f_t_grad_out - torch.outer(mean, grad_proj_b)) * invstd.unsqueeze(1)
        grad_beta = grad_proj_b @ proj_w
        grad_gamma = (proj_w * fhat_t_grad_out.t()).sum(0)
        # Pass 2 writes d/d pre into pre's own storage (nothing else reads it).
        for rows in row_chunks(n):
            f_hat = nn.functional.leaky_relu(pre[rows]).sub_(mean).mul_(invstd)
            # Batch norm: d/df = gamma invstd (g - mean(g) - f_hat mean(g f_hat)).
            grad_f = (grad_out[rows] @ proj_w).sub_(grad_beta / n).addcmul_(f_hat, grad_gamma / n, value=-1.0)
            grad_f.mul_(gamma * invstd).view(len(f_hat), heads, -1).addcmul_(
                grad_logits[rows].unsqueeze(-1), attn
            )
            pre[rows] = torch.ops.aten.leaky_relu_backward(grad_f, pre[rows], 0.01, False)
        grad_proj_w = fhat_t_grad_out.t() * gamma + torch.outer(grad_proj_b, beta)
        return pre, grad_attn.unsqueeze(0), grad_gamma, grad_beta, grad_proj_w, grad_proj_b, None


def released_transforms() -> torch.Tensor:
    """[2, 3, 3]: identity and the released code's fixed rotation R_z(1) R_y(1) R_x(1)."""
    c, s = math.cos(1.0), math.sin(1.0)
    rz = torch.tensor([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    ry = torch.tensor([[c, 0.0, -s], [0.0, 1.0, 0.0], [s, 0.0, c]])
    rx = torch.tensor([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])
    return torch.stack([torch.eye(3), rz @ ry @ rx])


def random_rotations(
    k: int, generator: torch.Generator | None = None, device: torch.device | None = None
) -> torch.Tensor:
    """[k, 3, 3] rotations uniform on SO(3), from normalised Gaussian quaternions (Shoemake 1992)."""
    q = torch.randn(k, 4, generator=generator, device=device)
    w, x, y, z = (q / q.norm(dim=1, keepdim=True)).unbind(1)
    return torch.stack(
        [
            torch.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], 1),
            torch.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], 1),
            torch.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], 1),
        ],
        1,
    )


def _encoder(d_in: int, d: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(d_in, d), nn.BatchNorm1d(d), nn.ReLU(), nn.Linear(d, d), nn.BatchNorm1d(d), nn.ReLU()
    )


class SymGNNLayer(nn.Module):
    """EGATConv with batch norm and skip projections; the last layer averages heads and drops edges."""

    def __init__(self, dim: int, heads: int, last: bool, fast: bool = True):
        super().__init__()
        self.last = last
        self.fast = fast
        self.conv = EGATConv(dim, dim, dim, dim, heads)
        width = dim if last else dim * heads
        self.node_norm = nn.BatchNorm1d(width)
        self.node_proj = nn.Linear(width, dim)
        if not last:
            self.edge_norm = nn.BatchNorm1d(width)
            self.edge_proj = nn.Linear(width, dim)

    def forward(
        self, graph: dgl.DGLGraph, h: torch.Tensor, e: torch.Tensor, weight: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """h [n_atoms, dim], e [n_edges, dim], weight [n_edges] -> updated h and e."""
        if self.fast and self.training:
            return self.lean(graph, h, e, weight)
        return self.plain(graph, h, e, weight)

    def lean(
        self, graph: dgl.DGLGraph, h: torch.Tensor, e: torch.Tensor, weight: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Training-mode layer through :class:`_EdgeAttentionNorm` (EGATConv's operations, re-grouped)."""
        conv = self.conv
        heads, dim = conv._num_heads, conv._out_edge_feats
        pre = dgl.ops.u_add_v(graph, conv.fc_ni(h), conv.fc_nj(h))
        pre = pre.add_(torch.addmm(conv.bias, e, conv.fc_fij.weight.t()))  # [n_edges, heads * dim]
        if self.last:
            f = nn.functional.leaky_relu(pre).view(-1, heads, dim)
            logits, e_out = (f * conv.attn).sum(-1), None
        else:
            norm, proj = self.edge_norm, self.edge_proj
            logits, e_out, mean, var = _EdgeAttentionNorm.apply(
                pre, conv.attn, norm.weight, norm.bias, proj.weight, proj.bias, norm.eps
            )
            _update_running_stats(norm, mean, var, len(pre))
        del pre
        # Particles without incoming edges get no attention and an empty sum, as in plain().
        attention = edge_softmax(graph, logits.unsqueeze(-1)) * weight.view(-1, 1, 1)
        nh = dgl.ops.u_mul_e_sum(graph, conv.fc_node_src(h).view(-1, heads, dim), attention)
        if self.last:
            return h + self.node_proj(self.node_norm(nh.mean(1))), e
        return h + self.node_proj(self.node_norm(nh.flatten(1))), e + e_out

    def plain(
        self, graph: dgl.DGLGraph, h: torch.Tensor, e: torch.Tensor, weight: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The layer with DGL's EGATConv (the reference of the lean path)."""
        nh, eh = _egat_allowing_isolated(self.conv, graph, h, e, weight)
        if self.last:
            # The last layer's edge states would never be read.
            return h + self.node_proj(self.node_norm(nh.mean(1))), e
        h = h + self.node_proj(self.node_norm(nh.flatten(1)))
        return h, e + self.edge_proj(self.edge_norm(eh.flatten(1)))


@contextlib.contextmanager
def _running_stats_frozen(module: nn.Module) -> Iterator[None]:
    """Batch norms inside ``module`` leave their running statistics (and batch count) unchanged."""
    norms = [m for m in module.modules() if isinstance(m, nn.BatchNorm1d)]
    saved = [(m.momentum, m.num_batches_tracked.clone()) for m in norms]
    for m in norms:
        m.momentum = 0.0  # running = running * (1 - 0) + 0 * batch: unchanged
    try:
        yield
    finally:
        for m, (momentum, count) in zip(norms, saved, strict=True):
            m.momentum = momentum
            m.num_batches_tracked.copy_(count)


@torch.no_grad()
def _update_running_stats(norm: nn.BatchNorm1d, mean: torch.Tensor, var: torch.Tensor, n: int) -> None:
    """What ``nn.BatchNorm1d`` does to its running statistics in training mode (unbiased variance)."""
    if not norm.track_running_stats:
        return
    norm.num_batches_tracked += 1
    momentum = norm.momentum if norm.momentum is not None else 1.0 / float(norm.num_batches_tracked)
    norm.running_mean.lerp_(mean, momentum)
    norm.running_var.lerp_(var * (n / max(n - 1, 1)), momentum)


def _egat_allowing_isolated(
    conv: EGATConv, graph: dgl.DGLGraph, h: torch.Tensor, e: torch.Tensor, weight: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """``conv(graph, h, e, edge_weight=weight)`` that also accepts particles without incoming edges.

    DGL's EGATConv refuses them outright, but they occur at the rim of the
    explainer's computation subgraphs (and for isolated atoms). A zero-weight
    self-pair reproduces the empty attention sum exactly; its edge output is dropped.
    """
    isolated = torch.nonzero(graph.in_degrees() == 0).squeeze(1)
    if len(isolated) == 0:
        return conv(graph, h, e, edge_weight=weight)
    padded = dgl.add_edges(graph, isolated, isolated)
    e = torch.cat([e, e.new_zeros(len(isolated), e.shape[1])])
    weight = torch.cat([weight, weight.new_zeros(len(isolated))])
    nh, eh = conv(padded, h, e, edge_weight=weight)
    return nh, eh[: graph.num_edges()]


@register_model("symgnn", SymGNNConfig)
class SymGNN(nn.Module):
    def __init__(self, config: SymGNNConfig):
        super().__init__()
        if config.transforms not in TRANSFORM_SETS:
            raise ValueError(
                f"symgnn: unknown transforms {config.transforms!r}; known: {', '.join(TRANSFORM_SETS)}"
            )
        d = config.hidden_dim
        self.transform_set = config.transforms
        self.fast = config.fast
        self.num_random = config.num_random
        if config.transforms == "released":
            transforms = released_transforms()
        elif config.transforms == "cubic":
            transforms = cubic_group()
        else:
            transforms = random_rotations(
                config.num_random, torch.Generator().manual_seed(config.random_seed)
            )
        self.register_buffer("transforms", transforms)
        self.node_encoder = _encoder(config.in_dim, d)
        self.edge_encoder = _encoder(3, d)
        n = len(config.heads)
        self.layers = nn.ModuleList(
            SymGNNLayer(d, k, last=i == n - 1, fast=config.fast) for i, k in enumerate(config.heads)
        )
        self.dropout = nn.Dropout(config.dropout)
        decoder: list[nn.Module] = []
        for _ in range(4):
            decoder += [nn.Linear(d, d), nn.BatchNorm1d(d), nn.PReLU()]
        self.decoder = nn.Sequential(*decoder, nn.Linear(d, config.out_dim))

    @property
    def invariance(self) -> str:
        return "cubic" if self.transform_set == "cubic" else "none"

    @property
    def num_message_passing(self) -> int:
        """Receptive field in hops: one per EGATConv layer (explain.py's default subgraph radius)."""
        return len(self.layers)

    def symmetrised_edges(self, disp: torch.Tensor) -> torch.Tensor:
        """[n_edges, 3] displacements -> [n_edges, hidden_dim] summed encodings over the transform set."""
        transforms = self.transforms.to(disp.dtype)
        if self.transform_set == "random" and self.training:
            transforms = random_rotations(self.num_random, device=disp.device).to(disp.dtype)
        if self.fast and self.training and torch.is_grad_enabled():
            # Recomputed in the backward pass instead of kept: four [n_edges, hidden_dim]
            # activations per transform. The recomputation must not update the batch-norm
            # running statistics a second time.
            return checkpoint(
                self._encode_and_sum,
                disp,
                transforms,
                use_reentrant=False,
                context_fn=lambda: (contextlib.nullcontext(), _running_stats_frozen(self.edge_encoder)),
            )
        return self._encode_and_sum(disp, transforms)

    def _encode_and_sum(self, disp: torch.Tensor, transforms: torch.Tensor) -> torch.Tensor:
        out = 0.0
        for t in transforms:
            out = out + self.edge_encoder(disp @ t)
        return out

    def forward(
        self, graph: dgl.DGLGraph, feat: torch.Tensor, eweight: torch.Tensor | None = None
    ) -> torch.Tensor:
        disp, _ = edge_geometry(graph, feat.dtype)
        weight = edge_weights(graph, eweight, feat.dtype).squeeze(1)
        h = self.node_encoder(feat)
        e = self.symmetrised_edges(disp)
        for layer in self.layers:
            h, e = layer(graph, h, e, weight)
            h = self.dropout(h)
            if not layer.last:  # the last layer's edge states are never read
                e = self.dropout(e)
        return self.decoder(h)
