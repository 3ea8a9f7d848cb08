"""Per-particle structural descriptors for linear models and as GNN inputs (DGL-free).

Per particle, in float64, in the length unit of the positions:

1. Species-resolved radial densities in Gaussian-smeared shells (Boattini, Smallenburg and
   Filion, PRL 127, 088007, 2021; GlassMLP, Jung, Biroli and Berthier, PRL 130, 238202, 2023).
2. Species-resolved Steinhardt order ``q_l`` over the neighbours closer than ``q_cutoff``,
   and Lechner and Dellago's averaged ``qbar_l`` (J. Chem. Phys. 129, 114707, 2008).
   Formulas, and why not freud: :mod:`glassgnn.local_structure`.
3. One-hot type.
4. Optionally (``fields``) per-particle values the file carries, such as the potential energy
   and stress of the CuZr files (``pot``, ``press``, ``von``): atomic-level energies and
   stresses are classic structural indicators of metallic glasses (Egami), but they come from
   the simulation, not from this module.
5. Optionally (``learned_fields``) per-particle fields of the training files learned from the
   geometry (:mod:`glassgnn.learned_fields`): for each, a linear map per species of the
   particle from its species-resolved densities in fine shells (``learned_step`` apart and
   wide, over the shell range), fitted on the training split and stored in
   ``learned_weights``, so new snapshots need only positions.
6. Optionally (``inherent``) the same densities and orientational order of the inherent
   structure (:mod:`glassgnn.inherent`), each particle's energy there (``e_is``) and its
   distance to it (``dr_is``), for data whose pair potential is known (Kob-Andersen).
7. Coarse-grained averages of all of the above: the mean over the particles closer than
   L to i, i itself included, for each radius L (neighbours of the snapshot itself).

Columns: ``[per-particle | cg(L1) | cg(L2) | ...]``; per particle: densities (species-major,
then shell), q_l (l-major, then neighbour species 0..T-1 and "all"), qbar_l (likewise),
one-hot type, the file's fields, ``learned:``-prefixed learned fields, then ``is:``-prefixed
densities and order, ``e_is``, ``dr_is``; names from :func:`descriptor_names`.

Defaults (:func:`default_params`): each set's lengths are multiples of the mean
inter-particle distance a = (V/N)^(1/3) of the snapshot, rounded to two significant digits:
CuZr (a = 2.51 Å) shells 2.0-7.0 Å every 0.2 Å of width 0.2 Å, q_cutoff 3.8 Å, coarse radii
2.5, 3.8, 5.5, 7.5 Å; Kob-Andersen at density 1.2 (a = 0.941 sigma) shells 0.75-2.6 every
0.075 of width 0.075, q_cutoff 1.4, radii 0.94, 1.4, 2.1, 2.8; l = 4, 6.

Periodic images: every cutoff must be shorter than half the smallest perpendicular width of
the cell (one minimum image per pair); longer ones are refused with a ValueError.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from glassgnn.inherent import POTENTIALS, inherent_structure
from glassgnn.local_structure import (
    TRUNCATION,
    Pairs,
    neighbour_mean,
    radial_densities,
    snapshot_pairs,
    steinhardt,
)
from glassgnn.neighbors import cell_matrix, perpendicular_widths


@dataclass(frozen=True)
class DescriptorParams:
    """All parameters of one descriptor set, in the length unit of the positions.

    Attributes:
        name: the set's name, e.g. ``"structure"``.
        shell_start, shell_stop, shell_step: radial shell centres ``start, start + step, ...``
            up to ``stop`` (included when on the grid).
        shell_width: Gaussian width delta of each shell.
        q_l: Steinhardt degrees (empty: no bond-orientational columns).
        q_cutoff: first-shell cutoff of the Steinhardt neighbours.
        coarse_radii: radii L of the coarse-grained averages.
        fields: per-particle fields of the input files appended as columns (e.g. ``pot``);
            every file, including those given to predict.py, must carry them.
        inherent: potential of the inherent-structure columns (a name of
            :data:`glassgnn.inherent.POTENTIALS`), or ``""`` for none.
        learned_fields: per-particle fields of the training files learned from the geometry
            (e.g. ``pot``); only the training files must carry them.
        learned_step: spacing and width of the fine shells the learned fields are linear in.
        learned_weights: the fitted maps, ``[field][centre type] = (intercept, *weights)``
            with one weight per fine shell (species-major, like the densities); empty until
            :func:`glassgnn.learned_fields.fit_learned_fields` has run.
    """

    name: str
    shell_start: float
    shell_stop: float
    shell_step: float
    shell_width: float
    q_l: tuple[int, ...]
    q_cutoff: float
    coarse_radii: tuple[float, ...]
    # Added after the first datasets were built: a manifest without them means the defaults.
    fields: tuple[str, ...] = ()
    inherent: str = ""
    learned_fields: tuple[str, ...] = ()
    learned_step: float = 0.0
    learned_weights: tuple = ()

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"descriptor parameter 'name' must be a non-empty string, got {self.name!r}")
        for key in ("shell_start", "shell_stop", "shell_step", "shell_width", "q_cutoff", "learned_step"):
            allow_zero = key in ("shell_start", "learned_step")
            object.__setattr__(self, key, _number(key, getattr(self, key), allow_zero=allow_zero))
        if self.shell_stop < self.shell_start:
            raise ValueError(f"descriptor parameter 'shell_stop' ({self.shell_stop}) is below 'shell_start'")
        if (self.shell_stop - self.shell_start) / self.shell_step > 10_000:
            raise ValueError(f"descriptor parameter 'shell_step' ({self.shell_step}) gives over 10000 shells")
        degrees = _sequence("q_l", self.q_l)
        if any(not isinstance(l, int | np.integer) or isinstance(l, bool) or l < 1 for l in degrees):
            raise ValueError(f"descriptor parameter 'q_l' must hold integers >= 1, got {self.q_l!r}")
        radii = tuple(_number("coarse_radii", r) for r in _sequence("coarse_radii", self.coarse_radii))
        object.__setattr__(self, "q_l", tuple(int(l) for l in degrees))
        object.__setattr__(self, "coarse_radii", radii)
        object.__setattr__(self, "fields", _names("fields", self.fields))
        self._check_learned()
        if self.inherent not in ("", *POTENTIALS):
            raise ValueError(
                f"descriptor parameter 'inherent' must be one of {('', *POTENTIALS)}, got {self.inherent!r}"
            )

    def _check_learned(self) -> None:
        learned = _names("learned_fields", self.learned_fields)
        if set(learned) & set(self.fields):
            raise ValueError(
                f"descriptor parameter 'learned_fields' must hold names not in 'fields', got {learned!r}"
            )
        if learned and self.learned_step == 0:
            raise ValueError("descriptor parameter 'learned_step' must be positive with 'learned_fields'")
        object.__setattr__(self, "learned_fields", learned)
        try:  # nested lists from JSON -> nested tuples of floats
            weights = tuple(
                tuple(tuple(float(w) for w in row) for row in field) for field in self.learned_weights
            )
        except (TypeError, ValueError):
            raise ValueError(
                "descriptor parameter 'learned_weights' must be [field][type][weights]"
            ) from None
        if weights and len(weights) != len(learned):
            raise ValueError(
                f"'learned_weights' hold {len(weights)} fields, 'learned_fields' name {len(learned)}"
            )
        object.__setattr__(self, "learned_weights", weights)

    def to_dict(self) -> dict:
        """Every field, JSON-safe (tuples as lists)."""
        return {key: _lists(value) for key, value in self._items()}

    @classmethod
    def from_dict(cls, d: dict) -> DescriptorParams:
        """The inverse of :meth:`to_dict`; an unknown or missing key or a bad value is a ValueError."""
        fields = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(d) - set(fields))
        missing = [key for key in required_keys() if key not in d]
        if unknown or missing:
            raise ValueError(
                f"descriptor parameters: unknown {unknown}, missing {missing} (fields: {fields})"
            )
        return cls(**{key: tuple(value) if isinstance(value, list) else value for key, value in d.items()})

    def _items(self):
        return ((f.name, getattr(self, f.name)) for f in dataclasses.fields(self))


def _lists(value):
    return [_lists(v) for v in value] if isinstance(value, tuple) else value


def required_keys() -> list[str]:
    """The parameters without a default: a mapping holding all of them is complete."""
    return [f.name for f in dataclasses.fields(DescriptorParams) if f.default is dataclasses.MISSING]


def _number(key: str, value, allow_zero: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise ValueError(f"descriptor parameter {key!r} must be a number, got {value!r}")
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"descriptor parameter {key!r} must be a finite positive length, got {value!r}")
    return float(value)


def _names(key: str, value) -> tuple[str, ...]:
    """A tuple of distinct non-empty field names from a name or a sequence of names."""
    names = _sequence(key, (value,) if isinstance(value, str) else value)
    if any(not isinstance(name, str) or not name for name in names):
        raise ValueError(f"descriptor parameter {key!r} must hold field names, got {value!r}")
    return names


def _sequence(key: str, value) -> tuple:
    if not isinstance(value, tuple | list) or len(set(value)) != len(value):
        raise ValueError(f"descriptor parameter {key!r} must be a tuple of distinct values, got {value!r}")
    return tuple(value)


# Each named set's lengths in units of the mean inter-particle distance a = (V/N)^(1/3)
# (CuZr a = 2.51 Å, Kob-Andersen at density 1.2 a = 0.941 sigma); default_params rounds them
# to two digits. Chosen on validation with bench/bench_descriptors.py (ridge val Pearson,
# CuZr / KA at tau_alpha): these 0.613 / 0.413; l = 2, 4, 6, 8 and radii 1.5-3.0 a 0.609 /
# 0.403; widths of 0.5 or 1.5 steps, q_cutoff 1.55 a, l up to 12 or shells to 3.2 a: lower.
_RELATIVE = {
    "shell_start": 0.8,
    "shell_stop": 2.8,
    "shell_step": 0.08,
    "shell_width": 0.08,
    "q_cutoff": 1.52,
    "coarse_radii": (1.0, 1.5, 2.2, 3.0),
}
# Fine shells of learned_fields, set only when they are asked for (0.05 Å on CuZr): on train6
# the learned pot correlates with the file's at 0.9988 (Cu) and 0.9995 (Zr); 0.2 Å, 0.92 (Cu).
LEARNED_STEP = 0.02
DESCRIPTOR_SETS: dict[str, dict] = {
    "structure": {**_RELATIVE, "q_l": (4, 6)},  # radial + q_l + qbar_l + type
    "radial": {**_RELATIVE, "q_l": ()},  # radial + type: cheaper
    # structure + the Kob-Andersen inherent structure (glassgnn.inherent)
    "inherent": {**_RELATIVE, "q_l": (4, 6), "inherent": "kob_andersen"},
}


def readable(length: float) -> float:
    """``length`` rounded to two significant digits (2.009 -> 2.0, 0.0753 -> 0.075)."""
    quantum = 0.1 * 10.0 ** math.floor(math.log10(length))
    return round(round(length / quantum) * quantum, 12)


def default_params(
    positions: np.ndarray, cell: np.ndarray, name: str = "structure", **overrides
) -> DescriptorParams:
    """The named set's parameters for a snapshot's length scale.

    Args:
        positions: [n_atoms, 3] positions (only their number is used).
        cell: (3,) or (3, 3) cell.
        name: a key of :data:`DESCRIPTOR_SETS`.
        overrides: replacement values by field name of :class:`DescriptorParams`.
    """
    if name not in DESCRIPTOR_SETS:
        raise ValueError(f"unknown descriptor set {name!r}; known: {', '.join(DESCRIPTOR_SETS)}")
    unknown = sorted(set(overrides) - {f.name for f in dataclasses.fields(DescriptorParams)})
    if unknown:
        raise ValueError(f"unknown descriptor parameter(s) {unknown}")
    spacing = (abs(np.linalg.det(cell_matrix(cell))) / len(positions)) ** (1 / 3)
    values = {"name": name}
    for key, value in DESCRIPTOR_SETS[name].items():
        if key not in _RELATIVE:  # not a length: q_l, fields, inherent
            values[key] = value
        elif isinstance(value, tuple):
            values[key] = tuple(readable(v * spacing) for v in value)
        else:
            values[key] = readable(value * spacing)
    if overrides.get("learned_fields"):
        values["learned_step"] = readable(LEARNED_STEP * spacing)
    return DescriptorParams(**{**values, **overrides})


def shell_centres(params: DescriptorParams, step: float | None = None) -> np.ndarray:
    """[n_shells] radial shell centres ``start + k * step`` up to ``stop`` (1e-9 tolerance).

    Args:
        step: the spacing, default ``params.shell_step`` (the fine shells pass ``learned_step``).
    """
    step = params.shell_step if step is None else step
    count = math.floor((params.shell_stop - params.shell_start) / step + 1e-9) + 1
    return params.shell_start + step * np.arange(count)


def descriptor_names(num_types: int, params: DescriptorParams) -> list[str]:
    """One name per column of :func:`compute_descriptors`, e.g. ``rho_s1_r2.40``, ``q6_all``,
    ``qbar6_s0``, ``type1``, ``cg3.80:rho_s0_r2.00``."""
    decimals = max(2, 1 - math.floor(math.log10(params.shell_step)))
    species = [f"s{t}" for t in range(num_types)] + ["all"]
    names = [f"rho_s{t}_r{r:.{decimals}f}" for t in range(num_types) for r in shell_centres(params)]
    for kind in ("q", "qbar"):
        names += [f"{kind}{l}_{s}" for l in params.q_l for s in species]
    structure = list(names)
    names += [f"type{t}" for t in range(num_types)]
    names += list(params.fields)
    names += [f"learned:{name}" for name in params.learned_fields]
    if params.inherent:
        names += [f"is:{name}" for name in structure] + ["e_is", "dr_is"]
    return names + [f"cg{_length(radius)}:{name}" for radius in params.coarse_radii for name in names]


def _length(value: float) -> str:
    """At least two decimals, more when the value has them (3.8 -> 3.80, 0.945 -> 0.945)."""
    decimals = next((d for d in range(2, 9) if round(value, d) == value), 9)
    return f"{value:.{decimals}f}"


def compute_descriptors(
    positions: np.ndarray,
    types: np.ndarray,
    cell: np.ndarray,
    num_types: int,
    params: DescriptorParams,
    fields: dict[str, np.ndarray] | None = None,
) -> np.ndarray:
    """Descriptors of every particle of one periodic snapshot.

    Args:
        positions: [n_atoms, 3] positions (any image, like :func:`glassgnn.neighbors.radius_pairs`).
        types: [n_atoms] integer types in 0..num_types-1.
        cell: (3,) box lengths or (3, 3) cell vectors as rows.
        num_types: the dataset's type count (absent types still get their, zero, columns).
        params: the descriptor set.
        fields: the snapshot's per-particle fields, name -> [n_atoms]; those named by
            ``params.fields`` become columns (a missing one is a ValueError).

    Returns:
        [n_atoms, n_descriptors] float64, columns named by :func:`descriptor_names`.
    """
    positions = np.asarray(positions, dtype=np.float64)
    types = np.asarray(types)
    n_atoms = len(positions)
    if positions.ndim != 2 or positions.shape[1] != 3 or not np.all(np.isfinite(positions)):
        raise ValueError(f"positions must be a finite [n_atoms, 3] array, got shape {positions.shape}")
    if types.shape != (n_atoms,) or types.dtype.kind not in "iu":
        raise ValueError(f"types must be [n_atoms] integers, got shape {types.shape} {types.dtype}")
    if n_atoms and (types.min() < 0 or types.max() >= num_types):
        raise ValueError(f"types must lie in 0..{num_types - 1}, got {types.min()}..{types.max()}")
    cell = cell_matrix(cell)
    cutoff = checked_cutoff(params, cell)
    types = types.astype(np.int64)
    pairs = snapshot_pairs(positions, cell, cutoff)
    parts = [_structure(pairs, types, num_types, params), np.eye(num_types)[types]]
    parts += [_field_column(fields or {}, name, n_atoms) for name in params.fields]
    if params.learned_fields:
        parts.append(_learned(pairs, types, num_types, params))
    if params.inherent:
        minimum = inherent_structure(positions, types, cell, params.inherent)
        parts.append(_structure(snapshot_pairs(minimum.positions, cell, cutoff), types, num_types, params))
        parts.append(np.stack([minimum.energy, minimum.displacement], axis=1))
    features = np.concatenate(parts, axis=1)
    averaged = [features]
    for radius in params.coarse_radii:
        near = pairs.closer_than(radius)
        averaged.append(neighbour_mean(near.i, near.j, n_atoms) @ features)
    return np.concatenate(averaged, axis=1)


def checked_cutoff(params: DescriptorParams, cell: np.ndarray) -> float:
    """The pair cutoff the descriptors need; a ValueError when the (3, 3) cell is too small."""
    cutoff = max(
        shell_centres(params)[-1] + TRUNCATION * params.shell_width,
        *params.coarse_radii,
        params.q_cutoff if params.q_l else 0.0,
        params.shell_stop + TRUNCATION * params.learned_step if params.learned_fields else 0.0,
    )
    half_width = perpendicular_widths(cell).min() / 2
    if cutoff >= half_width:
        raise ValueError(
            f"descriptor cutoff {cutoff:g} (largest shell + {TRUNCATION:g} widths, coarse radius, "
            f"q_cutoff or fine shell) must be below half the cell's smallest width, {half_width:g}"
        )
    return cutoff


def _structure(pairs: Pairs, types: np.ndarray, num_types: int, params: DescriptorParams) -> np.ndarray:
    """[n_atoms, ...] shell densities, then q_l and qbar_l when ``params.q_l`` is set."""
    centres = shell_centres(params)
    parts = [radial_densities(pairs, types, num_types, centres, params.shell_step, params.shell_width)]
    if params.q_l:
        parts += steinhardt(pairs, types, num_types, params.q_l, params.q_cutoff)
    return np.concatenate(parts, axis=1)


def fine_basis(pairs: Pairs, types: np.ndarray, num_types: int, params: DescriptorParams) -> np.ndarray:
    """[n_atoms, num_types * n_fine] densities in the fine shells of the learned fields.

    ``pairs`` as from :func:`snapshot_pairs`, reaching at least ``shell_stop + 3 learned_step``.
    """
    step = params.learned_step
    centres = shell_centres(params, step)
    return radial_densities(pairs, types, num_types, centres, step, step)


def _learned(pairs: Pairs, types: np.ndarray, num_types: int, params: DescriptorParams) -> np.ndarray:
    """[n_atoms, len(learned_fields)] the fitted linear maps applied per centre type."""
    if not params.learned_weights:
        raise ValueError(f"learned fields {list(params.learned_fields)} have not been fitted")
    basis = fine_basis(pairs, types, num_types, params)
    weights = np.array(params.learned_weights)  # [n_fields, n_types, 1 + n_basis]
    if weights.shape[1:] != (num_types, 1 + basis.shape[1]):
        raise ValueError(
            f"learned_weights have shape {weights.shape}, expected [{len(params.learned_fields)}, "
            f"{num_types}, {1 + basis.shape[1]}] for this type count and learned_step"
        )
    per_particle = weights[:, types]  # [n_fields, n_atoms, 1 + n_basis]
    return (per_particle[..., 0] + np.einsum("fak,ak->fa", per_particle[..., 1:], basis)).T


def _field_column(fields: dict[str, np.ndarray], name: str, n_atoms: int) -> np.ndarray:
    """[n_atoms, 1] float64 values of the per-particle field ``name``."""
    if name not in fields:
        raise ValueError(f"no per-particle field {name!r} for the descriptors (has: {sorted(fields)})")
    values = np.asarray(fields[name], dtype=np.float64)
    if values.shape not in ((n_atoms,), (n_atoms, 1)) or not np.all(np.isfinite(values)):
        raise ValueError(f"field {name!r} must hold one finite number per particle, got shape {values.shape}")
    return values.reshape(n_atoms, 1)
