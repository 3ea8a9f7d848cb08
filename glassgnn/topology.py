"""Persistent homology of explained neighbourhoods and its statistics (DGL-free).

The question, from the SymGNN paper (Li et al., "Predicting and Interpreting
Energy Barriers of Metallic Glasses with Graph Neural Networks", ICML 2024): do
the bonds an explainer marks as important lie on more topological loops (H1
cycles of a filtration of the particle positions) than unimportant bonds?

Steps, each a function here:

1. :func:`unwrap_around`: positions made periodic-consistent around the explained
   particle (minimum image relative to it).
2. :func:`persistence`: an alpha complex (default) or a Vietoris-Rips complex of
   the positions with gudhi; finite and infinite pairs of H0, H1 (and H2 for alpha).
3. :func:`representative_cycles`: one cycle per finite H1 pair. *The cycle this
   method defines* is the pair's birth edge plus the shortest path (Euclidean
   length) between its two endpoints in the 1-skeleton made of the edges that
   enter the filtration before the birth edge. It is a valid cycle of the class
   born at that value, not a minimal or canonical generator of it.
4. :func:`edge_participation`: for each bond, how many representative cycles
   it lies on and the summed persistence of those cycles.
5. :func:`tier_statistics`: top-k, middle-k, bottom-k and random-k bonds by
   importance; Mann-Whitney U of top vs bottom; Spearman's rho over all bonds.

Filtration values are lengths (Å for CuZr): the alpha radius (the square root of
gudhi's alpha² value) for alpha complexes, the edge length for Rips complexes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import gudhi
import networkx as nx
import numpy as np
from scipy import sparse, stats

from glassgnn.neighbors import cell_matrix

COMPLEXES = ("alpha", "rips")
TIERS = ("top", "middle", "bottom", "random")


# Largest complex :func:`bond_persistence` builds (vertices + bonds + triangles): about 4x
# that of an 8000-atom CuZr snapshot at 5 Å (0.71 M simplices: 15 s of persistence and
# cycles, 1.3 GiB peak), so about a minute and a few GiB.
MAX_SIMPLICES = 3_000_000


class UnwrapError(ValueError):
    """The neighbourhood is too wide to be made periodic-consistent around its centre."""


class ComplexTooLargeError(ValueError):
    """The filtration of a whole graph would be too large to compute."""


def unwrap_around(
    positions: np.ndarray,
    cell: np.ndarray,
    center: int,
    src: np.ndarray | None = None,
    dst: np.ndarray | None = None,
    disp: np.ndarray | None = None,
    atol: float = 1e-3,
) -> np.ndarray:
    """Positions of a neighbourhood as one connected piece around ``positions[center]``.

    Every particle is moved to its periodic image nearest to the centre. When
    edges with their minimum-image displacements are given, the result is
    checked against them: if an edge vector between unwrapped positions differs
    from its displacement, the neighbourhood wraps around the box (it is wider
    than half the box) and no consistent picture exists.

    Args:
        positions: [n, 3] positions (any periodic image).
        cell: (3,) box lengths or (3, 3) cell vectors as rows.
        center: row of the explained particle.
        src, dst: [n_edges] local indices of the edges to check (optional).
        disp: [n_edges, 3] r_dst - r_src, minimum image (optional).
        atol: tolerance of the check, in length units.

    Returns:
        [n, 3] float64 positions; row ``center`` is unchanged.

    Raises:
        UnwrapError: the edges do not fit the unwrapped positions.
    """
    matrix = cell_matrix(cell)
    positions = np.asarray(positions, dtype=np.float64)
    delta = positions - positions[center]
    frac = delta @ np.linalg.inv(matrix)
    delta = (frac - np.round(frac)) @ matrix
    unwrapped = positions[center] + delta
    if disp is not None:
        error = np.abs(unwrapped[dst] - unwrapped[src] - np.asarray(disp, dtype=np.float64))
        if error.size and error.max() > atol:
            raise UnwrapError(
                f"the neighbourhood of particle {center} is wider than half the box "
                f"(an edge vector is off by {error.max():.3g}); use fewer hops or a larger box"
            )
    return unwrapped


@dataclass
class Persistence:
    """Persistence of one point set.

    Attributes:
        complex: ``"alpha"`` or ``"rips"``.
        diagrams: {dimension: [n_pairs, 2] (birth, death)}, lengths, death ``inf``
            for classes that never die.
        h1_pairs: finite H1 pairs as (birth_edge (u, v), birth, death).
        edges: [n_edges, 2] vertex pairs (u < v) of the complex's 1-skeleton in
            filtration order.
        edge_values: [n_edges] filtration value of each edge (length units).
    """

    complex: str
    diagrams: dict[int, np.ndarray]
    h1_pairs: list[tuple[tuple[int, int], float, float]]
    edges: np.ndarray
    edge_values: np.ndarray
    rank: dict[tuple[int, int], int] = field(repr=False, default_factory=dict)


def persistence(
    points: np.ndarray, complex: str = "alpha", max_edge_length: float | None = None
) -> Persistence:
    """Persistent homology of ``points`` with gudhi.

    Args:
        points: [n, 3] positions (already unwrapped; length units).
        complex: ``"alpha"`` (Delaunay-based, exact in 3D, gives H0-H2) or
            ``"rips"`` (Vietoris-Rips up to triangles, gives H0 and H1).
        max_edge_length: Rips only: longest edge of the complex (default: the
            largest pairwise distance, i.e. the full complex).

    Returns:
        :class:`Persistence`; pairs with zero persistence are dropped.
    """
    points = np.asarray(points, dtype=np.float64)
    if complex == "alpha":
        tree = gudhi.AlphaComplex(points=points).create_simplex_tree()
        to_length = np.sqrt  # gudhi's alpha filtration is the squared radius
    elif complex == "rips":
        if max_edge_length is None:
            max_edge_length = float(np.ptp(points, axis=0).sum()) + 1.0
        tree = gudhi.RipsComplex(points=points, max_edge_length=max_edge_length).create_simplex_tree(
            max_dimension=2
        )
        to_length = np.asarray
    else:
        raise ValueError(f"unknown complex {complex!r}; known: {', '.join(COMPLEXES)}")
    return _persistence_of(tree, complex, to_length, max_dim=2 if complex == "alpha" else 1)


def bond_persistence(
    num_points: int, pairs: np.ndarray, lengths: np.ndarray, max_simplices: int = MAX_SIMPLICES
) -> Persistence:
    """Vietoris-Rips persistence (H0, H1) of a configuration given by its bonds, periodic or not.

    The flag complex of the bond graph, each bond entering at its length and each
    triangle at its longest bond: the Rips complex of the particles truncated at the
    longest bond. With minimum-image lengths it is the Rips complex of a periodic
    configuration, which no single unwrapped copy of the box gives; it equals
    :func:`persistence` with ``"rips"`` and ``max_edge_length`` = the cutoff when the
    configuration does not wrap (tested).

    Args:
        num_points: number of particles (vertices, filtration value 0).
        pairs: [n_bonds, 2] distinct undirected bonds (i < j).
        lengths: [n_bonds] their lengths (length units).
        max_simplices: refuse complexes with more vertices, bonds and triangles than this.

    Raises:
        ComplexTooLargeError: the complex exceeds ``max_simplices``.
    """
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    adjacency = sparse.coo_matrix(
        (np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(num_points, num_points)
    ).tocsr()
    adjacency = adjacency + adjacency.T
    # Each triangle closes 6 directed 2-paths i -> j -> k -> i: trace(A^3) / 6, from sparse products.
    triangles = int(round((adjacency @ adjacency).multiply(adjacency).sum() / 6))
    size = num_points + len(pairs) + triangles
    if size > max_simplices:
        raise ComplexTooLargeError(
            f"the Rips complex of {num_points} particles has {len(pairs)} bonds and {triangles} triangles "
            f"({size} simplices, limit {max_simplices})"
        )
    tree = gudhi.SimplexTree()
    tree.insert_batch(np.arange(num_points)[None, :], np.zeros(num_points))
    tree.insert_batch(pairs.T, np.asarray(lengths, dtype=np.float64))
    tree.expansion(2)
    return _persistence_of(tree, "rips", np.asarray, max_dim=1)


def _persistence_of(tree: gudhi.SimplexTree, complex: str, to_length, max_dim: int) -> Persistence:
    """Diagrams, finite H1 pairs and the filtration-ordered 1-skeleton of a filtered complex."""
    # persistence_dim_max: also the top dimension (H1 of a bond graph without triangles).
    tree.compute_persistence(min_persistence=-1.0, persistence_dim_max=True)
    diagrams: dict[int, list[tuple[float, float]]] = {d: [] for d in range(max_dim + 1)}
    h1_pairs = []
    for birth_simplex, death_simplex in tree.persistence_pairs():
        dim = len(birth_simplex) - 1
        if dim > max_dim:
            continue
        birth = float(to_length(max(tree.filtration(birth_simplex), 0.0)))
        death = float(to_length(tree.filtration(death_simplex))) if death_simplex else np.inf
        if death <= birth:
            continue
        diagrams[dim].append((birth, death))
        if dim == 1 and np.isfinite(death):
            u, v = sorted(birth_simplex)
            h1_pairs.append(((u, v), birth, death))
    edges, values = [], []
    for simplex, value in tree.get_filtration():
        if len(simplex) == 2:
            edges.append(sorted(simplex))
            values.append(value)
    edges_arr = np.asarray(edges, dtype=np.int64).reshape(-1, 2)
    rank = {(int(u), int(v)): i for i, (u, v) in enumerate(edges_arr)}
    return Persistence(
        complex=complex,
        diagrams={d: np.asarray(sorted(p), dtype=np.float64).reshape(-1, 2) for d, p in diagrams.items()},
        h1_pairs=sorted(h1_pairs, key=lambda pair: rank[pair[0]]),
        edges=edges_arr,
        edge_values=to_length(np.maximum(np.asarray(values, dtype=np.float64), 0.0)),
        rank=rank,
    )


def representative_cycles(
    result: Persistence, points: np.ndarray | None = None
) -> list[list[tuple[int, int]]]:
    """One cycle per finite H1 pair of ``result`` (same order as ``result.h1_pairs``).

    The cycle is the birth edge (u, v) plus the shortest path from u to v, by
    Euclidean length, through the edges that precede the birth edge in the
    filtration (see the module docstring). Such a path exists because an edge
    that creates an H1 class joins two already connected vertices.

    Args:
        result: output of :func:`persistence` or :func:`bond_persistence`.
        points: [n, 3] the positions it was computed from; None: edge lengths are the
            edges' filtration values (their lengths in a Rips complex, e.g. periodic
            minimum-image lengths from :func:`bond_persistence`).

    Returns:
        For each pair, its edges as sorted vertex pairs (u < v); a cycle with
        m vertices has m edges.
    """
    last = max((result.rank[pair] for pair, _, _ in result.h1_pairs), default=0)
    if points is None:
        lengths = result.edge_values[:last]
    else:
        points = np.asarray(points, dtype=np.float64)
        ends = result.edges[:last]
        lengths = np.linalg.norm(points[ends[:, 0]] - points[ends[:, 1]], axis=1)
    skeleton = nx.Graph()
    cycles = []
    added = 0
    for (u, v), _, _ in result.h1_pairs:
        # The pairs are sorted by filtration order, so the skeleton only grows.
        stop = result.rank[(u, v)]
        for (a, b), length in zip(result.edges[added:stop], lengths[added:stop], strict=True):
            skeleton.add_edge(int(a), int(b), weight=float(length))
        added = max(added, stop)
        path = nx.shortest_path(skeleton, u, v, weight="weight")
        cycle = [tuple(sorted(pair)) for pair in zip(path[:-1], path[1:], strict=True)]
        cycles.append([(u, v), *cycle])
    return cycles


def edge_participation(
    src: np.ndarray, dst: np.ndarray, cycles: list[list[tuple[int, int]]], persistences: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Cycle participation of graph edges.

    Args:
        src, dst: [n_edges] local endpoint indices of the graph edges (either
            direction; (i, j) and (j, i) get the same values).
        cycles: output of :func:`representative_cycles`.
        persistences: [n_cycles] death - birth of each cycle.

    Returns:
        ``count`` [n_edges] int64, the number of cycles through each edge, and
        ``persistence`` [n_edges] float64, the summed persistence of those cycles.
        Edges absent from the complex get 0.
    """
    count: dict[tuple[int, int], int] = {}
    total: dict[tuple[int, int], float] = {}
    for cycle, pers in zip(cycles, persistences, strict=True):
        for pair in cycle:
            count[pair] = count.get(pair, 0) + 1
            total[pair] = total.get(pair, 0.0) + float(pers)
    keys = [
        (min(a, b), max(a, b))
        for a, b in zip(np.asarray(src).tolist(), np.asarray(dst).tolist(), strict=True)
    ]
    return (
        np.array([count.get(k, 0) for k in keys], dtype=np.int64),
        np.array([total.get(k, 0.0) for k in keys], dtype=np.float64),
    )


def tier_indices(importance: np.ndarray, k: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Indices of the top-k, middle-k, bottom-k and random-k entries of ``importance``.

    Ties are broken by index (stable sort), so the result is deterministic. With
    fewer than k entries every tier holds all of them.

    Args:
        importance: [n] importances (larger = more important).
        k: tier size.
        rng: source of the random tier.
    """
    n = len(importance)
    k = min(k, n)
    order = np.argsort(-np.asarray(importance), kind="stable")
    start = max((n - k) // 2, 0)
    return {
        "top": order[:k],
        "middle": order[start : start + k],
        "bottom": order[n - k :],
        "random": np.sort(rng.choice(n, size=k, replace=False)),
    }


def tier_statistics(
    tier_values: dict[str, np.ndarray], importance: np.ndarray, participation: np.ndarray
) -> dict:
    """Pooled tier statistics of cycle participation.

    Args:
        tier_values: {tier: [m] participation of the bonds in that tier, pooled
            over particles} for every tier of :data:`TIERS`.
        importance: [n_bonds] importance of all bonds, pooled.
        participation: [n_bonds] their cycle participation.

    Returns:
        ``{"tiers": {tier: {"count", "mean", "std"}}, "mann_whitney_top_vs_bottom":
        {"U", "p_value", "alternative"}, "spearman_importance_participation":
        {"rho", "p_value", "n"}}``; statistics that cannot be computed are ``None``.
    """
    tiers = {}
    for name in TIERS:
        values = np.asarray(tier_values[name], dtype=np.float64)
        tiers[name] = {
            "count": int(values.size),
            "mean": float(values.mean()) if values.size else None,
            "std": float(values.std()) if values.size else None,
        }
    top, bottom = np.asarray(tier_values["top"]), np.asarray(tier_values["bottom"])
    mwu = {"U": None, "p_value": None, "alternative": "two-sided"}
    if top.size and bottom.size:
        test = stats.mannwhitneyu(top, bottom, alternative="two-sided")
        mwu.update(U=float(test.statistic), p_value=float(test.pvalue))
    spearman = {"rho": None, "p_value": None, "n": int(len(importance))}
    if len(importance) > 2 and np.ptp(importance) > 0 and np.ptp(participation) > 0:
        test = stats.spearmanr(importance, participation)
        spearman.update(rho=float(test.statistic), p_value=float(test.pvalue))
    return {
        "tiers": tiers,
        "mann_whitney_top_vs_bottom": mwu,
        "spearman_importance_participation": spearman,
    }
