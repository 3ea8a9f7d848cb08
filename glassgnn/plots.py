"""Figures of a training run: learning curves and parity plots (matplotlib, Agg backend)."""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")  # files only, no display needed (clusters, CI)
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from glassgnn.fileio import atomic_path  # noqa: E402


def _save(fig: plt.Figure, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)


def learning_curves(history: list[dict], metric: str, best_epoch: int, path: str | os.PathLike) -> None:
    """Loss (normalised units) and ``metric`` on train and val per evaluation, best epoch marked."""
    epochs = [row["epoch"] for row in history]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for split in ("train", "val"):
        axes[0].plot(epochs, [row[f"{split}_loss"] for row in history], label=split)
        axes[1].plot(epochs, [row[f"{split}_{metric}"] for row in history], label=split)
    axes[0].set(xlabel="epoch", ylabel="masked MSE (normalised)", yscale="log", title="loss")
    axes[1].set(xlabel="epoch", ylabel=metric, title=f"{metric} (original units)")
    for ax in axes:
        ax.axvline(best_epoch, color="grey", linestyle="--", linewidth=1, label="selected (val)")
        ax.legend()
    _save(fig, path)


def parity(
    pred: np.ndarray,
    true: np.ndarray,
    types: np.ndarray | None,
    type_names: dict[int, str] | None,
    title: str,
    target_name: str,
    path: str | os.PathLike,
) -> None:
    """Predicted against true values of the masked particles, one colour per type.

    Args:
        pred, true: [n] values in original units; types: [n] type indices. With
            ``types=None`` the points are whole graphs (per-snapshot targets), drawn larger.
    """
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    if types is None:
        ax.scatter(true, pred, s=16, alpha=0.8, label="snapshot")
    for index, name in sorted((type_names or {}).items()):
        sel = types == index
        if sel.any():
            ax.scatter(true[sel], pred[sel], s=2, alpha=0.4, label=f"type {name}", rasterized=True)
    lo, hi = float(min(true.min(), pred.min())), float(max(true.max(), pred.max()))
    ax.plot([lo, hi], [lo, hi], color="black", linewidth=0.8)
    if len(true) > 1 and np.ptp(true) > 0 and np.ptp(pred) > 0:
        title = f"{title}, Pearson r = {np.corrcoef(pred, true)[0, 1]:.4f}"
    ax.set(xlabel=f"true {target_name}", ylabel=f"predicted {target_name}", title=title)
    ax.legend(markerscale=4)
    _save(fig, path)
