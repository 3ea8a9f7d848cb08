"""bench/bench_accuracy.py end to end on the bundled Kob-Andersen set with budgets of seconds:
curves selected on validation, a larger budget that continues the shorter run instead of
training its first minutes again, and a report that trains nothing."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest

from bench import bench_accuracy
from bench.common import metrics_rows

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.slow  # about 40 s: one data set with descriptors, 3 train.py processes
def test_curves_a_longer_budget_continues_the_shorter_run_and_a_report(tmp_path):
    work = tmp_path / "work"
    common = ["--datasets", "ka", "--variants", "ridge", "glassmlp", "--seeds", "0", "--work", str(work)]
    short = bench_accuracy.main([*common, "--budgets", "0.1"])
    run = work / "ka_glassmlp_b0.1_s0"
    before = metrics_rows(run)
    cost = json.loads((work / "data_ka.json").read_text())["descriptor_cpu_s"]
    curve = short["ka"]["glassmlp"][0]
    assert curve["limit_s"] == 6.0 and len(curve["points"]) == len(before)
    assert curve["points"][0] == (float(before[0]["cpu_s"]) + cost, float(before[0]["val_pearson"]))
    first = curve["points"][0]  # within the budget: the first evaluation ends before 6 CPU s
    assert bench_accuracy.best_by(curve, first[0]) == first[1]
    assert bench_accuracy.best_by(curve, 6.0) == max(v for t, v in curve["points"] if t <= 6.0)
    assert math.isnan(bench_accuracy.best_by(curve, 12.0))  # beyond the run's budget: no figure
    ridge = short["ka"]["ridge"][0]
    assert ridge["limit_s"] == math.inf and 0.3 < bench_accuracy.best_by(ridge, 1e9) < 0.5

    longer = bench_accuracy.main([*common, "--budgets", "0.1", "0.2"])
    continued = metrics_rows(work / "ka_glassmlp_b0.2_s0")
    assert continued[: len(before)] == before  # the first 6 CPU s were not trained again
    assert {r["segment"] for r in continued} == {"1", "2"}
    assert (work / "ka_glassmlp_b0.2_s0" / "results.segment1.json").exists()
    assert metrics_rows(run) == before  # the shorter run is kept as it was
    points = longer["ka"]["glassmlp"][0]["points"]
    assert points[: len(before)] == curve["points"] and points[-1][0] > 12.0

    finished = {p: p.stat().st_mtime_ns for p in work.glob("*/results.json")}
    assert bench_accuracy.main([*common, "--budgets", "0.1", "0.2", "--report"]) == longer
    assert {p: p.stat().st_mtime_ns for p in work.glob("*/results.json")} == finished
    table = (work / "table.md").read_text()
    assert "| ka | glassmlp (1 seed) |" in table
    assert (work / "curves.png").stat().st_size > 0

    # the archived curves alone (run folders gone) give the same table
    archive = tmp_path / "archive.json"
    shutil.move(work / "results.json", archive)
    shutil.rmtree(work)
    again = bench_accuracy.main(
        ["--report", "--curves", str(archive), "--budgets", "0.1", "0.2", "--work", str(work)]
    )
    assert (work / "table.md").read_text() == table
    assert set(again["ka"]) == {"ridge", "glassmlp"}


def test_archived_curves_keep_the_selected_figure_at_every_budget():
    rng = np.random.default_rng(0)
    cpu_s = np.cumsum(rng.uniform(0.1, 1, 5000))
    rising = 0.6 * (1 - np.exp(-cpu_s / 500)) + rng.normal(0, 0.05, 5000)  # noisy, improving often
    points = [(float(t), float(v)) for t, v in zip(cpu_s, rising, strict=True)]
    points[10] = (points[10][0], float("nan"))  # an evaluation that diverged
    kept = bench_accuracy.archived(points)
    assert len(kept) < 400 and kept[-1] == points[-1] and set(kept) <= set(points)
    curve = {"limit_s": math.inf, "points": points}
    for budget in np.linspace(0, points[-1][0], 997):
        exact = bench_accuracy.best_by(curve, budget)
        thinned = bench_accuracy.best_by({**curve, "points": kept}, budget)
        assert thinned == exact or (math.isnan(thinned) and math.isnan(exact))


@pytest.mark.parametrize(
    "text", [None, "{", '{"datasets": {}}', '{"datasets": {}, "curves": {"ka": {"x": {"0": 1}}}}']
)
def test_a_report_from_a_file_that_is_not_a_results_file_names_it(tmp_path, text):
    path = tmp_path / "results.json"
    if text is not None:
        path.write_text(text)
    with pytest.raises(SystemExit, match=f"error: {path}: not a results.json"):
        bench_accuracy.main(["--report", "--curves", str(path), "--work", str(tmp_path / "out")])
    assert not (tmp_path / "out").exists()
