"""Regression metrics of per-particle predictions (DGL-free, numpy in, floats out).

All metrics are computed in the original target units on the masked particles,
overall and per particle type (per-snapshot targets: across graphs, one value
each): Pearson's r (the primary figure in this field,
e.g. Bapst et al., Nat. Phys. 16, 448 (2020); Li et al., ICML 2024), Spearman's
rank correlation, the coefficient of determination R^2, MAE and RMSE.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

METRICS = ("pearson", "spearman", "r2", "mae", "rmse")


def regression_metrics(pred: np.ndarray, true: np.ndarray) -> dict[str, float]:
    """Pearson, Spearman, R^2, MAE and RMSE of one column.

    Args:
        pred: [n] predictions.
        true: [n] targets, same units.

    Returns:
        ``{metric: value}`` plus ``"count"``; correlations are NaN when either side is
        constant or n < 2 (undefined, not zero).
    """
    pred = np.asarray(pred, dtype=np.float64).ravel()
    true = np.asarray(true, dtype=np.float64).ravel()
    n = len(true)
    out: dict[str, float] = {"count": n}
    if n == 0:
        return out | {m: math.nan for m in METRICS}
    err = pred - true
    out["mae"] = float(np.abs(err).mean())
    out["rmse"] = float(np.sqrt((err**2).mean()))
    ss_tot = float(((true - true.mean()) ** 2).sum())
    out["r2"] = 1.0 - float((err**2).sum()) / ss_tot if ss_tot > 0 else math.nan
    if n < 2 or np.ptp(pred) == 0 or np.ptp(true) == 0:
        out["pearson"] = out["spearman"] = math.nan
    else:
        out["pearson"] = float(stats.pearsonr(pred, true)[0])
        out["spearman"] = float(stats.spearmanr(pred, true)[0])
    return {k: out[k] for k in ("count", *METRICS)}


def grouped_metrics(
    pred: np.ndarray,
    true: np.ndarray,
    types: np.ndarray,
    mask: np.ndarray,
    target_names: list[str],
    type_names: dict[int, str],
) -> dict[str, dict[str, dict[str, float]]]:
    """Metrics per target column, overall and per particle type, on masked particles.

    Args:
        pred: [n_atoms, k] predictions in original units.
        true: [n_atoms, k] targets in original units.
        types: [n_atoms] type indices 0..T-1.
        mask: [n_atoms] bool, particles that count.
        target_names: the k column names.
        type_names: type index -> label (e.g. ``{0: "1", 1: "2"}`` from the manifest's type_map).

    Returns:
        ``{target: {"all" | "type=<label>": {metric: value}}}``; types absent from the
        masked particles are left out.
    """
    pred = np.asarray(pred).reshape(len(mask), -1)
    true = np.asarray(true).reshape(len(mask), -1)
    mask = np.asarray(mask, dtype=bool)
    types = np.asarray(types)
    out = {}
    for j, name in enumerate(target_names):
        groups = {"all": regression_metrics(pred[mask, j], true[mask, j])}
        for index in sorted(type_names):
            sel = mask & (types == index)
            if sel.any():
                groups[f"type={type_names[index]}"] = regression_metrics(pred[sel, j], true[sel, j])
        out[name] = groups
    return out


def graph_metrics(
    pred: np.ndarray, true: np.ndarray, target_names: list[str]
) -> dict[str, dict[str, dict[str, float]]]:
    """Metrics of per-graph predictions, one value per graph, per target column.

    Args:
        pred, true: [n_graphs, k] in original units.

    Returns:
        ``{target: {"all": {metric: value}}}``: the layout of :func:`grouped_metrics`
        (there are no particle types to group by).
    """
    pred = np.asarray(pred).reshape(len(true), -1)
    true = np.asarray(true).reshape(len(true), -1)
    return {name: {"all": regression_metrics(pred[:, j], true[:, j])} for j, name in enumerate(target_names)}


def headline(metrics: dict[str, dict[str, dict[str, float]]], metric: str) -> float:
    """Overall ``metric`` averaged over target columns (the number used for selection)."""
    values = [groups["all"][metric] for groups in metrics.values()]
    return float(np.mean(values))


def summarise(values: list[float]) -> dict[str, float]:
    """Mean and sample standard deviation (ddof=1; 0 for one value) of repeated runs."""
    arr = np.asarray(values, dtype=np.float64)
    std = float(arr.std(ddof=1)) if len(arr) > 1 else 0.0
    return {"mean": float(arr.mean()), "std": std, "n": len(arr)}
