"""``torch.compile`` that never crashes: compile when asked, fall back to eager with one warning line.

Compiling (TorchInductor) fuses the memory-bound element-wise work of a kernel
(gathers, adds, activations) into single loops; on CPU it needs a C++ compiler
and costs seconds on the first call, so it only pays when a model is applied
many times (a trajectory of frames). Compiled kernels are cached on disk
(Inductor's FX graph cache), so a second process compiles much faster.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import torch

log = logging.getLogger(__name__)

COMPILE_MODES = ("auto", "always", "never")
# Frames from which ``auto`` compiles: on the 2-core bench machine the first compiled call
# of bapst on a 4096-particle frame took ~20 s (C++ builds, under load) and each later frame
# ~0.1 s of CPU less than the eager fast path (bench/bench_speed.py): break-even ~170 frames.
AUTO_MIN_FRAMES = 200


def should_compile(mode: str, n_frames: int) -> bool:
    """Whether ``mode`` (``auto``, ``always``, ``never``) compiles for a job of ``n_frames`` frames."""
    if mode not in COMPILE_MODES:
        raise ValueError(f"unknown compile mode {mode!r}; known: {', '.join(COMPILE_MODES)}")
    return mode == "always" or (mode == "auto" and n_frames >= AUTO_MIN_FRAMES)


class CompiledOrEager:
    """Call ``fn`` compiled by ``torch.compile`` (dynamic shapes), or eagerly once compiling fails.

    ``torch.compile`` is lazy: most failures (no C++ compiler, an unsupported op, a
    backend bug) surface at the first call, so the call itself is guarded. After a
    failure the kernel stays eager for the rest of the process and one warning line
    says why. Errors that eager execution raises too (bad shapes) still propagate.
    """

    def __init__(self, fn: Callable, name: str):
        self.fn = fn
        self.name = name
        self._compiled: Callable | None = None
        self.failed = False

    def __call__(self, *args: Any) -> Any:
        if not self.failed:
            try:
                if self._compiled is None:
                    import torch._inductor.config as inductor_config

                    inductor_config.fx_graph_cache = True  # reuse compiled kernels across processes
                    # In-process kernel builds: a pool of compile workers takes longer to start
                    # than our few kernels take to build on a 2-core machine.
                    inductor_config.compile_threads = 1
                    self._compiled = torch.compile(self.fn, dynamic=True)
                return self._compiled(*args)
            except Exception as err:  # noqa: BLE001 - any compiler failure means: run eagerly
                self.failed = True
                first_line = (str(err).strip().splitlines() or [""])[0]
                log.warning(
                    "torch.compile of %s failed (%s: %s); running eagerly",
                    self.name,
                    type(err).__name__,
                    first_line[:200],
                )
        return self.fn(*args)
