"""Speed and peak memory of the graph builder against the dense reference and peer libraries.

    .venv/bin/python bench/bench_graph.py            # all cases (about 2 minutes)
    .venv/bin/python bench/bench_graph.py --quick    # skip the 1,000,000-atom cases

Systems: one real 8000-atom CuZr file (../shared/data/cuzr_symgnn/train0.pickle) at
5 Å, and the same cell replicated 5x5x5 (1,000,000 atoms, ~32.5M directed edges).
Each case runs in a fresh subprocess and goes from positions in memory to a finished
DGLGraph with ``disp`` (float32, [E, 3]) and ``dist`` ([E, 1]); "peak" is the growth of
the process's peak resident memory over that step (ru_maxrss), so it counts C++ and
torch allocations that tracemalloc would miss.

Methods:
  ours      glassgnn.graph.build_graph (vesin half list, see glassgnn/neighbors.py)
  dense     the reference implementations' algorithm: an N x N x 3 displacement array,
            minimum image, threshold (8000 atoms only: at 10^6 atoms it needs 24 TB)
  ckdtree   scipy cKDTree(boxsize).query_pairs + minimum-image displacements
  matscipy  matscipy.neighbours.neighbour_list("ijD"); optional, for this bench only:
            ``.venv/bin/pip install --no-deps matscipy==1.1.1`` (1.2+ needs numpy>=2)
  ase       ase.neighborlist.neighbor_list("ijD") (8000 atoms only unless --ase_1m)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a script from any directory

from bench import machine  # noqa: E402  (framework-free: nothing a worker measures)

CUZR = REPO.parent / "shared" / "data" / "cuzr_symgnn" / "train0.pickle"
CUTOFF = 5.0


def _system(replicas: int) -> tuple[np.ndarray, np.ndarray]:
    """Wrapped positions [N, 3] and box (3,) of train0 replicated ``replicas`` times per axis."""
    from glassgnn.readers.safe_pickle import load_data_pickle

    data = load_data_pickle(CUZR)
    box = np.asarray(data["box"], dtype=np.float64)
    positions = np.mod(np.asarray(data["positions"], dtype=np.float64), box)
    shifts = np.stack(np.meshgrid(*[np.arange(replicas)] * 3, indexing="ij"), -1).reshape(-1, 3) * box
    return (positions[None] + shifts[:, None]).reshape(-1, 3), box * replicas


def _finish(n_atoms: int, src, dst, disp):
    """The DGLGraph every method must produce: float32 disp and its norm as dist."""
    import dgl
    import torch

    graph = dgl.graph(
        (torch.as_tensor(src, dtype=torch.int64), torch.as_tensor(dst, dtype=torch.int64)), num_nodes=n_atoms
    )
    disp = torch.as_tensor(disp, dtype=torch.float32)
    graph.edata["disp"] = disp
    graph.edata["dist"] = torch.linalg.vector_norm(disp, dim=1, keepdim=True)
    return graph


def ours(positions, box):
    from glassgnn.graph import build_graph

    return build_graph(positions, np.zeros(len(positions), dtype=np.int64), box, CUTOFF)


def dense(positions, box):
    disp = positions[None, :, :] - positions[:, None, :]  # [N, N, 3]: r_dst - r_src
    disp -= box * np.round(disp / box)
    close = np.einsum("ijk,ijk->ij", disp, disp) < CUTOFF**2
    np.fill_diagonal(close, False)
    src, dst = np.nonzero(close)
    return _finish(len(positions), src, dst, disp[src, dst])


def ckdtree(positions, box):
    from scipy.spatial import cKDTree

    pairs = cKDTree(positions, boxsize=box).query_pairs(CUTOFF, output_type="ndarray")
    src = np.concatenate([pairs[:, 0], pairs[:, 1]])
    dst = np.concatenate([pairs[:, 1], pairs[:, 0]])
    del pairs
    disp = positions[dst] - positions[src]
    disp -= box * np.round(disp / box)
    return _finish(len(positions), src, dst, disp)


def _atoms(positions, box):
    import ase

    return ase.Atoms(
        numbers=np.ones(len(positions), dtype=int), positions=positions, cell=np.diag(box), pbc=True
    )


def matscipy(positions, box):
    from matscipy.neighbours import neighbour_list

    i, j, d = neighbour_list("ijD", _atoms(positions, box), CUTOFF)
    return _finish(len(positions), i, j, d)


def ase(positions, box):
    from ase.neighborlist import neighbor_list

    i, j, d = neighbor_list("ijD", _atoms(positions, box), CUTOFF)
    return _finish(len(positions), i, j, d)


METHODS = {"ours": ours, "dense": dense, "ckdtree": ckdtree, "matscipy": matscipy, "ase": ase}


def _worker(method: str, replicas: int) -> None:
    """Run one case in this (fresh) process and print a JSON line of figures."""
    import dgl  # noqa: F401  (imported before the baseline so its memory is not counted)
    import torch  # noqa: F401

    positions, box = _system(replicas)
    try:
        function = METHODS[method]
        if method == "matscipy":
            import matscipy.neighbours  # noqa: F401
    except ImportError as exc:
        print(json.dumps({"skipped": f"not installed ({exc})"}))
        return
    usage = resource.getrusage(resource.RUSAGE_SELF)
    before, cpu_before = usage.ru_maxrss, usage.ru_utime + usage.ru_stime
    # Small cases: best of 3 (the first call also pays one-off library loading); dense: once.
    seconds = float("inf")
    for _ in range(3 if replicas == 1 and method != "dense" else 1):
        graph = None
        start = time.perf_counter()
        graph = function(positions, box)
        seconds = min(seconds, time.perf_counter() - start)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    peak = usage.ru_maxrss  # KiB on Linux
    repeats = 3 if replicas == 1 and method != "dense" else 1
    print(
        json.dumps(
            {
                "seconds": seconds,
                # CPU seconds (user + system) per call: less sensitive to other jobs on the machine
                "cpu_seconds": (usage.ru_utime + usage.ru_stime - cpu_before) / repeats,
                "peak_gib": (peak - before) / 2**20,
                "total_peak_gib": peak / 2**20,
                "edges": graph.num_edges(),
                "max_dist": float(graph.edata["dist"].max()),
            }
        )
    )


def _run_case(method: str, replicas: int) -> dict:
    command = [sys.executable, __file__, "--worker", method, "--replicas", str(replicas)]
    env = dict(os.environ, OMP_NUM_THREADS="1")  # same single thread for every method
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO)
    if result.returncode != 0:
        return {"skipped": f"failed: {result.stderr.strip().splitlines()[-1:]}"}
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="skip the 1,000,000-atom system")
    parser.add_argument("--ase_1m", action="store_true", help="also run ASE on 1,000,000 atoms (minutes)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--replicas", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        _worker(args.worker, args.replicas)
        return
    if not CUZR.exists():
        sys.exit(f"bench_graph.py: error: {CUZR} not found (the real CuZr data is read from ../shared)")
    cases = [(m, 1) for m in ("ours", "dense", "ckdtree", "matscipy", "ase")]
    if not args.quick:
        cases += [(m, 5) for m in ("ours", "ckdtree", "matscipy")] + ([("ase", 5)] if args.ase_1m else [])
    print(f"# {machine.header()} (before)")
    print(f"{'atoms':>9} {'method':>9} {'wall s':>8} {'CPU s':>8} {'peak GiB':>9} {'edges':>10}  vs ours")
    reference = {}
    for method, replicas in cases:
        figures = _run_case(method, replicas)
        atoms = 8000 * replicas**3
        if "skipped" in figures:
            print(f"{atoms:>9} {method:>9}  skipped: {figures['skipped']}")
            continue
        if method == "ours":
            reference[replicas] = figures
        base = reference.get(replicas)
        ratio = ""
        if base and method != "ours":
            same = "same edges" if figures["edges"] == base["edges"] else "EDGE COUNT DIFFERS"
            ratio = (
                f"{figures['seconds'] / base['seconds']:.1f}x wall, "
                f"{figures['cpu_seconds'] / base['cpu_seconds']:.1f}x CPU, "
                f"{figures['peak_gib'] / max(base['peak_gib'], 1e-6):.1f}x memory, {same}"
            )
        print(
            f"{atoms:>9} {method:>9} {figures['seconds']:>8.3f} {figures['cpu_seconds']:>8.3f} "
            f"{figures['peak_gib']:>9.3f} {figures['edges']:>10}  {ratio}"
        )
    if not args.quick:
        print(
            f"{1_000_000:>9} {'dense':>9}  not run: the N x N x 3 float64 array alone needs "
            f"{1e12 * 3 * 8 / 2**40:.0f} TiB"
        )
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
