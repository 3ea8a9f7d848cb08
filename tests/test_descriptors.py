"""Structural descriptors: exact against a brute-force reference, invariant, with documented defaults."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from scipy.special import eval_legendre

from glassgnn import descriptors
from glassgnn.descriptors import DescriptorParams, compute_descriptors, default_params, descriptor_names
from glassgnn.readers import read_snapshots
from tests.neighbor_reference import widths

KA_CONFIG = Path(__file__).resolve().parents[1] / "datasets" / "ka_T0.64" / "config_0000.pickle"
# Small cells: odd l checks the parity of reversed bonds; type 3 is absent from the snapshot.
SMALL = DescriptorParams(
    name="test",
    shell_start=0.5,
    shell_stop=1.8,
    shell_step=0.2,
    shell_width=0.15,
    q_l=(1, 2, 4, 6),
    q_cutoff=1.3,
    coarse_radii=(1.0, 2.0),
)
NUM_TYPES = 4


def small_system(triclinic: bool, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """80 particles of types 0-2 at uniform random positions in a 5.5-6.5 cell (density ~0.4)."""
    rng = np.random.default_rng(seed)
    cell = np.diag([5.5, 6.0, 6.5])
    if triclinic:
        cell[1, 0], cell[2, 0], cell[2, 1] = 1.5, -1.2, 1.4
    positions = rng.uniform(0, 1, size=(80, 3)) @ cell
    types = rng.choice(3, size=80, p=[0.6, 0.3, 0.1])
    return positions, types, cell


def brute_force(positions, types, cell, num_types, params) -> np.ndarray:
    """The descriptors by explicit loops over pairs and periodic images; q_l and qbar_l via
    the addition theorem (4 pi / (2l+1)) sum_m Y_lm(u) Y_lm(v)* = P_l(u . v), so no
    spherical harmonic is evaluated."""
    n = len(positions)
    reach = max(params.shell_stop + 3 * params.shell_width, *params.coarse_radii, params.q_cutoff)
    images = int(np.ceil(reach / widths(cell).min())) + 1
    shifts = np.array(list(itertools.product(range(-images, images + 1), repeat=3))) @ cell
    neighbours = [[] for _ in range(n)]  # (j, r_j + image - r_i) for every image in reach
    for i in range(n):
        for j in range(n):
            vecs = positions[j] + shifts - positions[i]
            for vec in vecs[(np.linalg.norm(vecs, axis=1) < reach) & np.any(vecs != 0, axis=1)]:
                neighbours[i].append((j, vec))
    centres = params.shell_start + params.shell_step * np.arange(len(descriptors.shell_centres(params)))
    radial = np.zeros((n, num_types, len(centres)))
    for i in range(n):
        for j, vec in neighbours[i]:
            for k, centre in enumerate(centres):
                gap = np.linalg.norm(vec) - centre
                if abs(gap) < 3 * params.shell_width:
                    radial[i, types[j], k] += np.exp(-(gap**2) / (2 * params.shell_width**2))
    first_shell = [
        [(j, vec) for j, vec in neighbours[i] if np.linalg.norm(vec) < params.q_cutoff] for i in range(n)
    ]

    def bonds(k, species):  # unit vectors and the weight 1/N of particle k's bonds to `species`
        units = [
            vec / np.linalg.norm(vec) for j, vec in first_shell[k] if species is None or types[j] == species
        ]
        return np.reshape(units, (-1, 3)), np.full(len(units), 1.0 / max(len(units), 1))

    def invariant(units, weights, l):  # sqrt((4 pi/(2l+1)) sum_m |sum_v w_v Y_lm(v)|^2)
        square = weights @ eval_legendre(l, np.clip(units @ units.T, -1, 1)) @ weights
        # The sum is exact to ~1e-16, its root near zero only to ~1e-8: an exact zero (qbar_1
        # of an isolated pair: (Y(u) + Y(-u)) / 2 = 0) would otherwise read 5e-9.
        return np.sqrt(square) if square > 1e-14 else 0.0

    species = [*range(num_types), None]
    q = np.zeros((n, len(params.q_l), len(species)))
    qbar = np.zeros_like(q)
    for i in range(n):
        group = [i] + [j for j, _ in first_shell[i]]
        for (a, l), (b, s) in itertools.product(enumerate(params.q_l), enumerate(species)):
            q[i, a, b] = invariant(*bonds(i, s), l)
            parts = [bonds(k, s) for k in group]
            units = np.concatenate([u for u, _ in parts])
            weights = np.concatenate([w for _, w in parts]) / len(group)
            qbar[i, a, b] = invariant(units, weights, l)
    local = np.concatenate(
        [radial.reshape(n, -1), q.reshape(n, -1), qbar.reshape(n, -1), np.eye(num_types)[types]], axis=1
    )
    columns = [local]
    for radius in params.coarse_radii:
        averaged = np.zeros_like(local)
        for i in range(n):
            members = [i] + [j for j, vec in neighbours[i] if np.linalg.norm(vec) < radius]
            averaged[i] = local[members].mean(axis=0)
        columns.append(averaged)
    return np.concatenate(columns, axis=1)


@pytest.mark.parametrize("triclinic", [False, True])
def test_equals_brute_force(triclinic):
    positions, types, cell = small_system(triclinic)
    cutoff = SMALL.shell_stop + 3 * SMALL.shell_width
    assert cutoff < widths(cell).min() / 2  # the system is valid for the module
    # The module accepts any periodic image of each particle.
    images = positions + np.random.default_rng(1).integers(-2, 3, size=(len(positions), 3)) @ cell
    result = compute_descriptors(images, types, cell, NUM_TYPES, SMALL)
    expected = brute_force(positions, types, cell, NUM_TYPES, SMALL)
    assert result.shape == expected.shape == (80, len(descriptor_names(NUM_TYPES, SMALL)))
    np.testing.assert_allclose(result, expected, rtol=0, atol=1e-10)
    names = descriptor_names(NUM_TYPES, SMALL)
    columns = dict(zip(names, result.T, strict=True))
    # Every part is exercised: absent type 3 gives zeros, some particles lack a type-2 bond.
    assert not np.any(columns["rho_s3_r1.10"]) and not np.any(columns["q6_s3"])
    assert np.any(columns["q6_s2"] == 0) and np.any(columns["q6_s2"] > 0)
    assert np.any(columns["rho_s2_r1.10"]) and np.any(columns["qbar2_s1"])


def test_invariant_under_rotation_translation_permutation():
    snapshot = read_snapshots(KA_CONFIG)[0]
    positions, types, cell = snapshot.positions, snapshot.types, snapshot.cell
    params = default_params(positions, cell)
    reference = compute_descriptors(positions, types, cell, 2, params)
    rng = np.random.default_rng(0)
    rotation, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    rotation *= np.linalg.det(rotation)  # proper rotation
    rotated = compute_descriptors(positions @ rotation.T, types, cell @ rotation.T, 2, params)
    np.testing.assert_allclose(rotated, reference, rtol=0, atol=1e-10)
    shifted = compute_descriptors(positions + rng.normal(scale=5.0, size=3), types, cell, 2, params)
    np.testing.assert_allclose(shifted, reference, rtol=0, atol=1e-10)
    order = rng.permutation(len(positions))
    permuted = compute_descriptors(positions[order], types[order], cell, 2, params)
    np.testing.assert_allclose(permuted, reference[order], rtol=0, atol=1e-10)


def test_default_params_follow_the_length_scale():
    cuzr = default_params(np.zeros((8000, 3)), np.full(3, 50.23))  # a = 2.51 Å
    assert cuzr == DescriptorParams("structure", 2.0, 7.0, 0.2, 0.2, (4, 6), 3.8, (2.5, 3.8, 5.5, 7.5))
    ka = default_params(np.zeros((1000, 3)), np.full(3, 9.4104), "radial")  # density 1.2, a = 0.941
    assert ka == DescriptorParams("radial", 0.75, 2.6, 0.075, 0.075, (), 1.4, (0.94, 1.4, 2.1, 2.8))
    assert default_params(np.zeros((1000, 3)), np.full(3, 9.4104), q_cutoff=1.45).q_cutoff == 1.45
    # the fine shells of learned fields scale too, and are set only when fields are learned
    assert default_params(np.zeros((8000, 3)), np.full(3, 50.23), learned_fields=["pot"]).learned_step == 0.05
    assert cuzr.learned_step == 0.0
    names = descriptor_names(2, cuzr)
    assert len(names) == len(set(names)) == 5 * (2 * 26 + 2 * 2 * 3 + 2)
    assert names[:2] == ["rho_s0_r2.00", "rho_s0_r2.20"] and "cg3.80:q6_all" in names
    fine = DescriptorParams.from_dict({**ka.to_dict(), "coarse_radii": [0.945, 0.94]})
    assert descriptor_names(2, fine)[-1] == "cg0.94:type1" and "cg0.945:rho_s0_r0.750" in descriptor_names(
        2, fine
    )


def test_params_round_trip_and_refuse_bad_values():
    params = default_params(np.zeros((1000, 3)), np.full(3, 9.4104))
    assert DescriptorParams.from_dict(json.loads(json.dumps(params.to_dict()))) == params
    good = params.to_dict()
    bad = [
        ({"shell_widht": 0.1}, "shell_widht"),
        ({"shell_width": -0.1}, "shell_width"),
        ({"shell_step": 0}, "shell_step"),
        ({"shell_stop": 0.5}, "shell_stop"),
        ({"q_l": [6, 0]}, "q_l"),
        ({"q_l": [6.0]}, "q_l"),
        ({"coarse_radii": [1.0, 1.0]}, "coarse_radii"),
        ({"q_cutoff": "1.4"}, "q_cutoff"),
        ({"name": ""}, "name"),
    ]
    for change, key in bad:
        with pytest.raises(ValueError, match=key):
            DescriptorParams.from_dict({**good, **change})
    with pytest.raises(ValueError, match="missing.*q_cutoff"):
        DescriptorParams.from_dict({k: v for k, v in good.items() if k != "q_cutoff"})
    with pytest.raises(ValueError, match="known: structure, radial"):
        default_params(np.zeros((10, 3)), np.ones(3), "bonds")
    with pytest.raises(ValueError, match="q_cutof"):
        default_params(np.zeros((10, 3)), np.ones(3), q_cutof=1.0)


def test_refuses_cutoff_beyond_half_the_cell_and_bad_types():
    positions, types, cell = small_system(triclinic=True)
    too_far = DescriptorParams.from_dict({**SMALL.to_dict(), "coarse_radii": [widths(cell).min() / 2]})
    with pytest.raises(ValueError, match="half the cell"):
        compute_descriptors(positions, types, cell, NUM_TYPES, too_far)
    with pytest.raises(ValueError, match="types must lie in 0..1"):
        compute_descriptors(positions, types, cell, 2, SMALL)
    with pytest.raises(ValueError, match="integers"):
        compute_descriptors(positions, types.astype(float), cell, NUM_TYPES, SMALL)


def test_radial_set_has_no_orientational_columns():
    positions, types, cell = small_system(triclinic=False)
    radial = DescriptorParams.from_dict({**SMALL.to_dict(), "q_l": []})
    result = compute_descriptors(positions, types, cell, NUM_TYPES, radial)
    names = descriptor_names(NUM_TYPES, radial)
    assert result.shape == (80, len(names)) and not any("q" in name for name in names)
    full = dict(
        zip(
            descriptor_names(NUM_TYPES, SMALL),
            compute_descriptors(positions, types, cell, NUM_TYPES, SMALL).T,
            strict=True,
        )
    )
    np.testing.assert_allclose(result, np.column_stack([full[name] for name in names]), rtol=0, atol=1e-12)


def test_file_fields_become_columns_and_are_coarse_grained():
    positions, types, cell = small_system(triclinic=True)
    pot = np.random.default_rng(1).standard_normal(80)
    params = DescriptorParams.from_dict({**SMALL.to_dict(), "fields": ["pot"]})
    result = compute_descriptors(positions, types, cell, NUM_TYPES, params, {"pot": pot, "other": pot + 1})
    names = descriptor_names(NUM_TYPES, params)
    assert result.shape == (80, len(names))
    np.testing.assert_array_equal(result[:, names.index("pot")], pot)
    # coarse-grained: the mean over the particle and every particle closer than the radius
    d = positions[None] - positions[:, None]
    frac = d @ np.linalg.inv(cell)
    d = (frac - np.round(frac)) @ cell  # minimum image (radii below half the smallest width)
    near = np.linalg.norm(d, axis=-1) < 2.0
    np.testing.assert_allclose(result[:, names.index("cg2.00:pot")], (near @ pot) / near.sum(1), atol=1e-12)
    # the structural columns are those of the set without fields
    plain = compute_descriptors(positions, types, cell, NUM_TYPES, SMALL)
    np.testing.assert_array_equal(
        result[:, [names.index(n) for n in descriptor_names(NUM_TYPES, SMALL)]], plain
    )
    with pytest.raises(ValueError, match="no per-particle field 'pot'"):
        compute_descriptors(positions, types, cell, NUM_TYPES, params, {"other": pot})
    with pytest.raises(ValueError, match="one finite number per particle"):
        compute_descriptors(positions, types, cell, NUM_TYPES, params, {"pot": pot[:10]})


def test_params_written_before_later_keys_existed_read_as_defaults():
    later = ("fields", "inherent", "learned_fields", "learned_step", "learned_weights")
    old = {k: v for k, v in SMALL.to_dict().items() if k not in later}
    assert DescriptorParams.from_dict(old) == SMALL and SMALL.fields == () and SMALL.inherent == ""
    assert DescriptorParams.from_dict({**old, "fields": "pot"}).fields == ("pot",)
    for change, key in [({"inherent": "lj"}, "inherent"), ({"fields": ["pot", "pot"]}, "fields")]:
        with pytest.raises(ValueError, match=key):
            DescriptorParams.from_dict({**old, **change})
