"""The Gō model of any protein (lss_jax.systems.go): Trp-cage's model rebuilt from its PDB, and a synthetic α-helix and a
fragment of 1L2Y against an independent float64 NumPy energy, finite-difference forces and short OpenMM runs."""

import importlib.util
import itertools

import mdtraj as md
import numpy as np
import pytest
from conftest import openmm_energy_forces, ref_angle, ref_dihedral

from lss_jax.systems import go as g
from lss_jax.systems import trp_cage as tc

needs_openmm = pytest.mark.skipif(importlib.util.find_spec("openmm") is None, reason="needs OpenMM (the md extra)")
GROUPS = {"bonds": 0, "angles": 1, "torsions": 2, "native": 3, "repulsion": 4}


def helix(n=16, *, rise=0.15, turn=100.0, radius=0.23):
    """An ideal α-helix of n Cα beads (ALA), nm."""
    k = np.arange(n)
    t = np.deg2rad(turn) * k
    xyz = np.c_[radius * np.cos(t), radius * np.sin(t), rise * k]
    top = md.Topology()
    chain = top.add_chain()
    for i in range(n):
        top.add_atom("CA", md.element.carbon, top.add_residue("ALA", chain, resSeq=i + 1))
    return md.Trajectory(xyz[None], top)


@pytest.fixture(scope="module")
def helix_pdb(tmp_path_factory):
    path = tmp_path_factory.mktemp("go") / "helix-ca.pdb"
    helix().save_pdb(str(path))
    return path


@pytest.fixture(scope="module")
def fragment():
    """Residues 2-15 of 1L2Y, all atoms: a second all-atom protein."""
    full = md.load(str(tc.trp_cage_files()["pdb"]))
    return full.atom_slice(full.topology.select("resid 1 to 14"))


# ---------------------------------------------------------------- independent reference (float64 NumPy, Å and ε)

class Reference:
    """Clementi et al. (2000) from the paper's formula in ε and Å; contacts from mdtraj (heavy atoms or Cα)."""

    def __init__(self, structure, *, ca_only, eps=1.0):
        ca = structure.topology.select("name CA")
        self.eps = eps
        x = self.native = structure.xyz[0, ca].astype(np.float64) * 10.0
        idx = np.arange(len(ca))
        self.bonds, self.angles = np.c_[idx[:-1], idx[1:]], np.c_[idx[:-2], idx[1:-1], idx[2:]]
        self.torsions = np.c_[idx[:-3], idx[1:-2], idx[2:-1], idx[3:]]
        self.r0 = np.linalg.norm(x[self.bonds[:, 1]] - x[self.bonds[:, 0]], axis=-1)
        self.theta0, self.phi0 = ref_angle(x[self.angles]), ref_dihedral(x[self.torsions])
        far = np.array([(i, j) for i in idx for j in range(i + 4, len(idx))])
        if ca_only:
            native = md.compute_distances(structure, ca[far])[0] < 0.8
        else:
            native = md.compute_contacts(structure, far, scheme="closest-heavy")[0][0] < 0.45
        self.contacts, self.nonnative = far[native], far[~native]
        self.sigma = np.linalg.norm(x[self.contacts[:, 0]] - x[self.contacts[:, 1]], axis=-1)

    def terms(self, xyz_nm):
        x, eps = np.asarray(xyz_nm, np.float64) * 10.0, self.eps
        r = np.linalg.norm(x[self.bonds[:, 1]] - x[self.bonds[:, 0]], axis=-1)
        dphi = ref_dihedral(x[self.torsions]) - self.phi0
        rc = np.linalg.norm(x[self.contacts[:, 0]] - x[self.contacts[:, 1]], axis=-1)
        rn = np.linalg.norm(x[self.nonnative[:, 0]] - x[self.nonnative[:, 1]], axis=-1)
        return {"bonds": np.sum(100.0 * eps * (r - self.r0) ** 2),  # K_r = 100 ε/Å²
                "angles": np.sum(20.0 * eps * (ref_angle(x[self.angles]) - self.theta0) ** 2),
                "torsions": np.sum(eps * (1 - np.cos(dphi)) + 0.5 * eps * (1 - np.cos(3 * dphi))),
                "native": np.sum(eps * (5 * (self.sigma / rc) ** 12 - 6 * (self.sigma / rc) ** 10)),
                "repulsion": np.sum(eps * (4.0 / rn) ** 12)}  # C = 4 Å

    def energy(self, xyz_nm):
        return sum(self.terms(xyz_nm).values())


def _context(system):
    import openmm

    return openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))


def _structures(native, seed, n_md_frames=()):
    rng = np.random.default_rng(seed)
    native = np.asarray(native, np.float64)
    return [native] + [native + rng.normal(0, s, native.shape) for s in (0.01, 0.03, 0.1)] + list(n_md_frames)


# ---------------------------------------------------------------- (a) Trp-cage rebuilt from its PDB

def test_go_model_of_1l2y_is_the_trp_cage_model():
    for source in (tc.trp_cage_files()["pdb"], md.load(str(tc.trp_cage_files()["pdb"]))):
        go = g.go_model(source)
        contacts = tc.native_contacts()
        np.testing.assert_array_equal(go.contacts.pairs, contacts.pairs)
        np.testing.assert_array_equal(go.contacts.distances, contacts.distances)
        assert go.sequence == tc.SEQUENCE and go.n_beads == 20 and len(go.nonnative_pairs) == 116
        np.testing.assert_array_equal(go.native_structure().xyz, tc.native_structure().xyz)
        assert tc.is_trp_cage(go.topology())
    assert (go.epsilon, go.bead_mass, go.k_bond, go.k_angle, go.k_torsion, go.repulsion_radius, go.min_separation) == (
        tc.EPSILON, tc.BEAD_MASS, tc.K_BOND, tc.K_ANGLE, (tc.K_TORSION_1, tc.K_TORSION_3), tc.REPULSION_RADIUS,
        tc.MIN_SEPARATION)


@needs_openmm
def test_openmm_system_of_1l2y_has_trp_cage_energies_in_every_force_group():
    import openmm

    go = g.go_model(tc.trp_cage_files()["pdb"])
    system, trp = g.openmm_system(go), tc.go_model_system()
    assert openmm.XmlSerializer.serialize(system) == openmm.XmlSerializer.serialize(trp)  # same forces, same order
    ours, theirs = _context(system), _context(trp)
    frames = tc.load_trp_cage("train", stride=7000).xyz  # folded and unfolded MD frames
    for xyz in _structures(tc.native_structure().xyz[0], 0, frames):
        reference = g.go_energy(go, xyz)
        for name, group in GROUPS.items():
            e, f = openmm_energy_forces(ours, xyz, {group})
            e_trp, f_trp = openmm_energy_forces(theirs, xyz, {group})
            assert e == e_trp
            np.testing.assert_array_equal(f, f_trp)
            assert e == pytest.approx(getattr(reference, name), rel=1e-9, abs=1e-9)


# ---------------------------------------------------------------- (b, c, d) other proteins against the reference

@pytest.fixture(scope="module", params=["helix_ca", "fragment_all_atom"])
def model(request, helix_pdb, fragment):
    if request.param == "helix_ca":
        return g.go_model(helix_pdb), Reference(md.load(str(helix_pdb)), ca_only=True)
    return g.go_model(fragment, epsilon=2.5), Reference(fragment, ca_only=False, eps=2.5)


def test_contacts_of_other_proteins(model, helix_pdb):
    go, ref = model
    np.testing.assert_array_equal(go.contacts.pairs, ref.contacts)
    np.testing.assert_allclose(go.contacts.distances, ref.sigma / 10, rtol=1e-12)
    np.testing.assert_array_equal(go.nonnative_pairs, ref.nonnative)
    if go.n_beads == 16:  # the ideal helix with Cα within 0.8 nm: exactly the (i, i + 4) pairs (0.62 nm; i + 5: 0.86)
        assert go.contacts.pairs.tolist() == [[i, i + 4] for i in range(12)]
        np.testing.assert_allclose(go.bond_lengths, 0.383, atol=1e-3)


def test_numpy_energy_matches_the_reference(model):
    go, ref = model
    structures = _structures(go.xyz, 1)
    batch = g.go_energy(go, np.stack(structures))
    for k, xyz in enumerate(structures):
        expected = ref.terms(xyz)
        energy = g.go_energy(go, xyz)
        for name in GROUPS:
            assert getattr(energy, name) == pytest.approx(expected[name], rel=1e-9, abs=1e-9)
            assert getattr(batch, name)[k] == pytest.approx(getattr(energy, name), rel=1e-12, abs=1e-12)
        assert energy.total == pytest.approx(ref.energy(xyz), rel=1e-9, abs=1e-9)


@needs_openmm
def test_openmm_energies_and_forces_match_the_reference(model):
    go, ref = model
    context = _context(g.openmm_system(go))
    for xyz in _structures(go.xyz, 2):
        terms = ref.terms(xyz)
        for name, group in GROUPS.items():
            e, _ = openmm_energy_forces(context, xyz, {group})
            assert e == pytest.approx(terms[name], rel=1e-9, abs=1e-9)
    rng = np.random.default_rng(3)
    xyz = go.xyz + rng.normal(0, 0.03, go.xyz.shape)
    _, forces = openmm_energy_forces(context, xyz)
    h, grad = 1e-6, np.zeros_like(xyz)
    for i, k in itertools.product(range(go.n_beads), range(3)):
        step = np.zeros_like(xyz)
        step[i, k] = h
        grad[i, k] = (ref.energy(xyz + step) - ref.energy(xyz - step)) / (2 * h)
    np.testing.assert_allclose(forces, -grad, atol=1e-4 * np.abs(grad).max())


@needs_openmm
def test_native_structure_is_the_minimum_of_bonded_terms_and_contacts(model):
    go, _ = model
    context = _context(g.openmm_system(go))
    for group in (0, 1, 2):
        e, f = openmm_energy_forces(context, go.xyz, {group})
        assert abs(e) < 1e-10 and np.abs(f).max() < 1e-6
    e, f = openmm_energy_forces(context, go.xyz, {3})  # each native contact at its minimum, -epsilon
    assert e / len(go.contacts.pairs) == pytest.approx(-go.epsilon, abs=1e-10)
    assert np.abs(f).max() < 1e-6
    rng = np.random.default_rng(4)
    for _ in range(5):
        e, _ = openmm_energy_forces(context, go.xyz + rng.normal(0, 0.005, go.xyz.shape), {0, 1, 2})
        assert e > 1e-3


def test_fraction_native_contacts_of_the_helix(helix_pdb):
    go = g.go_model(helix_pdb)
    native = go.native_structure()
    assert g.fraction_native_contacts(go, native).tolist() == [1.0]
    both = np.concatenate([native.xyz * 1.19, native.xyz * 1.21])  # contacts formed below 1.2 sigma
    np.testing.assert_array_equal(g.fraction_native_contacts(go, both), [1.0, 0.0])
    with pytest.raises(ValueError, match=r"\[n_frames, 16, 3\]"):
        g.fraction_native_contacts(go, np.zeros((2, 20, 3)))


# ---------------------------------------------------------------- (e) simulation

@needs_openmm
def test_helix_simulation_is_seeded(helix_pdb, tmp_path):
    go = g.go_model(helix_pdb)
    kwargs = dict(temperature=0.5, frame_interval_ps=0.5, equilibration_ps=1.0, progress=False)
    a = g.simulate_go(go, 20, seed=3, out=tmp_path / "a.xtc", **kwargs)
    g.simulate_go(go, 20, seed=3, out=tmp_path / "a2.xtc", **kwargs)
    b = g.simulate_go(go, 20, seed=4, **kwargs)
    assert (tmp_path / "a.xtc").read_bytes() == (tmp_path / "a2.xtc").read_bytes()  # same seed, same bytes
    assert a.xyz.shape == (20, 16, 3) and a.topology.n_bonds == 15
    np.testing.assert_allclose(a.time, 1.0 + 0.5 * np.arange(1, 21), atol=1e-4)
    assert not np.allclose(a.xyz, b.xyz, atol=1e-3)
    assert g.simulate_go(go, 20, seed=3, out=tmp_path / "a.xtc", **kwargs).xyz.tobytes() == a.xyz.tobytes()  # cached


@needs_openmm
def test_folding_temperature_scan_of_the_helix(helix_pdb):
    # measured: folded fraction 1.0, 0.99, 0.79, 0.44, 0.27, 0.04 at T* = 0.3, 0.7, 0.9, 1.1, 1.3, 2.0 (500 frames)
    go = g.go_model(helix_pdb)
    scan = g.folding_temperature_scan(go, [0.3, 2.0], n_frames=300, frame_interval_ps=1.0, equilibration_ps=20.0)
    assert scan.folded_fraction[0] > 0.95 and scan.mean_q[0] > 0.9  # stays folded
    assert scan.folded_fraction[1] < 0.25 and scan.mean_q[1] < 0.5  # unfolds
    # C = Var(E) / (k T^2) (reduced units); the unfolded ensemble's energy fluctuates more
    np.testing.assert_allclose(scan.heat_capacity, scan.energy_variance / np.array([0.3, 2.0]) ** 2)
    assert scan.energy_variance[1] > scan.energy_variance[0]
    with pytest.raises(ValueError, match="must be positive"):
        g.folding_temperature_scan(go, [0.5, -1.0], n_frames=2)


# ---------------------------------------------------------------- (f) bad input

def test_bad_structures(tmp_path, fragment):
    helix().atom_slice([0, 1, 2]).save_pdb(str(tmp_path / "short.pdb"))
    with pytest.raises(ValueError, match="at least 4 residues"):
        g.go_model(tmp_path / "short.pdb")
    with pytest.raises(ValueError, match="chain break .* ALA8–ALA10"):
        g.go_model(helix().atom_slice([i for i in range(16) if i != 8]))
    no_ca = helix()
    for atom in no_ca.topology.atoms:
        atom.name = "CB"
    no_ca.save_pdb(str(tmp_path / "no-ca.pdb"))
    with pytest.raises(ValueError, match="has no CA atom"):
        g.go_model(tmp_path / "no-ca.pdb")
    water = md.Topology()
    water.add_atom("O", md.element.oxygen, water.add_residue("HOH", water.add_chain()))
    with pytest.raises(ValueError, match="no protein residues"):
        g.go_model(md.Trajectory(np.zeros((1, 1, 3)), water))
    with pytest.raises(FileNotFoundError, match="no structure file"):
        g.go_model(tmp_path / "missing.pdb")
    with pytest.raises(ValueError, match="no protein chain 'B'"):
        g.go_model(fragment, chain="B")
    with pytest.raises(ValueError, match="model must be a frame index"):
        g.go_model(fragment, model=3)
    with pytest.raises(ValueError, match="contact_cutoff > 0"):
        g.go_model(fragment, contact_cutoff=0.0)
