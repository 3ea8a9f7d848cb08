"""Graph-level readouts: brute-force references, masks, permutation invariance, batching."""

from __future__ import annotations

import dgl
import numpy as np
import pytest
import torch

from glassgnn import schema
from models.readout import READOUT_OPS, Readout, build_graph_level_model
from tests.test_cgcnn import BOX, SMALL, onehot, periodic_graph, random_system, warmed_eval


def node_batch(sizes: list[int], dim: int = 4, seed: int = 0) -> tuple[dgl.DGLGraph, torch.Tensor]:
    """Edgeless graphs of the given sizes, batched, with random float64 features."""
    batch = dgl.batch([dgl.graph(([], []), num_nodes=n) for n in sizes])
    return batch, torch.randn(
        sum(sizes), dim, dtype=torch.float64, generator=torch.Generator().manual_seed(seed)
    )


def reference_pool(op: str, h: torch.Tensor, gate: torch.nn.Module | None = None) -> torch.Tensor:
    if op == "mean":
        return h.mean(0)
    if op == "sum":
        return h.sum(0)
    if op == "max":
        return h.max(0).values
    weights = torch.softmax(gate(h).squeeze(1), dim=0)
    return (weights.unsqueeze(1) * h).sum(0)


@pytest.mark.parametrize("op", READOUT_OPS)
def test_readout_matches_brute_force_per_graph(op):
    sizes = [3, 7, 1, 5]
    graph, h = node_batch(sizes)
    readout = Readout(op, dim=4).double()
    gate = readout.attention.gate_nn if op == "attention" else None
    expected = torch.stack([reference_pool(op, part, gate) for part in h.split(sizes)])
    torch.testing.assert_close(readout(graph, h), expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("op", READOUT_OPS)
def test_masked_readout_pools_only_masked_particles(op):
    sizes = [4, 6, 3]
    graph, h = node_batch(sizes, seed=1)
    mask = torch.tensor([1, 0, 1, 0, 0, 1, 1, 1, 0, 0, 0, 0, 1], dtype=torch.bool)
    graph.ndata[schema.MASK] = mask
    readout = Readout(op, dim=4, use_mask=True).double()
    gate = readout.attention.gate_nn if op == "attention" else None
    expected = torch.stack(
        [reference_pool(op, part[m], gate) for part, m in zip(h.split(sizes), mask.split(sizes), strict=True)]
    )
    torch.testing.assert_close(readout(graph, h), expected, rtol=0, atol=1e-12)
    graph.ndata[schema.MASK] = torch.zeros_like(mask).index_fill_(0, torch.arange(4), True)
    with pytest.raises(ValueError, match=r"graph\(s\) \[1, 2\] of the batch have no masked particle"):
        readout(graph, h)


def build_cgcnn_graph_model(op: str, use_mask: bool = False) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_graph_level_model(
        "cgcnn",
        {"in_dim": 2, "out_dim": 2, **SMALL},
        {"op": op, "hidden_dim": 8, "head_dims": [8], "use_mask": use_mask},
    ).double()


@pytest.mark.parametrize("op", READOUT_OPS)
def test_graph_output_is_permutation_invariant(op):
    positions, types = random_system(10)
    graph = periodic_graph(positions, types, BOX, 2.0)
    model = warmed_eval(build_cgcnn_graph_model(op), graph)
    assert model.invariance == "so3"
    perm = np.random.default_rng(11).permutation(len(positions))
    permuted = periodic_graph(positions[perm], types[perm], BOX, 2.0)
    out = model(graph, onehot(graph))
    assert out.shape == (1, 2)
    torch.testing.assert_close(model(permuted, onehot(permuted)), out, rtol=0, atol=1e-10)


@pytest.mark.parametrize(("op", "use_mask"), [(op, False) for op in READOUT_OPS] + [("attention", True)])
def test_batched_equals_one_by_one(op, use_mask):
    graphs = [periodic_graph(*random_system(s, n), BOX, 2.0) for s, n in [(12, 30), (13, 18), (14, 41)]]
    for graph in graphs:
        graph.ndata[schema.MASK] = graph.ndata[schema.TYPE] == 0
    batch = dgl.batch(graphs)
    model = warmed_eval(build_cgcnn_graph_model(op, use_mask), batch)
    separate = torch.cat([model(g, onehot(g)) for g in graphs])
    torch.testing.assert_close(model(batch, onehot(batch)), separate, rtol=0, atol=1e-12)


def test_pooling_per_particle_outputs_without_head():
    graphs = [periodic_graph(*random_system(s, n), BOX, 2.0) for s, n in [(15, 20), (16, 33)]]
    batch = dgl.batch(graphs)
    model = (
        build_graph_level_model("cgcnn", {"in_dim": 2, "out_dim": 3, **SMALL}, {"op": "sum"}).double().eval()
    )
    assert model.head is None
    per_particle = model.node_model(batch, onehot(batch))
    expected = torch.stack([part.sum(0) for part in per_particle.split([20, 33])])
    torch.testing.assert_close(model(batch, onehot(batch)), expected, rtol=0, atol=1e-12)


def test_bad_readout_settings_are_clear_errors():
    with pytest.raises(ValueError, match="unknown readout 'median'; known: mean, sum, max, attention"):
        Readout("median")
    with pytest.raises(
        KeyError, match="unknown readout key\\(s\\) pool; known: head_dims, hidden_dim, op, use_mask"
    ):
        build_graph_level_model("mlp", {}, {"pool": "mean"})
    with pytest.raises(ValueError, match="CGCNN already gives one output per graph"):
        build_graph_level_model("cgcnn", {"pooling": "mean"}, {"op": "mean"})
