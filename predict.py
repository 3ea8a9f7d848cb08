"""Apply a trained run to new snapshots and write per-atom predictions.

Example::

    python predict.py --run_dir outputs/symgnn --input 'data/new*.pickle' --output new.npz --csv

Graphs are built with exactly the graph parameters of the run's dataset (its manifest).
Each input may hold several frames (a multi-frame LAMMPS dump, an extxyz trajectory);
every frame is predicted, with a progress bar. Node runs write one row per particle,
graph runs one row per snapshot. When the inputs carry targets, the metrics of
train.py are printed and written to ``<output>.metrics.json``, named after the input
columns actually compared (e.g. ``propensity_9`` with ``--time_index 9``).

``--compile auto`` (default) compiles models that have a compiled path (``bapst``) with
``torch.compile`` when there are many frames; the first call then takes seconds, later
ones are faster. A failing compiler falls back to eager execution with one warning.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from glassgnn.dataset import expand_globs
from glassgnn.devices import DeviceError, flush_denormals, select_device
from glassgnn.fileio import OutputExistsError, write_json, write_text
from glassgnn.metrics import METRICS
from glassgnn.outputs import write_npz
from glassgnn.prediction import csv_text, graph_params, predict_files, set_threads
from glassgnn.readers import FORMATS, ReaderError
from glassgnn.run import load_run
from models.compile import COMPILE_MODES


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run_dir", required=True, help="run directory written by train.py")
    parser.add_argument("--input", required=True, nargs="+", metavar="GLOB", help="input files (globs)")
    parser.add_argument(
        "--format",
        default=None,
        choices=["auto", *FORMATS],
        help="input format (default: the format recorded in the run's dataset manifest)",
    )
    parser.add_argument("--time_index", type=int, default=None, help="bapst inputs: propensity time index")
    parser.add_argument("--output", required=True, help="output .npz file")
    parser.add_argument("--device", type=int, default=-1, help="-1 for CPU, k for cuda:k (default: -1)")
    parser.add_argument("--csv", action="store_true", help="also write <output stem>.csv")
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    parser.add_argument(
        "--compile",
        default="auto",
        choices=COMPILE_MODES,
        help="torch.compile the model (bapst): auto = when there are many frames (default: auto)",
    )
    parser.add_argument(
        "--no-compile", dest="compile", action="store_const", const="never", help="same as --compile never"
    )
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's default)")
    parser.add_argument("--no_progress", action="store_true", help="no progress bar")
    return parser


def main(argv: list[str] | None = None) -> dict | None:
    parser = build_parser()
    args = parser.parse_args(argv)
    output = Path(args.output)
    if output.suffix != ".npz":
        parser.error(f"--output {output}: expected a .npz file name")
    targets = [output, output.with_suffix(".metrics.json"), output.with_suffix(".csv")]
    try:
        existing = [str(p) for p in targets if p.exists()]
        if existing and not args.overwrite:
            raise OutputExistsError(f"{', '.join(existing)} already exist(s); pass --overwrite to replace")
        set_threads(args.threads)
        flush_denormals()  # before any parallel work: torch's threads inherit it (glassgnn.devices)
        run = load_run(args.run_dir, select_device(args.device))
        params = graph_params(run, args.format, args.time_index)
        paths = expand_globs(args.input, "--input")
        result = predict_files(run, paths, params, progress=not args.no_progress, compile=args.compile)
    except (OutputExistsError, FileNotFoundError, DeviceError, ReaderError, ValueError) as err:
        parser.exit(2, f"predict.py: error: {err}\n")
    write_npz(output, result.arrays)
    rows = "snapshots" if "atom" not in result.arrays else "atoms"
    print(f"wrote {len(result.arrays['pred'])} {rows} to {output}")
    if args.csv:
        write_text(output.with_suffix(".csv"), csv_text(result.arrays))
    if result.metrics is not None:
        write_json(output.with_suffix(".metrics.json"), result.metrics)
        for target, groups in result.metrics.items():
            for group, values in groups.items():
                cells = ", ".join(f"{m} {values[m]:.4f}" for m in METRICS)
                print(f"{target} {group} (n={values['count']}): {cells}")
        print(f"metrics written to {output.with_suffix('.metrics.json')}")
    return result.metrics


if __name__ == "__main__":
    main()
