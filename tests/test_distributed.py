"""Data-parallel training under torchrun on CPU (gloo): what DDP promises (issue 18, item 7).

Two processes of b graphs per step reach the weights of one process of 2b graphs, and a
killed process ends the whole run with one clear line instead of a hang.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import train
from glassgnn import schema
from glassgnn.checkpoint import load_checkpoint
from glassgnn.dataset import load_split
from glassgnn.distributed import DistInfo, lost_peer, shard
from tests.conftest import REPO
from tests.synthetic import write_dataset

TIMEOUT = 300  # s; a run that has not ended by then is a hang


pytestmark = pytest.mark.usefixtures("one_thread")


def _torchrun(log: Path, *flags: str) -> subprocess.Popen:
    """train.py under torchrun with 2 CPU processes, in its own process group (see _end).

    Its output goes to the file ``log`` (a pipe nobody reads while the test waits would fill
    up and stall the run)."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           str(REPO / "train.py"), "--device=-1", *flags]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with open(log, "w") as handle:  # the child keeps its own descriptor
        return subprocess.Popen(
            cmd, cwd=REPO, env=env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True
        )


def _end(proc: subprocess.Popen, log: Path, timeout: float) -> str:
    """The output of ``proc`` once it ends, with tqdm's in-place updates (\\r) as lines. On a
    timeout the launcher *and* its workers are killed (a lone surviving rank would wait for
    its peer forever) and the test fails."""
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        pytest.fail(f"the 2-process run did not end in {timeout:g} s")
    return log.read_text().replace("\r", "\n")


def _history(run_dir: Path) -> list[str]:
    return (run_dir / "metrics.csv").read_text().splitlines()


def test_two_processes_of_b_graphs_reach_the_weights_of_one_process_of_2b_graphs(tmp_path):
    """DDP averages the gradients of the ranks; each rank's loss is the mean over its masked
    particles. With every training graph holding the same number of masked particles, the
    mean of the two ranks' means is the mean over all 2b graphs: the single-process loss
    with batch 2b. Each epoch's shuffled order is the same on every rank, rank r taking
    every second graph, so step k of the two ranks together covers the graphs of step k of
    the single process: same gradients, same Adam steps, same weights up to float sums."""
    dataset = write_dataset(tmp_path / "ds")  # 4 training graphs of 48 particles
    masked = {int(g.ndata[schema.MASK].sum()) for g in load_split(dataset, "train")}
    assert len(masked) == 1  # the condition above
    common = [f"--dataset_dir={dataset}", "--model_name=mlp", "--max_epoch=3"]
    log = tmp_path / "ddp.log"
    proc = _torchrun(log, *common, "--batch_size=1", f"--output_dir={tmp_path / 'ddp'}")
    output = _end(proc, log, TIMEOUT)
    assert proc.returncode == 0, output[-3000:]
    ddp = json.loads((tmp_path / "ddp" / "results.json").read_text())
    assert ddp["world_size"] == 2
    single = train.main([*common, "--device=-1", "--batch_size=2", f"--output_dir={tmp_path / 'one'}"])
    assert ddp["last_epoch"] == single["last_epoch"] == 3
    weights = {run: load_checkpoint(tmp_path / run / "last.pt")["model"] for run in ("ddp", "one")}
    assert weights["ddp"].keys() == weights["one"].keys()
    for name, value in weights["one"].items():
        torch.testing.assert_close(weights["ddp"][name], value, rtol=1e-5, atol=1e-6, msg=name)
    # The tolerance tells runs apart: batch 1 in one process (4 steps per epoch) ends elsewhere.
    train.main([*common, "--device=-1", "--batch_size=1", f"--output_dir={tmp_path / 'b1'}"])
    other = load_checkpoint(tmp_path / "b1" / "last.pt")["model"]
    assert max(float((other[k] - v).abs().max()) for k, v in weights["one"].items()) > 1e-3
    # Same weights, same predictions and metrics (evaluation gathers every rank's share).
    assert ddp["metrics"].keys() == single["metrics"].keys()
    a, b = (np.load(tmp_path / run / "predictions_val.npz") for run in ("ddp", "one"))
    assert a["pred"].shape == b["pred"].shape and np.array_equal(a["atom"], b["atom"])
    np.testing.assert_allclose(a["pred"], b["pred"], rtol=1e-5, atol=1e-6)
    assert ddp["metrics"]["val"]["y"]["all"]["pearson"] == pytest.approx(
        single["metrics"]["val"]["y"]["all"]["pearson"], abs=1e-5
    )
    assert len(_history(tmp_path / "ddp")) == len(_history(tmp_path / "one"))


def _workers(launcher: int) -> dict[int, int]:
    """{rank: pid} of the worker processes torchrun started (its children carrying RANK)."""
    found = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            parent = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            environ = (proc / "environ").read_bytes().split(b"\0")
        except (OSError, IndexError):
            continue  # ended meanwhile, or not ours
        if parent == launcher:
            found |= {int(item[5:]): int(proc.name) for item in environ if item.startswith(b"RANK=")}
    return found


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="finds the workers through /proc")
def test_a_killed_process_ends_the_whole_run_with_one_clear_line(tmp_path):
    dataset = write_dataset(tmp_path / "ds")
    out, log = tmp_path / "run", tmp_path / "run.log"
    proc = _torchrun(
        log, f"--dataset_dir={dataset}", "--model_name=mlp", "--max_epoch=100000", f"--output_dir={out}"
    )
    start = time.monotonic()
    while not (out / "last.pt").exists():  # both processes are training
        if proc.poll() is not None or time.monotonic() - start > TIMEOUT:
            output = _end(proc, log, 1)
            pytest.fail(f"the run ended or stalled before its first checkpoint: {output[-2000:]}")
        time.sleep(0.1)
    workers = _workers(proc.pid)
    assert sorted(workers) == [0, 1]
    os.kill(workers[1], signal.SIGKILL)
    killed = time.monotonic()
    output = _end(proc, log, 60)
    assert time.monotonic() - killed < 60 and proc.returncode != 0
    lines = [line for line in output.splitlines() if line.startswith("train.py: error:")]
    assert len(lines) == 1, output[-3000:]
    assert "process 0 of 2: a collective operation failed" in lines[0] and "--resume" in lines[0]
    assert (out / "last.pt").exists() and not (out / "results.json").exists()


def test_sharding_gives_every_rank_the_same_number_of_graphs_and_covers_all():
    items = list(range(7))
    shards = [shard(items, DistInfo(rank, 3, rank)) for rank in range(3)]
    assert [len(s) for s in shards] == [3, 3, 3]
    assert set().union(*map(set, shards)) == set(items)
    with pytest.raises(ValueError, match="cannot be shared by 3 processes"):
        shard([0, 1], DistInfo(0, 3, 0))


def test_only_failed_collectives_of_a_multi_process_run_count_as_a_lost_peer():
    gloo = RuntimeError(
        "[../third_party/gloo/gloo/transport/tcp/pair.cc:534] Connection closed by peer [::1]:5"
    )
    message = lost_peer(gloo, DistInfo(1, 2, 1))
    assert (
        message.startswith("process 1 of 2: a collective operation failed (")
        and "Connection closed" in message
    )
    assert "\n" not in message and "--resume" in message
    assert lost_peer(torch.distributed.DistBackendError("NCCL communicator was aborted"), DistInfo(0, 4, 0))
    assert lost_peer(gloo, DistInfo()) is None  # one process has no peer to lose
    assert lost_peer(RuntimeError("mat1 and mat2 shapes cannot be multiplied"), DistInfo(0, 2, 0)) is None
    assert lost_peer(ValueError("gloo/transport/"), DistInfo(0, 2, 0)) is None
