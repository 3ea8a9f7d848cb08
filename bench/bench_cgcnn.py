"""Speed and peak memory of ``cgcnn`` on one real 8000-atom CuZr graph at 5 Å (CPU).

    .venv/bin/python bench/bench_cgcnn.py                 # paper defaults, per-particle head
    .venv/bin/python bench/bench_cgcnn.py --pooling mean  # graph-level head, as published

System: ../shared/data/cuzr_symgnn/train0.pickle (types 1/2 -> 0/1, one-hot feat),
radius graph at 5 Å from glassgnn.graph.build_graph. Model: the ``cgcnn`` section of
train.conf.yaml (the released code's defaults).

- forward: eval mode under ``torch.no_grad`` (prediction, explanation);
- forward+backward: training mode, MSE to zero targets, ``backward`` (one
  full-batch training step without the optimiser update).

Times are medians over ``--repeats`` runs after one warm-up, as wall-clock and as
process CPU time (steadier on a shared machine; read both next to the printed load).
"peak" is the resident memory one step adds at its peak, measured in a fresh
subprocess per step, so it includes DGL's C++ and torch allocations.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CUZR = REPO.parent / "shared" / "data" / "cuzr_symgnn" / "train0.pickle"
CUTOFF = 5.0


def _setup(pooling: str):
    """Graph, features and model (paper defaults from train.conf.yaml)."""
    import numpy as np
    import torch
    import yaml

    from glassgnn.graph import build_graph
    from glassgnn.readers.safe_pickle import load_data_pickle
    from models.models import build_model

    data = load_data_pickle(CUZR)
    types = np.asarray(data["types"]).astype(np.int64) - 1
    graph = build_graph(data["positions"], types, np.asarray(data["box"], dtype=np.float64), CUTOFF)
    feat = torch.nn.functional.one_hot(graph.ndata["type"], 2).float()
    with open(REPO / "train.conf.yaml") as handle:
        section = yaml.safe_load(handle)["cgcnn"]
    torch.manual_seed(0)
    model = build_model("cgcnn", {**section, "in_dim": 2, "out_dim": 1, "pooling": pooling})
    return graph, feat, model


def _step(kind: str, graph, feat, model) -> None:
    import torch

    if kind == "forward":
        model.eval()
        with torch.no_grad():
            model(graph, feat)
    else:
        model.train()
        model.zero_grad()
        out = model(graph, feat)
        torch.nn.functional.mse_loss(out, torch.zeros_like(out)).backward()


def _peak_mib(kind: str, pooling: str, threads: int) -> float:
    """Peak resident memory added by one ``kind`` step, in a fresh subprocess (MiB).

    Linux resets the process's high-water mark (VmHWM) when "5" is written to
    /proc/self/clear_refs, so the peak of the step alone is VmHWM after it minus
    VmRSS before it, free of the graph construction's own peak.
    """
    command = [sys.executable, __file__, "--peak_of", kind, "--pooling", pooling, "--threads", str(threads)]
    out = subprocess.run(command, check=True, capture_output=True, text=True)
    return float(out.stdout.strip().splitlines()[-1])


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _step_peak(kind: str, graph, feat, model) -> float:
    Path("/proc/self/clear_refs").write_text("5")
    before = _status_kib("VmRSS")
    _step(kind, graph, feat, model)
    return (_status_kib("VmHWM") - before) / 1024


def torch_threads(threads: int) -> None:
    """Set torch's intra-op threads (0 keeps torch's default)."""
    import torch

    if threads > 0:
        torch.set_num_threads(threads)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pooling", default="none", help="cgcnn pooling: none (per particle) or mean, ...")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per step (median reported)")
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    parser.add_argument("--peak_of", help=argparse.SUPPRESS)  # internal: one step's peak, in a subprocess
    args = parser.parse_args(argv)
    if not CUZR.exists():
        sys.exit(f"bench_cgcnn: {CUZR} not found (the CuZr data is read from ../shared, never bundled)")
    sys.path.insert(0, str(REPO))
    import torch

    from bench import machine

    torch_threads(args.threads)
    graph, feat, model = _setup(args.pooling)
    if args.peak_of:
        print(_step_peak(args.peak_of, graph, feat, model))
        return
    n_params = sum(p.numel() for p in model.parameters())
    print(f"{machine.header()}, torch threads: {torch.get_num_threads()}")
    print(f"graph: {graph.num_nodes()} atoms, {graph.num_edges()} edges at {CUTOFF} Å")
    print(f"cgcnn pooling={args.pooling}, parameters: {n_params}")
    for kind in ("forward", "forward+backward"):
        _step(kind, graph, feat, model)  # warm-up
        wall, cpu = [], []
        for _ in range(args.repeats):
            start, start_cpu = time.perf_counter(), time.process_time()
            _step(kind, graph, feat, model)
            wall.append(time.perf_counter() - start)
            cpu.append(time.process_time() - start_cpu)
        peak = _peak_mib(kind, args.pooling, args.threads)
        wall_ms, cpu_ms = statistics.median(wall) * 1e3, statistics.median(cpu) * 1e3
        print(f"{kind:>17}: wall {wall_ms:7.0f} ms, CPU {cpu_ms:7.0f} ms (medians), peak +{peak:.0f} MiB")


if __name__ == "__main__":
    main()
