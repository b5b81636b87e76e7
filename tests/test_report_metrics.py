"""Known answers for the metrics that ``report`` writes (``analysis.molecular``): synthetic frames made so that
the right value is known by construction, or an implementation we did not write (mdtraj) as the reference.

Each case builds its generated frames from alanine dipeptide MD heavy atoms: a chosen mix of backbone basins
(the basin populations are the mix), rigid-body copies (RMSF 0), one bond stretched in a known fraction of frames,
two distant atoms pushed into contact in a known number of frames, and draws of the support constraint with known
redraw counts.
"""

import jax
import mdtraj as md
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from lss_jax.analysis.molecular import compare_structures, decoder_round_trip, support_diagnostics
from lss_jax.analysis.torsions import phi_psi
from lss_jax.datasets import load_alanine_dipeptide


def _heavy(traj):
    return traj.atom_slice(traj.topology.select("not element H"))


@pytest.fixture(scope="module")
def md_heavy():
    return _heavy(load_alanine_dipeptide("train", stride=5))


def test_basin_populations_are_the_mix_they_were_made_of():
    """Frames picked by their (phi, psi) from mdtraj, in known numbers per basin: the report's populations are those
    numbers (basins of docs/report.md: alpha_L phi > 0, its basin 0 < phi < 120 deg, alpha_R psi in (-2, 0.9) rad)."""
    md_heavy = _heavy(load_alanine_dipeptide("train"))  # every frame: the alpha_L basin holds 17 of them
    _, phi = md.compute_phi(md_heavy)
    _, psi = md.compute_psi(md_heavy)
    phi, psi = phi[:, 0], psi[:, 0]
    alpha_l_basin = np.flatnonzero((phi > 0) & (phi < np.radians(120)))
    alpha_l_other = np.flatnonzero(phi >= np.radians(120))
    alpha_r = np.flatnonzero((phi < 0) & (psi > -2.0) & (psi < 0.9))
    beta = np.flatnonzero((phi < 0) & ~((psi > -2.0) & (psi < 0.9)))
    assert len(alpha_l_basin) >= 3 and len(alpha_l_other) >= 2, "the shipped run has frames in every basin"
    # 3 + 2 + 40 + 55 = 100 frames: alpha_L basin, alpha_L beyond it, alpha_R, beta/PPII
    picks = np.concatenate([alpha_l_basin[:3], alpha_l_other[:2], alpha_r[:40], beta[:55]])
    out = compare_structures(md_heavy, md_heavy[picks])
    generated = out["basin_populations"]["generated"]
    assert generated["alpha_l_basin"] == pytest.approx(3 / 100)
    assert generated["alpha_l"] == pytest.approx(5 / 100)
    assert generated["alpha_r"] == pytest.approx(40 / 100)
    assert generated["beta_ppii"] == pytest.approx(55 / 100)
    # the same frames: F(phi, psi) RMSE 0 on every populated bin
    same = compare_structures(md_heavy, md_heavy)
    assert same["free_energy_phi_psi"]["rmse_kT"] == pytest.approx(0.0, abs=1e-9)
    assert same["free_energy_phi_psi"]["coverage"] == 1.0
    assert same["basin_populations"]["md"] == same["basin_populations"]["generated"]


def test_rmsf_and_rg_against_mdtraj_and_rigid_copies(md_heavy):
    rng = np.random.default_rng(0)
    ref = md_heavy[:400]
    out = compare_structures(md_heavy, ref)
    np.testing.assert_allclose(out["rmsf_nm"]["generated"], md.rmsf(ref, md_heavy, 0), rtol=1e-4, atol=1e-6)
    rg = md.compute_rg(ref)
    assert out["radius_of_gyration_nm"]["generated"] == pytest.approx([rg.mean(), rg.std()], rel=1e-5)
    # rigid-body copies of one frame (random rotations and shifts): RMSF 0, Rg that of the frame, no clash
    x0 = md_heavy.xyz[0].astype(np.float64)
    rotations = Rotation.random(200, random_state=1).as_matrix()
    copies = np.einsum("fij,aj->fai", rotations, x0 - x0.mean(0)) + rng.normal(size=(200, 1, 3))
    rigid = md.Trajectory(copies.astype(np.float32), md_heavy.topology)
    out = compare_structures(md_heavy, rigid)
    assert np.max(out["rmsf_nm"]["generated"]) < 1e-5
    assert out["radius_of_gyration_nm"]["generated"][0] == pytest.approx(md.compute_rg(md_heavy[0])[0], rel=1e-5)
    assert out["radius_of_gyration_nm"]["generated"][1] < 1e-6
    assert out["bonds_off_10pct_fraction"]["generated"] == 0.0
    assert out["clashes"]["generated"]["frames_with_clash"] == 0


def test_bonds_off_and_clashes_count_the_frames_made_broken(md_heavy):
    frames = np.array(md_heavy.xyz[:100], np.float64)
    bonds = np.array([[b[0].index, b[1].index] for b in md_heavy.topology.bonds])
    degree = np.bincount(bonds.ravel(), minlength=md_heavy.n_atoms)
    i, j = next((a, b) if degree[b] == 1 else (b, a) for a, b in bonds if 1 in (degree[a], degree[b]))
    mean = np.linalg.norm(md_heavy.xyz[:, j] - md_heavy.xyz[:, i], axis=-1).mean()
    # a terminal bond (its outer atom j has no other bond) set to 1.15 x its MD mean in 25 frames and to 1.05 x in
    # 25 others (not counted: the threshold is 10 %)
    for rows, factor in ((slice(0, 25), 1.15), (slice(25, 50), 1.05)):
        unit = frames[rows, j] - frames[rows, i]
        frames[rows, j] = frames[rows, i] + factor * mean * unit / np.linalg.norm(unit, axis=-1, keepdims=True)
    # the first and last heavy atoms (more than 3 bonds apart) 0.1 nm apart in 10 other frames
    first, last = 0, md_heavy.n_atoms - 1
    direction = frames[60:70, last] - frames[60:70, first]
    frames[60:70, last] = frames[60:70, first] + 0.1 * direction / np.linalg.norm(direction, axis=-1, keepdims=True)
    out = compare_structures(md_heavy, md.Trajectory(frames.astype(np.float32), md_heavy.topology))
    # 25 stretched frames and the 10 clash frames, whose moved atom left its own bond far behind
    assert out["bonds_off_10pct_fraction"]["generated"] == pytest.approx((25 + 10) / 100)
    assert out["clashes"]["generated"]["frames_with_clash"] == 10
    assert out["clashes"]["generated"]["fraction_frames_with_clash"] == pytest.approx(0.1)


def test_support_diagnostics_count_known_redraws_and_md_outside(tiny_alanine_model):
    model, data = tiny_alanine_model
    redraws = model.decoder.redraws
    assert redraws >= 2
    heavy_md = np.asarray(data.xyz[:, model.atom_indices], np.float32)
    # draws: the draw each frame kept; 0 = its first draw was inside the support, > redraws = every draw was outside
    draws = np.array([0, 0, 0, 1, 2, redraws + 1, 0, 0])
    out = support_diagnostics(model, heavy_md, draws)
    assert out["first_draw_outside_fraction"] == pytest.approx(3 / 8)
    assert out["outside_after_redraws_fraction"] == pytest.approx(1 / 8)
    assert out["md_outside_fraction"] == 0.0  # the support is the training frames' own smallest distances
    squeezed = 0.5 * heavy_md  # every distant pair at half its distance: every frame outside
    assert support_diagnostics(model, squeezed, draws)["md_outside_fraction"] == 1.0


def test_decoder_round_trip_decodes_each_md_frame_at_its_own_latent_point(tiny_alanine_model):
    """One decoded frame per MD frame, in order: the round trip of a frame is the decoder at that frame's psi."""
    model, data = tiny_alanine_model
    frames = data[:30]
    traj, draws = decoder_round_trip(jax.random.key(0), model, [frames[:10], frames[10:]], return_draws=True)
    assert traj.n_frames == 30 and traj.n_atoms == len(model.atom_indices) and draws.shape == (30,)
    psi = model.encode(frames[10:])
    expected = model.decode_unit(jax.random.fold_in(jax.random.key(0), 1), model.to_unit(psi))
    np.testing.assert_array_equal(traj.xyz[10:], np.asarray(expected).reshape(20, -1, 3))
    assert phi_psi(traj).shape == (30, 2)
