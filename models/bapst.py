"""The graph network of Bapst et al. (2020), as in the paper and exactly as DeepMind released it.

V. Bapst, T. Keck, A. Grabska-Barwinska, C. Donner, E. D. Cubuk, S. S. Schoenholz,
A. Obika, A. W. R. Nelson, T. Back, D. Hassabis, P. Kohli, "Unveiling the
predictive power of static structure in glassy systems", Nature Physics 16,
448-454 (2020); code: google-deepmind/deepmind-research, ``glassy_dynamics/``.

Encoders embed the node input ``feat`` and the edge displacement
``disp = r_dst - r_src`` (receiver minus sender) into latents ``h0`` and ``e0``.
Then ``num_steps`` message-passing steps with shared weights; each step
concatenates the current latents with the encoder outputs and computes::

    e' = f_e([e, e0, h_dst, h0_dst, h_src, h0_src])      # per edge
    h' = f_n([sum_{edges into i} w * m, h, h0])           # per node, w = eweight

with ``m = e'`` (``update_order: sequential``, graph_nets' ``GraphNetwork``, the
released code) or ``m = e`` of the previous step (``update_order: parallel``,
both updates computed from the previous step as the paper's text describes).
A decoder MLP maps the last ``h`` to ``out_dim`` outputs. Every MLP has ReLU
after every layer except the decoder's last. The block orders in the
concatenations are the released ones (graph_nets puts edges, receivers, senders;
then received edges, nodes), so DeepMind's weights load unchanged.

``preset: deepmind`` fixes every hyperparameter to the released network
(:data:`DEEPMIND_PRESET`, sequential updates, in_dim 1: the particle type as one
float, ``type_encoding: scalar``); the released graph also has cutoff 2.0 with
self-pairs, which the dataset's graph parameters must give. The defaults without
a preset are the paper's with parallel updates; any number of input columns
(one-hot types of any number of types, extra fields) is accepted.

Two ways to compute the same function (``fast`` in the config; tested equal to float
rounding, outputs and gradients): the plain path above is the readable reference,
written with the concatenations as released. The fast path (default) splits the first
layer of ``f_e`` and ``f_n`` by input block,
``W [e, e0, h_dst, h0_dst, h_src, h0_src] = e W_e + (e0 W_e0 + b) + (h W_d + h0 W_d0)[dst]
+ (h W_s + h0 W_s0)[src]``, so the node-side products are computed once per node and
gathered, and the parts that never change (``e0 W_e0 + b``, the ``h0`` products) are
hoisted out of the steps. Edges are processed sorted by receiver (cache-friendly
gathers and sums) and, without autograd, in chunks that stay in cache.
:meth:`Bapst.use_compiled` optionally compiles the fast path with ``torch.compile``
(falls back to eager with one warning line).

Not rotation invariant (raw displacement vectors go in): ``invariance = "none"``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import dgl
import dgl.function as fn
import torch
from torch import nn

from glassgnn import schema
from models.common import mlp
from models.compile import CompiledOrEager
from models.contract import Ability, GlassModel, Invariance, OutputLevel
from models.models import ModelConfig, register_model

UPDATE_ORDERS = ("parallel", "sequential")
PRESETS = ("none", "deepmind")
# Edges per chunk of the fast path without autograd: 4096 edges x 64 float32 latents is
# 1 MiB, so a chunk's intermediates stay in a 2-4 MiB L2 cache (1.5x faster than
# whole-graph tensors on 171k edges, measured on the 2-core bench machine).
EDGE_CHUNK = 4096

# The network read off DeepMind's saved graph and variables (checkpoint t044_s09).
DEEPMIND_PRESET = {
    "in_dim": 1,
    "out_dim": 1,
    "edge_dim": 3,
    "latent_dim": 64,
    "mlp_hidden": [64],
    "decoder_hidden": [64, 64],
    "num_steps": 7,
    "update_order": "sequential",
}


@dataclass
class BapstConfig(ModelConfig):
    """Attributes:
    preset: ``"none"`` or ``"deepmind"`` (the released network; fields that differ from
        :data:`DEEPMIND_PRESET` are an error, ``update_order`` defaults to sequential).
    edge_dim: width of the edge input (the displacement vector, 3).
    latent_dim: width of node and edge latents (output of every encoder/update MLP).
    mlp_hidden: hidden widths of the encoder and update MLPs ([64] gives MLP(64, 64)).
    decoder_hidden: hidden widths of the decoder ([64, 64] gives 64 -> 64 -> 64 -> out_dim).
    num_steps: message-passing steps (shared weights).
    update_order: ``"parallel"`` or ``"sequential"``; ``None`` picks sequential under
        ``preset: deepmind`` and parallel otherwise.
    fast: compute with the fast path (default) instead of the plain reference; both give
        the same outputs and gradients to float rounding.
    """

    preset: str = "none"
    edge_dim: int = 3
    latent_dim: int = 64
    mlp_hidden: list[int] = field(default_factory=lambda: [64])
    decoder_hidden: list[int] = field(default_factory=lambda: [64, 64])
    num_steps: int = 7
    update_order: str | None = None
    fast: bool = True

    def __post_init__(self) -> None:
        if self.preset not in PRESETS:
            raise ValueError(f"bapst: unknown preset {self.preset!r}; known: {', '.join(PRESETS)}")
        if self.update_order is None:
            self.update_order = "sequential" if self.preset == "deepmind" else "parallel"
        if self.update_order not in UPDATE_ORDERS:
            raise ValueError(
                f"bapst: unknown update_order {self.update_order!r}; known: {', '.join(UPDATE_ORDERS)}"
            )
        if self.preset == "deepmind":
            for f in fields(self):
                if f.name in DEEPMIND_PRESET and getattr(self, f.name) != DEEPMIND_PRESET[f.name]:
                    hint = " (use type_encoding: scalar and no extra fields)" if f.name == "in_dim" else ""
                    raise ValueError(
                        f"bapst: preset deepmind needs {f.name} = {DEEPMIND_PRESET[f.name]!r}, "
                        f"got {getattr(self, f.name)!r}{hint}"
                    )
        if self.num_steps < 1:
            raise ValueError(f"bapst: num_steps must be >= 1, got {self.num_steps}")


def _edge_kernel(
    e: torch.Tensor,
    const: torch.Tensor,
    w_e: torch.Tensor,
    p_dst: torch.Tensor,
    p_src: torch.Tensor,
    src: torch.Tensor,
    dst: torch.Tensor,
    rest: list[tuple[torch.Tensor, torch.Tensor]],
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """``f_e`` on a block of edges, its first layer split by input block (ReLU after every layer).

    Args:
        e: [n, d] current edge latents; const: [n, H] hoisted ``e0 W_e0 + b``;
        w_e: [d, H] the ``e`` block of the first weight, transposed.
        p_dst, p_src: [n_atoms, H] node-side products of receivers and senders.
        src, dst: [n] sender and receiver of each edge.
        rest: (weight, bias) of the later linear layers of ``f_e``.
        out: optional [n, d] tensor to write the result into (no autograd).

    Returns:
        [n, d] updated edge latents.
    """
    # In place where autograd allows (addmm and add do not keep their outputs): fewer passes
    # over [n, H] memory, which bounds the speed of these small matmuls.
    z = torch.addmm(const, e, w_e, out=None if rest else out)
    z += p_dst.index_select(0, dst)
    z += p_src.index_select(0, src)
    z = torch.relu_(z)
    for i, (weight, bias) in enumerate(rest):
        z = torch.relu_(torch.addmm(bias, z, weight.t(), out=out if i == len(rest) - 1 else None))
    return z


@register_model("bapst", BapstConfig)
class Bapst(GlassModel):
    """Encode-process-decode graph network (Bapst et al. 2020); see the module docstring."""

    invariance = Invariance.NONE
    output_level = OutputLevel.NODE
    decoder_prefixes = ("decoder",)  # the decoder MLP after the last processing step
    abilities = frozenset({Ability.COMPILED})

    def __init__(self, config: BapstConfig):
        super().__init__()
        self.config = config
        d, hidden = config.latent_dim, list(config.mlp_hidden)

        def block(d_in: int) -> nn.Sequential:
            return mlp([d_in, *hidden, d], last_activation=True)

        self.node_encoder = block(config.in_dim)
        self.edge_encoder = block(config.edge_dim)
        # Input blocks, in order: [e, e0, h_dst, h0_dst, h_src, h0_src] and [sum m, h, h0].
        self.edge_update = block(6 * d)
        self.node_update = block(3 * d)
        self.decoder = mlp([d, *config.decoder_hidden, config.out_dim])
        self.sequential = config.update_order == "sequential"
        self.fast = config.fast
        self._compiled_core: CompiledOrEager | None = None

    @property
    def num_message_passing(self) -> int:
        """Hops a particle's output depends on: ``num_steps`` with sequential updates; one less
        with parallel ones (the first node update reads only the encoded edges into the particle,
        not its neighbours' latents), but at least 1."""
        if self.sequential:
            return self.config.num_steps
        return max(self.config.num_steps - 1, 1)

    def use_compiled(self, enabled: bool = True) -> None:
        """Run the fast path compiled by ``torch.compile`` (or eagerly again), also when the
        config asks for the plain path (``fast: false``; the two give the same outputs).

        Compiling costs seconds at the first call and pays over many frames; if it
        fails, the model runs eagerly after one warning line (:mod:`models.compile`).
        """
        self._compiled_core = CompiledOrEager(self._fast_core, "the bapst fast path") if enabled else None

    def forward(
        self, graph: dgl.DGLGraph, feat: torch.Tensor, eweight: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Per-particle outputs.

        Args:
            graph: graph (or batch) with ``edata[DISP]`` [n_edges, 3] = r_dst - r_src.
            feat: [n_atoms, in_dim] node input.
            eweight: optional [n_edges] weights multiplying every edge latent that
                enters a receiver's sum, in every step.

        Returns:
            [n_atoms, out_dim].
        """
        if self.fast or self._compiled_core is not None:
            return self._forward_fast(graph, feat, eweight)
        return self._forward_plain(graph, feat, eweight)

    def _forward_plain(
        self, graph: dgl.DGLGraph, feat: torch.Tensor, eweight: torch.Tensor | None
    ) -> torch.Tensor:
        """The reference: every MLP applied to the concatenation of its input blocks."""
        src, dst = graph.edges()
        h0 = self.node_encoder(feat)
        e0 = self.edge_encoder(graph.edata[schema.DISP].to(h0.dtype))
        h, e = h0, e0
        for _ in range(self.config.num_steps):
            hh = torch.cat([h, h0], dim=1)
            e_new = self.edge_update(torch.cat([e, e0, hh[dst], hh[src]], dim=1))
            received = self._receive(graph, e_new if self.sequential else e, eweight)
            h = self.node_update(torch.cat([received, hh], dim=1))
            e = e_new
        return self.decoder(h)

    @staticmethod
    def _receive(graph: dgl.DGLGraph, message: torch.Tensor, eweight: torch.Tensor | None) -> torch.Tensor:
        """[n_atoms, d] sum of (weighted) incoming edge latents, by DGL's fused copy_e/sum."""
        with graph.local_scope():
            if eweight is not None:
                message = message * eweight.to(message.dtype).unsqueeze(1)
            graph.edata["_m"] = message
            graph.update_all(fn.copy_e("_m", "_m"), fn.sum("_m", "_agg"))
            return graph.ndata["_agg"]

    def _forward_fast(
        self, graph: dgl.DGLGraph, feat: torch.Tensor, eweight: torch.Tensor | None
    ) -> torch.Tensor:
        """The plain path's function: edges sorted by receiver, then :meth:`_fast_core`."""
        src, dst = graph.edges()
        disp = graph.edata[schema.DISP].to(feat.dtype)
        weight = None if eweight is None else eweight.to(feat.dtype).unsqueeze(1)
        if not bool((dst[1:] >= dst[:-1]).all()):  # sorted once per call (outputs are per node)
            order = torch.argsort(dst, stable=True)
            src, dst, disp = src[order], dst[order], disp[order]
            weight = None if weight is None else weight[order]
        if self._compiled_core is not None and not self._compiled_core.failed:
            return self._compiled_core(feat, disp, src, dst, weight, graph.num_nodes(), 0)
        # Without autograd, chunks of edges keep every intermediate in cache; with autograd
        # the activations are saved anyway, and one block per step is faster.
        return self._fast_core(
            feat, disp, src, dst, weight, graph.num_nodes(), 0 if torch.is_grad_enabled() else EDGE_CHUNK
        )

    def _fast_core(
        self,
        feat: torch.Tensor,
        disp: torch.Tensor,
        src: torch.Tensor,
        dst: torch.Tensor,
        weight: torch.Tensor | None,
        n_atoms: int,
        chunk: int,
    ) -> torch.Tensor:
        """Encode, ``num_steps`` split-layer steps, decode, on plain tensors (compilable).

        Args:
            feat: [n_atoms, in_dim]; disp: [n_edges, 3] in ``feat``'s dtype.
            src, dst: [n_edges] senders and receivers, ``dst`` sorted.
            weight: [n_edges, 1] edge weights or None.
            n_atoms: number of nodes.
            chunk: edges per block (0: all edges in one block).

        Returns:
            [n_atoms, out_dim].
        """
        d, n_edges = self.config.latent_dim, len(src)
        h0 = self.node_encoder(feat)
        e0 = self.edge_encoder(disp)
        first_e, *later = [layer for layer in self.edge_update if isinstance(layer, nn.Linear)]
        rest_e = [(layer.weight, layer.bias) for layer in later]
        w_e, w_e0, w_dst, w_dst0, w_src, w_src0 = first_e.weight.split(d, dim=1)
        first_n, rest_n = self.node_update[0], self.node_update[1:]
        w_m, w_h, w_h0 = first_n.weight.split(d, dim=1)
        width = first_e.out_features
        # Hoisted out of the steps: e0 W_e0 + b per edge; h0's products for receivers,
        # senders and the node update (with its bias) per node, [n_atoms, 3 H].
        edge_const = nn.functional.linear(e0, w_e0, first_e.bias)
        node_bias = torch.cat([torch.zeros_like(first_e.bias), torch.zeros_like(first_e.bias), first_n.bias])
        node_const = nn.functional.linear(h0, torch.cat([w_dst0, w_src0, w_h0]), node_bias)
        w_node = torch.cat([w_dst, w_src, w_h]).t()  # [d, 3 H]: h's products, one matmul per step
        w_e_t = w_e.t()

        h, e = h0, e0
        for _ in range(self.config.num_steps):
            p_dst, p_src, p_node = torch.addmm(node_const, h, w_node).split(width, dim=1)
            p_dst, p_src = p_dst.contiguous(), p_src.contiguous()
            if not 0 < chunk < n_edges:  # one block: no slices (their backward copies whole tensors)
                e_new = _edge_kernel(e, edge_const, w_e_t, p_dst, p_src, src, dst, rest_e)
                message = e_new if self.sequential else e
                message = message if weight is None else message * weight
                received = h.new_zeros(n_atoms, d).index_add_(0, dst, message)
            else:
                received, e_new = self._chunked_step(
                    e, edge_const, w_e_t, p_dst, p_src, src, dst, rest_e, weight, chunk
                )
            e = e_new
            h = rest_n(torch.addmm(p_node, received, w_m.t()))
        return self.decoder(h)

    def _chunked_step(
        self,
        e: torch.Tensor,
        edge_const: torch.Tensor,
        w_e_t: torch.Tensor,
        p_dst: torch.Tensor,
        p_src: torch.Tensor,
        src: torch.Tensor,
        dst: torch.Tensor,
        rest_e: list[tuple[torch.Tensor, torch.Tensor]],
        weight: torch.Tensor | None,
        chunk: int,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One step's edge update and receiver sums, ``chunk`` edges at a time (no autograd).

        Returns:
            ``received`` [n_atoms, d] and the updated edge latents [n_edges, d].
        """
        received = p_dst.new_zeros(len(p_dst), e.shape[1])
        e_new = torch.empty_like(e)
        for a in range(0, len(src), chunk):
            b = min(a + chunk, len(src))
            block = e_new[a:b]
            _edge_kernel(e[a:b], edge_const[a:b], w_e_t, p_dst, p_src, src[a:b], dst[a:b], rest_e, out=block)
            message = block if self.sequential else e[a:b]
            if weight is not None:
                message = message * weight[a:b]
            received.index_add_(0, dst[a:b], message)  # receivers sorted: a streaming sum
        return received, e_new
