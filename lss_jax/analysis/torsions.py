"""Backbone and side-chain torsions of molecular trajectories (float64 NumPy + mdtraj, host side).

The angles the distribution, autocorrelation and report metrics are computed on: every torsion named
``"<kind>:<residue>"`` (:func:`torsion_angles`), or the (phi, psi) pair of the first residue that has both
(:func:`phi_psi`, the Ramachandran plane of a dipeptide).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from lss_jax.analysis._common import as_traj_list

__all__ = ["DEFAULT_TORSIONS", "TORSION_KINDS", "torsion_angles", "phi_psi", "basin_populations"]

#: Torsion kinds that :func:`torsion_angles` computes by default (mdtraj ``compute_<kind>``; omega is opt-in).
DEFAULT_TORSIONS: tuple[str, ...] = ("phi", "psi", "chi1", "chi2", "chi3", "chi4")
#: Every torsion kind :func:`torsion_angles` knows (``ca``: C-alpha pseudo-torsions).
TORSION_KINDS: tuple[str, ...] = ("phi", "psi", "omega", "chi1", "chi2", "chi3", "chi4", "ca")


def torsion_angles(traj, torsions: Sequence[str] = DEFAULT_TORSIONS) -> tuple[list[str], np.ndarray]:
    """Backbone and side-chain torsions of every frame, named ``"<kind>:<residue>"`` (e.g. ``"phi:ALA2"``).

    The residue of a torsion is that of its second atom (phi: N_i, psi: CA_i, chi: CA_i; omega: C_i).

    Args:
        traj: :class:`mdtraj.Trajectory` with ``n_frames`` frames.
        torsions: kinds among ``phi, psi, omega, chi1..chi4`` and ``ca`` (C-alpha pseudo-torsions of four
            consecutive residues, :mod:`lss_jax.data.featurize`); kinds the topology lacks are skipped.

    Returns:
        ``(names [n_torsions], angles [n_frames, n_torsions])``, radians in ``[-pi, pi]``; ``n_torsions`` may
        be 0 (e.g. a C-alpha model).

    Example:
        >>> from lss_jax.datasets import load_alanine_dipeptide
        >>> names, angles = torsion_angles(load_alanine_dipeptide("train", stride=500))
        >>> names, angles.shape
        (['phi:ALA2', 'psi:ALA2'], (50, 2))
    """
    from lss_jax.data.featurize import _torsions

    (traj,) = as_traj_list(traj, "traj")
    names: list[str] = []
    columns = []
    for kind in torsions:
        if kind not in TORSION_KINDS:
            raise ValueError(f"unknown torsion kind {kind!r}; choose among {TORSION_KINDS}.")
        indices, angles = _torsions(traj, kind)
        for k, quad in enumerate(np.asarray(indices).reshape(-1, 4)):
            name = f"{kind}:{traj.topology.atom(int(quad[1])).residue}"
            while name in names:  # e.g. two chains with the same residue numbering
                name += "'"
            names.append(name)
            columns.append(np.asarray(angles[:, k], dtype=np.float64))
    angles = np.stack(columns, axis=1) if columns else np.zeros((traj.n_frames, 0))
    return names, angles


def phi_psi(traj) -> np.ndarray:
    """Backbone ``[n_frames, 2]`` (phi, psi) in radians of the first residue that has both.

    Example:
        >>> from lss_jax.datasets import load_alanine_dipeptide
        >>> angles = phi_psi(load_alanine_dipeptide("train", stride=500))
        >>> angles.shape, bool(np.all(np.abs(angles) <= np.pi))
        ((50, 2), True)
    """
    import mdtraj as md

    _, phi = md.compute_phi(traj)
    _, psi = md.compute_psi(traj)
    if phi.shape[1] == 0 or psi.shape[1] == 0:
        raise ValueError("the decoded atoms do not define backbone phi/psi (need C, N, CA atoms).")
    return np.stack([phi[:, 0], psi[:, 0]], axis=1)


def basin_populations(angles) -> dict:
    """Shares of the frames in each backbone basin, from ``(phi, psi)`` angles ``[n_frames, 2]`` in radians
    (:func:`phi_psi`): ``alpha_l`` (phi > 0), ``alpha_r`` (phi <= 0 and -2.0 < psi < 0.9 rad), ``beta_ppii`` (the
    rest), and ``alpha_l_basin`` (0 < phi < 120 deg: the left-handed basin itself, without the beta frames just
    across phi = +-180 deg that ``alpha_l`` also counts). These are the populations the validation report compares.

    Example:
        >>> angles = np.radians([[-70.0, -40.0], [-120.0, 130.0], [60.0, 40.0], [170.0, 150.0]])
        >>> basin_populations(angles)
        {'beta_ppii': 0.25, 'alpha_r': 0.25, 'alpha_l': 0.5, 'alpha_l_basin': 0.25}
    """
    angles = np.asarray(angles, np.float64)
    if angles.ndim != 2 or angles.shape[1] != 2:
        raise ValueError(f"angles must be [n_frames, 2] (phi, psi) in radians, got shape {angles.shape}.")
    phi, psi = angles[:, 0], angles[:, 1]
    alpha_l = phi > 0
    alpha_r = (~alpha_l) & (psi > -2.0) & (psi < 0.9)
    beta = (~alpha_l) & ~alpha_r
    alpha_l_basin = alpha_l & (phi < np.radians(120.0))
    return {"beta_ppii": float(beta.mean()), "alpha_r": float(alpha_r.mean()), "alpha_l": float(alpha_l.mean()),
            "alpha_l_basin": float(alpha_l_basin.mean())}


def _angles_of(trajs, torsions, name: str) -> tuple[list[str], list[np.ndarray]]:
    """Torsion names and ``[n_frames, n_torsions]`` angles of every trajectory; one topology for all."""
    trajs = as_traj_list(trajs, name)
    names0, out = None, []
    for t in trajs:
        names, angles = torsion_angles(t, torsions)
        if names0 is not None and names != names0:
            raise ValueError(f"the trajectories of {name} do not share one topology (torsions {names} vs {names0}).")
        names0 = names
        out.append(angles)
    return names0, out


def _torsion_features(angles: list[np.ndarray]) -> list[np.ndarray]:
    """sin/cos of the torsions, the default TICA features of the kinetic metrics."""
    return [np.concatenate([np.sin(a), np.cos(a)], axis=1) for a in angles]
