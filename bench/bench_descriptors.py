"""Cost of the structural descriptors and the ridge-regression floor they give (one thread).

    .venv/bin/python bench/bench_descriptors.py                   # every named set (about 1 minute)
    .venv/bin/python bench/bench_descriptors.py --sets radial --ka_time 3

For each descriptor set of :data:`glassgnn.descriptors.DESCRIPTOR_SETS` (defaults from each
snapshot's length scale, :func:`glassgnn.descriptors.default_params`):

* CPU seconds (``time.process_time``) per 8000-atom CuZr snapshot (mean of 7; target 2 s;
  for a set with an inherent structure, which CuZr lacks a potential for: per 1000-particle
  Kob-Andersen snapshot),
  and for the whole CuZr ridge floor ("floor s": 7 files read, descriptors, the fit over
  the whole alpha grid; target 60 s);
* validation Pearson of a ridge regression on CuZr energy barriers (train0-5 -> train6,
  target ``trajectory_start_velocities``, all atoms) and on the bundled Kob-Andersen set
  (datasets/ka_T0.64, configurations 0-11 train, 12-13 val, type-A particles, propensity
  at ``--ka_time``, default 6 = tau_alpha). Ridge: features standardised with training
  statistics, intercept, closed form; the strength is chosen on validation over a log grid.

CuZr files are read from ../shared/data/cuzr_symgnn (never bundled).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before numpy/scipy load their BLAS

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a script from any directory

from glassgnn import descriptors  # noqa: E402
from glassgnn.readers import read_snapshots  # noqa: E402
from models.ridge import NormalEquations  # noqa: E402

CUZR = REPO.parent / "shared" / "data" / "cuzr_symgnn"
KA = REPO / "datasets" / "ka_T0.64"
ALPHAS = np.logspace(-7, 3, 21)  # ridge strength per training row, on standardised features


def ridge_pearson(
    x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray, y_val: np.ndarray
) -> tuple[float, float]:
    """Best validation Pearson over :data:`ALPHAS` and its alpha (the solver of ``models.ridge``).

    Args:
        x_train: [n_train, d] features; y_train: [n_train] targets; x_val, y_val likewise.
    """
    mean, std = x_train.mean(axis=0), x_train.std(axis=0)
    std[std == 0] = 1.0  # constant columns (an absent species) stay zero
    a, b = (x_train - mean) / std, (x_val - mean) / std
    equations = NormalEquations(a.shape[1], 1)
    equations.add(torch.from_numpy(a), torch.from_numpy(y_train).reshape(-1, 1))
    alphas = [float(alpha) * len(a) for alpha in ALPHAS]
    best = (-np.inf, np.nan)
    for alpha, (weight, bias) in zip(ALPHAS, equations.solve(alphas), strict=True):
        pred = b @ weight.numpy()[:, 0] + float(bias[0])
        best = max(best, (float(np.corrcoef(pred, y_val)[0, 1]), float(alpha)))
    return best


def features(paths: list[Path], name: str, target, mask) -> tuple[list, list, float]:
    """Per file: descriptors [n_selected, d] and targets [n_selected] of the selected
    particles; and the mean CPU seconds of one file's descriptors."""
    xs, ys, seconds = [], [], 0.0
    for path in paths:
        snapshot = read_snapshots(path)[0]
        params = descriptors.default_params(snapshot.positions, snapshot.cell, name)
        start = time.process_time()
        x = descriptors.compute_descriptors(snapshot.positions, snapshot.types, snapshot.cell, 2, params)
        seconds += time.process_time() - start
        if path == paths[0]:
            print(f"{name} {path.parent.name}: {params.to_dict()}")
        keep = mask(snapshot)
        xs.append(x[keep])
        ys.append(target(snapshot)[keep])
    return xs, ys, seconds / len(paths)


def floor(paths: list[Path], n_train: int, name: str, target, mask) -> tuple:
    """Ridge on the first ``n_train`` files, validated on the rest: (Pearson, alpha, CPU
    seconds of the whole floor with the files read, CPU seconds of one file's descriptors,
    columns)."""
    start = time.process_time()
    xs, ys, seconds = features(paths, name, target, mask)
    x_train, y_train = np.concatenate(xs[:n_train]), np.concatenate(ys[:n_train])
    x_val, y_val = np.concatenate(xs[n_train:]), np.concatenate(ys[n_train:])
    pearson, alpha = ridge_pearson(x_train, y_train, x_val, y_val)
    return pearson, alpha, time.process_time() - start, seconds, xs[0].shape[1]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sets", nargs="+", default=list(descriptors.DESCRIPTOR_SETS))
    parser.add_argument("--ka_time", type=int, default=6, help="propensity time index (6 = tau_alpha)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # the neighbour search copies through torch
    cuzr = [CUZR / f"train{k}.pickle" for k in range(7)]
    ka = [KA / f"config_{k:04d}.pickle" for k in range(14)]
    rows = []
    for name in args.sets:
        barrier, every = (lambda s: s.fields["trajectory_start_velocities"]), (lambda s: slice(None))
        ka_r, ka_alpha, ka_total, seconds, width = floor(
            ka, 12, name, lambda s: s.fields["propensity"][:, args.ka_time], lambda s: s.types == 0
        )
        cuzr_r = cuzr_alpha = cuzr_total = math.nan
        if not descriptors.DESCRIPTOR_SETS[name].get("inherent"):  # no CuZr potential here
            cuzr_r, cuzr_alpha, cuzr_total, seconds, width = floor(cuzr, 6, name, barrier, every)
        rows.append((name, width, seconds, cuzr_total, cuzr_r, cuzr_alpha, ka_r, ka_alpha))
    header = ("set", "columns", "s/snapshot", "floor s", "CuZr val r", "alpha", "KA val r", "alpha")
    print("\n" + " ".join(f"{h:>11}" for h in header))
    for name, width, seconds, cuzr_total, cuzr_r, cuzr_alpha, ka_r, ka_alpha in rows:
        cells = (
            name,
            width,
            f"{seconds:.2f}",
            f"{cuzr_total:.1f}",
            f"{cuzr_r:.3f}",
            f"{cuzr_alpha:.0e}",
            f"{ka_r:.3f}",
            f"{ka_alpha:.0e}",
        )
        print(" ".join(f"{'—' if c == 'nan' else c:>11}" for c in cells))


if __name__ == "__main__":
    main()
