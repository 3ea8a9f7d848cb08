"""CGCNN (Xie & Grossman 2018): shapes, gradients, invariances, eweight, batching, and learning.

Invariance tests run in float64 with geometry recomputed from float64 positions,
so they hold to 1e-10. Tests that compare outputs across different graphs run in
eval mode: in training mode batch norm mixes statistics of every particle of the batch.
"""

from __future__ import annotations

import dgl
import numpy as np
import pytest
import torch

from glassgnn import schema
from glassgnn.graph import build_graph
from models.models import build_model
from models.readout import build_graph_level_model
from tests.synthetic import synthetic_density_set

SMALL = dict(atom_fea_len=16, n_conv=2, h_fea_len=16, n_h=2, rbf_max=2.0, rbf_step=0.25, rbf_width=0.25)
BOX = np.full(3, 5.0)


def periodic_graph(positions: np.ndarray, types: np.ndarray, box: np.ndarray, cutoff: float) -> dgl.DGLGraph:
    """Radius graph whose DISP/DIST are recomputed in float64 from the positions (minimum image)."""
    graph = build_graph(positions, types, box, cutoff)
    src, dst = (e.numpy() for e in graph.edges())
    disp = positions[dst] - positions[src]
    disp -= box * np.round(disp / box)
    graph.edata[schema.DISP] = torch.from_numpy(disp)
    graph.edata[schema.DIST] = graph.edata[schema.DISP].norm(dim=1, keepdim=True)
    return graph


def random_system(seed: int, n_atoms: int = 40) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.uniform(0, BOX[0], (n_atoms, 3)), rng.integers(0, 2, n_atoms)


def onehot(graph: dgl.DGLGraph, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    return torch.nn.functional.one_hot(graph.ndata[schema.TYPE], 2).to(dtype)


def make_model(seed: int = 0, **overrides) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_model("cgcnn", {"in_dim": 2, "out_dim": 3, **SMALL, **overrides}).double()


def warmed_eval(model: torch.nn.Module, graph: dgl.DGLGraph) -> torch.nn.Module:
    """A few training-mode passes give batch norm non-trivial running statistics."""
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(graph, onehot(graph))
    return model.eval()


@pytest.mark.parametrize("pooling", ["none", "mean", "attention"])
def test_shapes_finiteness_and_gradients(pooling):
    graphs = [periodic_graph(*random_system(s, n), BOX, 2.0) for s, n in [(0, 40), (1, 25)]]
    graph = dgl.batch(graphs)
    model = make_model(pooling=pooling).float()
    assert model.invariance == "so3"
    feat = onehot(graph, torch.float32)
    out = model(graph, feat)
    rows = graph.num_nodes() if pooling == "none" else 2
    assert out.shape == (rows, 3) and torch.isfinite(out).all()
    assert model.output_level == ("node" if pooling == "none" else "graph")
    (out * torch.randn_like(out)).sum().backward()
    for name, param in model.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name


def test_rotation_invariance_float64():
    graph = periodic_graph(*random_system(2), BOX, 2.0)
    model = warmed_eval(make_model(), graph)
    rotation = torch.linalg.qr(
        torch.randn(3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    )[0]
    rotated = graph.clone()
    rotated.edata[schema.DISP] = graph.edata[schema.DISP] @ rotation.T
    rotated.edata[schema.DIST] = rotated.edata[schema.DISP].norm(dim=1, keepdim=True)
    torch.testing.assert_close(model(rotated, onehot(graph)), model(graph, onehot(graph)), rtol=0, atol=1e-10)


def test_translation_and_permutation_invariance_float64():
    positions, types = random_system(4)
    graph = periodic_graph(positions, types, BOX, 2.0)
    model = warmed_eval(make_model(), graph)
    reference = model(graph, onehot(graph))
    shifted = periodic_graph(np.mod(positions + [1.7, -3.1, 12.4], BOX), types, BOX, 2.0)
    torch.testing.assert_close(model(shifted, onehot(shifted)), reference, rtol=0, atol=1e-10)
    perm = np.random.default_rng(5).permutation(len(positions))
    permuted = periodic_graph(positions[perm], types[perm], BOX, 2.0)
    torch.testing.assert_close(model(permuted, onehot(permuted)), reference[perm], rtol=0, atol=1e-10)


def test_eweight_zeros_removes_neighbours_and_ones_changes_nothing():
    graph = periodic_graph(*random_system(6), BOX, 2.0)
    model = warmed_eval(make_model(), graph)
    feat = onehot(graph)
    ones = torch.ones(graph.num_edges(), dtype=torch.float64)
    torch.testing.assert_close(model(graph, feat, ones), model(graph, feat), rtol=0, atol=0)
    edgeless = dgl.remove_edges(graph, torch.arange(graph.num_edges()))
    zeros = model(graph, feat, torch.zeros_like(ones))
    torch.testing.assert_close(zeros, model(edgeless, feat), rtol=0, atol=1e-12)
    assert not torch.allclose(zeros, model(graph, feat))
    weight = torch.full_like(ones, 0.5, requires_grad=True)
    model(graph, feat, weight).square().sum().backward()
    assert weight.grad.abs().sum() > 0


@pytest.mark.parametrize("pooling", ["none", "mean", "max"])
def test_batched_equals_one_by_one(pooling):
    graphs = [periodic_graph(*random_system(s, n), BOX, 2.0) for s, n in [(7, 30), (8, 45), (9, 20)]]
    batch = dgl.batch(graphs)
    model = warmed_eval(make_model(pooling=pooling), batch)
    separate = torch.cat([model(g, onehot(g)) for g in graphs])
    torch.testing.assert_close(model(batch, onehot(batch)), separate, rtol=0, atol=1e-12)


def test_unknown_pooling_lists_known():
    with pytest.raises(ValueError, match="known: none, mean, sum, max, attention"):
        build_model("cgcnn", {"pooling": "median"})


def fit_and_score(model: torch.nn.Module, train, test, steps: int = 100, lr: float = 1e-2) -> float:
    """Full-batch Adam on standardised targets; R^2 on the held-out graphs."""
    (g_train, y_train), (g_test, y_test) = train, test
    mean, std = y_train.mean(), y_train.std()
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for _ in range(steps):
        optimiser.zero_grad()
        pred = model(g_train, onehot(g_train, torch.float32))
        torch.nn.functional.mse_loss(pred, (y_train - mean) / std).backward()
        optimiser.step()
    model.eval()
    with torch.no_grad():
        pred = model(g_test, onehot(g_test, torch.float32)) * std + mean
    return float(1 - (pred - y_test).square().sum() / (y_test - y_test.mean()).square().sum())


def test_cgcnn_learns_a_structural_graph_target_that_the_mlp_floor_cannot(one_thread):
    rng = np.random.default_rng(0)
    train, test = synthetic_density_set(rng, 64), synthetic_density_set(rng, 32)
    torch.manual_seed(0)
    config = dict(in_dim=2, out_dim=1, atom_fea_len=32, n_conv=2, h_fea_len=32)
    cgcnn = build_model("cgcnn", {**config, "rbf_max": 1.6, "pooling": "mean"})
    floor = build_graph_level_model(
        "mlp",
        {"in_dim": 2, "out_dim": 1, "hidden_dims": [32]},
        {"op": "mean", "hidden_dim": 32, "head_dims": [32]},
    )
    r2_cgcnn, r2_floor = fit_and_score(cgcnn, train, test), fit_and_score(floor, train, test)
    assert r2_cgcnn > 0.9, r2_cgcnn
    assert r2_floor < 0.5, r2_floor
