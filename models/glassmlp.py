"""GlassMLP: a small multilayer perceptron on physics-inspired structural descriptors.

Jung, Biroli & Berthier, "Predicting dynamic heterogeneity in glass-forming liquids
by physics-inspired machine learning", PRL 130, 238202 (2023). The network reads a
particle's coarse-grained structural descriptors (radial densities and
bond-orientational order averaged over several lengths: ``construct_graph.py
--descriptors``) and predicts its propensity. Its hidden layers are deliberately
narrow: a bottleneck of 2 units followed by one hidden layer of 10 units with ELU
activations, which keeps the number of fitted parameters close to that of a linear
model (the paper's argument for its parsimony). Like ``ridge`` and ``mlp`` it sees no
neighbour beyond what the descriptors encode (no message passing).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import dgl
import torch
from torch import nn

from models.common import mlp
from models.contract import GlassModel, Invariance, OutputLevel
from models.models import ModelConfig, register_model


@dataclass
class GlassMLPConfig(ModelConfig):
    """Attributes:
    bottleneck_dim: width of the first (bottleneck) layer (2 in the paper).
    hidden_dims: widths of the hidden layers after it ([10] in the paper).
    dropout: dropout on the input descriptors during training (0: off).
    """

    bottleneck_dim: int = 2
    hidden_dims: list[int] = field(default_factory=lambda: [10])
    dropout: float = 0.0


@register_model("glassmlp", GlassMLPConfig)
class GlassMLP(GlassModel):
    num_message_passing = 0
    invariance = Invariance.SO3  # as invariant as its inputs: the descriptors are
    output_level = OutputLevel.NODE
    required_fields = ("descriptors",)

    def __init__(self, config: GlassMLPConfig):
        super().__init__()
        self.dropout = nn.Dropout(config.dropout)
        dims = [config.in_dim, config.bottleneck_dim, *config.hidden_dims, config.out_dim]
        self.net = mlp(dims, activation=nn.ELU)

    @property
    def decoder_prefixes(self) -> tuple[str, ...]:
        """The output layer, the last of ``net`` (``net.4`` with the paper's widths)."""
        return (f"net.{len(self.net) - 1}",)

    def forward(
        self, graph: dgl.DGLGraph, feat: torch.Tensor, eweight: torch.Tensor | None = None
    ) -> torch.Tensor:
        return self.net(self.dropout(feat))
