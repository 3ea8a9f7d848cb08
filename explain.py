"""Explain a trained model's predictions and relate bond importance to topology.

Example::

    python explain.py --run_dir outputs/schnet --split test --num_nodes 50 --select center \
        --explainer gnnexplainer --epochs 300 --complex alpha --top_k 10 --output_dir outputs/explain

For each selected particle: GNNExplainer (or PGExplainer) edge importances on its
L-hop subgraph (L = the model's message-passing depth), fidelity, persistent
homology of the neighbourhood (alpha of its unwrapped positions, or the periodic Rips
complex of its bonds when it wraps around the box or with --complex rips),
representative H1 cycles and the cycle participation of every bond; pooled over
particles, the tier statistics of the SymGNN paper. Writes summary.json,
explanations.npz, particles.csv, timing.json and figures into --output_dir (refused
if it exists, unless --overwrite).

A graph-level run (one prediction per snapshot) is explained on the whole graph
--graph_index with DGL's GNNExplainer.explain_graph, and the tiers run over all
its bonds (particle options do not apply).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from glassgnn import schema
from glassgnn.dataset import load_manifest, load_split, load_split_labels
from glassgnn.devices import DeviceError, flush_denormals, select_device
from glassgnn.explain_pipeline import (
    DEFAULT_EPOCHS,
    EXPLAINERS,
    SELECTIONS,
    ExplainOptions,
    explain_graph_level,
    explain_particles,
    resolve_hops,
)
from glassgnn.explain_report import graph_summary, summary, write_graph_outputs, write_outputs
from glassgnn.fileio import OutputExistsError, atomic_directory
from glassgnn.manifest import Manifest
from glassgnn.run import load_run
from glassgnn.topology import COMPLEXES, ComplexTooLargeError, UnwrapError


def _at_least(minimum: int):
    """argparse type: an integer >= ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run_dir", required=True, help="run directory written by train.py")
    p.add_argument("--dataset_dir", default=None, help="dataset to read (default: the run's dataset_dir)")
    p.add_argument("--split", default="test", choices=schema.SPLITS)
    p.add_argument("--graph_index", type=int, default=0, help="which graph of the split")
    p.add_argument("--nodes", type=int, nargs="+", default=None, help="particle ids to explain")
    p.add_argument(
        "--num_nodes", type=_at_least(1), default=50, help="how many particles to select (without --nodes)"
    )
    p.add_argument("--select", default="center", choices=SELECTIONS, help="how to select them")
    p.add_argument("--explainer", default="gnnexplainer", choices=EXPLAINERS)
    p.add_argument(
        "--num_hops", type=_at_least(1), default=None, help="subgraph radius (default: model's depth)"
    )
    p.add_argument(
        "--epochs",
        type=_at_least(1),
        default=None,
        help="optimisation epochs (default: gnnexplainer 300, pgexplainer 30)",
    )
    p.add_argument("--batch_size", type=_at_least(1), default=8, help="particles optimised together")
    p.add_argument(
        "--complex",
        default="alpha",
        choices=COMPLEXES,
        help="filtration; alpha falls back to the periodic rips for a neighbourhood wrapping the box",
    )
    p.add_argument("--top_k", type=_at_least(1), default=10, help="bonds per tier and for fidelity")
    p.add_argument("--output_dir", required=True)
    p.add_argument("--device", type=int, default=-1, help="-1 = CPU, k = cuda:k")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--threads",
        type=_at_least(1),
        default=None,
        help="CPU threads for torch (default: torch's; 1 on a busy machine)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing --output_dir")
    return p


def main(argv: list[str] | None = None) -> dict:
    parser = build_parser()
    args = parser.parse_args(argv)
    options = ExplainOptions(
        split=args.split,
        graph_index=args.graph_index,
        nodes=args.nodes,
        num_nodes=args.num_nodes,
        select=args.select,
        explainer=args.explainer,
        num_hops=args.num_hops,
        epochs=args.epochs if args.epochs is not None else DEFAULT_EPOCHS[args.explainer],
        complex=args.complex,
        top_k=args.top_k,
        seed=args.seed,
        batch_size=args.batch_size,
    )
    try:
        if Path(args.output_dir).exists() and not args.overwrite:
            raise OutputExistsError(f"{args.output_dir} already exists; pass --overwrite to replace it")
        torch.manual_seed(args.seed)
        if args.threads:
            torch.set_num_threads(args.threads)
        flush_denormals()  # before any parallel work: torch's threads inherit it (glassgnn.devices)
        run = load_run(args.run_dir, select_device(args.device))
        dataset_dir = args.dataset_dir or run.config.dataset_dir
        run.check_dataset(load_manifest(dataset_dir), str(dataset_dir))
        graphs = load_split(dataset_dir, args.split)
        if not 0 <= args.graph_index < len(graphs):
            raise ValueError(
                f"--graph_index {args.graph_index}: split {args.split!r} of {dataset_dir} "
                f"has {len(graphs)} graphs"
            )
        cell = load_split_labels(dataset_dir, args.split)[schema.CELL][args.graph_index].double().numpy()
        extra = {
            "run_dir": str(args.run_dir),
            "dataset_dir": str(dataset_dir),
            "model_name": run.config.model_name,
        }
        if run.kind.per_graph:
            if args.nodes:
                raise ValueError(
                    "--nodes: a graph-level run explains whole graphs; choose one with --graph_index"
                )
            labels = load_split_labels(dataset_dir, args.split)
            target = labels[schema.GRAPH_TARGET][args.graph_index, run.columns].double().numpy()
            graph_result = explain_graph_level(run, graphs[args.graph_index], cell, target, options)
            result = graph_summary(graph_result, options, extra)
            with atomic_directory(args.output_dir, overwrite=args.overwrite) as tmp:
                write_graph_outputs(tmp, graph_result, result, options)
            return result
        _warn_outside_mask(graphs[args.graph_index], args.nodes, run.manifest)
        options.num_hops = resolve_hops(run, options)
        results = explain_particles(run, graphs[args.graph_index], cell, options)
        result = summary(results, options, extra)
        with atomic_directory(args.output_dir, overwrite=args.overwrite) as tmp:
            write_outputs(tmp, results, result, graphs[args.graph_index], options)
    except (
        OutputExistsError,
        FileNotFoundError,
        DeviceError,
        UnwrapError,
        ComplexTooLargeError,
        ValueError,
    ) as err:
        parser.exit(2, f"explain.py: error: {err}\n")
    return result


def _warn_outside_mask(graph, nodes: list[int] | None, manifest: Manifest) -> None:
    """Warn when asked particles are outside the metrics mask: the model never fit their targets."""
    mask = graph.ndata[schema.MASK]
    outside = [i for i in nodes or [] if 0 <= i < len(mask) and not bool(mask[i])]
    if outside:
        print(
            f"explain.py: warning: particle(s) {outside} are outside the metrics mask (mask_types "
            f"{manifest.graph.get('mask_types')}): the model was not trained on their targets",
            file=sys.stderr,
        )


if __name__ == "__main__":
    main()
