"""Benchmark every registered model on one real 8000-atom CuZr configuration.

For each model (default hyperparameters, one-hot types as input): parameter
count, forward time (evaluation mode, no gradients), forward+backward time of
one training step (MSE loss), and peak memory of each. Every model runs in its
own fresh process so that peaks do not mix; on CPU the peak is the growth of
the process's maximum resident set over its size after loading the graph and
the model, on CUDA ``torch.cuda.max_memory_allocated``.

    .venv/bin/python bench/bench_models.py                 # all models, markdown table
    .venv/bin/python bench/bench_models.py --models schnet se3 --repeats 5
    .venv/bin/python bench/bench_models.py --models schnet \
        --data ../shared/data/cuzr_symgnn/train{0,1,2,3,4,5}.pickle   # a full-batch step on 6 graphs

The machine is shared: the script prints the load average next to the table.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "cuzr_symgnn" / "train0.pickle"
GIB = 1024**3


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", help="model names (default: every registered model)")
    parser.add_argument(
        "--data", type=Path, nargs="+", default=[DEFAULT_DATA], help="SymGNN-format CuZr pickles (batched)"
    )
    parser.add_argument("--cutoff", type=float, default=5.0, help="graph cutoff in Å")
    parser.add_argument("--repeats", type=int, default=3, help="timed repetitions (median reported)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="torch CPU threads")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def _rss_bytes() -> int:
    """Current resident set size of this process (Linux)."""
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _max_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def measure(name: str, args: argparse.Namespace) -> dict:
    """Figures of one model (runs inside a worker process)."""
    import dgl
    import torch

    from glassgnn import schema
    from glassgnn.graph import build_graph
    from glassgnn.readers.safe_pickle import load_data_pickle
    from models.models import build_model

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    graphs = []
    for path in args.data:
        data = load_data_pickle(path)
        positions, types, box = data["positions"], data["types"] - 1, data["box"]
        targets = data["trajectory_start_velocities"]
        graphs.append(build_graph(positions, types, box, args.cutoff, targets=targets))
    graph = dgl.batch(graphs).to(device)
    feat = torch.nn.functional.one_hot(graph.ndata[schema.TYPE], 2).float()
    target = graph.ndata[schema.TARGET]
    torch.manual_seed(0)
    model = build_model(name, {"in_dim": 2, "out_dim": 1}).to(device)
    cuda = device.type == "cuda"

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize()

    def forward() -> None:
        with torch.no_grad():
            model(graph, feat)
        sync()

    def train_step() -> None:
        loss = ((model(graph, feat) - target) ** 2).mean()
        loss.backward()
        model.zero_grad(set_to_none=True)
        sync()

    # Peaks are measured from the size with graph and model loaded, before any call.
    base = torch.cuda.memory_allocated() if cuda else _rss_bytes()

    def timed(fn) -> tuple[float, float]:
        fn()  # warm-up (e3nn code generation, allocator)
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        peak = torch.cuda.max_memory_allocated() if cuda else _max_rss_bytes()
        return statistics.median(times), (peak - base) / GIB

    model.eval()
    fwd_time, fwd_peak = timed(forward)
    model.train()
    train_time, train_peak = timed(train_step)
    return {
        "model": name,
        "params": sum(p.numel() for p in model.parameters()),
        "forward_s": fwd_time,
        "train_s": train_time,
        "forward_gib": fwd_peak,
        "train_gib": train_peak,
        "atoms": graph.num_nodes(),
        "edges": graph.num_edges(),
    }


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    sys.path.insert(0, str(REPO))  # run as a script from any directory
    if args.worker:
        print(json.dumps(measure(args.worker, args)))
        return
    missing = [str(path) for path in args.data if not path.exists()]
    if missing:
        sys.exit(f"bench_models: data file(s) not found: {', '.join(missing)} (pass --data)")
    from bench import machine
    from models.models import model_names

    names = args.models or model_names()
    rows = []
    for name in names:
        cmd = [sys.executable, __file__, "--worker", name, *(argv if argv is not None else sys.argv[1:])]
        done = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
        if done.returncode:
            reason = (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[-1]
            print(f"{name}: failed: {reason}", file=sys.stderr)
            continue
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(f"measured {name}", file=sys.stderr, flush=True)
    if not rows:
        sys.exit("bench_models: no model could be measured")
    print(
        f"\n{len(args.data)} CuZr configuration(s), {rows[0]['atoms']} atoms, {rows[0]['edges']} edges "
        f"at {args.cutoff} Å; "
        f"device {args.device}, {args.threads} threads, median of {args.repeats}; "
        f"{machine.header()}\n"
    )
    print(
        "| model | parameters | forward (s) | forward+backward (s) | peak forward (GiB) | peak train (GiB) |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(
            f"| {r['model']} | {r['params']:,} | {r['forward_s']:.2f} | {r['train_s']:.2f} "
            f"| {r['forward_gib']:.2f} | {r['train_gib']:.2f} |"
        )


if __name__ == "__main__":
    main()
