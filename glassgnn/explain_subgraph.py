"""Computation subgraphs of explained particles, and the :class:`Explanation` made on them.

An L-layer message-passing model (L = its declared depth ``num_message_passing``)
predicts a particle from its computation subgraph (:func:`computation_subgraph`:
its L-hop neighbourhood), which therefore gives exactly the full-graph prediction of
that particle; the explainers (:mod:`glassgnn.gnnexplainer`, :mod:`glassgnn.pgexplainer`)
optimise one importance in [0, 1] per edge of it, on a batch of particles' subgraphs
at once (:func:`khop_subgraphs`). A model that declares ``Ability.LAYERS`` runs each
layer on only the edges that layer needs (:func:`layer_edge_ids`; same outputs, tested),
and updates only the particles it must when it also takes DGL blocks
(``Ability.BLOCKS``, :func:`layer_blocks`; SchNet, whose frozen convolution is
:class:`models.masked_conv.MaskedFilterConv`): :func:`masked_model`. A model whose
outputs depend on more than the L-hop neighbourhood declares
``Ability.SUBGRAPH_CONTEXT`` (:func:`with_subgraph_context`). Bonds are undirected
(:func:`bonds`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import dgl
import numpy as np
import torch

from models.contract import Ability, GlassModel


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


def release_training_cache(model: GlassModel) -> None:
    """Free what a model keeps between training steps (``Ability.TRAINING_CACHE``), if it keeps any:
    an explainer never trains it."""
    if model.supports(Ability.TRAINING_CACHE):
        model.release_cache()


def check_per_particle(pred: torch.Tensor, graph: dgl.DGLGraph) -> torch.Tensor:
    """``pred`` [n_atoms, k] unchanged; an error if the model is not per-particle (e.g. pooled)."""
    if pred.shape[0] != graph.num_nodes():
        raise ValueError(
            f"the model returns {pred.shape[0]} rows for {graph.num_nodes()} particles; "
            "only per-particle models can be explained"
        )
    return pred


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
