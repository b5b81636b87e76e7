"""The decoder's conditional fidelity (``lss_jax.analysis.conditional``): SciPy as the reference for W1, brute force
for the latent neighbours, and synthetic "molecules" whose conditional law given the latent point is known, decoded
by stand-ins that sample that law exactly, 1.5 times too broadly, or with a known bias."""

import jax
import mdtraj as md
import numpy as np
import pytest
from scipy.stats import wasserstein_distance

from lss_jax.analysis.conditional import (
    conditional_fidelity,
    conditional_statistics,
    latent_neighbours,
    observable_pairs,
    wasserstein_1d,
)


@pytest.mark.parametrize("n,m", [(1, 1), (5, 5), (32, 32), (7, 40)])
def test_wasserstein_1d_is_scipys_batched(n, m):
    rng = np.random.default_rng(n * 100 + m)
    x, y = rng.normal(size=(6, n)), rng.gamma(2.0, size=(6, m))
    x[0] = np.round(x[0])  # ties, within and across the samples
    y[0] = np.round(y[0])
    expected = [wasserstein_distance(a, b) for a, b in zip(x, y)]
    np.testing.assert_allclose(wasserstein_1d(x, y), expected, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(wasserstein_1d(x[:, None], y[:, None])[:, 0], expected, rtol=1e-12, atol=1e-14)


def test_wasserstein_1d_rejects_mismatched_samples():
    with pytest.raises(ValueError, match="same leading shape"):
        wasserstein_1d(np.zeros((2, 3)), np.zeros((3, 3)))
    with pytest.raises(ValueError, match="n, m >= 1"):
        wasserstein_1d(np.zeros((2, 0)), np.zeros((2, 3)))


def test_latent_neighbours_are_the_nearest_outside_the_window_by_brute_force():
    rng = np.random.default_rng(1)
    u = rng.uniform(size=(600, 3))
    segments = np.repeat([0, 1, 2], [250, 50, 300])
    points = np.array([0, 5, 249, 250, 260, 299, 300, 599])
    near = latent_neighbours(u, points, 20, segments=segments, window=4)
    for p, row in zip(points, near):
        allowed = ~((segments == segments[p]) & (np.abs(np.arange(len(u)) - p) <= 4))
        candidates = np.flatnonzero(allowed)
        order = candidates[np.argsort(np.linalg.norm(u[candidates] - u[p], axis=1))]
        np.testing.assert_array_equal(row, order[:20])
    with pytest.raises(ValueError, match="fewer than 20 frames"):
        latent_neighbours(u[:20], [3], 20, window=0)


def test_observable_pairs_subsample_without_repeats_and_by_seed():
    pairs = observable_pairs(60, max_pairs=200, seed=3)
    assert len({tuple(p) for p in pairs}) == 200 and np.all(pairs[:, 0] < pairs[:, 1]) and pairs.max() < 60
    np.testing.assert_array_equal(pairs, observable_pairs(60, max_pairs=200, seed=3))
    assert len(observable_pairs(20)) == 190  # a 20-residue Cα model keeps every pair


# --------------------------------------------------------------------------------------------------
# a synthetic system with a known conditional law
# --------------------------------------------------------------------------------------------------
# 4 atoms on a line, spacing 0.3 + 0.2 u_0 nm, each displaced by isotropic Gaussian noise of sd 0.02 + 0.03 u_1 nm:
# Rg, the pair distances and Q (pairs closer than 0.55 nm) all depend on u. MD frames are independent draws at
# uniform u; a latent point's conditional law is that of its u.
N_ATOMS, N_MD = 4, 20_000


def _frames(rng, u, *, scale=1.0, stretch=0.0, gain=1.0):
    spacing = 0.3 + 0.2 * (0.5 + gain * (u[:, 0] - 0.5)) + stretch
    sd = (0.02 + 0.03 * u[:, 1]) * scale
    line = np.zeros((len(u), N_ATOMS, 3))
    line[:, :, 0] = spacing[:, None] * np.arange(N_ATOMS)
    return (line + sd[:, None, None] * rng.normal(size=line.shape)).astype(np.float32)


def _q(xyz):
    i, j = np.triu_indices(N_ATOMS, k=1)
    return np.mean(np.linalg.norm(xyz[:, i] - xyz[:, j], axis=-1) < 0.55, axis=-1)


class _LawDecoder:
    """A stand-in for :class:`lss_jax.LSS` whose latent coordinates are the unit box itself and whose decoder samples
    the synthetic conditional law (``scale``: its noise times ``scale``; ``stretch``: its spacing longer by that;
    ``gain``: its spacing moves ``gain`` times as fast with ``u_0`` about the centre of the box)."""

    atom_indices = np.arange(N_ATOMS)

    def __init__(self, latent, *, scale=1.0, stretch=0.0, gain=1.0):
        self.latent, self.scale, self.stretch, self.gain = latent, scale, stretch, gain

    def encode(self, trajs):
        return self.latent

    def to_unit(self, psi):
        return np.asarray(psi, np.float32)

    def decode_unit(self, key, u, *, progress=None):
        rng = np.random.default_rng(int(np.asarray(jax.random.key_data(key)).sum()))
        flat = np.asarray(u, np.float64).reshape(-1, u.shape[-1])
        return _frames(rng, flat, scale=self.scale, stretch=self.stretch, gain=self.gain).reshape(*u.shape[:-1], N_ATOMS, 3)


@pytest.fixture(scope="module")
def synthetic_md():
    rng = np.random.default_rng(0)
    u = rng.uniform(size=(N_MD, 2))
    top = md.Topology()
    chain = top.add_chain()
    for i in range(N_ATOMS):
        top.add_atom("CA", md.element.carbon, top.add_residue("ALA", chain))
    return md.Trajectory(_frames(rng, u), top), u


def _fidelity(synthetic_md, **decoder):
    traj, u = synthetic_md
    return conditional_fidelity(jax.random.key(1), _LawDecoder([u], **decoder), traj, n_points=200, n_draws=32, k=32,
                                q_fn=_q, seed=0)


# Tolerances from the sample sizes: 200 points of 32 draws and 2 x 32 neighbours. The mean over points of W1 between
# two 32-samples has a relative spread of about 0.5 / sqrt(200) = 0.035 per side; the ratio of two such means about
# 0.05 (0.15: three of those). The RMS standard deviation pools 200 x 31 degrees of freedom: relative error ~ 0.01.
def test_a_decoder_that_samples_the_exact_conditional_scores_its_floor(synthetic_md):
    out = _fidelity(synthetic_md)
    assert out["n_points"] == 200 and out["n_pairs"] == 6 and set(out) >= {"radius_of_gyration_nm",
                                                                            "pair_distances_nm", "q"}
    assert out["neighbour_radius"] < 0.05  # 64 of 20 000 uniform points in the unit square: radius ~ 0.032
    for name in ("radius_of_gyration_nm", "pair_distances_nm", "q"):
        s = out[name]
        assert s["w1_ratio"] == pytest.approx(1.0, abs=0.15), (name, s)
        assert s["sd_ratio"] == pytest.approx(1.0, abs=0.05), (name, s)
        assert s["sd_ratio_floor"] == pytest.approx(1.0, abs=0.05), (name, s)
        assert abs(s["bias"]) < 3 * s["sd_md"] / np.sqrt(200 * 32) + 0.005, (name, s)  # the ball's slope adds little
        assert s["slope_ratio"] == pytest.approx(1.0, abs=0.05), (name, s)
    assert out["pair_distances_nm"]["n_components"] == 6 and out["q"]["n_components"] == 1


def test_a_decoder_one_and_a_half_times_too_broad_is_seen(synthetic_md):
    exact, broad = _fidelity(synthetic_md), _fidelity(synthetic_md, scale=1.5)
    for name in ("radius_of_gyration_nm", "pair_distances_nm"):
        # distances and Rg are nearly linear in the noise here (sd 0.02-0.05 nm against spacings of 0.3-0.5 nm)
        assert broad[name]["sd_ratio"] == pytest.approx(1.5, abs=0.08), (name, broad[name])
        assert broad[name]["w1_ratio"] > 1.5 and broad[name]["w1"] > exact[name]["w1"] + 0.003, (name, broad[name])
        assert abs(broad[name]["bias"]) < 0.01
    assert broad["q"]["w1_ratio"] > exact["q"]["w1_ratio"] + 0.15


# The slope of 200 points' decoded means on A's: the means move with sd 0.06-0.17 nm across the points (spacing
# 0.3-0.5 nm times |i - j|) and carry sampling errors of about 0.05 / sqrt(32) = 0.009 nm, so each pair's slope has
# a standard error near 0.009 / (0.06 sqrt(200)) = 0.011 or less; 0.05 is over four of those.
def test_a_decoder_that_exaggerates_how_the_structure_moves_with_psi_is_seen(synthetic_md):
    exact, gained = _fidelity(synthetic_md), _fidelity(synthetic_md, gain=1.25)
    for name in ("radius_of_gyration_nm", "pair_distances_nm"):
        # the same spread at each point and no shift on average: what sd_ratio and bias cannot tell apart
        assert gained[name]["sd_ratio"] == pytest.approx(1.0, abs=0.05), (name, gained[name])
        assert abs(gained[name]["bias"]) < 0.005, (name, gained[name])
        assert gained[name]["slope_ratio"] == pytest.approx(1.25, abs=0.05), (name, gained[name])
        assert exact[name]["slope_ratio"] == pytest.approx(1.0, abs=0.05), (name, exact[name])
    assert gained["q"]["slope_ratio"] > exact["q"]["slope_ratio"] + 0.1


def test_a_biased_decoder_shows_its_bias(synthetic_md):
    out = _fidelity(synthetic_md, stretch=0.03)
    pairs = out["pair_distances_nm"]
    # every spacing 0.03 nm longer: pair (i, j) longer by 0.03 |i - j|, 0.05 nm on average over the 6 pairs
    assert pairs["bias"] == pytest.approx(0.05, abs=0.003) and abs(pairs["bias_floor"]) < 0.003
    assert pairs["abs_bias_ratio"] > 3 and pairs["w1_ratio"] > 2
    assert pairs["sd_ratio"] == pytest.approx(1.0, abs=0.05)  # as broad as MD, only shifted
    # Rg of a line of 4 atoms is sqrt(5/4) spacing: 0.0335 nm more; fewer pairs under the Q cutoff
    assert out["radius_of_gyration_nm"]["bias"] == pytest.approx(0.03 * np.sqrt(1.25), abs=0.003)
    assert out["q"]["bias"] < -0.02 and out["q"]["w1_ratio"] > 1.5


def test_conditional_statistics_reject_mismatched_samples():
    with pytest.raises(ValueError, match="n_draws, k >= 2"):
        conditional_statistics(np.zeros((3, 4, 2)), np.zeros((3, 5, 2)), np.zeros((3, 6, 2)))


def test_conditional_fidelity_on_a_trained_decoder_is_seeded_and_addressed(tiny_alanine_model):
    """A real decoder: the same key gives the same numbers; the draws at one point are independent (not one noise)."""
    model, data = tiny_alanine_model
    frames = data[1500:]
    one = conditional_fidelity(jax.random.key(0), model, frames, n_points=20, n_draws=8, k=8)
    assert one == conditional_fidelity(jax.random.key(0), model, frames, n_points=20, n_draws=8, k=8)
    assert one["n_pairs"] == 45 and "q" not in one  # 10 heavy atoms, no native contacts
    for name in ("radius_of_gyration_nm", "pair_distances_nm"):
        assert one[name]["sd_decoded"] > 0 and one[name]["w1"] > 0 and one[name]["w1_floor"] > 0
