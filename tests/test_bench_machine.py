"""bench/machine.py: the CPU model every benchmark prints is the one lscpu names."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from bench import machine


@pytest.mark.skipif(shutil.which("lscpu") is None, reason="lscpu not installed")
def test_cpu_model_is_the_model_name_lscpu_reports():
    listing = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    names = [line.split(":", 1)[1].strip() for line in listing.splitlines() if line.startswith("Model name")]
    assert names and machine.cpu_model() == names[0]


def test_header_says_when_which_cpu_how_many_cores_and_the_load():
    line = machine.header()
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC; .+, \d+ cores, load average \d+\.\d\d", line)
    assert machine.cpu_model() in line
