"""Training: learning, early stopping, validation-only selection, exact resume, the CLI;
per-particle targets and per-snapshot (graph-level) ones. DDP: tests/test_distributed.py."""

from __future__ import annotations

import json
import pickle
import re
from dataclasses import replace

import dgl
import numpy as np
import pytest
import torch
import yaml

import train
from glassgnn import schema
from glassgnn.config import load_resolved, resolve
from glassgnn.dataset import build_graphs_and_labels, load_split, load_split_labels
from glassgnn.experiments import load_dataset
from glassgnn.fileio import OutputExistsError
from glassgnn.run import load_run
from glassgnn.training import fit
from tests.conftest import CUZR_DIR, REPO, requires_cuzr
from tests.synthetic import synthetic_manifest, write_dataset, write_density_dataset

pytestmark = pytest.mark.usefixtures("one_thread")


def _cfg(**kw):
    base = {"model_name": "mlp", "dataset_dir": "unused", "node_fields": ["cn"], "save_results": False}
    return resolve({**base, **kw}, None)


def _history(run_dir):
    lines = (run_dir / "metrics.csv").read_text().splitlines()
    header = lines[0].split(",")
    rows = [dict(zip(header, map(float, line.split(",")), strict=True)) for line in lines[1:]]
    for row in rows:  # clock readings, not results
        row.pop("time_s")
        row.pop("cpu_s")
    return rows


def test_loss_falls_and_val_pearson_rises_on_synthetic_data(data, tmp_path):
    results = fit(_cfg(max_epoch=12, eval_interval=2, learning_rate=3e-3), *data, tmp_path / "run")
    rows = _history(tmp_path / "run")
    assert rows[-1]["train_loss"] < 0.5 * rows[0]["train_loss"]
    assert rows[-1]["val_pearson"] > rows[0]["val_pearson"]
    assert results["metrics"]["test"]["y"]["all"]["pearson"] > 0.9
    assert results["selection"]["split"] == "val"


def test_early_stopping_triggers_after_patience_evaluations(data, tmp_path):
    # learning rate 0: the first evaluation is never beaten
    results = fit(_cfg(max_epoch=100, eval_interval=2, patience=3, learning_rate=0.0), *data, tmp_path / "r")
    assert results["best_epoch"] == 2
    assert results["last_epoch"] == 2 * (1 + 3)
    assert results["stopped_early"]
    assert [row["epoch"] for row in _history(tmp_path / "r")] == [2, 4, 6, 8]


def test_test_labels_never_influence_selection(data, tmp_path):
    graphs, manifest = data
    cfg = _cfg(max_epoch=12, eval_interval=2, learning_rate=3e-3)
    a = fit(cfg, graphs, manifest, tmp_path / "a")
    scrambled = [g.clone() for g in graphs["test"]]
    for g in scrambled:
        g.ndata[schema.TARGET] = torch.randn_like(g.ndata[schema.TARGET])
    b = fit(cfg, {**graphs, "test": scrambled}, manifest, tmp_path / "b")
    assert a["best_epoch"] == b["best_epoch"]
    assert _history(tmp_path / "a") == _history(tmp_path / "b")
    assert a["metrics"]["test"] != b["metrics"]["test"]
    assert json.loads((tmp_path / "a" / "results.json").read_text())["selection"]["split"] == "val"


def _weights(path):
    return torch.load(path, weights_only=True)["model"]


def test_resume_after_interruption_equals_uninterrupted_run(tmp_path, capsys):
    dataset = write_dataset(tmp_path / "ds")
    data = load_dataset(dataset)
    cfg = _cfg(max_epoch=10, eval_interval=2, batch_size=2, augment="cubic", scheduler="step", lr_step_size=3)
    cfg = replace(cfg, dataset_dir=str(dataset))
    full = fit(cfg, *data, tmp_path / "full")
    same = fit(cfg, *data, tmp_path / "same")  # determinism: same seed, same numbers
    assert same["metrics"] == full["metrics"]

    def interrupt(epoch):
        if epoch == 5:  # mid-way between two checkpoints (epochs 4 and 6)
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fit(cfg, *data, tmp_path / "cut", on_epoch_end=interrupt)
    assert not (tmp_path / "cut" / "results.json").exists()
    with pytest.raises(OutputExistsError, match="--resume continues it"):
        fit(cfg, *data, tmp_path / "cut")
    with pytest.raises(SystemExit):
        train.main(["--resume", f"--output_dir={tmp_path / 'cut'}", "--learning_rate=0.5"])
    assert "learning_rate differs from" in capsys.readouterr().err
    resumed = train.main(["--resume", f"--output_dir={tmp_path / 'cut'}"])  # the command line path
    assert resumed["metrics"] == full["metrics"]
    assert resumed["best_epoch"] == full["best_epoch"]
    assert _history(tmp_path / "cut") == _history(tmp_path / "full")
    for key, value in _weights(tmp_path / "full" / "last.pt").items():
        assert torch.equal(value, _weights(tmp_path / "cut" / "last.pt")[key])
    with pytest.raises(OutputExistsError, match="finished run; nothing to resume"):
        fit(cfg, *data, tmp_path / "cut", resume=True)


def test_finished_run_is_not_overwritten_without_overwrite(data, tmp_path):
    cfg = _cfg(max_epoch=2)
    fit(cfg, *data, tmp_path / "r")
    before = (tmp_path / "r" / "results.json").read_text()
    with pytest.raises(OutputExistsError, match="finished run; pass --overwrite"):
        fit(_cfg(max_epoch=2, seed=1), *data, tmp_path / "r")
    assert (tmp_path / "r" / "results.json").read_text() == before
    again = fit(_cfg(max_epoch=2, seed=1), *data, tmp_path / "r", overwrite=True)
    assert json.loads((tmp_path / "r" / "results.json").read_text())["seed"] == again["seed"] == 1
    assert not (tmp_path / ".r.old").exists()


REFERENCE_FLAGS = [
    "--model_name=mlp",
    "--device=-1",
    "--console_log",
    "--log_level=10",
    "--learning_rate=0.003",
    "--patience=100",
    "--max_epoch=6",
    "--eval_interval=2",
]


def test_cli_reference_invocation_outputs_and_repeat_from_config(tmp_path):
    dataset = write_dataset(tmp_path / "ds")
    out = tmp_path / "out"
    flags = [f"--dataset_dir={dataset}", f"--output_dir={out}", "--node_fields", "cn"]
    results = train.main([*REFERENCE_FLAGS, *flags, "--model_config_path", str(REPO / "train.conf.yaml")])
    for name in (
        "config.yaml",
        "manifest.json",
        "train.log",
        "metrics.csv",
        "best.pt",
        "last.pt",
        "results.json",
        "learning_curves.png",
        "parity_val.png",
        "parity_test.png",
    ):
        assert (out / name).is_file(), name
    pred = np.load(out / "predictions_test.npz")
    assert pred["pred"].shape == (2 * 48, 1) and pred["atom"].max() == 47
    assert json.loads((out / "manifest.json").read_text()) == json.loads(
        (dataset / "manifest.json").read_text()
    )
    repeat = train.main(["--config", str(out / "config.yaml"), "--output_dir", str(tmp_path / "again")])
    assert repeat["metrics"] == results["metrics"]
    with pytest.raises(SystemExit) as exc:
        train.main([*REFERENCE_FLAGS, *flags])
    assert exc.value.code == 2  # finished run, no --overwrite


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--dataset_dir=/nonexistent/ds"], "not a dataset directory"),
        (["--dataset_dir=DS", "--model_name=nope"], "unknown model 'nope'"),
        (["--dataset_dir=DS", "--device=0"], "--device=-1"),
        (["--dataset_dir=DS", "--model_config_path=BAD"], "unknown key 'learnig_rate'"),
        (["--dataset_dir=DS", "--node_fields", "pot"], "node_fields: \\['pot'\\] not in"),
    ],
)
def test_cli_errors_are_one_clear_line(tmp_path, capsys, flags, message):
    if "--device=0" in flags and torch.cuda.is_available():
        pytest.skip("CUDA present")
    dataset = write_dataset(tmp_path / "ds")
    (tmp_path / "bad.yaml").write_text("global:\n  learnig_rate: 0.1\n")
    flags = [f.replace("DS", str(dataset)).replace("BAD", str(tmp_path / "bad.yaml")) for f in flags]
    with pytest.raises(SystemExit) as exc:
        train.main(["--model_name=mlp", f"--output_dir={tmp_path / 'o'}", "--max_epoch=1", *flags])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert re.search(message, err), err


def _same_json(a, b) -> bool:
    """Equal as written to JSON (NaN equals NaN there)."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def test_repeated_seeds_write_mean_and_std(tmp_path):
    dataset = write_dataset(tmp_path / "ds")
    out = tmp_path / "rep"
    summary = train.main(
        [
            f"--dataset_dir={dataset}",
            "--model_name=mlp",
            f"--output_dir={out}",
            "--max_epoch=2",
            "--num_exp=2",
            "--seed=5",
            "--no-save_results",
        ]
    )
    assert summary["seeds"] == [5, 6]
    runs = [json.loads((out / f"seed_{s}" / "results.json").read_text()) for s in (5, 6)]
    values = [r["metrics"]["test"]["y"]["all"]["pearson"] for r in runs]
    assert summary["metrics"]["test"]["y"]["all"]["pearson"]["mean"] == pytest.approx(np.mean(values))
    assert summary["metrics"]["test"]["y"]["all"]["pearson"]["std"] == pytest.approx(np.std(values, ddof=1))
    assert "±" in (out / "summary.md").read_text()

    # a larger budget continues every seed (as if run with it from the start); the same budget
    # trains nothing
    longer = [f"--dataset_dir={dataset}", f"--output_dir={tmp_path / 'rep4'}", "--max_epoch=4"]
    uninterrupted = train.main([*longer, "--model_name=mlp", "--num_exp=2", "--seed=5", "--no-save_results"])
    continued = train.main(["--resume", f"--output_dir={out}", "--max_epoch=4"])
    assert _same_json(continued["metrics"], uninterrupted["metrics"])
    finished = {p: p.stat().st_mtime_ns for p in out.glob("seed_*/results.json")}
    assert _same_json(train.main(["--resume", f"--output_dir={out}", "--max_epoch=4"]), continued)
    assert {p: p.stat().st_mtime_ns for p in out.glob("seed_*/results.json")} == finished
    with pytest.raises(SystemExit):
        train.main(["--resume", f"--output_dir={out}", "--max_epoch=6", "--learning_rate=0.5"])


def _cuzr_subbox(name: str, cutoff: float):
    """The (L/2)^3 corner of a real CuZr configuration (~1000 atoms), treated as periodic.

    Cutting the box makes its faces artificial, which is fine for a test that the loop
    learns from real structures in seconds; the full protocol is in bench/bench_train.py.
    """
    from glassgnn.graph import build_graph

    with open(CUZR_DIR / name, "rb") as handle:
        d = pickle.load(handle)
    half = np.asarray(d["box"], dtype=np.float64) / 2
    pos = np.mod(np.asarray(d["positions"]) + half, 2 * half)  # into [0, L)
    keep = (pos < half).all(axis=1)
    target = np.asarray(d["trajectory_start_velocities"])[keep]
    return build_graph(pos[keep], np.asarray(d["types"])[keep] - 1, half, cutoff, targets=target)


@requires_cuzr
def test_loss_falls_and_val_pearson_rises_on_real_cuzr(tmp_path):
    cutoff = 3.5  # Å, about the first neighbour shell
    graphs = {
        "train": [_cuzr_subbox("train0.pickle", cutoff)],
        "val": [_cuzr_subbox("train6.pickle", cutoff)],
    }
    cfg = _cfg(max_epoch=40, eval_interval=10, learning_rate=3e-3, node_fields=[], model_name="schnet")
    cfg = replace(cfg, model={"hidden_dim": 32, "num_filters": 32, "num_interactions": 2, "cutoff": cutoff})
    fit(cfg, graphs, synthetic_manifest(graphs), tmp_path / "cuzr")
    rows = _history(tmp_path / "cuzr")
    assert rows[-1]["train_loss"] < rows[0]["train_loss"]
    assert rows[-1]["val_pearson"] > rows[0]["val_pearson"] + 0.05


# --- per-snapshot (graph-level) targets ---

GRAPH_CONF = {
    "cgcnn": {"atom_fea_len": 32, "n_conv": 2, "h_fea_len": 32, "rbf_max": 1.6},
    "mlp": {"hidden_dims": [32], "readout": {"op": "mean", "hidden_dim": 32, "head_dims": [32]}},
}
GRAPH_SIZES = {"train": 64, "val": 16, "test": 16}


@pytest.fixture(scope="module")
def density_dataset(tmp_path_factory):
    """npz snapshots whose per-snapshot ``coordination`` is a known function of structure,
    through construct_graph.py --graph_target (tests/synthetic.py: density_snapshot)."""
    root = tmp_path_factory.mktemp("density")
    write_density_dataset(root, np.random.default_rng(0), GRAPH_SIZES)
    (root / "conf.yaml").write_text(yaml.safe_dump(GRAPH_CONF))
    return root


def _graph_flags(root, model, out, *extra):
    return [
        f"--model_name={model}",
        f"--dataset_dir={root / 'ds'}",
        f"--output_dir={out}",
        f"--model_config_path={root / 'conf.yaml'}",
        *extra,
    ]


def test_graph_task_cgcnn_learns_a_structural_target_the_mlp_floor_cannot(density_dataset, tmp_path):
    root = density_dataset
    common = [
        "--max_epoch=100",
        "--eval_interval=5",
        "--batch_size=64",
        "--learning_rate=0.01",
        "--selection_metric=r2",
    ]
    cgcnn = train.main(_graph_flags(root, "cgcnn", tmp_path / "cgcnn", *common))  # task from the manifest
    floor = train.main(_graph_flags(root, "mlp", tmp_path / "mlp", *common, "--task=graph"))
    assert cgcnn["task"] == floor["task"] == "graph"
    r2 = {
        name: r["metrics"]["test"]["coordination"]["all"]["r2"]
        for name, r in [("cgcnn", cgcnn), ("mlp", floor)]
    }
    assert r2["cgcnn"] > 0.9 and r2["mlp"] < 0.5, r2
    # outputs: one row per graph in original units, a parity plot, the resolved readout
    saved = np.load(tmp_path / "cgcnn" / "predictions_test.npz")
    truth = load_split_labels(root / "ds", "test")[schema.GRAPH_TARGET]
    assert saved["pred"].shape == (GRAPH_SIZES["test"], 1)
    np.testing.assert_array_equal(saved["target"], truth.numpy())
    assert (
        list(saved["target_names"]) == ["coordination"] and (tmp_path / "cgcnn" / "parity_test.png").is_file()
    )
    resolved = yaml.safe_load((tmp_path / "cgcnn" / "config.yaml").read_text())
    assert resolved["task"] == "graph" and resolved["model"]["pooling"] == "mean"
    # load_run / run.predict: [n_graphs, k] equal to the saved predictions, from rebuilt graphs too
    for name in ("cgcnn", "mlp"):
        run = load_run(tmp_path / name)
        assert run.kind.name == "graph" and run.target_names == ["coordination"]
        saved = np.load(tmp_path / name / "predictions_test.npz")["pred"]
        batch = dgl.batch(load_split(root / "ds", "test"))
        np.testing.assert_allclose(run.predict(batch).numpy(), saved, rtol=1e-5, atol=1e-5)
    files = sorted(str(p) for p in (root / "in").glob("test*.npz"))
    graphs, labels = build_graphs_and_labels(files[:3], run.manifest.graph, run.manifest.type_map)
    assert torch.equal(labels[schema.GRAPH_TARGET], truth[:3])
    np.testing.assert_allclose(run.predict(dgl.batch(graphs)).numpy(), saved[:3], rtol=1e-5, atol=1e-5)


def test_graph_task_resume_equals_uninterrupted_run(density_dataset, tmp_path):
    flags = ["--max_epoch=6", "--eval_interval=2", "--batch_size=8", "--augment=rotation"]
    full = train.main(_graph_flags(density_dataset, "mlp", tmp_path / "full", *flags))

    def interrupt(epoch):
        if epoch == 3:
            raise KeyboardInterrupt

    graphs, manifest = load_dataset(density_dataset / "ds")
    cfg = load_resolved(tmp_path / "full" / "config.yaml")
    with pytest.raises(KeyboardInterrupt):
        fit(cfg, graphs, manifest, tmp_path / "cut", on_epoch_end=interrupt)
    resumed = train.main(["--resume", f"--output_dir={tmp_path / 'cut'}"])
    assert resumed["metrics"] == full["metrics"] and resumed["best_epoch"] == full["best_epoch"]
    assert _history(tmp_path / "cut") == _history(tmp_path / "full")


def test_task_must_match_the_dataset(density_dataset, tmp_path, capsys):
    node_dataset = write_dataset(tmp_path / "node")
    cases = [
        (
            _graph_flags(density_dataset, "mlp", tmp_path / "a", "--task=node"),
            "it has graph targets: use --task graph",
        ),
        (
            [
                "--model_name=mlp",
                f"--dataset_dir={node_dataset}",
                f"--output_dir={tmp_path / 'b'}",
                "--task=graph",
            ],
            "no graph targets; build it with construct_graph.py --graph_target",
        ),
        (
            _graph_flags(density_dataset, "mlp", tmp_path / "c", "--loss=centred_mse"),
            "loss centred_mse centres per snapshot: per-particle targets only",
        ),
    ]
    for flags, message in cases:
        with pytest.raises(SystemExit) as exc:
            train.main([*flags, "--max_epoch=1"])
        assert exc.value.code == 2
        assert message in capsys.readouterr().err
