"""Topology of an explained neighbourhood or graph: its bonds, the complex, H1 cycles and
each bond's participation in them (the gudhi steps themselves: :mod:`glassgnn.topology`).

A particle's filtration is built from its neighbourhood's particles and all the bonds among
them (:func:`neighbourhood_bonds`). ``alpha`` needs the neighbourhood as one unwrapped
piece; a neighbourhood wider than half the box (e.g. 4 hops of 5 Å in a 36 Å box) wraps
around it, and then, as for ``rips`` always, the periodic Rips complex of its bonds at
their minimum-image lengths is used (:func:`periodic_rips`); each particle records which
(:func:`analyse_topology`). A graph-level run is described over its whole graph
(:func:`whole_graph_topology`). Bonds are undirected (importance = mean of the two
directions); self-loops take part in the explanation but not in the topology.
"""

from __future__ import annotations

import dgl
import numpy as np
import torch

from glassgnn import schema, topology
from glassgnn.explain_subgraph import Explanation, bonds


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
        The topology fields of :class:`glassgnn.explain_pipeline.ParticleResult`, ``complex`` the one used.
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
    points = positions if complex == "alpha" and fits else None
    if points is not None:
        result = topology.persistence(points, "alpha")
    else:
        lengths = graph.edata[schema.DIST].cpu().double().numpy()[eids]
        where = f"the neighbourhood of particle {e.node}"
        try:
            result = periodic_rips(len(e.nodes), src, dst, lengths, where)
        except topology.ComplexTooLargeError as err:
            raise topology.ComplexTooLargeError(f"{where}: {err}; use fewer --num_hops") from err
    return {"complex": result.complex, "positions": positions, **_cycle_fields(result, e.src, e.dst, points)}


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
    points = None
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
    else:
        lengths = graph.edata[schema.DIST].cpu().double().numpy()
        try:
            result = periodic_rips(n, src, dst, lengths, f"graph {index}", max_simplices)
        except topology.ComplexTooLargeError as err:
            raise topology.ComplexTooLargeError(
                f"graph {index}: {err}; explain a smaller snapshot, build the dataset with a smaller "
                "--cutoff, or explain per-particle predictions (L-hop neighbourhoods) with a node-level run"
            ) from err
    return {"num_nodes": n, "src": src, "dst": dst, **_cycle_fields(result, src, dst, points)}


def _cycle_fields(
    result: topology.Persistence, src: np.ndarray, dst: np.ndarray, points: np.ndarray | None = None
) -> dict:
    """Representative H1 cycles of ``result`` and the participation of each edge in them
    (the fields of :class:`glassgnn.explain_pipeline.CycleParticipation`).

    Args:
        result: persistence of a complex; src, dst: [n_edges] local endpoints of the edges
            whose participation is counted; points: [n, 3] positions an alpha complex was
            built on (None for a Rips complex of bonds).

    Returns:
        ``diagrams``, ``cycles``, ``cycle_persistence`` [n_cycles] (death - birth),
        ``edge_cycles`` and ``edge_cycle_persistence`` [n_edges].
    """
    cycles = topology.representative_cycles(result, points)
    pers = np.array([death - birth for _, birth, death in result.h1_pairs], dtype=np.float64)
    count, total = topology.edge_participation(src, dst, cycles, pers)
    return {
        "diagrams": result.diagrams,
        "cycles": cycles,
        "cycle_persistence": pers,
        "edge_cycles": count,
        "edge_cycle_persistence": total,
    }


def bond_values(
    src: np.ndarray, dst: np.ndarray, importance: np.ndarray, edge_values: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per-edge values (e.g. ``edge_cycles``) as per-bond values, beside the bonds' importance.

    Args:
        src, dst: [n_edges] endpoints; importance: [n_edges] edge importance;
        edge_values: [n_edges] a value both directions of a bond share (cycle participation).

    Returns:
        [n_bonds] importance (:func:`glassgnn.explain_subgraph.bonds`) and [n_bonds] values.
    """
    _, bond_imp, bond_of_edge = bonds(src, dst, importance)
    values = np.zeros(len(bond_imp))
    values[bond_of_edge[bond_of_edge >= 0]] = edge_values[bond_of_edge >= 0]
    return bond_imp, values
