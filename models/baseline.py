"""A network that learns the residual of the descriptor floor (``baseline: ridge``).

prediction = ridge(feat) + gate * network(graph, feat): the ridge part is the
closed-form fit of :mod:`models.ridge` on the same node inputs (fitted once on the
training split before the first step, its strength chosen on validation, then
frozen); ``gate`` is one trainable number that starts at 0, so training starts
exactly at the floor and the network's first gradients move the gate (ReZero,
Bachlechner et al., 2020). The gate is stored divided by ``GATE_SCALE``: Adam moves a
parameter by about one learning rate per step whatever its gradient's size, so the
scale lets the gate reach order 1 within tens of steps instead of a thousand (a
CuZr epoch has only six steps). On the CPU budgets of our users a graph network from
scratch spends its first minutes on a plateau below what a linear model of the
descriptors already knows; this starts it there instead. ``input_dropout`` drops node
inputs of the network part only (training only; the ridge part always reads all of them):
with several hundred descriptor columns per particle the network memorises the training
particles within minutes, and a penalty on its weights would shrink the gate with them.
"""

from __future__ import annotations

from collections.abc import Mapping

import dgl
import torch
from torch import nn

from models.contract import Ability, GlassModel, Invariance, OutputLevel
from models.ridge import Ridge, RidgeConfig

GATE_SCALE = 20.0
# Abilities of the network that the sum keeps: they concern the whole call (the per-layer
# ones would leave out the ridge part).
PASSED_ON = {Ability.SUBGRAPH_CONTEXT, Ability.COMPILED, Ability.NODE_EMBEDDING, Ability.TRAINING_CACHE}


class RidgeBaseline(GlassModel):
    """``ridge(feat) + gate * network(graph, feat, eweight)``; same call as the wrapped network.

    Its declarations are the network's (depth, invariance: the ridge part reads only the
    particle's own input); of its abilities it passes on those that act on the whole
    network's call (not the per-layer ones).

    Args:
        network: any registered per-particle model.
        in_dim, out_dim: widths of ``feat`` and of the output (the network's).
        input_dropout: probability of zeroing each input the network part reads (training only).
    """

    def __init__(self, network: GlassModel, in_dim: int, out_dim: int, input_dropout: float = 0.0):
        super().__init__()
        self.network = network
        self.input_dropout = nn.Dropout(input_dropout)
        self.ridge = Ridge(RidgeConfig(in_dim=in_dim, out_dim=out_dim))
        self.ridge.requires_grad_(False)
        self.gate = nn.Parameter(torch.zeros(()))

    output_level = OutputLevel.NODE

    @property
    def invariance(self) -> Invariance:
        return self.network.invariance

    @property
    def num_message_passing(self) -> int:
        return self.network.num_message_passing

    @property
    def abilities(self) -> frozenset[Ability]:
        return self.network.abilities & PASSED_ON

    @property
    def decoder_prefixes(self) -> tuple[str, ...]:
        """The network's decoder and the gate (the ridge part is fixed anyway)."""
        return (*(f"network.{p}" for p in self.network.decoder_prefixes), "gate")

    def subgraph_context(self, graph: dgl.DGLGraph) -> Mapping[str, torch.Tensor]:
        return self.network.subgraph_context(graph)

    def use_compiled(self, enabled: bool = True) -> None:
        self.network.use_compiled(enabled)

    def embed_nodes(
        self, graph: dgl.DGLGraph, feat: torch.Tensor, eweight: torch.Tensor | None = None
    ) -> torch.Tensor:
        return self.network.embed_nodes(graph, feat, eweight)

    def release_cache(self) -> None:
        self.network.release_cache()

    def forward(
        self, graph: dgl.DGLGraph, feat: torch.Tensor, eweight: torch.Tensor | None = None
    ) -> torch.Tensor:
        gate = GATE_SCALE * self.gate
        hidden = self.network(graph=graph, feat=self.input_dropout(feat), eweight=eweight)
        return self.ridge(graph, feat) + gate * hidden
