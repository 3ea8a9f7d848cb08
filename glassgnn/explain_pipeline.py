"""explain.py's analysis: explain particles of a trained run, then relate bond importance
to persistent-homology cycles (see :mod:`glassgnn.gnnexplainer` and :mod:`glassgnn.topology`).

Per particle: its L-hop subgraph, an importance per edge, fidelity, positions
unwrapped around it, a filtration, representative H1 cycles and the cycle
participation of each bond. Pooled over particles: the tier statistics. Bonds
are undirected (importance = mean of the two directions); self-loops take part
in the explanation but not in the topology.

The filtration is built from the neighbourhood's particles and all the bonds among
them (:func:`neighbourhood_bonds`). ``alpha`` needs the neighbourhood as one
unwrapped piece; a neighbourhood wider than half the box (e.g. 4 hops of 5 Å in a
36 Å box) wraps around it, and then, as for ``rips`` always, the periodic Rips
complex of its bonds at their minimum-image lengths is used
(:func:`glassgnn.topology.bond_persistence`); each particle records which.

A graph-level run (one prediction per snapshot) is explained on the whole graph
(:func:`explain_graph_level`), and the same tier analysis runs over all its bonds.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import dgl
import numpy as np
import torch
from tqdm.auto import tqdm

from glassgnn import explain_plots, schema, topology
from glassgnn.explain_subgraph import Explanation, bonds
from glassgnn.fidelity import bond_fidelity, fidelity
from glassgnn.fileio import atomic_path, write_json, write_text
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
class ParticleResult:
    """One explained particle with its topology.

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
        diagrams: {dim: [n, 2]} persistence diagram.
        cycles: representative H1 cycles (pairs of subgraph-local indices).
        cycle_persistence: [n_cycles] death - birth of each.
        edge_cycles, edge_cycle_persistence: [n_edges] participation of each edge.
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
    diagrams: dict[int, np.ndarray]
    cycles: list
    cycle_persistence: np.ndarray
    edge_cycles: np.ndarray
    edge_cycle_persistence: np.ndarray
    tiers: dict[str, np.ndarray] = field(default_factory=dict)
    seconds: float = 0.0
    explain_seconds: float = 0.0


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


def neighbourhood_bonds(graph: dgl.DGLGraph, nodes: np.ndarray) -> tuple[np.ndarray, ...]:
    """Every edge of ``graph`` between two of ``nodes``: the bonds among a neighbourhood's
    particles, including those its computation subgraph leaves out (between particles L hops
    away), so that its Rips complex is that of the particles up to the cutoff.

    Args:
        graph: the whole graph; nodes: [n_sub] global ids of the neighbourhood's particles.

    Returns:
        ``src``, ``dst`` [n_bonds_directed] local indices (into ``nodes``) and ``edge_ids``
        [n_bonds_directed] global edge ids.
    """
    edges = graph.in_edges(torch.as_tensor(nodes, device=graph.device), form="all")
    gsrc, gdst, eids = (t.cpu().numpy() for t in edges)
    local = np.full(graph.num_nodes(), -1, dtype=np.int64)
    local[nodes] = np.arange(len(nodes))
    keep = local[gsrc] >= 0
    return local[gsrc[keep]], local[gdst[keep]], eids[keep]


def single_images(src: np.ndarray, dst: np.ndarray, num_nodes: int, where: str) -> None:
    """Refuse bonds that join a pair through several periodic images (cutoff above half the box).

    Args:
        src, dst: [n_edges] endpoints; num_nodes: particles; where: what the bonds are, for messages.

    Raises:
        UnwrapError: such bonds define no complex.
    """
    if len(np.unique(np.asarray(src) * num_nodes + np.asarray(dst))) < len(src):
        raise topology.UnwrapError(
            f"{where} joins some pairs through several periodic images (cutoff above half the "
            "box): its bonds do not define a complex; build the dataset with a larger box or smaller --cutoff"
        )


def periodic_rips(
    num_nodes: int,
    src: np.ndarray,
    dst: np.ndarray,
    lengths: np.ndarray,
    where: str,
    max_simplices: int = topology.MAX_SIMPLICES,
) -> topology.Persistence:
    """Rips persistence of directed bonds with their minimum-image lengths (periodic-correct).

    Args:
        num_nodes: particles; src, dst: [n_edges] their local endpoints (both directions,
            self-loops allowed); lengths: [n_edges] edge lengths (length units).
        where: what the bonds are, for messages (``graph 3``, ``the neighbourhood of particle 7``).
        max_simplices: largest complex built (:func:`glassgnn.topology.bond_persistence`).

    Raises:
        UnwrapError: from :func:`single_images`.
        ComplexTooLargeError: from :func:`glassgnn.topology.bond_persistence`.
    """
    single_images(src, dst, num_nodes, where)
    pairs, _, bond_of_edge = bonds(src, dst, np.zeros(len(src)))
    bond_lengths = np.zeros(len(pairs))
    keep = bond_of_edge >= 0
    bond_lengths[bond_of_edge[keep]] = np.asarray(lengths, dtype=np.float64).reshape(-1)[keep]
    return topology.bond_persistence(num_nodes, pairs, bond_lengths, max_simplices)


def analyse_topology(explanation: Explanation, graph: dgl.DGLGraph, cell: np.ndarray, complex: str) -> dict:
    """Positions, persistence, cycles and per-edge participation of one explanation.

    ``alpha`` is computed on the neighbourhood unwrapped around the particle when every
    bond among its particles fits that one copy; otherwise (the neighbourhood wraps
    around the box), and always for ``rips``, the periodic Rips complex of those bonds
    (:func:`periodic_rips`), which equals gudhi's Rips of the unwrapped positions up to
    the cutoff when nothing wraps (tested).

    Args:
        explanation: one explained particle; graph: the whole graph it comes from.
        cell: (3, 3) cell vectors as rows; complex: ``alpha`` or ``rips`` (asked for).

    Returns:
        The topology fields of :class:`ParticleResult`, ``complex`` the one used.
    """
    e = explanation
    pos = graph.ndata[schema.POS].cpu().double().numpy()[e.nodes]
    src, dst, eids = neighbourhood_bonds(graph, e.nodes)
    disp = graph.edata[schema.DISP].cpu().double().numpy()[eids]
    try:
        positions = topology.unwrap_around(pos, cell, e.center, src, dst, disp)
        fits = True
    except topology.UnwrapError:
        positions = topology.unwrap_around(pos, cell, e.center)  # nearest images, for the figure
        fits = False
    if complex == "alpha" and fits:
        result = topology.persistence(positions, "alpha")
        cycles = topology.representative_cycles(result, positions)
    else:
        lengths = graph.edata[schema.DIST].cpu().double().numpy()[eids]
        where = f"the neighbourhood of particle {e.node}"
        try:
            result = periodic_rips(len(e.nodes), src, dst, lengths, where)
        except topology.ComplexTooLargeError as err:
            raise topology.ComplexTooLargeError(f"{where}: {err}; use fewer --num_hops") from err
        cycles = topology.representative_cycles(result)
    pers = np.array([death - birth for _, birth, death in result.h1_pairs], dtype=np.float64)
    count, total = topology.edge_participation(e.src, e.dst, cycles, pers)
    return {
        "complex": result.complex,
        "positions": positions,
        "diagrams": result.diagrams,
        "cycles": cycles,
        "cycle_persistence": pers,
        "edge_cycles": count,
        "edge_cycle_persistence": total,
    }


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
    std, mean = run.std.cpu().double().numpy(), run.mean.cpu().double().numpy()
    results = []
    for e in tqdm(explanations, desc=f"topology ({options.complex})", unit="particle"):
        start = time.perf_counter()
        fid = fidelity(run.model, graph, feat, e, options.top_k, rng, scale=run.std)
        topo = analyse_topology(e, graph, cell, options.complex)
        _, bond_imp, _ = bonds(e.src, e.dst, e.importance)
        results.append(
            ParticleResult(
                explanation=e,
                prediction=pred[e.node].cpu().numpy().astype(np.float64),
                subgraph_prediction=e.prediction * std + mean,
                target=targets[e.node].astype(np.float64),
                fidelity=fid,
                tiers=topology.tier_indices(bond_imp, options.top_k, rng),
                seconds=explain_share + time.perf_counter() - start,
                explain_seconds=explain_share,
                **topo,
            )
        )
    return results


def bond_values(result: ParticleResult, key: str = "edge_cycles") -> tuple[np.ndarray, np.ndarray]:
    """[n_bonds] importance and [n_bonds] participation (``edge_cycles`` or
    ``edge_cycle_persistence``) of one particle's bonds; both directions of a bond
    carry the same participation, so one per bond is taken."""
    e = result.explanation
    _, bond_imp, bond_of_edge = bonds(e.src, e.dst, e.importance)
    part = np.zeros(len(bond_imp))
    part[bond_of_edge[bond_of_edge >= 0]] = getattr(result, key)[bond_of_edge >= 0]
    return bond_imp, part


def pooled_bonds(
    results: list[ParticleResult], key: str = "edge_cycles"
) -> tuple[dict, np.ndarray, np.ndarray]:
    """{tier: participation of the tier's bonds}, importance and participation of all bonds, pooled."""
    tier_values = {name: [np.zeros(0)] for name in topology.TIERS}
    all_imp, all_part = [np.zeros(0)], [np.zeros(0)]
    for r in results:
        bond_imp, part = bond_values(r, key)
        for name, idx in r.tiers.items():
            tier_values[name].append(part[idx])
        all_imp.append(bond_imp)
        all_part.append(part)
    return (
        {k: np.concatenate(v) for k, v in tier_values.items()},
        np.concatenate(all_imp),
        np.concatenate(all_part),
    )


def pooled_statistics(results: list[ParticleResult]) -> dict:
    """Tier statistics of cycle participation (count and summed persistence), pooled over particles."""
    return {
        name: topology.tier_statistics(*pooled_bonds(results, key))
        for name, key in (("cycle_count", "edge_cycles"), ("cycle_persistence", "edge_cycle_persistence"))
    }


def summary(results: list[ParticleResult], options: ExplainOptions, extra: dict) -> dict:
    """The content of summary.json: parameters, tier statistics, fidelity."""
    fid = {}
    for key in ("plus", "minus", "random"):
        values = np.array([r.fidelity[key] for r in results])
        fid[key] = {"mean": float(values.mean()), "std": float(values.std())} if len(values) else None
    return {
        "parameters": {**asdict(options), **extra},
        "num_particles": len(results),
        # alpha where the neighbourhood fits one unwrapped copy, else the periodic rips.
        "complex_by_particle": {str(r.explanation.node): r.complex for r in results},
        "participation": pooled_statistics(results),
        "fidelity": fid,
        # How far the explained (subgraph) prediction is from the full-graph one: ~1e-6
        # (float32) when the model is local to L hops, larger when it is not.
        "subgraph_vs_full_prediction_max_abs_diff": max(
            (float(np.abs(r.subgraph_prediction - r.prediction).max()) for r in results), default=0.0
        ),
        "subgraph_mean_size": {
            "nodes": float(np.mean([len(r.explanation.nodes) for r in results])),
            "edges": float(np.mean([len(r.explanation.src) for r in results])),
        },
    }


def write_outputs(
    directory: Path,
    results: list[ParticleResult],
    summary_: dict,
    graph: dgl.DGLGraph,
    options: ExplainOptions,
) -> None:
    """summary.json, explanations.npz, particles.csv, timing.json and the figures, into ``directory``."""
    write_json(directory / "summary.json", summary_)
    seconds, explainer = np.mean([r.seconds for r in results]), np.mean([r.explain_seconds for r in results])
    timing = {
        "seconds_per_particle": float(seconds),
        "explainer_seconds_per_particle": float(explainer),
        "fidelity_and_topology_seconds_per_particle": float(seconds - explainer),
        "particles": len(results),
    }
    write_json(directory / "timing.json", timing)
    types = graph.ndata[schema.TYPE].cpu().numpy()
    exps = [r.explanation for r in results]
    node_offsets = np.cumsum([0] + [len(e.nodes) for e in exps])
    edge_offsets = np.cumsum([0] + [len(e.src) for e in exps])
    cat = np.concatenate
    arrays = {
        "node": np.array([e.node for e in exps], dtype=np.int64),
        "prediction": np.array([r.prediction for r in results]),
        "target": np.array([r.target for r in results]),
        "feat_importance": np.array([e.feat_importance for e in exps]),
        "fidelity_plus": np.array([r.fidelity["plus"] for r in results]),
        "fidelity_minus": np.array([r.fidelity["minus"] for r in results]),
        "fidelity_random": np.array([r.fidelity["random"] for r in results]),
        "node_offsets": node_offsets,
        "subgraph_nodes": cat([e.nodes for e in exps]),
        "edge_offsets": edge_offsets,
        "edge_ids": cat([e.edge_ids for e in exps]),
        "edge_src": cat([e.nodes[e.src] for e in exps]),
        "edge_dst": cat([e.nodes[e.dst] for e in exps]),
        "importance": cat([e.importance for e in exps]),
        "edge_cycles": cat([r.edge_cycles for r in results]),
        "edge_cycle_persistence": cat([r.edge_cycle_persistence for r in results]),
    }
    with atomic_path(directory / "explanations.npz") as tmp, open(tmp, "wb") as handle:
        np.savez_compressed(handle, **arrays)
    rows = [
        "node,type,target,prediction,subgraph_nodes,subgraph_edges,h1_cycles,"
        "fidelity_plus,fidelity_minus,fidelity_random,top_k_mean_cycles,bottom_k_mean_cycles,complex"
    ]
    for r in results:
        e = r.explanation
        _, part = bond_values(r)
        top, bottom = (part[r.tiers[t]].mean() if len(r.tiers[t]) else np.nan for t in ("top", "bottom"))
        rows.append(
            f"{e.node},{types[e.node]},{r.target[0]:.6g},{r.prediction[0]:.6g},{len(e.nodes)},{len(e.src)},"
            f"{len(r.cycles)},{r.fidelity['plus']:.6g},{r.fidelity['minus']:.6g},{r.fidelity['random']:.6g},"
            f"{top:.4g},{bottom:.4g},{r.complex}"
        )
    write_text(directory / "particles.csv", "\n".join(rows) + "\n")
    _figures(directory, results, summary_, graph, options)


def _figures(directory: Path, results, summary_: dict, graph: dgl.DGLGraph, options: ExplainOptions) -> None:
    first = results[0]
    e = first.explanation
    explain_plots.persistence_figure(
        first.diagrams, f"{first.complex}, particle {e.node}", directory / "persistence_particle.png"
    )
    tier_values, all_imp, all_part = pooled_bonds(results)
    explain_plots.tier_histogram(tier_values, directory / "participation_by_tier.png", options.top_k)
    rho = summary_["participation"]["cycle_count"]["spearman_importance_participation"]["rho"]
    explain_plots.importance_scatter(all_imp, all_part, rho, directory / "importance_vs_participation.png")
    pairs, bond_imp, _ = bonds(e.src, e.dst, e.importance)
    # A wrapped neighbourhood has bonds through a box face, which would cross the figure.
    drawn = np.linalg.norm(first.positions[pairs[:, 0]] - first.positions[pairs[:, 1]], axis=1)
    near = drawn <= float(graph.edata[schema.DIST].max()) + 1e-3
    pairs, bond_imp = pairs[near], bond_imp[near]
    types = graph.ndata[schema.TYPE].cpu().numpy()[e.nodes]
    explain_plots.neighbourhood_figure(
        first.positions, types, pairs, bond_imp, e.center, options.top_k, directory / "neighbourhood_3d.png"
    )


@dataclass
class GraphResult:
    """One explained graph-level prediction with the topology of the whole graph.

    Attributes:
        explanation: importance per edge of the graph (:func:`explain_graph_prediction`).
        prediction, target: [k] in original target units (target NaN when unknown).
        fidelity: ``plus``, ``minus``, ``random`` (original units) and ``k``.
        num_nodes: particles in the graph.
        src, dst: [n_edges] endpoints of the graph's edges.
        diagrams, cycles, cycle_persistence, edge_cycles, edge_cycle_persistence: as
            in :class:`ParticleResult`, for the whole graph.
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
    diagrams: dict[int, np.ndarray]
    cycles: list
    cycle_persistence: np.ndarray
    edge_cycles: np.ndarray
    edge_cycle_persistence: np.ndarray
    tiers: dict[str, np.ndarray]
    seconds: float


def whole_graph_topology(
    graph: dgl.DGLGraph,
    cell: np.ndarray,
    complex: str,
    index: int = 0,
    max_simplices: int = topology.MAX_SIMPLICES,
) -> dict:
    """Persistence, representative cycles and bond participation of a whole graph.

    ``rips``: the Rips complex of the graph's own bonds at their minimum-image lengths
    (:func:`glassgnn.topology.bond_persistence`), which is periodic-correct.
    ``alpha``: needs the graph as one unwrapped piece (e.g. a cluster in a large box);
    a bulk periodic snapshot wraps around its box and is refused.

    Args:
        graph: one graph; cell: (3, 3) cell vectors as rows; complex: ``alpha`` or ``rips``.
        index: the graph's index in its split, for messages.
        max_simplices: largest Rips complex built (:func:`glassgnn.topology.bond_persistence`).

    Raises:
        UnwrapError, ComplexTooLargeError: with what to do instead.
    """
    src, dst = (t.cpu().numpy() for t in graph.edges())
    n = graph.num_nodes()
    single_images(src, dst, n, f"graph {index}")
    if complex == "alpha":
        pos = graph.ndata[schema.POS].cpu().double().numpy()
        disp = graph.edata[schema.DISP].cpu().double().numpy()
        try:
            points = topology.unwrap_around(pos, cell, 0, src, dst, disp)
        except topology.UnwrapError as err:
            raise topology.UnwrapError(
                f"graph {index} ({n} particles) wraps around its periodic box, so the alpha complex of "
                "one unwrapped copy cannot describe it; use --complex rips (the periodic Rips complex "
                "of the graph's bonds at minimum-image lengths)"
            ) from err
        result = topology.persistence(points, "alpha")
        cycles = topology.representative_cycles(result, points)
    else:
        lengths = graph.edata[schema.DIST].cpu().double().numpy()
        try:
            result = periodic_rips(n, src, dst, lengths, f"graph {index}", max_simplices)
        except topology.ComplexTooLargeError as err:
            raise topology.ComplexTooLargeError(
                f"graph {index}: {err}; explain a smaller snapshot, build the dataset with a smaller "
                "--cutoff, or explain per-particle predictions (L-hop neighbourhoods) with a node-level run"
            ) from err
        cycles = topology.representative_cycles(result)
    pers = np.array([death - birth for _, birth, death in result.h1_pairs], dtype=np.float64)
    count, total = topology.edge_participation(src, dst, cycles, pers)
    return {
        "num_nodes": n,
        "src": src,
        "dst": dst,
        "diagrams": result.diagrams,
        "cycles": cycles,
        "cycle_persistence": pers,
        "edge_cycles": count,
        "edge_cycle_persistence": total,
    }


def explain_graph_level(
    run, graph: dgl.DGLGraph, cell: np.ndarray, target: np.ndarray, options: ExplainOptions
) -> GraphResult:
    """Explain a graph-level run's prediction for one whole graph, then its bonds' topology.

    The topology is computed first: a graph too large for the chosen complex is
    refused before the (long) explanation starts.

    Args:
        run: a loaded run with ``run.task == "graph"``.
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
    _, bond_imp, _ = bonds(src, dst, explanation.importance)
    std, mean = run.std.cpu().double().numpy(), run.mean.cpu().double().numpy()
    return GraphResult(
        explanation=explanation,
        prediction=explanation.prediction * std + mean,
        target=np.asarray(target, dtype=np.float64),
        fidelity=fid,
        tiers=topology.tier_indices(bond_imp, options.top_k, rng),
        seconds=time.perf_counter() - start,
        **topo,
    )


def _bond_participation(result: GraphResult, key: str) -> tuple[np.ndarray, np.ndarray]:
    _, bond_imp, bond_of_edge = bonds(result.src, result.dst, result.explanation.importance)
    part = np.zeros(len(bond_imp))
    part[bond_of_edge[bond_of_edge >= 0]] = getattr(result, key)[bond_of_edge >= 0]
    return bond_imp, part


def graph_summary(result: GraphResult, options: ExplainOptions, extra: dict) -> dict:
    """summary.json of a graph-level explanation: tier statistics over all bonds of the graph."""
    participation = {}
    for name, key in (("cycle_count", "edge_cycles"), ("cycle_persistence", "edge_cycle_persistence")):
        bond_imp, part = _bond_participation(result, key)
        tiers = {tier: part[idx] for tier, idx in result.tiers.items()}
        participation[name] = topology.tier_statistics(tiers, bond_imp, part)
    return {
        "task": "graph",
        "parameters": {**asdict(options), **extra},
        "prediction": result.prediction.tolist(),
        "target": [None if np.isnan(t) else float(t) for t in result.target],
        "participation": participation,
        "fidelity": {key: result.fidelity[key] for key in ("plus", "minus", "random", "k")},
        "graph_size": {
            "nodes": result.num_nodes,
            "edges": len(result.src),
            "bonds": int(len(bonds(result.src, result.dst, result.explanation.importance)[1])),
        },
        "h1_cycles": len(result.cycles),
    }


def write_graph_outputs(
    directory: Path, result: GraphResult, summary_: dict, options: ExplainOptions
) -> None:
    """summary.json, explanations.npz, timing.json and the figures of a graph-level explanation."""
    write_json(directory / "summary.json", summary_)
    write_json(directory / "timing.json", {"seconds_per_graph": result.seconds, "graphs": 1})
    e = result.explanation
    arrays = {
        "prediction": result.prediction,
        "target": result.target,
        "feat_importance": e.feat_importance,
        "edge_src": result.src,
        "edge_dst": result.dst,
        "importance": e.importance,
        "edge_cycles": result.edge_cycles,
        "edge_cycle_persistence": result.edge_cycle_persistence,
    }
    with atomic_path(directory / "explanations.npz") as tmp, open(tmp, "wb") as handle:
        np.savez_compressed(handle, **arrays)
    explain_plots.persistence_figure(
        result.diagrams,
        f"{options.complex}, graph {options.graph_index}",
        directory / "persistence_graph.png",
    )
    bond_imp, part = _bond_participation(result, "edge_cycles")
    explain_plots.tier_histogram(
        {tier: part[idx] for tier, idx in result.tiers.items()},
        directory / "participation_by_tier.png",
        options.top_k,
    )
    rho = summary_["participation"]["cycle_count"]["spearman_importance_participation"]["rho"]
    explain_plots.importance_scatter(bond_imp, part, rho, directory / "importance_vs_participation.png")
