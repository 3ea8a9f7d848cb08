"""The fast path of `bapst` computes the plain path's function: outputs and gradients.

The plain path (concatenations as DeepMind released them) is the reference; the fast
path splits the first layers by input block, hoists the constant parts, sorts edges by
receiver and chunks them. Both are compared on random weights (float64, batched graphs,
edge weights, both update orders, chunked and whole-graph) and on the converted
DeepMind checkpoint (float32). A failing ``torch.compile`` falls back to eager.
"""

from __future__ import annotations

import logging

import dgl
import numpy as np
import pytest
import torch
from conftest import REPO

import models.bapst as bapst
from glassgnn import schema
from glassgnn.dataset import build_graphs
from glassgnn.graph import build_graph
from glassgnn.run import load_run
from models.models import build_model

RUN = REPO / "datasets" / "deepmind" / "t044_s09"
TEST_SMALL = REPO / "datasets" / "deepmind" / "test_small.pickle"


pytestmark = pytest.mark.usefixtures("one_thread")


def _batch(seed: int = 0) -> dgl.DGLGraph:
    """Two random periodic configurations (3 types, self-pairs) batched, float64 displacements."""
    rng = np.random.default_rng(seed)
    graphs = []
    for n in (9, 6):
        positions, types = rng.uniform(0, 4, (n, 3)), rng.integers(0, 3, n)
        graph = build_graph(positions, types, np.full(3, 4.0), 1.9, self_loops=True)
        graph.edata[schema.DISP] = graph.edata[schema.DISP].double()
        graphs.append(graph)
    return dgl.batch(graphs)


def _outputs_and_grads(model, graph, feat, eweight) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Output and the gradients of a fixed random functional of it (parameters, feat, eweight)."""
    feat, eweight = feat.clone().requires_grad_(), eweight.clone().requires_grad_()
    model.zero_grad()
    out = model(graph, feat, eweight)
    probe = torch.sin(torch.arange(out.numel(), dtype=out.dtype)).reshape(out.shape)
    (out * probe).sum().backward()
    grads = {name: p.grad.clone() for name, p in model.named_parameters()}
    return out.detach(), {**grads, "feat": feat.grad, "eweight": eweight.grad}


def _assert_fast_equals_plain(model, graph, feat, eweight, out_tol, grad_tol) -> dict:
    """Outputs and every gradient of the fast path equal the plain path's, within
    ``(rtol, atol)`` tolerances; returns the plain path's gradients."""
    model.fast = False
    plain, plain_grads = _outputs_and_grads(model, graph, feat, eweight)
    model.fast = True
    fast, fast_grads = _outputs_and_grads(model, graph, feat, eweight)
    torch.testing.assert_close(fast, plain, rtol=out_tol[0], atol=out_tol[1])
    for name, grad in plain_grads.items():
        torch.testing.assert_close(fast_grads[name], grad, rtol=grad_tol[0], atol=grad_tol[1], msg=name)
    return plain_grads


@pytest.mark.parametrize("order", ["parallel", "sequential"])
@pytest.mark.parametrize("hidden", [[8], [], [8, 5]])
def test_fast_equals_plain_on_random_weights(order, hidden, monkeypatch):
    torch.manual_seed(1)
    graph = _batch()
    assert not bool((graph.edges()[1][1:] >= graph.edges()[1][:-1]).all())  # the sort is exercised
    feat = torch.randn(graph.num_nodes(), 3, dtype=torch.float64)
    eweight = torch.rand(graph.num_edges(), dtype=torch.float64)
    config = dict(in_dim=3, out_dim=2, latent_dim=6, mlp_hidden=hidden, decoder_hidden=[7], num_steps=3)
    model = build_model("bapst", {**config, "update_order": order}).double()
    assert model.fast  # the default

    plain_grads = _assert_fast_equals_plain(model, graph, feat, eweight, (1e-10, 1e-12), (1e-9, 1e-12))
    assert plain_grads["eweight"].abs().sum() > 0  # edge weights act

    monkeypatch.setattr(bapst, "EDGE_CHUNK", 7)  # several chunks, one not full
    with torch.no_grad():
        for weights in (eweight, None):
            model.fast = False
            plain = model(graph, feat, weights)
            model.fast = True
            torch.testing.assert_close(model(graph, feat, weights), plain, rtol=1e-10, atol=1e-12)


def test_fast_equals_plain_on_the_deepmind_checkpoint():
    """float32, the released weights, DeepMind's 20-particle configuration at their cutoff."""
    run = load_run(RUN)
    graph = build_graphs([TEST_SMALL], run.manifest.graph, type_map=run.manifest.type_map)[0]
    feat = run.features(graph)
    eweight = torch.rand(graph.num_edges(), generator=torch.Generator().manual_seed(0))
    model = run.model.train()
    _assert_fast_equals_plain(model, graph, feat, eweight, (1e-5, 1e-6), (1e-4, 1e-5))


def test_config_key_chooses_the_path():
    assert build_model("bapst", {}).fast
    assert not build_model("bapst", {"fast": False}).fast
    assert build_model("bapst", {"preset": "deepmind", "fast": False}).config.update_order == "sequential"


@pytest.mark.parametrize("where", ["compile", "first call"])
def test_compile_failure_falls_back_to_eager(where, monkeypatch, caplog):
    torch.manual_seed(0)
    graph = _batch()
    feat = torch.randn(graph.num_nodes(), 3, dtype=torch.float64)
    model = build_model("bapst", dict(in_dim=3, latent_dim=6, mlp_hidden=[8], num_steps=2)).double()
    with torch.no_grad():
        expected = model(graph, feat)

    def broken_compile(fn, **kwargs):
        if where == "compile":
            raise RuntimeError("no C++ compiler\nsecond line")

        def fails(*args):
            raise RuntimeError("backend bug")

        return fails

    monkeypatch.setattr(torch, "compile", broken_compile)
    model.use_compiled(True)
    with caplog.at_level(logging.WARNING, logger="models.compile"), torch.no_grad():
        first = model(graph, feat)
        second = model(graph, feat)
    torch.testing.assert_close(first, expected, rtol=0, atol=0)
    torch.testing.assert_close(second, expected, rtol=0, atol=0)
    warnings = [r.getMessage() for r in caplog.records if "torch.compile" in r.getMessage()]
    assert len(warnings) == 1 and "running eagerly" in warnings[0] and "\n" not in warnings[0]
    assert ("no C++ compiler" if where == "compile" else "backend bug") in warnings[0]
    model.use_compiled(False)
    assert model._compiled_core is None
