"""The line a benchmark prints first: when it ran, on which CPU, and how loaded the machine was.

A speed claim here is a ratio measured within one run; machines of one class differ by up to
1.5x, so the CPU model and the date say which run a figure comes from. Framework-free, so the
benches that avoid torch can print it too.
"""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")


def cpu_model() -> str:
    """The CPU's model name as ``lscpu`` reports it (Linux), else what ``platform`` knows."""
    if CPUINFO.exists():
        for line in CPUINFO.read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                return value.strip()
    return platform.processor() or platform.machine()


def header() -> str:
    """``YYYY-MM-DD HH:MM UTC; <CPU model>, <n> cores, load average <1-min>``."""
    return (
        f"{time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC; {cpu_model()}, "
        f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}"
    )
