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
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np
from sweep_cases import CASES, REPO, Case, config, run_script, script_env, setup, train_argv


def _digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _hidden(root: Path) -> set[Path]:
    """Temporary, half-deleted or moved-aside folders under ``root``."""
    return {p for p in root.rglob(".*") if re.search(r"\.(tmp|trash|old)$", p.name)}


def _error_lines(err: str) -> list[str]:
    lines = [line.split("\r")[-1].strip() for line in err.splitlines()]
    return [line for line in lines if re.match(r"^\S+\.py: error: ", line)]


def run_case(case: Case, root: Path, fill: dict) -> tuple[bool, bool, str]:
    """(clean, nothing lost, first stderr line of note) of one case."""
    out = root / ("out_" + re.sub(r"\W+", "_", case.name).strip("_"))
    argv = [a.format(root=root, out=out, **fill) for a in case.argv]
    before, hidden_before = _digest(root), _hidden(root)
    try:
        done = run_script(argv, case.timeout)
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
    hidden = sorted(_hidden(root) - hidden_before)
    pwned = (root / "PWNED").exists()  # a hostile payload ran
    (root / "PWNED").unlink(missing_ok=True)
    lost = changed or made or hidden or pwned or (not case.warn and out.exists())
    if lost:
        note += f" | changed {changed[:2]} made {made[:2]} hidden {hidden[:2]} payload ran {pwned}"
    shutil.rmtree(out, ignore_errors=True)
    for path in (Path(f"{out}.npz"), Path(f"{out}.csv"), Path(f"{out}.metrics.json")):
        path.unlink(missing_ok=True)
    return clean, not lost, note


def _start(argv: list[str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, *argv],
        cwd=REPO,
        env=script_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
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
    argv = train_argv("--dataset_dir={root}/ds", "--overwrite", "--max_epoch=100000", "--max_time=15")
    argv = [a.format(root=root) for a in argv] + [f"--output_dir={run}"]
    clean, kept, notes = True, True, []
    for _ in range(2):
        saved = partial(_written_since, run / "last.pt", time.time())
        code, err = _signal_when(_start(argv), saved, signal.SIGINT)  # killed after its first epoch
        clean &= code == 130 and "interrupted; continue with --resume" in err and "Traceback" not in err
        kept &= (old / "results.json").exists() and (old / "results.json").read_bytes() == finished
        notes.append(f"killed: exit {code}, finished run kept: {kept}")
    done = run_script(["train.py", "--resume", f"--output_dir={run}"])
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
    types = config(3)["types"]  # the test split's file; type 2 is outside the mask
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
