"""Figures of explain.py (matplotlib, Agg backend: no display needed).

Each function writes one PNG atomically and returns nothing.
"""

from __future__ import annotations

import os

import gudhi
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from glassgnn import topology  # noqa: E402
from glassgnn.fileio import atomic_path  # noqa: E402

# gudhi's documented switch: plain matplotlib text, no TeX installation needed.
gudhi.persistence_graphical_tools._gudhi_matplotlib_use_tex = False

TIER_COLOURS = {"top": "tab:red", "middle": "tab:orange", "bottom": "tab:blue", "random": "tab:gray"}


def _save(fig, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)


def persistence_figure(diagrams: dict[int, np.ndarray], title: str, path: str | os.PathLike) -> None:
    """Persistence diagram and barcode (gudhi's plots) of one particle's neighbourhood.

    Args:
        diagrams: {dimension: [n, 2] (birth, death)} in length units; inf deaths allowed.
    """
    pairs = [(dim, (float(b), float(d))) for dim, arr in diagrams.items() for b, d in arr]
    pairs.sort(key=lambda pair: pair[1][1] - pair[1][0], reverse=True)  # longest (and infinite) first
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
    if pairs:
        gudhi.plot_persistence_diagram(persistence=pairs[:2000], axes=left, legend=True)
        gudhi.plot_persistence_barcode(persistence=pairs[:300], axes=right, legend=True)
    left.set_title(f"persistence diagram, {title}" + (" (2000 longest)" if len(pairs) > 2000 else ""))
    right.set_title("barcode (300 longest bars)")
    left.set_xlabel("birth (length units)")
    left.set_ylabel("death (length units)")
    right.set_xlabel("filtration value (length units)")
    _save(fig, path)


def tier_histogram(tier_values: dict[str, np.ndarray], path: str | os.PathLike, top_k: int) -> None:
    """Distribution of cycle participation of the bonds in each importance tier (pooled)."""
    fig, ax = plt.subplots(figsize=(6, 4))
    top = max((int(np.max(v)) for v in tier_values.values() if len(v)), default=0)
    edges = np.arange(top + 2) - 0.5
    for name in topology.TIERS:
        values = np.asarray(tier_values[name])
        if len(values):
            ax.hist(
                values,
                bins=edges,
                density=True,
                histtype="step",
                linewidth=1.8,
                color=TIER_COLOURS[name],
                label=f"{name}-{top_k} (mean {values.mean():.2f})",
            )
    ax.set_xlabel("number of representative H1 cycles through the bond")
    ax.set_ylabel("fraction of bonds")
    ax.legend()
    _save(fig, path)


def importance_scatter(
    importance: np.ndarray, participation: np.ndarray, rho: float | None, path: str | os.PathLike
) -> None:
    """Bond importance against cycle participation, all bonds pooled."""
    fig, ax = plt.subplots(figsize=(6, 4))
    jitter = np.random.default_rng(0).uniform(-0.15, 0.15, len(participation))
    ax.scatter(importance, participation + jitter, s=3, alpha=0.3, rasterized=True)
    ax.set_xlabel("bond importance")
    ax.set_ylabel("H1 cycles through the bond (jittered)")
    ax.set_title("Spearman rho = " + ("n/a" if rho is None else f"{rho:.3f}"))
    _save(fig, path)


def neighbourhood_figure(
    positions: np.ndarray,
    types: np.ndarray,
    pairs: np.ndarray,
    importance: np.ndarray,
    center: int,
    top_k: int,
    path: str | os.PathLike,
) -> None:
    """3D view of an explained neighbourhood with its top-k bonds highlighted.

    Args:
        positions: [n, 3] unwrapped positions; types: [n] type indices.
        pairs: [n_bonds, 2] bonds; importance: [n_bonds].
        center: index of the explained particle.
    """
    fig = plt.figure(figsize=(6, 6))
    ax = fig.add_subplot(projection="3d")
    near = np.linalg.norm(positions - positions[center], axis=1)
    # Draw only the inner part of large neighbourhoods so the top bonds stay visible.
    radius = np.quantile(near, min(1.0, 300 / len(near)))
    shown = near <= radius
    ax.scatter(*positions[shown].T, c=types[shown], cmap="viridis", s=12, alpha=0.5)
    ax.scatter(*positions[center], c="black", s=80, marker="*", label="explained particle")
    order = np.argsort(-importance, kind="stable")
    for i, j in pairs[order[top_k:]]:
        if shown[i] and shown[j]:
            ax.plot(*positions[[i, j]].T, color="0.6", linewidth=0.4, alpha=0.4)
    for rank, bond in enumerate(order[:top_k]):
        i, j = pairs[bond]
        ax.plot(
            *positions[[i, j]].T, color="tab:red", linewidth=2.5, label="top bonds" if rank == 0 else None
        )
    ax.set_title(f"top-{top_k} bonds by importance")
    ax.legend(loc="upper left")
    _save(fig, path)
