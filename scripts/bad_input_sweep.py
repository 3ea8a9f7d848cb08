"""Try the four CLIs on bad and hostile input, as a new user would, and count what went well.

    python scripts/bad_input_sweep.py [--keep DIR] [--only SUBSTRING]

Each case runs one command (construct_graph.py, train.py, predict.py, explain.py) in a
subprocess on a small synthetic dataset and a model trained here for one epoch. A case is

* clean when an error case exits with status 1-2 (or 130/143) and one stderr line
  ``<script>: error: ...`` holding the expected text, without a traceback, or when a
  warning case exits 0 with the expected warning on stderr;
* nothing lost when every file present before is unchanged, an error case left no
  output, no hidden ``.*.tmp``/``.*.trash``/``.*.old`` folder is left, and no hostile
  payload ran.

Prints one row per case and the counts; exits 1 if any case is not clean or lost something.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import pickle
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
BOX, CUTOFF, N_ATOMS = 6.0, 1.6, 48
THIN_CELL = [[15.0, 0.0, 0.0], [15.0, 1e-7, 0.0], [0.0, 0.0, 15.0]]


@dataclass
class Case:
    name: str
    argv: list[str]  # script then arguments; {root}, {out} are filled in
    expect: str  # text on stderr
    warn: bool = False  # success with a warning instead of an error
    timeout: float = 120.0
    prepare: object = None  # callable(root, out) run before the command
    extra: list[str] = field(default_factory=list)


class Payload:
    """Unpickling it creates the file ``marker``: what a hostile ``__reduce__`` could do."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


def _config(seed: int, labels=(1, 2)) -> dict:
    rng = np.random.default_rng(seed)
    positions = rng.uniform(0, BOX, (N_ATOMS, 3))
    types = np.asarray(labels)[(rng.uniform(size=N_ATOMS) < 0.35).astype(int)]
    return {
        "positions": positions,
        "types": types,
        "box": np.full(3, BOX),
        "targets": rng.normal(size=N_ATOMS),
    }


def _npz(path: Path, seed: int = 0, **changes) -> Path:
    data = {**_config(seed), **changes}
    np.savez(path, **{k: v for k, v in data.items() if v is not None})
    return path


def _symgnn(path: Path, seed: int = 0, **changes) -> Path:
    data = _config(seed)
    data = {
        "positions": data["positions"] - BOX / 2,
        "types": data["types"],
        "box": data["box"],
        "trajectory_start_velocities": data["targets"],
        **changes,
    }
    path.write_bytes(pickle.dumps(data))
    return path


def _run(argv: list[str], timeout: float = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    return subprocess.run(
        [sys.executable, *argv], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout
    )


def setup(root: Path) -> None:
    """Inputs, a dataset (type 2 outside the mask), a trained run and damaged copies."""
    inputs = root / "in"
    inputs.mkdir()
    files = [str(_npz(inputs / f"c{i}.npz", i)) for i in range(4)]
    done = _run(
        ["construct_graph.py", "--train", *files[:2], "--val", files[2], "--test", files[3], "--cutoff",
         str(CUTOFF), "--mask_types", "1", "--output_dir", str(root / "ds")]
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    done = _run(
        ["train.py", f"--dataset_dir={root / 'ds'}", "--model_name=schnet", f"--output_dir={root / 'run'}",
         "--max_epoch=1", "--no-save_results", "--model_config_path", str(REPO / "train.conf.yaml")]
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    _symgnn(inputs / "ok.pickle")
    (inputs / "empty.pickle").write_bytes(b"")
    data = (inputs / "ok.pickle").read_bytes()
    (inputs / "truncated.pickle").write_bytes(data[: len(data) // 2])
    hostile = _config(0) | {"x": Payload(root / "PWNED")}
    (inputs / "hostile.pickle").write_bytes(pickle.dumps(hostile))
    _symgnn(inputs / "flat.pickle", positions=np.zeros((N_ATOMS, 2)))
    _npz(inputs / "flat.npz", positions=np.zeros((N_ATOMS, 2)))
    thin = np.asarray(THIN_CELL)
    _npz(inputs / "thin.npz", positions=np.random.default_rng(0).uniform(0, 1, (N_ATOMS, 3)) @ thin, box=thin)
    _npz(inputs / "nan.npz", positions=np.full((N_ATOMS, 3), np.nan))
    same = _config(0)["positions"]
    same[9] = same[4]
    _npz(inputs / "same.npz", positions=same)
    far = _config(0)["positions"]
    far[3, 0] = 1e18
    _npz(inputs / "far.npz", positions=far)
    _npz(inputs / "short_types.npz", types=np.ones(N_ATOMS - 1))
    _npz(inputs / "left.npz", box=np.diag([BOX, BOX, -BOX]))
    (inputs / "data.txt").write_text("1 2 3\n")
    (inputs / "garbage.dump").write_text("ITEM: TIMESTEP\nnot a number\n")
    _npz(inputs / "unseen.npz", 7, types=np.where(_config(7)["types"] == 2, 3, 1))
    _npz(inputs / "no_target.npz", 8, targets=None)
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

    state = torch.load(root / "run" / "best.pt", weights_only=True)
    torch.save({**state, "x": Payload(root / "PWNED")}, root / "run_hostile" / "best.pt")
    unfinished = root / "run_unfinished"
    (unfinished / "results.json").unlink()
    last = unfinished / "last.pt"
    last.write_bytes(last.read_bytes()[:1000])
    (root / "existing.npz").write_bytes(b"keep me")


def _cg(*args: str) -> list[str]:
    return ["construct_graph.py", *args, "--output_dir", "{out}"]


def _train(*args: str) -> list[str]:
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
        _train("--dataset_dir={root}/ds", "--output_dir={out}", "--model_config_path={root}/nan.yaml"),
        "learning_rate must be a finite number",
    ),  # fmt: skip
    Case(
        "train: hidden_dim -4",
        _train("--dataset_dir={root}/ds", "--output_dir={out}", "--model_config_path={root}/neg.yaml"),
        "cannot be built with",
    ),  # fmt: skip
    Case(
        "train: empty train split",
        _train("--dataset_dir={root}/ds_empty_train", "--output_dir={out}"),
        "train.bin: holds no graph",
    ),  # fmt: skip
    Case(
        "train: empty val split",
        _train("--dataset_dir={root}/ds_empty_val", "--output_dir={out}"),
        "val.bin: holds no graph",
    ),  # fmt: skip
    Case(
        "train: no val split file",
        _train("--dataset_dir={root}/ds_no_val", "--output_dir={out}"),
        "val.bin is missing",
    ),  # fmt: skip
    Case(
        "train: truncated train.bin",
        _train("--dataset_dir={root}/ds_truncated", "--output_dir={out}"),
        "train.bin: truncated or corrupt graph file",
    ),  # fmt: skip
    Case(
        "train: missing dataset",
        _train("--dataset_dir={root}/nope", "--output_dir={out}"),
        "not a dataset directory",
    ),  # fmt: skip
    Case(
        "train: unknown model",
        ["train.py", "--model_name=nope", "--dataset_dir={root}/ds", "--output_dir={out}"],
        "unknown model 'nope'",
    ),  # fmt: skip
    Case(
        "train: unknown config key",
        _train("--dataset_dir={root}/ds", "--output_dir={out}", "--model_config_path={root}/typo.yaml"),
        "unknown key 'learnig_rate'",
    ),  # fmt: skip
    Case(
        "train: invalid YAML",
        _train("--dataset_dir={root}/ds", "--output_dir={out}", "--model_config_path={root}/bad.yaml"),
        "not valid YAML",
    ),  # fmt: skip
    Case(
        "train: --max_epoch 0",
        _train("--dataset_dir={root}/ds", "--output_dir={out}", "--max_epoch=0"),
        "max_epoch must be >= 1",
    ),  # fmt: skip
    Case(
        "train: --batch_size 0",
        _train("--dataset_dir={root}/ds", "--output_dir={out}", "--batch_size=0"),
        "batch_size must be >= 1",
    ),  # fmt: skip
    Case(
        "train: negative learning rate",
        _train("--dataset_dir={root}/ds", "--output_dir={out}", "--learning_rate=-1"),
        "learning_rate must be >= 0",
    ),  # fmt: skip
    Case(
        "train: unknown node field",
        _train("--dataset_dir={root}/ds", "--output_dir={out}", "--node_fields", "nope"),
        "node_fields",
    ),  # fmt: skip
    Case(
        "train: finished run, no --overwrite",
        _train("--dataset_dir={root}/ds", "--output_dir={root}/run"),
        "holds a finished run",
    ),  # fmt: skip
    Case(
        "train: --resume a finished run", _train("--resume", "--output_dir={root}/run"), "nothing to resume"
    ),  # fmt: skip
    Case("train: --resume nothing", _train("--resume", "--output_dir={root}/nope"), "no such configuration"),
    Case(
        "train: --resume, truncated last.pt",
        _train("--resume", "--output_dir={root}/run_unfinished"),
        "last.pt: truncated or corrupt checkpoint",
    ),  # fmt: skip
    Case(
        "predict: truncated best.pt",
        _predict("run_truncated", "--input", "{root}/in/c0.npz"),
        "best.pt: truncated or corrupt checkpoint",
    ),  # fmt: skip
    Case(
        "predict: hostile best.pt",
        _predict("run_hostile", "--input", "{root}/in/c0.npz"),
        "best.pt: refused to load",
    ),  # fmt: skip
    Case(
        "predict: hostile input pickle",
        _predict("run", "--input", "{root}/in/hostile.pickle"),
        "refused to load io.open",
    ),  # fmt: skip
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
    ),  # fmt: skip
    Case(
        "predict: output not .npz",
        ["predict.py", "--run_dir", "{root}/run", "--input", "{root}/in/c0.npz", "--output", "{out}.csv"],
        "expected a .npz",
    ),  # fmt: skip
    Case(
        "predict: unknown type label",
        _predict("run", "--input", "{root}/in/unseen.npz"),
        "not in the dataset's type map",
    ),  # fmt: skip
    Case(
        "predict: input without the target (warning)",
        _predict("run", "--input", "{root}/in/no_target.npz"),
        "no metrics: the run learned",
        warn=True,
    ),  # fmt: skip
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
    ),  # fmt: skip
    Case(
        "explain: particle outside the mask (warning)",
        _explain("run", "--nodes", "{outside}", "--epochs", "1", "--num_hops", "1"),
        "outside the metrics mask",
        warn=True,
    ),  # fmt: skip
]


def _digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _error_lines(err: str) -> list[str]:
    lines = [line.split("\r")[-1].strip() for line in err.splitlines()]
    return [line for line in lines if re.match(r"^\S+\.py: error: ", line)]


def run_case(case: Case, root: Path, fill: dict) -> tuple[bool, bool, str]:
    """(clean, nothing lost, first stderr line of note) of one case."""
    out = root / ("out_" + re.sub(r"\W+", "_", case.name).strip("_"))
    argv = [a.format(root=root, out=out, **fill) for a in case.argv]
    before = _digest(root)
    try:
        done = _run(argv, case.timeout)
    except subprocess.TimeoutExpired:
        return False, False, f"no answer within {case.timeout:g} s"
    errors = _error_lines(done.stderr)
    traceback = "Traceback" in done.stderr
    if case.warn:
        clean = done.returncode == 0 and case.expect in done.stderr and not traceback
        note = next((line for line in done.stderr.splitlines() if case.expect in line), done.stderr[-200:])
    else:
        clean = done.returncode in (1, 2, 130, 143) and len(errors) == 1 and case.expect in errors[0]
        clean = clean and not traceback
        note = errors[0] if errors else (done.stderr.strip().splitlines() or ["(no stderr)"])[-1]
    after = _digest(root)
    changed = [p for p, h in before.items() if after.get(p) != h]
    made = [p for p in after if p not in before and not p.startswith(out.name)]
    hidden = [p for p in root.rglob(".*") if re.search(r"\.(tmp|trash|old)$", p.name)]
    lost = changed or made or hidden or (root / "PWNED").exists() or (not case.warn and out.exists())
    if lost:
        note += f" | changed {changed[:2]} made {made[:2]} hidden {hidden[:2]} out {out.exists()}"
    shutil.rmtree(out, ignore_errors=True)
    for path in (Path(f"{out}.npz"), Path(f"{out}.csv"), Path(f"{out}.metrics.json")):
        path.unlink(missing_ok=True)
    return clean, not lost, note


def _start(argv: list[str]) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    return subprocess.Popen(
        [sys.executable, *argv], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _signal_when(process: subprocess.Popen, ready, signum: int, timeout: float = 120) -> tuple[int, str]:
    """Send ``signum`` once ``ready()`` holds; the exit status and stderr."""
    deadline = time.monotonic() + timeout
    while not ready() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signum)
    _, err = process.communicate(timeout=timeout)
    return process.returncode, err


def _written_since(path: Path, since: float) -> bool:
    return path.exists() and path.stat().st_mtime > since


def overwrite_killed_twice_then_resume(root: Path) -> tuple[bool, bool, str]:
    """train.py --overwrite into a finished run, Ctrl-C twice, then --resume to the end."""
    run = root / "run_overwritten"
    shutil.copytree(root / "run", run)
    finished = (run / "results.json").read_bytes()
    old = root / ".run_overwritten.old"
    argv = _train("--dataset_dir={root}/ds", "--overwrite", "--max_epoch=100000", "--max_time=15")
    argv = [a.format(root=root) for a in argv] + [f"--output_dir={run}"]
    clean, kept, notes = True, True, []
    for _ in range(2):
        saved = partial(_written_since, run / "last.pt", time.time())
        code, err = _signal_when(_start(argv), saved, signal.SIGINT)  # killed after its first epoch
        clean &= code == 130 and "interrupted; continue with --resume" in err and "Traceback" not in err
        kept &= (old / "results.json").exists() and (old / "results.json").read_bytes() == finished
        notes.append(f"killed: exit {code}, finished run kept: {kept}")
    done = _run(["train.py", "--resume", f"--output_dir={run}"])
    clean &= done.returncode == 0
    kept &= (run / "results.json").exists() and not old.exists()
    notes.append(f"resumed: exit {done.returncode}, .old left: {old.exists()}")
    shutil.rmtree(run, ignore_errors=True)
    return clean, kept, "; ".join(notes)


def construct_graph_killed(signum: int):
    def case(root: Path) -> tuple[bool, bool, str]:
        """construct_graph.py on a large input, stopped by ``signum`` while it builds."""
        big = root / "in" / "big.npz"
        if not big.exists():
            rng = np.random.default_rng(0)
            n = 400_000
            positions = rng.uniform(0, 160, (n, 3))
            np.savez(big, positions=positions, types=rng.integers(1, 3, n), box=np.full(3, 160.0))
        out = root / "out_killed"
        process = _start(
            ["construct_graph.py", "--train", str(big), "--cutoff", "3", "--output_dir", str(out)]
        )
        code, err = _signal_when(process, lambda: bool(list(root.glob(".out_killed.*.tmp"))), signum)
        clean = code == (130 if signum == signal.SIGINT else 128 + signum) and "Traceback" not in err
        left = [p.name for p in root.glob(".out_killed*")]
        return clean, not out.exists() and not left, f"exit {code}, temporary folders left: {left}"

    return case


INTERRUPTIONS = {
    "train: --overwrite of a finished run killed twice, then --resume": overwrite_killed_twice_then_resume,
    "construct_graph: SIGINT while building": construct_graph_killed(signal.SIGINT),
    "construct_graph: SIGTERM while building": construct_graph_killed(signal.SIGTERM),
}


def _report(name: str, clean: bool, safe: bool, note: str) -> tuple[bool, bool]:
    print(f"{'ok ' if clean else 'BAD'} {'kept' if safe else 'LOST'}  {name}: {note[:200]}", flush=True)
    return clean, safe


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--keep", default=None, help="work in this directory and keep it (default: a temp dir)"
    )
    parser.add_argument("--only", default=None, help="run only cases whose name contains this text")
    args = parser.parse_args(argv)
    root = Path(args.keep or tempfile.mkdtemp(prefix="sweep_")).resolve()
    root.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    setup(root)
    types = _config(3)["types"]  # the test split's file; type 2 is outside the mask
    fill = {"outside": str(int(np.flatnonzero(types == 2)[0]))}
    cases = [case for case in CASES if args.only is None or args.only in case.name]
    results = []
    for case in cases:
        results.append(_report(case.name, *run_case(case, root, fill)))
    for name, function in INTERRUPTIONS.items():
        if args.only is None or args.only in name:
            results.append(_report(name, *function(root)))
    n_clean = sum(c for c, _ in results)
    n_safe = sum(s for _, s in results)
    took = time.perf_counter() - start
    print(f"\ntried {len(results)}, clean {n_clean}, nothing lost {n_safe} ({took:.0f} s)")
    if args.keep is None:
        shutil.rmtree(root, ignore_errors=True)
    return 0 if n_clean == n_safe == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
