"""Cost of explaining one particle: explainer plus persistent homology, on CPU.

Setting (issue 12, target 3): the first CuZr configuration of ../shared (8000
atoms) at 5 Å with self-pairs, a SchNet with 4 interaction blocks (random
weights: the cost does not depend on them), so each particle's 4-hop subgraph
has about 1,400 atoms and 38,000 edges, the size of the reference's. Prints
seconds per particle for GNNExplainer (default epochs, batches of particles),
PGExplainer, and the topology (alpha and Rips), with the machine load.

    .venv/bin/python bench/bench_explain.py            # 300 and 500 epochs, 8 particles
    .venv/bin/python bench/bench_explain.py --quick    # 50 epochs, 2 particles
"""

from __future__ import annotations

import argparse
import os
import pickle
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from glassgnn import schema  # noqa: E402
from glassgnn.explain_pipeline import DEFAULT_EPOCHS, analyse_topology  # noqa: E402
from glassgnn.explanation import GNNExplainerSettings, explain_gnnexplainer  # noqa: E402
from glassgnn.features import node_features  # noqa: E402
from glassgnn.graph import build_graph  # noqa: E402
from glassgnn.pgexplainer import PGExplainerSettings, explain_pgexplainer  # noqa: E402
from models.models import build_model  # noqa: E402

CUZR = Path(__file__).resolve().parents[2] / "shared" / "data" / "cuzr_symgnn" / "train0.pickle"
REFERENCE_S = 290.0  # SymGNN explain.py, schnet, 500 epochs, per particle (issue 12)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="50 epochs, 2 particles")
    parser.add_argument("--particles", type=int, default=8)
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--hops", type=int, default=4)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    epochs_list = [50] if args.quick else [300, 500]
    particles = 2 if args.quick else args.particles
    if not CUZR.exists():
        sys.exit(f"bench_explain: {CUZR} not found (the CuZr data is read from ../shared)")
    data = pickle.load(open(CUZR, "rb"))  # noqa: SIM115 - trusted local file
    types = np.asarray(data["types"]).astype(np.int64) - 1
    cell = np.diag(np.asarray(data["box"], dtype=np.float64))
    graph = build_graph(data["positions"], types, np.diag(cell), 5.0, self_loops=True)
    feat = node_features(graph, 2)
    torch.manual_seed(0)
    model = build_model("schnet", {"in_dim": 2, "out_dim": 1, "num_interactions": args.hops, "cutoff": 5.0})
    # Particles nearest the box centre, as explain.py --select center picks them.
    pos = graph.ndata[schema.POS].double().numpy()
    nodes = np.argsort(np.linalg.norm(pos - np.diag(cell) / 2, axis=1))[:particles].tolist()
    print(f"# {time.strftime('%Y-%m-%d %H:%M')} UTC, torch threads {torch.get_num_threads()}, "
          f"load {os.getloadavg()[0]:.2f} (1 min)")  # fmt: skip
    rows = []
    for epochs in epochs_list:
        for bs in sorted({1, args.batch_size}):
            start = time.perf_counter()
            exps = explain_gnnexplainer(
                model, graph, feat, nodes, args.hops, GNNExplainerSettings(epochs=epochs, batch_size=bs)
            )
            rows.append(
                (f"GNNExplainer, {epochs} epochs, batch {bs}", (time.perf_counter() - start) / particles)
            )
    pg_epochs = 10 if args.quick else DEFAULT_EPOCHS["pgexplainer"]
    start = time.perf_counter()
    explain_pgexplainer(
        model,
        graph,
        feat,
        nodes,
        args.hops,
        PGExplainerSettings(epochs=pg_epochs, batch_size=args.batch_size),
    )
    rows.append(
        (
            f"PGExplainer, train {pg_epochs} epochs on {particles} + explain",
            (time.perf_counter() - start) / particles,
        )
    )
    for complex_ in ("alpha", "rips"):
        start = time.perf_counter()
        for e in exps:
            analyse_topology(e, graph, cell, complex_, 5.0)
        rows.append(
            (
                f"topology ({complex_}): unwrap, persistence, cycles, participation",
                (time.perf_counter() - start) / particles,
            )
        )
    sizes = [(len(e.nodes), len(e.src)) for e in exps]
    print(f"# {args.hops}-hop subgraphs: {np.mean([s[0] for s in sizes]):.0f} atoms, "
          f"{np.mean([s[1] for s in sizes]):.0f} edges on average ({particles} particles)")  # fmt: skip
    print("| step | s per particle |")
    print("| --- | ---: |")
    for name, seconds in rows:
        print(f"| {name} | {seconds:.2f} |")
    gnn500 = [s for n, s in rows if "500 epochs" in n]
    alpha = [s for n, s in rows if "(alpha)" in n][0]
    if gnn500:
        total = min(gnn500) + alpha
        print(f"# full analysis at 500 epochs (best batch) + alpha: {total:.1f} s per particle; "
              f"reference {REFERENCE_S:.0f} s -> {REFERENCE_S / total:.0f}x")  # fmt: skip
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"# peak memory {peak:.2f} GiB, load now {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
