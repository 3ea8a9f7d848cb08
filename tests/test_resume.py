"""The loop state that last.pt carries (glassgnn/resume.py): what it saves and how older runs load."""

from __future__ import annotations

import torch

from glassgnn.resume import LoopState


def test_loop_state_survives_a_weights_only_checkpoint(tmp_path):
    loop = LoopState(epoch=7, best_epoch=4, best_value=0.61, bad_evals=3, stopped="max_epoch reached")
    loop.history.append({"epoch": 4, "val_pearson": 0.61, "cpu_s": 12.5})
    loop.elapsed, loop.cpu_elapsed, loop.segment = 20.0, 18.5, 2
    torch.save({"loop": loop.to_dict()}, tmp_path / "last.pt")
    assert LoopState.from_dict(torch.load(tmp_path / "last.pt", weights_only=True)["loop"]) == loop


def test_a_run_saved_before_the_cpu_clock_and_segments_loads_with_their_defaults():
    saved = {"epoch": 5, "best_epoch": 5, "best_value": 0.4, "bad_evals": 0, "stopped": False}
    loop = LoopState.from_dict({**saved, "history": [{"epoch": 5}], "elapsed": 3.0})
    assert (loop.epoch, loop.best_value, loop.history, loop.elapsed) == (5, 0.4, [{"epoch": 5}], 3.0)
    assert (loop.cpu_elapsed, loop.segment) == (0.0, 1)
    assert LoopState().history is not LoopState().history  # no list shared between runs
