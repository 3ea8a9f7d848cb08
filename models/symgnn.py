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

In training mode the model takes a fast, memory-lean path by default (``fast``; tested
equal to the plain path in values, gradients and running statistics, float64 included):
the edges are processed sorted by destination, the summed edge encodings are computed in
chunks without keeping activations, and each layer's edge computation is fused over
chunks of edges that stay in cache (:mod:`models.symgnn_fast`). Evaluation without
autograd takes a chunked inference path (same results); evaluation with autograd
(explainers) and ``fast: false`` run the plain path (DGL's ``EGATConv``).

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

import math
from dataclasses import dataclass, field

import dgl
import torch
from dgl.nn import EGATConv
from dgl.nn.functional import edge_softmax
from torch import nn

from models.common import cubic_group, edge_geometry, edge_weights
from models.contract import Ability, GlassModel, Invariance, OutputLevel
from models.models import ModelConfig, register_model
from models.symgnn_fast import (
    ActivationStore,
    EdgeAttention,
    EdgesByDestination,
    SymmetrisedEncoder,
    edge_attention_inference,
)

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
    fast: fast, memory-lean training path (same results as the plain ``EGATConv`` path, which ``false`` runs).
    """

    hidden_dim: int = 32
    heads: list[int] = field(default_factory=lambda: [8, 4, 2, 1])
    dropout: float = 0.25
    transforms: str = "released"
    num_random: int = 4
    random_seed: int = 0
    fast: bool = True


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


def _params(*modules: nn.Module) -> list[torch.Tensor]:
    """Weights and biases of ``modules`` in turn (Linear and BatchNorm1d)."""
    return [t for m in modules for t in (m.weight, m.bias)]


def _encoder(d_in: int, d: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(d_in, d), nn.BatchNorm1d(d), nn.ReLU(), nn.Linear(d, d), nn.BatchNorm1d(d), nn.ReLU()
    )


class SymGNNLayer(nn.Module):
    """EGATConv with batch norm and skip projections; the last layer averages heads and drops edges."""

    def __init__(self, dim: int, heads: int, last: bool):
        super().__init__()
        self.last = last
        self.conv = EGATConv(dim, dim, dim, dim, heads)
        width = dim if last else dim * heads
        self.node_norm = nn.BatchNorm1d(width)
        self.node_proj = nn.Linear(width, dim)
        if not last:
            self.edge_norm = nn.BatchNorm1d(width)
            self.edge_proj = nn.Linear(width, dim)
        self.activations = ActivationStore()  # the fast path's edge activation, reused between steps

    def forward(
        self, graph: dgl.DGLGraph, h: torch.Tensor, e: torch.Tensor, weight: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """h [n_atoms, dim], e [n_edges, dim], weight [n_edges] -> updated h and e."""
        return self.plain(graph, h, e, weight)

    def lean(
        self, edges: EdgesByDestination, h: torch.Tensor, e: torch.Tensor, weight: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Training-mode layer through :class:`EdgeAttention` (EGATConv's operations, re-grouped).

        Edge tensors ``e`` and ``weight`` are in the order of ``edges``.
        """
        conv = self.conv
        h_src = torch.addmm(conv.bias, h, conv.fc_ni.weight.t())  # [n_atoms, heads * dim]
        if self.last:
            norm_params = (None,) * 5
        else:
            norm, proj = self.edge_norm, self.edge_proj
            norm_params = (norm.weight, norm.bias, proj.weight, proj.bias, norm.eps)
        logits, e_out, mean, var = EdgeAttention.apply(  # e_out includes the residual e
            h_src,
            conv.fc_nj(h),
            e,
            conv.fc_fij.weight,
            conv.attn,
            edges.src,
            edges.dst,
            *norm_params,
            self.activations,
        )
        if not self.last:
            _update_running_stats(self.edge_norm, mean, var, len(e))
        return self._attend(edges, h, e, e_out, logits, weight)

    @torch.no_grad()
    def inference(
        self, edges: EdgesByDestination, h: torch.Tensor, e: torch.Tensor, weight: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Evaluation-mode layer without autograd (:func:`edge_attention_inference`; same results as
        :meth:`plain`). Edge tensors ``e`` and ``weight`` are in the order of ``edges``."""
        conv = self.conv
        h_src = torch.addmm(conv.bias, h, conv.fc_ni.weight.t())
        affine = None
        if not self.last:  # Linear(BatchNorm(f)) with running statistics = f A + c
            norm, proj = self.edge_norm, self.edge_proj
            scale = norm.weight * torch.rsqrt(norm.running_var + norm.eps)
            shift = norm.bias - norm.running_mean * scale
            affine = (scale.unsqueeze(1) * proj.weight.t(), proj.bias + shift @ proj.weight.t())
        logits, e_out = edge_attention_inference(
            h_src, conv.fc_nj(h), e, conv.fc_fij.weight, conv.attn, edges.src, edges.dst, affine
        )
        return self._attend(edges, h, e, e_out, logits, weight)

    def _attend(
        self,
        edges: EdgesByDestination,
        h: torch.Tensor,
        e: torch.Tensor,
        e_out: torch.Tensor | None,
        logits: torch.Tensor,
        weight: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Attention-weighted sum of messages into each particle, node norm, projection and skip
        (the node part of :meth:`lean` and :meth:`inference`)."""
        conv = self.conv
        heads, dim = conv._num_heads, conv._out_edge_feats
        # Particles without incoming edges get no attention and an empty sum, as in plain().
        attention = edge_softmax(edges.graph, logits.unsqueeze(-1)) * weight.view(-1, 1, 1)
        nh = dgl.ops.u_mul_e_sum(edges.graph, conv.fc_node_src(h).view(-1, heads, dim), attention)
        if self.last:
            return h + self.node_proj(self.node_norm(nh.mean(1))), e
        return h + self.node_proj(self.node_norm(nh.flatten(1))), e_out

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
class SymGNN(GlassModel):
    output_level = OutputLevel.NODE
    decoder_prefixes = ("decoder",)  # the MLP (with batch norm) after the last attention layer
    # The fast path's training steps reuse one edge activation buffer per layer (ActivationStore).
    abilities = frozenset({Ability.TRAINING_CACHE})

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
        self.layers = nn.ModuleList(SymGNNLayer(d, k, last=i == n - 1) for i, k in enumerate(config.heads))
        self.dropout = nn.Dropout(config.dropout)
        decoder: list[nn.Module] = []
        for _ in range(4):
            decoder += [nn.Linear(d, d), nn.BatchNorm1d(d), nn.PReLU()]
        self.decoder = nn.Sequential(*decoder, nn.Linear(d, config.out_dim))

    @property
    def invariance(self) -> Invariance:
        return Invariance.CUBIC if self.transform_set == "cubic" else Invariance.NONE

    @property
    def num_message_passing(self) -> int:
        """Receptive field in hops: one per EGATConv layer (explain.py's default subgraph radius)."""
        return len(self.layers)

    def release_cache(self) -> None:
        """Free each layer's reused training activation (:class:`models.symgnn_fast.ActivationStore`,
        up to 1.6 GB per layer on a full CuZr batch); the next training step allocates it again."""
        for layer in self.layers:
            layer.activations.clear()

    def symmetrised_edges(self, disp: torch.Tensor) -> torch.Tensor:
        """[n_edges, 3] displacements -> [n_edges, hidden_dim] summed encodings over the transform set."""
        transforms = self.transforms.to(disp.dtype)
        # The encoder's own mode, not the model's: a frozen encoder (glassgnn.fine_tune) stays in
        # evaluation mode while the decoder trains.
        if self.transform_set == "random" and self.edge_encoder.training:
            transforms = random_rotations(self.num_random, device=disp.device).to(disp.dtype)
        if self.fast and self.edge_encoder.training and not disp.requires_grad:
            lin1, norm1, _, lin2, norm2, _ = self.edge_encoder
            out, stats = SymmetrisedEncoder.apply(
                disp, transforms, *_params(lin1, norm1, lin2, norm2), norm1.eps, norm2.eps
            )
            for mean1, var1, mean2, var2 in stats:  # in the order of the plain path's calls
                _update_running_stats(norm1, mean1, var1, len(disp))
                _update_running_stats(norm2, mean2, var2, len(disp))
            return out
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
        if self.fast and (self.training or not torch.is_grad_enabled()):
            return self._lean_forward(graph, feat, disp, weight)
        # The plain path (explainers: autograd in evaluation mode) needs none of the fast path's memory.
        self.release_cache()
        h = self.node_encoder(feat)
        e = self.symmetrised_edges(disp)
        for layer in self.layers:
            h, e = layer(graph, h, e, weight)
            h = self.dropout(h)
            if not layer.last:  # the last layer's edge states are never read
                e = self.dropout(e)
        return self.decoder(h)

    def _lean_forward(
        self, graph: dgl.DGLGraph, feat: torch.Tensor, disp: torch.Tensor, weight: torch.Tensor
    ) -> torch.Tensor:
        """forward() through the layers' lean path (training) or inference path (evaluation without
        autograd), edge tensors sorted by destination (same results)."""
        edges = EdgesByDestination.by_destination(graph)
        weight = weight[edges.order]
        h = self.node_encoder(feat)
        e = self.symmetrised_edges(disp[edges.order])
        for layer in self.layers:
            # Each layer's own mode: under a training model, a layer in evaluation mode is frozen
            # (glassgnn.fine_tune), and so is everything before it: no gradient flows through it.
            h, e = layer.lean(edges, h, e, weight) if layer.training else layer.inference(edges, h, e, weight)
            h = self.dropout(h)
            if self.dropout.training and not layer.last:
                e = edges.dropout_(e, self.dropout.p)  # e is the layer's fresh output
        return self.decoder(h)
