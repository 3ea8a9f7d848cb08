"""bench/bench_transfer.py end to end on a cut-down budget: the bundled T = 0.64 set plays two
"temperatures" (the same configurations, so every column of a row must agree), a matrix, then
the fine-tuning study, then a rerun that trains nothing."""

from __future__ import annotations

import json

import pytest
import yaml

from bench import bench_transfer
from tests.conftest import REPO

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.slow  # 60 CPU s, 100 s wall at load 4 on 2 cores: 2 data sets, 6 train.py processes
def test_matrix_fine_tuning_and_a_rerun_that_trains_nothing(tmp_path):
    folders = []
    for label in ("0.60", "0.70"):
        folders.append(tmp_path / f"ka_T{label}")
        folders[-1].symlink_to(REPO / "datasets" / "ka_T0.64")
    work = tmp_path / "work"
    common = ["--quick", "--datasets", *map(str, folders), "--max_cpu_time", "2", "--work", str(work)]

    matrix = bench_transfer.main([*common, "--train_at", "0.60"])
    assert set(matrix) == {"ridge", "glassmlp"}  # --quick's variants, one seed
    for name, rows in matrix.items():
        assert list(rows) == ["0.60"]
        (same,) = {tuple(values) for values in rows["0.60"].values()}  # identical configurations
        run = work / "runs" / name / "T0.60" / "seed_0"
        results = json.loads((run / "results.json").read_text())
        assert same[0] == pytest.approx(results["metrics"]["test"]["propensity_6"]["type=0"]["pearson"])
        assert results["selection"]["split"] == "val"
        assert (work / f"transfer_{name}.csv").read_text().startswith("trained_at,tested_at,mean,std")
    assert "| 0.60 | 0.4" in (work / "transfer.md").read_text()
    assert (work / "transfer.png").stat().st_size > 0

    tuned = bench_transfer.main(
        [*common, "--fine_tune_at", "0.70", "--fine_tune_from", "0.60", "--n_configs", "2"]
    )
    assert set(tuned["ridge"]) == {"zero_shot", "scratch"}  # closed form: nothing to fine-tune
    assert set(tuned["glassmlp"]) == set(bench_transfer.FINE_TUNE_MODES)
    assert tuned["glassmlp"]["zero_shot"] == matrix["glassmlp"]["0.60"]["0.70"]  # the same run
    root = work / "runs" / "glassmlp" / "T0.70_n2_from0.60"
    frozen = yaml.safe_load((root / "fine_tune_frozen" / "seed_0" / "config.yaml").read_text())
    assert frozen["init_from"] == str(work / "runs" / "glassmlp" / "T0.60" / "seed_0") and frozen["freeze"]
    few = json.loads((work / "data" / "T0.70_n2" / "manifest.json").read_text())
    assert len(few["splits"]["train"]["graphs"]) == 2 and len(few["splits"]["test"]["graphs"]) == 2
    assert "| glassmlp |" in (work / "fine_tune_T0.70_n2.md").read_text()

    finished = {p: p.stat().st_mtime_ns for p in work.glob("runs/**/results.json")}
    assert bench_transfer.main([*common, "--fine_tune_at", "0.70", "--fine_tune_from", "0.60"]) == tuned
    assert {p: p.stat().st_mtime_ns for p in work.glob("runs/**/results.json")} == finished
    assert bench_transfer.main([*common, "--train_at", "0.60", "--report"]) == matrix
    with pytest.raises(SystemExit):  # finished runs of another budget are not mixed in
        bench_transfer.main([*common, "--max_cpu_time", "3"])
