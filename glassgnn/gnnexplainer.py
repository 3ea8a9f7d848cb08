"""GNNExplainer (Ying et al., NeurIPS 2019, arXiv:1903.03894) for per-particle and graph-level predictions.

Per particle (:func:`explain_gnnexplainer`): a soft edge mask and a node-feature mask
optimised on the particle's computation subgraph (:mod:`glassgnn.explain_subgraph`),
with DGL's ``GNNExplainer`` regularisers and defaults (:class:`GNNExplainerSettings`).
A graph-level prediction (one value per snapshot) is explained on the whole graph by
DGL's ``GNNExplainer.explain_graph`` itself (:func:`explain_graph_prediction`).

Why not ``dgl.nn.GNNExplainer.explain_node`` itself: it is written for
classification and maximises ``log_softmax(logits)[argmax]``; for a regression
model with one output that is identically 0, so the mask would get no signal
from the prediction at all (only from the regularisers). Here the prediction
term is the squared change of the particle's (normalised) outputs, and the
optimisation runs with the model's parameters frozen (no parameter gradients,
and the sub-computations that do not depend on the masks done once, see
:mod:`glassgnn.frozen_model`) on a batch of particles' subgraphs at once. The
regularisers are summed per particle and Adam acts elementwise, so a batch gives
the same masks as one particle at a time (tested). A model with
``Ability.TRAINING_CACHE`` is asked to release it first (the explainers need none
of its memory).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import dgl
import numpy as np
import torch
from dgl.nn import GNNExplainer
from torch import nn

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
from models.contract import GlassModel


@dataclass
class GNNExplainerSettings:
    """Optimisation settings; coefficient names and defaults are DGL's ``GNNExplainer``'s.

    Attributes:
        epochs: Adam steps per particle.
        lr: Adam learning rate.
        alpha1: weight of the sum of the edge mask (sparsity).
        alpha2: weight of the mean entropy of the edge mask.
        beta1: weight of the mean of the feature mask.
        beta2: weight of the mean entropy of the feature mask.
        batch_size: particles optimised together.
        layered: run each message-passing layer on the edges it needs only, when the model
            declares ``Ability.LAYERS`` (:func:`glassgnn.explain_subgraph.layer_edge_ids`; same masks).
    """

    epochs: int = 300
    lr: float = 0.01
    alpha1: float = 0.005
    alpha2: float = 1.0
    beta1: float = 1.0
    beta2: float = 0.1
    batch_size: int = 8
    layered: bool = True


def _entropy(p: torch.Tensor, eps: float = 1e-15) -> torch.Tensor:
    return -p * torch.log(p + eps) - (1 - p) * torch.log(1 - p + eps)


def _initial_masks(subgraph: dgl.DGLGraph, in_dim: int, node: int, seed: int) -> tuple[torch.Tensor, ...]:
    """DGL's initial mask logits, drawn from a generator seeded by (seed, node) so that
    results do not depend on the batch a particle lands in."""
    gen = torch.Generator().manual_seed(seed * 1_000_003 + int(node))
    std = nn.init.calculate_gain("relu") * math.sqrt(2.0 / (2 * subgraph.num_nodes()))
    edge = torch.randn(subgraph.num_edges(), generator=gen) * std
    feat = torch.randn(in_dim, generator=gen) * 0.1
    return edge, feat


def explain_gnnexplainer(
    model: GlassModel,
    graph: dgl.DGLGraph,
    feat: torch.Tensor,
    nodes: Sequence[int],
    num_hops: int,
    settings: GNNExplainerSettings | None = None,
    seed: int = 0,
    progress: Iterator | None = None,
) -> list[Explanation]:
    """GNNExplainer edge and feature masks for ``nodes`` (see the module docstring).

    Args:
        model: per-particle model with ``forward(graph, feat, eweight)``.
        graph: the full graph, on the model's device.
        feat: [n_atoms, in_dim] its node input.
        nodes: global ids of the particles to explain.
        num_hops: subgraph radius in hops (the model's message-passing depth).
        settings: optimisation settings (DGL's defaults, 300 epochs, batches of 8).
        seed: seeds the initial masks (one stream per particle).
        progress: optional tqdm bar, advanced by one per particle.

    Returns:
        One :class:`~glassgnn.explain_subgraph.Explanation` per node, in order.
    """
    settings = settings or GNNExplainerSettings()
    out: list[Explanation] = []
    device = feat.device
    release_training_cache(model)
    graph = with_subgraph_context(model, graph)
    for start in range(0, len(nodes), settings.batch_size):
        # One memo per batch: what it keeps (e.g. SchNet's filters on every edge) dies with the batch.
        with frozen(model, cache=True):
            chunk = list(nodes[start : start + settings.batch_size])
            batch, centers, subgraphs, local = khop_subgraphs(graph, chunk, num_hops)
            centers = centers.to(device)
            sub_feat = feat[batch.ndata[dgl.NID].long()]
            with torch.no_grad():
                original = check_per_particle(model(graph=batch, feat=sub_feat), batch)[centers]
            inits = [
                _initial_masks(sub, feat.shape[1], n, seed) for sub, n in zip(subgraphs, chunk, strict=True)
            ]
            edge_logits = nn.Parameter(torch.cat([e for e, _ in inits]).to(device))
            feat_logits = nn.Parameter(torch.stack([f for _, f in inits]).to(device))
            optimiser = torch.optim.Adam([edge_logits, feat_logits], lr=settings.lr)
            edges_per_graph = dgl.broadcast_edges(batch, batch.batch_num_edges().to(device).float())
            predict = masked_model(model, batch, centers, num_hops, settings.layered)
            for _ in range(settings.epochs):
                optimiser.zero_grad()
                edge_mask, feat_mask = edge_logits.sigmoid(), feat_logits.sigmoid()
                pred = predict(sub_feat * dgl.broadcast_nodes(batch, feat_mask), edge_mask)
                loss = (pred[centers] - original).pow(2).sum()
                loss = loss + settings.alpha1 * edge_mask.sum()
                loss = loss + settings.alpha2 * (_entropy(edge_mask) / edges_per_graph).sum()
                loss = loss + settings.beta1 * feat_mask.mean(dim=1).sum()
                loss = loss + settings.beta2 * _entropy(feat_mask).mean(dim=1).sum()
                loss.backward()
                optimiser.step()
            edge_mask = edge_logits.detach().sigmoid().cpu().split(batch.batch_num_edges().tolist())
            feat_mask = feat_logits.detach().sigmoid().cpu()
            for i, sub in enumerate(subgraphs):
                out.append(make_explanation(chunk[i], sub, local[i], edge_mask[i], feat_mask[i], original[i]))
                if progress is not None:
                    progress.update(1)
    return out


@dataclass
class GraphExplanation:
    """An explained graph-level prediction: one importance per edge of the whole graph.

    Attributes:
        importance: [n_edges] edge importance in [0, 1], in the graph's edge order.
        feat_importance: [in_dim] node-feature importance in [0, 1].
        prediction: [out_dim] the model's prediction for the graph (normalised units).
    """

    importance: np.ndarray
    feat_importance: np.ndarray
    prediction: np.ndarray


class _KeepPrediction(nn.Module):
    """A graph-level regression model seen as a two-class classifier, for DGL's explain_graph.

    DGL's ``GNNExplainer.explain_graph`` minimises ``-log_softmax(logits)[argmax of the
    unmasked logits]`` plus its mask regularisers; for one regression output that
    term is identically 0. With logits ``[-d^2, -eps]``, d^2 the squared change of
    the normalised outputs from the unmasked ones, the unmasked argmax is class 0
    and the term becomes ``softplus(d^2 - eps)``: smallest when the masked graph keeps
    the prediction, increasing with d^2 (slope 1/2 at d = 0), the regression
    counterpart of DGL's loss. Everything else (mask initialisation, regularisers,
    Adam, epochs) is DGL's.
    """

    def __init__(self, model: nn.Module, original: torch.Tensor):
        super().__init__()
        self.model = model
        self.register_buffer("original", original)

    def forward(self, graph: dgl.DGLGraph, feat: torch.Tensor, eweight: torch.Tensor | None = None):
        change = (self.model(graph=graph, feat=feat, eweight=eweight) - self.original).pow(2).sum(-1)
        return torch.stack([-change, torch.full_like(change, -1e-6)], dim=-1)


def explain_graph_prediction(
    model: GlassModel,
    graph: dgl.DGLGraph,
    feat: torch.Tensor,
    settings: GNNExplainerSettings | None = None,
    seed: int = 0,
    log: bool = True,
) -> GraphExplanation:
    """Edge and feature masks explaining a graph-level model's prediction for one whole graph.

    DGL's ``GNNExplainer.explain_graph`` (its coefficients from ``settings``; ``batch_size``
    unused) on the model seen through :class:`_KeepPrediction`, with the model frozen
    and its mask-independent work memoised (:mod:`glassgnn.frozen_model`).

    Args:
        model: graph-level model, ``forward(graph, feat, eweight)`` -> [1, out_dim].
        graph: one (unbatched) graph on the model's device.
        feat: [n_atoms, in_dim] its node input.
        settings: epochs, learning rate and regulariser weights.
        seed: seeds DGL's initial masks (drawn from torch's global generator).
        log: show DGL's progress bar.
    """
    settings = settings or GNNExplainerSettings()
    if graph.batch_size != 1:
        raise ValueError(f"explain one graph at a time, got a batch of {graph.batch_size}")
    release_training_cache(model)
    with frozen(model, cache=True):
        with torch.no_grad():
            original = model(graph=graph, feat=feat)
        if original.shape[0] != 1:
            raise ValueError(
                f"the model returns {original.shape[0]} rows for one graph; explain_graph needs a "
                "graph-level model (one row per graph)"
            )
        explainer = GNNExplainer(
            _KeepPrediction(model, original),
            num_hops=1,  # used by explain_node only
            lr=settings.lr,
            num_epochs=settings.epochs,
            alpha1=settings.alpha1,
            alpha2=settings.alpha2,
            beta1=settings.beta1,
            beta2=settings.beta2,
            log=log,
        )
        torch.manual_seed(seed)
        feat_mask, edge_mask = explainer.explain_graph(graph, feat)
    return GraphExplanation(
        importance=edge_mask.cpu().numpy().astype(np.float64),
        feat_importance=feat_mask.reshape(-1).cpu().numpy().astype(np.float64),
        prediction=original[0].cpu().numpy().astype(np.float64),
    )
