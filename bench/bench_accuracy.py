"""Validation accuracy reached per CPU minute (one thread): the descriptor floor against the GNNs.

    .venv/bin/python bench/bench_accuracy.py --quick              # under 10 minutes
    .venv/bin/python bench/bench_accuracy.py                      # the full study (days of CPU)
    .venv/bin/python bench/bench_accuracy.py --datasets cuzr --variants symgnn+desc --budgets 15 60

Two data sets, each split as in its paper: CuZr energy barriers (SymGNN protocol: train0-5 ->
train6, 5 Å, read from ../shared/data/cuzr_symgnn) and the bundled Kob-Andersen set
(datasets/ka_T0.64: configurations 0-11 train, 12-13 val, propensity at time index 6 =
tau_alpha, type-A particles, cutoff 2.0 sigma). Both are built once with
``construct_graph.py --descriptors`` (the default descriptor set).

Every variant is ``train.py`` in a fresh process with one thread (``OMP_NUM_THREADS=1``) and
``--max_cpu_time`` set to the largest budget; metrics.csv records the CPU seconds of every
evaluation, so one run gives the whole curve. The figure at budget B is the validation Pearson
of the checkpoint that validation would have selected by then (the best so far), mean ± std
over seeds. Variants that read descriptors are charged their CPU cost (measured while
building the data set). Selection is on validation only; no test figure is read.

Writes ``OUT/results.json`` (every curve), ``OUT/table.md`` and ``OUT/curves.png``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
CUZR = REPO.parent / "shared" / "data" / "cuzr_symgnn"
KA = REPO / "datasets" / "ka_T0.64"


@dataclass(frozen=True)
class Variant:
    """A model and the train.py flags that make it (``train.conf.yaml`` supplies the rest)."""

    name: str
    model: str
    flags: tuple[str, ...] = ()

    @property
    def reads_descriptors(self) -> bool:
        return self.model in ("ridge", "glassmlp") or "--recipe" in self.flags


DESC = ("--recipe", "cpu")  # train.conf.yaml recipes.cpu: descriptors in, ridge baseline, warm-up
VARIANTS = {
    v.name: v
    for v in [
        Variant("ridge", "ridge"),
        Variant("glassmlp", "glassmlp"),
        Variant("bapst", "bapst"),
        Variant("bapst+desc", "bapst", DESC),
        Variant("schnet", "schnet"),
        Variant("schnet+desc", "schnet", DESC),
        Variant("symgnn", "symgnn"),
        Variant("symgnn+desc", "symgnn", DESC),
    ]
}
BUDGETS = (1, 5, 15, 30, 60)  # CPU minutes
QUICK = {"variants": ("ridge", "glassmlp", "bapst+desc"), "budgets": (0.5, 1), "seeds": (0,)}


def _construct(args: list[str]) -> float:
    """Run construct_graph.py in a fresh one-thread process; returns its CPU seconds."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    start = os.times()
    subprocess.run(
        [sys.executable, str(REPO / "construct_graph.py"), *args],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    end = os.times()
    return (end.children_user - start.children_user) + (end.children_system - start.children_system)


def build_datasets(work: Path, names: list[str]) -> dict[str, dict]:
    """Dataset directory and descriptor CPU cost of each named data set (built once, cached)."""
    specs = {
        "cuzr": [
            "--train",
            *[str(CUZR / f"train{i}.pickle") for i in range(6)],
            "--val",
            str(CUZR / "train6.pickle"),
            "--cutoff",
            "5.0",
        ],
        "ka": [
            "--train",
            *[str(KA / f"config_{i:04d}.pickle") for i in range(12)],
            "--val",
            *[str(KA / f"config_{i:04d}.pickle") for i in (12, 13)],
            "--format",
            "bapst",
            "--time_index",
            "6",
            "--cutoff",
            "2.0",
        ],
    }
    out = {}
    for name in names:
        directory = work / f"data_{name}"
        record = work / f"data_{name}.json"
        if not record.exists():
            plain = _construct([*specs[name], "--output_dir", str(work / f"plain_{name}"), "--overwrite"])
            full = _construct([*specs[name], "--descriptors", "--output_dir", str(directory), "--overwrite"])
            record.write_text(json.dumps({"descriptor_cpu_s": max(0.0, full - plain)}))
        out[name] = {"dir": directory, **json.loads(record.read_text())}
    return out


def run_variant(
    variant: Variant, data: dict, seed: int, budget_s: float, out: Path
) -> list[tuple[float, float]]:
    """Train one variant for ``budget_s`` CPU seconds; returns (CPU s, val Pearson) per evaluation.

    A finished run in ``out`` is read, not repeated; an interrupted one is resumed.
    """
    if not (out / "results.json").exists():
        # an interrupted run continues (same seed stream); anything else starts again
        again = "--resume" if (out / "last.pt").exists() else "--overwrite"
        cmd = [
            sys.executable,
            str(REPO / "train.py"),
            "--model_name",
            variant.model,
            "--dataset_dir",
            str(data["dir"]),
            "--output_dir",
            str(out),
            again,
            "--seed",
            str(seed),
            "--max_cpu_time",
            str(budget_s),
            "--max_epoch",
            "1000000",
            "--patience",
            "1000000",
            "--no-save_results",
            *variant.flags,
        ]
        log = out.with_suffix(".log")
        with log.open("w") as handle:
            subprocess.run(
                cmd,
                check=True,
                env={**os.environ, "OMP_NUM_THREADS": "1"},
                stdout=handle,
                stderr=subprocess.STDOUT,
                cwd=REPO,
            )
    lines = (out / "metrics.csv").read_text().splitlines()
    header = lines[0].split(",")
    rows = [dict(zip(header, line.split(","), strict=True)) for line in lines[1:]]
    extra = data["descriptor_cpu_s"] if variant.reads_descriptors else 0.0
    return [(float(r["cpu_s"]) + extra, float(r["val_pearson"])) for r in rows]


def best_by(curve: list[tuple[float, float]], budget_s: float) -> float:
    """Validation Pearson of the checkpoint selected on validation within ``budget_s`` (NaN if none)."""
    values = [v for t, v in curve if t <= budget_s and v == v]
    return max(values) if values else float("nan")


def table(results: dict, budgets: tuple[float, ...]) -> str:
    head = "| data | variant | " + " | ".join(f"{b:g} min" for b in budgets) + " |"
    lines = [head, "|" + "---|" * (len(budgets) + 2)]
    for data, variants in results.items():
        for name, curves in variants.items():
            cells = []
            for b in budgets:
                values = np.array([best_by(c, 60 * b) for c in curves.values()])
                values = values[np.isfinite(values)]
                cells.append(
                    "—"
                    if len(values) == 0
                    else (
                        f"{values.mean():.3f} ± {values.std(ddof=1):.3f}"
                        if len(values) > 1
                        else f"{values[0]:.3f}"
                    )
                )
            lines.append(
                f"| {data} | {name} ({len(curves)} seed{'s' * (len(curves) > 1)}) | "
                + " | ".join(cells)
                + " |"
            )
    return "\n".join(lines) + "\n"


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(6 * len(results), 4), squeeze=False)
    for ax, (data, variants) in zip(axes[0], results.items(), strict=True):
        for name, curves in variants.items():
            grid = np.geomspace(0.05, max(t for c in curves.values() for t, _ in c) / 60 + 1e-9, 60)
            ys = np.array([[best_by(c, 60 * g) for g in grid] for c in curves.values()])
            ax.plot(grid, np.nanmean(ys, 0), label=name)
        ax.set_xscale("log")
        ax.set_xlabel("CPU minutes (one thread)")
        ax.set_ylabel("validation Pearson (selected on val)")
        ax.set_title(data)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help=f"{QUICK} on both data sets")
    parser.add_argument("--datasets", nargs="+", default=["cuzr", "ka"], choices=["cuzr", "ka"])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--budgets", nargs="+", type=float, default=list(BUDGETS), help="CPU minutes")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--work", default=str(REPO / "outputs" / "bench_accuracy"), help="runs and data")
    args = parser.parse_args(argv)
    if args.quick:
        args.variants, args.budgets, args.seeds = QUICK["variants"], QUICK["budgets"], QUICK["seeds"]
    budgets = tuple(sorted(args.budgets))
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    datasets = build_datasets(work, args.datasets)
    results: dict = {}
    for data_name, data in datasets.items():
        for name in args.variants:
            for seed in args.seeds:
                run = work / f"{data_name}_{name}_b{budgets[-1]:g}_s{seed}"
                curve = run_variant(VARIANTS[name], data, seed, 60 * budgets[-1], run)
                results.setdefault(data_name, {}).setdefault(name, {})[seed] = curve
                print(
                    f"{data_name} {name} seed {seed}: "
                    + ", ".join(f"{b:g} min {best_by(curve, 60 * b):.3f}" for b in budgets),
                    flush=True,
                )
    text = table(results, budgets)
    print(text)
    (work / "table.md").write_text(text)
    (work / "results.json").write_text(
        json.dumps(
            {
                "datasets": {k: {"descriptor_cpu_s": v["descriptor_cpu_s"]} for k, v in datasets.items()},
                "curves": results,
            },
            indent=1,
        )
    )
    plot(results, work / "curves.png")
    print(f"wrote {work / 'table.md'}, {work / 'curves.png'} ({time.perf_counter() - start:.0f} s)")
    return results


if __name__ == "__main__":
    main()
