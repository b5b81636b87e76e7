"""A Cα structure-based (Gō) model of any protein: build it from a PDB, simulate it with OpenMM, follow folding.

One bead per residue at the Cα atom of a native structure (one chain of a PDB file or an ``mdtraj.Trajectory``).
Energy function of Clementi, Nymeyer & Onuchic (2000), every reference value taken from the native structure
(subscript 0), all energies in units of ε::

    V = Σ_bonds    K_r (r − r_0)²                                 K_r = 100 ε/Å² = 10⁴ ε/nm²
      + Σ_angles   K_θ (θ − θ_0)²                                 K_θ = 20 ε/rad²
      + Σ_torsions K_1 [1 − cos(φ − φ_0)] + K_3 [1 − cos(3(φ − φ_0))]   K_1 = ε, K_3 = 0.5 ε
      + Σ_native   ε [5 (σ_ij/r_ij)¹² − 6 (σ_ij/r_ij)¹⁰]           σ_ij = native Cα–Cα distance
      + Σ_non-native ε (C/r_ij)¹²                                  C = 4 Å = 0.4 nm

There is no factor ½ in the harmonic terms (the paper's convention). Bonds join consecutive Cα (i, i+1), angles
span (i, i+1, i+2), torsions (i, …, i+3). Native contacts are the residue pairs with |i − j| ≥ 4 having any heavy
atoms within 0.45 nm in the native structure; a structure with Cα atoms only has no side chains, so its contacts
are the pairs whose **Cα atoms** are within ``ca_contact_cutoff`` = 0.8 nm instead. The other pairs with
|i − j| ≥ 4 are non-native and purely repulsive; pairs with |i − j| < 4 have no non-bonded term.

Units are OpenMM's: nm, ps, kJ/mol, amu; ε = 1 kJ/mol and 100 amu beads by default. Temperatures are the
**reduced temperature** T* = k_B T/ε (:func:`temperature_kelvin`), the convention of
:mod:`lss_jax.systems.trp_cage`, which is this model built from PDB 1L2Y. Folding is followed with Q, the fraction
of native contacts formed (r < 1.2 σ_ij), and states with hysteresis between the cutoffs 0.3 and 0.7
(:func:`core_states`). :func:`folding_temperature_scan` finds the folding temperature as the maximum of the heat
capacity.

Example (OpenMM, the md extra, runs the system; ``tests/test_go_model.py`` does):
    >>> go = go_model("my_protein.pdb", chain="A")  # doctest: +SKIP
    >>> scan = folding_temperature_scan(go, [0.7, 0.8, 0.9, 1.0], n_frames=2000)  # doctest: +SKIP
    >>> traj = simulate_go(go, 10_000, temperature=scan.folding_temperature, out="go.xtc")  # doctest: +SKIP

References:
    C. Clementi, H. Nymeyer, J. N. Onuchic, "Topological and energetic factors: what determines the
    structural details of the transition state ensemble and 'en-route' intermediates for protein folding?
    An investigation for small globular proteins", J. Mol. Biol. 298, 937 (2000).
"""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path
from typing import NamedTuple

import numpy as np

from lss_jax.data.native import (  # noqa: F401  (the Gō model's native contacts: its public names since before)
    CA_CONTACT_CUTOFF,
    CONTACT_CUTOFF,
    MAX_CA_CA,
    MIN_SEPARATION,
    Q_TOLERANCE,
    NativeContacts,
    native_chain,
)

__all__ = [
    "GoEnergy",
    "GoModel",
    "NativeContacts",
    "TemperatureScan",
    "Transitions",
    "core_states",
    "folded_fraction",
    "folding_temperature_scan",
    "folding_transitions",
    "fraction_native_contacts",
    "go_energy",
    "go_model",
    "openmm_system",
    "simulate_go",
    "temperature_kelvin",
]

# Defaults of the energy function, in units of epsilon (the paper's values in ε and Å are in the comments)
K_BOND = 100.0 / 0.1**2  # 100 ε/Å² = 1e4 ε/nm² (1 Å = 0.1 nm)
K_ANGLE = 20.0  # ε/rad²
K_TORSION = (1.0, 0.5)  # ε, the cos(φ − φ0) and cos(3(φ − φ0)) terms
REPULSION_RADIUS = 0.4  # nm (C = 4 Å)
BEAD_MASS = 100.0  # amu
Q_UNFOLDED = 0.3
Q_FOLDED = 0.7

# Dynamics
STEP_FS = 10.0
FRICTION_PER_PS = 1.0
MOLAR_GAS_CONSTANT = 8.314462618e-3  # kJ/(mol K), k_B N_A


class Transitions(NamedTuple):
    """Folding and unfolding events of a Q time series (see :func:`folding_transitions`).

    Attributes:
        n_folding: number of unfolded → folded transitions.
        n_unfolding: number of folded → unfolded transitions.
        folding_frames: ``[n_folding]`` frames at which Q first exceeds the folded cutoff after the unfolded state.
        unfolding_frames: ``[n_unfolding]`` frames at which Q first falls below the unfolded cutoff after the
            folded state.
    """

    n_folding: int
    n_unfolding: int
    folding_frames: np.ndarray
    unfolding_frames: np.ndarray


class GoEnergy(NamedTuple):
    """Potential energy of a Gō model by term, in kJ/mol (float64; a number per frame, see :func:`go_energy`)."""

    bonds: np.ndarray
    angles: np.ndarray
    torsions: np.ndarray
    native: np.ndarray
    repulsion: np.ndarray

    @property
    def total(self) -> np.ndarray:
        return self.bonds + self.angles + self.torsions + self.native + self.repulsion


class TemperatureScan(NamedTuple):
    """Result of :func:`folding_temperature_scan`, one entry per temperature.

    Attributes:
        temperatures: ``[n_temperatures]`` reduced temperatures k_B T/ε.
        folded_fraction: fraction of frames folded (:func:`folded_fraction`; NaN if Q never crossed a cutoff).
        mean_q: mean fraction of native contacts.
        energy_variance: variance of the potential energy, in ε².
        heat_capacity: its configurational heat capacity, Var(U)/(k_B T²) = ``energy_variance / T*²``, in k_B.
        folding_temperature: the temperature of the largest heat capacity.
    """

    temperatures: np.ndarray
    folded_fraction: np.ndarray
    mean_q: np.ndarray
    energy_variance: np.ndarray
    heat_capacity: np.ndarray
    folding_temperature: float


@dataclasses.dataclass(frozen=True, eq=False)
class GoModel:
    """A Cα Gō model: the native structure, its contacts and the force constants (made by :func:`go_model`).

    Attributes:
        xyz: ``[n_beads, 3]`` native Cα coordinates in nm (float64; read-only).
        residue_names: three-letter residue names.
        residue_numbers: residue numbers (resSeq) of the source structure.
        contacts: :class:`NativeContacts`.
        epsilon: energy unit ε in kJ/mol.
        k_bond: bond constant in ε/nm²; ``k_angle`` in ε/rad²; ``k_torsion`` the (K_1, K_3) torsion constants in ε.
        repulsion_radius: C of the non-native repulsion, nm.
        bead_mass: amu.
        min_separation: smallest |i − j| of a non-bonded pair (native or repulsive).

    Example:
        >>> from lss_jax.systems.trp_cage import trp_cage_files
        >>> go = go_model(trp_cage_files()["pdb"])
        >>> go.n_beads, go.sequence, len(go.contacts.pairs), len(go.nonnative_pairs)
        (20, 'NLYIQWLKDGGPSSGRPPPS', 20, 116)
    """

    xyz: np.ndarray
    residue_names: tuple[str, ...]
    residue_numbers: tuple[int, ...]
    contacts: NativeContacts
    epsilon: float = 1.0
    k_bond: float = K_BOND
    k_angle: float = K_ANGLE
    k_torsion: tuple[float, float] = K_TORSION
    repulsion_radius: float = REPULSION_RADIUS
    bead_mass: float = BEAD_MASS
    min_separation: int = MIN_SEPARATION

    def __post_init__(self):
        xyz = np.array(self.xyz, np.float64)
        n = len(self.residue_names)
        if xyz.shape != (n, 3) or len(self.residue_numbers) != n:
            raise ValueError(f"expected xyz [{n}, 3] and {n} residue numbers for {n} residues, got {xyz.shape} and "
                             f"{len(self.residue_numbers)}.")
        pairs = np.array(self.contacts.pairs, np.int64).reshape(-1, 2)
        distances = np.array(self.contacts.distances, np.float64).reshape(-1)
        if len(pairs) != len(distances) or (len(pairs) and (pairs.min() < 0 or pairs.max() >= n)):
            raise ValueError(f"contacts need [n_contacts, 2] bead indices in [0, {n}) and as many distances.")
        for array in (xyz, pairs, distances):
            array.setflags(write=False)
        object.__setattr__(self, "xyz", xyz)
        object.__setattr__(self, "contacts", NativeContacts(pairs, distances))
        object.__setattr__(self, "k_torsion", tuple(float(k) for k in self.k_torsion))

    @property
    def n_beads(self) -> int:
        return len(self.residue_names)

    @property
    def sequence(self) -> str:
        """One-letter sequence (``X`` for a residue mdtraj has no code for)."""
        return "".join(r.code or "X" for r in self.topology().residues)

    @property
    def bond_lengths(self) -> np.ndarray:
        """``[n_beads - 1]`` native (i, i+1) Cα distances r_0 in nm."""
        return np.array([np.linalg.norm(self.xyz[i + 1] - self.xyz[i]) for i in range(self.n_beads - 1)])

    @property
    def angles(self) -> np.ndarray:
        """``[n_beads - 2]`` native (i, i+1, i+2) angles θ_0 in rad."""
        return np.array([_angle(*self.xyz[i:i + 3]) for i in range(self.n_beads - 2)])

    @property
    def torsions(self) -> np.ndarray:
        """``[n_beads - 3]`` native (i, …, i+3) dihedrals φ_0 in rad (IUPAC sign, as OpenMM and mdtraj)."""
        return np.array([_dihedral(*self.xyz[i:i + 4]) for i in range(self.n_beads - 3)])

    @property
    def nonnative_pairs(self) -> np.ndarray:
        """``[n_pairs, 2]`` the repulsive pairs: |i − j| ≥ ``min_separation`` and not a native contact."""
        native = {(int(i), int(j)) for i, j in self.contacts.pairs}
        pairs = [(i, j) for i in range(self.n_beads) for j in range(i + self.min_separation, self.n_beads)
                 if (i, j) not in native]
        return np.asarray(pairs, np.int64).reshape(-1, 2)

    def topology(self):
        """The Cα topology (``mdtraj.Topology``): one chain, one CA atom per residue, bonds along the chain."""
        import mdtraj as md

        top = md.Topology()
        chain = top.add_chain()
        atoms = []
        for name, number in zip(self.residue_names, self.residue_numbers):
            res = top.add_residue(name, chain, resSeq=number)
            atoms.append(top.add_atom("CA", md.element.carbon, res))
        for a, b in zip(atoms[:-1], atoms[1:]):
            top.add_bond(a, b)
        return top

    def native_structure(self):
        """The native structure as an ``mdtraj.Trajectory`` of one frame, ``xyz`` ``[1, n_beads, 3]`` in nm."""
        import mdtraj as md

        return md.Trajectory(self.xyz[None], self.topology())


def _angle(a, b, c) -> float:
    u, v = a - b, c - b
    return float(np.arccos(np.clip(u @ v / np.linalg.norm(u) / np.linalg.norm(v), -1.0, 1.0)))


def _dihedral(a, b, c, d) -> float:
    # IUPAC convention, the same as OpenMM's torsions and mdtraj.compute_dihedrals
    b0, b1, b2 = a - b, c - b, d - c
    b1n = b1 / np.linalg.norm(b1)
    v = b0 - (b0 @ b1n) * b1n
    w = b2 - (b2 @ b1n) * b1n
    return float(np.arctan2(np.cross(b1n, v) @ w, v @ w))


def go_model(
    structure,
    *,
    chain: int | str | None = None,
    model: int = 0,
    contact_cutoff: float = CONTACT_CUTOFF,
    ca_contact_cutoff: float = CA_CONTACT_CUTOFF,
    min_separation: int = MIN_SEPARATION,
    epsilon: float = 1.0,
    k_bond: float = K_BOND,
    k_angle: float = K_ANGLE,
    k_torsion: tuple[float, float] = K_TORSION,
    repulsion_radius: float = REPULSION_RADIUS,
    bead_mass: float = BEAD_MASS,
) -> GoModel:
    """Build the Cα Gō model of one protein chain of a structure (the energy function is the module docstring's).

    The beads are the Cα atoms of the chain's protein residues (mdtraj's standard amino-acid names; waters, ions,
    ligands are dropped); bonds, angles and torsions take their reference values from the structure. Native
    contacts are pairs with |i − j| ≥ ``min_separation`` having heavy atoms within ``contact_cutoff``; if the chain
    has Cα atoms only, pairs with Cα atoms within ``ca_contact_cutoff``. σ_ij is the native Cα–Cα distance.

    Args:
        structure, chain, model, contact_cutoff, ca_contact_cutoff: the protein chain and its native contacts, as
            :func:`lss_jax.data.native.native_chain` (a PDB path or an ``mdtraj.Trajectory``, all-atom or Cα-only).
        min_separation: smallest |i − j| of a non-bonded pair (native or repulsive); 4 in the paper.
        epsilon: ε in kJ/mol, the unit of every energy below.
        k_bond: bond constant, ε/nm². ``k_angle``: ε/rad². ``k_torsion``: (K_1, K_3), ε.
        repulsion_radius: C of the non-native ε (C/r)¹² repulsion, nm.
        bead_mass: mass of each bead, amu.

    Returns:
        :class:`GoModel`.

    Raises:
        ValueError: no protein residues, a residue without a CA atom, fewer than 4 residues, or a chain break
            (consecutive Cα more than 0.43 nm apart: missing residues).

    References:
        C. Clementi, H. Nymeyer, J. N. Onuchic, J. Mol. Biol. 298, 937 (2000).

    Example:
        >>> from lss_jax.systems.trp_cage import trp_cage_files
        >>> go = go_model(trp_cage_files()["pdb"])
        >>> go.contacts.pairs[:3].tolist(), round(float(go.contacts.distances[0]), 3)
        ([[0, 4], [1, 5], [1, 18]], 0.632)
    """
    if not (epsilon > 0 and bead_mass > 0 and repulsion_radius > 0):
        raise ValueError(f"need epsilon, bead_mass and repulsion_radius > 0, got {epsilon}, {bead_mass} and "
                         f"{repulsion_radius}.")
    ca_xyz, residues, contacts = native_chain(structure, chain=chain, model=model, contact_cutoff=contact_cutoff,
                                              ca_contact_cutoff=ca_contact_cutoff, min_separation=min_separation)
    return GoModel(xyz=ca_xyz, residue_names=tuple(r.name for r in residues),
                   residue_numbers=tuple(int(r.resSeq) for r in residues), contacts=contacts, epsilon=float(epsilon),
                   k_bond=float(k_bond), k_angle=float(k_angle), k_torsion=tuple(k_torsion),
                   repulsion_radius=float(repulsion_radius), bead_mass=float(bead_mass),
                   min_separation=int(min_separation))


def openmm_system(go: GoModel):
    """The Gō model as an OpenMM ``System`` (custom forces, no cutoffs, no periodic box; needs OpenMM).

    The system does not depend on temperature: that is the integrator's (:func:`simulate_go`). Force groups:
    0 bonds, 1 angles, 2 torsions, 3 native contacts, 4 non-native repulsion.

    Args:
        go: the :class:`GoModel`.

    Returns:
        ``openmm.System`` of ``go.n_beads`` particles of ``go.bead_mass``.

    References:
        C. Clementi, H. Nymeyer, J. N. Onuchic, J. Mol. Biol. 298, 937 (2000).

    Example (not run as a doctest: OpenMM is the optional md extra; ``tests/test_go_model.py`` runs it):
        >>> system = openmm_system(go)  # doctest: +SKIP
        >>> system.getNumParticles(), system.getNumForces()  # doctest: +SKIP
        (20, 5)
    """
    import openmm

    xyz = go.xyz
    n = go.n_beads
    system = openmm.System()
    for _ in range(n):
        system.addParticle(go.bead_mass)

    bonds = openmm.CustomBondForce("k_bond*(r-r0)^2")
    bonds.addGlobalParameter("k_bond", go.k_bond * go.epsilon)
    bonds.addPerBondParameter("r0")
    for i in range(n - 1):
        bonds.addBond(i, i + 1, [float(np.linalg.norm(xyz[i + 1] - xyz[i]))])

    angles = openmm.CustomAngleForce("k_angle*(theta-theta0)^2")
    angles.addGlobalParameter("k_angle", go.k_angle * go.epsilon)
    angles.addPerAngleParameter("theta0")
    for i in range(n - 2):
        angles.addAngle(i, i + 1, i + 2, [_angle(*xyz[i:i + 3])])

    torsions = openmm.CustomTorsionForce("k_torsion1*(1-cos(theta-phi0)) + k_torsion3*(1-cos(3*(theta-phi0)))")
    torsions.addGlobalParameter("k_torsion1", go.k_torsion[0] * go.epsilon)
    torsions.addGlobalParameter("k_torsion3", go.k_torsion[1] * go.epsilon)
    torsions.addPerTorsionParameter("phi0")
    for i in range(n - 3):
        torsions.addTorsion(i, i + 1, i + 2, i + 3, [_dihedral(*xyz[i:i + 4])])

    native = openmm.CustomBondForce("epsilon*(5*(sigma/r)^12 - 6*(sigma/r)^10)")
    native.addGlobalParameter("epsilon", go.epsilon)
    native.addPerBondParameter("sigma")
    for (i, j), sigma in zip(go.contacts.pairs, go.contacts.distances):
        native.addBond(int(i), int(j), [float(sigma)])

    repulsive = openmm.CustomBondForce("epsilon*(c_repulsion/r)^12")
    repulsive.addGlobalParameter("epsilon", go.epsilon)
    repulsive.addGlobalParameter("c_repulsion", go.repulsion_radius)
    for i, j in go.nonnative_pairs:
        repulsive.addBond(int(i), int(j), [])

    for group, force in enumerate((bonds, angles, torsions, native, repulsive)):
        force.setForceGroup(group)
        force.setUsesPeriodicBoundaryConditions(False)
        system.addForce(force)
    return system


def _coordinates(go: GoModel, traj) -> np.ndarray:
    xyz = np.asarray(getattr(traj, "xyz", traj), np.float64)
    single = xyz.ndim == 2
    xyz = xyz[None] if single else xyz
    if xyz.ndim != 3 or xyz.shape[1:] != (go.n_beads, 3):
        raise ValueError(f"expected Cα coordinates [n_frames, {go.n_beads}, 3], got shape {xyz.shape}.")
    return xyz, single


def go_energy(go: GoModel, xyz) -> GoEnergy:
    """The potential energy by term, in float64 NumPy: the reference for :func:`openmm_system` and for analysis.

    Args:
        go: the :class:`GoModel`.
        xyz: ``[n_beads, 3]`` or ``[n_frames, n_beads, 3]`` Cα coordinates in nm, or an ``mdtraj.Trajectory``.

    Returns:
        :class:`GoEnergy` in kJ/mol (``.total`` sums the terms): numbers for one structure, ``[n_frames]`` arrays
        for frames.

    Example:
        >>> from lss_jax.systems.trp_cage import trp_cage_files
        >>> go = go_model(trp_cage_files()["pdb"])
        >>> energy = go_energy(go, go.xyz)
        >>> float(energy.bonds), float(energy.native), round(float(energy.total), 3)
        (0.0, -20.0, -19.99)
    """
    x, single = _coordinates(go, xyz)
    eps = go.epsilon
    r = np.linalg.norm(x[:, 1:] - x[:, :-1], axis=-1)
    bonds = eps * go.k_bond * np.sum((r - go.bond_lengths) ** 2, axis=-1)
    idx = np.arange(go.n_beads)
    theta = _angles(x[:, np.c_[idx[:-2], idx[1:-1], idx[2:]]])
    angles = eps * go.k_angle * np.sum((theta - go.angles) ** 2, axis=-1)
    dphi = _dihedrals(x[:, np.c_[idx[:-3], idx[1:-2], idx[2:-1], idx[3:]]]) - go.torsions
    k1, k3 = go.k_torsion
    torsions = eps * np.sum(k1 * (1 - np.cos(dphi)) + k3 * (1 - np.cos(3 * dphi)), axis=-1)
    i, j = go.contacts.pairs.T
    s = go.contacts.distances / np.linalg.norm(x[:, i] - x[:, j], axis=-1)
    native = eps * np.sum(5 * s**12 - 6 * s**10, axis=-1)
    i, j = go.nonnative_pairs.T
    repulsion = eps * np.sum((go.repulsion_radius / np.linalg.norm(x[:, i] - x[:, j], axis=-1)) ** 12, axis=-1)
    terms = (bonds, angles, torsions, native, repulsion)
    return GoEnergy(*(t[0] for t in terms)) if single else GoEnergy(*terms)


def _angles(p):
    """Angles of [..., 3, 3] points at the middle one."""
    u, v = p[..., 0, :] - p[..., 1, :], p[..., 2, :] - p[..., 1, :]
    cos = np.sum(u * v, -1) / np.linalg.norm(u, axis=-1) / np.linalg.norm(v, axis=-1)
    return np.arccos(np.clip(cos, -1.0, 1.0))


def _dihedrals(p):
    """Dihedrals of [..., 4, 3] points (IUPAC sign)."""
    b0, b1, b2 = p[..., 0, :] - p[..., 1, :], p[..., 2, :] - p[..., 1, :], p[..., 3, :] - p[..., 2, :]
    b1n = b1 / np.linalg.norm(b1, axis=-1, keepdims=True)
    v = b0 - np.sum(b0 * b1n, -1, keepdims=True) * b1n
    w = b2 - np.sum(b2 * b1n, -1, keepdims=True) * b1n
    return np.arctan2(np.sum(np.cross(b1n, v) * w, -1), np.sum(v * w, -1))


def temperature_kelvin(temperature: float, epsilon: float = 1.0) -> float:
    """Kelvin of a reduced temperature T* = k_B T/ε (ε in kJ/mol).

    Example:
        >>> round(temperature_kelvin(0.75), 1)
        90.2
    """
    _check_temperature(temperature)
    return float(temperature) * epsilon / MOLAR_GAS_CONSTANT


def _check_temperature(temperature: float) -> None:
    if not np.isfinite(temperature) or temperature <= 0:
        raise ValueError(f"temperature is the reduced temperature k_B T/epsilon and must be positive, got "
                         f"{temperature} (a Gō model folds near 1; Trp-cage's near 0.8).")


def simulate_go(
    go: GoModel,
    n_frames: int,
    *,
    temperature: float,
    seed: int = 1,
    frame_interval_ps: float = 1.0,
    equilibration_ps: float = 100.0,
    platform: str = "Reference",
    out: str | Path | None = None,
    progress: bool = True,
    desc: str | None = None,
):
    """Simulate a Gō model with OpenMM (needs the ``md`` extra), through :func:`lss_jax.systems.md.run_md`.

    Langevin dynamics (``LangevinMiddleIntegrator``, friction 1/ps, 10 fs) from the native structure with
    velocities at ``temperature``, ``equilibration_ps`` discarded, then one frame every ``frame_interval_ps``.
    With ``out``, the frames are written there and a second call with an existing ``out`` loads the file instead
    of simulating; either call returns the frames as read back (``.xtc`` rounds to 0.001 nm).

    Args:
        go: the :class:`GoModel`.
        n_frames: production frames.
        temperature: reduced temperature k_B T/ε (:func:`temperature_kelvin`).
        seed: integrator and velocity seed; a different seed gives an independent trajectory.
        frame_interval_ps: time between frames (a multiple of the 10 fs step).
        equilibration_ps: discarded dynamics before the first frame (a multiple of the step).
        platform: OpenMM platform name (``Reference`` is the fastest for a few dozen beads).
        out: ``.xtc``/``.dcd``/``.h5`` path, or ``None`` to keep the frames in memory only.
        progress: show a progress bar.
        desc: progress bar label.

    Returns:
        ``mdtraj.Trajectory``: ``xyz`` ``[n_frames, n_beads, 3]`` in nm, ``time`` in ps, the topology of
        :meth:`GoModel.topology`.

    Example (not run as a doctest: OpenMM is the optional md extra; ``tests/test_go_model.py`` runs it):
        >>> traj = simulate_go(go, 100, temperature=0.8, seed=1)  # doctest: +SKIP
        >>> traj.xyz.shape  # doctest: +SKIP
        (100, 20, 3)
    """
    import mdtraj as md
    import openmm

    from lss_jax.engine.io import atomic_path
    from lss_jax.systems.md import MDSystem, run_md

    if n_frames < 1:
        raise ValueError(f"n_frames must be >= 1, got {n_frames}.")
    _check_temperature(temperature)
    if equilibration_ps < 0:
        raise ValueError(f"equilibration_ps must be >= 0, got {equilibration_ps}.")
    native = go.native_structure()
    if out is not None:
        out = Path(out)
        if out.exists():
            return md.load(str(out), top=native.topology)
        out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        # run_md takes files: the Cα PDB (topology, start positions) and the serialized System
        pdb, xml = Path(tmp) / "go-ca.pdb", Path(tmp) / "go.xml"
        native.save_pdb(str(pdb))
        xml.write_text(openmm.XmlSerializer.serialize(openmm_system(go)))
        system = MDSystem(pdb=pdb, system_xml=xml, temperature_K=temperature_kelvin(temperature, go.epsilon),
                          friction_per_ps=FRICTION_PER_PS, step_fs=STEP_FS, platform=platform)
        traj = run_md(system, n_frames, start_xyz=native.xyz[0], frame_interval_ps=frame_interval_ps, seed=seed,
                      equilibration_ps=equilibration_ps, progress=progress, desc=desc or f"OpenMM Go seed {seed}")
    traj = md.Trajectory(traj.xyz, native.topology, time=traj.time)
    if out is None:
        return traj
    with atomic_path(out) as tmp:
        traj.save(str(tmp))
    # what was written (xtc keeps 0.001 nm), so a first call and a cached call return the same frames
    return md.load(str(out), top=native.topology)


def fraction_native_contacts(go: GoModel, traj, *, tolerance: float = Q_TOLERANCE) -> np.ndarray:
    """Q, the fraction of native contacts formed in each frame (formed: r_ij < ``tolerance`` σ_ij).

    Args:
        go: the :class:`GoModel`.
        traj: ``mdtraj.Trajectory`` of the Cα model, or coordinates ``[n_frames, n_beads, 3]`` in nm.
        tolerance: a contact is formed below ``tolerance`` times its native distance.

    Returns:
        ``[n_frames]`` Q in [0, 1] (float64).

    References:
        C. Clementi, H. Nymeyer, J. N. Onuchic, J. Mol. Biol. 298, 937 (2000).

    Example:
        >>> from lss_jax.systems.trp_cage import trp_cage_files
        >>> go = go_model(trp_cage_files()["pdb"])
        >>> fraction_native_contacts(go, go.native_structure()).tolist()
        [1.0]
    """
    xyz = np.asarray(getattr(traj, "xyz", traj), np.float64)
    if xyz.ndim != 3 or xyz.shape[1:] != (go.n_beads, 3):
        raise ValueError(f"expected Cα coordinates [n_frames, {go.n_beads}, 3], got shape {xyz.shape}.")
    if len(go.contacts.pairs) == 0:
        raise ValueError("the model has no native contacts, so Q is undefined; use a larger contact cutoff.")
    i, j = go.contacts.pairs.T
    r = np.linalg.norm(xyz[:, i] - xyz[:, j], axis=-1)
    return np.mean(r < tolerance * go.contacts.distances, axis=-1)


def _check_cutoffs(q_unfolded: float, q_folded: float) -> None:
    if not 0 <= q_unfolded < q_folded <= 1:
        raise ValueError(f"need 0 <= q_unfolded < q_folded <= 1, got {q_unfolded} and {q_folded}.")


def core_states(q, q_unfolded: float = Q_UNFOLDED, q_folded: float = Q_FOLDED) -> np.ndarray:
    """State of each frame with hysteresis: 0 unfolded, 1 folded, −1 before either is first reached.

    A frame is unfolded when Q < ``q_unfolded``, folded when Q > ``q_folded``; a frame in between keeps the
    state last visited (transition-based assignment), so recrossings of a single cutoff are not counted.

    Args:
        q: ``[n_frames]`` fraction of native contacts.
        q_unfolded: low cutoff.
        q_folded: high cutoff.

    Returns:
        ``[n_frames]`` int states.

    Example:
        >>> core_states([0.5, 0.1, 0.5, 0.8, 0.5, 0.2]).tolist()
        [-1, 0, 0, 1, 1, 0]
    """
    _check_cutoffs(q_unfolded, q_folded)
    q = np.asarray(q, np.float64)
    if q.ndim != 1:
        raise ValueError(f"q must be one-dimensional [n_frames], got shape {q.shape}.")
    states = np.empty(len(q), np.int64)
    state = -1
    for t, value in enumerate(q):
        if value < q_unfolded:
            state = 0
        elif value > q_folded:
            state = 1
        states[t] = state
    return states


def folding_transitions(q, q_unfolded: float = Q_UNFOLDED, q_folded: float = Q_FOLDED) -> Transitions:
    """Folding and unfolding transitions of a Q time series, with dual cutoffs (hysteresis).

    A folding transition is a passage from below ``q_unfolded`` to above ``q_folded``; an unfolding
    transition the passage back. Excursions that return to the side they came from do not count.

    Args:
        q: ``[n_frames]`` fraction of native contacts.
        q_unfolded: low cutoff (0.3 for the shipped Trp-cage data, whose Q histogram has one broad maximum
            between the cutoffs, see :mod:`lss_jax.systems.trp_cage`).
        q_folded: high cutoff (0.7).

    Returns:
        :class:`Transitions` with the counts and the frames at which each new state is reached.

    Example:
        >>> folding_transitions([0.1, 0.5, 0.9, 0.5, 0.9, 0.2, 0.6, 0.1])[:2]
        (1, 1)
    """
    states = core_states(q, q_unfolded, q_folded)
    change = np.flatnonzero((states[1:] != states[:-1]) & (states[:-1] >= 0)) + 1
    folding = change[states[change] == 1]
    unfolding = change[states[change] == 0]
    return Transitions(len(folding), len(unfolding), folding, unfolding)


def folded_fraction(q, q_unfolded: float = Q_UNFOLDED, q_folded: float = Q_FOLDED) -> float:
    """Fraction of time folded, with the state assignment of :func:`core_states` (frames before the first
    visit to either state are left out).

    Args:
        q: ``[n_frames]`` fraction of native contacts.
        q_unfolded: low cutoff.
        q_folded: high cutoff.

    Returns:
        Folded fraction in [0, 1].

    Example:
        >>> folded_fraction([0.5, 0.1, 0.5, 0.8, 0.5, 0.2])
        0.4
    """
    states = core_states(q, q_unfolded, q_folded)
    assigned = states[states >= 0]
    if len(assigned) == 0:
        raise ValueError("q never crosses either cutoff; the folded fraction is undefined.")
    return float(np.mean(assigned == 1))


def folding_temperature_scan(
    go: GoModel,
    temperatures,
    *,
    n_frames: int,
    seed: int = 1,
    frame_interval_ps: float = 1.0,
    equilibration_ps: float = 100.0,
    platform: str = "Reference",
    q_unfolded: float = Q_UNFOLDED,
    q_folded: float = Q_FOLDED,
    progress: bool = False,
) -> TemperatureScan:
    """Simulate at each temperature (:func:`simulate_go`, same seed) and measure folding and the heat capacity.

    The heat capacity peaks at the folding temperature, where the folded and unfolded states are equally
    populated; the scan's resolution is its temperature spacing, and its precision the runs' length (a run must
    fold and unfold many times near the peak). Nothing is written to disk.

    Args:
        go: the :class:`GoModel`.
        temperatures: reduced temperatures k_B T/ε.
        n_frames: frames per temperature (after ``equilibration_ps``), ``frame_interval_ps`` apart.
        seed: integrator and velocity seed of every run.
        platform: OpenMM platform name.
        q_unfolded: low Q cutoff of :func:`folded_fraction`.
        q_folded: high Q cutoff.
        progress: show progress bars.

    Returns:
        :class:`TemperatureScan` (folded fraction, mean Q, potential-energy variance, heat capacity per temperature,
        and ``folding_temperature``, where the heat capacity is largest).

    Example (not run as a doctest: OpenMM is the optional md extra; ``tests/test_go_model.py`` runs it):
        >>> scan = folding_temperature_scan(go, [0.6, 0.8, 1.0, 1.2], n_frames=2000)  # doctest: +SKIP
        >>> scan.folding_temperature  # doctest: +SKIP
        0.8
    """
    _check_cutoffs(q_unfolded, q_folded)
    temperatures = np.asarray(temperatures, np.float64).reshape(-1)
    if len(temperatures) == 0:
        raise ValueError("temperatures is empty; give the reduced temperatures k_B T/epsilon to scan.")
    for temperature in temperatures:
        _check_temperature(temperature)
    folded, mean_q, variance = [], [], []
    for temperature in temperatures:
        traj = simulate_go(go, n_frames, temperature=float(temperature), seed=seed,
                           frame_interval_ps=frame_interval_ps, equilibration_ps=equilibration_ps, platform=platform,
                           progress=progress, desc=f"OpenMM Go T*={temperature:g}")
        q = fraction_native_contacts(go, traj)
        states = core_states(q, q_unfolded, q_folded)
        assigned = states[states >= 0]
        folded.append(float(np.mean(assigned == 1)) if len(assigned) else float("nan"))
        mean_q.append(float(np.mean(q)))
        variance.append(float(np.var(go_energy(go, traj.xyz).total / go.epsilon)))
    variance = np.asarray(variance)
    heat_capacity = variance / temperatures**2
    return TemperatureScan(temperatures, np.asarray(folded), np.asarray(mean_q), variance, heat_capacity,
                           float(temperatures[int(np.argmax(heat_capacity))]))
