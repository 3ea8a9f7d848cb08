"""Building blocks shared by several models."""

from __future__ import annotations

from torch import nn


def mlp(
    dims: list[int], activation: type[nn.Module] = nn.ReLU, last_activation: bool = False
) -> nn.Sequential:
    """Linear layers of widths ``dims`` with ``activation`` between them (and after the last if asked)."""
    layers: list[nn.Module] = []
    for i, (d_in, d_out) in enumerate(zip(dims[:-1], dims[1:], strict=False)):
        layers.append(nn.Linear(d_in, d_out))
        if i < len(dims) - 2 or last_activation:
            layers.append(activation())
    return nn.Sequential(*layers)
