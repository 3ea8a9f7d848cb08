"""The converted DeepMind model at work: its Pearson correlation on a DeepMind data file.

``make demo`` (scripts/demo.sh) prints :func:`print_pretrained_summary` for the bundled
run ``datasets/deepmind/t044_s09`` (converted by :mod:`glassgnn.convert_deepmind`) on the
bundled 4096-particle configuration.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from glassgnn import schema
from glassgnn.dataset import build_graphs
from glassgnn.readers import read_snapshots
from glassgnn.run import load_run

BUNDLED_RUN = Path(__file__).resolve().parents[1] / "datasets" / "deepmind" / "t044_s09"
BUNDLED_CONFIGURATION = BUNDLED_RUN.parent / "test_large.pickle"


def evaluate_pretrained(run_dir: str | Path = BUNDLED_RUN, path: str | Path = BUNDLED_CONFIGURATION) -> dict:
    """Predict a DeepMind data file with a converted run; correlate with every time index.

    Args:
        run_dir: converted run directory (default: the bundled T = 0.44 checkpoint).
        path: a file of the DeepMind data set (default: the bundled 4096-particle one).

    Returns:
        ``{"predictions": [n_atoms] float32, "time_index": the index the run was
        trained on, "pearson_type_a": [one Pearson r per time index of the file]
        over type-A particles, "seconds": wall time of graph build plus forward}``.
    """
    run = load_run(run_dir)
    start = time.perf_counter()
    graph = build_graphs([path], run.manifest.graph, type_map=run.manifest.type_map)[0]
    pred = run.predict(graph)[:, 0].cpu().numpy()
    seconds = time.perf_counter() - start
    (snapshot,) = read_snapshots(path, "bapst")
    type_a = graph.ndata[schema.TYPE].cpu().numpy() == run.manifest.type_map["0"]
    targets = snapshot.fields["propensity"][type_a]  # [n_A, n_times]
    pearson = [float(np.corrcoef(pred[type_a], column)[0, 1]) for column in targets.T]
    return {
        "predictions": pred,
        "time_index": run.manifest.graph["time_index"],
        "pearson_type_a": pearson,
        "seconds": seconds,
    }


def print_pretrained_summary(
    run_dir: str | Path = BUNDLED_RUN, path: str | Path = BUNDLED_CONFIGURATION
) -> None:
    """One line for ``make demo``: the pretrained DeepMind model's Pearson on a configuration."""
    result = evaluate_pretrained(run_dir, path)
    t = result["time_index"]
    print(
        f"pretrained DeepMind model {Path(run_dir).name} on {Path(path).name}: Pearson "
        f"{result['pearson_type_a'][t]:.4f} (type A, propensity at time index {t}), "
        f"{len(result['predictions'])} particles in {result['seconds']:.2f} s"
    )
