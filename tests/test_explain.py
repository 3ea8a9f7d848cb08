"""Explanations: subgraphs give the full prediction, masks act, importances are well formed."""

from __future__ import annotations

import dataclasses

import dgl
import networkx as nx
import numpy as np
import pytest
import torch

from glassgnn import explain_subgraph as sg
from glassgnn import fidelity as fi
from glassgnn import gnnexplainer as gx
from glassgnn import pgexplainer as pg
from glassgnn import schema
from glassgnn.features import node_features
from glassgnn.frozen_model import frozen
from glassgnn.graph import build_graph
from models.contract import Ability
from models.masked_conv import MaskedFilterConv
from models.models import build_model, get_entry, model_names

NUM_STEPS = 2


pytestmark = pytest.mark.usefixtures("small_models_eager_one_thread")


def small_graph(seed: int = 0, n: int = 60, box: float = 6.0, self_loops: bool = False) -> dgl.DGLGraph:
    rng = np.random.default_rng(seed)
    positions, types = rng.uniform(0, box, (n, 3)), rng.integers(0, 2, n)
    return build_graph(positions, types, np.full(3, box), 1.5, self_loops=self_loops)


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    model = build_model(
        "bapst",
        {
            "in_dim": 2,
            "out_dim": 1,
            "latent_dim": 16,
            "mlp_hidden": [16],
            "decoder_hidden": [16],
            "num_steps": NUM_STEPS,
            "update_order": "sequential",  # receptive field of exactly num_steps hops
        },
    )
    graph = small_graph()
    return model.eval(), graph, node_features(graph, 2)


def test_subgraph_gives_the_full_graph_prediction(setup):
    model, graph, feat = setup
    with torch.no_grad():
        full = model(graph=graph, feat=feat)
        nodes = [0, 5, 17, 33]
        for hops, equal in ((NUM_STEPS, True), (NUM_STEPS - 1, False)):
            batch, centers, _, _ = sg.khop_subgraphs(graph, nodes, hops)
            sub = model(graph=batch, feat=feat[batch.ndata[dgl.NID].long()])[centers]
            assert torch.allclose(sub, full[nodes], atol=1e-5) == equal


def test_computation_subgraph_against_breadth_first_search(setup):
    _, graph, _ = setup
    src, dst = (t.numpy() for t in graph.edges())
    reverse = nx.DiGraph(list(zip(dst.tolist(), src.tolist(), strict=True)))  # receiver -> sender
    reverse.add_nodes_from(range(graph.num_nodes()))
    for node in (0, 7, 30):
        hops = nx.single_source_shortest_path_length(reverse, node, cutoff=3)
        sub, center = sg.computation_subgraph(graph, node, 3)
        nid = sub.ndata[dgl.NID].numpy()
        assert nid[center] == node and sorted(nid) == sorted(hops)
        expected = {int(e) for e in np.flatnonzero([hops.get(int(d), 9) < 3 for d in dst])}
        assert set(sub.edata[dgl.EID].tolist()) == expected
        s, d = sub.edges()
        np.testing.assert_array_equal(nid[s.numpy()], src[sub.edata[dgl.EID].numpy()])
        np.testing.assert_array_equal(nid[d.numpy()], dst[sub.edata[dgl.EID].numpy()])


def test_all_zero_eweight_equals_a_graph_without_edges(setup):
    model, graph, feat = setup
    with torch.no_grad():
        masked = model(graph=graph, feat=feat, eweight=torch.zeros(graph.num_edges()))
        full = model(graph=graph, feat=feat)
        edgeless = dgl.remove_edges(graph, torch.arange(graph.num_edges()))
        alone = model(graph=edgeless, feat=feat)
    torch.testing.assert_close(masked, alone)
    assert (masked - full).abs().max() > 1e-3


def test_gnnexplainer_importances(setup):
    model, graph, feat = setup
    params = [p.detach().clone() for p in model.parameters()]
    settings = gx.GNNExplainerSettings(epochs=20, batch_size=3)
    nodes = [3, 8, 21, 40]
    result = gx.explain_gnnexplainer(model, graph, feat, nodes, NUM_STEPS, settings, seed=1)
    assert [e.node for e in result] == nodes
    for e in result:
        sub, _ = sg.computation_subgraph(graph, e.node, NUM_STEPS)
        assert len(e.importance) == sub.num_edges() == len(e.src) == len(e.edge_ids)
        assert np.all((e.importance >= 0) & (e.importance <= 1))
        assert e.feat_importance.shape == (2,)
        assert e.nodes[e.center] == e.node
        # Edge endpoints in global ids are the graph's own edges.
        gsrc, gdst = graph.find_edges(torch.as_tensor(e.edge_ids))
        np.testing.assert_array_equal(gsrc.numpy(), e.nodes[e.src])
        np.testing.assert_array_equal(gdst.numpy(), e.nodes[e.dst])
    # Frozen during the explanation, restored after: unchanged weights that still train.
    for before, after in zip(params, model.parameters(), strict=True):
        assert torch.equal(before, after) and after.requires_grad
    # A batch gives what one particle at a time gives; the same seed gives the same masks.
    single = gx.explain_gnnexplainer(
        model, graph, feat, nodes[:2], NUM_STEPS, gx.GNNExplainerSettings(epochs=20, batch_size=1), seed=1
    )
    for a, b in zip(single, result, strict=False):
        np.testing.assert_allclose(a.importance, b.importance, atol=1e-4)
    other_seed = gx.explain_gnnexplainer(model, graph, feat, nodes[:1], NUM_STEPS, settings, seed=2)
    assert not np.allclose(other_seed[0].importance, result[0].importance)


def test_gnnexplainer_masks_learn_from_the_prediction(setup):
    """Without regularisers, the only signal is the prediction: the optimised masks must
    reproduce the particle's prediction better than the initial ones."""
    model, graph, feat = setup
    settings = gx.GNNExplainerSettings(epochs=40, lr=0.05, alpha1=0, alpha2=0, beta1=0, beta2=0)
    (e,) = gx.explain_gnnexplainer(model, graph, feat, [21], NUM_STEPS, settings, seed=3)
    sub = sg.explained_subgraph(graph, e)
    sub_feat = feat[torch.as_tensor(e.nodes)]
    edge0, feat0 = gx._initial_masks(sub, 2, 21, seed=3)

    def error(edge_mask, feat_mask):
        with torch.no_grad():
            pred = model(graph=sub, feat=sub_feat * feat_mask, eweight=edge_mask)[e.center]
        return float((pred - torch.as_tensor(e.prediction, dtype=pred.dtype)).abs().sum())

    before = error(edge0.sigmoid(), feat0.sigmoid())
    after = error(
        torch.as_tensor(e.importance, dtype=torch.float32), torch.as_tensor(e.feat_importance).float()
    )
    assert after < 0.5 * before, (before, after)
    assert before > 1e-4  # the initial masks do change the prediction


def test_fidelity_limits(setup):
    model, graph, feat = setup
    (e,) = gx.explain_gnnexplainer(model, graph, feat, [8], NUM_STEPS, gx.GNNExplainerSettings(epochs=5))
    pairs, _, _ = sg.bonds(e.src, e.dst, e.importance)
    everything = fi.fidelity(model, graph, feat, e, len(pairs), np.random.default_rng(0))
    # Keeping every bond changes nothing; removing every bond is the edgeless prediction.
    assert everything["minus"] == pytest.approx(0.0, abs=1e-6)
    with torch.no_grad():
        edgeless = dgl.remove_edges(graph, torch.arange(graph.num_edges()))
        change = (model(graph=edgeless, feat=feat)[8] - torch.as_tensor(e.prediction)).abs().mean()
    assert everything["plus"] == pytest.approx(float(change), abs=1e-5)
    assert everything["random"] == pytest.approx(everything["plus"], abs=1e-6)
    some = fi.fidelity(model, graph, feat, e, 3, np.random.default_rng(0))
    assert some["k"] == 3 and min(some["plus"], some["minus"], some["random"]) >= 0


def test_gcn_normalisation_is_graphconvs_and_local_with_full_graph_degrees():
    """gcn folds D^-1/2 (A + I) D^-1/2 into its edge weights: the same outputs as DGL's
    GraphConv(norm='both'); on a subgraph without the full graph's degrees the explained
    particle's prediction differs, with them (the explainers' path) it is the full one."""
    from models.gcn import FULL_IN_DEGREE

    torch.manual_seed(0)
    graph = small_graph(3, n=50, box=5.0)
    feat = node_features(graph, 2)
    model = build_model("gcn", {"in_dim": 2, "out_dim": 1, "num_layers": 2}).eval()
    weight = torch.rand(graph.num_edges(), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = model(graph=graph, feat=feat, eweight=weight)
        looped = dgl.add_self_loop(graph)
        h = model.encoder(feat)
        for conv in model.convs:
            reference = dgl.nn.GraphConv(
                32, 32, norm="both", activation=torch.relu, allow_zero_in_degree=True
            )
            reference.load_state_dict(conv.state_dict())
            h = reference(looped, h, edge_weight=torch.cat([weight, torch.ones(graph.num_nodes())]))
        torch.testing.assert_close(out, model.decoder(h))
        full = model(graph=graph, feat=feat)
        nodes = [1, 20, 41]
        plain, centers, _, _ = sg.khop_subgraphs(graph, nodes, 2)
        assert FULL_IN_DEGREE not in plain.ndata
        truncated = model(graph=plain, feat=feat[plain.ndata[dgl.NID].long()])[centers]
        assert (truncated - full[nodes]).abs().max() > 1e-4
        batch, centers, _, _ = sg.khop_subgraphs(sg.with_subgraph_context(model, graph), nodes, 2)
        sub = model(graph=batch, feat=feat[batch.ndata[dgl.NID].long()])[centers]
    torch.testing.assert_close(sub, full[nodes], atol=1e-6, rtol=1e-5)
    assert FULL_IN_DEGREE not in graph.ndata  # the caller's graph is left as it was


def test_bonds_pair_directions():
    src, dst = np.array([0, 1, 1, 2, 2]), np.array([1, 0, 2, 1, 2])
    pairs, importance, bond_of_edge = sg.bonds(src, dst, np.array([0.2, 0.4, 1.0, 0.0, 0.9]))
    np.testing.assert_array_equal(pairs, [[0, 1], [1, 2]])
    np.testing.assert_allclose(importance, [0.3, 0.5])
    np.testing.assert_array_equal(bond_of_edge, [0, 0, 1, 1, -1])


def test_pgexplainer_importances_and_training(setup):
    model, graph, feat = setup
    nodes = [3, 8, 21, 40, 50]
    settings = pg.PGExplainerSettings(epochs=15, max_train_nodes=4, batch_size=4)
    result = pg.explain_pgexplainer(model, graph, feat, nodes, NUM_STEPS, settings, seed=0)
    assert [e.node for e in result] == nodes  # the fifth was not trained on and is still explained
    for e in result:
        assert len(e.importance) == len(e.src) and np.all((e.importance >= 0) & (e.importance <= 1))
        assert e.nodes[e.center] == e.node
        # Symmetric: both directions of a bond get the same importance.
        pairs, bond_imp, bond_of_edge = sg.bonds(e.src, e.dst, e.importance)
        np.testing.assert_allclose(e.importance[bond_of_edge >= 0], bond_imp[bond_of_edge[bond_of_edge >= 0]])
    again = pg.explain_pgexplainer(model, graph, feat, nodes, NUM_STEPS, settings, seed=0)
    np.testing.assert_allclose(again[4].importance, result[4].importance, rtol=1e-5)  # same seed, same masks
    # The prediction term trains the explainer: its gradient is not zero.
    batch = pg._Batch(model, graph, feat, pg._embedding(model, graph, feat).detach(), nodes[:2], NUM_STEPS)
    explainer = pg.RegressionPGExplainer(
        batch.edge_input.shape[1], pg.PGExplainerSettings(coff_budget=0, coff_connect=0)
    )
    with frozen(model):
        explainer.loss(batch, explainer.mask(batch, 1.0, torch.Generator().manual_seed(0))).backward()
    assert explainer.elayers[0].weight.grad.abs().sum() > 0


@pytest.mark.parametrize(
    "name",
    [n for n in model_names() if get_entry(n).cls.num_message_passing != 0],  # edges matter
)
def test_edge_mask_acts_and_the_memoised_model_is_exact(name):
    """In every graph model an all-zero edge mask changes the prediction, and the cache of
    mask-independent work (glassgnn.frozen_model) changes neither outputs nor mask gradients."""
    torch.manual_seed(0)
    graph = small_graph(2, n=40, box=5.0, self_loops=True)  # some models refuse particles without in-edges
    feat = node_features(graph, 2)
    model = build_model(name, {"in_dim": 2, "out_dim": 1}).eval()
    masks = [
        torch.zeros(graph.num_edges()),
        torch.rand(graph.num_edges(), generator=torch.Generator().manual_seed(1)),
    ]

    def outputs_and_grads():
        results = []
        for mask in masks:
            mask = mask.clone().requires_grad_(True)
            out = model(graph=graph, feat=feat * 0.9, eweight=mask)
            out.sum().backward()
            results.append((out.detach(), mask.grad))
        return results

    with frozen(model):
        full = model(graph=graph, feat=feat * 0.9)
        plain = outputs_and_grads()
    assert (plain[0][0] - full).abs().max() > 1e-6, (
        f"{name}: an all-zero eweight leaves the prediction unchanged"
    )
    own_forward = [m for m in model.modules() if "forward" in vars(m)]  # e.g. e3nn's generated code
    with frozen(model, cache=True) as stats:
        cached = outputs_and_grads()
    for (out_a, grad_a), (out_b, grad_b) in zip(plain, cached, strict=True):
        torch.testing.assert_close(out_a, out_b)
        torch.testing.assert_close(grad_a, grad_b)
    if name == "schnet":
        assert stats["hits"] > 0  # its filter networks are computed once
    # The computation subgraph of the declared depth reproduces the full-graph prediction.
    depth = model.num_message_passing
    with torch.no_grad():
        # gcn: the subgraphs carry the full graph's degrees (model.subgraph_context).
        context_graph = sg.with_subgraph_context(model, graph)
        batch, centers, _, _ = sg.khop_subgraphs(context_graph, [0, 11, 25], depth)
        sub = model(graph=batch, feat=0.9 * feat[batch.ndata[dgl.NID].long()])[centers]
    torch.testing.assert_close(sub, full[[0, 11, 25]], atol=1e-5, rtol=1e-4)
    assert all(p.requires_grad for p in model.parameters())
    assert [m for m in model.modules() if "forward" in vars(m)] == own_forward  # the wrappers are gone


def _graph_level_model():
    from models.readout import build_graph_level_model

    torch.manual_seed(0)
    hparams = {"in_dim": 2, "out_dim": 1, "hidden_dim": 16, "num_filters": 16, "num_interactions": 2}
    return build_graph_level_model("schnet", {**hparams, "cutoff": 1.5}, {"op": "mean"}).eval()


def test_graph_level_explanation_uses_dgls_explain_graph_with_a_regression_loss():
    model = _graph_level_model()
    graph = small_graph(4, n=40, box=5.0, self_loops=True)
    feat = node_features(graph, 2)
    with torch.no_grad():
        full = model(graph=graph, feat=feat)
        # DGL's loss on the wrapper is softplus(d^2 - eps) of the squared change, class 0 unmasked.
        wrapper = gx._KeepPrediction(model, full)
        assert int(wrapper(graph, feat).argmax(-1)) == 0
        changed = wrapper(graph, feat, eweight=torch.zeros(graph.num_edges()))
        d2 = (model(graph=graph, feat=feat, eweight=torch.zeros(graph.num_edges())) - full).pow(2).sum()
        assert d2 > 1e-6  # the edge mask acts on the graph-level prediction too
        torch.testing.assert_close(-changed.log_softmax(-1)[0, 0], torch.nn.functional.softplus(d2 - 1e-6))
    params = [p.detach().clone() for p in model.parameters()]
    settings = gx.GNNExplainerSettings(epochs=40, lr=0.05, alpha1=0, alpha2=0, beta1=0, beta2=0)
    e = gx.explain_graph_prediction(model, graph, feat, settings, seed=0, log=False)
    assert e.importance.shape == (graph.num_edges(),) and e.feat_importance.shape == (2,)
    assert np.all((e.importance > 0) & (e.importance < 1))
    np.testing.assert_allclose(e.prediction, full[0].numpy(), rtol=1e-6)
    for before, after in zip(params, model.parameters(), strict=True):
        assert torch.equal(before, after) and after.requires_grad
    # The masks learn from the prediction: better than DGL's initial masks (same seed).
    torch.manual_seed(0)
    feat0, edge0 = dgl.nn.GNNExplainer(model, num_hops=1)._init_masks(graph, feat)
    with torch.no_grad():

        def error(edge_mask, feat_mask):
            return float((model(graph=graph, feat=feat * feat_mask, eweight=edge_mask) - full).abs().sum())

        before = error(edge0.sigmoid(), feat0.sigmoid())
        after = error(torch.as_tensor(e.importance).float(), torch.as_tensor(e.feat_importance).float())
    assert before > 1e-5 and after < 0.5 * before, (before, after)
    again = gx.explain_graph_prediction(model, graph, feat, settings, seed=0, log=False)
    np.testing.assert_array_equal(again.importance, e.importance)


def test_whole_graph_topology_refuses_alpha_on_a_periodic_graph_and_uses_periodic_rips():
    from glassgnn import explain_topology as et
    from glassgnn import topology

    graph = small_graph(5, n=60, box=6.0)
    cell = np.diag(np.full(3, 6.0))
    with pytest.raises(topology.UnwrapError, match="use --complex rips"):
        et.whole_graph_topology(graph, cell, "alpha", index=3)
    topo = et.whole_graph_topology(graph, cell, "rips")
    assert len(topo["edge_cycles"]) == graph.num_edges() and topo["num_nodes"] == 60
    assert len(topo["cycles"]) == len(topo["cycle_persistence"]) > 0
    # A cluster far from the box faces is one piece: alpha works and is gudhi's alpha of the positions.
    rng = np.random.default_rng(0)
    cluster = build_graph(rng.uniform(8, 12, (40, 3)), rng.integers(0, 2, 40), np.full(3, 20.0), 1.5)
    topo = et.whole_graph_topology(cluster, np.diag(np.full(3, 20.0)), "alpha")
    reference = topology.persistence(cluster.ndata[schema.POS].double().numpy(), "alpha")
    np.testing.assert_allclose(topo["diagrams"][1], reference.diagrams[1])
    with pytest.raises(topology.ComplexTooLargeError, match="graph 2: .* smaller --cutoff"):
        et.whole_graph_topology(graph, cell, "rips", index=2, max_simplices=100)


def test_layer_edge_ids_against_breadth_first_search(setup):
    _, graph, _ = setup
    src, dst = (t.numpy() for t in graph.edges())
    reverse = nx.DiGraph(list(zip(dst.tolist(), src.tolist(), strict=True)))
    reverse.add_nodes_from(range(graph.num_nodes()))
    centers = torch.tensor([0, 7, 30])
    layers = sg.layer_edge_ids(graph, centers, 3)
    hops = {}
    for c in centers.tolist():
        for node, h in nx.single_source_shortest_path_length(reverse, c, cutoff=3).items():
            hops[node] = min(h, hops.get(node, 9))
    for layer, eids in enumerate(layers, start=1):
        expected = [e for e in range(len(dst)) if hops.get(int(dst[e]), 9) <= 3 - layer]
        assert eids.tolist() == expected
    assert [len(e) for e in layers] == sorted((len(e) for e in layers), reverse=True)


@pytest.mark.parametrize("name", [n for n in model_names() if Ability.LAYERS in get_entry(n).cls.abilities])
def test_layered_models_give_the_same_outputs_and_explanations(name):
    """Models with forward_layers: one graph per layer equals forward; each layer on only the
    edges it needs (layer_edge_ids) gives the explained particles' outputs exactly, and the
    same GNNExplainer masks as the whole computation subgraph."""
    torch.manual_seed(0)
    graph = small_graph(6, n=50, box=5.0, self_loops=True)
    feat = node_features(graph, 2)
    model = build_model(name, {"in_dim": 2, "out_dim": 1}).eval()
    depth = model.num_message_passing
    weight = torch.rand(graph.num_edges(), generator=torch.Generator().manual_seed(0))
    nodes = [2, 19, 33]
    with torch.no_grad():
        same = model.forward_layers([graph] * depth, feat, [weight] * depth)
        torch.testing.assert_close(same, model(graph=graph, feat=feat, eweight=weight))
        batch, centers, _, _ = sg.khop_subgraphs(sg.with_subgraph_context(model, graph), nodes, depth)
        sub_feat = feat[batch.ndata[dgl.NID].long()]
        layered = sg.masked_model(model, batch, centers, depth, layered=True)
        plain = sg.masked_model(model, batch, centers, depth, layered=False)
        mask = torch.rand(batch.num_edges(), generator=torch.Generator().manual_seed(1))
        torch.testing.assert_close(layered(sub_feat, mask)[centers], plain(sub_feat, mask)[centers])
        full = model(graph=graph, feat=feat)[nodes]
        torch.testing.assert_close(layered(sub_feat, torch.ones(batch.num_edges()))[centers], full)
    settings = gx.GNNExplainerSettings(epochs=15, lr=0.05)
    fast = gx.explain_gnnexplainer(model, graph, feat, nodes, depth, settings, seed=0)
    slow = gx.explain_gnnexplainer(
        model, graph, feat, nodes, depth, dataclasses.replace(settings, layered=False), seed=0
    )
    for a, b in zip(fast, slow, strict=True):
        np.testing.assert_allclose(a.importance, b.importance, atol=1e-5)
        np.testing.assert_allclose(a.feat_importance, b.feat_importance, atol=1e-5)


def test_layer_blocks_hold_the_layer_edges_and_the_particles_each_layer_updates(setup):
    _, graph, _ = setup
    centers = torch.tensor([0, 7, 30])
    blocks, eids = sg.layer_blocks(graph, centers, 3)
    for block, ids, expected in zip(blocks, eids, sg.layer_edge_ids(graph, centers, 3), strict=True):
        assert sorted(ids.tolist()) == expected.tolist()
        dst_ids = block.dstdata[dgl.NID]
        assert set(dst_ids.tolist()) == set(graph.edges()[1][expected].tolist()) | set(centers.tolist())
        src, dst = block.edges()
        # Local endpoints name the graph's endpoints of the same edges, whose data came along.
        assert torch.equal(block.srcdata[dgl.NID][src.long()], graph.edges()[0][ids])
        assert torch.equal(dst_ids[dst.long()], graph.edges()[1][ids])
        torch.testing.assert_close(block.edata[schema.DIST], graph.edata[schema.DIST][ids])
    for earlier, later in zip(blocks, blocks[1:], strict=False):
        assert torch.equal(earlier.dstdata[dgl.NID], later.srcdata[dgl.NID])
    assert torch.equal(blocks[-1].dstdata[dgl.NID], centers)


def test_masked_filter_conv_equals_dgls_message_passing_in_values_and_gradients():
    gen = torch.Generator().manual_seed(0)
    n_src, n_dst, n_edges, width = 70, 40, 9000, 8  # more edges than one chunk
    src = torch.randint(0, n_src, (n_edges,), generator=gen)
    dst = torch.randint(0, n_dst, (n_edges,), generator=gen)
    block = dgl.create_block((src, dst), num_src_nodes=n_src, num_dst_nodes=n_dst)
    filters = torch.randn(n_edges, width, generator=gen)
    h0, s0 = torch.randn(n_src, width, generator=gen), torch.rand(n_edges, 1, generator=gen)
    grad_out = torch.randn(n_dst, width, generator=gen)
    results = []
    for fused in (True, False):
        h, s = h0.clone().requires_grad_(True), s0.clone().requires_grad_(True)
        if fused:
            out = MaskedFilterConv.apply(src, dst, n_dst, h, filters, s)
        else:
            out = dgl.ops.u_mul_e_sum(block, h, filters * s)
        out.backward(grad_out)
        results.append((out.detach(), h.grad, s.grad))
    for fused, reference in zip(*results, strict=True):
        torch.testing.assert_close(fused, reference, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="fixed"):
        MaskedFilterConv.apply(src, dst, n_dst, h0, filters.requires_grad_(True), s0)


def test_frozen_schnet_explains_as_its_plain_path():
    """The explainer's SchNet (frozen weights: memoised filters, MaskedFilterConv, each layer on
    its block) gives the plain path's outputs, mask gradients and GNNExplainer masks."""
    torch.manual_seed(0)
    graph = small_graph(6, n=50, box=5.0, self_loops=True)
    feat = node_features(graph, 2)
    hparams = {"in_dim": 2, "out_dim": 1, "cutoff": 1.5}
    fast = build_model("schnet", hparams).eval()
    plain = build_model("schnet", {**hparams, "fast": False}).eval()
    plain.load_state_dict(fast.state_dict())
    nodes, depth = [2, 19, 33], fast.num_message_passing
    batch, centers, _, _ = sg.khop_subgraphs(graph, nodes, depth)
    sub_feat = feat[batch.ndata[dgl.NID].long()]
    mask0 = torch.rand(batch.num_edges(), generator=torch.Generator().manual_seed(1))
    results = []
    for model, layered in ((fast, True), (plain, False)):
        with frozen(model, cache=True):
            mask, f = mask0.clone().requires_grad_(True), sub_feat.clone().requires_grad_(True)
            predict = sg.masked_model(model, batch, centers, depth, layered)
            for _ in range(2):  # the second call reads the memoised filters
                mask.grad = f.grad = None
                out = predict(f, mask)[centers]
                out.pow(2).sum().backward()
            results.append((out.detach(), mask.grad, f.grad))
    for a, b in zip(*results, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
    settings = gx.GNNExplainerSettings(epochs=15, lr=0.05)
    explained = [
        gx.explain_gnnexplainer(fast, graph, feat, nodes, depth, settings, seed=0),
        gx.explain_gnnexplainer(
            plain, graph, feat, nodes, depth, dataclasses.replace(settings, layered=False)
        ),
    ]
    for a, b in zip(*explained, strict=True):
        np.testing.assert_allclose(a.importance, b.importance, atol=1e-5)
        np.testing.assert_allclose(a.feat_importance, b.feat_importance, atol=1e-5)
