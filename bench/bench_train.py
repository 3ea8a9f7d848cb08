"""Training speed, memory and fixed-budget accuracy on the real CuZr protocol (CPU).

Protocol (SymGNN, Li et al. ICML 2024): train on train0-5, validate on train6 (8000 atoms
each), 5 Å cutoff with self-pairs, full batch (6 graphs per step), each model with its
section of train.conf.yaml. Prints figures; never run as a test.

    python bench/bench_train.py --mode speed [--plain]           # s/epoch and peak memory
    python bench/bench_train.py --mode budget --budget_min 20    # val Pearson after 20 CPU minutes

``speed_rows(quick)`` gives issue 12's target-4 rows (symgnn, schnet, gcn_edge against the
reference SymGNN code's figures) to ``bench/bench_speed.py``; ``quick`` times one graph
instead of six (no reference figure then: the reference was measured on six).

Speed: one warm-up epoch, then the mean of ``--epochs`` timed training epochs (forward,
backward, Adam step; no evaluation). Peak memory: the maximum resident set size of a
fresh process per model, with the dataset loaded (baseline printed alongside).
Budget: train.py's loop with ``max_time`` = budget in CPU seconds of one thread (evaluation
of train and val every epoch counts against it), then val Pearson at the
validation-selected epoch.
The CuZr data is read from ../shared/data/cuzr_symgnn (not bundled).

``--epochs 0`` measures the peak memory of one full-batch training step (forward,
backward, Adam) per model: docs/benchmarks.md has that table for every model.
Figures, with the load of the shared machine they were taken at, are in docs/benchmarks.md.
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
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from glassgnn.config import ResolvedConfig

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from bench import machine  # noqa: E402

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


def _config(model: str, dataset: Path, batch_size: int, **extra) -> ResolvedConfig:
    from glassgnn.config import resolve

    given = {"model_name": model, "dataset_dir": str(dataset), "batch_size": batch_size, **extra}
    return resolve(given, REPO / "train.conf.yaml")


def speed_one(
    model: str,
    dataset: Path,
    epochs: int,
    batch_size: int,
    max_graphs: int = 0,
    plain: bool = False,
    reuse_memory: bool = False,
) -> dict:
    """Seconds per training epoch and peak RSS of ``model`` (run in a fresh process).

    ``max_graphs`` > 0 trains on the first that many training graphs only; ``plain`` runs
    the model's plain path (``fast: false``, for models that have the key); ``reuse_memory``
    sets the training key ``reuse_freed_memory``. The process
    CPU time per epoch (all threads) is reported too: on a shared machine it moves much
    less with the load than the wall time does.
    """
    import torch

    from glassgnn.config import model_hparams
    from glassgnn.devices import configure_cpu
    from glassgnn.distributed import DistInfo
    from glassgnn.experiments import load_dataset
    from glassgnn.optimisation import make_optimizer
    from glassgnn.task import Task
    from glassgnn.training import train_epoch
    from models.models import build_model

    cfg = _config(model, dataset, batch_size, reuse_freed_memory=reuse_memory)
    configure_cpu(cfg)  # as train.py does, before torch starts its threads
    graphs, manifest = load_dataset(dataset)
    if max_graphs:
        graphs["train"] = graphs["train"][:max_graphs]
    base = _rss_gb()
    task = Task(graphs, manifest, cfg)
    hparams = model_hparams(cfg, task.in_dim, task.out_dim, task.kind)
    if plain:
        if "fast" not in hparams:
            raise ValueError(f"{model} has no fast path (no `fast` key): nothing to compare")
        hparams["fast"] = False
    net = build_model(model, hparams)
    opt, _ = make_optimizer(net, cfg)
    device = torch.device("cpu")
    start = time.perf_counter()
    train_epoch(net, opt, task, cfg, 0, device, DistInfo())  # warm-up
    first = time.perf_counter() - start
    start, cpu = time.perf_counter(), time.process_time()
    for epoch in range(1, epochs + 1):
        train_epoch(net, opt, task, cfg, epoch, device, DistInfo())
    timed = epochs > 0  # --epochs 0: the warm-up only (a peak-memory measurement)
    return {
        "first_epoch_s": first,
        "cpu_s_per_epoch": (time.process_time() - cpu) / epochs if timed else None,
        "load": os.getloadavg()[0],
        "model": model,
        "parameters": sum(p.numel() for p in net.parameters()),
        "graphs": len(graphs["train"]),
        "edges": sum(g.num_edges() for g in graphs["train"]),
        "s_per_epoch": (time.perf_counter() - start) / epochs if timed else None,
        "peak_rss_gb": _rss_gb(),
        "rss_after_data_gb": base,
        "batch_size": batch_size,
        "path": "plain" if plain else "default",
        "reuse_freed_memory": reuse_memory,
        "threads": torch.get_num_threads(),
    }


def budget_one(model: str, dataset: Path, minutes: float, batch_size: int, out: Path) -> dict:
    """Val Pearson at the selected epoch after ``minutes`` of training.

    The budget is CPU time of this process, not wall time: on a machine shared with other
    jobs (and with the run niced) wall time says little about the work done. train.py's
    ``max_cpu_time`` is checked at each evaluation; one thread, so a CPU minute is a core minute.
    """
    import torch

    import glassgnn.training as training
    from glassgnn.experiments import load_dataset

    torch.set_num_threads(1)
    graphs, manifest = load_dataset(dataset)
    cfg = _config(
        model,
        dataset,
        batch_size,
        max_cpu_time=60.0 * minutes,
        max_epoch=10**6,
        patience=10**6,
        save_results=False,
    )
    cpu_start = time.process_time()
    results = training.fit(cfg, graphs, manifest, out / model, overwrite=True)
    cpu_s = time.process_time() - cpu_start
    val = results["metrics"]["val"]
    return {
        "model": model,
        "budget_cpu_min": minutes,
        "cpu_s": cpu_s,
        "load_end": os.getloadavg()[0],
        "epochs": results["last_epoch"],
        "best_epoch": results["best_epoch"],
        "val_pearson": results["selection"]["value"],
        "val_per_type": {
            group: m["pearson"]
            for target, groups in val.items()
            if target != "loss"
            for group, m in groups.items()
        },
        "learning_rate": cfg.learning_rate,
        "batch_size": batch_size,
    }


# Issue 12 (reference SymGNN train.py, full batch on the six CuZr training graphs at 5 Å, CPU,
# 2 cores): seconds per epoch, peak GiB; and the targets of target 4.
REFERENCE = {"symgnn": (13.5, 14.0), "schnet": (16.0, 11.3), "gcn_edge": (4.4, 5.4)}
TARGET = {"symgnn": (6.7, 7.0), "schnet": (8.0, 5.6), "gcn_edge": (2.2, None)}


def _measure_in_subprocess(model: str, args: list[str]) -> dict:
    """``speed_one`` in a fresh process (so that its peak memory is its own); {"error": ...} on failure."""
    cmd = [sys.executable, __file__, "--one", model, *args]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode == 0:
        return json.loads(proc.stdout.strip().splitlines()[-1])
    reason = proc.stderr.strip().splitlines()[-1:] or [f"exit status {proc.returncode} (out of memory?)"]
    return {"model": model, "error": reason[0]}


def speed_rows(quick: bool) -> list[dict]:
    """Issue 12 target 4 as rows of bench_speed.py's table: s/epoch and peak GiB per model.

    Full: one warm-up and one timed full-batch epoch on the six training graphs. Quick: one
    graph (about a sixth of the work; no reference figure, which is for six graphs).
    """
    if not (DEFAULT_DATA / "train0.pickle").exists():
        return [_row("train.py epoch", float("nan"), None, "s", f"skipped: no CuZr data in {DEFAULT_DATA}")]
    dataset = build_dataset(DEFAULT_DATA, Path(tempfile.gettempdir()) / "glassgnn_bench_cuzr")
    graphs = 1 if quick else 6
    rows = []
    for model, (ref_s, ref_gib) in REFERENCE.items():
        args = [
            "--epochs",
            "1",
            "--batch_size",
            "6",
            "--max_graphs",
            str(graphs),
            "--dataset_dir",
            str(dataset),
        ]
        r = _measure_in_subprocess(model, args)
        what = f"train.py epoch, {model}, full batch of {graphs} CuZr graph(s)"
        if "error" in r:
            rows.append(_row(what, float("nan"), None, "s", f"failed: {r['error']}"))
            continue
        target_s, target_gib = TARGET[model]
        note = f"CPU time {r['cpu_s_per_epoch']:.1f} s, load {r['load']:.1f}, {r['threads']} threads"
        rows.append(
            _row(what, r["s_per_epoch"], None if quick else ref_s, "s", f"{note}; target {target_s} s")
        )
        gib_note = "peak RSS of the process" + (f"; target {target_gib} GiB" if target_gib else "")
        rows.append(_row(f"{what}, memory", r["peak_rss_gb"], None if quick else ref_gib, "GiB", gib_note))
    return rows


def _row(measure: str, ours: float, reference: float | None, unit: str, note: str) -> dict:
    ratio = reference / ours if reference is not None and unit == "s" and ours > 0 else None
    return {
        "measure": measure,
        "ours": ours,
        "reference": reference,
        "unit": unit,
        "ratio": ratio,
        "note": note,
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
    parser.add_argument(
        "--epochs",
        type=int,
        default=2,
        help="speed: timed epochs per model (0: peak memory of one step only)",
    )
    parser.add_argument(
        "--budget_min",
        type=float,
        default=20.0,
        help="budget: CPU minutes (one thread) of training per model",
    )
    parser.add_argument(
        "--output_dir", type=Path, default=Path(tempfile.gettempdir()) / "glassgnn_bench_runs"
    )
    parser.add_argument("--max_graphs", type=int, default=0, help="speed: train on the first N graphs only")
    parser.add_argument(
        "--plain", action="store_true", help="speed: the plain path of each model (fast: false)"
    )
    parser.add_argument(
        "--reuse_freed_memory", action="store_true", help="speed: with the training key reuse_freed_memory"
    )
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: measure one model in this process
    args = parser.parse_args(argv)
    if not (args.data / "train0.pickle").exists():
        sys.exit(f"bench_train.py: {args.data} has no train0.pickle (the CuZr data is not bundled)")
    dataset = build_dataset(args.data, args.dataset_dir)
    if args.one:
        print(
            json.dumps(
                speed_one(
                    args.one,
                    dataset,
                    args.epochs,
                    args.batch_size,
                    args.max_graphs,
                    args.plain,
                    args.reuse_freed_memory,
                )
            )
        )
        return
    print(f"# {machine.header()} (start)")
    known = model_names()
    for model in args.models:
        if model not in known:
            print(json.dumps({"model": model, "skipped": "not registered"}))
            continue
        if args.mode == "speed":
            cmd = ["--epochs", str(args.epochs), "--batch_size", str(args.batch_size)]
            cmd += [
                "--max_graphs",
                str(args.max_graphs),
                "--data",
                str(args.data),
                "--dataset_dir",
                str(dataset),
            ]
            cmd += ["--plain"] * args.plain + ["--reuse_freed_memory"] * args.reuse_freed_memory
            print(json.dumps(_measure_in_subprocess(model, cmd)))
        else:
            print(json.dumps(budget_one(model, dataset, args.budget_min, args.batch_size, args.output_dir)))
        sys.stdout.flush()
    print(f"# load average at end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
