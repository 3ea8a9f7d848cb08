"""Generalisation across temperatures: train at one temperature, test at every other; fine-tune a
run on a few configurations of a new temperature (issue 20).

    .venv/bin/python bench/bench_transfer.py --quick              # ridge and glassmlp, 1 seed, 20 s each
    .venv/bin/python bench/bench_transfer.py --models ridge bapst+desc se3 --seeds 0 1 2 --max_cpu_time 900
    .venv/bin/python bench/bench_transfer.py --fine_tune_at 0.56 --n_configs 2 --models bapst se3

Data: one folder of bapst pickles per temperature (default ``datasets/ka_T0.56``, ``ka_T0.64``,
``ka_T0.80``; a folder is labelled by its name's ``T<value>`` suffix), whose time index k is the
same relaxation stage (F_s level) at every temperature, tau_alpha at the last. Each folder is
split in file order (``--split``: 12 train, 2 val, 2 test configurations) and built once with the
Kob-Andersen settings of ``bench_accuracy.py`` (:func:`bench.common.ka_args`: cutoff 2.0 sigma,
descriptors) at ``--time_index`` (default -1: the last, tau_alpha). The models' ``cutoff``
hyperparameters are set to the graphs' (:func:`bench.common.conf_at_cutoff`).

**Matrix** (default): every variant (``--models``, names of :data:`bench.common.VARIANTS`) and seed
is trained at each ``--train_at`` temperature by ``train.py`` in a fresh one-thread process for
``--max_cpu_time`` CPU seconds (``ridge``: one closed-form fit) and selected on that temperature's
validation configurations; the selected weights are then applied by
:func:`glassgnn.prediction.predict_files` (what ``predict.py`` runs) to the test configurations of
every temperature at the same time index. The figure is the Pearson r over their type-A particles.
Writes ``WORK/transfer_<variant>.csv`` (rows: trained at, tested at; mean, std over seeds, values),
``WORK/transfer.md`` (a matrix per variant, mean ± std), ``WORK/transfer.png`` and
``WORK/transfer.json``.

**Fine-tuning** (``--fine_tune_at T --n_configs n``): for each variant and seed, the run trained at
``--fine_tune_from`` (default 0.64; trained first if missing) is applied to T unchanged
(zero-shot), and compared with runs on the first n training configurations of T (validation and
test: T's own), all with the same budget: from scratch, ``--init_from`` the source run, and
``--init_from`` with ``--freeze`` (a closed-form model: scratch only). Writes
``WORK/fine_tune_T<T>_n<n>.csv``, ``.md`` and ``.json``.

Finished runs are kept: rerunning continues a killed study (an interrupted run resumes), and
more models, seeds or temperatures can be added later. A work folder holds one time index, split
and budget (``WORK/settings.json``; another is refused). ``--report`` trains nothing and
tabulates the finished runs.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.common import (  # noqa: E402
    KA_CUTOFF,
    VARIANTS,
    Variant,
    conf_at_cutoff,
    construct,
    finite_stats,
    ka_args,
    mean_std,
    train_run,
)
from glassgnn.fileio import write_json, write_text  # noqa: E402
from glassgnn.prediction import graph_params, predict_files  # noqa: E402
from glassgnn.run import load_run  # noqa: E402

DATASETS = [REPO / "datasets" / f"ka_T{t}" for t in ("0.56", "0.64", "0.80")]
SPLIT = (12, 2, 2)  # train, val, test configurations, in file order
MODELS = ("ridge", "bapst", "se3")
TYPE_A = "type=0"  # bapst files: type 0 is A, the particles the propensity studies score
FINE_TUNE_MODES = ("zero_shot", "scratch", "fine_tune", "fine_tune_frozen")
QUICK = {"models": ["ridge", "glassmlp"], "seeds": [0], "max_cpu_time": 20.0}


@dataclass(frozen=True)
class Temperature:
    """One temperature's configurations.

    Attributes:
        label: the temperature as its folder names it (``"0.64"`` for ``ka_T0.64``), in
            units of epsilon_AA / k_B.
        train, val, test: its configuration files (bapst pickles), split in file order.
    """

    label: str
    train: tuple[Path, ...]
    val: tuple[Path, ...]
    test: tuple[Path, ...]


def temperatures(folders: list[Path], split: tuple[int, int, int]) -> dict[str, Temperature]:
    """Each folder's :class:`Temperature`, keyed by label; a folder without enough
    ``config_*.pickle`` files, or two with one label, stops the study with a message."""
    out: dict[str, Temperature] = {}
    for folder in folders:
        match = re.search(r"T(\d+(?:\.\d+)?)$", folder.name)
        label = match.group(1) if match else folder.name
        files = sorted(folder.glob("config_*.pickle"))
        n_train, n_val, _ = split
        if len(files) < sum(split):
            raise SystemExit(
                f"{folder}: {len(files)} config_*.pickle files, the split {split} needs {sum(split)}"
            )
        if label in out:
            raise SystemExit(f"{folder}: temperature {label} is already given")
        out[label] = Temperature(
            label,
            tuple(files[:n_train]),
            tuple(files[n_train : n_train + n_val]),
            tuple(files[n_train + n_val : sum(split)]),
        )
    return out


@dataclass(frozen=True)
class Study:
    """What every run and evaluation of one invocation shares.

    Attributes:
        work: folder of the data sets (``data/``), runs (``runs/``) and tables.
        seeds: training seeds of every run.
        budget_s: CPU seconds per run (one thread).
        time_index: propensity time index of training and evaluation (-1: the last, tau_alpha).
        conf: train.conf.yaml the runs read (the models' cutoffs at the graphs').
        report: train nothing, use the finished runs only.
    """

    work: Path
    seeds: tuple[int, ...]
    budget_s: float
    time_index: int
    conf: Path
    report: bool

    def dataset(self, name: str, train: Sequence[Path], temp: Temperature) -> Path:
        """``work/data/name``: ``train`` with ``temp``'s validation and test configurations, with
        descriptors; built once (construct_graph.py writes under a temporary name, so a present
        manifest means a complete data set)."""
        out = self.work / "data" / name
        if not (out / "manifest.json").is_file():
            args = ka_args(train, temp.val, temp.test, self.time_index)
            construct([*args, "--descriptors", "--output_dir", str(out)])
        return out

    def trained_at(self, name: str, label: str, seed: int) -> Path:
        """Run directory of variant ``name`` trained on temperature ``label``'s full training split."""
        return self.work / "runs" / name / f"T{label}" / f"seed_{seed}"

    def run(
        self, variant: Variant, data: Path, seed: int, out: Path, extra: Sequence[str] = ()
    ) -> Path | None:
        """``out`` after training ``variant`` there (:func:`bench.common.train_run`: a finished run
        is kept, an interrupted one resumed), or None when it is unfinished under ``report``."""
        if not self.report:
            train_run(variant, data, seed, self.budget_s, out, extra, self.conf)
        return out if (out / "results.json").is_file() else None

    def pearson_at(self, run_dir: Path, temps: Sequence[Temperature]) -> dict[str, float]:
        """Pearson r over the type-A particles of each temperature's test configurations, of the
        run's validation-selected weights at the study's time index: ``{label: r}``.

        The run is applied by :func:`glassgnn.prediction.predict_files` (graphs and descriptors
        rebuilt with the run's parameters). Values are kept in ``run_dir/transfer_eval.json``,
        keyed by time index and files, so a rerun evaluates only what is new.
        """
        cache_file = run_dir / "transfer_eval.json"
        cache = json.loads(cache_file.read_text()) if cache_file.is_file() else {}
        keys = {t.label: f"{self.time_index}|" + ",".join(map(str, t.test)) for t in temps}
        missing = [t for t in temps if keys[t.label] not in cache]
        if missing:
            loaded = load_run(run_dir)
            params = graph_params(loaded, "bapst", self.time_index)
            for temp in missing:
                metrics = predict_files(loaded, list(temp.test), params, progress=False).metrics
                (per_target,) = metrics.values()  # one target: the propensity at time_index
                cache[keys[temp.label]] = per_target[TYPE_A]["pearson"]
            write_json(cache_file, cache)
        return {t.label: cache[keys[t.label]] for t in temps}


def matrix_study(
    study: Study, names: Sequence[str], temps: dict[str, Temperature], train_at: Sequence[str]
) -> dict:
    """Train each variant and seed at each of ``train_at``, evaluate at every temperature.

    Returns:
        ``{variant: {trained_at: {tested_at: [r per seed]}}}``.
    """
    out: dict = {}
    for name in names:
        for at in train_at:
            data = study.dataset(f"T{at}", temps[at].train, temps[at])
            for seed in study.seeds:
                done = study.run(VARIANTS[name], data, seed, study.trained_at(name, at, seed))
                if done is None:
                    continue
                for tested, r in study.pearson_at(done, list(temps.values())).items():
                    out.setdefault(name, {}).setdefault(at, {}).setdefault(tested, []).append(r)
                print(f"{name} trained at {at}, seed {seed}: {out[name][at]}", flush=True)
    return out


def fine_tune_study(
    study: Study, names: Sequence[str], source: Temperature, target: Temperature, n: int
) -> dict:
    """At ``target``: each variant's run trained at ``source`` unchanged (zero-shot), and runs on
    ``target``'s first ``n`` training configurations from scratch, fine-tuned from the source run
    (``--init_from``) and fine-tuned with ``--freeze`` (closed-form variants: scratch only).

    Returns:
        ``{variant: {mode: [r per seed]}}`` on ``target``'s test configurations (modes:
        :data:`FINE_TUNE_MODES`).
    """
    full = study.dataset(f"T{source.label}", source.train, source)
    few = study.dataset(f"T{target.label}_n{n}", target.train[:n], target)
    out: dict = {}
    for name in names:
        variant = VARIANTS[name]
        root = study.work / "runs" / name / f"T{target.label}_n{n}_from{source.label}"
        for seed in study.seeds:
            origin = study.run(variant, full, seed, study.trained_at(name, source.label, seed))
            runs = {
                "zero_shot": origin,
                "scratch": study.run(variant, few, seed, root / "scratch" / f"seed_{seed}"),
            }
            if origin is not None and not variant.closed_form:
                for mode, freeze in (("fine_tune", ()), ("fine_tune_frozen", ("--freeze",))):
                    flags = ("--init_from", str(origin), *freeze)
                    runs[mode] = study.run(variant, few, seed, root / mode / f"seed_{seed}", flags)
            for mode, run_dir in runs.items():
                if run_dir is not None:
                    r = study.pearson_at(run_dir, [target])[target.label]
                    out.setdefault(name, {}).setdefault(mode, []).append(r)
            print(f"{name} at {target.label}, seed {seed}: {out.get(name)}", flush=True)
    return out


def _csv_row(keys: Sequence[str], values: list[float]) -> str:
    """``keys..., mean, std, n_seeds, values`` (the values space-separated)."""
    mean, std, _ = finite_stats(values)
    return ",".join(
        [*keys, f"{mean:.4f}", f"{std:.4f}", str(len(values)), " ".join(f"{v:.4f}" for v in values)]
    )


def write_matrix(results: dict, labels: Sequence[str], work: Path, note: str) -> str:
    """``work/transfer_<variant>.csv`` (a row per trained-at, tested-at pair), ``transfer.md`` (a
    matrix per variant, mean ± std over seeds), ``transfer.json`` and ``transfer.png``; returns
    the markdown."""
    md = [f"# Pearson r over type-A test particles, trained at (rows) / tested at (columns); {note}", ""]
    for name, rows in results.items():
        lines = ["trained_at,tested_at,mean,std,n_seeds,values"]
        lines += [
            _csv_row((at, tested), values) for at, cells in rows.items() for tested, values in cells.items()
        ]
        write_text(work / f"transfer_{name}.csv", "\n".join(lines) + "\n")
        seeds = max(len(v) for cells in rows.values() for v in cells.values())
        md += [
            f"## {name} ({seeds} seed{'s' * (seeds > 1)})",
            "",
            "| trained at | " + " | ".join(labels) + " |",
        ]
        md.append("|---|" + "---|" * len(labels))
        md += [
            f"| {at} | " + " | ".join(mean_std(cells.get(t, [])) for t in labels) + " |"
            for at, cells in rows.items()
        ]
        md.append("")
    text = "\n".join(md)
    write_text(work / "transfer.md", text)
    write_json(work / "transfer.json", results)
    if results:
        plot_matrix(results, work / "transfer.png")
    return text


def write_fine_tune(results: dict, work: Path, stem: str, title: str) -> str:
    """``work/stem.csv`` (a row per variant and mode), ``.md`` (a row per variant, a column per
    mode, mean ± std over seeds) and ``.json``; returns the markdown."""
    lines = ["variant,mode,mean,std,n_seeds,values"]
    lines += [
        _csv_row((name, mode), values) for name, modes in results.items() for mode, values in modes.items()
    ]
    md = [
        f"# {title}",
        "",
        "| variant | " + " | ".join(FINE_TUNE_MODES) + " |",
        "|---|" + "---|" * len(FINE_TUNE_MODES),
    ]
    md += [
        f"| {name} | " + " | ".join(mean_std(modes.get(m, [])) for m in FINE_TUNE_MODES) + " |"
        for name, modes in results.items()
    ]
    text = "\n".join(md) + "\n"
    write_text(work / f"{stem}.csv", "\n".join(lines) + "\n")  # not with_suffix: stems hold dots (T0.56)
    write_text(work / f"{stem}.md", text)
    write_json(work / f"{stem}.json", results)
    return text


def plot_matrix(results: dict, path: Path) -> None:
    """One panel per variant: Pearson r against the tested temperature, a line per training
    temperature (mean ± std over seeds; the in-temperature point ringed). One y axis for all
    panels, so that models compare at a glance."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(4.5 * len(results), 3.6), squeeze=False, sharey=True)
    for ax, (name, rows) in zip(axes[0], results.items(), strict=True):
        for k, (at, cells) in enumerate(rows.items()):
            tested = sorted(cells, key=float)
            stats = np.array([finite_stats(cells[t])[:2] for t in tested])
            x = [float(t) for t in tested]
            ax.errorbar(
                x,
                stats[:, 0],
                yerr=np.nan_to_num(stats[:, 1]),
                marker="o",
                capsize=3,
                label=f"trained at {at}",
            )
            if at in cells:
                ax.plot(float(at), finite_stats(cells[at])[0], "o", ms=12, mfc="none", color=f"C{k}")
        ax.set_xlabel("tested at T")
        ax.set_title(name)
        ax.legend(fontsize=8)
    axes[0, 0].set_ylabel("Pearson r (type A, test)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--datasets", nargs="+", type=Path, default=DATASETS, help="one folder per temperature"
    )
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(VARIANTS), help="variants")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--train_at", nargs="+", default=None, help="temperature labels (default: all)")
    parser.add_argument("--max_cpu_time", type=float, default=900.0, help="CPU seconds per run (one thread)")
    parser.add_argument("--time_index", type=int, default=-1, help="propensity time index (-1: tau_alpha)")
    parser.add_argument("--split", nargs=3, type=int, default=list(SPLIT), metavar=("TRAIN", "VAL", "TEST"))
    parser.add_argument("--fine_tune_at", default=None, help="fine-tuning study at this temperature label")
    parser.add_argument("--fine_tune_from", default="0.64", help="the runs fine-tuned: trained at this label")
    parser.add_argument("--n_configs", type=int, default=2, help="fine-tuning: training configurations")
    parser.add_argument("--model_config_path", type=Path, default=REPO / "train.conf.yaml")
    parser.add_argument(
        "--work", type=Path, default=REPO / "outputs" / "bench_transfer", help="runs and data"
    )
    parser.add_argument("--quick", action="store_true", help=f"smoke run: defaults {QUICK}")
    parser.add_argument("--report", action="store_true", help="train nothing: tabulate the finished runs")
    return parser


def main(argv: list[str] | None = None) -> dict:
    parser = build_parser()
    if parser.parse_args(argv).quick:  # the smoke run's settings, under any flag given
        parser.set_defaults(**QUICK)
    args = parser.parse_args(argv)
    temps = temperatures(args.datasets, tuple(args.split))
    train_at = args.train_at or list(temps)
    wanted = [*train_at, *([args.fine_tune_at, args.fine_tune_from] if args.fine_tune_at else [])]
    if any(t not in temps for t in wanted):
        parser.error(
            f"temperature(s) {[t for t in wanted if t not in temps]} not among the datasets' {list(temps)}"
        )
    if args.fine_tune_at and not 0 < args.n_configs <= args.split[0]:
        parser.error(f"--n_configs must be between 1 and the {args.split[0]} training configurations")
    # finished runs are reused, so one work folder holds one setting of what they depend on
    settings = {"time_index": args.time_index, "split": args.split, "max_cpu_time": args.max_cpu_time}
    recorded = args.work / "settings.json"
    if recorded.is_file() and json.loads(recorded.read_text()) != settings:
        parser.error(
            f"{args.work} holds runs made with {recorded.read_text().strip()}; choose another --work"
        )
    args.work.mkdir(parents=True, exist_ok=True)
    write_json(recorded, settings)
    torch.set_num_threads(1)  # the evaluations in this process, like the runs, on one thread
    start = time.perf_counter()
    conf = conf_at_cutoff(args.model_config_path, args.work / "train.conf.yaml", KA_CUTOFF)
    study = Study(args.work, tuple(args.seeds), args.max_cpu_time, args.time_index, conf, args.report)
    note = f"time index {args.time_index}, {args.max_cpu_time:g} CPU s per run, split {args.split}"
    if args.fine_tune_at:
        source, target = temps[args.fine_tune_from], temps[args.fine_tune_at]
        results = fine_tune_study(study, args.models, source, target, args.n_configs)
        title = (
            f"At T = {target.label}, {args.n_configs} training configurations, runs trained at "
            f"{source.label}: Pearson r over type-A test particles, mean ± std over seeds; {note}"
        )
        text = write_fine_tune(results, args.work, f"fine_tune_T{target.label}_n{args.n_configs}", title)
    else:
        results = matrix_study(study, args.models, temps, train_at)
        text = write_matrix(results, list(temps), args.work, note)
    print(text)
    print(f"wrote to {args.work} ({time.perf_counter() - start:.0f} s)")
    return results


if __name__ == "__main__":
    main()
