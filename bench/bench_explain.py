"""Cost of explaining one particle: explainer plus persistent homology, on CPU (issue 12, target 3).

Setting: the first CuZr configuration of ../shared (8000 atoms) at 5 Å with
self-pairs, a SchNet with 4 interaction blocks (random weights: the cost does not
depend on them), so each particle's 4-hop computation subgraph has about 1,450
atoms and 21,000 edges (40,000 in the induced subgraph the reference explains).
The measured call is explain.py's own per-particle analysis
(:func:`glassgnn.explain_pipeline.explain_particles`: GNNExplainer with the frozen,
memoised model on batches of particles, each SchNet block on the DGL block of the
particles it must update, :class:`models.masked_conv.MaskedFilterConv`; fidelity,
unwrapping, alpha persistence, representative cycles, participation), on particles
picked as ``--select center`` picks them. The plain path beside it is the same
GNNExplainer epoch as DGL's ``explain_node`` runs it: parameters not frozen (so SchNet
takes its training convolution), nothing memoised, one particle, the whole subgraph.
Reference: SymGNN's explain.py, 290 s per particle at 500 epochs, 1.4 GiB peak.

    .venv/bin/python bench/bench_explain.py            # 500 epochs, 8 particles
    .venv/bin/python bench/bench_explain.py --quick    # 4 particles in one batch, about a minute

``speed_rows(quick)`` gives the rows of bench/bench_speed.py's table.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import dgl
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import machine  # noqa: E402
from glassgnn import schema  # noqa: E402
from glassgnn.devices import flush_denormals  # noqa: E402
from glassgnn.explain_pipeline import ExplainOptions, explain_particles  # noqa: E402
from glassgnn.explain_subgraph import computation_subgraph  # noqa: E402
from glassgnn.features import node_features  # noqa: E402
from glassgnn.gnnexplainer import GNNExplainerSettings, _entropy, _initial_masks  # noqa: E402
from glassgnn.graph import build_graph  # noqa: E402
from glassgnn.readers.safe_pickle import load_data_pickle  # noqa: E402
from models.models import build_model  # noqa: E402

CUZR = Path(__file__).resolve().parents[2] / "shared" / "data" / "cuzr_symgnn" / "train0.pickle"
REFERENCE_S = 290.0  # SymGNN explain.py, schnet, 500 epochs, per particle (issue 12)
REFERENCE_GIB = 1.4
TARGET_S = 10.0
EPOCHS = 500
HOPS = 4


def setup() -> tuple[SimpleNamespace, object, np.ndarray]:
    """A run-like object (what explain_particles reads), the CuZr graph and its cell."""
    if not CUZR.exists():
        sys.exit(f"bench_explain: {CUZR} not found (the CuZr data is read from ../shared)")
    data = load_data_pickle(CUZR)
    types = np.asarray(data["types"]).astype(np.int64) - 1
    box = np.asarray(data["box"], dtype=np.float64)
    graph = build_graph(data["positions"], types, box, 5.0, self_loops=True)
    graph.ndata[schema.TARGET] = torch.as_tensor(data["trajectory_start_velocities"]).float().reshape(-1, 1)
    torch.manual_seed(0)
    model = build_model("schnet", {"in_dim": 2, "out_dim": 1, "num_interactions": HOPS, "cutoff": 5.0}).eval()
    one, zero = torch.ones(1), torch.zeros(1)
    run = SimpleNamespace(
        model=model,
        device=torch.device("cpu"),
        config={"model": {"num_interactions": HOPS}},
        manifest={"graph": {"cutoff": 5.0}},
        std=one,
        mean=zero,
        features=lambda g: node_features(g, 2),
        targets=lambda g: g.ndata[schema.TARGET],
        predict=lambda g: model(graph=g, feat=node_features(g, 2)).detach(),
    )
    return run, graph, np.diag(box)


def plain_epoch_seconds(run, graph, node: int, epochs: int) -> tuple[float, float]:
    """Wall and CPU seconds per GNNExplainer epoch the plain way: one particle, parameters with gradients
    (as DGL's explain_node leaves them), no memoised work. Same loss as ours."""
    model, s = run.model, GNNExplainerSettings()
    sub, center = computation_subgraph(graph, node, HOPS)
    feat = node_features(graph, 2)[sub.ndata[dgl.NID].long()]
    edge0, feat0 = _initial_masks(sub, 2, node, 0)
    edge_logits, feat_logits = torch.nn.Parameter(edge0), torch.nn.Parameter(feat0)
    optimiser = torch.optim.Adam([edge_logits, feat_logits], lr=s.lr)
    with torch.no_grad():
        original = model(graph=sub, feat=feat)[center]
    start, cpu = time.perf_counter(), time.process_time()
    for _ in range(epochs):
        optimiser.zero_grad()
        model.zero_grad(set_to_none=True)
        edge_mask, feat_mask = edge_logits.sigmoid(), feat_logits.sigmoid()
        pred = model(graph=sub, feat=feat * feat_mask, eweight=edge_mask)[center]
        loss = (
            (pred - original).pow(2).sum()
            + s.alpha1 * edge_mask.sum()
            + s.alpha2 * _entropy(edge_mask).mean()
        )
        loss = loss + s.beta1 * feat_mask.mean() + s.beta2 * _entropy(feat_mask).mean()
        loss.backward()
        optimiser.step()
    return (time.perf_counter() - start) / epochs, (time.process_time() - cpu) / epochs


def measure(quick: bool, particles: int | None = None, batch_size: int = 8) -> dict:
    """explain.py's per-particle analysis at 500 epochs (quick: 4 particles instead of 8),
    its peak memory, and the plain path at 500 epochs (scaled from 10 or 50 epochs: it has
    no once-per-batch work, every epoch costs the same)."""
    flush_denormals()  # as explain.py does
    run, graph, cell = setup()
    # All 500 epochs even when quick: scaling a shorter run would multiply the once-per-batch
    # work (subgraphs, blocks, filter networks) too.
    particles = particles or (4 if quick else 8)
    options = ExplainOptions(num_nodes=particles, epochs=EPOCHS, batch_size=batch_size, top_k=10)
    load = os.getloadavg()[0]
    wall, cpu = time.perf_counter(), time.process_time()
    results = explain_particles(run, graph, cell, options)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    explainer = float(np.mean([r.explain_seconds for r in results]))
    rest = float(np.mean([r.seconds for r in results])) - explainer
    plain_epochs = 10 if quick else 50
    plain, plain_cpu = plain_epoch_seconds(run, graph, results[0].explanation.node, plain_epochs)
    return {
        "particles": particles,
        "batch_size": batch_size,
        "threads": torch.get_num_threads(),
        "fidelity_topology": rest,
        "total_500": explainer + rest,
        "cpu_fraction": cpu / wall,
        # CPU seconds this process got, per particle at 500 epochs (wall time x CPU share).
        "cpu_500": (explainer + rest) * cpu / wall,
        "plain_500": plain * EPOCHS + rest,
        "plain_cpu_500": (plain_cpu * EPOCHS + rest * cpu / wall),
        "plain_epochs": plain_epochs,
        "peak_gib": peak,
        "atoms": float(np.mean([len(r.explanation.nodes) for r in results])),
        "edges": float(np.mean([len(r.explanation.src) for r in results])),
        "load": (load + os.getloadavg()[0]) / 2,
    }


def rows_from(m: dict) -> list[dict]:
    """bench_speed.py's rows (keys measure, ours, reference, unit, ratio, note) from :func:`measure`."""
    setting = (
        f"CuZr 8000 atoms, schnet 4 blocks, 4-hop subgraphs of {m['atoms']:.0f} atoms / "
        f"{m['edges']:.0f} edges; "
        f"{m['particles']} particles, batch {m['batch_size']}, {m['threads']} thread(s), "
        f"load {m['load']:.1f}, CPU share {m['cpu_fraction']:.0%} (CPU time {m['cpu_500']:.1f} s)"
    )
    return [
        {
            "measure": "explain.py per particle: GNNExplainer 500 epochs + fidelity + alpha PH (target 10 s)",
            "ours": m["total_500"],
            "reference": REFERENCE_S,
            "unit": "s",
            "ratio": REFERENCE_S / m["total_500"],
            "note": setting + f"; PH and fidelity {m['fidelity_topology']:.1f} s",
        },
        {
            "measure": "explain.py per particle, CPU seconds of this process (target 10 s)",
            "ours": m["cpu_500"],
            "reference": None,
            "unit": "s",
            "ratio": None,
            "note": f"wall time x CPU share {m['cpu_fraction']:.0%} at load {m['load']:.1f}; "
            f"plain path {m['plain_cpu_500']:.0f} s CPU",
        },
        {
            "measure": "explain per particle, plain path (model not frozen, no memo, one particle)",
            "ours": m["plain_500"],
            "reference": REFERENCE_S,
            "unit": "s",
            "ratio": REFERENCE_S / m["plain_500"],
            "note": f"same process; {m['plain_epochs']} epochs scaled to 500, plus the same PH and fidelity",
        },
        {
            "measure": "explain peak memory (process, 8000-atom graph included)",
            "ours": m["peak_gib"],
            "reference": REFERENCE_GIB,
            "unit": "GiB",
            "ratio": None,
            "note": "maximum resident set size",
        },
    ]


def speed_rows(quick: bool) -> list[dict]:
    """Rows for bench/bench_speed.py's table (quick: 4 particles, about a minute)."""
    return rows_from(measure(quick))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="4 particles in one batch, 10 plain epochs")
    parser.add_argument("--particles", type=int, default=None, help="default 8 (quick: 4)")
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (1: fastest on a shared machine)"
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"# {machine.header()}")
    print("| measure | ours | reference | unit | reference / ours | note |")
    print("| --- | ---: | ---: | --- | ---: | --- |")
    for row in rows_from(measure(args.quick, args.particles, args.batch_size)):
        ratio = "" if row["ratio"] is None else f"{row['ratio']:.1f}x"
        reference = "" if row["reference"] is None else str(row["reference"])
        cells = [row["measure"], f"{row['ours']:.2f}", reference, row["unit"], ratio, row["note"]]
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
