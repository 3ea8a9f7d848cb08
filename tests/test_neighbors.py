"""Neighbour search against a brute-force periodic reference (orthorhombic and triclinic)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from glassgnn.graph import build_graph
from glassgnn.neighbors import knn_pairs, perpendicular_widths, radius_pairs, wrap
from tests.conftest import CUZR_DIR, requires_cuzr
from tests.neighbor_reference import as_edges, brute_force_edges, random_cell, widths


def _system(seed: int, triclinic: bool, n_atoms: int = 120):
    rng = np.random.default_rng(seed)
    cell = random_cell(rng, triclinic)
    # Unwrapped positions up to two cells away: the search must wrap them itself.
    frac = rng.uniform(-2.0, 3.0, size=(n_atoms, 3))
    return frac @ cell, cell, rng


@pytest.mark.parametrize("triclinic", [False, True])
@pytest.mark.parametrize("seed", range(4))
def test_radius_pairs_equal_brute_force(seed, triclinic):
    positions, cell, rng = _system(seed, triclinic)
    cutoff = rng.uniform(0.3, 0.4999) * widths(cell).min()  # up to just under half the cell
    src, dst, disp = radius_pairs(positions, cell, cutoff)
    wrapped, _ = wrap(positions, cell)
    ours = as_edges(src, dst, disp)
    reference = brute_force_edges(wrapped, cell, cutoff)
    assert len(ours) > 0
    np.testing.assert_array_equal(ours[:, :2], reference[:, :2])
    np.testing.assert_allclose(ours[:, 2:], reference[:, 2:], atol=1e-9)
    # disp of (i, j) is minus that of (j, i): edge e and e + E/2 are reverses.
    half = len(src) // 2
    np.testing.assert_array_equal(src[:half], dst[half:])
    np.testing.assert_allclose(disp[:half], -disp[half:])
    assert np.linalg.norm(disp, axis=1).max() < cutoff
    # disp is r_dst - r_src under the minimum image of the wrapped positions
    direct = wrapped[dst] - wrapped[src]
    frac = (disp - direct) @ np.linalg.inv(cell)
    np.testing.assert_allclose(frac, np.round(frac), atol=1e-9)


@pytest.mark.parametrize("triclinic", [False, True])
def test_cutoff_beyond_half_cell_returns_every_image(triclinic):
    positions, cell, _ = _system(7, triclinic, n_atoms=30)
    cutoff = 1.3 * widths(cell).min()  # several images of a pair, and of an atom itself
    src, dst, disp = radius_pairs(positions, cell, cutoff)
    reference = brute_force_edges(wrap(positions, cell)[0], cell, cutoff)
    ours = as_edges(src, dst, disp)
    assert np.any(reference[:, 0] == reference[:, 1]), "the test should include self-images"
    np.testing.assert_array_equal(ours[:, :2], reference[:, :2])
    np.testing.assert_allclose(ours[:, 2:], reference[:, 2:], atol=1e-9)


def test_cutoff_is_strict():
    # 2.0 and 0.5 are exact in binary: a pair exactly at the cutoff is not an edge
    positions = np.array([[1.0, 1.0, 1.0], [3.0, 1.0, 1.0], [1.0, 1.5, 1.0]])
    src, dst, _ = radius_pairs(positions, np.array([10.0, 10.0, 10.0]), 2.0)
    assert sorted(zip(src.tolist(), dst.tolist(), strict=True)) == [(0, 2), (2, 0)]
    types = np.array([0, 0, 1])
    src, _, _ = radius_pairs(
        positions,
        np.array([10.0, 10.0, 10.0]),
        9.0,
        types=types,
        pair_cutoffs=np.array([[2.0, 0.5], [0.5, 1.0]]),
    )
    assert len(src) == 0


def test_self_loops_and_float32():
    positions, cell, _ = _system(3, True)
    src, dst, disp = radius_pairs(positions, cell, 2.5, self_loops=True, dtype=np.float32)
    plain = radius_pairs(positions, cell, 2.5)
    n = len(positions)
    assert disp.dtype == np.float32
    assert len(src) == len(plain[0]) + n
    np.testing.assert_array_equal(src[-n:], np.arange(n))
    np.testing.assert_array_equal(dst[-n:], np.arange(n))
    assert not disp[-n:].any()
    np.testing.assert_allclose(disp[:-n], plain[2], atol=1e-5)


def test_pair_cutoffs_equal_brute_force():
    positions, cell, rng = _system(11, True)
    types = rng.integers(0, 2, size=len(positions))
    pair = np.array([[2.0, 3.1], [3.1, 2.6]])
    src, dst, disp = radius_pairs(positions, cell, 9.9, types=types, pair_cutoffs=pair)
    reference = brute_force_edges(wrap(positions, cell)[0], cell, 3.1, types=types, pair_cutoffs=pair)
    np.testing.assert_array_equal(as_edges(src, dst, disp)[:, :2], reference[:, :2])
    dist = np.linalg.norm(disp, axis=1)
    assert np.all(dist < pair[types[src], types[dst]])


@pytest.mark.parametrize("triclinic", [False, True])
def test_knn_equal_brute_force(triclinic):
    positions, cell, _ = _system(5, triclinic, n_atoms=60)
    k = 8
    src, dst, disp = knn_pairs(positions, cell, k)
    np.testing.assert_array_equal(np.bincount(dst, minlength=len(positions)), k)
    reference = brute_force_edges(wrap(positions, cell)[0], cell, widths(cell).max() * 1.5)
    ref_dist = np.linalg.norm(reference[:, 2:], axis=1)
    for atom in range(len(positions)):
        # the k smallest distances to any image of any other atom, receiver = atom
        expected = np.sort(ref_dist[reference[:, 1] == atom])[:k]
        np.testing.assert_allclose(np.sort(np.linalg.norm(disp[dst == atom], axis=1)), expected, atol=1e-9)


def test_knn_in_a_cell_smaller_than_the_neighbourhood():
    # 4 atoms, k = 10: neighbours must come from periodic images
    positions, cell, _ = _system(2, True, n_atoms=4)
    src, dst, disp = knn_pairs(positions, cell, 10, max_cutoff=None)
    assert np.all(np.bincount(dst, minlength=4) == 10)


def test_knn_max_cutoff_bounds_distance():
    positions, cell, _ = _system(4, False)
    src, dst, disp = knn_pairs(positions, cell, 50, max_cutoff=2.0)
    assert np.linalg.norm(disp, axis=1).max() < 2.0
    assert np.bincount(dst, minlength=len(positions)).max() < 50


def test_graph_is_invariant_under_whole_cell_shifts():
    positions, cell, rng = _system(9, True)
    types = rng.integers(0, 2, size=len(positions))
    shifted = positions + rng.integers(-3, 4, size=(len(positions), 3)) @ cell
    a = build_graph(positions, types, cell, 3.0)
    b = build_graph(shifted, types, cell, 3.0)
    np.testing.assert_allclose(a.ndata["pos"].numpy(), b.ndata["pos"].numpy(), atol=1e-4)
    ea = as_edges(*[t.numpy() for t in a.edges()], a.edata["disp"].numpy())
    eb = as_edges(*[t.numpy() for t in b.edges()], b.edata["disp"].numpy())
    np.testing.assert_allclose(ea, eb, atol=1e-4)
    np.testing.assert_allclose(a.edata["dist"].squeeze(1), np.linalg.norm(a.edata["disp"], axis=1), rtol=1e-6)


def test_wrap_counts_atoms_outside():
    cell = np.diag([10.0, 10.0, 10.0])
    wrapped, outside = wrap(np.array([[1.0, 2.0, 3.0], [-1.0, 2.0, 3.0], [10.0, 0.0, 0.0]]), cell)
    assert outside == 2
    np.testing.assert_allclose(wrapped, [[1, 2, 3], [9, 2, 3], [0, 0, 0]])
    np.testing.assert_allclose(perpendicular_widths(np.array([10.0, 5.0, 7.0])), [10.0, 5.0, 7.0])


@pytest.mark.parametrize("cutoff", [0.0, -1.0, float("nan")])
def test_bad_cutoff_refused(cutoff):
    with pytest.raises(ValueError, match="cutoff"):
        radius_pairs(np.zeros((2, 3)), np.array([5.0, 5.0, 5.0]), cutoff)


def test_degenerate_cell_refused():
    with pytest.raises(ValueError, match="degenerate"):
        radius_pairs(np.zeros((2, 3)), np.array([[1.0, 0, 0], [2.0, 0, 0], [0, 0, 1.0]]), 0.5)


@requires_cuzr
def test_real_cuzr_edge_count_equals_brute_force():
    with open(CUZR_DIR / "train0.pickle", "rb") as handle:
        data = pickle.load(handle)
    box = np.asarray(data["box"], dtype=np.float64)
    positions = np.asarray(data["positions"], dtype=np.float64)
    src, dst, disp = radius_pairs(positions + box / 2, box, 5.0)
    # Dense minimum-image reference, in chunks of rows to bound memory.
    count = 0
    for start in range(0, len(positions), 1000):
        d = positions[None, :, :] - positions[start : start + 1000, None, :]
        d -= box * np.round(d / box)
        close = np.einsum("ijk,ijk->ij", d, d) < 25.0
        close[np.arange(len(close)), np.arange(start, start + len(close))] = False
        count += int(close.sum())
    assert len(src) == count == 259838  # the figure the SymGNN data README and issue quote
