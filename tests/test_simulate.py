"""simulate.py: KA potential table, a tiny real LAMMPS run in the Bapst layout, resume, bad input."""

from __future__ import annotations

import json
import math
import pickle
import re
import shutil
import sys

import numpy as np
import pytest

import simulate
from glassgnn import simulation_run
from glassgnn.equilibration import crossing_time, log_grid_steps, self_isf
from glassgnn.lammps_driver import KASystem, LammpsError, box_length, potential_commands, system_commands
from tests.conftest import DEEPMIND_DIR

# Kob & Andersen, PRE 51, 4626 (1995): (epsilon, sigma) typed in from the paper, not from our table.
PAPER = {("1", "1"): (1.0, 1.0), ("1", "2"): (1.5, 0.8), ("2", "2"): (0.5, 0.88)}
N_ATOMS, TEMPERATURE, TIMES = 256, 1.0, (0.005, 0.25, 1.0)
TINY = [
    "--n_atoms", str(N_ATOMS), "--temperature", str(TEMPERATURE), "--n_configs", "2", "--n_iso", "2",
    "--times", *map(str, TIMES), "--threads", "1", "--melt_time", "2", "--quench_time", "2",
    "--equil_taus", "3", "--spacing_taus", "0.5", "--no_progress",
]  # fmt: skip
BAPST_KEYS = {
    "positions", "types", "box", "time", "time_indices", "is_values", "metadata",
    "trajectory_start_velocities", "trajectory_target_positions",
}  # fmt: skip


def test_ka_parameters_in_lammps_input():
    coeffs = {}
    for line in potential_commands():
        words = line.split()
        if words[0] == "pair_coeff":
            coeffs[(words[1], words[2])] = tuple(map(float, words[3:]))
    assert coeffs.keys() == PAPER.keys()
    for pair, (eps, sigma) in PAPER.items():
        assert coeffs[pair] == pytest.approx((eps, sigma, 2.5 * sigma), abs=1e-12)
    assert "pair_modify shift yes" in potential_commands()
    region = next(c for c in system_commands(box_length(1000), 0.005) if c.startswith("region"))
    length = float(region.split()[4])
    assert 1000 / length**3 == pytest.approx(1.2, rel=1e-12)


def test_isotropic_isf_matches_direction_average():
    rng = np.random.default_rng(0)
    disp = rng.normal(0.0, 0.3, size=(200, 3))
    k = rng.normal(size=(20000, 3))
    k *= 7.25 / np.linalg.norm(k, axis=1, keepdims=True)
    brute = np.cos(disp @ k.T).mean()
    assert self_isf(disp, 7.25) == pytest.approx(brute, abs=5e-3)
    assert self_isf(np.zeros((5, 3)), 7.25) == 1.0


def test_crossing_time_and_grid():
    steps = log_grid_steps(10_000)
    assert steps[0] == 1 and steps[-1] == 10_000 and np.all(np.diff(steps) > 0)
    t = steps * 0.005
    assert crossing_time(t, np.exp(-t / 3.0), math.exp(-1.0)) == pytest.approx(3.0, rel=1e-3)
    assert math.isnan(crossing_time(t, np.ones_like(t), 0.5))


def test_time_selection_picks_first_grid_time_below_each_level():
    from glassgnn.simulation import IS_VALUES, SimulationConfig, time_selection

    cfg = SimulationConfig(dt=0.005)
    grid = log_grid_steps(100_000)
    fs = np.exp(-((grid * cfg.dt / 4.0) ** 0.8))  # stretched exponential, tau_alpha = 4
    steps, indices, is_values = time_selection(cfg, grid, fs)
    assert steps[0] == 0 and list(is_values) == list(IS_VALUES)
    curve = np.concatenate([[1.0], fs[: len(steps) - 1]])
    for level, i in zip(IS_VALUES, indices, strict=True):
        assert curve[i] <= level < curve[i - 1]
    assert steps[indices[-1]] * cfg.dt == pytest.approx(4.0, rel=0.1)  # 1/e: tau_alpha on the grid


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("sim") / "ka"
    simulate.main([*TINY, "--output_dir", str(out)])
    return out


def _load(path):
    with open(path, "rb") as handle:
        return pickle.load(handle)


def test_tiny_run_writes_bapst_layout(tiny_run):
    manifest = json.loads((tiny_run / "manifest.json").read_text())
    assert manifest["status"] == "complete" and sorted(manifest["configs"]) == [
        "config_0000.pickle",
        "config_0001.pickle",
    ]
    data = _load(tiny_run / "config_0000.pickle")
    assert set(data) == BAPST_KEYS
    assert data["positions"].shape == (N_ATOMS, 3) and data["types"].dtype == np.int32
    assert np.bincount(data["types"]).tolist() == [205, 51]
    assert data["box"] == pytest.approx([box_length(N_ATOMS)] * 3)
    assert [data["time"][i] for i in data["time_indices"]] == pytest.approx(TIMES)
    assert data["metadata"]["temperature"] == TEMPERATURE and data["metadata"]["fluid"] == "Kob Andersen"
    assert len(data["trajectory_target_positions"]) == len(TIMES)
    assert all(
        len(block) == 2 and block[0].shape == (N_ATOMS, 3) for block in data["trajectory_target_positions"]
    )
    if (DEEPMIND_DIR / "test_small.pickle").exists():  # same containers as the published file
        real = _load(DEEPMIND_DIR / "test_small.pickle")
        for key in BAPST_KEYS:
            assert type(data[key]) is type(real[key]), key
        assert type(data["trajectory_target_positions"][0]) is type(real["trajectory_target_positions"][0])
    # configurations differ, and the time-0 state of the equilibration is kept
    other = _load(tiny_run / "config_0001.pickle")
    assert not np.allclose(data["positions"], other["positions"])


def test_propensity_is_mean_displacement_of_stored_trajectories(tiny_run):
    data = _load(tiny_run / "config_0000.pickle")
    r0 = data["positions"]
    for block in data["trajectory_target_positions"]:
        brute = np.mean(
            [[np.sqrt(((p[i] - r0[i]) ** 2).sum()) for i in range(N_ATOMS)] for p in block], axis=0
        )
        assert np.all(brute > 0)
    # first stored time is one MD step: displacement = v dt to O(dt^2), so velocities and ids match
    first = np.asarray(data["trajectory_target_positions"][0])
    velocities = np.asarray(data["trajectory_start_velocities"])
    error = np.abs(first - r0 - velocities * 0.005)  # the rest is F dt^2 / 2
    assert np.median(error) < 0.1 * np.median(np.abs(velocities * 0.005))
    assert np.abs(velocities.sum(axis=1)).max() < 1e-9  # no centre-of-mass drift
    # unwrapped: some particles left the box, none jumped by a box length
    last = np.asarray(data["trajectory_target_positions"][-1])
    assert ((last < 0) | (last >= data["box"])).any()
    assert np.linalg.norm(last - r0, axis=-1).max() < box_length(N_ATOMS) / 2
    # the mean displacement grows with time
    means = [np.linalg.norm(np.asarray(b) - r0, axis=-1).mean() for b in data["trajectory_target_positions"]]
    assert means == sorted(means)


def test_zero_displacement_at_time_zero(tiny_run, tmp_path):
    from glassgnn.simulation import SimulationConfig, isoconfigurational

    with np.load(tiny_run / "configurations.npz") as eq:
        positions, types = eq["positions"][0], eq["types"]
    cfg = SimulationConfig(n_atoms=N_ATOMS, temperature=TEMPERATURE, n_iso=1, threads=1)
    _, trajectories, fs = isoconfigurational(cfg, 0, positions, types, np.array([0, 20]))
    assert np.array_equal(trajectories[0, 0], positions) and fs[0] == 1.0
    assert np.linalg.norm(trajectories[1, 0] - positions, axis=-1).min() > 0 and fs[1] < 1.0


def test_bapst_reader_loads_simulated_pickle(tiny_run):
    readers = pytest.importorskip("glassgnn.readers")
    data = _load(tiny_run / "config_0000.pickle")
    (snapshot,) = readers.read_snapshots(tiny_run / "config_0000.pickle")
    expected = np.stack(
        [readers.propensity(data["positions"], np.asarray(b)) for b in data["trajectory_target_positions"]]
    )
    got = snapshot.fields["propensity"]
    assert got.shape == (N_ATOMS, len(TIMES))
    np.testing.assert_allclose(got, expected.T, rtol=1e-12)


def test_snapshots_only_mode_gives_graph_target_temperature(tiny_run, tmp_path):
    """--n_iso 0: equilibrated configurations, no trajectories; the reader finds T in the metadata."""
    import construct_graph
    from glassgnn import schema
    from glassgnn.dataset import load_manifest, load_split_labels
    from glassgnn.readers import read_snapshots

    out = tmp_path / "snapshots"
    args = [*TINY, "--output_dir", str(out)]
    args[args.index("--n_iso") + 1] = "0"
    simulate.main(args)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["parameters"]["n_iso"] == 0
    # same seed and protocol as the trajectory run: the same equilibrated configurations
    with np.load(tiny_run / "configurations.npz") as eq:
        expected = eq["positions"]
    for c, name in enumerate(["config_0000.pickle", "config_0001.pickle"]):
        data = _load(out / name)
        assert set(data) == BAPST_KEYS
        assert data["time"] == [] and data["time_indices"] == [] and len(data["is_values"]) == 0
        assert data["trajectory_start_velocities"] == [] and data["trajectory_target_positions"] == []
        np.testing.assert_array_equal(data["positions"], expected[c])
        (snapshot,) = read_snapshots(out / name)
        np.testing.assert_array_equal(snapshot.positions, expected[c])
        assert snapshot.fields["propensity"].shape == (N_ATOMS, 0)
        assert snapshot.metadata["temperature"] == TEMPERATURE  # what --graph_target temperature reads
    # and construct_graph turns it into the graph label
    graphs = tmp_path / "graphs"
    construct_graph.main(
        ["--train", str(out / "config_0000.pickle"), "--val", str(out / "config_0001.pickle"),
         "--format", "bapst", "--cutoff", "1.5", "--graph_target", "temperature", "--output_dir", str(graphs)]
    )  # fmt: skip
    assert load_manifest(graphs).task == "graph"
    for split in ("train", "val"):
        assert load_split_labels(graphs, split)[schema.GRAPH_TARGET].tolist() == [[TEMPERATURE]]


def test_store_first_float32_keeps_targets_of_full_trajectories(tiny_run):
    from glassgnn.simulation import SimulationConfig, bapst_record, propensity

    full = _load(tiny_run / "config_0000.pickle")
    trajectories = np.asarray(full["trajectory_target_positions"])  # [n_times, M, N, 3]
    cfg = SimulationConfig(n_atoms=N_ATOMS, temperature=TEMPERATURE, n_iso=2, store="first", float32=True)
    record = bapst_record(
        cfg, full["positions"], full["types"], full["box"], np.arange(len(TIMES)), list(range(len(TIMES))),
        full["is_values"], np.asarray(full["trajectory_start_velocities"]), trajectories, 1.0,
    )  # fmt: skip
    assert set(record) == BAPST_KEYS | {"targets"}
    assert len(record["trajectory_target_positions"]) == 1
    assert record["trajectory_target_positions"][0][0].dtype == np.float32
    for t, target in enumerate(record["targets"]):
        np.testing.assert_allclose(target, propensity(full["positions"], trajectories[t]), rtol=1e-12)
    stored = np.asarray(record["trajectory_target_positions"][0], np.float64)
    np.testing.assert_allclose(propensity(full["positions"], stored), record["targets"][0], atol=1e-5)


def test_resume_skips_finished_and_rewrites_identical_bytes(tiny_run, tmp_path, monkeypatch):
    out = tmp_path / "ka"
    shutil.copytree(tiny_run, out)
    original = (out / "config_0001.pickle").read_bytes()
    manifest = json.loads((out / "manifest.json").read_text())
    del manifest["configs"]["config_0001.pickle"]  # as if killed after config 0
    (out / "manifest.json").write_text(json.dumps(manifest))
    (out / "config_0001.pickle").unlink()
    calls = []
    real = simulation_run.isoconfigurational
    monkeypatch.setattr(
        simulation_run,
        "isoconfigurational",
        lambda cfg, c, *a, **k: calls.append(c) or real(cfg, c, *a, **k),
    )
    simulate.main([*TINY, "--output_dir", str(out)])
    assert calls == [1]
    assert (out / "config_0001.pickle").read_bytes() == original
    simulate.main([*TINY, "--output_dir", str(out)])  # complete: nothing to do
    assert calls == [1]


def test_equilibration_is_deterministic():
    """A run killed before configurations.npz exists redoes the equilibration: it must repeat exactly."""
    from glassgnn.equilibration import equilibrate
    from glassgnn.simulation import SimulationConfig

    cfg = SimulationConfig(
        n_atoms=N_ATOMS, temperature=TEMPERATURE, n_configs=2, threads=1, melt_time=1, quench_time=1,
        equil_taus=2, spacing_taus=0.5, seed=5,
    )  # fmt: skip
    first, second = equilibrate(cfg, log=lambda _: None), equilibrate(cfg, log=lambda _: None)
    assert np.array_equal(first["positions"], second["positions"])
    assert np.array_equal(first["fs"], second["fs"])
    assert first["report"]["converged"]


@pytest.mark.parametrize(
    "taus, elapsed, expected",
    [
        ((1.0, 1.0, 1.0), 30.0, True),  # three steady windows, 30 tau_alpha run
        ((1.0, 1.0), 30.0, False),  # fewer than min_windows
        ((1.0, 1.0, 1.0), 5.0, False),  # steady, but only 5 tau_alpha run (equil_taus 10)
        ((1.0, 2.0, 4.0, 8.0), 1e4, False),  # still ageing: the kept halves disagree (4 vs 8)
        ((8.0, 4.0, 1.0, 1.0), 30.0, True),  # ageing only in the first half, which is not judged
        ((1e3, 1e3, 1e3), 1e6, False),  # F_s never reaches 1/e: no tau_alpha, not converged
    ],
)
def test_equilibration_rule_without_lammps(taus, elapsed, expected):
    """The convergence rule of step 2 on exact F_s = exp(-t / tau) windows, no MD."""
    from glassgnn.equilibration import is_equilibrated
    from glassgnn.simulation import SimulationConfig

    cfg = SimulationConfig(dt=0.01, min_windows=3, tau_tolerance=0.25, equil_taus=10.0)
    grid = log_grid_steps(2000)  # t up to 20
    curves = [np.exp(-grid * cfg.dt / tau) for tau in taus]
    assert is_equilibrated(cfg, grid, curves, elapsed) is expected


def test_other_parameters_are_refused(tiny_run, tmp_path, capsys):
    out = tmp_path / "ka"
    shutil.copytree(tiny_run, out)
    args = [*TINY, "--output_dir", str(out)]
    args[args.index("--n_iso") + 1] = "3"
    with pytest.raises(SystemExit, match=re.escape("n_iso: 2 -> 3")):
        simulate.main(args)


@pytest.mark.parametrize(
    "change, message",
    [
        (["--temperature", "-0.5"], "temperature must be positive"),
        (["--n_atoms", "100"], "not larger than twice the cutoff"),
        (["--n_atoms", "-8"], "n_atoms must be positive"),
        (["--n_iso", "-1"], "n_iso must be at least 0"),
        (["--is_values", "0.9", "1.5"], "is_values must be F_s levels between 0 and 1"),
    ],
)
def test_bad_parameters(change, message, tmp_path):
    with pytest.raises(SystemExit, match=message):  # argparse: the last occurrence of a flag wins
        simulate.main([*TINY, "--output_dir", str(tmp_path / "out"), *change])
    assert not (tmp_path / "out").exists()


def test_unwritable_directory(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(SystemExit, match="cannot write to output directory"):
        simulate.main([*TINY, "--output_dir", str(blocker / "out")])


def test_lammps_failure_carries_lammps_message():
    with KASystem(N_ATOMS, 1, 0.005, seed=3) as system:
        with pytest.raises(LammpsError, match="Unrecognized fix style 'nosuchfix'"):
            system.command("fix 1 all nosuchfix")


def test_lammps_missing(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "lammps", None)  # import lammps now raises ImportError
    with pytest.raises(SystemExit, match="LAMMPS Python module is not installed"):
        simulate.main([*TINY, "--output_dir", str(tmp_path / "out")])


@pytest.mark.parametrize("name", ["ka_T0.64"])
def test_bundled_data_set_is_consistent(name):
    from glassgnn.fileio import sha256
    from glassgnn.simulation import propensity
    from tests.conftest import REPO

    root = REPO / "datasets" / name
    if not (root / "manifest.json").exists():
        pytest.skip(f"{root} not present")
    manifest = json.loads((root / "manifest.json").read_text())
    assert manifest["status"] == "complete"
    assert len(manifest["configs"]) == manifest["parameters"]["n_configs"]
    for file, entry in manifest["configs"].items():
        assert sha256(root / file) == entry["sha256"], file
        data = _load(root / file)
        stored = np.asarray(data["trajectory_target_positions"][0], np.float64)
        assert len(stored) == manifest["parameters"]["n_iso"]
        np.testing.assert_allclose(propensity(data["positions"], stored), data["targets"][0], atol=1e-5)
        means = [np.mean(t[data["types"] == 0]) for t in data["targets"]]
        assert means == sorted(means) and means[0] > 0  # mean propensity grows with time


def test_bundled_temperature_set_is_consistent():
    """datasets/ka_temperature: complete snapshot-only runs whose files carry their directory's T."""
    from glassgnn.fileio import sha256
    from glassgnn.readers import read_snapshots
    from tests.conftest import REPO

    root = REPO / "datasets" / "ka_temperature"
    if not (root / "manifest.json").exists():
        pytest.skip(f"{root} not present")
    rows = json.loads((root / "manifest.json").read_text())["temperatures"]
    assert len(rows) >= 3
    for row in rows:
        run = json.loads((root / row["directory"] / "manifest.json").read_text())
        assert run["status"] == "complete" and run["parameters"]["n_iso"] == 0
        assert run["equilibration"]["converged"]
        assert row["directory"] == f"T{row['temperature']:.2f}"
        assert len(run["configs"]) == run["parameters"]["n_configs"] == row["n_configs"]
        for file, entry in run["configs"].items():
            assert sha256(root / row["directory"] / file) == entry["sha256"], file
        (snapshot,) = read_snapshots(root / row["directory"] / "config_0000.pickle")
        assert snapshot.metadata["temperature"] == row["temperature"]
