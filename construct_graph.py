"""Build periodic neighbour graphs from simulation snapshots into a dataset directory.

    python construct_graph.py --train 'data/train*.pickle' --val data/val.pickle \\
        --format auto --cutoff 5.0 --output_dir datasets/graphs/cuzr

Writes DIR/train.bin, DIR/val.bin, DIR/test.bin (dgl.save_graphs) and DIR/manifest.json.
With ``--graph_target temperature`` each graph also carries per-snapshot targets (graph labels).
The logic lives in :mod:`glassgnn.dataset`; see the README section "construct_graph".
"""

from __future__ import annotations

import argparse
import logging
import sys

from glassgnn.config import KeyValues
from glassgnn.dataset import construct_dataset, expand_globs
from glassgnn.readers import FORMATS
from glassgnn.task_kind import task_kind


def _pair_cutoff(text: str) -> tuple[str, float]:
    pair, _, value = text.partition("=")
    try:
        return pair, float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LABEL-LABEL=CUTOFF, got {text!r}") from None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--train", nargs="+", required=True, metavar="GLOB", help="training input files")
    parser.add_argument("--val", nargs="+", default=[], metavar="GLOB", help="validation input files")
    parser.add_argument("--test", nargs="+", default=[], metavar="GLOB", help="test input files")
    parser.add_argument(
        "--val_fraction",
        type=float,
        default=None,
        help="without --val: move this fraction of the training graphs (whole frames) to validation",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the --val_fraction split")
    parser.add_argument("--format", default="auto", choices=["auto", *FORMATS], help="input format")
    parser.add_argument(
        "--cutoff",
        type=float,
        default=None,
        help="neighbour cutoff (length unit of the "
        "input); with --knn an upper bound on the neighbour distance",
    )
    parser.add_argument(
        "--pair_cutoff",
        action="append",
        type=_pair_cutoff,
        default=[],
        metavar="A-B=R",
        help="cutoff for one pair of original type labels, e.g. 1-2=3.4 (repeatable)",
    )
    parser.add_argument("--knn", type=int, default=None, help="connect each atom to its K nearest neighbours")
    parser.add_argument(
        "--self_loops", action="store_true", help="add (i, i) edges (as the SymGNN reference)"
    )
    parser.add_argument(
        "--target",
        default=None,
        help="per-atom field used as target (default: the format's, "
        "e.g. trajectory_start_velocities for symgnn, propensity for bapst)",
    )
    parser.add_argument(
        "--graph_target",
        nargs="+",
        default=None,
        metavar="NAME",
        help="per-snapshot values stored as graph targets (task 'graph'), e.g. temperature "
        "(bapst metadata, extxyz info/energy, npz scalars, or --graph_target_csv); default: none",
    )
    parser.add_argument(
        "--graph_target_csv",
        default=None,
        metavar="CSV",
        help="side table of per-snapshot values, columns file,frame,NAME...: file relative to "
        "the table, frame from 0 (empty or no column: every frame); default: none",
    )
    parser.add_argument("--time_index", type=int, default=None, help="bapst: keep one propensity time index")
    parser.add_argument(
        "--mask_types",
        nargs="+",
        default=None,
        metavar="LABEL",
        help="original type labels "
        "entering loss and metrics ('all' for every particle; default: type 0 (A) for bapst, "
        "all otherwise)",
    )
    parser.add_argument(
        "--descriptors",
        nargs="?",
        const="structure",
        default=None,
        metavar="NAME",
        help="store per-particle structural descriptors as node field 'descriptors' (train.py "
        "--node_fields descriptors; models ridge, glassmlp): the set NAME, structure (default "
        "when given without NAME), radial, or inherent (adds the Kob-Andersen inherent structure, "
        "minimised with LAMMPS); see glassgnn/descriptors.py; default: none",
    )
    parser.add_argument(
        "--descriptor_param",
        nargs="+",
        default={},
        metavar="KEY=VALUE",
        action=KeyValues,
        help="override descriptor parameters, e.g. coarse_radii=[1.5,2.2] q_l=[4,6], or fields=[pot] "
        "to add per-atom values the files carry, learned_fields=[pot,press] to learn them from the "
        "train files' geometry (values read as YAML; defaults follow the data's "
        "length scale and are recorded in the manifest)",
    )
    parser.add_argument("--output_dir", required=True, help="dataset directory to write")
    parser.add_argument("--num_workers", type=int, default=1, help="processes reading files in parallel")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --output_dir")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    mask_types = "all" if args.mask_types == ["all"] else args.mask_types
    if args.descriptor_param and not args.descriptors:
        sys.exit("construct_graph.py: error: --descriptor_param needs --descriptors")
    descriptors = None
    if args.descriptors:
        descriptors = {"name": args.descriptors, **args.descriptor_param}
    params = {
        "format": args.format,
        "cutoff": args.cutoff,
        "knn": args.knn,
        "pair_cutoffs": dict(args.pair_cutoff) or None,
        "self_loops": args.self_loops,
        "target": args.target,
        "time_index": args.time_index,
        "mask_types": mask_types,
        "graph_target": args.graph_target,
        "graph_target_csv": args.graph_target_csv,
        "descriptors": descriptors,
    }
    if args.graph_target_csv and not args.graph_target:
        sys.exit("construct_graph.py: error: --graph_target_csv needs --graph_target NAME")
    try:
        splits = {flag: expand_globs(getattr(args, flag), f"--{flag}") for flag in ("train", "val", "test")}
        manifest = construct_dataset(
            splits, params, args.output_dir, args.val_fraction, args.seed, args.num_workers, args.overwrite
        )
    except (ValueError, OSError) as exc:  # ReaderError is a ValueError; OutputExistsError an OSError
        sys.exit(f"construct_graph.py: error: {exc}")
    except KeyboardInterrupt:  # the temporary output folder is already removed
        print(f"construct_graph.py: interrupted; {args.output_dir} not written", file=sys.stderr)
        sys.exit(130)
    for split, info in manifest.splits.items():
        edges = sum(graph["num_edges"] for graph in info["graphs"])
        print(f"{split}: {len(info['graphs'])} graphs, {edges} directed edges")
    if task_kind(manifest.task).per_graph:
        print(
            f"graph targets {manifest.graph_target_names}, "
            f"train mean/std {manifest.graph_normalisation.to_dict()}"
        )
    if manifest.descriptor_names:
        count, params = len(manifest.descriptor_names), dict(manifest.graph["descriptors"])
        if params.get("learned_weights"):  # hundreds of numbers: the manifest has them
            params["learned_weights"] = "fitted on the train split (in the manifest)"
        print(f"descriptors: {count} per particle, parameters {params}")
    print(f"wrote {args.output_dir}")
    return manifest


if __name__ == "__main__":
    main()
