"""Learned fields: per-atom fields of the training files learned from the geometry
(``--descriptor_param learned_fields=[...]``), fitted on the train split only and rebuilt from
positions alone."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import construct_graph
from glassgnn import schema
from glassgnn.dataset import build_graphs, load_manifest, load_split
from glassgnn.descriptors import (
    DescriptorParams,
    checked_cutoff,
    compute_descriptors,
    descriptor_names,
    fine_basis,
    snapshot_pairs,
)
from glassgnn.learned_fields import RIDGE, FieldSnapshot, fit_learned_fields
from glassgnn.neighbors import radius_pairs

BOX = 6.0
PARAMS = DescriptorParams(
    name="test",
    shell_start=0.5,
    shell_stop=2.2,
    shell_step=0.2,
    shell_width=0.2,
    q_l=(4,),
    q_cutoff=1.3,
    coarse_radii=(1.3,),
    learned_fields=("pot",),
    learned_step=0.05,
)
CLI_PARAMS = ["shell_start=0.5", "shell_stop=2.2", "shell_step=0.2", "shell_width=0.2"]
CLI_PARAMS += ["q_l=[4]", "q_cutoff=1.3", "coarse_radii=[1.3]", "learned_step=0.05"]


def jittered_lattice(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """216 particles on a jittered simple-cubic lattice (spacing 1) of types 0/1 (positions, types)."""
    rng = np.random.default_rng(seed)
    grid = np.stack(np.meshgrid(*[np.arange(6.0)] * 3, indexing="ij"), -1).reshape(-1, 3)
    return grid + rng.normal(scale=0.12, size=grid.shape), (rng.random(len(grid)) < 0.4).astype(np.int64)


def eam_energy(positions: np.ndarray, types: np.ndarray, embedding: bool) -> np.ndarray:
    """[n] embedded-atom-like energy: a Morse pair term per type pair, smoothly cut at 2.2, plus
    (``embedding``) -sqrt of an exponential density."""
    src, dst, disp = radius_pairs(positions, np.full(3, BOX), 2.2)
    r = np.linalg.norm(disp, axis=1)
    depth = np.array([[1.0, 1.4], [1.4, 0.7]])[types[src], types[dst]]
    cut = (1 - (r / 2.2) ** 2) ** 2
    pair = depth * ((1 - np.exp(-2.0 * (r - 1.0))) ** 2 - 1) * cut
    energy = 0.5 * np.bincount(src, pair, len(positions))
    if embedding:
        energy -= np.sqrt(np.bincount(src, np.exp(-1.5 * (r - 1.0)) * cut, len(positions)))
    return energy


def _learned_column(params, positions, types):
    values = compute_descriptors(positions, types, np.full(3, BOX), 2, params)
    return values[:, descriptor_names(2, params).index("learned:pot")]


@pytest.mark.parametrize("embedding", [False, True])
def test_learns_an_embedded_atom_energy_from_the_geometry(embedding):
    """The pair part of an EAM energy is linear in the fine shells (up to their smoothing of the
    steep Morse core); the embedding part to first order. Fitted on six snapshots, the map
    reproduces a seventh's energy within each species (0.998-0.999 here)."""
    snapshots = []
    for seed in range(6):
        positions, types = jittered_lattice(seed)
        fields = {"pot": eam_energy(positions, types, embedding)}
        snapshots.append(FieldSnapshot(positions, types, np.full(3, BOX), fields, f"s{seed}"))
    fitted = fit_learned_fields(snapshots, 2, PARAMS)
    positions, types = jittered_lattice(7)
    learned, true = _learned_column(fitted, positions, types), eam_energy(positions, types, embedding)
    for t in (0, 1):
        assert np.corrcoef(learned[types == t], true[types == t])[0, 1] > 0.995
    # the weights are ridge least squares with an unpenalised intercept (numpy's lstsq on [X; sqrt(a) I])
    basis = np.concatenate([_basis(snapshot) for snapshot in snapshots])
    all_types = np.concatenate([snapshot.types for snapshot in snapshots])
    energy = np.concatenate([snapshot.fields["pot"] for snapshot in snapshots])
    for t in (0, 1):
        x, y = basis[all_types == t], energy[all_types == t]
        xc = x - x.mean(0)
        strength = RIDGE * np.trace(xc.T @ xc) / x.shape[1]
        a = np.vstack([xc, np.sqrt(strength) * np.eye(x.shape[1])])
        weights = np.linalg.lstsq(a, np.concatenate([y - y.mean(), np.zeros(x.shape[1])]), rcond=None)[0]
        np.testing.assert_allclose(
            fitted.learned_weights[0][t][1:], weights, rtol=1e-6, atol=1e-8 * np.abs(weights).max()
        )
        assert fitted.learned_weights[0][t][0] == pytest.approx(y.mean() - x.mean(0) @ weights)


def _basis(snapshot: FieldSnapshot) -> np.ndarray:
    cell = np.eye(3) * BOX
    return fine_basis(
        snapshot_pairs(snapshot.positions, cell, checked_cutoff(PARAMS, cell)), snapshot.types, 2, PARAMS
    )


def test_learned_columns_are_invariant_and_round_trip_through_json():
    positions, types = jittered_lattice(3)
    snapshot = FieldSnapshot(positions, types, np.full(3, BOX), {"pot": eam_energy(positions, types, True)})
    fitted = fit_learned_fields([snapshot], 2, PARAMS)
    assert DescriptorParams.from_dict(json.loads(json.dumps(fitted.to_dict()))) == fitted
    reference = compute_descriptors(positions, types, np.full(3, BOX), 2, fitted)
    rng = np.random.default_rng(0)
    rotation, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    rotation *= np.linalg.det(rotation)
    rotated = compute_descriptors(positions @ rotation.T, types, np.eye(3) * BOX @ rotation.T, 2, fitted)
    np.testing.assert_allclose(rotated, reference, rtol=0, atol=1e-9)
    order = rng.permutation(len(positions))
    shifted = compute_descriptors(
        positions[order] + rng.normal(size=3), types[order], np.full(3, BOX), 2, fitted
    )
    np.testing.assert_allclose(shifted, reference[order], rtol=0, atol=1e-9)


def test_refuses_unfitted_or_misshapen_weights_and_bad_params():
    positions, types = jittered_lattice(0)
    with pytest.raises(ValueError, match="have not been fitted"):
        compute_descriptors(positions, types, np.full(3, BOX), 2, PARAMS)
    misshapen = DescriptorParams.from_dict({**PARAMS.to_dict(), "learned_weights": [[[0.0, 1.0]] * 2]})
    with pytest.raises(ValueError, match="learned_weights have shape"):
        compute_descriptors(positions, types, np.full(3, BOX), 2, misshapen)
    good = PARAMS.to_dict()
    for change, message in [
        ({"learned_step": 0.0}, "learned_step"),
        ({"fields": ["pot"]}, "not in 'fields'"),
        ({"learned_weights": [[[0.0]], [[0.0]]]}, "hold 2 fields"),
        ({"learned_weights": [["a"]]}, r"\[field\]\[type\]"),
    ]:
        with pytest.raises(ValueError, match=message):
            DescriptorParams.from_dict({**good, **change})
    with pytest.raises(ValueError, match="s9: no field"):
        fit_learned_fields([FieldSnapshot(positions, types, np.full(3, BOX), {}, "s9")], 2, PARAMS)


def _write(path, seed: int, with_pot: bool = True):
    positions, types = jittered_lattice(seed)
    data = {
        "positions": positions,
        "types": types + 1,
        "box": np.full(3, BOX),
        "y": np.random.default_rng(seed).random(216),
    }
    if with_pot:
        data["pot"] = eam_energy(positions, types, True)
    np.savez(path, **data)
    return path


def test_construct_graph_fits_on_train_only_and_predict_rebuilds_from_positions(tmp_path, capsys):
    train = [_write(tmp_path / f"t{i}.npz", i) for i in range(3)]
    val = _write(tmp_path / "v.npz", 7, with_pot=False)  # validation needs positions only
    common = ["--target", "y", "--cutoff", "1.5", "--descriptors", "--descriptor_param", *CLI_PARAMS]
    out = tmp_path / "ds"
    construct_graph.main(
        [
            "--train",
            *map(str, train),
            "--val",
            str(val),
            *common,
            "learned_fields=[pot]",
            "--output_dir",
            str(out),
        ]
    )
    manifest = load_manifest(out)
    params = DescriptorParams.from_dict(manifest.graph["descriptors"])
    direct = [
        FieldSnapshot(*jittered_lattice(i), np.full(3, BOX), {"pot": np.load(p)["pot"]})
        for i, p in enumerate(train)
    ]
    assert params == fit_learned_fields(
        direct, 2, DescriptorParams.from_dict({**params.to_dict(), "learned_weights": []})
    )
    stored = load_split(out, "val")[0].ndata[schema.EXTRA_PREFIX + schema.DESCRIPTORS]
    positions, types = jittered_lattice(7)
    column = manifest.descriptor_names.index("learned:pot")
    true = eam_energy(positions, types, True)
    assert np.corrcoef(stored[:, column].numpy(), true)[0, 1] > 0.99  # three training snapshots
    rebuilt = build_graphs([val], manifest.graph, manifest.type_map)[0]  # predict.py's path
    assert torch.equal(rebuilt.ndata[schema.EXTRA_PREFIX + schema.DESCRIPTORS], stored)
    assert "fitted on the train split" in capsys.readouterr().out
    refused = tmp_path / "refused"
    for files, field, message in [
        ([*train[:2], val], "pot", "v.npz frame 0: no field(s) ['pot'] to learn"),
        (train, "y", "the target 'y' cannot be a descriptor field"),
    ]:
        with pytest.raises(SystemExit) as exit_:
            construct_graph.main(
                ["--train", *map(str, files), "--val", str(val), *common, f"learned_fields=[{field}]"]
                + ["--output_dir", str(refused)]
            )
        err = str(exit_.value.code).strip()
        assert message in err and len(err.splitlines()) == 1
        assert not refused.exists()
