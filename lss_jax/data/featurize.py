"""MD featurization with mdtraj: torsions as (sin, cos) and pairwise distances, standardized.

Features go into the SRV encoder; the decoder works on aligned Cartesian coordinates instead.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

__all__ = [
    "DISTANCE_SELECTIONS",
    "TORSIONS",
    "FeatureSpec",
    "Standardizer",
    "feature_names",
    "featurize",
    "load_trajectories",
    "standardizer_fit",
]

TORSIONS = ("phi", "psi", "omega", "chi1", "chi2", "chi3", "chi4", "ca")
DISTANCE_SELECTIONS = {"ca": "name CA", "heavy": "not element H"}


@dataclasses.dataclass(frozen=True)
class FeatureSpec:
    """Which features to compute.

    Attributes:
        torsions: mdtraj torsion names among ``phi, psi, omega, chi1..chi4`` (``"chi"`` means all
            four), and ``"ca"``: the Cα pseudo-torsions (Cα of four consecutive residues of a chain, what a
            Cα-only model has); each torsion contributes ``sin`` and ``cos``.
        distances: ``"heavy"`` (all heavy-atom pairs), ``"ca"`` (C-alpha pairs), any mdtraj
            selection string, or ``None`` for no distances.

    Example:
        >>> FeatureSpec(torsions=("phi", "chi"), distances=None).expanded_torsions()
        ('phi', 'chi1', 'chi2', 'chi3', 'chi4')
    """

    torsions: tuple[str, ...] = ("phi", "psi", "chi")
    distances: str | None = "heavy"

    def expanded_torsions(self) -> tuple[str, ...]:
        out = []
        for name in self.torsions:
            names = ("chi1", "chi2", "chi3", "chi4") if name == "chi" else (name,)
            for n in names:
                if n not in TORSIONS:
                    raise ValueError(f"unknown torsion {n!r}; choose among {TORSIONS} or 'chi'.")
                out.append(n)
        return tuple(dict.fromkeys(out))


def _distance_pairs(topology, spec: FeatureSpec) -> np.ndarray:
    if spec.distances is None:
        return np.zeros((0, 2), int)
    selection = DISTANCE_SELECTIONS.get(spec.distances, spec.distances)
    try:
        atoms = topology.select(selection)
    except Exception as err:
        raise ValueError(
            f"distances {selection!r} is not a valid mdtraj selection ({_selection_error(err)}); use 'heavy', 'ca' "
            "or e.g. 'name CA CB'."
        ) from err
    if len(atoms) < 2:
        raise ValueError(
            f"distance selection {selection!r} matches {len(atoms)} atom(s); it needs at least 2 "
            "(use 'heavy', 'ca' or another mdtraj selection)."
        )
    return np.array(list(itertools.combinations(atoms, 2)), dtype=int)


def _ca_quads(topology) -> np.ndarray:
    """``[n, 4]`` atom indices of the Cα pseudo-torsions: Cα of four consecutive residues of a chain."""
    quads = []
    for chain in topology.chains:
        ca = [a.index for r in chain.residues for a in r.atoms if a.name == "CA"]
        quads += [ca[k : k + 4] for k in range(len(ca) - 3)]
    return np.array(quads, dtype=int).reshape(-1, 4)


def _torsions(traj, name: str) -> tuple[np.ndarray, np.ndarray]:
    """``(indices [n, 4], angles [n_frames, n])`` of one torsion kind."""
    import mdtraj as md

    if name == "ca":
        quads = _ca_quads(traj.topology)
        return quads, md.compute_dihedrals(traj, quads) if len(quads) else np.zeros((traj.n_frames, 0), np.float32)
    return getattr(md, f"compute_{name}")(traj)


def featurize(traj, spec: FeatureSpec = FeatureSpec()) -> np.ndarray:
    """Features ``[n_frames, n_features]`` (float32) of an ``mdtraj.Trajectory``.

    Order: for each torsion type in ``spec``, ``sin`` of all its torsions then ``cos``; then the
    distances (nm) of all selected atom pairs. :func:`feature_names` gives matching labels.

    Example:
        >>> from lss_jax.datasets import load_alanine_dipeptide
        >>> traj = load_alanine_dipeptide("train", stride=500)
        >>> featurize(traj).shape   # sin/cos of phi and psi (alanine has no chi), 45 heavy-atom distances
        (50, 49)
        >>> featurize(traj, FeatureSpec(torsions=("phi", "psi"), distances=None)).dtype
        dtype('float32')
    """
    import mdtraj as md

    blocks = []
    for name in spec.expanded_torsions():
        _, angles = _torsions(traj, name)
        if angles.shape[1]:
            blocks += [np.sin(angles), np.cos(angles)]
    pairs = _distance_pairs(traj.topology, spec)
    if len(pairs):
        blocks.append(md.compute_distances(traj, pairs))
    if not blocks:
        raise ValueError("the feature specification selects no feature for this topology; add torsions or distances.")
    features = np.concatenate(blocks, axis=1).astype(np.float32)
    if not np.all(np.isfinite(features)):
        bad = np.flatnonzero(~np.all(np.isfinite(features), axis=1))
        raise ValueError(f"NaN/Inf features in {len(bad)} frame(s) (first: {bad[0]}); check the coordinates.")
    return features


def feature_names(topology, spec: FeatureSpec = FeatureSpec()) -> list[str]:
    """Labels of the columns of :func:`featurize`.

    Example:
        >>> from lss_jax.datasets import load_alanine_dipeptide
        >>> topology = load_alanine_dipeptide("train", stride=500).topology
        >>> feature_names(topology, FeatureSpec(torsions=("phi",), distances=None))
        ['sin phi:ACE1-C-ALA2-N-ALA2-CA-ALA2-C', 'cos phi:ACE1-C-ALA2-N-ALA2-CA-ALA2-C']
        >>> len(feature_names(topology))
        49
    """
    import mdtraj as md

    names = []
    dummy = md.Trajectory(np.zeros((1, topology.n_atoms, 3), np.float32), topology)
    for name in spec.expanded_torsions():
        idx, _ = _torsions(dummy, name)
        labels = [f"{name}:{'-'.join(str(topology.atom(i)) for i in quad)}" for quad in idx]
        names += [f"sin {lab}" for lab in labels] + [f"cos {lab}" for lab in labels]
    for i, j in _distance_pairs(topology, spec):
        names.append(f"d:{topology.atom(i)}-{topology.atom(j)}")
    return names


class Standardizer(NamedTuple):
    """Per-feature ``mean`` and ``std`` (``[n_features]``), float32.

    Example:
        >>> scaler = Standardizer(np.array([1.0], np.float32), np.array([2.0], np.float32))
        >>> scaler.transform(np.array([[3.0]])).tolist(), scaler.inverse(np.array([[1.0]])).tolist()
        ([[1.0]], [[3.0]])
    """

    mean: np.ndarray
    std: np.ndarray

    def transform(self, x):
        return (x - self.mean[None, :]) / self.std[None, :]

    def inverse(self, z):
        return z * self.std[None, :] + self.mean[None, :]


def standardizer_fit(data: np.ndarray | Sequence[np.ndarray], *, floor: float = 1e-6) -> Standardizer:
    """Fit a :class:`Standardizer` to ``[n, d]`` data (or a list of such arrays).

    Example:
        >>> scaler = standardizer_fit([np.array([[0.0], [2.0]]), np.array([[4.0]])])
        >>> scaler.mean.tolist(), round(float(scaler.std[0]), 3)
        ([2.0], 1.633)
    """
    x = np.concatenate([np.asarray(d, np.float64) for d in data]) if isinstance(data, (list, tuple)) else np.asarray(data, np.float64)
    std = x.std(axis=0)
    return Standardizer(x.mean(axis=0).astype(np.float32), np.maximum(std, floor).astype(np.float32))


SUPPORTED_EXTENSIONS = (".xtc", ".dcd", ".trr", ".h5", ".nc", ".netcdf", ".pdb", ".gro", ".xyz", ".lh5", ".binpos", ".mdcrd", ".crd", ".dtr", ".arc", ".hdf5", ".lammpstrj", ".xml", ".mol2")


_SELF_CONTAINED = (".h5", ".hdf5", ".lh5", ".pdb", ".gro", ".xml", ".mol2")


def _one_line(err: BaseException) -> str:
    """The first line of an exception's message (third-party messages can span several)."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return lines[0] if lines else type(err).__name__


def _selection_error(err: BaseException) -> str:
    """Where an mdtraj selection string fails to parse, without pyparsing's list of every expected token."""
    text = " ".join(str(err).split())
    return text[text.rindex("found "):] if "found " in text else _one_line(err)


def load_trajectories(paths: Sequence[str | Path], topology: str | Path | None = None, *, stride: int = 1,
                      first_frame_only: bool = False) -> list:
    """Load trajectories with mdtraj, with clear errors for missing files, formats and atom counts.

    Args:
        paths: trajectory files (any mdtraj format).
        topology: topology file (PDB, prmtop, ...); needed by formats without one (xtc, dcd, ...).
        stride: keep every ``stride``-th frame.
        first_frame_only: read only the first frame of each file: every check of the files, none of their size
            (what :func:`lss_jax.data.stream.load_training_data` does before streaming them).

    Returns:
        List of ``mdtraj.Trajectory``, one per file.

    Example:
        >>> from lss_jax.datasets import alanine_dipeptide_files
        >>> files = alanine_dipeptide_files()
        >>> trajs = load_trajectories([files["train"]], topology=files["pdb"], stride=500)
        >>> len(trajs), trajs[0].n_frames, trajs[0].n_atoms
        (1, 50, 22)
    """
    import mdtraj as md

    if not paths:
        raise ValueError("no trajectory given; pass at least one file.")
    if topology is not None:
        topology = Path(topology)
        if topology.is_dir():
            raise ValueError(f"topology {topology} is a directory; give a topology file (PDB, prmtop, ...).")
        if not topology.is_file():
            raise FileNotFoundError(f"topology file not found: {topology}; check the path.")
        try:
            top = md.load_topology(str(topology))
        except Exception as err:  # mdtraj raises many types for unreadable files
            raise ValueError(
                f"could not read topology {topology} ({_one_line(err)}); give a valid PDB, prmtop, gro, ... file."
            ) from err
        if top.n_atoms == 0:
            raise ValueError(f"topology {topology} contains no atom; give a valid PDB, prmtop, gro, ... file.")
    else:
        top = None
    out = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            raise ValueError(f"{p} is a directory, not a trajectory file; give the trajectory files themselves.")
        if not p.is_file():
            raise FileNotFoundError(f"trajectory file not found: {p}; check the path.")
        if p.suffix.lower() not in SUPPORTED_EXTENSIONS:
            raise ValueError(f"unsupported trajectory format {p.suffix!r} for {p}; use one of {', '.join(SUPPORTED_EXTENSIONS)}.")
        try:
            kwargs = {"frame": 0} if first_frame_only else {"stride": stride}
            traj = md.load(str(p), top=top, **kwargs) if top is not None else md.load(str(p), **kwargs)
        except Exception as err:  # mdtraj raises many types for corrupt files
            if top is not None and ("same atoms" in str(err) or "must be shape" in str(err)):
                raise ValueError(
                    f"{p} does not match the atoms of topology {topology} ({top.n_atoms} atoms); give the topology "
                    "this trajectory was written with."
                ) from err
            hint = "" if top is not None or p.suffix.lower() in _SELF_CONTAINED else " (formats like this one need --top)"
            raise ValueError(
                f"could not read {p} ({type(err).__name__}: {_one_line(err)}){hint}; check that it is a complete, "
                f"uncorrupted {p.suffix.lstrip('.')} file."
            ) from err
        if traj.n_frames == 0:
            raise ValueError(f"{p} contains no frame; give a non-empty trajectory.")
        if not np.all(np.isfinite(traj.xyz)):
            bad = np.flatnonzero(~np.all(np.isfinite(traj.xyz), axis=(1, 2)))
            raise ValueError(
                f"{p} contains NaN or Inf coordinates in {len(bad)} frame(s) (first: {bad[0]}); repair or drop those frames."
            )
        if out and traj.n_atoms != out[0].n_atoms:
            raise ValueError(f"{p} has {traj.n_atoms} atoms but {paths[0]} has {out[0].n_atoms}; all trajectories must share one topology.")
        out.append(traj)
    return out
