"""Conditional fidelity of every decoder the project offers, on distributions with known answers.

Each decoder kind (conditional flow matching, cWGAN-GP) is trained on samples of a known conditional
law and must reproduce it at fixed conditions:

* a conditional Gaussian ``x | c ~ N(A c + b, Sigma)`` (full covariance): per-condition means and covariances;
* a two-mode mixture whose weights move with ``c`` (mode dropping, the typical GAN failure, shows as wrong weights);
* a periodic, torsion-like case through the internal-coordinate map of a four-atom chain: a von Mises torsion
  whose mean turns once around the circle with ``c`` (so it crosses +-180 degrees), measured on the decoded
  frames with mdtraj.

Tolerances: ``4 standard errors`` of the estimate at the number of generated samples, plus an accuracy
allowance stated per check (what we ask of a decoder; a mode-dropping or mode-averaging model fails it by
far). Seeds are fixed.

The cWGAN-GP (the paper's decoder, kept selectable as ``decoder = "wgan"``) does not meet these allowances, and
its cases are strict expected failures that record what it does instead: conditional means off by up to 0.24 sd
and correlations by 0.30 (Gaussian); the weight of the dominant mode 0.74 instead of 0.86 at c = 0.95 (the
minor mode over-weighted, half-way to dropping the mode contrast) and a mode centre off by more than 0.1
(mixture); the torsion's circular mean off by 9.6 degrees next to +-180 (periodic). More iterations, a learning-rate decay,
10-20 critic steps, fewer noise dimensions or the condition in every layer moved these errors between 0.1 and
0.7 sd without removing them (measured while choosing the default; docs/decoder.md). If a change makes the GAN
pass, the strict marker fails and says so.

The retrieval decoder (``decoder = "knn"``) is no generative model: at a condition it returns one of the k = 20
training samples nearest to it, so every estimate from its draws has the error of 20 samples, not of 4000
(conditional means off by up to 0.5 sd, a mode weight by 0.09, a spread by 20 %), and it cannot interpolate
between training samples; its cases are strict expected failures too. On molecules it has other virtues
(MD's own structures; docs/decoder.md).
"""

import functools

import jax
import jax.numpy as jnp
import mdtraj as md
import numpy as np
import pytest
from scipy.special import i0, i1

from lss_jax.decoder import DecoderConfig, decode, fit_decoder, fit_feature_model, nerf, sample_features

N_TRAIN, N_GEN = 20_000, 4000
CONDITIONS = np.array([[0.1, 0.2], [0.5, 0.5], [0.9, 0.7], [0.3, 0.95]], np.float32)
WGAN_MISSES = pytest.mark.xfail(strict=True, reason="the cWGAN-GP misses the accuracy allowance (module docstring)")
KNN_IS_K_SAMPLES = pytest.mark.xfail(strict=True, reason="the knn decoder's conditional law is k = 20 training frames "
                                     "(module docstring)")
PARAMS = [pytest.param("flow"), pytest.param("wgan", marks=WGAN_MISSES), pytest.param("knn", marks=KNN_IS_K_SAMPLES)]
KINDS = {
    "flow": DecoderConfig(kind="flow", hidden=(64, 64, 64), iterations=4000, batch_size=256),
    "wgan": DecoderConfig(kind="wgan", hidden=(64, 64, 64), iterations=3000, batch_size=256, learning_rate=1e-3,
                          lr_decay=False),
    "knn": DecoderConfig(kind="knn"),
}


def _fit(config, x, c, seed=0):
    n_val = len(x) // 10
    net, _, _ = fit_feature_model(jax.random.key(seed), (x[n_val:], c[n_val:]), (x[:n_val], c[:n_val]),
                                  config=config, progress=False)
    return net


def _samples(kind, net, c, seed):
    cond = jnp.asarray(np.repeat(c[None], N_GEN, axis=0))
    return np.asarray(sample_features(jax.random.key(seed), kind, net, cond), np.float64)


@pytest.mark.parametrize("kind", PARAMS)
def test_conditional_gaussian_means_and_covariances(kind):
    rng = np.random.default_rng(0)
    a = np.array([[2.0, -1.0], [0.5, 1.5], [-1.0, 0.0]])
    b = np.array([0.3, -0.2, 0.1])
    chol = np.array([[0.5, 0.0, 0.0], [0.2, 0.3, 0.0], [-0.1, 0.15, 0.25]])
    sigma = chol @ chol.T
    c = rng.uniform(size=(N_TRAIN, 2)).astype(np.float32)
    x = (c @ a.T + b + rng.normal(size=(N_TRAIN, 3)) @ chol.T).astype(np.float32)
    net = _fit(KINDS[kind], x, c)
    sd = np.sqrt(np.diag(sigma))
    for i, ci in enumerate(CONDITIONS):
        s = _samples(kind, net, ci, seed=10 + i)
        mean_err = np.abs(s.mean(0) - (a @ ci + b)) / sd  # in units of the true standard deviation
        # SE of a mean is sd / sqrt(n); allowance 0.1 sd
        assert np.all(mean_err <= 0.1 + 4 / np.sqrt(N_GEN)), (kind, ci, mean_err)
        cov = np.cov(s.T)
        corr_err = np.abs(cov / np.outer(sd, sd) - sigma / np.outer(sd, sd))
        # SE of a sample covariance in correlation units is <= sqrt(2 / n); allowance 0.12
        assert np.all(corr_err <= 0.12 + 4 * np.sqrt(2 / N_GEN)), (kind, ci, corr_err.max())


MIXTURE_CONDITIONS = np.array([[0.05, 0.5], [0.5, 0.1], [0.95, 0.9]], np.float32)


def _mixture_weight(c):
    return 0.1 + 0.8 * c[..., 0]  # probability of the right-hand mode


@functools.lru_cache(maxsize=None)
def _mixture_samples(kind):
    """Samples at MIXTURE_CONDITIONS of a decoder trained on a two-mode mixture (cached: two tests use it)."""
    rng = np.random.default_rng(1)
    c = rng.uniform(size=(N_TRAIN, 2)).astype(np.float32)
    right = rng.uniform(size=N_TRAIN) < _mixture_weight(c)
    centres = np.where(right[:, None], [2.0, 0.5], [-2.0, -0.5])
    x = (centres + 0.3 * rng.normal(size=(N_TRAIN, 2))).astype(np.float32)
    net = _fit(KINDS[kind], x, c)
    return [_samples(kind, net, ci, seed=20 + i) for i, ci in enumerate(MIXTURE_CONDITIONS)]


@pytest.mark.parametrize("kind", PARAMS)
def test_conditional_mixture_keeps_both_modes_with_their_weights(kind):
    for ci, s in zip(MIXTURE_CONDITIONS, _mixture_samples(kind)):
        w = float(_mixture_weight(ci))
        w_hat = np.mean(s[:, 0] > 0)
        # binomial SE sqrt(w (1 - w) / n); allowance 0.05 in weight
        assert abs(w_hat - w) <= 0.05 + 4 * np.sqrt(w * (1 - w) / N_GEN), (kind, ci, w_hat, w)


@pytest.mark.parametrize("kind", PARAMS)
def test_conditional_mixture_modes_have_their_centres_and_widths(kind):
    for ci, s in zip(MIXTURE_CONDITIONS, _mixture_samples(kind)):
        for side, centre in ((s[:, 0] > 0, [2.0, 0.5]), (s[:, 0] <= 0, [-2.0, -0.5])):
            mode = s[side]
            assert np.all(np.abs(mode.mean(0) - centre) <= 0.1 + 4 * 0.3 / np.sqrt(len(mode))), (kind, ci)
            assert np.all(np.abs(mode.std(0) - 0.3) <= 0.06 + 4 * 0.3 / np.sqrt(2 * len(mode))), (kind, ci)


def _chain_topology():
    top = md.Topology()
    chain = top.add_chain()
    atoms = [top.add_atom(f"C{i}", md.element.carbon, top.add_residue("UNK", chain)) for i in range(4)]
    for i in range(3):
        top.add_bond(atoms[i], atoms[i + 1])
    return top


def _circular_mean(theta):
    return np.arctan2(np.sin(theta).mean(), np.cos(theta).mean())


def _resultant(theta):
    return np.hypot(np.sin(theta).mean(), np.cos(theta).mean())


@pytest.mark.parametrize("kind", PARAMS)
def test_periodic_torsion_through_the_internal_coordinate_map(kind):
    """A torsion whose mean goes once around the circle with c: the decoder must wrap, not cut, at +-180 degrees."""
    rng = np.random.default_rng(2)
    kappa = 8.0
    c = rng.uniform(size=(N_TRAIN, 1)).astype(np.float32)
    mu = 2 * np.pi * c[:, 0] - np.pi
    theta = mu + rng.vonmises(0.0, kappa, size=N_TRAIN)
    bonds = 0.15 + 0.003 * rng.normal(size=(N_TRAIN, 3))
    angles = 1.9 + 0.03 * rng.normal(size=(N_TRAIN, 2))
    z = jnp.array([[0, -1, -1, -1], [1, 0, -1, -1], [2, 1, 0, -1], [3, 2, 1, 0]])
    xyz = np.array(jax.vmap(lambda b, a, t: nerf(b, a, t, z))(jnp.asarray(bonds), jnp.asarray(angles),
                                                                jnp.asarray(theta[:, None])), np.float32)
    top = _chain_topology()
    data_torsion = md.compute_dihedrals(md.Trajectory(xyz, top), [[0, 1, 2, 3]])[:, 0]
    assert np.allclose(np.angle(np.exp(1j * (data_torsion - theta))), 0, atol=1e-3)  # the data is what we think
    config = KINDS[kind]
    decoder, _ = fit_decoder(jax.random.key(3), xyz, c, topology=top, config=config, progress=False)
    r_true = float(i1(kappa) / i0(kappa))  # mean resultant length of a von Mises law
    for i, ci in enumerate([0.02, 0.25, 0.5, 0.98]):  # 0.02 and 0.98: the mean is within 8 degrees of +-180
        frames = decode(jax.random.key(30 + i), decoder, np.full((N_GEN, 1), ci, np.float32))
        gen = md.Trajectory(frames, top)
        t = md.compute_dihedrals(gen, [[0, 1, 2, 3]])[:, 0]
        mu_true = 2 * np.pi * ci - np.pi
        err = abs(np.angle(np.exp(1j * (_circular_mean(t) - mu_true))))
        # circular SE of the mean direction ~ sqrt((1 - R2) / n) / R with R2 = E cos(2 delta); allowance 5 degrees
        se = np.sqrt((1 - r_true**2) / N_GEN) / r_true
        assert err <= np.radians(5) + 4 * se, (kind, ci, np.degrees(err))
        assert abs(_resultant(t) - r_true) <= 0.03 + 4 * np.sqrt(0.5 * (1 - r_true**2) / N_GEN), (kind, ci, _resultant(t))
        lengths = md.compute_distances(gen, [[0, 1], [1, 2], [2, 3]])
        assert np.all(np.abs(lengths.mean(0) - 0.15) <= 5e-4 + 4 * 0.003 / np.sqrt(N_GEN)), (kind, ci)
        assert np.all(np.abs(lengths.std(0) - 0.003) <= 6e-4), (kind, ci, lengths.std(0))
