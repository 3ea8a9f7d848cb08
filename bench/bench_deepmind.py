"""Figures of the converted DeepMind checkpoint (docs/deepmind.md).

    .venv/bin/python bench/bench_deepmind.py [--repeats 5]

Prints, for the bundled run ``datasets/deepmind/t044_s09`` on the bundled 4096-particle
configuration ``test_large.pickle``: the max |difference| to the predictions of
DeepMind's own saved TensorFlow graph (tests/fixtures), Pearson's r over type-A
particles against the propensity at each of the file's 10 time indices, and the CPU
wall time of graph build + forward (first call, then the median of warm calls), with
the machine's load average, since other processes may share the CPU.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a script from any directory

from bench import machine  # noqa: E402
from glassgnn.deepmind_demo import BUNDLED_CONFIGURATION, BUNDLED_RUN, evaluate_pretrained  # noqa: E402
from glassgnn.readers import read_snapshots  # noqa: E402

REFERENCE = REPO / "tests" / "fixtures"
REFERENCE = REFERENCE / "reference_predictions_t044_s09_test_large.npy"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="warm calls to time")
    args = parser.parse_args(argv)

    start = time.perf_counter()
    first = evaluate_pretrained(BUNDLED_RUN, BUNDLED_CONFIGURATION)
    cold = time.perf_counter() - start  # includes loading the run and reading the file twice
    warm, cpu = [], []
    for _ in range(args.repeats):
        cpu_start = time.process_time()
        warm.append(evaluate_pretrained(BUNDLED_RUN, BUNDLED_CONFIGURATION)["seconds"])
        cpu.append(time.process_time() - cpu_start)  # whole call, incl. reading the file twice

    diff = np.abs(first["predictions"] - np.load(REFERENCE)).max()
    print(f"max |ours - DeepMind saved graph| over 4096 particles: {diff:.2e}")
    metadata = read_snapshots(BUNDLED_CONFIGURATION, "bapst")[0].metadata
    print("\n| time index | t (LJ) | F_s reached | Pearson r, type A |")
    print("| --- | --- | --- | --- |")
    for index, r in enumerate(first["pearson_type_a"]):
        mark = " (trained on)" if index == first["time_index"] else ""
        t, fs = metadata["times"][index], metadata["is_values"][index]
        print(f"| {index}{mark} | {t:.4g} | {fs:.3f} | {r:.4f} |")
    print(
        f"\ngraph build + forward, 4096 particles, 171,066 edges, CPU ({torch.get_num_threads()} threads): "
        f"first call in a fresh process {first['seconds']:.2f} s (with loading: {cold:.2f} s), "
        f"warm median {statistics.median(warm):.2f} s over {len(warm)} "
        f"(CPU time of the whole warm call, all threads: {statistics.median(cpu):.2f} s)"
    )
    print(f"machine: {machine.header()}, torch {torch.__version__}")


if __name__ == "__main__":
    main()
