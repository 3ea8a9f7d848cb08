"""The cases of ``scripts/bad_input_sweep.py``: the inputs it writes and the commands it runs.

:func:`setup` writes a small synthetic dataset (type 2 outside the metrics mask), a
schnet run trained for one epoch, and broken or hostile copies of files and runs;
:data:`CASES` lists one command per kind of bad input with the text its stderr must hold.
"""

from __future__ import annotations

import os
import pickle
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
BOX, CUTOFF, N_ATOMS = 6.0, 1.6, 48
THIN_CELL = [[15.0, 0.0, 0.0], [15.0, 1e-7, 0.0], [0.0, 0.0, 15.0]]


@dataclass
class Case:
    """One command on bad input and the text its stderr must show."""

    name: str
    argv: list[str]  # script then arguments; {root}, {out} are filled in
    expect: str  # text on stderr
    warn: bool = False  # success with a warning instead of an error
    timeout: float = 120.0


class Payload:
    """Unpickling it creates the file ``marker``: what a hostile ``__reduce__`` could do."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


def config(seed: int, labels=(1, 2)) -> dict:
    rng = np.random.default_rng(seed)
    positions = rng.uniform(0, BOX, (N_ATOMS, 3))
    types = np.asarray(labels)[(rng.uniform(size=N_ATOMS) < 0.35).astype(int)]
    return {
        "positions": positions,
        "types": types,
        "box": np.full(3, BOX),
        "targets": rng.normal(size=N_ATOMS),
    }


def write_npz(path: Path, seed: int = 0, **changes) -> Path:
    data = {**config(seed), **changes}
    np.savez(path, **{k: v for k, v in data.items() if v is not None})
    return path


def write_symgnn(path: Path, seed: int = 0, **changes) -> Path:
    data = config(seed)
    data = {
        "positions": data["positions"] - BOX / 2,
        "types": data["types"],
        "box": data["box"],
        "trajectory_start_velocities": data["targets"],
        **changes,
    }
    path.write_bytes(pickle.dumps(data))
    return path


def script_env() -> dict[str, str]:
    """Environment of every command: one thread (a shared machine), no Python warnings."""
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}


def run_script(argv: list[str], timeout: float = 600) -> subprocess.CompletedProcess:
    """Run ``python ARGV`` from the repository root; its status and output."""
    return subprocess.run(
        [sys.executable, *argv], cwd=REPO, env=script_env(), capture_output=True, text=True, timeout=timeout
    )


def setup(root: Path) -> None:
    """Inputs, a dataset (type 2 outside the mask), a trained run and damaged copies."""
    inputs = root / "in"
    inputs.mkdir()
    files = [str(write_npz(inputs / f"c{i}.npz", i)) for i in range(4)]
    done = run_script(
        ["construct_graph.py", "--train", *files[:2], "--val", files[2], "--test", files[3], "--cutoff",
         str(CUTOFF), "--mask_types", "1", "--output_dir", str(root / "ds")]
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    done = run_script(
        ["train.py", f"--dataset_dir={root / 'ds'}", "--model_name=schnet", f"--output_dir={root / 'run'}",
         "--max_epoch=1", "--no-save_results", "--model_config_path", str(REPO / "train.conf.yaml")]
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    write_symgnn(inputs / "ok.pickle")
    (inputs / "empty.pickle").write_bytes(b"")
    data = (inputs / "ok.pickle").read_bytes()
    (inputs / "truncated.pickle").write_bytes(data[: len(data) // 2])
    hostile = config(0) | {"x": Payload(root / "PWNED")}
    (inputs / "hostile.pickle").write_bytes(pickle.dumps(hostile))
    write_symgnn(inputs / "flat.pickle", positions=np.zeros((N_ATOMS, 2)))
    write_npz(inputs / "flat.npz", positions=np.zeros((N_ATOMS, 2)))
    thin = np.asarray(THIN_CELL)
    write_npz(
        inputs / "thin.npz", positions=np.random.default_rng(0).uniform(0, 1, (N_ATOMS, 3)) @ thin, box=thin
    )
    write_npz(inputs / "nan.npz", positions=np.full((N_ATOMS, 3), np.nan))
    same = config(0)["positions"]
    same[9] = same[4]
    write_npz(inputs / "same.npz", positions=same)
    far = config(0)["positions"]
    far[3, 0] = 1e18
    write_npz(inputs / "far.npz", positions=far)
    write_npz(inputs / "short_types.npz", types=np.ones(N_ATOMS - 1))
    write_npz(inputs / "left.npz", box=np.diag([BOX, BOX, -BOX]))
    (inputs / "data.txt").write_text("1 2 3\n")
    (inputs / "garbage.dump").write_text("ITEM: TIMESTEP\nnot a number\n")
    write_npz(inputs / "unseen.npz", 7, types=np.where(config(7)["types"] == 2, 3, 1))
    write_npz(inputs / "no_target.npz", 8, targets=None)
    (root / "dir_input").mkdir()
    (root / "nan.yaml").write_text("global:\n  learning_rate: .nan\n")
    (root / "neg.yaml").write_text("schnet:\n  hidden_dim: -4\n")
    (root / "typo.yaml").write_text("global:\n  learnig_rate: 0.1\n")
    (root / "bad.yaml").write_text("global: [unclosed\n")
    for name, damage in (("ds_empty_train", "train"), ("ds_empty_val", "val"), ("ds_no_val", "val_missing"),
                         ("ds_truncated", "train_truncated")):  # fmt: skip
        copy = root / name
        shutil.copytree(root / "ds", copy)
        split = damage.split("_")[0]
        path = copy / f"{split}.bin"
        if damage.endswith("missing"):
            path.unlink()
        elif damage.endswith("truncated"):
            path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
        else:
            path.write_bytes(b"")
    for name in ("run_truncated", "run_hostile", "run_unfinished"):
        shutil.copytree(root / "run", root / name)
    best = root / "run_truncated" / "best.pt"
    best.write_bytes(best.read_bytes()[:1000])
    import torch  # only the setup needs torch: it writes a hostile checkpoint

    state = torch.load(root / "run" / "best.pt", weights_only=False)  # trained just above: trusted
    torch.save({**state, "x": Payload(root / "PWNED")}, root / "run_hostile" / "best.pt")
    unfinished = root / "run_unfinished"
    (unfinished / "results.json").unlink()
    last = unfinished / "last.pt"
    last.write_bytes(last.read_bytes()[:1000])
    (root / "existing.npz").write_bytes(b"keep me")


def _cg(*args: str) -> list[str]:
    return ["construct_graph.py", *args, "--output_dir", "{out}"]


def train_argv(*args: str) -> list[str]:
    conf = str(REPO / "train.conf.yaml")
    return ["train.py", "--model_name=schnet", "--max_epoch=1", f"--model_config_path={conf}", *args]


def _predict(run: str, *args: str) -> list[str]:
    return ["predict.py", "--run_dir", f"{{root}}/{run}", "--output", "{out}.npz", "--no_progress", *args]


def _explain(run: str, *args: str) -> list[str]:
    return ["explain.py", "--run_dir", f"{{root}}/{run}", "--output_dir", "{out}", "--threads", "1", *args]


C = "--cutoff"
CASES = [
    Case("cg: input glob matches nothing", _cg("--train", "{root}/in/nope*.npz", C, "2"), "no input matched"),
    Case("cg: a directory as input", _cg("--train", "{root}/dir_input", C, "2"), "is a directory"),
    Case("cg: empty pickle", _cg("--train", "{root}/in/empty.pickle", C, "2"), "empty.pickle: empty file"),
    Case(
        "cg: truncated pickle", _cg("--train", "{root}/in/truncated.pickle", C, "2"), "truncated or corrupt"
    ),
    Case("cg: hostile pickle", _cg("--train", "{root}/in/hostile.pickle", C, "2"), "refused to load io.open"),
    Case("cg: positions (N, 2) pickle", _cg("--train", "{root}/in/flat.pickle", C, "2"), "shape (N, 3)"),
    Case("cg: positions (N, 2) npz", _cg("--train", "{root}/in/flat.npz", C, "2"), "flat.npz: positions"),
    Case(
        "cg: --format lammps on a pickle",
        _cg("--train", "{root}/in/ok.pickle", "--format", "lammps", C, "2"),
        "ok.pickle: not a text file",
    ),
    Case(
        "cg: near-degenerate triclinic cell",
        _cg("--train", "{root}/in/thin.npz", C, "4"),
        "perpendicular widths [1.0e-07, 1.0e-07",
        timeout=60,
    ),
    Case("cg: NaN positions", _cg("--train", "{root}/in/nan.npz", C, "2"), "nan.npz: positions contain NaN"),
    Case(
        "cg: two atoms at one position", _cg("--train", "{root}/in/same.npz", C, "2"), "atoms 4 and 9 are at"
    ),
    Case("cg: atom at 1e18", _cg("--train", "{root}/in/far.npz", C, "2"), "far.npz: atom 3 at [1e+18"),
    Case("cg: negative cutoff", _cg("--train", "{root}/in/c0.npz", C, "-1"), "cutoff must be a positive"),
    Case("cg: no cutoff", _cg("--train", "{root}/in/c0.npz"), "give a cutoff"),
    Case("cg: --knn 0", _cg("--train", "{root}/in/c0.npz", "--knn", "0"), "knn must be at least 1"),
    Case("cg: unknown --target", _cg("--train", "{root}/in/c0.npz", C, "2", "--target", "nope"), "no field"),
    Case("cg: types of wrong length", _cg("--train", "{root}/in/short_types.npz", C, "2"), "short_types.npz"),
    Case("cg: left-handed cell", _cg("--train", "{root}/in/left.npz", C, "2"), "left.npz"),
    Case("cg: unknown extension", _cg("--train", "{root}/in/data.txt", C, "2"), "data.txt: unknown format"),
    Case("cg: garbage LAMMPS dump", _cg("--train", "{root}/in/garbage.dump", C, "2"), "garbage.dump"),
    Case(
        "cg: --val_fraction 1",
        _cg("--train", "{root}/in/c0.npz", "{root}/in/c1.npz", C, "2", "--val_fraction", "1"),
        "val_fraction",
    ),
    Case(
        "cg: output exists, no --overwrite",
        ["construct_graph.py", "--train", "{root}/in/c0.npz", C, "2", "--output_dir", "{root}/ds"],
        "already exists",
    ),
    Case(
        "cg: val type unseen in training (warning)",
        _cg("--train", "{root}/in/c0.npz", "--val", "{root}/in/unseen.npz", C, "2"),
        "type '3' appears in val",
        warn=True,
    ),
    Case(
        "train: learning_rate .nan",
        train_argv("--dataset_dir={root}/ds", "--output_dir={out}", "--model_config_path={root}/nan.yaml"),
        "learning_rate must be a finite number",
    ),
    Case(
        "train: hidden_dim -4",
        train_argv("--dataset_dir={root}/ds", "--output_dir={out}", "--model_config_path={root}/neg.yaml"),
        "cannot be built with",
    ),
    Case(
        "train: empty train split",
        train_argv("--dataset_dir={root}/ds_empty_train", "--output_dir={out}"),
        "train.bin: holds no graph",
    ),
    Case(
        "train: empty val split",
        train_argv("--dataset_dir={root}/ds_empty_val", "--output_dir={out}"),
        "val.bin: holds no graph",
    ),
    Case(
        "train: no val split file",
        train_argv("--dataset_dir={root}/ds_no_val", "--output_dir={out}"),
        "val.bin is missing",
    ),
    Case(
        "train: truncated train.bin",
        train_argv("--dataset_dir={root}/ds_truncated", "--output_dir={out}"),
        "train.bin: truncated or corrupt graph file",
    ),
    Case(
        "train: missing dataset",
        train_argv("--dataset_dir={root}/nope", "--output_dir={out}"),
        "not a dataset directory",
    ),
    Case(
        "train: unknown model",
        ["train.py", "--model_name=nope", "--dataset_dir={root}/ds", "--output_dir={out}"],
        "unknown model 'nope'",
    ),
    Case(
        "train: unknown config key",
        train_argv("--dataset_dir={root}/ds", "--output_dir={out}", "--model_config_path={root}/typo.yaml"),
        "unknown key 'learnig_rate'",
    ),
    Case(
        "train: invalid YAML",
        train_argv("--dataset_dir={root}/ds", "--output_dir={out}", "--model_config_path={root}/bad.yaml"),
        "not valid YAML",
    ),
    Case(
        "train: --max_epoch 0",
        train_argv("--dataset_dir={root}/ds", "--output_dir={out}", "--max_epoch=0"),
        "max_epoch must be >= 1",
    ),
    Case(
        "train: --batch_size 0",
        train_argv("--dataset_dir={root}/ds", "--output_dir={out}", "--batch_size=0"),
        "batch_size must be >= 1",
    ),
    Case(
        "train: negative learning rate",
        train_argv("--dataset_dir={root}/ds", "--output_dir={out}", "--learning_rate=-1"),
        "learning_rate must be >= 0",
    ),
    Case(
        "train: unknown node field",
        train_argv("--dataset_dir={root}/ds", "--output_dir={out}", "--node_fields", "nope"),
        "node_fields",
    ),
    Case(
        "train: finished run, no --overwrite",
        train_argv("--dataset_dir={root}/ds", "--output_dir={root}/run"),
        "holds a finished run",
    ),
    Case(
        "train: --resume a finished run",
        train_argv("--resume", "--output_dir={root}/run"),
        "nothing to resume",
    ),
    Case(
        "train: --resume nothing", train_argv("--resume", "--output_dir={root}/nope"), "no such configuration"
    ),
    Case(
        "train: --resume, truncated last.pt",
        train_argv("--resume", "--output_dir={root}/run_unfinished"),
        "last.pt: truncated or corrupt checkpoint",
    ),
    Case(
        "predict: truncated best.pt",
        _predict("run_truncated", "--input", "{root}/in/c0.npz"),
        "best.pt: truncated or corrupt checkpoint",
    ),
    Case(
        "predict: hostile best.pt",
        _predict("run_hostile", "--input", "{root}/in/c0.npz"),
        "best.pt: refused to load",
    ),
    Case(
        "predict: hostile input pickle",
        _predict("run", "--input", "{root}/in/hostile.pickle"),
        "refused to load io.open",
    ),
    Case(
        "predict: not a run directory", _predict("ds", "--input", "{root}/in/c0.npz"), "not a run directory"
    ),
    Case(
        "predict: input matches nothing", _predict("run", "--input", "{root}/in/nope.npz"), "no input matched"
    ),
    Case(
        "predict: output exists",
        [
            "predict.py",
            "--run_dir",
            "{root}/run",
            "--input",
            "{root}/in/c0.npz",
            "--output",
            "{root}/existing.npz",
        ],
        "already exist",
    ),
    Case(
        "predict: output not .npz",
        ["predict.py", "--run_dir", "{root}/run", "--input", "{root}/in/c0.npz", "--output", "{out}.csv"],
        "expected a .npz",
    ),
    Case(
        "predict: unknown type label",
        _predict("run", "--input", "{root}/in/unseen.npz"),
        "not in the dataset's type map",
    ),
    Case(
        "predict: input without the target (warning)",
        _predict("run", "--input", "{root}/in/no_target.npz"),
        "no metrics: the run learned",
        warn=True,
    ),
    Case("explain: --epochs 0", _explain("run", "--epochs", "0"), "--epochs: must be at least 1"),
    Case("explain: --epochs -3", _explain("run", "--epochs", "-3"), "--epochs: must be at least 1"),
    Case("explain: --top_k 0", _explain("run", "--top_k", "0"), "--top_k: must be at least 1"),
    Case("explain: hostile best.pt", _explain("run_hostile"), "best.pt: refused to load"),
    Case("explain: truncated best.pt", _explain("run_truncated"), "best.pt: truncated or corrupt"),
    Case("explain: --graph_index 99", _explain("run", "--graph_index", "99"), "--graph_index 99"),
    Case("explain: --nodes out of range", _explain("run", "--nodes", "99999"), "out of range"),
    Case(
        "explain: output exists",
        ["explain.py", "--run_dir", "{root}/run", "--output_dir", "{root}/ds"],
        "already exists",
    ),
    Case(
        "explain: particle outside the mask (warning)",
        _explain("run", "--nodes", "{outside}", "--epochs", "1", "--num_hops", "1"),
        "outside the metrics mask",
        warn=True,
    ),
]
