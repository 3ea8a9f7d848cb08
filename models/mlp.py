"""Per-particle multilayer perceptron: the floor every graph network must beat.

It sees only a particle's own input (its type and optional per-atom fields),
never its neighbours, so it predicts the mean target of each type at best.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import dgl
import torch

from models.common import mlp
from models.contract import GlassModel, Invariance, OutputLevel
from models.models import ModelConfig, register_model


@dataclass
class MLPConfig(ModelConfig):
    """Attributes:
    hidden_dims: widths of the hidden layers.
    """

    hidden_dims: list[int] = field(default_factory=lambda: [64, 64])


@register_model("mlp", MLPConfig)
class MLP(GlassModel):
    num_message_passing = 0  # never reads a neighbour
    invariance = Invariance.SO3  # sees no geometry at all
    output_level = OutputLevel.NODE

    def __init__(self, config: MLPConfig):
        super().__init__()
        self.net = mlp([config.in_dim, *config.hidden_dims, config.out_dim])

    @property
    def decoder_prefixes(self) -> tuple[str, ...]:
        """The output layer, the last of ``net`` (``net.4`` with two hidden layers)."""
        return (f"net.{len(self.net) - 1}",)

    def forward(
        self, graph: dgl.DGLGraph, feat: torch.Tensor, eweight: torch.Tensor | None = None
    ) -> torch.Tensor:
        return self.net(feat)
