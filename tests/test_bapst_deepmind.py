"""The `bapst` model against DeepMind's release (Bapst et al., Nature Physics 16, 448, 2020).

Claims tested here:
* the converted checkpoint reproduces the predictions of DeepMind's own saved
  TensorFlow graph on a real 4096-particle configuration (max |diff| <= 1e-4) and
  its correlation with the propensity (Pearson 0.9346 on type A);
* the converter reads TensorFlow checkpoints without TensorFlow, gives the bundled
  run directory, and names what is wrong with bad input;
* the message passing equals a brute-force loop over edges, in both update orders;
* DeepMind's own test suite (glassy_dynamics/train_test.py), ported: targets from
  trajectories, loading and time ordering, masked losses and Pearson, memorising
  test_small with a 2-step model, the checkpoint's correlation.
"""

from __future__ import annotations

import contextlib
import io
import re
import shutil

import numpy as np
import pytest
import torch
from conftest import DEEPMIND_DIR, REPO

import construct_graph
import predict
import train
from glassgnn import schema
from glassgnn.config import load_resolved
from glassgnn.convert_deepmind import convert, deepmind_state_dict, main
from glassgnn.dataset import build_graphs
from glassgnn.deepmind_demo import evaluate_pretrained
from glassgnn.graph import build_graph
from glassgnn.metrics import grouped_metrics
from glassgnn.readers import propensity, read_snapshots
from glassgnn.run import load_run
from glassgnn.tf_checkpoint import CheckpointError, read_checkpoint
from models.models import build_model

BUNDLE = REPO / "datasets" / "deepmind"
RUN = BUNDLE / "t044_s09"
TEST_LARGE = BUNDLE / "test_large.pickle"
TEST_SMALL = BUNDLE / "test_small.pickle"
REFERENCE = REPO / "tests" / "fixtures" / "reference_predictions_t044_s09_test_large.npy"
CHECKPOINT = DEEPMIND_DIR / "checkpoints" / "t044_s09.ckpt"

requires_checkpoint = pytest.mark.skipif(
    not CHECKPOINT.with_name(CHECKPOINT.name + ".index").exists(),
    reason=f"DeepMind's TensorFlow checkpoint not found at {CHECKPOINT}",
)


@pytest.fixture(scope="module")
def predicted(tmp_path_factory) -> tuple[np.ndarray, dict, str]:
    """``predict.py --run_dir <converted t044> --input test_large.pickle --time_index 0``:
    the predictions [4096], the metrics it returns and what it printed."""
    output = tmp_path_factory.mktemp("predict") / "test_large.npz"
    with contextlib.redirect_stdout(io.StringIO()) as printed:
        metrics = predict.main(
            ["--run_dir", str(RUN), "--input", str(TEST_LARGE), "--time_index", "0", "--output", str(output)]
        )
    return np.load(output)["pred"][:, 0], metrics, printed.getvalue()


@pytest.fixture(scope="module")
def large_graph():
    """test_large as a graph with the run's parameters, and the run."""
    run = load_run(RUN)
    return run, build_graphs([TEST_LARGE], run.manifest.graph, type_map=run.manifest.type_map)[0]


# --- parity with DeepMind's saved graph -------------------------------------------------


def test_graph_of_test_large_has_deepmind_edge_count(large_graph):
    _, graph = large_graph
    assert graph.num_edges() == 171_066  # with the 4096 self-pairs, as in the released graph


def test_predict_reproduces_deepmind_predictions(predicted):
    pred, metrics, printed = predicted
    reference = np.load(REFERENCE)
    assert pred.dtype == np.float32 and pred.shape == reference.shape == (4096,)
    assert np.abs(pred - reference).max() <= 1e-4  # float32 on CPU, every particle
    # Type A (label "0") against the propensity at time index 0; DeepMind's graph gives 0.9346 too.
    assert round(metrics["propensity_0"]["type=0"]["pearson"], 4) == 0.9346
    assert re.search(r"propensity_0 type=0 \(n=3277\): pearson 0\.9346", printed)


def test_evaluate_pretrained_agrees_with_predict(predicted):
    """The function behind ``make demo``'s line gives predict.py's numbers, at all 10 time indices."""
    pred, metrics, _ = predicted
    result = evaluate_pretrained()  # defaults: the bundled run and configuration
    np.testing.assert_array_equal(result["predictions"], pred)
    assert result["time_index"] == 0 and len(result["pearson_type_a"]) == 10
    # predict.py correlates with float32 targets (the graph's), the reader gives float64.
    assert result["pearson_type_a"][0] == pytest.approx(
        metrics["propensity_0"]["type=0"]["pearson"], abs=1e-6
    )
    assert max(result["pearson_type_a"][1:]) < 0.5  # a short-time model: later times are not its target


def test_other_concatenation_orders_do_not_reproduce_deepmind(large_graph):
    """The parity above pins the block order: swapping sender and receiver blocks breaks it."""
    run, graph = large_graph
    model = build_model("bapst", run.config.model).eval()
    state = {k: v.clone() for k, v in run.model.state_dict().items()}
    w = state["edge_update.0.weight"]  # blocks [e, e0, h_dst, h0_dst, h_src, h0_src] of 64
    state["edge_update.0.weight"] = torch.cat([w[:, :128], w[:, 256:], w[:, 128:256]], dim=1)
    model.load_state_dict(state)
    with torch.no_grad():
        swapped = model(graph, run.features(graph))[:, 0].numpy()
    assert np.abs(swapped - np.load(REFERENCE)).max() > 1e-2


# --- converter ---------------------------------------------------------------------------


@requires_checkpoint
def test_converter_reproduces_the_bundled_run(tmp_path):
    out = convert(CHECKPOINT, tmp_path / "run")
    ours, bundled = torch.load(out / "best.pt")["model"], torch.load(RUN / "best.pt")["model"]
    assert ours.keys() == bundled.keys()
    assert all(torch.equal(ours[k], bundled[k]) for k in ours)
    fresh, bundled = load_resolved(out / "config.yaml"), load_resolved(RUN / "config.yaml")
    for key in ("model_name", "type_encoding", "model", "learning_rate", "grad_clip", "augment"):
        assert getattr(fresh, key) == getattr(bundled, key)
    assert (out / schema.MANIFEST).read_text() == (RUN / schema.MANIFEST).read_text()
    assert "Apache" in (out / "README.md").read_text()
    run = load_run(out)
    assert run.config.type_encoding == "scalar" and run.config.model["update_order"] == "sequential"
    assert run.manifest.graph["cutoff"] == 2.0 and run.manifest.graph["self_loops"] is True


@requires_checkpoint
def test_reader_matches_the_checkpoint_bytes():
    """Sonnet's w [in, out] is torch's weight transposed; the 384-wide edge layer is there."""
    variables = read_checkpoint(CHECKPOINT)
    w = variables["Graph/graph_network/edge_block/mlp/linear_0/w"]
    assert w.shape == (384, 64) and w.dtype == np.float32
    bundled = torch.load(RUN / "best.pt")["model"]
    np.testing.assert_array_equal(w.T, bundled["edge_update.0.weight"].numpy())
    assert "Graph/graph_network/edge_block/mlp/linear_0/w/Adam" in variables  # every float32 read


@requires_checkpoint
def test_cli_refuses_existing_output_and_overwrites_on_request(tmp_path, capsys):
    main([str(CHECKPOINT), "--output_dir", str(tmp_path / "run")])
    with pytest.raises(SystemExit, match="already exists; pass --overwrite"):
        main([str(CHECKPOINT), "--output_dir", str(tmp_path / "run")])
    main([str(CHECKPOINT), "--output_dir", str(tmp_path / "run"), "--overwrite"])
    assert "wrote" in capsys.readouterr().out


def test_not_a_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(SystemExit, match="is not a TensorFlow checkpoint prefix"):
        main([str(tmp_path / "missing.ckpt"), "--output_dir", str(tmp_path / "run")])
    (tmp_path / "junk.ckpt.index").write_bytes(b"not a table" * 10)
    with pytest.raises(CheckpointError, match="bad table footer"):
        read_checkpoint(tmp_path / "junk.ckpt")
    assert not (tmp_path / "run").exists()


@requires_checkpoint
def test_truncated_data_shard_is_a_clear_error(tmp_path):
    prefix = tmp_path / "t044_s09.ckpt"
    shutil.copy(f"{CHECKPOINT}.index", f"{prefix}.index")
    data = open(f"{CHECKPOINT}.data-00000-of-00001", "rb").read()
    with pytest.raises(CheckpointError, match=r"data-00000-of-00001 not found"):
        read_checkpoint(prefix)
    open(f"{prefix}.data-00000-of-00001", "wb").write(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="has .* bytes for shape"):
        read_checkpoint(prefix)
    corrupt = bytearray(data)
    corrupt[100] ^= 0xFF
    open(f"{prefix}.data-00000-of-00001", "wb").write(bytes(corrupt))
    with pytest.raises(CheckpointError, match="checksum mismatch"):
        read_checkpoint(prefix)


def _bundled_variables() -> dict[str, np.ndarray]:
    """DeepMind's variables rebuilt from the bundled run (so these tests need no checkpoint)."""
    from glassgnn.convert_deepmind import DEEPMIND_BLOCKS

    state = torch.load(RUN / "best.pt")["model"]
    out = {}
    for scope, (module, n_layers) in DEEPMIND_BLOCKS.items():
        for k in range(n_layers):
            out[f"{scope}/mlp/linear_{k}/w"] = state[f"{module}.{2 * k}.weight"].numpy().T
            out[f"{scope}/mlp/linear_{k}/b"] = state[f"{module}.{2 * k}.bias"].numpy()
    return out


def test_missing_variable_and_wrong_shape_are_named():
    variables = _bundled_variables()
    assert all(
        torch.equal(v, torch.load(RUN / "best.pt")["model"][k])
        for k, v in deepmind_state_dict(variables).items()
    )
    name = "Graph/graph_network/node_block/mlp/linear_1/b"
    with pytest.raises(CheckpointError, match=f"missing variable {name}"):
        deepmind_state_dict({k: v for k, v in variables.items() if k != name})
    name = "Graph/graph_independent/node_model/mlp/linear_0/w"
    with pytest.raises(
        CheckpointError, match=rf"{name} has shape \(2, 64\); the released model needs \(1, 64\)"
    ):
        deepmind_state_dict({**variables, name: np.zeros((2, 64), np.float32)})


# --- the model ---------------------------------------------------------------------------


def _brute_force(model, graph, feat, eweight, sequential):
    """Bapst message passing written as loops over nodes and edges, using the model's MLPs."""
    src, dst = (t.tolist() for t in graph.edges())
    h0 = model.node_encoder(feat)
    e0 = model.edge_encoder(graph.edata[schema.DISP])
    h, e = h0, e0
    for _ in range(model.config.num_steps):
        e_new = torch.stack(
            [
                model.edge_update(torch.cat([e[k], e0[k], h[dst[k]], h0[dst[k]], h[src[k]], h0[src[k]]]))
                for k in range(len(src))
            ]
        )
        message = e_new if sequential else e
        h = torch.stack(
            [
                model.node_update(
                    torch.cat(
                        [
                            sum(eweight[k] * message[k] for k in range(len(src)) if dst[k] == i),
                            h[i],
                            h0[i],
                        ]
                    )
                )
                for i in range(graph.num_nodes())
            ]
        )
        e = e_new
    return model.decoder(h)


@pytest.mark.parametrize("fast", [True, False], ids=["fast", "plain"])
@pytest.mark.parametrize("order", ["parallel", "sequential"])
def test_message_passing_equals_brute_force(order, fast):
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    positions, types = rng.uniform(0, 4, (7, 3)), rng.integers(0, 3, 7)
    graph = build_graph(positions, types, np.full(3, 4.0), 1.9, self_loops=True)
    graph.edata[schema.DISP] = graph.edata[schema.DISP].double()
    feat = torch.nn.functional.one_hot(torch.as_tensor(types), 3).double()
    config = dict(in_dim=3, out_dim=2, latent_dim=8, mlp_hidden=[8], decoder_hidden=[8], num_steps=3)
    model = build_model("bapst", {**config, "update_order": order, "fast": fast}).double()
    eweight = torch.rand(graph.num_edges(), dtype=torch.float64)
    with torch.no_grad():
        expected = _brute_force(model, graph, feat, eweight, order == "sequential")
        got = model(graph, feat, eweight)
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-12)
    with torch.no_grad():
        model.sequential = order != "sequential"
        assert not torch.allclose(model(graph, feat, eweight), got)  # the two orders differ


def test_preset_deepmind_is_the_released_network_and_refuses_other_values():
    model = build_model("bapst", {"preset": "deepmind"})
    assert model.config.update_order == "sequential" and model.invariance == "none"
    assert build_model("bapst", {}).config.update_order == "parallel"
    with pytest.raises(ValueError, match="preset deepmind needs in_dim = 1, got 2 .*type_encoding: scalar"):
        build_model("bapst", {"preset": "deepmind", "in_dim": 2})
    with pytest.raises(ValueError, match="preset deepmind needs update_order = 'sequential'"):
        build_model("bapst", {"preset": "deepmind", "update_order": "parallel"})
    with pytest.raises(ValueError, match="unknown update_order 'both'; known: parallel, sequential"):
        build_model("bapst", {"update_order": "both"})


# --- DeepMind's test suite (glassy_dynamics/train_test.py), ported -------------------------


def test_deepmind_get_targets():
    initial = np.array([[0, 0, 0], [1, 2, 3]], dtype=float)
    trajectories = np.array([[[1, 0, 0], [1, 2, 4]], [[0, 1, 0], [1, 0, 3]], [[0, 0, 5], [1, 2, 3]]], float)
    np.testing.assert_allclose(propensity(initial, trajectories), [7 / 3, 1.0], rtol=1e-12)


def test_deepmind_load_data_and_targets_grow_with_time():
    (snapshot,) = read_snapshots(TEST_SMALL, "bapst")
    assert snapshot.positions.shape == (20, 3) and snapshot.cell.shape == (3, 3)
    targets = snapshot.fields["propensity"]
    assert targets.shape == (20, 10)
    # Index 9 is the 1/e decay of the scattering function: between indices 5 (0.4) and 6 (0.3).
    means = [targets[:, t].mean() for t in (0, 1, 2, 3, 4, 5, 9, 6, 7, 8)]
    assert all(b > a for a, b in zip([0.0, *means], means, strict=False))


def test_deepmind_masked_losses_and_correlation():
    pred = np.array([0.0, 1.0, 2.0, 1.0, 2.0])
    true = np.array([1.0, 25.0, 0.0, 4.0, 2.0])
    types = np.array([0, 1, 0, 0, 0])
    metrics = grouped_metrics(pred, true, types, types == 0, ["y"], {0: "A", 1: "B"})["y"]["all"]
    assert metrics["count"] == 4
    assert metrics["mae"] == pytest.approx(1.5)  # DeepMind's l1_loss
    assert metrics["rmse"] ** 2 == pytest.approx(3.5)  # DeepMind's l2_loss
    assert metrics["pearson"] == pytest.approx(-0.15289416, abs=1e-7)


def test_deepmind_train_model_memorises_test_small(tmp_path, one_thread):
    """2 steps, MLP sizes (32, 32), cutoff 5, lr 1e-4, gradient clip 1, no augmentation,
    1000 epochs on test_small alone at DeepMind's default time index 9, through our CLIs."""
    conf = tmp_path / "train.conf.yaml"
    conf.write_text(
        "bapst:\n  latent_dim: 32\n  mlp_hidden: [32]\n  decoder_hidden: [32, 32]\n"
        "  num_steps: 2\n  update_order: sequential\n"
    )
    small = str(TEST_SMALL)
    construct_graph.main(
        ["--train", small, "--val", small, "--test", small, "--format", "bapst", "--cutoff", "5"]
        + ["--self_loops", "--time_index", "9", "--output_dir", str(tmp_path / "data")]
    )
    train.main(
        ["--model_config_path", str(conf), "--model_name", "bapst", "--dataset_dir", str(tmp_path / "data")]
        + ["--max_epoch", "1000", "--eval_interval", "1000", "--patience", "1000", "--learning_rate", "1e-4"]
        + ["--grad_clip", "1", "--augment", "none", "--type_encoding", "scalar", "--no-save_results"]
        + ["--output_dir", str(tmp_path / "run")]
    )
    run = load_run(tmp_path / "run")
    graph = build_graphs([TEST_SMALL], run.manifest.graph, type_map=run.manifest.type_map)[0]
    pred, true = run.predict(graph)[:, 0].numpy(), graph.ndata[schema.TARGET][:, 0].numpy()
    assert np.corrcoef(pred, true)[0, 1] > 0.99


def test_deepmind_apply_model(predicted):
    targets = read_snapshots(TEST_LARGE, "bapst", time_index=0)[0].fields["propensity"][:, 0]
    assert np.corrcoef(predicted[0], targets)[0, 1] > 0.5  # every particle, as DeepMind


def test_time_index_is_inferred_from_the_published_names():
    from glassgnn.convert_deepmind import infer_time_index

    assert [infer_time_index(f"ckpts/t044_s0{k}.ckpt") for k in (9, 8, 1)] == [0, 1, 8]
    assert infer_time_index("t056_salpha.ckpt") == 9
    with pytest.raises(CheckpointError, match="cannot infer the time index .* pass --time_index"):
        infer_time_index("model.ckpt")
