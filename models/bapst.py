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
from models.models import ModelConfig, register_model

UPDATE_ORDERS = ("parallel", "sequential")
PRESETS = ("none", "deepmind")

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
    """

    preset: str = "none"
    edge_dim: int = 3
    latent_dim: int = 64
    mlp_hidden: list[int] = field(default_factory=lambda: [64])
    decoder_hidden: list[int] = field(default_factory=lambda: [64, 64])
    num_steps: int = 7
    update_order: str | None = None

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


@register_model("bapst", BapstConfig)
class Bapst(nn.Module):
    """Encode-process-decode graph network (Bapst et al. 2020); see the module docstring."""

    invariance = "none"

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
