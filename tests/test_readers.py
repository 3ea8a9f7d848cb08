"""Every reader on fixture files the tests write, plus the real DeepMind files."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from glassgnn.neighbors import wrap
from glassgnn.readers import (
    ReaderError,
    apply_value_table,
    detect_format,
    graph_values,
    propensity,
    read_snapshots,
    read_value_table,
)
from tests.conftest import DEEPMIND_DIR
from tests.reader_fixtures import (
    TRICLINIC,
    configuration,
    write_bapst,
    write_extxyz,
    write_lammps,
    write_npz,
    write_symgnn,
)


def _same_wrapped(a, b, cell):
    """Positions equal up to whole cell vectors."""
    frac = (a - b) @ np.linalg.inv(cell)
    np.testing.assert_allclose(frac, np.round(frac), atol=1e-9)


def test_symgnn(tmp_path):
    data = write_symgnn(tmp_path / "cuzr.pickle")
    assert detect_format(tmp_path / "cuzr.pickle") == "symgnn"
    (snap,) = read_snapshots(tmp_path / "cuzr.pickle")
    assert snap.type_labels == ["1", "2"]
    np.testing.assert_array_equal(snap.types, data["types"] - 1)
    assert snap.default_target == "trajectory_start_velocities"
    assert sorted(snap.fields) == [
        "pot",
        "press",
        "trajectory_start_velocities",
        "von",
    ]  # not the index 'pos'
    np.testing.assert_allclose(snap.fields["pot"], data["pot"])
    # centred positions are shifted to the corner origin of the cell
    np.testing.assert_allclose(snap.positions, data["positions"] + data["box"].astype(np.float64) / 2)
    assert np.all((snap.positions >= 0) & (snap.positions < np.diag(snap.cell)))


@pytest.mark.parametrize("with_targets_key", [False, True])
def test_bapst_propensity(tmp_path, with_targets_key):
    path = tmp_path / "kob_andersen.pickle"
    write_bapst(path, with_targets_key)
    assert detect_format(path) == "bapst"
    (snap,) = read_snapshots(path)
    np.testing.assert_allclose(snap.fields["propensity"], [[7 / 3, 2.0], [1.0, 2.0]], rtol=1e-12)
    assert snap.target_columns("propensity") == ["propensity_0", "propensity_1"]
    assert snap.default_target == "propensity" and snap.default_mask_labels == ("0",)
    assert snap.metadata["times"] == [0.5, 1.5]
    (one,) = read_snapshots(path, time_index=1)
    np.testing.assert_allclose(one.fields["propensity"], [[2.0], [2.0]])
    assert one.target_columns("propensity") == ["propensity_1"]
    with pytest.raises(ReaderError, match="time_index 5 out of range"):
        read_snapshots(path, time_index=5)


@pytest.mark.skipif(not (DEEPMIND_DIR / "test_small.pickle").exists(), reason="DeepMind files not found")
def test_bapst_real_files():
    (small,) = read_snapshots(DEEPMIND_DIR / "test_small.pickle")
    assert small.num_atoms == 20
    means = small.fields["propensity"].mean(axis=0)
    # DeepMind's own test: the mean grows with time in this index order (9 is 1/e).
    assert np.all(np.diff(means[[0, 1, 2, 3, 4, 5, 9, 6, 7, 8]]) > 0)
    (large,) = read_snapshots(DEEPMIND_DIR / "test_large.pickle")
    assert large.num_atoms == 4096 and large.fields["propensity"].shape == (4096, 10)
    assert np.bincount(large.types).tolist() == [3277, 819]
    # test_large's `targets` row 0 equals the propensity of its stored trajectories

    with open(DEEPMIND_DIR / "test_large.pickle", "rb") as handle:
        raw = pickle.load(handle)
    computed = propensity(np.asarray(raw["positions"]), np.asarray(raw["trajectory_target_positions"][0]))
    np.testing.assert_allclose(large.fields["propensity"][:, 0], computed, atol=1e-12)


@pytest.mark.parametrize("style", ["x", "xu", "xs", "xsu"])
@pytest.mark.parametrize("triclinic", [True, False])
def test_lammps_two_frames(tmp_path, style, triclinic):
    frames = [configuration(1), configuration(2)]
    if style.endswith("u"):  # unwrapped styles: move some atoms out by whole cells
        positions, types, values = frames[0]
        frames[0] = (positions + np.eye(3)[np.arange(40) % 3] * 2 @ TRICLINIC, types, values)
    cell = TRICLINIC if triclinic else np.diag(np.diag(TRICLINIC))
    path = tmp_path / "run.lammpstrj"
    write_lammps(path, [(p @ np.linalg.inv(TRICLINIC) @ cell, t, v) for p, t, v in frames], style, triclinic)
    snaps = read_snapshots(path)
    assert [s.frame for s in snaps] == [0, 1]
    assert [s.metadata["timestep"] for s in snaps] == [0, 100]
    for snap, (positions, types, values) in zip(snaps, frames, strict=True):
        positions = positions @ np.linalg.inv(TRICLINIC) @ cell
        np.testing.assert_allclose(snap.cell, cell, atol=1e-12)
        _same_wrapped(snap.positions, positions, cell)
        np.testing.assert_array_equal(snap.types, types - 1)  # sorted back into id order
        np.testing.assert_allclose(snap.fields["c_propensity"], values)
        assert snap.type_labels == ["1", "2"]
    if style.endswith("u"):
        assert wrap(snaps[0].positions, snaps[0].cell)[1] > 0


def test_lammps_detected_by_content(tmp_path):
    path = tmp_path / "dump.atoms.0"
    write_lammps(path, [configuration(3)])
    assert detect_format(path) == "lammps"


def test_extxyz_two_frames(tmp_path):
    frames = [configuration(4), configuration(5)]
    write_extxyz(tmp_path / "frames.extxyz", frames)
    snaps = read_snapshots(tmp_path / "frames.extxyz")
    assert len(snaps) == 2
    for snap, (positions, types, values) in zip(snaps, frames, strict=True):
        assert snap.type_labels == ["Cu", "Zr"]
        np.testing.assert_array_equal(snap.types, types - 1)
        np.testing.assert_allclose(snap.cell, TRICLINIC)
        # extxyz stores 8 significant digits
        np.testing.assert_allclose(snap.positions, positions, atol=1e-6)
        np.testing.assert_allclose(snap.fields["barrier"], values, atol=1e-7)


def test_npz(tmp_path):
    positions, types, values = configuration(6)
    write_npz(tmp_path / "one.npz", positions, types, values, origin=np.array([1.0, 2.0, 3.0]))
    (snap,) = read_snapshots(tmp_path / "one.npz")
    np.testing.assert_allclose(snap.positions, positions - [1.0, 2.0, 3.0])
    np.testing.assert_allclose(snap.cell, TRICLINIC)
    assert snap.default_target == "targets"
    np.testing.assert_allclose(snap.fields["targets"], values)


def test_format_specific_errors(tmp_path):
    import ase
    import ase.io

    ase.io.write(tmp_path / "open.xyz", ase.Atoms("Cu2", positions=[[0, 0, 0], [1, 1, 1]]), format="extxyz")
    with pytest.raises(ReaderError, match=r"open\.xyz: frame 0: not periodic"):
        read_snapshots(tmp_path / "open.xyz")
    np.savez(tmp_path / "flat.npz", positions=np.zeros((4, 2)), types=np.ones(4), box=np.ones(3))
    with pytest.raises(ReaderError, match=r"flat\.npz: positions must have shape \(N, 3\)"):
        read_snapshots(tmp_path / "flat.npz")
    data = write_bapst(tmp_path / "bapst.pickle")
    del data["trajectory_target_positions"]
    (tmp_path / "bapst.pickle").write_bytes(pickle.dumps(data))
    with pytest.raises(ReaderError, match="neither 'targets' nor 'trajectory_target_positions'"):
        read_snapshots(tmp_path / "bapst.pickle", "bapst")
    write_symgnn(tmp_path / "cuzr.pickle")
    with pytest.raises(ReaderError, match="time_index applies to bapst files only"):
        read_snapshots(tmp_path / "cuzr.pickle", time_index=0)
    write_lammps(tmp_path / "bad.dump", [configuration(0)])
    text = (
        (tmp_path / "bad.dump").read_text().replace("ITEM: ATOMS id type x y z", "ITEM: ATOMS id type a b c")
    )
    (tmp_path / "bad.dump").write_text(text)
    with pytest.raises(ReaderError, match="no coordinate columns"):
        read_snapshots(tmp_path / "bad.dump")


def test_per_snapshot_values_of_every_format(tmp_path):
    import ase.io

    write_bapst(tmp_path / "ka.pickle")  # metadata: temperature 0.44, pressure 2.93
    (snap,) = read_snapshots(tmp_path / "ka.pickle")
    np.testing.assert_array_equal(graph_values(snap, ["temperature", "pressure"]), [0.44, 2.93])

    write_extxyz(tmp_path / "frames.xyz", [configuration(1), configuration(2)])
    images = ase.io.read(tmp_path / "frames.xyz", index=":")
    for i, atoms in enumerate(images):
        atoms.info.update(energy=-3.5 - i, temperature=300 + 10 * i)  # ASE moves energy to a calculator
    ase.io.write(tmp_path / "frames.xyz", images, format="extxyz")
    snaps = read_snapshots(tmp_path / "frames.xyz")
    assert [list(graph_values(s, ["energy", "temperature"])) for s in snaps] == [[-3.5, 300], [-4.5, 310]]

    positions, types, values = configuration(3)
    write_npz(tmp_path / "one.npz", positions, types, values, temperature=np.float32(0.5), step=np.int64(7))
    (snap,) = read_snapshots(tmp_path / "one.npz")
    assert list(graph_values(snap, ["temperature", "step"])) == [0.5, 7.0]
    assert "temperature" not in snap.fields


def test_side_table_gives_lammps_frames_their_values(tmp_path):
    write_lammps(tmp_path / "run.dump", [configuration(4), configuration(5), configuration(6)])
    (tmp_path / "values.csv").write_text(
        "file,frame,temperature,energy\n"
        "run.dump,,0.8,\n"  # every frame of the file
        "run.dump,1,0.9,-2.5\n"  # frame 1 overrides the temperature, adds an energy
        "other.dump,0,1.0,0\n"
    )
    table = read_value_table(tmp_path / "values.csv")
    snaps = read_snapshots(tmp_path / "run.dump")
    for snap in snaps:
        apply_value_table(snap, table)
    assert [graph_values(s, ["temperature"])[0] for s in snaps] == [0.8, 0.9, 0.8]
    assert graph_values(snaps[1], ["energy", "timestep"]).tolist() == [-2.5, 100.0]
    with pytest.raises(ReaderError, match=r"run\.dump: frame 0: graph target 'energy' is missing"):
        graph_values(snaps[0], ["energy"])


def test_graph_value_errors_name_the_file(tmp_path):
    write_bapst(tmp_path / "ka.pickle")
    (snap,) = read_snapshots(tmp_path / "ka.pickle")
    with pytest.raises(
        ReaderError, match=r"ka\.pickle: frame 0: graph target 'energy' is missing.*temperature"
    ):
        graph_values(snap, ["energy"])
    with pytest.raises(ReaderError, match=r"ka\.pickle: frame 0: graph target 'fluid' is not a number"):
        graph_values(snap, ["fluid"])
    snap.metadata["temperature"] = float("nan")
    with pytest.raises(ReaderError, match="graph target 'temperature' is nan"):
        graph_values(snap, ["temperature"])
    (tmp_path / "bad.csv").write_text("file,frame,temperature\nrun.dump,first,0.8\n")
    with pytest.raises(ReaderError, match=r"bad\.csv: line 2: frame 'first' is not an integer"):
        read_value_table(tmp_path / "bad.csv")
    (tmp_path / "nofile.csv").write_text("path,temperature\nrun.dump,0.8\n")
    with pytest.raises(ReaderError, match=r"nofile\.csv: the value table needs a 'file' column"):
        read_value_table(tmp_path / "nofile.csv")
