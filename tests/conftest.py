"""Shared test fixtures: paths to the real data in ../shared and skip markers."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
CUZR_DIR = SHARED_DATA / "cuzr_symgnn"
DEEPMIND_DIR = SHARED_DATA / "deepmind_glassy_dynamics"

requires_cuzr = pytest.mark.skipif(
    not (CUZR_DIR / "train0.pickle").exists(),
    reason=f"real CuZr data not found at {CUZR_DIR} (it is read from ../shared, never bundled)",
)
