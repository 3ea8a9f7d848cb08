"""Persistent homology of neighbourhoods: known loops, cycles, unwrapping, tier statistics."""

from __future__ import annotations

import numpy as np
import pytest

from glassgnn import topology


def circle(n: int, radius: float, center, normal_axis: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` points on a slightly perturbed circle in the plane normal to ``normal_axis``."""
    angles = np.linspace(0.0, 2 * np.pi, n, endpoint=False) + rng.uniform(-0.05, 0.05, n)
    plane = np.c_[np.cos(angles), np.sin(angles)] * radius
    points = np.insert(plane, normal_axis, rng.uniform(-0.01, 0.01, n), axis=1)
    return points + np.asarray(center)


@pytest.fixture
def two_circles() -> np.ndarray:
    rng = np.random.default_rng(0)
    return np.r_[circle(12, 1.0, (0, 0, 0), 2, rng), circle(9, 1.5, (6, 0, 3), 1, rng)]


@pytest.mark.parametrize("complex_", topology.COMPLEXES)
def test_two_circles_give_two_loops_of_the_right_length(two_circles, complex_):
    result = topology.persistence(two_circles, complex_, max_edge_length=3.5)
    assert len(result.h1_pairs) == 2
    assert len(result.diagrams[1]) == 2
    # Two components that never merge below the Rips cut-off; one infinite class for alpha.
    assert np.isinf(result.diagrams[0][:, 1]).sum() == (2 if complex_ == "rips" else 1)
    cycles = topology.representative_cycles(result, two_circles)
    lengths = sorted(len(c) for c in cycles)
    assert lengths == [9, 12]
    for cycle in cycles:
        # A cycle: every vertex has degree two and the edges join neighbours on one circle.
        vertices, degree = np.unique(np.ravel(cycle), return_counts=True)
        assert np.all(degree == 2)
        assert np.all(vertices < 12) or np.all(vertices >= 12)
        assert len(vertices) == len(cycle)
    # Birth of the small circle's loop: its longest gap between neighbours (radius for alpha: half of it).
    births = sorted(b for _, b, _ in result.h1_pairs)
    ring = two_circles[:12]
    longest_gap = max(np.linalg.norm(ring[i] - ring[(i + 1) % 12]) for i in range(12))
    expected = longest_gap / 2 if complex_ == "alpha" else longest_gap
    assert min(abs(b - expected) for b in births) < 1e-6


def test_alpha_gives_a_cavity_for_a_sphere():
    rng = np.random.default_rng(1)
    points = rng.normal(size=(200, 3))
    points /= np.linalg.norm(points, axis=1, keepdims=True)
    result = topology.persistence(points, "alpha")
    assert len(result.diagrams[2]) >= 1
    assert result.diagrams[2][:, 1].max() == pytest.approx(1.0, abs=0.05)


def test_edge_participation_counts_cycles_per_bond(two_circles):
    result = topology.persistence(two_circles, "alpha")
    cycles = topology.representative_cycles(result, two_circles)
    pers = np.array([d - b for _, b, d in result.h1_pairs])
    src = np.array([0, 1, 0, 12, 13])
    dst = np.array([1, 0, 5, 13, 12])
    count, total = topology.edge_participation(src, dst, cycles, pers)
    # 0-1 and 12-13 are neighbours on a circle (in its loop, either direction); 0-5 is not.
    big = [i for i, c in enumerate(cycles) if len(c) == 12][0]
    np.testing.assert_array_equal(count, [1, 1, 0, 1, 1])
    assert total[0] == pytest.approx(pers[big])
    assert total[3] == pytest.approx(pers[1 - big])


def test_unwrap_across_a_box_face():
    box = np.array([10.0, 10.0, 10.0])
    # A chain that crosses the x face: the centre near x=9.5, neighbours at x=0.3 and 1.1.
    positions = np.array([[9.5, 5.0, 5.0], [0.3, 5.0, 5.0], [1.1, 5.2, 5.0], [8.7, 5.0, 5.0]])
    src, dst = np.array([0, 1, 0]), np.array([1, 2, 3])
    disp = np.array([[0.8, 0.0, 0.0], [0.8, 0.2, 0.0], [-0.8, 0.0, 0.0]])
    unwrapped = topology.unwrap_around(positions, box, 0, src, dst, disp)
    np.testing.assert_allclose(unwrapped[:, 0], [9.5, 10.3, 11.1, 8.7])
    np.testing.assert_allclose(unwrapped[dst] - unwrapped[src], disp)
    # Same with the box given as a matrix and the centre on the other side.
    unwrapped = topology.unwrap_around(positions, np.diag(box), 1, src, dst, disp)
    np.testing.assert_allclose(unwrapped[:, 0], [-0.5, 0.3, 1.1, -1.3])


def test_unwrap_refuses_a_neighbourhood_wider_than_half_the_box():
    box = np.array([4.0, 4.0, 4.0])
    # A ring of bonds all the way around x: no single image is consistent with all of them.
    positions = np.array([[0.0, 0, 0], [1.0, 0, 0], [2.0, 0, 0], [3.0, 0, 0]])
    src, dst = np.array([0, 1, 2, 3]), np.array([1, 2, 3, 0])
    disp = np.tile([1.0, 0.0, 0.0], (4, 1))
    with pytest.raises(topology.UnwrapError, match="wider than half the box"):
        topology.unwrap_around(positions, box, 0, src, dst, disp)


def test_tiers_and_statistics():
    rng = np.random.default_rng(0)
    importance = np.arange(20, dtype=float)[::-1]
    tiers = topology.tier_indices(importance, 5, rng)
    np.testing.assert_array_equal(tiers["top"], [0, 1, 2, 3, 4])
    np.testing.assert_array_equal(tiers["bottom"], [15, 16, 17, 18, 19])
    np.testing.assert_array_equal(tiers["middle"], [7, 8, 9, 10, 11])
    assert len(np.unique(tiers["random"])) == 5
    # Participation that rises with importance: the statistics must see it.
    participation = importance // 4
    values = {name: participation[idx] for name, idx in tiers.items()}
    out = topology.tier_statistics(values, importance, participation)
    assert set(out["tiers"]) == set(topology.TIERS)
    assert out["tiers"]["top"]["mean"] == pytest.approx(np.mean([4, 4, 4, 4, 3]))
    assert out["tiers"]["bottom"]["mean"] == pytest.approx(np.mean([1, 0, 0, 0, 0]))
    assert out["mann_whitney_top_vs_bottom"]["U"] == 25.0  # every top value beats every bottom one
    assert out["spearman_importance_participation"]["rho"] > 0.95
    # Constant participation: no correlation can be computed, and it says so.
    flat = topology.tier_statistics(values, importance, np.zeros(20))
    assert flat["spearman_importance_participation"]["rho"] is None


def _bonds_within(points: np.ndarray, cutoff: float) -> tuple[np.ndarray, np.ndarray]:
    i, j = np.triu_indices(len(points), k=1)
    lengths = np.linalg.norm(points[i] - points[j], axis=1)
    keep = lengths < cutoff
    return np.c_[i[keep], j[keep]], lengths[keep]


def test_bond_persistence_is_the_rips_complex_up_to_the_cutoff(two_circles):
    """Built from bonds and their lengths (as for a periodic graph), the flag complex gives
    gudhi's Rips persistence of the points at max_edge_length = cutoff."""
    rng = np.random.default_rng(3)
    points = np.r_[two_circles, rng.uniform(-2, 8, (30, 3))]
    pairs, lengths = _bonds_within(points, 2.5)
    result = topology.bond_persistence(len(points), pairs, lengths)
    reference = topology.persistence(points, "rips", max_edge_length=2.5)
    for dim in (0, 1):
        np.testing.assert_allclose(result.diagrams[dim], reference.diagrams[dim])
    # Cycles from the filtration's lengths equal the cycles from positions.
    assert topology.representative_cycles(result) == topology.representative_cycles(reference, points)


def test_bond_persistence_follows_a_loop_through_the_periodic_boundary():
    """Eight particles on a ring that closes only through the box's periodic face: one H1 loop,
    which the Rips complex of any single unwrapped copy of the points does not have."""
    box = 8.0
    x = np.arange(8) + 0.5
    pairs = np.array([[i, (i + 1) % 8] for i in range(8)])
    pairs = np.sort(pairs, axis=1)
    lengths = np.ones(8)  # minimum-image lengths, the 7-0 bond crosses the face
    result = topology.bond_persistence(8, pairs, lengths)
    assert len(result.diagrams[1]) == 1 and np.isinf(result.diagrams[1][0, 1])  # never filled
    flat = topology.persistence(np.c_[x, np.zeros(8), np.zeros(8)], "rips", max_edge_length=1.5)
    assert len(flat.diagrams[1]) == 0
    assert box > 2 * lengths.max()


def test_bond_persistence_refuses_a_complex_above_the_limit(two_circles):
    pairs, lengths = _bonds_within(two_circles, 2.5)
    with pytest.raises(topology.ComplexTooLargeError, match="triangles"):
        topology.bond_persistence(len(two_circles), pairs, lengths, max_simplices=len(pairs))
