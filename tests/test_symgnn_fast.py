"""SymGNN's fast training path computes what the plain path (DGL's EGATConv) computes.

The generic model tests compare the two paths on a two-layer model; these add the
pieces one by one (the fused symmetrised edge encoder for every transform set, the
edge dropout drawn in another edge order) and deeper models in float64 and float32,
on a graph with a particle that has no incoming edge, with chunks far smaller than
the graph so that every chunked loop runs many times with a ragged last chunk.
"""

from __future__ import annotations

import dgl
import pytest
import torch

import models.common
from glassgnn.graph import build_graph
from models.symgnn_fast import EdgesByDestination, SymmetrisedEncoder
from tests.model_testing import CUTOFF, lattice_configuration, small_model, synthetic

pytestmark = pytest.mark.usefixtures("small_models_eager_one_thread")

TOLERANCE = {torch.float64: {"atol": 1e-10, "rtol": 1e-9}, torch.float32: {"atol": 2e-4, "rtol": 2e-3}}


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch):
    monkeypatch.setattr(models.common, "EDGE_CHUNK", 40)


def _fast_and_plain(dtype: torch.dtype, **config) -> tuple[torch.nn.Module, torch.nn.Module]:
    torch.manual_seed(0)
    fast = small_model("symgnn", 3, fast=True, **config).to(dtype).train()
    plain = small_model("symgnn", 3, fast=False, **config).to(dtype).train()
    plain.load_state_dict(fast.state_dict())
    return fast, plain


def _assert_close_lists(got: list[torch.Tensor], want: list[torch.Tensor], dtype: torch.dtype) -> None:
    assert len(got) == len(want)
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, **TOLERANCE[dtype])


@pytest.mark.parametrize("transforms", ["released", "cubic", "random"])
def test_fused_edge_encoder_equals_the_encoder_summed_over_transforms(transforms):
    fast, plain = _fast_and_plain(torch.float64, transforms=transforms)
    # Displacements with an offset and unequal spreads: the closed-form layer-1 statistics and
    # the shifted layer-2 ones must not depend on centred, isotropic inputs.
    disp = torch.randn(301, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    disp = disp * torch.tensor([1.0, 2.5, 0.3], dtype=torch.float64) + torch.tensor([0.7, -1.2, 0.1])
    weights = torch.linspace(-1, 1, 301 * 8, dtype=torch.float64).view(301, 8)
    results = []
    for model in (fast, plain):
        torch.manual_seed(1)  # the same random rotations
        out = model.symmetrised_edges(disp)
        (out * weights).sum().backward()
        encoder = model.edge_encoder
        results.append([out, *[p.grad for p in encoder.parameters()], *encoder.state_dict().values()])
    _assert_close_lists(results[0], results[1], torch.float64)


def test_fused_edge_encoder_batch_statistics_are_returned_per_transform():
    model = small_model("symgnn", 3, transforms="cubic").double().train()
    lin1, norm1, _, lin2, norm2, _ = model.edge_encoder
    disp = torch.randn(97, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    params = [t for m in (lin1, norm1, lin2, norm2) for t in (m.weight, m.bias)]
    _, stats = SymmetrisedEncoder.apply(disp, model.transforms.double(), *params, 1e-5, 1e-5)
    for t, (mean1, var1, mean2, var2) in zip(model.transforms.double(), stats, strict=True):
        a1 = lin1(disp @ t)
        a2 = lin2(torch.relu(torch.nn.functional.batch_norm(a1, None, None, norm1.weight, norm1.bias, True)))
        for got, want in [(mean1, a1.mean(0)), (var1, a1.var(0, unbiased=False))]:
            torch.testing.assert_close(got, want, atol=1e-12, rtol=1e-10)
        for got, want in [(mean2, a2.mean(0)), (var2, a2.var(0, unbiased=False))]:
            torch.testing.assert_close(got, want, atol=1e-12, rtol=1e-10)


@pytest.mark.parametrize("p", [0.25, 0.6])
def test_edge_dropout_in_destination_order_drops_what_torch_drops(p):
    graph, _ = synthetic(seed=5)
    edges = EdgesByDestination.by_destination(graph)
    e = torch.randn(graph.num_edges(), 4)
    assert not torch.equal(edges.order, torch.arange(graph.num_edges()))  # a real reordering
    torch.manual_seed(2)
    want = torch.nn.functional.dropout(e, p, True)
    torch.manual_seed(2)
    got = edges.dropout_(e[edges.order], p)
    assert torch.equal(got, want[edges.order])


def _self_pair_graph() -> tuple[dgl.DGLGraph, torch.Tensor]:
    """Radius graph with self-pairs (zero displacements), as the CuZr datasets are built."""
    positions, types, box = lattice_configuration((3, 3, 3), seed=7)
    graph = build_graph(positions, types, box, CUTOFF, self_loops=True)
    return graph, torch.nn.functional.one_hot(torch.as_tensor(types), 3).double()


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("case", ["isolated particle", "self-pairs"])
def test_deep_fast_model_equals_plain_model(dtype, case):
    if case == "self-pairs":
        graph, feat = _self_pair_graph()
    else:
        graph, feat = synthetic(seed=6)
        isolated = 5  # no incoming edge: no attention, an empty sum
        graph = dgl.remove_edges(graph, graph.in_edges(isolated, form="eid"))
    fast, plain = _fast_and_plain(dtype, heads=[3, 2, 2, 1], transforms="random")
    if case == "self-pairs":
        # With the initial zero bias of the edge encoder's first batch norm, a zero displacement
        # lands exactly on the ReLU's kink (up to rounding, which differs between the paths), and
        # the two paths may pick different subgradients there: move it off the kink.
        for model in (fast, plain):
            torch.nn.init.constant_(model.edge_encoder[1].bias, 0.1)
    results = []
    for model in (fast, plain):
        torch.manual_seed(1)  # the same dropout masks and random transforms
        eweight = torch.rand(graph.num_edges(), dtype=dtype, generator=torch.Generator().manual_seed(0))
        eweight.requires_grad_(True)
        x = feat.to(dtype).requires_grad_(True)
        out = model(graph, x, eweight)
        (out * torch.linspace(-1, 1, out.numel(), dtype=dtype).view_as(out)).sum().backward()
        grads = [eweight.grad, x.grad, *[p.grad for p in model.parameters()]]
        results.append([out, *grads, *model.state_dict().values()])
    _assert_close_lists(results[0], results[1], dtype)


def test_second_backward_through_the_fast_path_is_a_clear_error():
    graph, feat = synthetic(seed=8)
    model = small_model("symgnn", 3).train()
    loss = model(graph, feat).square().sum()
    loss.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="one backward pass"):
        loss.backward()


def _steps(model: torch.nn.Module, graph: dgl.DGLGraph, feat: torch.Tensor, count: int) -> list[torch.Tensor]:
    """Outputs and gradients of ``count`` SGD steps (the fast path reuses its activations from step 2)."""
    optimiser = torch.optim.SGD(model.parameters(), lr=0.05)
    results = []
    for _ in range(count):
        torch.manual_seed(1)  # the same dropout masks on both paths
        out = model(graph, feat)
        optimiser.zero_grad()
        (out * torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view_as(out)).sum().backward()
        results += [out.detach().clone(), *[p.grad.clone() for p in model.parameters()]]
        optimiser.step()
    return results


def test_reused_activations_give_the_plain_path_over_several_steps():
    graph, feat = synthetic(seed=9)
    fast, plain = _fast_and_plain(torch.float64, heads=[3, 2, 1])
    feat = feat.double()
    _assert_close_lists(_steps(fast, graph, feat, 3), _steps(plain, graph, feat, 3), torch.float64)


def test_activation_buffer_is_reused_only_when_no_graph_or_gradient_holds_it():
    graph, feat = synthetic(seed=9)
    model = small_model("symgnn", 3, heads=[2, 1]).double().train()
    store = model.layers[0].activations
    feat = feat.double()
    model(graph, feat).sum().backward()
    first = store.buffer
    model(graph, feat).sum().backward()
    assert store.buffer is first  # reused once the backward pass returned it

    held = model(graph, feat).sum()  # its graph still needs the buffer
    other = model(graph, feat).sum()
    assert store.buffer is not first
    torch.autograd.backward([held, other])  # both graphs still compute their own gradients

    alias = store.buffer[:1]  # e.g. a gradient written into it and still referenced
    model(graph, feat).sum().backward()
    assert alias.untyped_storage().data_ptr() != store.buffer.untyped_storage().data_ptr()

    model.eval()
    with torch.no_grad():
        model(graph, feat)  # evaluation without autograd: the inference path, buffer kept
    assert store.buffer is not None
    model(graph, feat)  # with autograd (explainers): the plain path, which frees it
    assert store.buffer is None


@pytest.mark.parametrize("transforms", ["released", "random"])
def test_inference_path_equals_plain_path_in_evaluation_mode(transforms):
    graph, feat = synthetic(seed=6)
    graph = dgl.remove_edges(graph, graph.in_edges(5, form="eid"))  # a particle without in-edges
    fast, plain = _fast_and_plain(torch.float64, heads=[3, 2, 1], transforms=transforms)
    feat = feat.double()
    _steps(fast, graph, feat, 2)  # running statistics away from their initial values
    plain.load_state_dict(fast.state_dict())
    eweight = torch.rand(graph.num_edges(), dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    outputs = []
    for model in (fast, plain):
        model.eval()
        with torch.no_grad():
            outputs.append(model(graph, feat, eweight))
    assert fast.layers[0].activations.buffer is not None  # the fast model ran its inference path
    torch.testing.assert_close(outputs[0], outputs[1], **TOLERANCE[torch.float64])
