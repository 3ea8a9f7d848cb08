"""`make demo` on a cut-down budget: every stage runs and the summary reports the runs' own numbers."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

from glassgnn.evaluation import headline_of
from glassgnn.manifest import Manifest
from tests.conftest import REPO


def _pearson(run_dir, split):
    results = json.loads((run_dir / "results.json").read_text())
    return headline_of(results["metrics"][split], "pearson"), results


def test_cut_down_demo_runs_and_summarises(tmp_path):
    out = tmp_path / "demo"
    env = {
        **os.environ,
        "PY": sys.executable,
        "DEMO_OUT": str(out),
        "DEMO_NUM_TRAIN": "2",
        "DEMO_EPOCHS": "1",
        "DEMO_TRAIN_SECONDS": "1",
        "DEMO_MLP_EPOCHS": "2",
        "DEMO_EXPLAIN_NODES": "1",
        "DEMO_EXPLAIN_EPOCHS": "3",
    }
    proc = subprocess.run(
        ["bash", "scripts/demo.sh"], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    stdout = proc.stdout

    # Stage 1: the pretrained DeepMind model still reproduces its published Pearson.
    assert "0.934" in stdout

    # Stage 2: graphs of the bundled set at the demo's time index and cutoff.
    manifest = Manifest.load(out / "graphs" / "manifest.json")
    assert manifest.graph["time_index"] == 0
    assert manifest.graph["cutoff"] == 1.25
    assert [len(manifest.splits[s]["graphs"]) for s in ("train", "val", "test")] == [2, 2, 2]

    # Stage 3: both runs finished within their budgets, selected on val.
    _, mlp = _pearson(out / "mlp", "val")
    bapst_val, bapst = _pearson(out / "bapst", "val")
    bapst_test, _ = _pearson(out / "bapst", "test")
    assert mlp["last_epoch"] == 2 and bapst["last_epoch"] == 1
    assert bapst["selection"]["split"] == "val"

    # Stage 4: one explained particle.
    explain = json.loads((out / "explain" / "summary.json").read_text())
    assert explain["num_particles"] == 1

    # Stage 5: the summary carries the runs' own numbers and says why the MLP floor is 0.
    summary = json.loads((out / "summary.json").read_text())
    assert summary["target"]["time_index"] == 0 and summary["target"]["tau_alpha"] > 0
    runs = summary["runs"]
    assert math.isclose(runs["bapst"]["val_pearson"], bapst_val)
    assert math.isclose(runs["bapst"]["test_pearson"], bapst_test)
    assert runs["bapst"]["selected_epoch"] == 1 and runs["bapst"]["selection"] == "val"
    # One-hot types only: the MLP is constant on the type-A particles, its Pearson undefined.
    assert runs["mlp"]["val_pearson"] is None and runs["mlp"]["test_pearson"] is None
    assert summary["floor"]["val_pearson"] == 0.0 and "constant" in summary["floor"]["reason"]
    assert math.isclose(summary["bapst_minus_floor_val"], bapst_val)
    assert f"val {bapst_val:.3f}  test {bapst_test:.3f}" in stdout
    assert "floor: val 0.000" in stdout
    assert summary["explain"]["num_particles"] == 1

    # The descriptor floor beside the network, on the same split.
    ridge_val, ridge = _pearson(out / "ridge", "val")
    assert ridge["selection"]["split"] == "val" and manifest.descriptor_names
    assert math.isclose(runs["ridge"]["val_pearson"], ridge_val)
    assert math.isclose(summary["bapst_minus_descriptor_floor_val"], bapst_val - ridge_val)
    assert f"val {ridge_val:.3f}" in stdout and "descriptor floor" in stdout


def test_demo_refuses_a_training_set_that_overlaps_val_and_test(tmp_path):
    env = {**os.environ, "PY": sys.executable, "DEMO_OUT": str(tmp_path / "demo"), "DEMO_NUM_TRAIN": "13"}
    proc = subprocess.run(["bash", "scripts/demo.sh"], cwd=REPO, env=env, capture_output=True, text=True)
    assert proc.returncode == 2
    assert "DEMO_NUM_TRAIN must be 1..12" in proc.stderr and not (tmp_path / "demo").exists()
