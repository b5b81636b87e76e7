"""Structural validation metrics against direct NumPy computations on alanine-dipeptide MD frames."""

from pathlib import Path

import mdtraj as md
import numpy as np
import pytest
import scipy.stats
from conftest import bondless_topology

from lss_jax.analysis.distributions import block_average, free_energy_2d, free_energy_rmse_2d
from lss_jax.analysis.structure import (
    binned_rmsd,
    bonded_geometry,
    count_clashes,
    geometry_deviation,
    nearest_frame_rmsd,
    radius_of_gyration,
)

DATA = Path(__file__).resolve().parents[1] / "lss_jax" / "systems" / "data"
PDB = DATA / "alanine-dipeptide.pdb"
XTC = DATA / "ala2-seed1-50ns-2ps.xtc"


def _heavy(traj):
    return traj.atom_slice(traj.topology.select("not element H"))


@pytest.fixture(scope="module")
def md_traj():
    """1000 all-atom frames, 100 ps apart."""
    return md.load(str(XTC), top=str(PDB), stride=25)


@pytest.fixture(scope="module")
def heavy(md_traj):
    return _heavy(md_traj)


@pytest.fixture(scope="module")
def pdb_heavy():
    return _heavy(md.load(str(PDB)))


def _bondless(traj):
    """Same atoms, residues and chains, but a topology without bonds (as for decoded coordinates)."""
    return md.Trajectory(traj.xyz.copy(), bondless_topology(traj.topology))


def _perturbed(traj, sigma, seed=0):
    rng = np.random.default_rng(seed)
    return md.Trajectory((traj.xyz + rng.normal(0.0, sigma, traj.xyz.shape)).astype(np.float32), traj.topology)


def test_radius_of_gyration_matches_numpy(heavy):
    xyz = heavy.xyz.astype(np.float64)
    expected = np.sqrt(np.mean(np.sum((xyz - xyz.mean(axis=1, keepdims=True)) ** 2, axis=-1), axis=1))
    got = radius_of_gyration(heavy)
    assert got.shape == (heavy.n_frames,) and got.dtype == np.float64
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_bonded_geometry_matches_numpy(pdb_heavy):
    pairs, lengths, triples, angles = bonded_geometry(pdb_heavy)
    # 10 heavy atoms of a linear molecule with 3 branch points (C=O twice, CA-CB): 9 bonds, 11 angles.
    assert pairs.shape == (9, 2) and lengths.shape == (1, 9)
    assert triples.shape == (11, 3) and angles.shape == (1, 11)
    bonded = {tuple(sorted((b.atom1.index, b.atom2.index))) for b in pdb_heavy.topology.bonds}
    assert {tuple(p) for p in pairs} == bonded
    xyz = pdb_heavy.xyz[0].astype(np.float64)
    np.testing.assert_allclose(lengths[0], np.linalg.norm(xyz[pairs[:, 0]] - xyz[pairs[:, 1]], axis=-1), rtol=1e-5)
    for i, j, k in triples:  # every triple is bonded at its centre
        assert tuple(sorted((i, j))) in bonded and tuple(sorted((j, k))) in bonded
    u = xyz[triples[:, 0]] - xyz[triples[:, 1]]
    v = xyz[triples[:, 2]] - xyz[triples[:, 1]]
    cos = np.sum(u * v, -1) / np.linalg.norm(u, axis=-1) / np.linalg.norm(v, axis=-1)
    np.testing.assert_allclose(angles[0], np.arccos(cos), atol=1e-5)
    # sp2/sp3 heavy-atom angles of a peptide lie around 105-125 degrees
    assert np.all((np.degrees(angles) > 100) & (np.degrees(angles) < 130))


def test_bonded_geometry_requires_bonds(pdb_heavy):
    with pytest.raises(ValueError, match="no bonds"):
        bonded_geometry(_bondless(pdb_heavy))


def test_geometry_deviation_of_md_against_itself(heavy):
    dev = geometry_deviation(heavy, heavy)
    assert dev["bond_length_mean_relative_error"] == pytest.approx(0.0, abs=1e-12)
    assert dev["angle_mean_relative_error"] == pytest.approx(0.0, abs=1e-12)
    assert dev["bond_length_mad_relative"] == pytest.approx(dev["reference_bond_length_mad_relative"], rel=1e-12)
    assert dev["angle_mad_degrees"] == pytest.approx(dev["reference_angle_mad_degrees"], rel=1e-12)
    # thermal spread of heavy-atom bonds (~1-2 %) and angles (~2-3 degrees) at 300 K
    assert 0.003 < dev["reference_bond_length_mad_relative"] < 0.05
    assert 0.5 < dev["reference_angle_mad_degrees"] < 6.0


def test_geometry_deviation_direct_formula(heavy):
    ref, gen = heavy[:300], _perturbed(heavy[300:400], 0.005)
    pairs, l_ref, _, _ = bonded_geometry(ref)
    l_gen = np.linalg.norm(gen.xyz[:, pairs[:, 0]] - gen.xyz[:, pairs[:, 1]], axis=-1).astype(np.float64)
    mean_ref = l_ref.mean(0)
    dev = geometry_deviation(ref, _bondless(gen))  # bonds come from the reference topology
    expected_mad = np.mean(np.abs(l_gen - mean_ref).mean(0) / mean_ref)
    assert dev["bond_length_mad_relative"] == pytest.approx(expected_mad, rel=1e-4)
    assert dev["bond_length_mean_relative_error"] == pytest.approx(
        np.mean(np.abs(l_gen.mean(0) - mean_ref) / mean_ref), rel=1e-3
    )
    assert dev["bond_length_mad_relative"] > dev["reference_bond_length_mad_relative"]


def test_geometry_deviation_of_scaled_structures(heavy):
    ref = heavy[:200]
    scaled = md.Trajectory(ref.xyz * np.float32(1.05), ref.topology)
    dev = geometry_deviation(ref, scaled)
    assert dev["bond_length_mean_relative_error"] == pytest.approx(0.05, abs=1e-6)
    assert dev["angle_mean_relative_error"] == pytest.approx(0.0, abs=1e-6)


def test_geometry_deviation_rejects_mismatched_atoms(md_traj, heavy):
    with pytest.raises(ValueError, match="atoms"):
        geometry_deviation(heavy, md_traj[:5])
    with pytest.raises(ValueError, match="mdtraj.Trajectory"):
        geometry_deviation(heavy, heavy.xyz)


def test_no_clashes_in_md(heavy):
    out = count_clashes(heavy)
    assert out == {
        "n_frames": heavy.n_frames,
        "frames_with_clash": 0,
        "fraction_frames_with_clash": 0.0,
        "n_clashing_pairs_total": 0,
        "threshold_scale": 0.75,
    }


def test_clash_detected_when_atom_moved_onto_distant_atom(heavy):
    frames = heavy[:4]
    xyz = frames.xyz.copy()
    # atom 0 (ACE CH3) and atom 9 (NME C) are 8 bonds apart; put 9 right next to 0 in frame 2
    xyz[2, 9] = xyz[2, 0] + np.float32(0.01)
    moved = md.Trajectory(xyz, frames.topology)
    out = count_clashes(moved)
    assert out["frames_with_clash"] == 1 and out["n_clashing_pairs_total"] >= 1
    assert out["fraction_frames_with_clash"] == pytest.approx(0.25)
    # a topology without bonds cannot define the rule on its own, but a reference topology can supply it
    with pytest.raises(ValueError, match="no bonds"):
        count_clashes(_bondless(moved))
    assert count_clashes(_bondless(moved), reference=heavy[:1]) == out


def test_clash_rule_bond_separation(heavy):
    frames = heavy[:3]
    n_bonds = frames.topology.n_bonds
    # with separation 1 every bond (0.12-0.15 nm) is below 0.75 * (0.17 + 0.155...) nm: all bonds clash
    out = count_clashes(frames, min_bond_separation=1)
    assert out["frames_with_clash"] == 3 and out["n_clashing_pairs_total"] >= 3 * n_bonds
    # a tiny scale removes every clash
    assert count_clashes(frames, min_bond_separation=1, scale=0.1)["n_clashing_pairs_total"] == 0
    with pytest.raises(ValueError, match="scale"):
        count_clashes(frames, scale=0.0)
    with pytest.raises(ValueError, match="min_bond_separation"):
        count_clashes(frames, min_bond_separation=0)


def test_nearest_frame_rmsd_against_itself_is_zero(heavy):
    frames = heavy[::10]
    got = nearest_frame_rmsd(frames, frames)
    assert got.shape == (frames.n_frames,)
    np.testing.assert_allclose(got, 0.0, atol=1e-3)  # mdtraj's float32 QCP RMSD


def test_nearest_frame_rmsd_of_perturbed_copies(heavy):
    frames = heavy[::10]
    sigma = 0.01
    noisy = _perturbed(frames, sigma, seed=1)
    got = nearest_frame_rmsd(noisy, frames)
    own = np.array([md.rmsd(noisy[i], frames, frame=i, parallel=False)[0] for i in range(frames.n_frames)])
    assert np.all(got > 0)
    assert np.all(got <= own + 1e-5)  # the own copy is one candidate of the minimum
    # Isotropic noise after optimal superposition: N RMSD^2 / sigma^2 ~ chi^2(3N - 6) (6 degrees of freedom taken
    # by the fit). The sample median of the frames' RMSDs against that law's median, within 4 standard errors of a
    # median (1 / (2 f(m) sqrt(n)), f the RMSD density at the median).
    n, k = frames.n_atoms, 3 * frames.n_atoms - 6
    x_median = scipy.stats.chi2.ppf(0.5, k)
    median = sigma * np.sqrt(x_median / n)
    density = scipy.stats.chi2.pdf(x_median, k) * 2 * n * median / sigma**2  # change of variables x -> RMSD
    se = 1 / (2 * density * np.sqrt(len(got)))
    assert abs(np.median(got) - median) < 4 * se, (np.median(got), median, se)
    assert abs(np.median(got) - 1.2 * median) > 4 * se  # the old bounds (0.6-1.2x) would have passed a 20 % error


def test_nearest_frame_rmsd_subsampling(heavy):
    frames = heavy[:50]
    got = nearest_frame_rmsd(frames, frames, max_generated=7, max_reference=50, seed=3)
    assert got.shape == (7,)
    np.testing.assert_allclose(got, 0.0, atol=1e-3)  # all reference frames kept, so each finds itself
    again = nearest_frame_rmsd(frames, frames[::2], max_generated=7, seed=3)
    np.testing.assert_array_equal(again, nearest_frame_rmsd(frames, frames[::2], max_generated=7, seed=3))
    with pytest.raises(ValueError, match="max_generated"):
        nearest_frame_rmsd(frames, frames, max_generated=0)


def test_nearest_frame_rmsd_finds_copies_among_every_reference_frame():
    """Copies of reference frames score ~0 against a reference of 12 000 frames (novelty's retrieval case). The
    negative control is the report's former cap of 5000 sampled reference frames: a copy of a frame left out of the
    sample then looks new (about 7 in 12 of them)."""
    from lss_jax.datasets import load_alanine_dipeptide

    traj = load_alanine_dipeptide("train", stride=2)
    reference = traj.atom_slice(traj.topology.select("not element H"))[:12_000]
    assert reference.n_frames == 12_000
    copies = reference[np.random.default_rng(0).choice(reference.n_frames, 200, replace=False)]
    got = nearest_frame_rmsd(copies, reference)
    np.testing.assert_allclose(got, 0.0, atol=1e-3)
    capped = nearest_frame_rmsd(copies, reference, max_reference=5000)
    assert np.mean(capped > 1e-3) > 0.4, np.mean(capped > 1e-3)
    # both loops (over the generated frames here, over the reference frames when it is the smaller set) agree
    few = reference[:30]
    np.testing.assert_allclose(nearest_frame_rmsd(copies, few), [md.rmsd(few, copies, frame=i).min()
                                                                  for i in range(copies.n_frames)], atol=1e-5)


@pytest.fixture(scope="module")
def latent(md_traj):
    """[n_frames, 2] (phi, psi) as a stand-in latent space."""
    return np.stack([md.compute_phi(md_traj)[1][:, 0], md.compute_psi(md_traj)[1][:, 0]], axis=1)


def test_binned_rmsd_identical_sets(heavy, latent):
    frames, z = heavy[:300], latent[:300]
    out = binned_rmsd(frames, z, frames, z, n_bins=6, dim=1, max_per_bin=300)
    for key in ("centers", "lss_md_rmsd", "md_md_rmsd", "counts_md", "counts_lss"):
        assert out[key].shape == (6,)
    assert out["edges"].shape == (7,)
    assert out["edges"][0] == z[:, 1].min() and out["edges"][-1] == z[:, 1].max()
    np.testing.assert_array_equal(out["counts_md"], out["counts_lss"])
    assert out["counts_md"].sum() == 300
    n = out["counts_md"].astype(float)
    full = n >= 5
    assert full.any()
    np.testing.assert_array_equal(np.isnan(out["lss_md_rmsd"]), ~full)
    np.testing.assert_array_equal(np.isnan(out["md_md_rmsd"]), ~full)
    # same frames in both sets: all-pairs mean includes the n zero self-pairs, distinct-pairs mean does not.
    # mdtraj's float32 self-RMSD is up to ~3e-4 nm instead of 0, which shifts the mean by <= 3e-4 / n (n >= 5).
    np.testing.assert_allclose(out["lss_md_rmsd"][full], out["md_md_rmsd"][full] * (n[full] - 1) / n[full], rtol=1e-4,
                               atol=1e-4)
    assert np.all(out["md_md_rmsd"][full] > 0.01)


def test_binned_rmsd_empty_bins_and_subsampling(heavy, latent):
    frames, z = heavy[:300], latent[:300]
    # LSS frames confined to the lowest MD bin of phi, plus some outside the MD range (ignored)
    lo = np.argsort(z[:, 0])[:20]
    lss_z = z[lo].copy()
    lss_z[:3, 0] = z[:, 0].min() - 1.0
    out = binned_rmsd(frames, z, _perturbed(frames[lo], 0.01), lss_z, n_bins=10, max_per_bin=8, seed=1)
    assert out["counts_lss"].sum() == 17 and out["counts_lss"][0] == 17
    assert np.all(np.isnan(out["lss_md_rmsd"][1:])) and np.all(np.isnan(out["md_md_rmsd"][1:]))
    assert np.isfinite(out["lss_md_rmsd"][0]) and np.isfinite(out["md_md_rmsd"][0])
    with pytest.raises(ValueError, match="rows"):
        binned_rmsd(frames, z[:10], frames, z)
    with pytest.raises(ValueError, match="dim"):
        binned_rmsd(frames, z, frames, z, dim=2)


def test_block_average_hand_computed():
    data = np.arange(10.0)
    mean, se = block_average(np.mean, data, n_blocks=5)
    # block means 0.5, 2.5, 4.5, 6.5, 8.5: mean 4.5, std(ddof=1) sqrt(10), se sqrt(10)/sqrt(5)
    assert mean == pytest.approx(4.5) and se == pytest.approx(np.sqrt(2.0))
    # array statistic; blocks [0..3], [4..6], [7..9] (numpy.array_split sizes 4, 3, 3)
    mean, se = block_average(lambda b: np.array([b.min(), b.max()]), data, n_blocks=3)
    np.testing.assert_allclose(mean, [(0 + 4 + 7) / 3, (3 + 6 + 9) / 3])
    np.testing.assert_allclose(se, [np.std([0, 4, 7], ddof=1) / np.sqrt(3), np.std([3, 6, 9], ddof=1) / np.sqrt(3)])


def test_block_average_ignores_non_finite_blocks():
    data = np.arange(8.0)  # blocks [0, 1], [2, 3], [4, 5], [6, 7]

    def stat(block):
        # element 0: inf in the first block; element 1: finite only in the last block
        return np.array([np.inf if block[0] == 0 else block.mean(), block.mean() if block[0] == 6 else np.nan])

    mean, se = block_average(stat, data, n_blocks=4)
    assert mean[0] == pytest.approx(4.5) and se[0] == pytest.approx(np.std([2.5, 4.5, 6.5], ddof=1) / np.sqrt(3))
    assert mean[1] == pytest.approx(6.5) and np.isnan(se[1])
    with pytest.raises(ValueError, match="n_blocks"):
        block_average(np.mean, data, n_blocks=1)
    with pytest.raises(ValueError, match="fewer than n_blocks"):
        block_average(np.mean, data[:3], n_blocks=4)


def test_free_energy_2d_uniform():
    bins = 36
    centers = np.linspace(-np.pi, np.pi, bins + 1)[:-1] + np.pi / bins
    gx, gy = np.meshgrid(centers, centers, indexing="ij")
    f, p, xe, ye = free_energy_2d(gx.ravel(), gy.ravel(), bins=bins)
    assert f.shape == p.shape == (bins, bins) and xe.shape == ye.shape == (bins + 1,)
    np.testing.assert_allclose(p, 1.0 / bins**2)
    np.testing.assert_allclose(f, np.log(bins**2))
    # random uniform sample: flat up to counting noise, kT scales F
    rng = np.random.default_rng(0)
    x, y = rng.uniform(-np.pi, np.pi, (2, 200_000))
    f, p, _, _ = free_energy_2d(x, y, bins=12, kT=2.5)
    assert p.sum() == pytest.approx(1.0)
    assert np.all(np.abs(f - 2.5 * np.log(144)) < 2.5 * 0.15)
    # an empty half gives inf there
    f, p, _, _ = free_energy_2d(np.abs(x), y, bins=12)
    assert np.all(np.isinf(f[:6])) and np.all(np.isfinite(f[6:])) and np.all(p[:6] == 0)


def test_free_energy_rmse_2d(latent):
    f_ref, p_ref, _, _ = free_energy_2d(latent[:, 0], latent[:, 1], bins=18)
    rmse, n_used = free_energy_rmse_2d(f_ref + 3.7, p_ref, f_ref)
    assert rmse == pytest.approx(0.0, abs=1e-12)
    assert n_used == np.count_nonzero(p_ref >= 1e-3 * p_ref.max())
    # a perturbation of known size on the used bins, zero mean, survives the constant removal
    mask = p_ref >= 1e-3 * p_ref.max()
    signs = np.where(np.arange(mask.sum()) % 2 == 0, 1.0, -1.0)
    signs -= signs.mean()
    f_a = f_ref.copy()
    f_a[mask] += 0.5 * signs
    rmse, _ = free_energy_rmse_2d(f_a, p_ref, f_ref)
    assert rmse == pytest.approx(0.5 * np.sqrt(np.mean(signs**2)))
    # stricter cutoff uses fewer bins
    assert free_energy_rmse_2d(f_a, p_ref, f_ref, min_prob_fraction=0.1)[1] < n_used
    with pytest.raises(ValueError, match="bin grid"):
        free_energy_rmse_2d(f_a[:-1], p_ref, f_ref)
