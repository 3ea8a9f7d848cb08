"""The model contract (models/contract.py), checked for every registered model.

Every registered model declares its depth, invariance, output level and abilities; each
declared ability does what the contract says; GNNExplainer and PGExplainer run on every
model. A model that does not declare an ability is never asked for it: the base methods
raise, so an explainer run that asked would fail here.
"""

from __future__ import annotations

from dataclasses import replace

import dgl
import numpy as np
import pytest
import torch

from glassgnn import explain_subgraph as sg
from glassgnn import gnnexplainer as gx
from glassgnn import pgexplainer as pg
from glassgnn.config import resolve
from glassgnn.training import fit
from models.contract import (
    Ability,
    GlassModel,
    Invariance,
    OutputLevel,
    check_declarations,
    check_values,
)
from models.models import get_entry, model_names
from models.ridge import Ridge, RidgeConfig
from models.symgnn import SymGNN
from tests.model_testing import SMALL, small_model, synthetic
from tests.synthetic import synthetic_manifest, synthetic_splits

MODELS = model_names()

pytestmark = pytest.mark.usefixtures("small_models_eager_one_thread")


def _model(name: str, in_dim: int = 3, **overrides) -> GlassModel:
    torch.manual_seed(0)
    return small_model(name, in_dim, out_dim=1, **overrides).eval()


def _declaring(ability: Ability) -> list[str]:
    return [n for n in MODELS if ability in get_entry(n).cls.abilities]


@pytest.mark.parametrize("name", MODELS)
def test_every_model_declares_the_contract(name):
    cls = get_entry(name).cls
    check_declarations(cls, name)  # what register_model ran at import
    model = _model(name)
    assert isinstance(model, GlassModel)
    assert isinstance(model.num_message_passing, int) and model.num_message_passing >= 0
    assert model.invariance in set(Invariance)
    assert model.output_level == OutputLevel.NODE  # every model is per-particle by default
    assert isinstance(cls.abilities, frozenset) and cls.abilities <= set(Ability)
    for ability in set(Ability) - cls.abilities:
        assert not model.supports(ability)


# bapst's depth depends on its update order (num_steps - 1 parallel, num_steps sequential).
DEPTH_CASES = [(n, {}) for n in MODELS] + [("bapst", {"update_order": "sequential", "num_steps": 3})]


@pytest.mark.parametrize(("name", "overrides"), DEPTH_CASES, ids=[f"{n}{o or ''}" for n, o in DEPTH_CASES])
def test_declared_depth_is_the_receptive_field(name, overrides):
    """The computation subgraph of the declared depth gives the full-graph outputs (with the
    model's subgraph context, if it declares one); one hop less does not (float64: at
    initialisation a far neighbour changes some models' outputs by only ~1e-6)."""
    graph, feat = synthetic(n_side=(4, 4, 4), seed=3)
    model, feat = _model(name, **overrides).double(), feat.double()
    depth, nodes = model.num_message_passing, [0, 21, 42]
    with torch.no_grad():
        full = model(graph=graph, feat=feat)[nodes]
        context = sg.with_subgraph_context(model, graph)
        for hops in (depth, depth - 1):
            if hops < 0:
                continue
            batch, centers, _, _ = sg.khop_subgraphs(context, nodes, hops)
            sub = model(graph=batch, feat=feat[batch.ndata[dgl.NID].long()])[centers]
            if hops == depth:
                torch.testing.assert_close(sub, full, atol=1e-12, rtol=1e-10)
            else:
                assert (sub - full).abs().max() > 1e-9, f"{name}: {hops} hops already give the outputs"


@pytest.mark.parametrize("name", _declaring(Ability.LAYERS))
def test_layers_equal_forward(name):
    graph, feat = synthetic(seed=4)
    model = _model(name)
    depth = model.num_message_passing
    weight = torch.rand(graph.num_edges(), generator=torch.Generator().manual_seed(0))
    nodes = [1, 9, 20]
    with torch.no_grad():
        torch.testing.assert_close(
            model.forward_layers([graph] * depth, feat, [weight] * depth),
            model(graph=graph, feat=feat, eweight=weight),
        )
        batch, centers, _, _ = sg.khop_subgraphs(sg.with_subgraph_context(model, graph), nodes, depth)
        sub_feat = feat[batch.ndata[dgl.NID].long()]
        mask = torch.rand(batch.num_edges(), generator=torch.Generator().manual_seed(1))
        # On the edges each layer needs (DGL blocks with Ability.BLOCKS): the centres' outputs.
        layered = sg.masked_model(model, batch, centers, depth, layered=True)(sub_feat, mask)
        plain = model(graph=batch, feat=sub_feat, eweight=mask)
    torch.testing.assert_close(layered[centers], plain[centers])


def test_blocks_need_layers_and_are_declared_by_schnet():
    assert _declaring(Ability.BLOCKS) == ["schnet"]
    assert set(_declaring(Ability.BLOCKS)) <= set(_declaring(Ability.LAYERS))


@pytest.mark.parametrize("name", _declaring(Ability.NODE_EMBEDDING))
def test_node_embedding_has_one_row_per_particle_and_feeds_pgexplainer(name):
    graph, feat = synthetic(seed=5)
    model = _model(name)
    with torch.no_grad():
        z = model.embed_nodes(graph, feat)
        assert z.shape[0] == graph.num_nodes() and z.ndim == 2 and torch.isfinite(z).all()
        torch.testing.assert_close(pg._embedding(model, graph, feat), z)
        batch = pg._Batch(model, graph, feat, z, [0, 5], model.num_message_passing)
    assert batch.edge_input.shape == (batch.graph.num_edges(), 3 * z.shape[1] + 1)


@pytest.mark.parametrize("name", _declaring(Ability.COMPILED))
def test_compiled_equals_eager(name, monkeypatch):
    """The compiled path gives the eager outputs. TorchDynamo traces the model for real; the
    traced graph runs on the ``aot_eager`` backend, which skips Inductor's C++ build (minutes on
    the test machine) but keeps the functionalised graph that Inductor would compile."""
    compile_ = torch.compile
    monkeypatch.setattr(torch, "compile", lambda fn, **kw: compile_(fn, backend="aot_eager", **kw))
    graph, feat = synthetic(seed=6)
    model = _model(name)
    with torch.no_grad():
        eager = model(graph=graph, feat=feat)
        model.use_compiled(True)
        compiled = model(graph=graph, feat=feat)
        model.use_compiled(False)
    torch.testing.assert_close(compiled, eager, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("name", _declaring(Ability.TRAINING_CACHE))
def test_training_cache_is_released_and_never_changes_an_output(name):
    graph, feat = synthetic(seed=7)
    models = [_model(name).train(), _model(name).train()]
    outputs: list[list[torch.Tensor]] = [[], []]
    for step in range(3):
        for i, model in enumerate(models):
            torch.manual_seed(step)  # the same dropout masks
            out = model(graph=graph, feat=feat)
            out.square().sum().backward()
            outputs[i].append(out.detach())
            if i == 1:
                model.release_cache()  # the second model never reuses its cache
    for kept, released in zip(*outputs, strict=True):
        torch.testing.assert_close(kept, released)
    if name == "symgnn":
        assert models[0].layers[0].activations.buffer is not None
        models[0].release_cache()
        assert all(layer.activations.buffer is None for layer in models[0].layers)


def test_the_training_loop_releases_the_training_cache_when_training_ends(tmp_path, monkeypatch):
    graphs = synthetic_splits()
    seen = []
    release = SymGNN.release_cache

    def spy(self):
        seen.append(self.layers[0].activations.buffer is not None)  # filled by the training steps
        release(self)

    monkeypatch.setattr(SymGNN, "release_cache", spy)
    cfg = {"model_name": "symgnn", "dataset_dir": "unused", "node_fields": ["cn"], "save_results": False}
    cfg = resolve({**cfg, "max_epoch": 1, "batch_size": 8}, None)
    cfg = replace(cfg, model={**cfg.model, **SMALL["symgnn"]})
    fit(cfg, graphs, synthetic_manifest(graphs), tmp_path / "run")
    assert seen == [True]


def _check_explanations(model: GlassModel, graph, feat, nodes, explanations) -> None:
    with torch.no_grad():
        full = model(graph=graph, feat=feat)
    assert [e.node for e in explanations] == nodes
    for e in explanations:
        assert len(e.importance) == len(e.src) == len(e.edge_ids)
        assert np.all((e.importance >= 0) & (e.importance <= 1))
        assert e.nodes[e.center] == e.node
        # The explained subgraph gives the particle's full-graph prediction.
        np.testing.assert_allclose(e.prediction, full[e.node].numpy(), atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("explainer", ["gnnexplainer", "pgexplainer"])
def test_both_explainers_run_on_every_model(name, explainer, monkeypatch):
    """Issue 18 item 6: PGExplainer on mgcn called its nn.Linear ``node_embedding`` as the
    embedding hook and failed; every model is now explained by both explainers, and a model
    with a training cache is asked to release it first."""
    graph, feat = synthetic(seed=8)
    model = _model(name)
    released = []
    if model.supports(Ability.TRAINING_CACHE):
        release = type(model).release_cache
        monkeypatch.setattr(type(model), "release_cache", lambda self: released.append(release(self)))
    nodes, depth = [2, 13], model.num_message_passing
    if explainer == "gnnexplainer":
        settings = gx.GNNExplainerSettings(epochs=3, batch_size=2)
        result = gx.explain_gnnexplainer(model, graph, feat, nodes, depth, settings, seed=0)
    else:
        settings = pg.PGExplainerSettings(epochs=3, batch_size=2, max_train_nodes=2)
        result = pg.explain_pgexplainer(model, graph, feat, nodes, depth, settings, seed=0)
    _check_explanations(model, graph, feat, nodes, result)
    assert bool(released) == model.supports(Ability.TRAINING_CACHE)
    assert not model.training and all(p.requires_grad for p in model.parameters())  # restored


def test_a_closed_form_model_fits_the_contract_and_is_explained():
    model = Ridge(RidgeConfig(in_dim=3, alphas=[0.0, 100.0]))
    check_values(model, "ridge")
    graph, feat = synthetic(seed=9)
    target = feat @ torch.tensor([[0.5], [-1.0], [2.0]]) + 0.25

    def score():  # the validation score of the current solution: here on the training rows
        return -float(((model(graph, feat) - target) ** 2).mean())

    tried = model.fit_closed_form([(feat, target)], score)
    assert [t["alpha"] for t in tried] == [0.0, 100.0] and float(model.alpha) == 0.0
    torch.testing.assert_close(model(graph, feat), target, atol=1e-4, rtol=1e-4)
    explanations = gx.explain_gnnexplainer(model, graph, feat, [4], 0, gx.GNNExplainerSettings(epochs=2))
    assert len(explanations[0].importance) == 0  # depth 0: no edge can matter


def test_undeclared_contracts_are_refused_with_one_clear_line():
    class NoDepth(GlassModel):
        invariance = Invariance.SO3
        output_level = OutputLevel.NODE

    class Embeds(Ridge):
        abilities = Ridge.abilities

        def embed_nodes(self, graph, feat, eweight=None):  # an ability method without its declaration
            return feat

    class Promises(Ridge):
        abilities = Ridge.abilities | {Ability.NODE_EMBEDDING}  # ... and a declaration without its method

    class BlocksOnly(Ridge):
        abilities = Ridge.abilities | {Ability.BLOCKS}

    class Deep(Ridge):
        num_message_passing = 2  # a closed-form fit needs depth 0

    class Plain(torch.nn.Module):
        pass

    cases = [
        (NoDepth, "does not declare num_message_passing"),
        (Embeds, r"defines embed_nodes\(\) but does not declare Ability.NODE_EMBEDDING"),
        (Promises, r"declares Ability.NODE_EMBEDDING but does not define embed_nodes\(\)"),
        (BlocksOnly, "declares Ability.BLOCKS without Ability.LAYERS"),
        (Plain, "must subclass models.contract.GlassModel"),
    ]
    for cls, message in cases:
        with pytest.raises(TypeError, match=message):
            check_declarations(cls, "bad")
    check_declarations(Deep, "deep")
    with pytest.raises(TypeError, match="needs num_message_passing 0, got 2"):
        check_values(Deep(RidgeConfig(in_dim=3)), "deep")
    with pytest.raises(NotImplementedError, match="does not declare Ability.LAYERS"):
        Ridge(RidgeConfig(in_dim=3)).forward_layers([], torch.zeros(1, 3), [])
