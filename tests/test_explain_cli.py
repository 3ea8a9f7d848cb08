"""explain.py end to end on a model trained here for a few epochs on synthetic data."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml

import explain
import train
from glassgnn import schema, topology
from glassgnn.dataset import load_split, load_split_labels
from glassgnn.run import load_run
from tests.synthetic import DENSITY_CUTOFF, write_dataset, write_density_files

# One sequential message-passing step: a 1-hop neighbourhood, well inside the 6-unit box.
MODEL = {
    "latent_dim": 8,
    "mlp_hidden": [8],
    "decoder_hidden": [8],
    "num_steps": 1,
    "update_order": "sequential",
}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("explain_cli")
    dataset = write_dataset(root / "data")
    conf = root / "train.conf.yaml"
    conf.write_text(yaml.safe_dump({"global": {"learning_rate": 0.003}, "bapst": MODEL}))
    train.main([f"--dataset_dir={dataset}", "--model_name=bapst", f"--output_dir={root / 'run'}",
                f"--model_config_path={conf}", "--max_epoch=3", "--no-save_results"])  # fmt: skip
    return root / "run"


def _explain(run_dir, out, *extra):
    return explain.main([f"--run_dir={run_dir}", f"--output_dir={out}", "--num_nodes=3", "--epochs=10",
                         "--top_k=3", *extra])  # fmt: skip


def test_cli_end_to_end_is_reproducible(run_dir, tmp_path):
    _explain(run_dir, tmp_path / "a")
    out = tmp_path / "a"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["num_particles"] == 3
    assert summary["parameters"]["num_hops"] == 1  # the model's depth, from its config
    assert set(summary["complex_by_particle"].values()) == {"alpha"}  # 1-hop neighbourhoods fit the box
    for stats in summary["participation"].values():
        assert set(stats["tiers"]) == set(topology.TIERS)
        assert all(stats["tiers"][t]["count"] > 0 for t in topology.TIERS)
    assert set(summary["fidelity"]) == {"plus", "minus", "random"}
    assert summary["subgraph_vs_full_prediction_max_abs_diff"] < 1e-4
    data = np.load(out / "explanations.npz")
    assert len(data["node"]) == 3
    assert data["edge_offsets"][-1] == len(data["importance"]) == len(data["edge_src"])
    assert np.all((data["importance"] >= 0) & (data["importance"] <= 1))
    lines = (out / "particles.csv").read_text().splitlines()
    assert len(lines) == 4 and lines[0].startswith("node,type,target,prediction")
    for name in ("persistence_particle", "participation_by_tier", "importance_vs_participation",
                 "neighbourhood_3d"):  # fmt: skip
        assert (out / f"{name}.png").stat().st_size > 1000
    # Same seed, same outputs.
    _explain(run_dir, tmp_path / "b")
    assert (tmp_path / "b" / "summary.json").read_text().replace("/b", "/a") == (
        out / "summary.json"
    ).read_text()
    again = np.load(tmp_path / "b" / "explanations.npz")
    for key in data.files:
        np.testing.assert_array_equal(again[key], data[key])
    # A finished output is never overwritten without --overwrite.
    with pytest.raises(SystemExit):
        _explain(run_dir, out)
    _explain(run_dir, out, "--overwrite", "--explainer=pgexplainer", "--complex=rips", "--select=random")
    assert json.loads((out / "summary.json").read_text())["parameters"]["explainer"] == "pgexplainer"


def test_neighbourhoods_wrapping_around_the_box_use_the_periodic_rips_complex(run_dir, tmp_path):
    """Issue 18, item 1: 3 hops of 1.6 in the 6-unit box wrap around it for particle 20 (not
    for particle 5, in a small cluster); alpha is kept where it fits, and the summary says so."""
    out = tmp_path / "wrap"
    summary = _explain(run_dir, out, "--num_hops=3", "--nodes", "5", "20")
    assert summary["complex_by_particle"] == {"5": "alpha", "20": "rips"}
    assert summary["subgraph_vs_full_prediction_max_abs_diff"] < 1e-4  # a 1-step model, exact on 3 hops
    rows = [line.split(",") for line in (out / "particles.csv").read_text().splitlines()]
    assert rows[0][-1] == "complex" and [(r[0], r[-1]) for r in rows[1:]] == [("5", "alpha"), ("20", "rips")]
    assert int(rows[2][6]) > 0  # H1 cycles of the wrapped neighbourhood
    assert (out / "neighbourhood_3d.png").stat().st_size > 1000


def test_bad_run_dir_is_a_clear_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        _explain(tmp_path / "missing", tmp_path / "out")
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "not a run directory" in err and "missing" in err
    assert not (tmp_path / "out").exists()


@pytest.fixture(scope="module")
def graph_run_dir(tmp_path_factory):
    """A graph-level run (schnet + mean readout) on snapshots whose target is their coordination."""
    import construct_graph

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("explain_graph_cli")
    rng = np.random.default_rng(0)
    args = []
    for split, size in {"train": 6, "val": 2, "test": 2}.items():
        write_density_files(root / "in", rng, size, split)
        args += [f"--{split}", str(root / "in" / f"{split}*.npz")]
    construct_graph.main([*args, f"--cutoff={DENSITY_CUTOFF}", "--graph_target", "coordination",
                          f"--output_dir={root / 'data'}"])  # fmt: skip
    model = {"hidden_dim": 8, "num_filters": 8, "num_interactions": 2, "cutoff": DENSITY_CUTOFF}
    (root / "conf.yaml").write_text(yaml.safe_dump({"schnet": {**model, "readout": {"op": "mean"}}}))
    train.main([f"--dataset_dir={root / 'data'}", "--model_name=schnet", f"--output_dir={root / 'run'}",
                f"--model_config_path={root / 'conf.yaml'}", "--max_epoch=2",
                "--no-save_results"])  # fmt: skip
    return root / "run"


def test_cli_explains_a_graph_level_prediction(graph_run_dir, tmp_path, capsys):
    out = tmp_path / "graph"
    args = [f"--run_dir={graph_run_dir}", "--epochs=10", "--top_k=5", "--graph_index=1"]
    summary = explain.main([*args, f"--output_dir={out}", "--complex=rips"])
    assert summary["task"] == "graph" and summary["parameters"]["graph_index"] == 1
    graph = load_split(graph_run_dir.parent / "data", "test")[1]
    truth = load_split_labels(graph_run_dir.parent / "data", "test")[schema.GRAPH_TARGET][1]
    assert summary["target"] == pytest.approx(truth.tolist())
    run = load_run(graph_run_dir)
    assert summary["prediction"] == pytest.approx(run.predict(graph)[0].tolist(), rel=1e-5)
    assert summary["graph_size"]["edges"] == graph.num_edges() and summary["h1_cycles"] > 0
    for stats in summary["participation"].values():
        assert all(stats["tiers"][t]["count"] == 5 for t in topology.TIERS)
    data = np.load(out / "explanations.npz")
    assert len(data["importance"]) == len(data["edge_cycles"]) == graph.num_edges()
    assert np.all((data["importance"] > 0) & (data["importance"] < 1))
    for name in ("persistence_graph", "participation_by_tier", "importance_vs_participation"):
        assert (out / f"{name}.png").stat().st_size > 1000
    # A bulk periodic snapshot has no unwrapped alpha complex: refused before any work, saying what to do.
    with pytest.raises(SystemExit):
        explain.main([*args, f"--output_dir={tmp_path / 'alpha'}", "--complex=alpha"])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "wraps around its periodic box" in err and "--complex rips" in err
    assert not (tmp_path / "alpha").exists()
