"""One table for the speed issue (#12): our figure, the issue's reference figure, the ratio.

    .venv/bin/python bench/bench_speed.py [--quick] [--threads 2]

Rows measured here (bundled DeepMind run ``datasets/deepmind/t044_s09`` on the bundled
4096-particle ``test_large.pickle``, 171,066 edges, 7 steps): Bapst inference with the
graph build, warm (plain path, fast path eager, fast path compiled, all in this
process), the compiled path's first call, the graph build alone, ``predict.py`` on one
configuration from a fresh process (with where the time goes), and a training step
(forward + backward) of the fast path against the plain one. The parity of each path
with DeepMind's saved graph is checked on the way (max |difference| to its predictions).

Rows of the other benchmarks come from ``bench/bench_train.py`` and
``bench/bench_explain.py`` (``speed_rows(quick)``) when those files exist. DeepMind's
saved TensorFlow graph is not run here: its figures are the issue's (2.1-2.9 s warm,
6.1 s first call, measured on a machine like ours). ``--quick`` with its peers' quick
modes took 69 s on the idle 2-core machine, the full mode 2 min (3-4x longer when other
jobs share the cores).
Times are medians of wall-clock seconds; the machine is shared, so the load average
is printed with the table.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from bench import machine  # noqa: E402
from glassgnn.dataset import build_graphs  # noqa: E402
from glassgnn.deepmind_demo import BUNDLED_CONFIGURATION, BUNDLED_RUN  # noqa: E402
from glassgnn.devices import flush_denormals  # noqa: E402
from glassgnn.run import load_run  # noqa: E402

DEEPMIND_REFERENCE = REPO / "tests" / "fixtures" / "reference_predictions_t044_s09_test_large.npy"
# The figures (#12, measured on a 2-core machine like ours).
TF_WARM, TF_FIRST, KDTREE_BUILD = 2.1, 6.1, 0.03  # s: DeepMind's saved graph (best of 2.1-2.9), cKDTree
TARGET_WARM, TARGET_FRESH, TARGET_TRAIN_SPEEDUP = 0.3, 5.0, 2.0

# Stages of predict.py in a fresh process: imports, run, graph, forward, metrics and output.
FRESH_STAGES = """
import sys, time
t0 = time.perf_counter()
sys.path.insert(0, {repo!r})
import torch
torch.set_num_threads({threads})
import predict
from glassgnn.devices import flush_denormals
flush_denormals()
from glassgnn.dataset import build_graphs
from glassgnn.metrics import grouped_metrics
from glassgnn.outputs import write_npz
from glassgnn.run import load_run, type_names
t1 = time.perf_counter()
run = load_run({run!r})
t2 = time.perf_counter()
graph = build_graphs([{conf!r}], run.manifest.graph, type_map=run.manifest.type_map)[0]
t3 = time.perf_counter()
pred = run.predict(graph).numpy()
t4 = time.perf_counter()
grouped_metrics(pred, run.targets(graph).numpy(), graph.ndata["type"].numpy(), graph.ndata["mask"].numpy(),
                run.target_names, type_names(run.manifest))
write_npz({out!r}, {{"pred": pred}})
t5 = time.perf_counter()
print(t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4)
"""


def row(measure: str, ours: float, reference: float | None, unit: str, note: str, ratio=True) -> dict:
    """A row of the table; ``ratio`` = reference / ours for times (how many times faster we are)."""
    value = reference / ours if ratio and reference and ours else None
    return {
        "measure": measure,
        "ours": ours,
        "reference": reference,
        "unit": unit,
        "ratio": value,
        "note": note,
    }


def timed(fn, repeats: int) -> tuple[float, float, object]:
    """Median wall and CPU seconds of ``repeats`` calls of ``fn`` (callers warm up), and the last result.

    The CPU time (this process, all threads) is what the call costs when it has the cores
    to itself; on a loaded machine the wall time is longer.
    """
    walls, cpus, result = [], [], None
    for _ in range(repeats):
        start, cpu = time.perf_counter(), time.process_time()
        result = fn()
        walls.append(time.perf_counter() - start)
        cpus.append(time.process_time() - cpu)
    return statistics.median(walls), statistics.median(cpus), result


def bapst_rows(quick: bool, threads: int) -> list[dict]:
    """Inference, compile, graph build, fresh process and training-step rows of the Bapst model."""
    repeats = 3 if quick else 7
    run = load_run(BUNDLED_RUN)
    model, params, type_map = run.model, run.manifest.graph, run.manifest.type_map
    reference = np.load(DEEPMIND_REFERENCE)

    def build():
        return build_graphs([BUNDLED_CONFIGURATION], params, type_map=type_map)[0]

    def infer():
        return run.predict(build())[:, 0].numpy()

    build()
    t_build, c_build, graph = timed(build, repeats)
    note = f"reference: scipy cKDTree; CPU {c_build:.3f} s"
    rows = [row("graph build (vesin), 4096 particles", t_build, KDTREE_BUILD, "s", note)]

    def parity(pred: np.ndarray) -> str:
        return f"max |diff| to DeepMind {np.abs(pred - reference).max():.1e}"

    model.fast = False
    infer()
    t_plain, c_plain, pred = timed(infer, 1 if quick else 3)
    plain_note = f"plain path (concatenations as released), same process; CPU {c_plain:.2f} s; {parity(pred)}"
    model.fast = True
    infer()
    t_fast, c_fast, pred = timed(infer, repeats)
    fast_note = f"split layers, hoisted constants, sorted chunked edges; CPU {c_fast:.2f} s; {parity(pred)}"
    model.use_compiled(True)
    t_first, c_first, _ = timed(infer, 1)
    t_compiled, c_compiled, pred = timed(infer, repeats)
    compiled_ok = not model._compiled_core.failed
    model.use_compiled(False)
    compiled_note = f"torch.compile (inductor); CPU {c_compiled:.2f} s; {parity(pred)}"
    compiled_note = compiled_note if compiled_ok else "compile failed: ran eagerly"
    what = "bapst inference, 4096 particles, graph build incl., warm"
    rows += [
        row(f"{what}: plain path", t_plain, TF_WARM, "s", plain_note),
        row(f"{what}: fast path, eager", t_fast, TF_WARM, "s", f"target <= {TARGET_WARM} s; {fast_note}"),
        row(
            f"{what}: fast path, compiled",
            t_compiled,
            TF_WARM,
            "s",
            f"target <= {TARGET_WARM} s; {compiled_note}",
        ),
        row(
            "bapst compiled path: first call (compiling)",
            t_first,
            TF_FIRST,
            "s",
            f"reference: TF first call; CPU {c_first:.1f} s",
        ),
    ]
    rows.append(fresh_process_row(threads))
    rows += training_rows(model, graph, run.features(graph), 1 if quick else 3)
    return rows


def fresh_process_row(threads: int) -> dict:
    """``predict.py`` on test_large in a new interpreter (wall time from here), and its stages."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "pred.npz"
        argv = [sys.executable, str(REPO / "predict.py"), "--run_dir", str(BUNDLED_RUN)]
        argv += ["--input", str(BUNDLED_CONFIGURATION), "--output", str(out), "--no_progress"]
        argv += ["--threads", str(threads), "--compile", "never"]
        start, before = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run(argv, check=True, capture_output=True, cwd=REPO)
        total = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
        code = FRESH_STAGES.format(
            repo=str(REPO),
            threads=threads,
            run=str(BUNDLED_RUN),
            conf=str(BUNDLED_CONFIGURATION),
            out=str(out),
        )
        stages = subprocess.run(
            [sys.executable, "-c", code], check=True, capture_output=True, text=True, cwd=REPO
        )
    imports, load, graph, forward, write = (float(x) for x in stages.stdout.split()[-5:])
    note = (
        f"target <= {TARGET_FRESH} s; reference: TF first call; CPU {cpu:.2f} s; "
        f"separate run: imports {imports:.2f}, "
        f"load run {load:.2f}, graph {graph:.2f}, forward {forward:.2f}, metrics + write {write:.2f} s "
        "(plus interpreter start)"
    )
    return row("predict.py, one 4096-particle configuration, fresh process", total, TF_FIRST, "s", note)


def training_rows(model, graph, feat, repeats: int) -> list[dict]:
    """Forward + backward of the (mean squared output) loss: fast path against plain path."""
    model.train()

    def step():
        model.zero_grad(set_to_none=True)
        model(graph, feat).square().mean().backward()

    walls, cpus = {}, {}
    for fast in (False, True):
        model.fast = fast
        step()
        walls[fast], cpus[fast], _ = timed(step, repeats)
    model.eval()
    note = (
        f"target: >= {TARGET_TRAIN_SPEEDUP}x the plain path; reference = plain path, same process; "
        f"CPU {cpus[True]:.2f} s against {cpus[False]:.2f} s ({cpus[False] / cpus[True]:.2f}x)"
    )
    what = "bapst training step (forward + backward), 4096 particles"
    return [row(what, walls[True], walls[False], "s", note)]


PEER = """
import json, sys
sys.path[:0] = [{repo!r}, {bench!r}]
from {name} import speed_rows
print(json.dumps(speed_rows({quick})))
"""


def peer_rows(quick: bool) -> list[dict]:
    """Rows of bench_train.py and bench_explain.py, or a note row when one is missing or fails.

    Each peer runs in a fresh interpreter: peak-memory figures (maximum resident set
    size) would otherwise include this process's own measurements.
    """
    rows = []
    for name in ("bench_train", "bench_explain"):
        path = REPO / "bench" / f"{name}.py"
        if not path.is_file():
            rows.append(row(f"{name}.py", float("nan"), None, "", "not present: no rows"))
            continue
        code = PEER.format(repo=str(REPO), bench=str(REPO / "bench"), name=name, quick=quick)
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            rows.append(row(f"{name}.py", float("nan"), None, "", f"failed: {last[:200]}"))
            continue
        rows += json.loads(done.stdout.strip().splitlines()[-1])
    return rows


def tensorflow_row() -> dict:
    """DeepMind's saved graph is not run in this process: say whether it could be and why not."""
    if importlib.util.find_spec("tensorflow") is None:
        note = "tensorflow-cpu not installed (optional): its figures are the issue's"
    else:
        note = "tensorflow is importable, but running the saved graph is not implemented here"
    return row("DeepMind saved TF graph, same process", float("nan"), TF_WARM, "s", note, ratio=False)


def print_table(rows: list[dict], threads: int) -> None:
    print(f"# {machine.header()} (end of run), torch {torch.__version__}, {threads} thread(s)")
    print("| measure | ours | reference | unit | reference / ours | note |")
    print("| --- | ---: | ---: | --- | ---: | --- |")
    for r in rows:
        ours = "n/a" if r["ours"] != r["ours"] else f"{r['ours']:.3g}"
        reference = "" if r["reference"] is None else f"{r['reference']:.3g}"
        ratio = "" if r["ratio"] is None else f"{r['ratio']:.2f}x"
        note = r["note"].replace("|", "\\|")  # markdown cell
        print(f"| {r['measure']} | {ours} | {reference} | {r['unit']} | {ratio} | {note} |")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats, peers' quick modes (< 3 min)")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (1: fastest on a shared machine)"
    )
    parser.add_argument("--no_peers", action="store_true", help="only this file's rows")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    flush_denormals()  # as predict.py and train.py do
    load = os.getloadavg()[0]
    rows = bapst_rows(args.quick, args.threads) + [tensorflow_row()]
    if not args.no_peers:
        rows += peer_rows(args.quick)
    print(f"# load average at start {load:.2f}")
    print_table(rows, args.threads)


if __name__ == "__main__":
    main()
