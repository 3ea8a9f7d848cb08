"""Training losses on standardised targets, restricted to the masked rows.

``mse``: the plain mean squared error. ``centred_mse``: the same after removing, in each
snapshot of the batch and each target column, the mean error over its masked particles, i.e.
the MSE of ``pred - mean(pred)`` against ``target - mean(target)`` within each snapshot. It is
blind to a snapshot-wide shift of the predictions, the part of the error that within-snapshot
Pearson (the selection metric of the glass benchmarks) ignores as well. The CuZr snapshots are
glasses of different stability whose mean barriers differ (1.5-1.8 eV in ``train0-5``, 1.3 eV in
``train6``); with ``baseline: ridge`` the ridge part already carries that shift, and the network
is trained on the ranking within each glass only (docs/accuracy.md).
"""

from __future__ import annotations

import dgl
import torch

LOSSES = ("mse", "centred_mse")


def masked_mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the rows where ``mask`` is true.

    Args:
        pred, target: [n_rows, k].
        mask: [n_rows] bool.
    """
    if not bool(mask.any()):
        return pred.sum() * 0.0  # keeps the autograd graph (DDP needs a backward on every rank)
    return ((pred - target)[mask] ** 2).mean()


def centred_mse(
    pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, graph_sizes: torch.Tensor
) -> torch.Tensor:
    """Mean squared error after subtracting each snapshot's mean error (masked rows only).

    Args:
        pred, target: [n_atoms, k] of a batch of snapshots, their particles in batch order.
        mask: [n_atoms] bool.
        graph_sizes: [n_graphs] particles per snapshot (``dgl.DGLGraph.batch_num_nodes()``).
    """
    if not bool(mask.any()):
        return pred.sum() * 0.0
    error = (pred - target)[mask]  # [n_masked, k], still grouped by snapshot in batch order
    counts = dgl.ops.segment_reduce(graph_sizes, mask[:, None].to(error.dtype), "sum").flatten().long()
    means = dgl.ops.segment_reduce(counts, error, "mean")  # [n_graphs, k]
    return ((error - means.repeat_interleave(counts, dim=0)) ** 2).mean()
