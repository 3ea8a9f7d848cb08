"""Edge-importance explanations of per-particle predictions, and their fidelity.

Two explainers, both returning one importance in [0, 1] per edge of the
explained particle's computation subgraph (:func:`computation_subgraph`: its
L-hop neighbourhood, L = the model's declared depth ``num_message_passing``, so the subgraph
gives exactly the full-graph prediction of that particle):

- GNNExplainer (Ying et al., NeurIPS 2019, arXiv:1903.03894): a soft edge mask and
  a node-feature mask optimised per particle, with DGL's ``GNNExplainer``
  regularisers and defaults (:class:`GNNExplainerSettings`).
- PGExplainer (Luo et al., NeurIPS 2020, arXiv:2011.04573): see
  :mod:`glassgnn.pgexplainer`.

A graph-level prediction (one value per snapshot) is explained on the whole
graph by DGL's ``GNNExplainer.explain_graph`` itself (:func:`explain_graph_prediction`).

Why not ``dgl.nn.GNNExplainer.explain_node`` itself: it is written for
classification and maximises ``log_softmax(logits)[argmax]``; for a regression
model with one output that is identically 0, so the mask would get no signal
from the prediction at all (only from the regularisers). Here the prediction
term is the squared change of the particle's (normalised) outputs, and the
optimisation runs with the model's parameters frozen (no parameter gradients,
and the sub-computations that do not depend on the masks done once, see
:mod:`glassgnn.frozen_model`) on a batch of particles' subgraphs at once. The regularisers are summed per
particle and Adam acts elementwise, so a batch gives the same masks as one
particle at a time (tested). A model that declares ``Ability.LAYERS`` runs each layer
on only the edges that layer needs (:func:`layer_edge_ids`; same masks, tested), and
updates only the particles it must when it also takes DGL blocks (``Ability.BLOCKS``,
:func:`layer_blocks`; SchNet, whose frozen convolution is
:class:`models.masked_conv.MaskedFilterConv`). A model with ``Ability.TRAINING_CACHE``
is asked to release it first (the explainers need none of its memory).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import dgl
import numpy as np
import torch
from dgl.nn import GNNExplainer
from torch import nn

from glassgnn.frozen_model import frozen
from models.contract import Ability, GlassModel


def release_training_cache(model: GlassModel) -> None:
    """Free what a model keeps between training steps (``Ability.TRAINING_CACHE``), if it keeps any:
    an explainer never trains it."""
    if model.supports(Ability.TRAINING_CACHE):
        model.release_cache()


@dataclass
class Explanation:
    """One explained particle.

    Attributes:
        node: global id of the particle in its graph.
        center: its index inside the subgraph.
        nodes: [n_sub] global node ids of the subgraph.
        edge_ids: [n_sub_edges] global edge ids of the subgraph's edges.
        src, dst: [n_sub_edges] subgraph-local endpoints (sender, receiver).
        importance: [n_sub_edges] edge importance in [0, 1].
        feat_importance: [in_dim] node-feature importance in [0, 1] (NaN if the
            explainer has none).
        prediction: [out_dim] model output for the particle (normalised units).
    """

    node: int
    center: int
    nodes: np.ndarray
    edge_ids: np.ndarray
    src: np.ndarray
    dst: np.ndarray
    importance: np.ndarray
    feat_importance: np.ndarray
    prediction: np.ndarray


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
        layered: run each message-passing layer on the edges it needs only, when the
            model declares ``Ability.LAYERS`` (see :func:`layer_edge_ids`; same masks).
    """

    epochs: int = 300
    lr: float = 0.01
    alpha1: float = 0.005
    alpha2: float = 1.0
    beta1: float = 1.0
    beta2: float = 0.1
    batch_size: int = 8
    layered: bool = True


def computation_subgraph(graph: dgl.DGLGraph, node: int, num_hops: int) -> tuple[dgl.DGLGraph, int]:
    """The edges and particles that an L-layer message-passing model reads to predict ``node``.

    All particles within L hops upstream (``dgl.khop_in_subgraph``), but only the
    edges whose receiver lies within L-1 hops: a message into a particle L hops
    away would change its state after the last layer that reaches ``node``. This
    is GNNExplainer's computation graph; in a 4-hop CuZr neighbourhood at 5 Å it
    holds about half of the induced subgraph's edges, with the same prediction.

    Returns:
        The subgraph (``ndata[dgl.NID]``, ``edata[dgl.EID]``: ids in ``graph``) and
        the index of ``node`` inside it.
    """
    sub, inverse = dgl.khop_in_subgraph(graph, int(node), num_hops)
    center = int(inverse[0])
    hops = torch.full((sub.num_nodes(),), num_hops, dtype=torch.int64, device=sub.device)
    hops[center] = 0
    frontier = inverse
    for hop in range(1, num_hops):
        senders = sub.in_edges(frontier)[0].unique()
        frontier = senders[hops[senders] == num_hops]
        hops[frontier] = hop
    keep = torch.nonzero(hops[sub.edges()[1]] < num_hops).reshape(-1)
    pruned = dgl.edge_subgraph(sub, keep, relabel_nodes=False)
    pruned.ndata[dgl.NID] = sub.ndata[dgl.NID]
    pruned.edata[dgl.EID] = sub.edata[dgl.EID][keep]
    return pruned, center


def with_subgraph_context(model: GlassModel, graph: dgl.DGLGraph) -> dgl.DGLGraph:
    """``graph`` carrying the node data the model needs to give its outputs on a subgraph.

    A model whose outputs depend on more than the L-hop neighbourhood, e.g. a GCN
    normalised by its neighbours' degrees (set by particles one hop further),
    declares ``Ability.SUBGRAPH_CONTEXT``: ``model.subgraph_context(graph) -> {key:
    [n_atoms, ...] tensor}``; the subgraphs then carry those values, so every explained
    subgraph gives the full-graph prediction. Other models get ``graph`` itself.

    Returns:
        ``graph``, or a view of it (``local_var``: the caller's graph is unchanged)
        with the context added to ``ndata``.
    """
    if not model.supports(Ability.SUBGRAPH_CONTEXT):
        return graph
    graph = graph.local_var()
    graph.ndata.update(model.subgraph_context(graph))
    return graph


def khop_subgraphs(
    graph: dgl.DGLGraph, nodes: Sequence[int], num_hops: int
) -> tuple[dgl.DGLGraph, torch.Tensor, list[dgl.DGLGraph], list[int]]:
    """The :func:`computation_subgraph` of each node, batched.

    Returns:
        The batch, [B] indices of the explained particles inside it, the
        list of subgraphs (each with ``ndata[dgl.NID]`` and ``edata[dgl.EID]``)
        and the index of each particle inside its own subgraph.
    """
    subgraphs, centers = [], []
    for node in nodes:
        sub, center = computation_subgraph(graph, node, num_hops)
        subgraphs.append(sub)
        centers.append(center)
    batch = dgl.batch(subgraphs)
    offsets = torch.cumsum(batch.batch_num_nodes(), 0) - batch.batch_num_nodes()
    return batch, offsets.cpu() + torch.tensor(centers), subgraphs, centers


def layer_edge_ids(graph: dgl.DGLGraph, centers: torch.Tensor, num_hops: int) -> list[torch.Tensor]:
    """The edges each of ``num_hops`` message-passing layers needs for the outputs at ``centers``.

    After layer l (1..L) only the particles within L-l hops upstream of a centre still
    reach a centre's output, so layer l needs only the edges into them: in a 4-hop CuZr
    computation subgraph 21,300, 6,900, 1,200 and 35 edges instead of 4 x 21,300. A
    model with ``Ability.LAYERS``, ``forward_layers(graphs, feat, eweights)`` (layer l reads
    ``graphs[l]``: all particles, a subset of the edges with their data, weighted by
    ``eweights[l]``) then gives the centres' outputs exactly, at a fraction of the work.

    Args:
        graph: computation subgraphs (e.g. the batch of :func:`khop_subgraphs`).
        centers: [B] the explained particles in it.
        num_hops: number of layers L.

    Returns:
        L tensors of edge ids, layer 1 first, each sorted.
    """
    hop = torch.full((graph.num_nodes(),), num_hops + 1, dtype=torch.int64, device=graph.device)
    hop[centers] = 0
    frontier = centers
    for h in range(1, num_hops):
        senders = graph.in_edges(frontier)[0].unique()
        frontier = senders[hop[senders] > h]
        hop[frontier] = h
    receiver_hop = hop[graph.edges()[1].long()]
    return [torch.nonzero(receiver_hop <= num_hops - layer).reshape(-1) for layer in range(1, num_hops + 1)]


def layer_blocks(
    graph: dgl.DGLGraph, centers: torch.Tensor, num_hops: int
) -> tuple[list[dgl.DGLBlock], list[torch.Tensor]]:
    """:func:`layer_edge_ids` as DGL blocks that also drop the particles a layer need not update.

    Block l (1..L) has as destination nodes the particles within L-l hops upstream of a
    centre, as source nodes those within L-l+1 hops (destination nodes first, DGL's
    convention), and the edges into its destination nodes; block L's destination nodes
    are ``centers`` in order. Built from the last layer back, as DGL's samplers do. In a
    4-hop CuZr subgraph layer 1 then updates about 500 particles instead of 1,450.

    Returns:
        The L blocks, layer 1 first (node data ``dgl.NID`` and edge data ``dgl.EID``: ids in
        ``graph``; the edge data of ``graph`` copied), and their edge ids (as ``dgl.EID``).
    """
    blocks, eids = [], []
    dst = centers
    for _ in range(num_hops):
        into = dgl.in_subgraph(graph, dst)
        block = dgl.to_block(into, dst_nodes=dst)
        ids = into.edata[dgl.EID][block.edata[dgl.EID].long()]
        block.edata[dgl.EID] = ids
        blocks.append(block)
        eids.append(ids)
        dst = block.srcdata[dgl.NID]
    return blocks[::-1], eids[::-1]


def masked_model(
    model: GlassModel, batch: dgl.DGLGraph, centers: torch.Tensor, num_hops: int, layered: bool
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """``f(feat, edge_mask) -> [n_nodes, out_dim]``, exact at ``centers``: the model on ``batch``,
    or layer by layer on the edges each layer needs (:func:`layer_edge_ids`) when ``layered``
    and the model declares ``Ability.LAYERS`` with exactly ``num_hops`` layers; on
    :func:`layer_blocks` when it also declares ``Ability.BLOCKS`` (the other rows are then 0)."""
    if not (layered and model.supports(Ability.LAYERS) and model.num_message_passing == num_hops):
        return lambda feat, mask: model(graph=batch, feat=feat, eweight=mask)
    if model.supports(Ability.BLOCKS):
        blocks, block_eids = layer_blocks(batch, centers, num_hops)
        inputs = blocks[0].srcdata[dgl.NID].long()

        def on_blocks(feat: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            out = model.forward_layers(blocks, feat[inputs], [mask[e] for e in block_eids])
            return out.new_zeros(batch.num_nodes(), out.shape[1]).index_copy(0, centers, out)

        return on_blocks
    eids = layer_edge_ids(batch, centers, num_hops)
    graphs = [dgl.edge_subgraph(batch, e, relabel_nodes=False, store_ids=False) for e in eids]
    return lambda feat, mask: model.forward_layers(graphs, feat, [mask[e] for e in eids])


def _segment_ids(counts: torch.Tensor) -> torch.Tensor:
    return torch.repeat_interleave(torch.arange(len(counts), device=counts.device), counts)


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
        One :class:`Explanation` per node, in order.
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
            node_seg = _segment_ids(batch.batch_num_nodes())
            edge_seg = _segment_ids(batch.batch_num_edges())
            with torch.no_grad():
                original = check_per_particle(model(graph=batch, feat=sub_feat), batch)[centers]
            inits = [
                _initial_masks(sub, feat.shape[1], n, seed) for sub, n in zip(subgraphs, chunk, strict=True)
            ]
            edge_logits = nn.Parameter(torch.cat([e for e, _ in inits]).to(device))
            feat_logits = nn.Parameter(torch.stack([f for _, f in inits]).to(device))
            optimiser = torch.optim.Adam([edge_logits, feat_logits], lr=settings.lr)
            edges_per_graph = batch.batch_num_edges().to(device).float()[edge_seg]
            predict = masked_model(model, batch, centers, num_hops, settings.layered)
            for _ in range(settings.epochs):
                optimiser.zero_grad()
                edge_mask, feat_mask = edge_logits.sigmoid(), feat_logits.sigmoid()
                pred = predict(sub_feat * feat_mask[node_seg], edge_mask)
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


def check_per_particle(pred: torch.Tensor, graph: dgl.DGLGraph) -> torch.Tensor:
    """``pred`` [n_atoms, k] unchanged; an error if the model is not per-particle (e.g. pooled)."""
    if pred.shape[0] != graph.num_nodes():
        raise ValueError(
            f"the model returns {pred.shape[0]} rows for {graph.num_nodes()} particles; "
            "only per-particle models can be explained"
        )
    return pred


def make_explanation(
    node: int, sub: dgl.DGLGraph, center: int, importance: torch.Tensor, feat_imp: torch.Tensor, pred
) -> Explanation:
    """An :class:`Explanation` from a :func:`computation_subgraph` and its masks."""
    src, dst = sub.edges()
    return Explanation(
        node=int(node),
        center=center,
        nodes=sub.ndata[dgl.NID].cpu().numpy(),
        edge_ids=sub.edata[dgl.EID].cpu().numpy(),
        src=src.cpu().numpy(),
        dst=dst.cpu().numpy(),
        importance=importance.numpy().astype(np.float64),
        feat_importance=np.asarray(feat_imp, dtype=np.float64),
        prediction=pred.detach().cpu().numpy().astype(np.float64),
    )


def explained_subgraph(graph: dgl.DGLGraph, explanation: Explanation) -> dgl.DGLGraph:
    """The explanation's subgraph, with its edges in the explanation's order and all node/edge data."""
    device = graph.device
    sub = dgl.graph(
        (torch.as_tensor(explanation.src, device=device), torch.as_tensor(explanation.dst, device=device)),
        num_nodes=len(explanation.nodes),
    )
    nodes = torch.as_tensor(explanation.nodes, device=device)
    edges = torch.as_tensor(explanation.edge_ids, device=device)
    for key, value in graph.ndata.items():
        sub.ndata[key] = value[nodes]
    for key, value in graph.edata.items():
        sub.edata[key] = value[edges]
    sub.ndata[dgl.NID] = nodes
    sub.edata[dgl.EID] = edges
    return sub


def bonds(
    src: np.ndarray, dst: np.ndarray, importance: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Undirected bonds of a subgraph and their importance.

    Args:
        src, dst: [n_edges] local endpoints; both directions of a pair are one bond.
        importance: [n_edges] edge importance.

    Returns:
        ``pairs`` [n_bonds, 2] (i < j, self-loops left out), ``importance``
        [n_bonds] the mean over the bond's directed edges (as PGExplainer
        symmetrises), and ``bond_of_edge`` [n_edges] (-1 for self-loops).
    """
    lo, hi = np.minimum(src, dst), np.maximum(src, dst)
    keep = lo != hi
    pairs, inverse = np.unique(np.c_[lo[keep], hi[keep]], axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    total = np.bincount(inverse, weights=importance[keep], minlength=len(pairs))
    mean = total / np.bincount(inverse, minlength=len(pairs))
    bond_of_edge = np.full(len(src), -1, dtype=np.int64)
    bond_of_edge[keep] = inverse
    return pairs.reshape(-1, 2), mean, bond_of_edge


def fidelity(
    model: GlassModel,
    graph: dgl.DGLGraph,
    feat: torch.Tensor,
    explanation: Explanation,
    k: int,
    rng: np.random.Generator,
    scale: torch.Tensor | None = None,
) -> dict[str, float]:
    """:func:`bond_fidelity` of a particle's explanation, on its subgraph rebuilt from ``graph``.

    Args:
        model: the explained model.
        graph: full graph; the particle's subgraph is rebuilt from the explanation.
        feat: [n_atoms, in_dim] node input of the full graph.
        explanation: output of an explainer.
        k, rng, scale: as :func:`bond_fidelity`.
    """
    sub = explained_subgraph(with_subgraph_context(model, graph), explanation)
    sub_feat = feat[sub.ndata[dgl.NID].long()]
    e = explanation
    return bond_fidelity(model, sub, sub_feat, e.src, e.dst, e.importance, k, rng, scale, row=e.center)


@torch.no_grad()
def bond_fidelity(
    model: GlassModel,
    graph: dgl.DGLGraph,
    feat: torch.Tensor,
    src: np.ndarray,
    dst: np.ndarray,
    importance: np.ndarray,
    k: int,
    rng: np.random.Generator,
    scale: torch.Tensor | None = None,
    row: int = 0,
) -> dict[str, float]:
    """Change of one output row when bonds are switched off through ``eweight``.

    ``plus``: the top-k bonds by importance removed; ``minus``: only the top-k
    bonds kept; ``random``: k random bonds removed (the baseline for ``plus``).
    Self-loops are never removed. Values are mean absolute changes over the
    outputs, in the model's (normalised) units times ``scale``.

    Args:
        model: the explained model.
        graph: the graph the importances refer to (a particle's subgraph, or a whole graph).
        feat: [n_nodes, in_dim] its node input.
        src, dst, importance: [n_edges] local endpoints and importance of its edges.
        k: number of bonds.
        rng: source of the random bonds.
        scale: [out_dim] factors that turn output units into target units (the
            normalisation std); ones when absent.
        row: the output row compared (the particle, or 0 for a graph-level model).
    """
    _, bond_imp, bond_of_edge = bonds(src, dst, importance)
    n_bonds = len(bond_imp)
    k = min(k, n_bonds)
    top = np.argsort(-bond_imp, kind="stable")[:k]
    random = rng.choice(n_bonds, size=k, replace=False)

    def weights(off_bonds: np.ndarray, on_bonds: np.ndarray | None = None) -> torch.Tensor:
        bond_on = np.ones(n_bonds, dtype=bool) if on_bonds is None else np.isin(np.arange(n_bonds), on_bonds)
        bond_on[off_bonds] = False
        on = np.where(bond_of_edge < 0, True, bond_on[np.maximum(bond_of_edge, 0)])
        return torch.as_tensor(on, dtype=feat.dtype, device=feat.device)

    with frozen(model, cache=True):
        variants = [None, weights(top), weights(np.array([], dtype=int), top), weights(random)]
        preds = [model(graph=graph, feat=feat, eweight=w)[row] for w in variants]
    base = preds[0]
    scale = torch.ones_like(base) if scale is None else scale.to(base)
    change = [float(((p - base).abs() * scale).mean()) for p in preds[1:]]
    return {"plus": change[0], "minus": change[1], "random": change[2], "k": k}


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
