"""Nothing finished is lost, whatever the interruptions: train.py --overwrite killed twice,
--resume after an interrupted --overwrite, and output directories replaced mid-rename."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from glassgnn import outputs
from glassgnn.config import resolve
from glassgnn.fileio import OutputExistsError, atomic_directory
from glassgnn.training import fit
from tests.conftest import REPO

pytestmark = pytest.mark.usefixtures("one_thread")


def _cfg(**kw):
    base = {"model_name": "mlp", "dataset_dir": "unused", "node_fields": ["cn"], "save_results": False}
    return resolve({**base, "max_epoch": 4, "eval_interval": 2, **kw}, None)


def _kill_at(epoch):
    def interrupt(current):
        if current == epoch:
            raise KeyboardInterrupt

    return interrupt


def test_finished_run_survives_a_double_kill_during_overwrite(data, tmp_path):
    run, old = tmp_path / "r", tmp_path / ".r.old"
    fit(_cfg(), *data, run)
    finished = (run / "results.json").read_text()
    for seed in (1, 2):  # overwrite, killed; overwrite again, killed again
        with pytest.raises(KeyboardInterrupt):
            fit(_cfg(seed=seed), *data, run, overwrite=True, on_epoch_end=_kill_at(3))
        assert (old / "results.json").read_text() == finished
        assert not (run / "results.json").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".r.old", "r"]  # no trash left
    with pytest.raises(OutputExistsError, match="--resume continues it"):
        fit(_cfg(seed=2), *data, run)
    resumed = fit(_cfg(seed=2), *data, run, resume=True)  # the second attempt, finished
    assert resumed["seed"] == 2 and json.loads((run / "results.json").read_text())["seed"] == 2
    assert not old.exists()


def test_overwrite_of_an_interrupted_overwrite_then_success_leaves_nothing_hidden(data, tmp_path):
    run = tmp_path / "r"
    fit(_cfg(), *data, run)
    with pytest.raises(KeyboardInterrupt):
        fit(_cfg(seed=1), *data, run, overwrite=True, on_epoch_end=_kill_at(1))
    fit(_cfg(seed=3), *data, run, overwrite=True)
    assert json.loads((run / "results.json").read_text())["seed"] == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r"]


def test_killed_between_the_move_aside_and_the_new_folder(tmp_path):
    run, old = tmp_path / "r", tmp_path / ".r.old"
    old.mkdir()
    (old / outputs.RESULTS).write_text("{}")  # the finished run, moved aside; r not yet made
    with pytest.raises(OutputExistsError, match=r"\.r\.old holds the run an interrupted --overwrite"):
        outputs.prepare_output_dir(run, resume=False, overwrite=False)
    assert outputs.prepare_output_dir(run, resume=False, overwrite=True) == old
    assert (old / outputs.RESULTS).exists() and run.is_dir()


def test_a_finished_new_run_whose_cleanup_was_killed_supersedes_the_old_one(tmp_path):
    run, old = tmp_path / "r", tmp_path / ".r.old"
    for directory, seed in ((old, 0), (run, 1)):
        directory.mkdir()
        (directory / outputs.RESULTS).write_text(json.dumps({"seed": seed}))
    (tmp_path / ".r.abc.trash").mkdir()  # a deletion cut short
    assert outputs.prepare_output_dir(run, resume=False, overwrite=True) == old
    assert json.loads((old / outputs.RESULTS).read_text()) == {"seed": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == [".r.old", "r"]


def test_atomic_directory_restores_a_result_cut_between_its_renames(tmp_path, monkeypatch):
    out = tmp_path / "out"
    with atomic_directory(out) as tmp:
        (tmp / "v").write_text("1")
    real_replace, calls = os.replace, []

    def replace_then_die(src, dst):
        calls.append(dst)
        if len(calls) == 2:  # out moved aside, new copy not yet in place
            raise KeyboardInterrupt
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace_then_die)
    with pytest.raises(KeyboardInterrupt), atomic_directory(out, overwrite=True) as tmp:
        (tmp / "v").write_text("2")
    monkeypatch.setattr(os, "replace", real_replace)
    assert not out.exists() and (tmp_path / ".out.old" / "v").read_text() == "1"
    with pytest.raises(OutputExistsError):  # the next call first puts the previous result back
        with atomic_directory(out):
            pass
    assert (out / "v").read_text() == "1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


SLOW_CONSTRUCT = """
import signal, sys, time
import construct_graph
from glassgnn.dataset import store

def slow(*args, **kwargs):
    print("reading", flush=True)
    # short sleeps: a signal taken by another thread (torch's) does not cut a long sleep short,
    # and Python acts on it only when the main thread wakes
    for _ in range(1200):
        time.sleep(0.1)

# Ctrl-C as in a terminal: a test suite started in the background (`make test &`) ignores
# SIGINT, and the ignore is inherited, so Python would install no KeyboardInterrupt handler
signal.signal(signal.SIGINT, signal.default_int_handler)
store.build_records = slow
construct_graph.main(sys.argv[1:])
"""


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_construct_graph_killed_leaves_no_temporary_folder(tmp_path, signum):
    (tmp_path / "in.npz").write_bytes(b"")
    argv = ["--train", str(tmp_path / "in.npz"), "--cutoff", "2", "--output_dir", str(tmp_path / "out")]
    process = subprocess.Popen(
        [sys.executable, "-c", SLOW_CONSTRUCT, *argv],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout.readline() == "reading\n"  # inside the temporary output folder
    assert [p.name for p in tmp_path.glob(".out.*.tmp")]
    process.send_signal(signum)
    _, err = process.communicate(timeout=60)
    assert process.returncode == (130 if signum == signal.SIGINT else 128 + signal.SIGTERM)
    assert "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.npz"]
