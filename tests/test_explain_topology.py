"""Per-particle topology: alpha where the neighbourhood fits one unwrapped copy, the periodic
Rips complex of its bonds where it wraps around the box (issue 18, item 1)."""

from __future__ import annotations

import dgl
import gudhi
import numpy as np
import pytest

from glassgnn import explain_subgraph as sg
from glassgnn import explain_topology as et
from glassgnn import schema, topology
from glassgnn.graph import build_graph

BOX, CUTOFF = 6.0, 1.5


@pytest.fixture(scope="module")
def periodic_graph() -> dgl.DGLGraph:
    rng = np.random.default_rng(0)
    return build_graph(rng.uniform(0, BOX, (90, 3)), rng.integers(0, 2, 90), np.full(3, BOX), CUTOFF)


def _explanation(graph: dgl.DGLGraph, node: int, hops: int) -> sg.Explanation:
    """The computation subgraph of ``node`` as an explanation (importances do not enter the topology)."""
    sub, center = sg.computation_subgraph(graph, node, hops)
    src, dst = (t.numpy() for t in sub.edges())
    return sg.Explanation(
        node=node,
        center=center,
        nodes=sub.ndata[dgl.NID].numpy(),
        edge_ids=sub.edata[dgl.EID].numpy(),
        src=src,
        dst=dst,
        importance=np.zeros(len(src)),
        feat_importance=np.zeros(2),
        prediction=np.zeros(1),
    )


def _finite_nonzero(diagram: np.ndarray) -> np.ndarray:
    diagram = np.asarray(diagram, dtype=np.float64).reshape(-1, 2)
    return np.sort(diagram[np.isfinite(diagram[:, 1]) & (diagram[:, 1] > diagram[:, 0])], axis=0)


def _periodic_rips_reference(graph: dgl.DGLGraph, nodes: np.ndarray) -> gudhi.SimplexTree:
    """gudhi's Rips complex of the particles from their brute-force minimum-image distances."""
    pos = graph.ndata[schema.POS].double().numpy()[nodes]
    delta = pos[:, None, :] - pos[None, :, :]
    delta -= BOX * np.round(delta / BOX)
    distances = np.linalg.norm(delta, axis=-1)
    tree = gudhi.RipsComplex(distance_matrix=distances, max_edge_length=CUTOFF).create_simplex_tree(
        max_dimension=2
    )
    tree.compute_persistence()
    return tree


def test_a_neighbourhood_wrapping_around_the_box_gets_the_periodic_rips_complex(periodic_graph):
    cell = np.diag(np.full(3, BOX))
    e = _explanation(periodic_graph, node=0, hops=3)  # 3 hops of 1.5 reach beyond half the 6-unit box
    src, dst, eids = et.neighbourhood_bonds(periodic_graph, e.nodes)
    disp = periodic_graph.edata[schema.DISP].double().numpy()[eids]
    pos = periodic_graph.ndata[schema.POS].double().numpy()[e.nodes]
    with pytest.raises(topology.UnwrapError):  # the case of the issue: no single unwrapped copy
        topology.unwrap_around(pos, cell, e.center, src, dst, disp)
    for asked in topology.COMPLEXES:
        topo = et.analyse_topology(e, periodic_graph, cell, asked)
        assert topo["complex"] == "rips"
        reference = _periodic_rips_reference(periodic_graph, e.nodes)
        for dim in (0, 1):
            np.testing.assert_allclose(
                _finite_nonzero(topo["diagrams"][dim]),
                _finite_nonzero(reference.persistence_intervals_in_dimension(dim)),
                rtol=1e-6,
            )
        assert len(topo["cycles"]) == len(topo["cycle_persistence"]) > 0
        assert len(topo["edge_cycles"]) == len(e.src) and topo["edge_cycles"].sum() > 0
        # Every particle at its image nearest the explained one (what the figure draws).
        offset = topo["positions"] - topo["positions"][e.center]
        assert np.abs(offset).max() <= BOX / 2 + 1e-9


def test_a_neighbourhood_that_fits_keeps_alpha_and_rips_is_the_same_complex_as_before(periodic_graph):
    cell = np.diag(np.full(3, BOX))
    e = _explanation(periodic_graph, node=0, hops=1)
    topo = et.analyse_topology(e, periodic_graph, cell, "alpha")
    assert topo["complex"] == "alpha"
    src, dst, eids = et.neighbourhood_bonds(periodic_graph, e.nodes)
    disp = periodic_graph.edata[schema.DISP].double().numpy()[eids]
    pos = periodic_graph.ndata[schema.POS].double().numpy()[e.nodes]
    points = topology.unwrap_around(pos, cell, e.center, src, dst, disp)
    np.testing.assert_allclose(topo["positions"], points)
    for dim in (1, 2):
        np.testing.assert_allclose(topo["diagrams"][dim], topology.persistence(points, "alpha").diagrams[dim])
    # rips from the bonds is gudhi's Rips of the unwrapped points up to the cutoff.
    topo = et.analyse_topology(e, periodic_graph, cell, "rips")
    assert topo["complex"] == "rips"
    flat = topology.persistence(points, "rips", max_edge_length=CUTOFF)
    for dim in (0, 1):
        np.testing.assert_allclose(topo["diagrams"][dim], flat.diagrams[dim], rtol=1e-6)


def test_neighbourhood_bonds_are_the_induced_edges(periodic_graph):
    e = _explanation(periodic_graph, node=5, hops=2)
    src, dst, eids = et.neighbourhood_bonds(periodic_graph, e.nodes)
    induced = dgl.node_subgraph(periodic_graph, e.nodes)
    assert sorted(eids.tolist()) == sorted(induced.edata[dgl.EID].tolist())
    gsrc, gdst = (t.numpy() for t in periodic_graph.find_edges(eids))
    np.testing.assert_array_equal(e.nodes[src], gsrc)
    np.testing.assert_array_equal(e.nodes[dst], gdst)
    # The computation subgraph's edges are among them (it leaves out those between the outermost particles).
    assert set(e.edge_ids.tolist()) < set(eids.tolist())


def test_bonds_through_several_images_are_refused():
    rng = np.random.default_rng(1)
    graph = build_graph(rng.uniform(0, 2.0, (6, 3)), np.zeros(6, dtype=np.int64), np.full(3, 2.0), 1.5)
    src, dst = (t.numpy() for t in graph.edges())
    with pytest.raises(topology.UnwrapError, match="particle 4 joins some pairs through several periodic"):
        et.periodic_rips(6, src, dst, np.ones(len(src)), "the neighbourhood of particle 4")
