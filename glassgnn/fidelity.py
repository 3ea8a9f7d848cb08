"""Fidelity of an explanation: how much the prediction changes when its top bonds are switched off.

``plus``: the top-k bonds by importance removed; ``minus``: only the top-k kept;
``random``: k random bonds removed, the baseline for ``plus`` (:func:`bond_fidelity`).
"""

from __future__ import annotations

import dgl
import numpy as np
import torch

from glassgnn.explain_subgraph import Explanation, bonds, explained_subgraph, with_subgraph_context
from glassgnn.frozen_model import frozen
from models.contract import GlassModel


def fidelity(
    model: GlassModel,
    graph: dgl.DGLGraph,
    feat: torch.Tensor,
    explanation: Explanation,
    k: int,
    rng: np.random.Generator,
    scale: torch.Tensor | None = None,
) -> dict[str, float]:
    """:func:`bond_fidelity` of a particle's explanation, on its subgraph rebuilt from ``graph``.

    Args:
        model: the explained model.
        graph: full graph; the particle's subgraph is rebuilt from the explanation.
        feat: [n_atoms, in_dim] node input of the full graph.
        explanation: output of an explainer.
        k, rng, scale: as :func:`bond_fidelity`.
    """
    sub = explained_subgraph(with_subgraph_context(model, graph), explanation)
    sub_feat = feat[sub.ndata[dgl.NID].long()]
    e = explanation
    return bond_fidelity(model, sub, sub_feat, e.src, e.dst, e.importance, k, rng, scale, row=e.center)


@torch.no_grad()
def bond_fidelity(
    model: GlassModel,
    graph: dgl.DGLGraph,
    feat: torch.Tensor,
    src: np.ndarray,
    dst: np.ndarray,
    importance: np.ndarray,
    k: int,
    rng: np.random.Generator,
    scale: torch.Tensor | None = None,
    row: int = 0,
) -> dict[str, float]:
    """Change of one output row when bonds are switched off through ``eweight``.

    ``plus``: the top-k bonds by importance removed; ``minus``: only the top-k
    bonds kept; ``random``: k random bonds removed (the baseline for ``plus``).
    Self-loops are never removed. Values are mean absolute changes over the
    outputs, in the model's (normalised) units times ``scale``.

    Args:
        model: the explained model.
        graph: the graph the importances refer to (a particle's subgraph, or a whole graph).
        feat: [n_nodes, in_dim] its node input.
        src, dst, importance: [n_edges] local endpoints and importance of its edges.
        k: number of bonds.
        rng: source of the random bonds.
        scale: [out_dim] factors that turn output units into target units (the
            normalisation std); ones when absent.
        row: the output row compared (the particle, or 0 for a graph-level model).
    """
    _, bond_imp, bond_of_edge = bonds(src, dst, importance)
    n_bonds = len(bond_imp)
    k = min(k, n_bonds)
    top = np.argsort(-bond_imp, kind="stable")[:k]
    random = rng.choice(n_bonds, size=k, replace=False)

    def weights(off_bonds: np.ndarray, on_bonds: np.ndarray | None = None) -> torch.Tensor:
        bond_on = np.ones(n_bonds, dtype=bool) if on_bonds is None else np.isin(np.arange(n_bonds), on_bonds)
        bond_on[off_bonds] = False
        on = np.where(bond_of_edge < 0, True, bond_on[np.maximum(bond_of_edge, 0)])
        return torch.as_tensor(on, dtype=feat.dtype, device=feat.device)

    with frozen(model, cache=True):
        variants = [None, weights(top), weights(np.array([], dtype=int), top), weights(random)]
        preds = [model(graph=graph, feat=feat, eweight=w)[row] for w in variants]
    base = preds[0]
    scale = torch.ones_like(base) if scale is None else scale.to(base)
    change = [float(((p - base).abs() * scale).mean()) for p in preds[1:]]
    return {"plus": change[0], "minus": change[1], "random": change[2], "k": k}
