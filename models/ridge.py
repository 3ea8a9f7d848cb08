"""Ridge regression on per-particle structural descriptors: the descriptor floor.

Boattini, Smallenburg & Filion, "Averaging local structure to predict the dynamic
propensity in supercooled liquids", PRL 127, 088007 (2021), showed that a linear
model on coarse-grained local structure predicts propensity as well as Bapst et
al.'s graph network; Jung, Biroli & Berthier (PRL 130, 238202, 2023) use the same
descriptors in GlassMLP. Every graph network here should be put next to this model.

The model is linear in the node input ``feat`` (one-hot type plus the standardised
``descriptors`` field of ``construct_graph.py --descriptors``): y = feat W + b. It is
fitted in closed form, not by gradient steps (``Ability.CLOSED_FORM_FIT``):
:meth:`Ridge.fit_closed_form` accumulates the normal equations of the training
particles and solves them for every regularisation strength in ``alphas`` at once
(one eigendecomposition); it keeps the strength whose fit the training loop scores
best on the validation split (``selection_metric``).
The intercept is not penalised (features and targets are centred first).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import dgl
import torch
from torch import nn

from models.contract import Ability, GlassModel, Invariance, OutputLevel
from models.models import ModelConfig, register_model


@dataclass
class RidgeConfig(ModelConfig):
    """Attributes:
    alphas: regularisation strengths tried (penalty alpha |W|^2 on standardised inputs, summed
        squared error over the training particles); the one best on validation is kept.
    """

    alphas: list[float] = field(default_factory=lambda: [10.0**k for k in range(-2, 7)])

    def __post_init__(self) -> None:
        if not self.alphas or any(not (a >= 0) for a in self.alphas):
            raise ValueError(f"ridge: alphas must be a non-empty list of numbers >= 0, got {self.alphas}")


class NormalEquations:
    """Sums over training rows that define every ridge solution: X^T X, X^T y, sums and count.

    Accumulated in float64 chunk by chunk (a split need not fit in memory at once).
    """

    def __init__(self, in_dim: int, out_dim: int):
        self.xtx = torch.zeros(in_dim, in_dim, dtype=torch.float64)
        self.xty = torch.zeros(in_dim, out_dim, dtype=torch.float64)
        self.x_sum = torch.zeros(in_dim, dtype=torch.float64)
        self.y_sum = torch.zeros(out_dim, dtype=torch.float64)
        self.count = 0

    def add(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """Add rows x [n, in_dim] with targets y [n, out_dim]."""
        x, y = x.double().cpu(), y.double().cpu()
        self.xtx += x.T @ x
        self.xty += x.T @ y
        self.x_sum += x.sum(0)
        self.y_sum += y.sum(0)
        self.count += len(x)

    def solve(self, alphas: list[float]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Weights [in_dim, out_dim] and bias [out_dim] minimising
        sum |x W + b - y|^2 + alpha |W|^2, for each alpha."""
        if self.count == 0:
            raise ValueError("ridge: no training particle (check the mask)")
        x_mean, y_mean = self.x_sum / self.count, self.y_sum / self.count
        # centred sums: the intercept then takes no penalty
        xtx = self.xtx - self.count * torch.outer(x_mean, x_mean)
        xty = self.xty - self.count * torch.outer(x_mean, y_mean)
        eigval, eigvec = torch.linalg.eigh(xtx)
        projected = eigvec.T @ xty
        # Directions X does not span (one-hot types sum to one, so centred X is rank deficient)
        # have eigenvalues at round-off level, of either sign: at alpha = 0 they are left out,
        # as numpy's lstsq and pinv do (the minimum-norm solution), not divided by ~0.
        eigval = eigval.clamp(min=0.0)
        spanned = eigval > eigval.max() * len(eigval) * torch.finfo(eigval.dtype).eps
        out = []
        for alpha in alphas:
            inverse = torch.where(spanned | (alpha > 0), 1.0 / (eigval + alpha), 0.0)
            weight = eigvec @ (projected * inverse.unsqueeze(1))
            out.append((weight, y_mean - x_mean @ weight))
        return out


@register_model("ridge", RidgeConfig)
class Ridge(GlassModel):
    """y = feat W + b, fitted by :meth:`fit_closed_form`; ``forward`` ignores the graph's edges."""

    num_message_passing = 0
    invariance = Invariance.SO3  # as invariant as its inputs: the descriptors are
    output_level = OutputLevel.NODE
    decoder_prefixes = ("linear",)  # its one layer; fitted in closed form, never fine-tuned
    abilities = frozenset({Ability.CLOSED_FORM_FIT})
    required_fields = ("descriptors",)

    def __init__(self, config: RidgeConfig):
        super().__init__()
        self.alphas = list(config.alphas)
        self.linear = nn.Linear(config.in_dim, config.out_dim)  # until fitted: PyTorch's init
        # the strength selected on validation, saved with the weights
        self.register_buffer("alpha", torch.tensor(float("nan"), dtype=torch.float64))

    def fit_closed_form(
        self, rows: Iterable[tuple[torch.Tensor, torch.Tensor]], score: Callable[[], float]
    ) -> list[dict[str, float]]:
        """Solve for every alpha of the config; keep the one ``score`` (validation) ranks best.

        Returns ``[{"alpha": a, "score": s}, ...]`` in the order of ``alphas``.
        """
        equations = NormalEquations(self.linear.in_features, self.linear.out_features)
        for feat, target in rows:
            equations.add(feat, target)
        tried, best = [], None
        for alpha, (weight, bias) in zip(self.alphas, equations.solve(self.alphas), strict=True):
            self._load(alpha, weight.T, bias)
            value = float(score())
            tried.append({"alpha": alpha, "score": value})
            if value == value and (best is None or value > best[0]):  # NaN never wins
                best = (value, alpha, weight.T, bias)
        if best is None:
            raise ValueError("ridge: the validation score is NaN for every alpha")
        self._load(*best[1:])
        return tried

    @torch.no_grad()
    def _load(self, alpha: float, weight: torch.Tensor, bias: torch.Tensor) -> None:
        self.linear.weight.copy_(weight.to(self.linear.weight))
        self.linear.bias.copy_(bias.to(self.linear.bias))
        self.alpha.fill_(alpha)

    def forward(
        self, graph: dgl.DGLGraph, feat: torch.Tensor, eweight: torch.Tensor | None = None
    ) -> torch.Tensor:
        return self.linear(feat)
