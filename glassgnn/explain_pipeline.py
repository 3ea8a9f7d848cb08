"""explain.py's analysis: explain particles (or a whole graph) of a trained run, with fidelity,
topology and bond tiers per result; what is written from the results: :mod:`glassgnn.explain_report`.

Per particle (:func:`explain_particles`): its L-hop computation subgraph, an importance
per edge (:mod:`glassgnn.gnnexplainer` or :mod:`glassgnn.pgexplainer`), fidelity
(:mod:`glassgnn.fidelity`), the topology of its neighbourhood
(:func:`glassgnn.explain_topology.analyse_topology`) and its bonds' tiers by importance.
A graph-level run (one prediction per snapshot) is explained on the whole graph
(:func:`explain_graph_level`), and the same analysis runs over all its bonds.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import dgl
import numpy as np
import torch
from tqdm.auto import tqdm

from glassgnn import schema, topology
from glassgnn.explain_subgraph import Explanation, bonds
from glassgnn.explain_topology import analyse_topology, bond_values, whole_graph_topology
from glassgnn.fidelity import bond_fidelity, fidelity
from glassgnn.gnnexplainer import (
    GNNExplainerSettings,
    GraphExplanation,
    explain_gnnexplainer,
    explain_graph_prediction,
)
from glassgnn.pgexplainer import PGExplainerSettings, explain_pgexplainer

EXPLAINERS = ("gnnexplainer", "pgexplainer")
SELECTIONS = ("center", "random", "top_pred")
# GNNExplainer: optimisation steps per particle; PGExplainer: passes over its training particles
# (30, with lr 0.003, in the PGExplainer authors' code).
DEFAULT_EPOCHS = {"gnnexplainer": 300, "pgexplainer": 30}


@dataclass
class ExplainOptions:
    """What to explain and how (the flags of explain.py)."""

    split: str = "test"
    graph_index: int = 0
    nodes: list[int] | None = None
    num_nodes: int = 50
    select: str = "center"
    explainer: str = "gnnexplainer"
    num_hops: int | None = None
    epochs: int = 300
    complex: str = "alpha"
    top_k: int = 10
    seed: int = 0
    batch_size: int = 8


@dataclass
class CycleParticipation:
    """The H1 cycles of an explained neighbourhood or graph and each edge's part in them.

    Attributes:
        diagrams: {dim: [n, 2]} persistence diagram.
        cycles: representative H1 cycles (pairs of local node indices).
        cycle_persistence: [n_cycles] death - birth of each.
        edge_cycles, edge_cycle_persistence: [n_edges] participation of each edge: cycles
            it lies on, and their summed persistence.
    """

    diagrams: dict[int, np.ndarray]
    cycles: list
    cycle_persistence: np.ndarray
    edge_cycles: np.ndarray
    edge_cycle_persistence: np.ndarray


@dataclass
class ParticleResult(CycleParticipation):
    """One explained particle with its topology (fields of :class:`CycleParticipation` first).

    Attributes:
        explanation: the explainer's output (subgraph, importance per edge).
        prediction, target: [k] in original target units (full-graph prediction).
        subgraph_prediction: [k] the prediction on the computation subgraph, same units;
            equal to ``prediction`` for models whose output depends only on the L-hop
            neighbourhood (not, e.g., a GCN normalised by its neighbours' degrees).
        fidelity: ``plus``, ``minus``, ``random`` (original units) and ``k``.
        complex: the complex its topology used: ``alpha``, or ``rips`` (asked for, or
            because the neighbourhood wraps around the box).
        positions: [n_sub, 3] positions of the subgraph, each the periodic image
            nearest the particle (one consistent piece unless the neighbourhood wraps).
        tiers: {tier: [k] bond indices} (bonds from :func:`glassgnn.explain_subgraph.bonds`).
        seconds: explainer share plus fidelity and topology time, for timing.json.
        explain_seconds: the explainer share alone (its batch's time / particles).
    """

    explanation: Explanation
    prediction: np.ndarray
    subgraph_prediction: np.ndarray
    target: np.ndarray
    fidelity: dict
    complex: str
    positions: np.ndarray
    tiers: dict[str, np.ndarray] = field(default_factory=dict)
    seconds: float = 0.0
    explain_seconds: float = 0.0

    def bond_values(self, key: str = "edge_cycles") -> tuple[np.ndarray, np.ndarray]:
        """[n_bonds] importance and [n_bonds] participation (``edge_cycles`` or
        ``edge_cycle_persistence``) of the particle's bonds."""
        e = self.explanation
        return bond_values(e.src, e.dst, e.importance, getattr(self, key))


@dataclass
class GraphResult(CycleParticipation):
    """One explained graph-level prediction with the topology of the whole graph (fields of
    :class:`CycleParticipation` first).

    Attributes:
        explanation: importance per edge of the graph
            (:func:`glassgnn.gnnexplainer.explain_graph_prediction`).
        prediction, target: [k] in original target units (target NaN when unknown).
        fidelity: ``plus``, ``minus``, ``random`` (original units) and ``k``.
        num_nodes: particles in the graph.
        src, dst: [n_edges] endpoints of the graph's edges.
        tiers: {tier: [k] bond indices}.
        seconds: explainer and topology time.
    """

    explanation: GraphExplanation
    prediction: np.ndarray
    target: np.ndarray
    fidelity: dict
    num_nodes: int
    src: np.ndarray
    dst: np.ndarray
    tiers: dict[str, np.ndarray]
    seconds: float

    def bond_values(self, key: str = "edge_cycles") -> tuple[np.ndarray, np.ndarray]:
        """[n_bonds] importance and [n_bonds] participation (``edge_cycles`` or
        ``edge_cycle_persistence``) of the graph's bonds."""
        return bond_values(self.src, self.dst, self.explanation.importance, getattr(self, key))


def select_nodes(
    graph: dgl.DGLGraph, cell: np.ndarray, pred: torch.Tensor, options: ExplainOptions
) -> list[int]:
    """Particles to explain, among those in the graph's ``MASK``.

    ``center``: the ``num_nodes`` particles nearest to the box centre (their
    neighbourhoods are the least likely to touch a box face); ``random``: drawn
    with ``seed``; ``top_pred``: the largest predictions of the first output.
    Explicit ``nodes`` are checked and used as given.
    """
    n = graph.num_nodes()
    if options.nodes:
        bad = [i for i in options.nodes if not 0 <= i < n]
        if bad:
            raise ValueError(f"--nodes {bad} out of range: graph {options.graph_index} has {n} particles")
        return list(dict.fromkeys(int(i) for i in options.nodes))
    candidates = np.flatnonzero(graph.ndata[schema.MASK].cpu().numpy())
    count = min(options.num_nodes, len(candidates))
    if options.select == "center":
        pos = graph.ndata[schema.POS].cpu().double().numpy()[candidates]
        middle = np.diag(cell) / 2 if cell.ndim == 2 else np.asarray(cell) / 2
        chosen = candidates[np.argsort(np.linalg.norm(pos - middle, axis=1), kind="stable")[:count]]
    elif options.select == "random":
        chosen = np.sort(np.random.default_rng(options.seed).choice(candidates, size=count, replace=False))
    elif options.select == "top_pred":
        values = pred[:, 0].cpu().numpy()[candidates]
        chosen = candidates[np.argsort(-values, kind="stable")[:count]]
    else:
        raise ValueError(f"unknown --select {options.select!r}; known: {', '.join(SELECTIONS)}")
    return [int(i) for i in chosen]


def resolve_hops(run, options: ExplainOptions) -> int:
    """``options.num_hops``, or the model's message-passing depth when it is not set."""
    return options.num_hops or run.model.num_message_passing


def explain_particles(
    run, graph: dgl.DGLGraph, cell: np.ndarray, options: ExplainOptions
) -> list[ParticleResult]:
    """The whole per-particle analysis for one graph of a loaded run (:func:`glassgnn.run.load_run`).

    Args:
        run: the trained run; its model explains in normalised units.
        graph: the graph to explain (any device; moved to ``run.device``).
        cell: (3, 3) cell vectors of the graph as rows.
        options: what to explain and how.
    """
    graph = graph.to(run.device)
    feat = run.features(graph)
    pred = run.predict(graph)
    nodes = select_nodes(graph, cell, pred, options)
    hops = resolve_hops(run, options)
    start = time.perf_counter()
    with tqdm(total=len(nodes), desc=f"{options.explainer} ({hops} hops)", unit="particle") as bar:
        if options.explainer == "gnnexplainer":
            settings = GNNExplainerSettings(epochs=options.epochs, batch_size=options.batch_size)
            explanations = explain_gnnexplainer(
                run.model, graph, feat, nodes, hops, settings, options.seed, bar
            )
        elif options.explainer == "pgexplainer":
            settings = PGExplainerSettings(epochs=options.epochs, batch_size=options.batch_size)
            explanations = explain_pgexplainer(
                run.model, graph, feat, nodes, hops, settings, options.seed, bar
            )
        else:
            raise ValueError(f"unknown explainer {options.explainer!r}; known: {', '.join(EXPLAINERS)}")
    explain_share = (time.perf_counter() - start) / max(len(nodes), 1)
    rng = np.random.default_rng(options.seed)
    targets = run.targets(graph).cpu().numpy()
    results = []
    for e in tqdm(explanations, desc=f"topology ({options.complex})", unit="particle"):
        start = time.perf_counter()
        fid = fidelity(run.model, graph, feat, e, options.top_k, rng, scale=run.std)
        topo = analyse_topology(e, graph, cell, options.complex)
        results.append(
            ParticleResult(
                explanation=e,
                prediction=pred[e.node].cpu().numpy().astype(np.float64),
                subgraph_prediction=_original_units(run, e.prediction),
                target=targets[e.node].astype(np.float64),
                fidelity=fid,
                tiers=_tiers(e.src, e.dst, e.importance, options.top_k, rng),
                seconds=explain_share + time.perf_counter() - start,
                explain_seconds=explain_share,
                **topo,
            )
        )
    return results


def explain_graph_level(
    run, graph: dgl.DGLGraph, cell: np.ndarray, target: np.ndarray, options: ExplainOptions
) -> GraphResult:
    """Explain a graph-level run's prediction for one whole graph, then its bonds' topology.

    The topology is computed first: a graph too large for the chosen complex is
    refused before the (long) explanation starts.

    Args:
        run: a loaded run of a graph task (``run.kind.per_graph``).
        graph: one graph (any device; moved to ``run.device``).
        cell: (3, 3) cell vectors as rows.
        target: [k] the graph's target in original units (NaN if unknown).
        options: ``epochs``, ``complex``, ``top_k``, ``seed``, ``graph_index`` are used.
    """
    if options.explainer != "gnnexplainer":
        raise ValueError(
            f"--explainer {options.explainer}: a graph-level prediction is explained with gnnexplainer "
            "(DGL's explain_graph); pgexplainer explains per-particle predictions"
        )
    start = time.perf_counter()
    topo = whole_graph_topology(graph, cell, options.complex, options.graph_index)
    graph = graph.to(run.device)
    feat = run.features(graph)
    settings = GNNExplainerSettings(epochs=options.epochs)
    explanation = explain_graph_prediction(run.model, graph, feat, settings, options.seed)
    rng = np.random.default_rng(options.seed)
    src, dst = topo["src"], topo["dst"]
    fid = bond_fidelity(
        run.model, graph, feat, src, dst, explanation.importance, options.top_k, rng, scale=run.std
    )
    return GraphResult(
        explanation=explanation,
        prediction=_original_units(run, explanation.prediction),
        target=np.asarray(target, dtype=np.float64),
        fidelity=fid,
        tiers=_tiers(src, dst, explanation.importance, options.top_k, rng),
        seconds=time.perf_counter() - start,
        **topo,
    )


def _original_units(run, values: np.ndarray) -> np.ndarray:
    """[..., k] normalised model outputs in the targets' units."""
    return values * run.std.cpu().double().numpy() + run.mean.cpu().double().numpy()


def _tiers(src: np.ndarray, dst: np.ndarray, importance: np.ndarray, top_k: int, rng) -> dict:
    """{tier: [top_k] bond indices} of the bonds of these edges, by importance."""
    _, bond_imp, _ = bonds(src, dst, importance)
    return topology.tier_indices(bond_imp, top_k, rng)
