"""Validation accuracy reached per CPU minute (one thread): the descriptor floor against the GNNs.

    .venv/bin/python bench/bench_accuracy.py --quick              # under 10 minutes
    .venv/bin/python bench/bench_accuracy.py                      # the full study (days of CPU)
    .venv/bin/python bench/bench_accuracy.py --datasets cuzr --variants symgnn+desc --budgets 15 60

Two data sets, each split as in its paper: CuZr energy barriers (SymGNN protocol: train0-5 ->
train6, 5 Å, read from ../shared/data/cuzr_symgnn) and the bundled Kob-Andersen set
(datasets/ka_T0.64: configurations 0-11 train, 12-13 val, propensity at time index 6 =
tau_alpha, type-A particles, cutoff 2.0 sigma). Both are built once with
``construct_graph.py --descriptors`` (the default descriptor set); ``cuzr+energy`` adds the
per-atom potential energy and stresses of the CuZr files, ``cuzr+learned`` the energy and
pressure learned from the training files' geometry (``learned_fields``: validation reads
positions only), ``ka+inherent`` the inherent structure (``--descriptors inherent``).

Every variant is ``train.py`` in a fresh process with one thread (``OMP_NUM_THREADS=1``) and
``--max_cpu_time`` set to the largest budget; metrics.csv records the CPU seconds of every
evaluation, so one run gives the whole curve. The figure at budget B is the validation Pearson
of the checkpoint that validation would have selected by then (the best so far), mean ± std
over seeds. Variants that read descriptors are charged their CPU cost (measured while
building the data set). Selection is on validation only; no test figure is read.

Writes ``OUT/results.json`` (every curve, thinned by ``archived``: small enough to keep in
docs/ after the run folders are gone), ``OUT/table.md`` and ``OUT/curves.png``; ``--report
--curves FILE...`` redraws the last two from such files alone.
"""

from __future__ import annotations

import argparse
import glob
import json
import math
import shutil
import sys
import time
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench import machine  # noqa: E402
from bench.common import VARIANTS, Variant, construct, ka_args, mean_std, metrics_rows, train_run  # noqa: E402
from glassgnn import outputs  # noqa: E402

CUZR = REPO.parent / "shared" / "data" / "cuzr_symgnn"
KA = REPO / "datasets" / "ka_T0.64"
DEFAULT_VARIANTS = (
    "ridge",
    "glassmlp",
    "bapst",
    "bapst+desc",
    "schnet",
    "schnet+desc",
    "symgnn",
    "symgnn+desc",
)
BUDGETS = (1, 5, 15, 30, 60)  # CPU minutes
QUICK = {"variants": ("ridge", "glassmlp", "bapst+desc"), "budgets": (0.5, 1), "seeds": (0,)}


CUZR_ARGS = [
    "--train",
    *[str(CUZR / f"train{i}.pickle") for i in range(6)],
    "--val",
    str(CUZR / "train6.pickle"),
    "--cutoff",
    "5.0",
]
KA_ARGS = ka_args(
    [KA / f"config_{i:04d}.pickle" for i in range(12)],
    [KA / f"config_{i:04d}.pickle" for i in (12, 13)],
    test=[],
    time_index=6,
)
# name -> (construct_graph.py arguments, descriptor arguments)
DATASETS = {
    "cuzr": (CUZR_ARGS, ["--descriptors"]),
    # + the per-atom potential energy and stresses the CuZr files carry
    "cuzr+energy": (CUZR_ARGS, ["--descriptors", "--descriptor_param", "fields=[pot,press,von]"]),
    # + the energy and pressure learned from train0-5's geometry (positions only on train6)
    "cuzr+learned": (CUZR_ARGS, ["--descriptors", "--descriptor_param", "learned_fields=[pot,press]"]),
    "ka": (KA_ARGS, ["--descriptors"]),
    # + the inherent structure (LAMMPS minimisation of the Kob-Andersen potential)
    "ka+inherent": (KA_ARGS, ["--descriptors", "inherent"]),
}


def build_datasets(work: Path, names: list[str]) -> dict[str, dict]:
    """Dataset directory and descriptor CPU cost of each named data set (built once, cached)."""
    out = {}
    for name in names:
        directory = work / f"data_{name}"
        record = work / f"data_{name}.json"
        args, descriptor_args = DATASETS[name]
        if not record.exists():
            plain = construct([*args, "--output_dir", str(work / f"plain_{name}"), "--overwrite"])
            full = construct([*args, *descriptor_args, "--output_dir", str(directory), "--overwrite"])
            record.write_text(json.dumps({"descriptor_cpu_s": max(0.0, full - plain)}))
        out[name] = {"dir": directory, **json.loads(record.read_text())}
    return out


def run_variant(
    variant: Variant, data: dict, seed: int, budget_s: float, out: Path
) -> list[tuple[float, float]]:
    """Train one variant for ``budget_s`` CPU seconds; returns (CPU s, val Pearson) per evaluation.

    A finished run in ``out`` is read, not repeated; an interrupted one is resumed.
    """
    train_run(variant, data["dir"], seed, budget_s, out)
    rows = metrics_rows(out)
    extra = data["descriptor_cpu_s"] if variant.reads_descriptors else 0.0
    return [(float(r["cpu_s"]) + extra, float(r["val_pearson"])) for r in rows]


def run_budget_min(run: Path) -> float:
    """The CPU budget in minutes of a run folder named ``DATA_VARIANT_bMINUTES_sSEED``."""
    return float(run.name.rsplit("_b", 1)[1].split("_s")[0])


def longest_finished(work: Path, data: str, variant: str, seed: int, below: float = math.inf) -> Path | None:
    """The finished run of ``variant`` and ``seed`` on ``data`` in ``work`` with the largest
    budget under ``below`` minutes, or None."""
    runs = [
        r
        for r in work.glob(f"{glob.escape(f'{data}_{variant}')}_b*_s{seed}")
        if (r / outputs.RESULTS).exists() and run_budget_min(r) < below
    ]
    return max(runs, key=run_budget_min, default=None)


def best_by(curve: dict, budget_s: float) -> float:
    """Validation Pearson of the checkpoint selected on validation within ``budget_s``; NaN when
    the run saw no evaluation by then, or stopped at a smaller budget than ``budget_s``.

    Args:
        curve: ``{"limit_s": the run's CPU budget (inf for a closed-form fit), "points":
            [(CPU s, val Pearson), ...]}``.
    """
    if budget_s > curve["limit_s"]:
        return float("nan")
    values = [v for t, v in curve["points"] if t <= budget_s and v == v]
    return max(values) if values else float("nan")


def archived(points: list[tuple[float, float]], keep: int = 300) -> list[tuple[float, float]]:
    """The evaluations that raise the best so far (so ``best_by`` gives the same figure at every
    budget, to the last digit) and about ``keep`` others evenly spaced (enough to draw each
    evaluation's curve): a 60-minute glassmlp run has ~10,000 evaluations."""
    step = max(1, len(points) // keep)
    best, out = -math.inf, []
    for i, (t, v) in enumerate(points):
        if v > best or i % step == 0 or i == len(points) - 1:
            out.append((t, v))
        best = max(best, v) if v == v else best
    return out


def load_curves(paths: list[Path]) -> tuple[dict, dict]:
    """Data-set costs and curves of results.json files (a later file's curve replaces an earlier
    one of the same data set, variant and seed), seeds as ints, points as tuples."""
    datasets: dict = {}
    results: dict = {}
    for path in paths:
        try:
            record = json.loads(path.read_text())
            datasets.update(record["datasets"])
            for data, variants in record["curves"].items():
                for name, curves in variants.items():
                    for seed, curve in curves.items():
                        points = [(float(t), float(v)) for t, v in curve["points"]]
                        results.setdefault(data, {}).setdefault(name, {})[int(seed)] = {
                            **curve,
                            "points": points,
                        }
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            sys.exit(f"bench_accuracy.py: error: {path}: not a results.json of this bench ({exc!r})")
    return datasets, results


def table(results: dict, budgets: tuple[float, ...]) -> str:
    head = "| data | variant | " + " | ".join(f"{b:g} min" for b in budgets) + " |"
    lines = [head, "|" + "---|" * (len(budgets) + 2)]
    for data, variants in results.items():
        for name, curves in variants.items():
            cells = [mean_std([best_by(c, 60 * b) for c in curves.values()]) for b in budgets]
            lines.append(
                f"| {data} | {name} ({len(curves)} seed{'s' * (len(curves) > 1)}) | "
                + " | ".join(cells)
                + " |"
            )
    return "\n".join(lines) + "\n"


def plot(results: dict, path: Path) -> None:
    """Per data set: best-so-far validation Pearson against CPU minutes (thick; what selection on
    validation gives), each evaluation's own validation Pearson (thin, first seed: shows
    overfitting), and closed-form fits as horizontal dashed lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = min(3, len(results))
    rows = -(-len(results) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(6 * columns, 4 * rows), squeeze=False)
    for ax in axes.flat[len(results) :]:
        ax.set_visible(False)
    for ax, (data, variants) in zip(axes.flat[: len(results)], results.items(), strict=True):
        for k, (name, curves) in enumerate(variants.items()):
            colour = f"C{k}"
            if all(c["limit_s"] == float("inf") for c in curves.values()):
                ax.axhline(
                    np.mean([best_by(c, 1e12) for c in curves.values()]), color=colour, ls="--", label=name
                )
                continue
            end = max(min(c["limit_s"], max(t for t, _ in c["points"])) for c in curves.values())
            grid = np.geomspace(0.05, end / 60 + 1e-9, 60)
            ys = np.array([[best_by(c, 60 * g) for g in grid] for c in curves.values()])
            with warnings.catch_warnings():  # budgets no seed reached: NaN, not drawn
                warnings.simplefilter("ignore", RuntimeWarning)
                ax.plot(grid, np.nanmean(ys, 0), color=colour, lw=2, label=name)
            first = next(iter(curves.values()))["points"]
            ax.plot([t / 60 for t, _ in first], [v for _, v in first], color=colour, lw=0.7, alpha=0.5)
        ax.set_xscale("log")
        ax.set_xlabel("CPU minutes (one thread)")
        ax.set_ylabel("validation Pearson")
        ax.set_title(f"{data}: thick = selected on val, thin = each evaluation")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help=f"{QUICK} on both data sets")
    parser.add_argument("--datasets", nargs="+", default=["cuzr", "ka"], choices=list(DATASETS))
    parser.add_argument("--variants", nargs="+", default=list(DEFAULT_VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--budgets", nargs="+", type=float, default=list(BUDGETS), help="CPU minutes")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--work", default=str(REPO / "outputs" / "bench_accuracy"), help="runs and data")
    parser.add_argument(
        "--report", action="store_true", help="train nothing: tabulate and plot the finished runs in --work"
    )
    parser.add_argument(
        "--curves",
        nargs="+",
        type=Path,
        help="with --report: every curve of these results.json files instead",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.variants, args.budgets, args.seeds = QUICK["variants"], QUICK["budgets"], QUICK["seeds"]
    budgets = tuple(sorted(args.budgets))
    work = Path(args.work)
    start = time.perf_counter()
    if args.curves:
        if not args.report:
            parser.error("--curves needs --report (it reads curves, it trains nothing)")
        costs, results = load_curves(args.curves)  # before anything is written
        work.mkdir(parents=True, exist_ok=True)
        write_report(work, costs, results, budgets)
        return results
    work.mkdir(parents=True, exist_ok=True)
    datasets = build_datasets(work, args.datasets)
    results: dict = {}
    for data_name, data in datasets.items():
        for name in args.variants:
            for seed in args.seeds:
                run = work / f"{data_name}_{name}_b{budgets[-1]:g}_s{seed}"
                if args.report:  # the longest finished run of this variant and seed, if any
                    run = longest_finished(work, data_name, name, seed)
                    if run is None:
                        continue
                elif not run.exists() and not VARIANTS[name].closed_form:
                    # continue the longest shorter run instead of training its first minutes again
                    # (bench.common.train_run resumes it with the larger budget)
                    if shorter := longest_finished(work, data_name, name, seed, below=budgets[-1]):
                        shutil.copytree(shorter, run)
                budget_s = run_budget_min(run) * 60
                points = run_variant(VARIANTS[name], data, seed, budget_s, run)
                limit = float("inf") if VARIANTS[name].model == "ridge" else budget_s  # closed form: done
                curve = {"limit_s": limit, "points": points}
                results.setdefault(data_name, {}).setdefault(name, {})[seed] = curve
                print(
                    f"{data_name} {name} seed {seed}: "
                    + ", ".join(f"{b:g} min {best_by(curve, 60 * b):.3f}" for b in budgets),
                    flush=True,
                )
    write_report(
        work, {k: {"descriptor_cpu_s": v["descriptor_cpu_s"]} for k, v in datasets.items()}, results, budgets
    )
    print(f"({time.perf_counter() - start:.0f} s)")
    return results


def write_report(work: Path, costs: dict, results: dict, budgets: tuple[float, ...]) -> None:
    """Print the table; write it, the plot and the (archived) curves to ``work``."""
    text = table(results, budgets)
    print(text)
    (work / "table.md").write_text(text)
    curves = {
        data: {
            name: {seed: {**c, "points": archived(c["points"])} for seed, c in seeds.items()}
            for name, seeds in variants.items()
        }
        for data, variants in results.items()
    }
    (work / "results.json").write_text(
        json.dumps({"written": machine.header(), "datasets": costs, "curves": curves}, separators=(",", ":"))
    )
    plot(results, work / "curves.png")
    print(f"wrote {work / 'table.md'}, {work / 'curves.png'}, {work / 'results.json'}")


if __name__ == "__main__":
    main()
