"""Metrics against independent references; augmentation group properties; device errors and
the process-wide CPU settings (subnormal floats, reuse of freed memory)."""

from __future__ import annotations

import math
import os
import subprocess
import sys

import dgl
import numpy as np
import pytest
import torch

from glassgnn import schema
from glassgnn.augment import augment_graph, cubic_group, random_transforms
from glassgnn.devices import DeviceError, flush_denormals, select_device
from glassgnn.metrics import graph_metrics, grouped_metrics, regression_metrics, summarise
from tests.conftest import REPO


def _ranks(x):
    order = np.argsort(x)
    ranks = np.empty(len(x))
    ranks[order] = np.arange(len(x))
    return ranks


def test_regression_metrics_match_textbook_formulas():
    rng = np.random.default_rng(0)
    true = rng.normal(size=200)
    pred = 0.7 * true + rng.normal(scale=0.5, size=200) + 0.3
    m = regression_metrics(pred, true)
    assert m["count"] == 200
    assert m["pearson"] == pytest.approx(np.corrcoef(pred, true)[0, 1], abs=1e-12)
    # no ties in continuous data: Spearman = Pearson of the ranks
    assert m["spearman"] == pytest.approx(np.corrcoef(_ranks(pred), _ranks(true))[0, 1], abs=1e-12)
    assert m["r2"] == pytest.approx(1 - np.sum((pred - true) ** 2) / np.sum((true - true.mean()) ** 2))
    assert m["mae"] == pytest.approx(np.mean(np.abs(pred - true)))
    assert m["rmse"] == pytest.approx(np.sqrt(np.mean((pred - true) ** 2)))


def test_perfect_and_undefined_correlations():
    x = np.arange(5.0)
    perfect = regression_metrics(2 * x + 1, 2 * x + 1)
    assert perfect["pearson"] == pytest.approx(1.0) and perfect["r2"] == 1.0 and perfect["rmse"] == 0.0
    constant = regression_metrics(np.ones(5), x)
    assert math.isnan(constant["pearson"]) and math.isnan(constant["spearman"])


def test_grouped_metrics_use_only_masked_particles_of_each_type():
    rng = np.random.default_rng(1)
    n = 60
    true = rng.normal(size=(n, 1))
    pred = true + rng.normal(scale=0.3, size=(n, 1))
    types = np.arange(n) % 2
    mask = np.arange(n) % 3 != 0
    pred[~mask] = 1e6  # unmasked particles must not count
    out = grouped_metrics(pred, true, types, mask, ["E"], {0: "Cu", 1: "Zr"})
    assert set(out["E"]) == {"all", "type=Cu", "type=Zr"}
    sel = mask & (types == 1)
    assert out["E"]["type=Zr"] == regression_metrics(pred[sel, 0], true[sel, 0])
    assert out["E"]["all"]["count"] == mask.sum()
    assert out["E"]["all"]["rmse"] < 1


def test_summarise_uses_sample_std():
    s = summarise([1.0, 2.0, 3.0])
    assert s == {"mean": 2.0, "std": 1.0, "n": 3}


def test_cubic_group_is_the_48_element_octahedral_group():
    g = cubic_group()
    assert g.shape == (48, 3, 3)
    assert torch.allclose(g @ g.transpose(1, 2), torch.eye(3, dtype=g.dtype).expand(48, 3, 3))
    keys = {tuple(m.flatten().tolist()) for m in g}
    assert len(keys) == 48
    assert all(tuple((a @ b).flatten().tolist()) in keys for a in g[:8] for b in g)  # closed


def test_random_rotations_are_proper_and_augmentation_keeps_lengths():
    gen = torch.Generator().manual_seed(0)
    rot = random_transforms("rotation", 16, gen)
    assert torch.allclose(torch.linalg.det(rot), torch.ones(16, dtype=rot.dtype))
    g1 = dgl.graph(([0, 1, 2], [1, 2, 0]))
    g1.edata[schema.DISP] = torch.randn(3, 3)
    g2 = dgl.graph(([0, 1], [1, 0]))
    g2.edata[schema.DISP] = torch.randn(2, 3)
    before = torch.cat([g1.edata[schema.DISP], g2.edata[schema.DISP]])
    batch = augment_graph(dgl.batch([g1, g2]), "rotation", gen)
    after = batch.edata[schema.DISP]
    assert torch.allclose(after.norm(dim=1), before.norm(dim=1), atol=1e-5)
    assert not torch.allclose(after, before)
    assert torch.equal(g1.edata[schema.DISP], before[:3])  # stored graphs untouched
    # one transform per graph: the Gram matrix of each graph's vectors is preserved
    assert torch.allclose(after[:3] @ after[:3].T, before[:3] @ before[:3].T, atol=1e-5)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA message")
def test_gpu_request_without_cuda_says_how_to_fix():
    assert select_device(-1) == torch.device("cpu")
    with pytest.raises(DeviceError, match="--device=-1"):
        select_device(0)


def test_flush_denormals_zeroes_subnormal_arithmetic_and_can_be_undone():
    # From its bits: a float conversion would itself be flushed if an earlier test left flushing on.
    subnormal = torch.tensor([0x00400000, 0x3F800000], dtype=torch.int32).view(torch.float32)  # 5.9e-39, 1
    try:
        flush_denormals(True)
        assert (subnormal * 1.0)[0] == 0.0
        assert (subnormal * 1.0)[1] == 1.0
        flush_denormals(False)
        assert (subnormal * 1.0)[0] > 0.0
    finally:
        flush_denormals(False)  # torch's default


FLUSH_IN_THREADS = """
import sys
import torch
from glassgnn.devices import flush_denormals
torch.set_num_threads(2)
if sys.argv[1] == "late":
    torch.randn(4_000_000).mul(2.0)  # torch starts its worker threads here
flush_denormals(True)
subnormal = torch.tensor([0x00400000], dtype=torch.int32).view(torch.float32)
print(int((subnormal.expand(4_000_000).contiguous() * 1.0).count_nonzero()))
"""


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="needs two cores for torch's worker threads")
def test_flush_denormals_reaches_worker_threads_started_after_it():
    def nonzero(when: str) -> int:
        done = subprocess.run(
            [sys.executable, "-c", FLUSH_IN_THREADS, when],
            capture_output=True,
            text=True,
            cwd=REPO,
            check=True,
        )
        return int(done.stdout.split()[-1])

    assert nonzero("early") == 0  # as the scripts call it: every thread flushes
    assert nonzero("late") > 0  # why they call it first: running threads keep their mode


MMAPPED_BYTES = """
import ctypes, sys
import torch
from glassgnn.devices import reuse_freed_memory
class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()]
libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = MallInfo2
if sys.argv[1] == "on":
    assert reuse_freed_memory()
block = torch.ones(64 * 2**20)  # 256 MiB
print(libc.mallinfo2().hblkhd)  # bytes in blocks mapped directly from the OS
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc statistics")
def test_reuse_freed_memory_serves_large_tensors_from_the_heap():
    def mmapped(mode: str) -> int:
        done = subprocess.run(
            [sys.executable, "-c", MMAPPED_BYTES, mode], capture_output=True, text=True, cwd=REPO
        )
        if done.returncode != 0 and "mallinfo2" in done.stderr:
            pytest.skip("glibc older than 2.33 (no mallinfo2)")
        assert done.returncode == 0, done.stderr
        return int(done.stdout.split()[-1])

    assert mmapped("off") >= 256 * 2**20  # glibc's default: mapped fresh, unmapped when freed
    assert mmapped("on") < 256 * 2**20  # from the heap, where freed memory stays for reuse


def test_graph_metrics_are_one_value_per_graph_per_target():
    rng = np.random.default_rng(3)
    true = rng.normal(size=(12, 2))
    pred = true + rng.normal(scale=0.3, size=(12, 2))
    out = graph_metrics(pred, true, ["temperature", "energy"])
    assert list(out) == ["temperature", "energy"] and list(out["energy"]) == ["all"]
    for j, name in enumerate(out):
        got, err = out[name]["all"], pred[:, j] - true[:, j]
        assert got["count"] == 12
        assert got["mae"] == pytest.approx(np.abs(err).mean())
        assert got["rmse"] == pytest.approx(np.sqrt((err**2).mean()))
        assert got["r2"] == pytest.approx(1 - (err**2).sum() / ((true[:, j] - true[:, j].mean()) ** 2).sum())
        assert got["pearson"] == pytest.approx(np.corrcoef(pred[:, j], true[:, j])[0, 1])
