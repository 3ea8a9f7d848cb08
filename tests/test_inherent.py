"""Inherent structures (LAMMPS minimisation) and the descriptor columns built on them, checked
against a brute-force Kob-Andersen energy and force in numpy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import construct_graph
from glassgnn import schema
from glassgnn.dataset import build_graphs, load_manifest, load_split
from glassgnn.descriptors import DescriptorParams, compute_descriptors, default_params, descriptor_names
from glassgnn.inherent import inherent_structure
from glassgnn.lammps_driver import KA_CUTOFF, KA_PAIRS
from glassgnn.readers import read_snapshots

KA_CONFIG = Path(__file__).resolve().parents[1] / "datasets" / "ka_T0.64" / "config_0000.pickle"


def brute_force_ka(positions: np.ndarray, types: np.ndarray, length: float):
    """Per-particle energy [n] (pair energies split equally) and forces [n, 3] of the truncated and
    shifted Kob-Andersen potential, over every pair at minimum image."""
    eps = np.zeros((2, 2))
    sigma = np.zeros((2, 2))
    for (a, b), (e, s) in KA_PAIRS.items():
        eps[a, b] = eps[b, a] = e
        sigma[a, b] = sigma[b, a] = s
    d = positions[None, :, :] - positions[:, None, :]  # [n, n, 3] from i to j
    d -= length * np.round(d / length)
    r2 = (d**2).sum(-1)
    np.fill_diagonal(r2, np.inf)
    s2 = sigma[types][:, types] ** 2
    e = eps[types][:, types]
    inside = r2 < KA_CUTOFF**2 * s2
    sr6 = np.where(inside, (s2 / r2) ** 3, 0.0)
    shift = 4 * e * (KA_CUTOFF**-12 - KA_CUTOFF**-6)
    pair = np.where(inside, 4 * e * (sr6**2 - sr6) - shift, 0.0)
    # F_i = sum_j -dU/dr * (r_i - r_j)/r = sum_j (48 e sr12 - 24 e sr6) / r2 * (-d_ij)
    magnitude = np.where(inside, (48 * e * sr6**2 - 24 * e * sr6) / r2, 0.0)
    forces = -(magnitude[..., None] * d).sum(axis=1)
    return pair.sum(axis=1) / 2, forces


@pytest.fixture(scope="module")
def snapshot():
    return read_snapshots(KA_CONFIG, time_index=6)[0]


@pytest.fixture(scope="module")
def minimum(snapshot):
    return inherent_structure(snapshot.positions, snapshot.types, snapshot.cell)


def test_minimum_has_no_force_and_energy_matches_brute_force(snapshot, minimum):
    length = snapshot.cell[0, 0]
    start = np.mod(snapshot.positions, length)
    energy, forces = brute_force_ka(minimum.positions, snapshot.types, length)
    start_energy, start_forces = brute_force_ka(start, snapshot.types, length)
    assert np.abs(forces).max() < 1e-6 < np.abs(start_forces).max()
    np.testing.assert_allclose(minimum.energy, energy, rtol=0, atol=1e-9)
    assert energy.sum() < start_energy.sum() - 100  # a thermal snapshot sits well above its minimum
    np.testing.assert_allclose(minimum.displacement, np.linalg.norm(minimum.positions - start, axis=1))
    # a quench moves particles within their cages, a fraction of sigma
    assert 0.05 < minimum.displacement.mean() < 0.5 and minimum.displacement.max() < 1.5


def test_minimum_of_a_minimum_is_itself(snapshot, minimum):
    again = inherent_structure(minimum.positions, snapshot.types, snapshot.cell)
    assert again.displacement.max() < 1e-5
    np.testing.assert_allclose(again.energy, minimum.energy, atol=1e-9)


def test_refuses_what_the_potential_does_not_describe(snapshot):
    positions, types, cell = snapshot.positions, snapshot.types, snapshot.cell
    with pytest.raises(ValueError, match="unknown potential"):
        inherent_structure(positions, types, cell, "eam_cuzr")
    with pytest.raises(ValueError, match="cubic cell"):
        inherent_structure(positions, types, np.diag([9.41, 9.41, 9.5]))
    with pytest.raises(ValueError, match="types 0 and 1"):
        inherent_structure(positions, types + 1, cell)
    with pytest.raises(ValueError, match="density 1.2 .* this snapshot has 0.0096"):  # CuZr in Å
        inherent_structure(positions * 5.0, types, cell * 5.0)


def test_inherent_descriptor_columns(snapshot, minimum):
    params = default_params(snapshot.positions, snapshot.cell, "inherent", coarse_radii=(1.4,))
    plain = DescriptorParams.from_dict({**params.to_dict(), "inherent": ""})
    with_is = compute_descriptors(snapshot.positions, snapshot.types, snapshot.cell, 2, params)
    names = descriptor_names(2, params)
    assert with_is.shape == (1000, len(names)) and len(set(names)) == len(names)
    column = {name: k for k, name in enumerate(names)}
    np.testing.assert_allclose(with_is[:, column["e_is"]], minimum.energy, atol=1e-12)
    np.testing.assert_allclose(with_is[:, column["dr_is"]], minimum.displacement, atol=1e-12)
    # the is: block is the structure block computed at the minimum's positions
    structure = compute_descriptors(minimum.positions, snapshot.types, snapshot.cell, 2, plain)
    plain_names = descriptor_names(2, plain)
    own = [k for k, name in enumerate(plain_names) if ":" not in name and not name.startswith("type")]
    np.testing.assert_allclose(
        with_is[:, [column[f"is:{plain_names[k]}"] for k in own]], structure[:, own], atol=1e-12
    )
    # the snapshot's own columns do not change when the inherent block is added
    thermal = compute_descriptors(snapshot.positions, snapshot.types, snapshot.cell, 2, plain)
    np.testing.assert_array_equal(with_is[:, [column[n] for n in plain_names]], thermal)


def test_construct_graph_stores_and_prediction_rebuilds_the_inherent_set(tmp_path):
    configs = [KA_CONFIG.with_name(f"config_{k:04d}.pickle") for k in (0, 1)]
    out = tmp_path / "ds"
    construct_graph.main(
        ["--train", str(configs[0]), "--val", str(configs[1]), "--cutoff", "2.0", "--time_index", "6"]
        + ["--descriptors", "inherent", "--descriptor_param", "coarse_radii=[1.4]", "--output_dir", str(out)]
    )
    manifest = load_manifest(out)
    assert manifest.graph["descriptors"]["inherent"] == "kob_andersen"
    assert manifest.descriptor_names[-1] == "cg1.40:dr_is"
    stored = load_split(out, "val")[0].ndata[schema.EXTRA_PREFIX + schema.DESCRIPTORS]
    rebuilt = build_graphs([configs[1]], manifest.graph, manifest.type_map)[0]  # predict.py's path
    assert torch.equal(rebuilt.ndata[schema.EXTRA_PREFIX + schema.DESCRIPTORS], stored)
