"""Training speed, memory and fixed-budget accuracy on the real CuZr protocol (CPU).

Protocol (SymGNN, Li et al. ICML 2024): train on train0-5, validate on train6 (8000 atoms
each), 5 Å cutoff with self-pairs, full batch (6 graphs per step), each model with its
section of train.conf.yaml. Prints figures; never run as a test.

    python bench/bench_train.py --mode speed                     # s/epoch and peak memory
    python bench/bench_train.py --mode budget --budget_min 20    # val Pearson after a time budget

Speed: one warm-up epoch, then the mean of ``--epochs`` timed training epochs (forward,
backward, Adam step; no evaluation). Peak memory: the maximum resident set size of a
fresh process per model, with the dataset loaded (baseline printed alongside).
Budget: train.py's loop with ``max_time`` = budget (evaluation of train and val every
epoch counts against it), then val Pearson at the validation-selected epoch.
The CuZr data is read from ../shared/data/cuzr_symgnn (not bundled).

Measured on the 2-core, 24 GiB development machine (shared, load average 6-10): the full
batch fits for schnet (86 s/epoch, 6.5 GB peak) but not for symgnn (killed by the
kernel at 11.8 GB while others used the rest) or bapst (killed at 22.7 GB: 64-wide edge
latents on 1.6 M edges, 7 steps); ``--batch_size 1`` (six steps per epoch) fits all
three. Figures and the budget table are in the README's train section.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DEFAULT_DATA = REPO.parent / "shared" / "data" / "cuzr_symgnn"


def build_dataset(data: Path, out: Path) -> Path:
    """The CuZr dataset directory (built once, reused)."""
    import construct_graph

    if not (out / "manifest.json").exists():
        train = [str(data / f"train{i}.pickle") for i in range(6)]
        construct_graph.main(
            ["--train", *train, "--val", str(data / "train6.pickle"), "--cutoff", "5.0", "--self_loops"]
            + ["--output_dir", str(out)]
        )
    return out


def _rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # Linux: KiB


def _config(model: str, dataset: Path, batch_size: int, **extra) -> dict:
    from glassgnn.config import resolve

    given = {"model_name": model, "dataset_dir": str(dataset), "batch_size": batch_size, **extra}
    return resolve(given, REPO / "train.conf.yaml")


def speed_one(model: str, dataset: Path, epochs: int, batch_size: int) -> dict:
    """Seconds per training epoch and peak RSS of ``model`` (run in a fresh process)."""
    import torch

    from glassgnn.config import model_hparams
    from glassgnn.distributed import DistInfo
    from glassgnn.experiments import load_dataset
    from glassgnn.task import Task
    from glassgnn.training import make_optimizer, train_epoch
    from models.models import build_model

    graphs, manifest = load_dataset(dataset)
    base = _rss_gb()
    cfg = _config(model, dataset, batch_size)
    task = Task(graphs, manifest, cfg)
    net = build_model(model, model_hparams(cfg, task.in_dim, task.out_dim))
    opt, _ = make_optimizer(net, cfg)
    device = torch.device("cpu")
    train_epoch(net, opt, task, cfg, 0, device, DistInfo())  # warm-up
    start = time.perf_counter()
    for epoch in range(1, epochs + 1):
        train_epoch(net, opt, task, cfg, epoch, device, DistInfo())
    seconds = (time.perf_counter() - start) / epochs
    return {
        "model": model,
        "parameters": sum(p.numel() for p in net.parameters()),
        "edges": sum(g.num_edges() for g in graphs["train"]),
        "s_per_epoch": seconds,
        "peak_rss_gb": _rss_gb(),
        "rss_after_data_gb": base,
        "batch_size": batch_size,
        "threads": torch.get_num_threads(),
    }


def budget_one(model: str, dataset: Path, minutes: float, batch_size: int, out: Path) -> dict:
    """Val Pearson at the selected epoch after ``minutes`` of training."""
    from glassgnn.experiments import load_dataset
    from glassgnn.training import fit

    graphs, manifest = load_dataset(dataset)
    cfg = _config(
        model,
        dataset,
        batch_size,
        max_time=60.0 * minutes,
        max_epoch=10**6,
        patience=10**6,
        save_results=False,
    )
    results = fit(cfg, graphs, manifest, out / model, overwrite=True)
    val = results["metrics"]["val"]
    return {
        "model": model,
        "budget_min": minutes,
        "epochs": results["last_epoch"],
        "best_epoch": results["best_epoch"],
        "val_pearson": results["selection"]["value"],
        "val_per_type": {
            group: m["pearson"]
            for target, groups in val.items()
            if target != "loss"
            for group, m in groups.items()
        },
        "learning_rate": cfg["learning_rate"],
        "batch_size": batch_size,
    }


def main(argv: list[str] | None = None) -> None:
    from models.models import model_names

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", choices=["speed", "budget"], default="speed")
    parser.add_argument("--models", nargs="+", default=["symgnn", "schnet", "bapst"])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder with train0..6.pickle")
    parser.add_argument(
        "--dataset_dir", type=Path, default=Path(tempfile.gettempdir()) / "glassgnn_bench_cuzr"
    )
    parser.add_argument(
        "--batch_size", type=int, default=6, help="graphs per step (6: full batch of the protocol)"
    )
    parser.add_argument("--epochs", type=int, default=2, help="speed: timed epochs per model")
    parser.add_argument(
        "--budget_min", type=float, default=20.0, help="budget: minutes of training per model"
    )
    parser.add_argument(
        "--output_dir", type=Path, default=Path(tempfile.gettempdir()) / "glassgnn_bench_runs"
    )
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: measure one model in this process
    args = parser.parse_args(argv)
    if not (args.data / "train0.pickle").exists():
        sys.exit(f"bench_train.py: {args.data} has no train0.pickle (the CuZr data is not bundled)")
    dataset = build_dataset(args.data, args.dataset_dir)
    if args.one:
        print(json.dumps(speed_one(args.one, dataset, args.epochs, args.batch_size)))
        return
    print(f"# load average at start: {os.getloadavg()}, cores: {os.cpu_count()}")
    known = model_names()
    for model in args.models:
        if model not in known:
            print(json.dumps({"model": model, "skipped": "not registered"}))
            continue
        if args.mode == "speed":
            cmd = [sys.executable, __file__, "--one", model, "--epochs", str(args.epochs)]
            cmd += ["--batch_size", str(args.batch_size)]
            cmd += ["--data", str(args.data), "--dataset_dir", str(dataset)]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            line = proc.stdout.strip().splitlines()[-1] if proc.returncode == 0 else None
            error = proc.stderr.strip().splitlines()[-1:] or [
                f"exit status {proc.returncode} (killed: out of memory?)"
            ]
            print(line or json.dumps({"model": model, "error": error}))
        else:
            print(json.dumps(budget_one(model, dataset, args.budget_min, args.batch_size, args.output_dir)))
        sys.stdout.flush()
    print(f"# load average at end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
