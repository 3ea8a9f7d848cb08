"""The model zoo's claims, checked for every registered model.

Shapes and finiteness on real and synthetic graphs, gradients, permutation
equivariance, translation invariance, rotation invariance (float64) for the
models that claim it and a visible change for those that do not, the edge
weight contract used by the explainer, and batching.
"""

from __future__ import annotations

import pickle

import dgl
import numpy as np
import pytest
import torch
from e3nn import o3

import models.common
from glassgnn import schema
from glassgnn.graph import build_graph
from models.common import cubic_group
from models.models import build_model, get_entry, model_config_keys, model_names
from tests.conftest import CUZR_DIR, requires_cuzr
from tests.model_testing import (
    graph_and_feat,
    lattice_configuration,
    random_rotation,
    small_model,
    synthetic,
    with_geometry,
)

MODELS = model_names()
# Models that never pass messages: their output cannot depend on a neighbour.
NO_MESSAGES = {name for name in MODELS if get_entry(name).cls.num_message_passing == 0}


pytestmark = pytest.mark.usefixtures("small_models_eager_one_thread")


def _eval_model(name: str, in_dim: int = 3, **overrides) -> torch.nn.Module:
    torch.manual_seed(0)
    return small_model(name, in_dim, **overrides).eval()


@pytest.mark.parametrize("name", MODELS)
def test_synthetic_shape_gradients_and_edge_weight_gradient(name):
    graph, feat = synthetic()
    torch.manual_seed(0)
    model = small_model(name, feat.shape[1]).train()
    eweight = torch.ones(graph.num_edges(), requires_grad=True)
    out = model(graph=graph, feat=feat, eweight=eweight)
    assert out.shape == (graph.num_nodes(), 2)
    assert torch.isfinite(out).all()
    (out**2).sum().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, f"{name}: parameters without gradient: {missing}"
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())
    if name not in NO_MESSAGES:
        # The explainer learns an edge mask through eweight: it must get a signal.
        assert eweight.grad is not None and torch.isfinite(eweight.grad).all()
        assert eweight.grad.abs().sum() > 0


@pytest.mark.parametrize("name", MODELS)
def test_self_pairs_give_finite_outputs_and_gradients(name):
    positions, types, box = lattice_configuration((3, 3, 3), seed=14)
    graph = build_graph(positions, types, box, 3.2, self_loops=True)
    feat = torch.nn.functional.one_hot(torch.as_tensor(types), 2).float()
    torch.manual_seed(0)
    model = small_model(name, 2).train()
    out = model(graph, feat)
    out.sum().backward()
    assert torch.isfinite(out).all()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


@pytest.fixture(scope="module")
def cuzr_subgraph():
    """Atoms of a 14 Å cube of the real 8000-atom CuZr configuration, with their 5 Å graph."""
    with open(CUZR_DIR / "train0.pickle", "rb") as handle:
        data = pickle.load(handle)
    graph = build_graph(data["positions"], data["types"] - 1, data["box"], 5.0)
    pos = graph.ndata[schema.POS]
    keep = torch.nonzero((pos < 14.0).all(dim=1)).squeeze(1)
    sub = dgl.node_subgraph(graph, keep)
    assert sub.in_degrees().min() > 0
    return sub


@requires_cuzr
@pytest.mark.parametrize("name", MODELS)
def test_real_cuzr_graph_with_default_config(name, cuzr_subgraph):
    feat = torch.nn.functional.one_hot(cuzr_subgraph.ndata[schema.TYPE], 2).float()
    torch.manual_seed(0)
    model = build_model(name, {"in_dim": 2, "out_dim": 1}).eval()
    with torch.no_grad():
        out = model(graph=cuzr_subgraph, feat=feat)
    assert out.shape == (cuzr_subgraph.num_nodes(), 1)
    assert torch.isfinite(out).all()
    assert out.std() > 0


@pytest.mark.parametrize("name", MODELS)
def test_permutation_equivariance(name):
    positions, types, box = lattice_configuration((3, 3, 3), seed=1)
    extra = np.random.default_rng(2).standard_normal(len(types))
    perm = np.random.default_rng(3).permutation(len(types))
    model = _eval_model(name)
    with torch.no_grad():
        out = model(*graph_and_feat(positions, types, box, extra))
        out_perm = model(*graph_and_feat(positions[perm], types[perm], box, extra[perm]))
    torch.testing.assert_close(out_perm, out[perm], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("name", MODELS)
def test_translation_invariance(name):
    positions, types, box = lattice_configuration((3, 3, 3), seed=4)
    extra = np.random.default_rng(5).standard_normal(len(types))
    model = _eval_model(name)
    with torch.no_grad():
        out = model(*graph_and_feat(positions, types, box, extra))
        # The shift wraps particles through the periodic faces and reorders the edges.
        shifted = model(*graph_and_feat(positions + np.array([1.7, -4.1, 9.3]), types, box, extra))
    torch.testing.assert_close(shifted, out, atol=1e-5, rtol=1e-4)


def _rotated_outputs(model, graph, feat, rotations):
    model = model.double()
    disp = graph.edata[schema.DISP].double()
    with torch.no_grad():
        ref = model(with_geometry(graph, disp), feat.double())
        outs = [model(with_geometry(graph, disp @ r.T), feat.double()) for r in rotations]
    return ref, outs


@pytest.mark.parametrize("name", MODELS)
def test_rotation_invariance_or_documented_change(name):
    graph, feat = synthetic(seed=6)
    model = _eval_model(name)
    # Two rotations and one improper transform (rotation times inversion).
    rotations = [random_rotation(0), random_rotation(1), -random_rotation(2)]
    ref, outs = _rotated_outputs(model, graph, feat, rotations)
    assert model.invariance in {"so3", "cubic", "none"}
    if model.invariance == "so3":
        for out in outs:
            torch.testing.assert_close(out, ref, atol=1e-10, rtol=1e-9)
    else:
        assert max((out - ref).abs().max().item() for out in outs) > 1e-6, (
            f"{name} declares invariance {model.invariance!r} but is unchanged by generic rotations"
        )


def test_symgnn_cubic_set_is_invariant_under_the_48_cubic_transforms():
    graph, feat = synthetic(seed=7)
    model = _eval_model("symgnn", transforms="cubic")
    assert model.invariance == "cubic"
    group = cubic_group(torch.float64)
    assert len({tuple(g.flatten().tolist()) for g in group}) == 48
    ref, outs = _rotated_outputs(model, graph, feat, group)
    for out in outs:
        torch.testing.assert_close(out, ref, atol=1e-10, rtol=1e-9)
    _, generic = _rotated_outputs(model, graph, feat, [random_rotation(0)])
    assert (generic[0] - ref).abs().max() > 1e-6


@pytest.mark.parametrize("transforms", ["released", "random"])
def test_symgnn_other_transform_sets_are_not_invariant(transforms):
    graph, feat = synthetic(seed=8)
    model = _eval_model("symgnn", transforms=transforms)
    assert model.invariance == "none"
    ref, outs = _rotated_outputs(model, graph, feat, [random_rotation(1), cubic_group(torch.float64)[5]])
    assert all((out - ref).abs().max() > 1e-6 for out in outs)


def test_symgnn_random_set_is_fixed_in_eval_and_redrawn_in_training():
    graph, feat = synthetic(seed=9)
    model = _eval_model("symgnn", transforms="random", dropout=0.0)
    with torch.no_grad():
        torch.testing.assert_close(model(graph, feat), model(graph, feat))
        model.train()
        assert (model(graph, feat) - model(graph, feat)).abs().max() > 1e-6
    assert "transforms" in model.state_dict()
    with pytest.raises(ValueError, match="unknown transforms"):
        small_model("symgnn", 3, transforms="octahedral")


def test_se3_equivariant_features_rotate_with_the_configuration():
    graph, feat = synthetic(seed=10)
    model = _eval_model("se3").double()
    rot = random_rotation(2)
    disp = graph.edata[schema.DISP].double()
    with torch.no_grad():
        ref = model.equivariant_features(with_geometry(graph, disp), feat.double())
        out = model.equivariant_features(with_geometry(graph, disp @ rot.T), feat.double())
    # e3nn's D_from_matrix is only float32-accurate; solve Y(R x) = D Y(x) in float64 instead
    # (this D is accurate to about 1e-9, hence the tolerance).
    points = torch.randn(50, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    blocks = []
    for mul, ir in model.irreps_hidden:
        y = o3.spherical_harmonics(ir.l, points, normalize=True)
        d_l = torch.linalg.lstsq(y, o3.spherical_harmonics(ir.l, points @ rot.T, normalize=True)).solution.T
        blocks += [d_l] * mul
    d_matrix = torch.block_diag(*blocks)
    torch.testing.assert_close(out, ref @ d_matrix.T, atol=1e-8, rtol=1e-7)
    assert ref[:, model.irreps_hidden.slices()[1]].abs().max() > 1e-3  # l = 1 part is not empty


@pytest.mark.parametrize("name", MODELS)
def test_zero_edge_weights_cut_neighbours_off_and_ones_change_nothing(name):
    graph, feat = synthetic(seed=11)
    model = _eval_model(name)
    other = feat.clone()
    other[0] = torch.tensor([1.0, 0.0, 3.0]) if feat[0, 1] == 1 else torch.tensor([0.0, 1.0, -3.0])
    zeros = torch.zeros(graph.num_edges())
    with torch.no_grad():
        out = model(graph=graph, feat=feat)
        torch.testing.assert_close(model(graph=graph, feat=feat, eweight=torch.ones(graph.num_edges())), out)
        cut, cut_other = model(graph, feat, zeros), model(graph, other, zeros)
        changed = model(graph, other)
    torch.testing.assert_close(cut_other[1:], cut[1:], atol=1e-6, rtol=1e-5)
    if name not in NO_MESSAGES:
        # Without the cut, the change of particle 0 does reach its neighbours.
        assert (changed[1:] - out[1:]).abs().max() > 1e-5


@pytest.mark.parametrize("name", MODELS)
def test_batched_equals_one_by_one(name):
    graphs, feats = zip(synthetic((3, 3, 3), seed=12), synthetic((4, 3, 3), seed=13), strict=True)
    model = _eval_model(name)
    with torch.no_grad():
        single = torch.cat([model(g, f) for g, f in zip(graphs, feats, strict=True)])
        batched = model(dgl.batch(graphs), torch.cat(feats))
    torch.testing.assert_close(batched, single, atol=1e-5, rtol=1e-4)


def test_unknown_hyperparameter_is_an_error_naming_it():
    with pytest.raises(KeyError, match="num_interaction"):
        build_model("schnet", {"num_interaction": 3})


def test_mpnn_factorised_messages_equal_nnconv_with_per_edge_matrices():
    graph, feat = synthetic(seed=15)
    torch.manual_seed(0)
    fast = small_model("mpnn", 3).double()
    plain = small_model("mpnn", 3, factorised=False).double()
    plain.load_state_dict(fast.state_dict())
    outs, grads = [], []
    for model in (fast, plain):
        eweight = torch.rand(
            graph.num_edges(), dtype=torch.float64, generator=torch.Generator().manual_seed(0)
        )
        eweight.requires_grad_(True)
        out = model(graph, feat.double(), eweight)
        (out**2).sum().backward()
        outs.append(out)
        grads.append(torch.cat([eweight.grad, *[p.grad.flatten() for p in model.parameters()]]))
    torch.testing.assert_close(outs[0], outs[1], atol=1e-12, rtol=1e-10)
    torch.testing.assert_close(grads[0], grads[1], atol=1e-10, rtol=1e-9)


FAST_PATHS = [name for name in MODELS if "fast" in model_config_keys(name)]


@pytest.mark.parametrize("with_eweight", [True, False], ids=["eweight", "no eweight"])
@pytest.mark.parametrize("name", FAST_PATHS)
def test_fast_path_equals_plain_path_in_outputs_and_gradients(name, with_eweight, monkeypatch):
    # Chunks of 50 edges: the graph (about 500 edges) spans many of them, with a ragged last one.
    monkeypatch.setattr(models.common, "EDGE_CHUNK", 50)
    graph, feat = synthetic(seed=16)
    torch.manual_seed(0)
    fast = small_model(name, 3, fast=True).double().train()
    plain = small_model(name, 3, fast=False).double().train()
    plain.load_state_dict(fast.state_dict())
    results = []
    for model in (fast, plain):
        torch.manual_seed(1)  # same dropout masks and random transforms, if any
        eweight = torch.rand(
            graph.num_edges(), dtype=torch.float64, generator=torch.Generator().manual_seed(0)
        )
        eweight.requires_grad_(True)
        x = feat.double().requires_grad_(True)
        out = model(graph, x, eweight if with_eweight else None)  # None: the training call
        (out * torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view_as(out)).sum().backward()
        grads = [eweight.grad, x.grad, *[p.grad for p in model.parameters()]]
        results.append((out, grads + list(model.state_dict().values())))  # + batch-norm running stats
    torch.testing.assert_close(results[0][0], results[1][0], atol=1e-12, rtol=1e-10)
    for got, want in zip(results[0][1], results[1][1], strict=True):
        torch.testing.assert_close(got, want, atol=1e-10, rtol=1e-9)
