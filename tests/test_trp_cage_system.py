"""The Trp-cage Cα Gō model (lss_jax.systems.trp_cage) against independent float64 NumPy and mdtraj references."""

import itertools

import mdtraj as md
import numpy as np
import pytest
from conftest import openmm_energy_forces, ref_angle, ref_dihedral

from lss_jax.systems import trp_cage as tc

openmm = pytest.importorskip("openmm")

SEQUENCE = "NLYIQWLKDGGPSSGRPPPS"
EPS = 1.0  # kJ/mol


# ---------------------------------------------------------------- independent reference (float64 NumPy)

class Reference:
    """The Clementi et al. (2000) energy, written from the paper's formula in its units (ε, Å), converted at the end."""

    def __init__(self):
        full = md.load(str(tc.trp_cage_files()["pdb"]))
        ca = full.topology.select("name CA")
        self.native = full.xyz[0, ca].astype(np.float64) * 10.0  # Å
        n = len(ca)
        x = self.native
        idx = np.arange(n)
        self.bonds = np.c_[idx[:-1], idx[1:]]
        self.angles = np.c_[idx[:-2], idx[1:-1], idx[2:]]
        self.torsions = np.c_[idx[:-3], idx[1:-2], idx[2:-1], idx[3:]]
        self.r0 = np.linalg.norm(x[self.bonds[:, 1]] - x[self.bonds[:, 0]], axis=-1)
        self.theta0 = ref_angle(x[self.angles])
        self.phi0 = ref_dihedral(x[self.torsions])
        far = np.array([(i, j) for i in range(n) for j in range(i + 4, n)])
        heavy_min, _ = md.compute_contacts(full, far, scheme="closest-heavy")
        native = heavy_min[0] < 0.45
        self.contacts, self.nonnative = far[native], far[~native]
        self.sigma = np.linalg.norm(x[self.contacts[:, 0]] - x[self.contacts[:, 1]], axis=-1)

    def energy(self, xyz_nm):
        """Energy in kJ/mol (ε = 1 kJ/mol) of [20, 3] coordinates in nm."""
        x = np.asarray(xyz_nm, np.float64) * 10.0
        r = np.linalg.norm(x[self.bonds[:, 1]] - x[self.bonds[:, 0]], axis=-1)
        e = np.sum(100.0 * EPS * (r - self.r0) ** 2)  # K_r = 100 ε/Å²
        e += np.sum(20.0 * EPS * (ref_angle(x[self.angles]) - self.theta0) ** 2)
        dphi = ref_dihedral(x[self.torsions]) - self.phi0
        e += np.sum(EPS * (1 - np.cos(dphi)) + 0.5 * EPS * (1 - np.cos(3 * dphi)))
        rc = np.linalg.norm(x[self.contacts[:, 0]] - x[self.contacts[:, 1]], axis=-1)
        e += np.sum(EPS * (5 * (self.sigma / rc) ** 12 - 6 * (self.sigma / rc) ** 10))
        rn = np.linalg.norm(x[self.nonnative[:, 0]] - x[self.nonnative[:, 1]], axis=-1)
        e += np.sum(EPS * (4.0 / rn) ** 12)  # C = 4 Å
        return e


@pytest.fixture(scope="module")
def ref():
    return Reference()


@pytest.fixture(scope="module")
def context():
    system = tc.go_model_system()
    return openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))


# ---------------------------------------------------------------- structure and parameters

def test_native_structure_is_a_ca_chain_with_0_38_nm_virtual_bonds():
    native = tc.native_structure()
    top = native.topology
    assert native.xyz.shape == (1, 20, 3)
    assert [a.name for a in top.atoms] == ["CA"] * 20
    assert "".join(r.code for r in top.residues) == SEQUENCE
    assert sorted((b[0].index, b[1].index) for b in top.bonds) == [(i, i + 1) for i in range(19)]
    # mdtraj's own all-atom Cα distances, in nm, and the same distances in the Cα model
    full = md.load(str(tc.trp_cage_files()["pdb"]))
    ca = full.topology.select("name CA")
    d_full = md.compute_distances(full, np.c_[ca[:-1], ca[1:]])[0]
    d = md.compute_distances(native, np.c_[np.arange(19), np.arange(1, 20)])[0]
    np.testing.assert_allclose(d, d_full, rtol=1e-6)
    np.testing.assert_allclose(d, 0.38, rtol=0.03)


def test_native_contacts_match_mdtraj_closest_heavy(ref):
    contacts = tc.native_contacts()
    assert len(contacts.pairs) == 20
    np.testing.assert_array_equal(contacts.pairs, ref.contacts)
    np.testing.assert_allclose(contacts.distances, ref.sigma / 10.0, rtol=1e-12)
    assert len(ref.nonnative) == 116


def test_system_parameters_and_units(ref):
    system = tc.go_model_system()
    assert system.getNumParticles() == 20
    assert all(system.getParticleMass(i).value_in_unit(openmm.unit.amu) == 100.0 for i in range(20))
    forces = {f.getForceGroup(): f for f in system.getForces()}
    bonds = forces[0]
    assert bonds.getGlobalParameterDefaultValue(0) == pytest.approx(100.0 / 0.01)  # 100 ε/Å² in kJ/mol/nm²
    r0 = np.array([bonds.getBondParameters(i)[2][0] for i in range(bonds.getNumBonds())])
    np.testing.assert_allclose(r0, ref.r0 / 10.0, rtol=1e-12)
    assert forces[3].getNumBonds() == 20 and forces[4].getNumBonds() == 116


# ---------------------------------------------------------------- energies and forces

def test_native_structure_is_at_the_minimum_of_bonded_terms_and_contacts(context, ref):
    native = tc.native_structure().xyz[0]
    for group in (0, 1, 2):  # bonds, angles, torsions: zero energy, zero force
        e, f = openmm_energy_forces(context, native, {group})
        assert abs(e) < 1e-10 and np.abs(f).max() < 1e-6
    e, f = openmm_energy_forces(context, native, {3})  # every native contact at its minimum, -ε each
    assert e / 20 == pytest.approx(-EPS, abs=1e-10)
    assert np.abs(f).max() < 1e-6
    e_total, _ = openmm_energy_forces(context, native)
    assert e_total == pytest.approx(ref.energy(native), abs=1e-9)
    assert -20 * EPS < e_total < -19.9 * EPS  # the non-native repulsion at the native structure is small
    rng = np.random.default_rng(0)
    for _ in range(5):  # any small displacement raises the bonded energy: a (here global) minimum
        e, _ = openmm_energy_forces(context, native + rng.normal(0, 0.005, native.shape), {0, 1, 2})
        assert e > 1e-3


def test_energy_of_perturbed_and_simulated_structures_matches_numpy(context, ref):
    rng = np.random.default_rng(1)
    native = tc.native_structure().xyz[0].astype(np.float64)
    structures = [native + rng.normal(0, s, native.shape) for s in (0.01, 0.03, 0.1)]
    structures += list(tc.load_trp_cage("train", stride=4000).xyz)  # folded and unfolded MD frames
    for xyz in structures:
        e, _ = openmm_energy_forces(context, xyz)
        assert e == pytest.approx(ref.energy(xyz), rel=1e-9, abs=1e-9)


def test_forces_are_minus_the_finite_difference_gradient_of_the_numpy_energy(context, ref):
    rng = np.random.default_rng(2)
    xyz = tc.native_structure().xyz[0].astype(np.float64) + rng.normal(0, 0.03, (20, 3))
    _, forces = openmm_energy_forces(context, xyz)
    h = 1e-6
    grad = np.zeros_like(xyz)
    for i, k in itertools.product(range(20), range(3)):
        step = np.zeros_like(xyz)
        step[i, k] = h
        grad[i, k] = (ref.energy(xyz + step) - ref.energy(xyz - step)) / (2 * h)
    np.testing.assert_allclose(forces, -grad, atol=1e-4 * np.abs(grad).max())


# ---------------------------------------------------------------- Q and transitions

def test_fraction_native_contacts():
    native = tc.native_structure()
    assert tc.fraction_native_contacts(native).tolist() == [1.0]
    stretched = native.xyz * 1.19  # every contact below 1.2 sigma: formed; 1.21: none formed
    both = np.concatenate([stretched, native.xyz * 1.21])
    np.testing.assert_array_equal(tc.fraction_native_contacts(both), [1.0, 0.0])
    with pytest.raises(ValueError, match=r"\[n_frames, 20, 3\]"):
        tc.fraction_native_contacts(np.zeros((3, 19, 3)))


def test_transitions_with_hysteresis():
    q = [0.5, 0.1, 0.5, 0.9, 0.5, 0.9, 0.2, 0.6, 0.1, 0.35, 0.65, 0.8, 0.8]
    # passages: 0.1 (frame 1) -> 0.9 (frame 3) fold; -> 0.2 (frame 6) unfold; 0.1 -> 0.8 (frame 11) fold
    result = tc.folding_transitions(q, 0.3, 0.7)
    assert (result.n_folding, result.n_unfolding) == (2, 1)
    np.testing.assert_array_equal(result.folding_frames, [3, 11])
    np.testing.assert_array_equal(result.unfolding_frames, [6])
    np.testing.assert_array_equal(tc.core_states(q, 0.3, 0.7), [-1, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 1, 1])
    assert tc.folded_fraction(q, 0.3, 0.7) == pytest.approx(5 / 12)
    with pytest.raises(ValueError, match="q_unfolded < q_folded"):
        tc.folding_transitions(q, 0.7, 0.3)
    with pytest.raises(ValueError, match="undefined"):
        tc.folded_fraction([0.5, 0.5], 0.3, 0.7)


# ---------------------------------------------------------------- simulation

def test_simulation_is_seeded_cached_and_valid(tmp_path, monkeypatch):
    kwargs = dict(temperature=0.82, frame_interval_ps=0.5, equilibration_ps=1.0, progress=False)
    a = tc.simulate_trp_cage(10, seed=3, out=tmp_path / "a.xtc", **kwargs)
    a2 = tc.simulate_trp_cage(10, seed=3, out=tmp_path / "a2.xtc", **kwargs)
    b = tc.simulate_trp_cage(10, seed=4, out=tmp_path / "b.xtc", **kwargs)
    assert a.xyz.shape == (10, 20, 3) and np.all(np.isfinite(a.xyz))
    assert a.topology.n_bonds == 19
    np.testing.assert_allclose(a.time, 1.0 + 0.5 * np.arange(1, 11), atol=1e-4)
    np.testing.assert_array_equal(a2.xyz, a.xyz)  # same seed, same trajectory
    assert not np.allclose(a.xyz, b.xyz, atol=1e-3)  # another seed, another trajectory
    d = md.compute_distances(a, np.c_[np.arange(19), np.arange(1, 20)])
    np.testing.assert_allclose(d, 0.38, rtol=0.1)  # stiff virtual bonds stay near their native length

    import lss_jax.systems.md

    def fail(*args, **kw):
        raise AssertionError("simulated again instead of loading the cached file")

    monkeypatch.setattr(lss_jax.systems.md, "run_md", fail)
    cached = tc.simulate_trp_cage(10, seed=3, out=tmp_path / "a.xtc", **kwargs)
    np.testing.assert_array_equal(cached.xyz, a.xyz)
    assert cached.topology.n_atoms == 20


@pytest.mark.parametrize("kwargs, message", [
    (dict(n_frames=0), "n_frames must be >= 1"),
    (dict(n_frames=-5), "n_frames must be >= 1"),
    (dict(n_frames=2, temperature=0.0), "must be positive"),
    (dict(n_frames=2, temperature=-0.8), "must be positive"),
    (dict(n_frames=2, equilibration_ps=-1.0), "equilibration_ps must be >= 0"),
    (dict(n_frames=2, frame_interval_ps=0.015, equilibration_ps=0.0), r"multiple of the 10 fs step"),
])
def test_bad_simulation_arguments(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        tc.simulate_trp_cage(out=tmp_path / "x.xtc", progress=False, **kwargs)


def test_bad_load_arguments():
    with pytest.raises(ValueError, match="unknown shipped trajectory 'test'"):
        tc.load_trp_cage("test")
    with pytest.raises(ValueError, match="stride"):
        tc.load_trp_cage("train", stride=0)
    with pytest.raises(ValueError, match="positive"):
        tc.temperature_kelvin(0.0)


def test_temperature_in_kelvin():
    assert tc.temperature_kelvin(0.75) == pytest.approx(0.75 / 0.0083144626, rel=1e-8)  # k_B N_A in kJ/(mol K)


# ---------------------------------------------------------------- shipped data

@pytest.mark.parametrize("which", ["train", "independent"])
def test_shipped_trajectories(which):
    traj = tc.load_trp_cage(which)
    assert traj.xyz.shape == (tc.SHIPPED_N_FRAMES, 20, 3) == (28_000, 20, 3)
    assert float(traj.timestep) == pytest.approx(tc.SHIPPED_FRAME_PS) == 5.0
    assert traj.time[-1] - traj.time[0] == pytest.approx((28_000 - 1) * 5.0)  # 140 ns
    q = tc.fraction_native_contacts(traj)
    assert 0.3 <= tc.folded_fraction(q) <= 0.7
    transitions = tc.folding_transitions(q)
    assert (transitions.n_folding, transitions.n_unfolding) == tc.SHIPPED_TRANSITIONS[which]
    assert min(tc.SHIPPED_TRANSITIONS[which]) >= 200
    # folding and unfolding alternate
    events = np.sort(np.r_[transitions.folding_frames, transitions.unfolding_frames])
    kinds = np.isin(events, transitions.folding_frames)
    assert np.all(kinds[1:] != kinds[:-1])


def test_shipped_files_fit_the_size_budget():
    files = tc.trp_cage_files()
    assert sum(files[k].stat().st_size for k in ("train", "independent")) <= 10_000_000
