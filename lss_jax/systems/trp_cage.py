"""Trp-cage as a Cα structure-based (Gō) model: energy function, simulation, folding analysis, shipped data.

One bead per residue at the Cα atom of the native structure, PDB 1L2Y model 1 (Trp-cage TC5b,
NLYIQWLKDGGPSSGRPPPS, 20 residues), shipped with the package. Energy function of Clementi, Nymeyer &
Onuchic (2000), every reference value taken from the native structure (subscript 0)::

    V = Σ_bonds    K_r (r − r_0)²                                 K_r = 100 ε/Å² = 10⁴ ε/nm²
      + Σ_angles   K_θ (θ − θ_0)²                                 K_θ = 20 ε/rad²
      + Σ_torsions K_1 [1 − cos(φ − φ_0)] + K_3 [1 − cos(3(φ − φ_0))]   K_1 = ε, K_3 = 0.5 ε
      + Σ_native   ε [5 (σ_ij/r_ij)¹² − 6 (σ_ij/r_ij)¹⁰]           σ_ij = native Cα–Cα distance
      + Σ_non-native ε (C/r_ij)¹²                                  C = 4 Å = 0.4 nm

Note there is no factor ½ in the harmonic terms (the paper's convention; OpenMM's ``HarmonicBondForce``
would have one, so custom forces are used). Bonds join consecutive Cα (i, i+1), angles span (i, i+1, i+2),
torsions (i, …, i+3). Native contacts are the residue pairs with |i − j| ≥ 4 having any heavy atoms within
0.45 nm in the all-atom native structure: 20 pairs in 1L2Y (:func:`native_contacts`); each is −ε at its
native distance, its minimum. The remaining 116 pairs with |i − j| ≥ 4 are non-native and purely repulsive.
Pairs with |i − j| < 4 have no non-bonded term.

Units are OpenMM's: nm, ps, kJ/mol, amu. ε = 1 kJ/mol and every bead weighs 100 amu. Temperatures are
given as the **reduced temperature** T* = k_B T/ε (dimensionless); with ε = 1 kJ/mol, T* = 1 is
ε/k_B = 120.27 K, so T* = 0.75 is 90.2 K (:func:`temperature_kelvin`). Time is in ps, but a nominal one:
the model's natural time σ√(m/ε) is ≈ 3.8 ps for σ = 0.38 nm, and it is not a physical time of Trp-cage.

Dynamics (:func:`simulate_trp_cage`, through :func:`lss_jax.md.run_md`): ``LangevinMiddleIntegrator``,
friction 1/ps, 10 fs step, OpenMM ``Reference`` platform (faster than ``CPU`` for 20 particles: measured
≈1.3×10⁵ vs ≈2×10⁴ steps/s on a 2-core machine), integrator and Maxwell–Boltzmann velocity seed ``seed``,
starting from the native structure, an equilibration that is discarded, then one frame every
``frame_interval_ps``.

Folding is followed with Q, the fraction of native contacts formed (r < 1.2 σ_ij,
:func:`fraction_native_contacts`). Near the folding temperature the Q histogram of this small model is
*not* bimodal: it has one broad maximum at Q ≈ 0.45–0.5 (20 contacts; a marginally cooperative, nearly
downhill folder), so the two cutoffs sit on its flanks: at the shipped T* = 0.82, 9–10 % of the frames
have Q < 0.3 and 17–18 % Q > 0.7. States are assigned with hysteresis
(:func:`core_states`): unfolded after Q falls below ``Q_UNFOLDED`` = 0.3 (at most 5 contacts formed),
folded after it rises above ``Q_FOLDED`` = 0.7 (at least 15), and a frame in between keeps the state last
visited. Measured in 20 ns scans (1 ps frames, cutoffs 0.3/0.7): folded fraction 0.95 at T* = 0.70,
0.84 at 0.75, 0.63 at 0.80, 0.54 at 0.82, 0.50 at 0.85, 0.26 at 0.90, 0.16 at 0.95; of these
temperatures the potential-energy variance (heat capacity) is largest at T* = 0.80.

Shipped data (``lss_jax/systems/data``; regenerate, byte for byte, with ``benchmarks/data/make_trp_cage_data.py``):
T* = 0.82 (98.6 K), one frame every 5 ps after 1 ns of equilibration, 28 000 frames = 140 ns each,
``.xtc`` (0.001 nm precision, ≈175 bytes a frame):

==============  ====  ===============  =================  =======================  ============  ==========
trajectory      seed  folded fraction  ⟨Q⟩                folding / unfolding      file (bytes)  wall time
==============  ====  ===============  =================  =======================  ============  ==========
``train``       1     0.529            0.522              234 / 234                4 911 136     101 s
``independent`` 2     0.544            0.533              224 / 223                4 909 956     115 s
==============  ====  ===============  =================  =======================  ============  ==========

A state lasts ≈ 60 frames on average (median 23–27 frames unfolded, 45–48 folded), and the autocorrelation
of Q is 0.47 at a lag of 10 frames and 0.20 at 50 frames, so LSS lags of a few to tens of frames resolve
the folding kinetics. Counted on 1 ps frames, a trajectory has about 1.5 times as many transitions (64 vs 42
folding transitions in the same 20 ns test run): excursions across a cutoff shorter than a frame are
missed at 5 ps.

References:
    C. Clementi, H. Nymeyer, J. N. Onuchic, "Topological and energetic factors: what determines the
    structural details of the transition state ensemble and 'en-route' intermediates for protein folding?
    An investigation for small globular proteins", J. Mol. Biol. 298, 937 (2000).
    J. W. Neidigh, R. M. Fesinmeyer, N. H. Andersen, "Designing a 20-residue protein",
    Nat. Struct. Biol. 9, 425 (2002) (PDB 1L2Y).
"""

from __future__ import annotations

import tempfile
from importlib import resources
from pathlib import Path
from typing import NamedTuple

import numpy as np

__all__ = [
    "NativeContacts",
    "Transitions",
    "core_states",
    "folded_fraction",
    "folding_metrics",
    "report_metrics",
    "folding_transitions",
    "fraction_native_contacts",
    "go_model_system",
    "is_trp_cage",
    "load_trp_cage",
    "lss_config",
    "native_contacts",
    "native_structure",
    "simulate_trp_cage",
    "temperature_kelvin",
    "trp_cage_files",
]

_DATA = "lss_jax.systems"
NATIVE_PDB = "1l2y.pdb"

# Energy function (OpenMM units: kJ/mol, nm, rad); the paper's values in ε and Å are in the comments.
EPSILON = 1.0  # kJ/mol
BEAD_MASS = 100.0  # amu
K_BOND = 100.0 * EPSILON / 0.1**2  # 100 ε/Å² = 1e4 ε/nm² (1 Å = 0.1 nm)
K_ANGLE = 20.0 * EPSILON  # ε/rad²
K_TORSION_1 = 1.0 * EPSILON
K_TORSION_3 = 0.5 * EPSILON
REPULSION_RADIUS = 0.4  # nm (C = 4 Å)
CONTACT_CUTOFF = 0.45  # nm, heavy atoms of the all-atom native structure
MIN_SEPARATION = 4  # |i - j| of non-bonded pairs
Q_TOLERANCE = 1.2  # a native contact is formed when r < 1.2 sigma
Q_UNFOLDED = 0.3
Q_FOLDED = 0.7

# Dynamics
STEP_FS = 10.0
FRICTION_PER_PS = 1.0
MOLAR_GAS_CONSTANT = 8.314462618e-3  # kJ/(mol K), k_B N_A

SHIPPED = {
    # name: (file, integrator/velocity seed)
    "train": ("trpcage-go-seed1.xtc", 1),
    "independent": ("trpcage-go-seed2.xtc", 2),
}
SHIPPED_TEMPERATURE = 0.82  # reduced, k_B T / epsilon
SHIPPED_FRAME_PS = 5.0
SHIPPED_EQUILIBRATION_PS = 1000.0
SHIPPED_N_FRAMES = 28_000
SHIPPED_PLATFORM = "Reference"
# (folding, unfolding) transitions in each shipped trajectory, counted with Q_UNFOLDED, Q_FOLDED (tested).
SHIPPED_TRANSITIONS = {"train": (234, 234), "independent": (224, 223)}


class NativeContacts(NamedTuple):
    """Native contacts of the Gō model.

    Attributes:
        pairs: ``[n_contacts, 2]`` residue (= bead) indices, i < j.
        distances: ``[n_contacts]`` native Cα–Cα distances σ_ij in nm (float64).
    """

    pairs: np.ndarray
    distances: np.ndarray


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


def _data_path(name: str) -> Path:
    return Path(str(resources.files(_DATA).joinpath("data", name)))


def trp_cage_files() -> dict[str, Path]:
    """Paths of the shipped files: ``pdb`` (all-atom native 1L2Y), ``ca_pdb`` (its Cα atoms: the topology of the
    trajectories, for the command line) and the trajectories ``train``, ``independent``.

    Example:
        >>> files = trp_cage_files()
        >>> sorted(files), files["pdb"].name
        (['ca_pdb', 'independent', 'pdb', 'train'], '1l2y.pdb')
        >>> all(path.is_file() for path in files.values())
        True
    """
    files = {"pdb": _data_path(NATIVE_PDB), "ca_pdb": _data_path("1l2y-ca.pdb")}
    files.update({name: _data_path(f) for name, (f, _) in SHIPPED.items()})
    return files


def temperature_kelvin(temperature: float, epsilon: float = EPSILON) -> float:
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
                         f"{temperature} (the folding temperature is near 0.8).")


def _all_atom_native():
    import mdtraj as md

    return md.load(str(_data_path(NATIVE_PDB)))


def native_structure():
    """The native structure as a Cα model: one frame, 20 CA atoms (one per residue), nm.

    The topology has a bond between consecutive Cα atoms, so ``topology.bonds`` follows the chain.

    Returns:
        ``mdtraj.Trajectory`` with ``xyz`` ``[1, 20, 3]``.

    Example:
        >>> native = native_structure()
        >>> native.n_atoms, native.topology.n_bonds, native.topology.residue(5).name
        (20, 19, 'TRP')
    """
    import mdtraj as md

    full = _all_atom_native()
    ca = full.topology.select("name CA")
    top = md.Topology()
    chain = top.add_chain()
    atoms = []
    for index in ca:
        residue = full.topology.atom(index).residue
        res = top.add_residue(residue.name, chain, resSeq=residue.resSeq)
        atoms.append(top.add_atom("CA", md.element.carbon, res))
    for a, b in zip(atoms[:-1], atoms[1:]):
        top.add_bond(a, b)
    return md.Trajectory(full.xyz[:, ca], top)


def native_contacts(*, cutoff: float = CONTACT_CUTOFF, min_separation: int = MIN_SEPARATION) -> NativeContacts:
    """Native contacts: residue pairs with |i − j| ≥ ``min_separation`` and any heavy atoms within ``cutoff``.

    Computed on the all-atom native structure (1L2Y model 1); σ_ij are the Cα–Cα distances of the same structure.

    Args:
        cutoff: heavy-atom distance in nm.
        min_separation: smallest sequence separation of a contact.

    Returns:
        :class:`NativeContacts` (20 pairs with the defaults).

    References:
        C. Clementi, H. Nymeyer, J. N. Onuchic, J. Mol. Biol. 298, 937 (2000).

    Example:
        >>> contacts = native_contacts()
        >>> len(contacts.pairs), contacts.pairs[0].tolist()
        (20, [0, 4])
    """
    if cutoff <= 0 or min_separation < 1:
        raise ValueError(f"need cutoff > 0 and min_separation >= 1, got {cutoff} and {min_separation}.")
    full = _all_atom_native()
    xyz = full.xyz[0].astype(np.float64)
    heavy = {}
    ca = {}
    for atom in full.topology.atoms:
        if atom.element.symbol != "H":
            heavy.setdefault(atom.residue.index, []).append(atom.index)
        if atom.name == "CA":
            ca[atom.residue.index] = atom.index
    n = full.topology.n_residues
    pairs, distances = [], []
    for i in range(n):
        for j in range(i + min_separation, n):
            d = np.linalg.norm(xyz[heavy[i]][:, None] - xyz[heavy[j]][None], axis=-1)
            if d.min() < cutoff:
                pairs.append((i, j))
                distances.append(np.linalg.norm(xyz[ca[i]] - xyz[ca[j]]))
    return NativeContacts(np.asarray(pairs, np.int64).reshape(-1, 2), np.asarray(distances, np.float64))


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


def go_model_system(*, contacts: NativeContacts | None = None):
    """The Cα Gō model of Trp-cage as an OpenMM ``System`` (custom forces, no cutoffs, no periodic box).

    The energy function, parameters and units are in the module docstring. The system does not depend on
    temperature: that is the integrator's (:func:`simulate_trp_cage`). Force groups: 0 bonds, 1 angles,
    2 torsions, 3 native contacts, 4 non-native repulsion.

    Args:
        contacts: native contacts (default :func:`native_contacts`).

    Returns:
        ``openmm.System`` of 20 particles of 100 amu.

    References:
        C. Clementi, H. Nymeyer, J. N. Onuchic, J. Mol. Biol. 298, 937 (2000).

    Example (not run as a doctest: OpenMM is the optional md extra; ``tests/test_trp_cage_system.py`` runs it):
        >>> system = go_model_system()  # doctest: +SKIP
        >>> system.getNumParticles(), system.getNumForces()  # doctest: +SKIP
        (20, 5)
    """
    import openmm

    contacts = native_contacts() if contacts is None else contacts
    xyz = native_structure().xyz[0].astype(np.float64)
    n = len(xyz)
    system = openmm.System()
    for _ in range(n):
        system.addParticle(BEAD_MASS)

    bonds = openmm.CustomBondForce("k_bond*(r-r0)^2")
    bonds.addGlobalParameter("k_bond", K_BOND)
    bonds.addPerBondParameter("r0")
    for i in range(n - 1):
        bonds.addBond(i, i + 1, [float(np.linalg.norm(xyz[i + 1] - xyz[i]))])

    angles = openmm.CustomAngleForce("k_angle*(theta-theta0)^2")
    angles.addGlobalParameter("k_angle", K_ANGLE)
    angles.addPerAngleParameter("theta0")
    for i in range(n - 2):
        angles.addAngle(i, i + 1, i + 2, [_angle(*xyz[i:i + 3])])

    torsions = openmm.CustomTorsionForce("k_torsion1*(1-cos(theta-phi0)) + k_torsion3*(1-cos(3*(theta-phi0)))")
    torsions.addGlobalParameter("k_torsion1", K_TORSION_1)
    torsions.addGlobalParameter("k_torsion3", K_TORSION_3)
    torsions.addPerTorsionParameter("phi0")
    for i in range(n - 3):
        torsions.addTorsion(i, i + 1, i + 2, i + 3, [_dihedral(*xyz[i:i + 4])])

    native = openmm.CustomBondForce("epsilon*(5*(sigma/r)^12 - 6*(sigma/r)^10)")
    native.addGlobalParameter("epsilon", EPSILON)
    native.addPerBondParameter("sigma")
    for (i, j), sigma in zip(contacts.pairs, contacts.distances):
        native.addBond(int(i), int(j), [float(sigma)])

    repulsive = openmm.CustomBondForce("epsilon*(c_repulsion/r)^12")
    repulsive.addGlobalParameter("epsilon", EPSILON)
    repulsive.addGlobalParameter("c_repulsion", REPULSION_RADIUS)
    native_set = {(int(i), int(j)) for i, j in contacts.pairs}
    for i in range(n):
        for j in range(i + MIN_SEPARATION, n):
            if (i, j) not in native_set:
                repulsive.addBond(i, j, [])

    for group, force in enumerate((bonds, angles, torsions, native, repulsive)):
        force.setForceGroup(group)
        force.setUsesPeriodicBoundaryConditions(False)
        system.addForce(force)
    return system


def simulate_trp_cage(
    n_frames: int,
    *,
    seed: int = 1,
    temperature: float = SHIPPED_TEMPERATURE,
    frame_interval_ps: float = SHIPPED_FRAME_PS,
    equilibration_ps: float = SHIPPED_EQUILIBRATION_PS,
    platform: str = SHIPPED_PLATFORM,
    out: str | Path | None = None,
    progress: bool = True,
):
    """Simulate the Cα Gō model of Trp-cage (needs the ``md`` extra: OpenMM).

    Langevin dynamics (``LangevinMiddleIntegrator``, friction 1/ps, 10 fs) from the native structure with
    velocities at ``temperature``, ``equilibration_ps`` discarded, then one frame every ``frame_interval_ps``.
    The result is cached: a second call with the same arguments loads the file instead of simulating. Either
    call returns the frames as read back from the file (``.xtc`` rounds to 0.001 nm).

    Args:
        n_frames: production frames to write.
        seed: integrator and velocity seed; a different seed gives an independent trajectory.
        temperature: reduced temperature k_B T/ε (0.82 ≈ 98.6 K with ε = 1 kJ/mol; see :func:`temperature_kelvin`).
        frame_interval_ps: time between frames (a multiple of the 10 fs step).
        equilibration_ps: discarded dynamics before the first frame (a multiple of the step).
        platform: OpenMM platform name.
        out: output ``.xtc``/``.dcd``/``.h5`` path (default: in :func:`lss_jax.systems.cache_dir`).
        progress: show a progress bar.

    Returns:
        ``mdtraj.Trajectory`` of the production frames: ``xyz`` ``[n_frames, 20, 3]`` in nm, ``time`` in ps,
        the Cα topology of :func:`native_structure`.

    References:
        C. Clementi, H. Nymeyer, J. N. Onuchic, J. Mol. Biol. 298, 937 (2000).

    Example (not run as a doctest: OpenMM is the optional md extra; ``tests/test_trp_cage_system.py`` runs it):
        >>> traj = simulate_trp_cage(3, frame_interval_ps=0.1, equilibration_ps=0.1, out="t.xtc")  # doctest: +SKIP
        >>> traj.xyz.shape  # doctest: +SKIP
        (3, 20, 3)
    """
    import mdtraj as md
    import openmm

    from lss_jax._io import atomic_path
    from lss_jax.md import MDSystem, run_md
    from lss_jax.systems import cache_dir

    if n_frames < 1:
        raise ValueError(f"n_frames must be >= 1, got {n_frames}.")
    _check_temperature(temperature)
    if equilibration_ps < 0:
        raise ValueError(f"equilibration_ps must be >= 0, got {equilibration_ps}.")
    native = native_structure()
    if out is None:
        out = cache_dir() / (f"trpcage-go-T{temperature:g}-seed{seed}-{n_frames}x{frame_interval_ps:g}ps-"
                             f"eq{equilibration_ps:g}ps-{platform}.xtc")
    out = Path(out)
    if out.exists():
        return md.load(str(out), top=native.topology)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        # run_md takes files: the Cα PDB (topology, start positions) and the serialized System
        pdb, xml = Path(tmp) / "trpcage-ca.pdb", Path(tmp) / "trpcage-go.xml"
        native.save_pdb(str(pdb))
        xml.write_text(openmm.XmlSerializer.serialize(go_model_system()))
        system = MDSystem(pdb=pdb, system_xml=xml, temperature_K=temperature_kelvin(temperature),
                          friction_per_ps=FRICTION_PER_PS, step_fs=STEP_FS, platform=platform)
        traj = run_md(system, n_frames, start_xyz=native.xyz[0], frame_interval_ps=frame_interval_ps, seed=seed,
                      equilibration_ps=equilibration_ps, progress=progress, desc=f"OpenMM Trp-cage Go seed {seed}")
    traj = md.Trajectory(traj.xyz, native.topology, time=traj.time)
    with atomic_path(out) as tmp:
        traj.save(str(tmp))
    # what was written (xtc keeps 0.001 nm), so a first call and a cached call return the same frames
    return md.load(str(out), top=native.topology)


def load_trp_cage(which: str = "train", *, stride: int = 1):
    """A shipped Gō-model trajectory as an ``mdtraj.Trajectory`` (20 Cα atoms, nm, ``time`` in ps).

    Args:
        which: ``"train"`` (seed 1) or ``"independent"`` (seed 2, simulated separately with the same protocol,
            for validation). Temperature, frame interval and lengths are in the module docstring.
        stride: keep every n-th frame.

    Returns:
        ``mdtraj.Trajectory`` with ``xyz`` ``[n_frames, 20, 3]``.

    Example:
        >>> traj = load_trp_cage("train", stride=100)
        >>> traj.n_atoms, float(traj.timestep) == 100 * SHIPPED_FRAME_PS
        (20, True)
    """
    import mdtraj as md

    if which not in SHIPPED:
        raise ValueError(f"unknown shipped trajectory {which!r}; choose one of {sorted(SHIPPED)}.")
    if int(stride) != stride or stride < 1:
        raise ValueError(f"stride must be a positive integer, got {stride}.")
    return md.load(str(trp_cage_files()[which]), top=native_structure().topology, stride=int(stride))


def fraction_native_contacts(traj, *, contacts: NativeContacts | None = None,
                             tolerance: float = Q_TOLERANCE) -> np.ndarray:
    """Q, the fraction of native contacts formed in each frame (formed: r_ij < ``tolerance`` σ_ij).

    Args:
        traj: ``mdtraj.Trajectory`` of the Cα model, or coordinates ``[n_frames, 20, 3]`` in nm.
        contacts: native contacts (default :func:`native_contacts`).
        tolerance: a contact is formed below ``tolerance`` times its native distance.

    Returns:
        ``[n_frames]`` Q in [0, 1] (float64).

    References:
        C. Clementi, H. Nymeyer, J. N. Onuchic, J. Mol. Biol. 298, 937 (2000).

    Example:
        >>> fraction_native_contacts(native_structure()).tolist()
        [1.0]
    """
    xyz = np.asarray(getattr(traj, "xyz", traj), np.float64)
    if xyz.ndim != 3 or xyz.shape[1:] != (20, 3):
        raise ValueError(f"expected Cα coordinates [n_frames, 20, 3], got shape {xyz.shape}.")
    contacts = native_contacts() if contacts is None else contacts
    i, j = contacts.pairs.T
    r = np.linalg.norm(xyz[:, i] - xyz[:, j], axis=-1)
    return np.mean(r < tolerance * contacts.distances, axis=-1)


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
        q_unfolded: low cutoff (0.3 for the shipped data; the Q histogram has one broad maximum between the
            cutoffs, see the module docstring).
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


# --------------------------------------------------------------------------------------------------
# the paper's protocol on this model, and its folding analysis
# --------------------------------------------------------------------------------------------------

SEQUENCE = "NLYIQWLKDGGPSSGRPPPS"
DEFAULT_LAG = 10  # frames of the shipped data (50 ps): where the SRV timescales have converged (docs/trp_cage.md, lagscan)


def is_trp_cage(topology) -> bool:
    """Whether ``topology`` is this model's: 20 Cα atoms with the Trp-cage sequence.

    Example:
        >>> is_trp_cage(native_structure().topology)
        True
    """
    residues = list(topology.residues)
    if topology.n_atoms != len(SEQUENCE) or len(residues) != len(SEQUENCE):
        return False
    codes = "".join(r.code or "?" for r in residues)
    return codes == SEQUENCE and all(a.name == "CA" for a in topology.atoms)


def lss_config(lag: int = DEFAULT_LAG, **overrides):
    """The paper's Trp-cage protocol (Sidky et al. 2020, Sec. 3.2) for this Cα model as an :class:`lss_jax.LSSConfig`:
    Cα pairwise distances and Cα pseudo-torsions as features, a 3-D latent space, an MDN with C = 24 and a decoder
    on the Cα atoms. ``lag`` is in frames of the shipped data (5 ps each); ``overrides`` change it as
    :meth:`lss_jax.LSSConfig.replace` does (``seed=1``; a section as a dict of the fields to change, the protocol's
    other fields kept: ``encoder={"epochs": 2}``).

    Two departures from the paper, both by measurement (``docs/trp_cage.md``):

    * Cross-fitting (``data.encoder_fraction = 0.3``): the SRV trains on the leading 30 % of every training run and
      the propagator on the latent points of the other 70 %, frames the encoder never saw. Fitted on all
      frames, the SRV's slowest coordinate is slower on its own training frames (t1 245 ps) than on any of
      seven independent runs (208 ± 3 ps), and a propagator trained on those frames reproduces the bias;
      cross-fitted, the LSS's t1 is within 3 % of the independent run's in three seeds.
    * The retrieval decoder (``decoder.kind = "knn"``): every decoded frame is one of the 20 training frames nearest
      in latent space. The generative flow decoder (``decoder.kind = "flow"``) makes new chains but unfolds them too
      often (folded fraction 0.36 against MD's 0.63); the retrieval decoder meets the folding targets.

    ``lss_config(data={"encoder_fraction": 1}, decoder={"kind": "flow"})`` is the paper's protocol with lss_jax's
    generative decoder.

    Example:
        >>> config = lss_config()
        >>> config.encoder.latent_dim, config.data.distances, config.data.torsions, config.data.encoder_fraction
        (3, 'ca', ('ca',), 0.3)
        >>> config.propagator.n_components, config.decoder.kind
        (24, 'knn')
        >>> lss_config(decoder={"kind": "flow"}, seed=2).decoder.kind
        'flow'
    """
    from lss_jax.config import DataConfig, DecoderConfig, EncoderConfig, LSSConfig

    protocol = LSSConfig(
        lag=lag,
        data=DataConfig(torsions=("ca",), distances="ca", atom_selection="name CA", encoder_fraction=0.3),
        encoder=EncoderConfig(latent_dim=3),
        decoder=DecoderConfig(kind="knn"),
    )
    return protocol.replace(**overrides) if overrides else protocol


def _states_and_events(trajs, stride: int = 1):
    """Per trajectory: Q, core states and transitions, at every ``stride``-th frame."""
    out = []
    for xyz in trajs:
        q = fraction_native_contacts(np.asarray(xyz)[::stride])
        out.append((q, core_states(q), folding_transitions(q)))
    return out


def _rates(per_traj, frame_time: float) -> dict:
    """Folded fraction and transition counts/rates (per µs) over a set of trajectories."""
    states = np.concatenate([s for _, s, _ in per_traj])
    assigned = states[states >= 0]
    n_fold = sum(t.n_folding for _, _, t in per_traj)
    n_unfold = sum(t.n_unfolding for _, _, t in per_traj)
    time_us = sum(len(q) for q, _, _ in per_traj) * frame_time * 1e-6
    return {"folded_fraction": float(np.mean(assigned == 1)) if len(assigned) else float("nan"),
            "n_folding": int(n_fold), "n_unfolding": int(n_unfold), "time_us": time_us,
            "transitions_per_us": (n_fold + n_unfold) / time_us if time_us > 0 else float("nan"),
            "mean_q": float(np.mean(np.concatenate([q for q, _, _ in per_traj])))}


def folding_metrics(md_xyz, lss_xyz, *, md_frame_time: float, lss_frame_time: float, n_blocks: int = 5) -> dict:
    """Folding of generated Cα trajectories against MD: the paper's Sec. 3.2 observables for this model.

    Args:
        md_xyz: MD trajectories, a list of ``[n_frames, 20, 3]`` (nm).
        lss_xyz: generated trajectories ``[B, n_frames, 20, 3]`` (nm), frames ``lss_frame_time`` apart.
        md_frame_time: time between MD frames (ps).
        lss_frame_time: time between generated frames (ps); MD is also analysed at this spacing
            (every ``lss_frame_time / md_frame_time``-th frame), because a state assignment sees fewer short
            excursions in coarser frames.
        n_blocks: contiguous MD blocks for standard errors.

    Returns:
        ``folded_fraction``, ``transitions_per_us`` (folding + unfolding events per µs), their MD block standard
        errors, both at the LSS frame spacing (``md``; ``md_full_resolution`` beside it); ``rmsd_to_native_folded_nm``
        (Cα RMSD to the native structure of the frames in the folded state, mean and sd); ``virtual_bonds`` (mean
        Cα–Cα (i, i+1) distance, fraction of frames with one more than 10 % from its MD mean); ``close_pairs``
        (the smallest Cα–Cα distance and the fraction of frames with one below 0.3 nm, over pairs ``|i - j| >= 4``,
        those with excluded volume in the model, and ``>= 2``); each for MD and LSS.

    Example:
        >>> md = [load_trp_cage("train", stride=10).xyz]
        >>> out = folding_metrics(md, md[0][None, ::2], md_frame_time=50.0, lss_frame_time=100.0)
        >>> round(out["folded_fraction"]["md"], 3) == round(out["folded_fraction"]["lss"], 3)
        True
    """
    import mdtraj as md

    stride = int(round(lss_frame_time / md_frame_time))
    if stride < 1 or abs(stride * md_frame_time - lss_frame_time) > 1e-6 * lss_frame_time:
        raise ValueError(f"the LSS frame time ({lss_frame_time} ps) must be a whole multiple of the MD frame time "
                         f"({md_frame_time} ps).")
    md_xyz = [np.asarray(x, np.float32) for x in md_xyz]
    lss_xyz = np.asarray(lss_xyz, np.float32)
    md_coarse = _states_and_events(md_xyz, stride)
    lss_per = _states_and_events(list(lss_xyz))
    out = {"lss_frame_time_ps": lss_frame_time, "md_frame_time_ps": md_frame_time, "md_stride": stride}
    md_rates, lss_rates = _rates(md_coarse, lss_frame_time), _rates(lss_per, lss_frame_time)
    full = _rates(_states_and_events(md_xyz), md_frame_time)
    blocks = [_rates(_states_and_events([b], stride), lss_frame_time)
              for x in md_xyz for b in np.array_split(x, max(1, n_blocks // len(md_xyz)))]
    se = lambda key: float(np.std([b[key] for b in blocks], ddof=1) / np.sqrt(len(blocks))) if len(blocks) > 1 else float("nan")  # noqa: E731
    for key in ("folded_fraction", "transitions_per_us", "mean_q"):
        out[key] = {"md": md_rates[key], "md_se": se(key), "lss": lss_rates[key], "md_full_resolution": full[key]}
    out["events"] = {"md": {k: md_rates[k] for k in ("n_folding", "n_unfolding", "time_us")},
                     "lss": {k: lss_rates[k] for k in ("n_folding", "n_unfolding", "time_us")}}
    native = native_structure()

    def rmsd_folded(xyz_list, per):
        values = []
        for xyz, (_, states, _) in zip(xyz_list, per):
            folded = xyz[states == 1]
            if len(folded):
                values.append(md.rmsd(md.Trajectory(folded, native.topology), native))
        v = np.concatenate(values) if values else np.array([np.nan])
        return [float(np.mean(v)), float(np.std(v))]

    md_strided = [x[::stride] for x in md_xyz]
    out["rmsd_to_native_folded_nm"] = {"md": rmsd_folded(md_strided, md_coarse), "lss": rmsd_folded(list(lss_xyz), lss_per)}
    md_all, lss_all = np.concatenate(md_xyz), lss_xyz.reshape(-1, 20, 3)
    bond = lambda x: np.linalg.norm(x[:, 1:] - x[:, :-1], axis=-1)  # noqa: E731
    mean_bond = bond(md_all).mean(0)
    off = lambda x: float(np.mean(np.any(np.abs(bond(x) / mean_bond - 1) > 0.1, axis=1)))  # noqa: E731
    out["virtual_bonds"] = {"md_mean_nm": float(mean_bond.mean()),
                            "mad_relative": {"md": float(np.mean(np.abs(bond(md_all) / mean_bond - 1))),
                                             "lss": float(np.mean(np.abs(bond(lss_all) / mean_bond - 1)))},
                            "fraction_frames_off_10pct": {"md": off(md_all), "lss": off(lss_all)}}
    def closest(x, separation):
        i, j = np.triu_indices(20, k=separation)
        d = np.linalg.norm(x[:, i] - x[:, j], axis=-1).min(axis=1)
        return {"min_nm": float(d.min()), "fraction_frames_below_0.3nm": float(np.mean(d < 0.3))}

    # |i - j| >= 4: the pairs with excluded volume in the model (a clash); |i - j| >= 2 for comparison (the
    # model has no non-bonded term below 4, and its soft angles let MD itself bring i, i + 2 within 0.16 nm)
    out["close_pairs"] = {f"separation_{s}": {"md": closest(md_all, s), "lss": closest(lss_all, s)} for s in (4, 2)}
    return out


def report_metrics(md_xyz, lss_xyz, *, md_frame_time: float, lss_frame_time: float, n_blocks: int = 5) -> dict:
    """This system's observables in the validation report: ``{"folding": folding_metrics(...)}``, the hook
    :func:`lss_jax.analysis.molecular.run_validation` takes as ``system_metrics`` (arguments as
    :func:`folding_metrics`).

    Example:
        >>> md = [load_trp_cage("train", stride=10).xyz]
        >>> sorted(report_metrics(md, md[0][None, ::2], md_frame_time=50.0, lss_frame_time=100.0))
        ['folding']
    """
    return {"folding": folding_metrics(md_xyz, lss_xyz, md_frame_time=md_frame_time, lss_frame_time=lss_frame_time,
                                       n_blocks=n_blocks)}
