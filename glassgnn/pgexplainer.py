"""PGExplainer for per-particle regression (Luo et al., "Parameterized Explainer for
Graph Neural Network", NeurIPS 2020, arXiv:2011.04573).

One small network (DGL's layout: Linear(d, 64), ReLU, Linear(64, 1)) maps each
edge of a particle's L-hop subgraph to a mask logit; it is trained once over a
set of particles (binary-concrete samples with a temperature annealed from
5 to 1, as in DGL's example) and then explains any particle with a single
forward pass, so thousands of particles cost little more than the training.

The edge input is ``[z_src, z_dst, z_center, d_ij]``: the node embeddings of
the two endpoints and of the explained particle (the paper's node-task input)
plus the bond length. ``z`` is ``model.embed_nodes(graph, feat)`` when the model
declares ``Ability.NODE_EMBEDDING`` (:mod:`models.contract`), else ``[feat, model
output]``. The mask is symmetrised over the two directions of a bond, as in DGL
(where the computation subgraph holds both).

Why not ``dgl.nn.PGExplainer`` itself: it is written for classification (the
loss takes ``-log p[argmax]``), calls the model as ``model(graph, feat,
embed=..., edge_weight=...)`` which is not our interface, and in its training
step the masked prediction enters the loss detached (``probs.data``), so only
the regularisers would train the explainer.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import dgl
import torch
from torch import nn

from glassgnn import schema
from glassgnn.explain_subgraph import (
    Explanation,
    check_per_particle,
    khop_subgraphs,
    make_explanation,
    masked_model,
    release_training_cache,
    with_subgraph_context,
)
from glassgnn.frozen_model import frozen
from models.contract import Ability, GlassModel


@dataclass
class PGExplainerSettings:
    """Attributes (coefficient names and defaults are DGL's ``PGExplainer``'s):
    epochs: passes over the training particles.
    lr: Adam learning rate of the explainer network.
    coff_budget: weight of the sum of each particle's edge mask (size).
    coff_connect: weight of the mean entropy of the edge mask.
    temperature: (start, end) of the concrete temperature, annealed geometrically.
    max_train_nodes: train on at most this many of the particles to explain.
    batch_size: particles per optimisation step.
    hidden: width of the explainer network.
    """

    epochs: int = 300
    lr: float = 0.003
    coff_budget: float = 0.01
    coff_connect: float = 5e-4
    temperature: tuple[float, float] = (5.0, 1.0)
    max_train_nodes: int = 32
    batch_size: int = 8
    hidden: int = 64


def _embedding(model: GlassModel, graph: dgl.DGLGraph, feat: torch.Tensor) -> torch.Tensor:
    """[n_atoms, d] node embeddings of the full graph (see the module docstring)."""
    if model.supports(Ability.NODE_EMBEDDING):
        return model.embed_nodes(graph, feat)
    return torch.cat([feat, model(graph=graph, feat=feat)], dim=1)


class _Batch:
    """Everything about a batch of subgraphs that stays fixed while the explainer trains.

    ``z`` [n_atoms, d] are the node embeddings of the full graph.
    """

    def __init__(self, model, graph, feat, z, nodes, num_hops):
        self.nodes = list(nodes)
        self.graph, self.centers, self.subgraphs, self.local = khop_subgraphs(graph, self.nodes, num_hops)
        device = feat.device
        self.centers = self.centers.to(device)
        self.feat = feat[self.graph.ndata[dgl.NID].long()]
        with torch.no_grad():
            self.target = check_per_particle(model(graph=self.graph, feat=self.feat), self.graph)[
                self.centers
            ]
        # f(feat, edge_mask): the model on the batch, layer by layer where it can be (same outputs).
        self.predict = masked_model(model, self.graph, self.centers, num_hops, layered=True)
        z = z[self.graph.ndata[dgl.NID].long()]
        src, dst = self.graph.edges()
        center_of_edge = self.centers[
            torch.repeat_interleave(
                torch.arange(len(self.nodes), device=device), self.graph.batch_num_edges().to(device)
            )
        ]
        dist = self.graph.edata[schema.DIST].reshape(-1, 1).to(z.dtype)
        self.edge_input = torch.cat([z[src], z[dst], z[center_of_edge], dist], dim=1)
        # The reverse edge of each edge, itself where the computation graph lacks it.
        has_reverse = self.graph.has_edges_between(dst, src)
        self.reverse = torch.arange(self.graph.num_edges(), device=device)
        self.reverse[has_reverse] = self.graph.edge_ids(dst[has_reverse], src[has_reverse]).long()
        self.edge_seg = torch.repeat_interleave(
            torch.arange(len(self.nodes), device=device), self.graph.batch_num_edges().to(device)
        )


class RegressionPGExplainer(nn.Module):
    """The explainer network and its training (see the module docstring)."""

    def __init__(self, in_dim: int, settings: PGExplainerSettings):
        super().__init__()
        self.settings = settings
        self.elayers = nn.Sequential(
            nn.Linear(in_dim, settings.hidden), nn.ReLU(), nn.Linear(settings.hidden, 1)
        )

    def mask(self, batch: _Batch, temperature: float | None = None, gen: torch.Generator | None = None):
        """[n_edges] symmetrised edge mask; a binary-concrete sample when ``temperature`` is given."""
        logits = self.elayers(batch.edge_input).reshape(-1)
        if temperature is None:
            gate = logits.sigmoid()
        else:
            noise = torch.rand(logits.shape, generator=gen).to(logits.device).clamp(1e-6, 1 - 1e-6)
            gate = ((noise.log() - (1 - noise).log() + logits) / temperature).sigmoid()
        return (gate + gate[batch.reverse]) / 2

    def loss(self, batch: _Batch, mask: torch.Tensor) -> torch.Tensor:
        pred = batch.predict(batch.feat, mask)[batch.centers]
        s = self.settings
        scaled = mask * 0.98 + 0.01  # keeps the entropy finite, as DGL does
        entropy = -scaled * scaled.log() - (1 - scaled) * (1 - scaled).log()
        per_graph = batch.graph.batch_num_edges().to(mask.device).float()[batch.edge_seg]
        return (
            (pred - batch.target).pow(2).sum()
            + s.coff_budget * mask.sum()
            + s.coff_connect * (entropy / per_graph).sum()
        )


def explain_pgexplainer(
    model: GlassModel,
    graph: dgl.DGLGraph,
    feat: torch.Tensor,
    nodes: Sequence[int],
    num_hops: int,
    settings: PGExplainerSettings | None = None,
    seed: int = 0,
    progress: Iterator | None = None,
) -> list[Explanation]:
    """Train one PGExplainer on (up to ``max_train_nodes`` of) ``nodes``, then explain each of them.

    Args: as :func:`glassgnn.gnnexplainer.explain_gnnexplainer`.

    Returns:
        One :class:`~glassgnn.explain_subgraph.Explanation` per node, in order (``feat_importance`` is NaN:
        PGExplainer learns no feature mask).
    """
    settings = settings or PGExplainerSettings()
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    nodes = list(nodes)
    bs = settings.batch_size
    release_training_cache(model)
    graph = with_subgraph_context(model, graph)
    with frozen(model, cache=True):
        with torch.no_grad():
            z = _embedding(model, graph, feat)  # once, on the full graph
        train_nodes = nodes[: settings.max_train_nodes]
        batches = [
            _Batch(model, graph, feat, z, train_nodes[i : i + bs], num_hops)
            for i in range(0, len(train_nodes), bs)
        ]
        explainer = RegressionPGExplainer(batches[0].edge_input.shape[1], settings).to(feat.device)
        optimiser = torch.optim.Adam(explainer.parameters(), lr=settings.lr)
        t0, t1 = settings.temperature
        for epoch in range(settings.epochs):
            temperature = t0 * (t1 / t0) ** (epoch / max(settings.epochs - 1, 1))
            for batch in batches:
                optimiser.zero_grad()
                explainer.loss(batch, explainer.mask(batch, temperature, gen)).backward()
                optimiser.step()
    out: list[Explanation] = []
    # One forward pass per batch from here: nothing to memoise.
    with frozen(model), torch.no_grad():
        for i in range(0, len(nodes), bs):
            batch = _Batch(model, graph, feat, z, nodes[i : i + bs], num_hops)
            masks = explainer.mask(batch).cpu().split(batch.graph.batch_num_edges().tolist())
            no_feat = torch.full((feat.shape[1],), float("nan"))
            for j, sub in enumerate(batch.subgraphs):
                out.append(
                    make_explanation(batch.nodes[j], sub, batch.local[j], masks[j], no_feat, batch.target[j])
                )
                if progress is not None:
                    progress.update(1)
    return out
