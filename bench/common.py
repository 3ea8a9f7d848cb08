"""What the accuracy benches share: the variants they train, graphs of the Kob-Andersen sets built
with one setting, and ``train.py`` runs in fresh one-thread processes under a CPU budget.

Imported as ``bench.common`` (the scripts put the repository on ``sys.path`` first).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from glassgnn import outputs
from glassgnn.config import load_resolved
from models.models import model_config_keys, model_names

REPO = Path(__file__).resolve().parents[1]
KA_CUTOFF = 2.0  # sigma: the Kob-Andersen graphs of both benches
# Kob-Andersen propensities: the DeepMind layout, one time index, cutoff 2.0 sigma (descriptors
# are added by build_dataset)
KA_GRAPH_ARGS = ("--format", "bapst", "--cutoff", str(KA_CUTOFF))
ONE_THREAD = {**os.environ, "OMP_NUM_THREADS": "1"}


@dataclass(frozen=True)
class Variant:
    """A model and the train.py flags that make it (``train.conf.yaml`` supplies the rest)."""

    name: str
    model: str
    flags: tuple[str, ...] = ()

    @property
    def reads_descriptors(self) -> bool:
        return self.model in ("ridge", "glassmlp") or "--recipe" in self.flags

    @property
    def closed_form(self) -> bool:
        """Fitted in closed form (no epochs, no budget, no fine-tuning)."""
        return self.model == "ridge"


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
        # the network trained on the ranking within each snapshot (glassgnn/losses.py)
        Variant("schnet+desc+centred", "schnet", (*DESC, "--loss", "centred_mse")),
        Variant("symgnn", "symgnn"),
        Variant("symgnn+desc", "symgnn", DESC),
        Variant("se3", "se3"),
        Variant("se3+desc", "se3", DESC),
    ]
}


def construct(args: Sequence[str]) -> float:
    """Run construct_graph.py in a fresh one-thread process; returns its CPU seconds."""
    start = os.times()
    subprocess.run(
        [sys.executable, str(REPO / "construct_graph.py"), *args],
        check=True,
        env=ONE_THREAD,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    end = os.times()
    return (end.children_user - start.children_user) + (end.children_system - start.children_system)


def ka_args(train: Sequence[Path], val: Sequence[Path], test: Sequence[Path], time_index: int) -> list[str]:
    """construct_graph.py arguments of a Kob-Andersen data set (bapst pickles) at one time index
    (negative: counted from the last, e.g. -1 = tau_alpha), with the benches' graph settings."""
    args = ["--train", *map(str, train), "--val", *map(str, val)]
    if test:
        args += ["--test", *map(str, test)]
    return [*args, *KA_GRAPH_ARGS, "--time_index", str(time_index)]


def conf_at_cutoff(source: Path, dest: Path, cutoff: float) -> Path:
    """Write ``source`` (a train.conf.yaml) to ``dest`` with the ``cutoff`` hyperparameter of every
    model that has one (schnet, mpnn, mgcn, se3: their radial bases end there) set to the graphs'
    ``cutoff``; returns ``dest``."""
    data = yaml.safe_load(source.read_text())
    for name in model_names():
        if "cutoff" in model_config_keys(name):
            data[name] = {**(data.get(name) or {}), "cutoff": cutoff}
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(yaml.safe_dump(data, sort_keys=False))
    return dest


def train_run(
    variant: Variant,
    dataset_dir: Path,
    seed: int,
    budget_s: float,
    out: Path,
    extra: Sequence[str] = (),
    conf: Path | None = None,
) -> None:
    """Train ``variant`` into ``out`` with ``train.py`` in a fresh one-thread process, for
    ``budget_s`` CPU seconds (epochs and patience unbounded); its output goes to ``out.log``.

    A finished run in ``out`` is kept, or continued when it had a smaller CPU budget (train.py
    ``--resume`` with the larger ``--max_cpu_time``: same seed stream, so the curve is the one a
    run started with the larger budget gives); an interrupted one is resumed; anything else
    starts again.

    Args:
        extra: more train.py flags (e.g. ``--init_from RUN``).
        conf: train.conf.yaml to read (default: the repository's).
    """
    if (out / outputs.RESULTS).exists() and (variant.closed_form or run_budget(out) >= budget_s):
        return
    again = "--resume" if (out / "last.pt").exists() else "--overwrite"
    cmd = [
        sys.executable,
        str(REPO / "train.py"),
        "--model_name",
        variant.model,
        "--dataset_dir",
        str(dataset_dir),
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
        *(["--model_config_path", str(conf)] if conf is not None else []),
        *variant.flags,
        *extra,
    ]
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.with_suffix(".log").open("w") as handle:
        subprocess.run(cmd, check=True, env=ONE_THREAD, stdout=handle, stderr=subprocess.STDOUT, cwd=REPO)


def run_budget(run_dir: Path) -> float:
    """The CPU budget (s) a run was trained with, from its ``config.yaml`` (0 = unlimited)."""
    budget = load_resolved(run_dir / outputs.CONFIG).max_cpu_time
    return budget if budget > 0 else float("inf")


def metrics_rows(run_dir: Path) -> list[dict[str, str]]:
    """The rows of a run's metrics.csv, as strings keyed by column."""
    return outputs.read_metrics_csv(run_dir / outputs.METRICS)


def finite_stats(values: Sequence[float]) -> tuple[float, float, int]:
    """Mean and sample standard deviation of the finite values, and how many there are (NaN for
    a mean of none or a deviation of fewer than two)."""
    finite = np.asarray(values, dtype=float)
    finite = finite[np.isfinite(finite)]
    mean = float(finite.mean()) if len(finite) else float("nan")
    return mean, float(finite.std(ddof=1)) if len(finite) > 1 else float("nan"), len(finite)


def mean_std(values: Sequence[float]) -> str:
    """``mean ± sample std`` of the finite values (one value alone; "—" for none)."""
    mean, std, n = finite_stats(values)
    if n == 0:
        return "—"
    return f"{mean:.3f}" if n == 1 else f"{mean:.3f} ± {std:.3f}"
