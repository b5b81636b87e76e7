"""Conditional fidelity of every decoder the project offers, on distributions with known answers.

Each decoder kind (conditional flow matching, cWGAN-GP) is trained on samples of a known conditional
law and must reproduce it at fixed conditions:

* a conditional Gaussian ``x | c ~ N(A c + b, Sigma)`` (full covariance): per-condition means and covariances;
* a two-mode mixture whose weights move with ``c`` (mode dropping, the typical GAN failure, shows as wrong weights);
* a periodic, torsion-like case through the internal-coordinate map of a four-atom chain: a von Mises torsion
  whose mean turns once around the circle with ``c`` (so it crosses +-180 degrees), measured on the decoded
  frames with mdtraj.

Tolerances: ``4 standard errors`` of the estimate at the number of generated samples, plus an accuracy
allowance per decoder kind and check (``ALLOWANCE``: what we ask of that decoder). Each allowance is set from
the difference the check must detect, and ``test_allowances_reject_the_failures_they_guard`` shows on exact
samples that the failures (a decoder that ignores the condition, a dropped or half-weighted minor mode,
averaged modes, a too broad or too narrow torsion, a variance 20 % off) fail them. Seeds are fixed.

The cWGAN-GP (the paper's decoder, ``decoder = "wgan"``) is held to wider allowances, the ones it meets (measured
with these seeds on 2 CPU cores: conditional means off by up to 0.50 sd, correlations by 0.55, a mode weight by
0.12, a mode centre by 0.52 and a mode's width by 0.40, the torsion's circular mean by 9.6 degrees next to +-180, a
bond's mean length by 0.9 pm): loose, as GANs are on conditional laws, but bounded, and still tight enough to
reject a decoder that ignores its condition or drops a mode. More iterations, a learning-rate decay, 10-20 critic steps, fewer noise dimensions or the
condition in every layer moved these errors between 0.1 and 0.7 sd without removing them (measured while choosing
the default; docs/decoder.md).

The retrieval decoder (``decoder = "knn"``) is no generative model: at a condition it returns one of the k = 20
training samples nearest to it, so every estimate from its draws has the error of 20 samples, not of 4000
(conditional means off by up to 0.5 sd, a mode weight by 0.09, a spread by 20 %), and it cannot interpolate
between training samples. Its cases are strict expected failures of the generative decoders' allowances
(``raises=AssertionError``: a crash is a failure, not an expected one). On molecules it has other virtues (MD's own
structures; docs/decoder.md).
"""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import mdtraj as md
import numpy as np
import pytest
from scipy.special import i0, i1

from lss_jax.decoder import DecoderConfig, decode, distill_field, fit_decoder, fit_feature_model, nerf, sample_features

N_TRAIN, N_GEN = 20_000, 4000
CONDITIONS = np.array([[0.1, 0.2], [0.5, 0.5], [0.9, 0.7], [0.3, 0.95]], np.float32)
KNN_IS_K_SAMPLES = pytest.mark.xfail(strict=True, raises=AssertionError,
                                     reason="the knn decoder's conditional law is k = 20 training frames (module docstring)")
# one Euler step of a flow that was not distilled lands on the conditional mean of x1 given the prior sample: the
# negative control of the distilled flow (decoder.distill_steps = 1), which must pass the flow's own allowances
ONE_STEP_COLLAPSES = pytest.mark.xfail(strict=True, raises=AssertionError,
                                       reason="one Euler step of an undistilled flow collapses towards the mean")
PARAMS = [pytest.param("flow"), pytest.param("distill"), pytest.param("meanflow"), pytest.param("wgan"),
          pytest.param("knn", marks=KNN_IS_K_SAMPLES), pytest.param("flow-euler1", marks=ONE_STEP_COLLAPSES)]
# Accuracy allowances (on top of 4 standard errors): mean in sd; variance as a relative error; correlation; mode
# weight; mode centre and width; circular mean in degrees; mean resultant length of the torsion in the middle of the
# circle and next to +-180 degrees, where the flow draws it narrower (kappa ~13 instead of 8, measured); mean and
# spread of a bond length (nm; true 0.15 +- 0.003).
FLOW_ALLOWANCE = dict(mean=0.1, variance=0.05, correlation=0.05, weight=0.03, centre=0.1, width=0.06, torsion_deg=5.0,
                      resultant=0.015, resultant_at_180=0.03, bond=5e-4, bond_sd=3e-4)
ALLOWANCE = {
    "flow": FLOW_ALLOWANCE,
    # the flow distilled into one Euler step (decoder.distill_steps = 1): the flow's allowances, except on a law with
    # two separated modes, which a one-step map of a normal sample can split only by a steep but continuous step:
    # 2.5-4 % of its draws fall between the modes, pulling a mode's weight by up to 0.04, its centre by 0.10 and its
    # width by 0.20 (measured at 12 000 iterations; 4 000: 0.05, 0.22, 0.35). On molecules the structural states
    # take the separated modes (docs/decoder.md).
    "distill": dict(FLOW_ALLOWANCE, weight=0.05, centre=0.15, width=0.25),
    "flow-euler1": FLOW_ALLOWANCE,
    "meanflow": FLOW_ALLOWANCE,
    "knn": FLOW_ALLOWANCE,  # held to the generative decoders' standard, which it misses (module docstring)
    "wgan": dict(mean=0.6, variance=0.6, correlation=0.65, weight=0.15, centre=0.6, width=0.45, torsion_deg=12.0,
                 resultant=0.06, resultant_at_180=0.06, bond=1.5e-3, bond_sd=3e-3),
}
KINDS = {
    "flow": DecoderConfig(kind="flow", hidden=(64, 64, 64), iterations=4000, batch_size=256),
    "wgan": DecoderConfig(kind="wgan", hidden=(64, 64, 64), iterations=3000, batch_size=256, learning_rate=1e-3,
                          lr_decay=False),
    "knn": DecoderConfig(kind="knn"),
}
KINDS["distill"] = dataclasses.replace(KINDS["flow"], distill_steps=1, distill_iterations=12_000)
KINDS["flow-euler1"] = dataclasses.replace(KINDS["flow"], flow_steps=1, flow_solver="euler")
# the mean flow (decoder.kind = "meanflow"), trained on the data to be sampled in its default 2 steps; its loss feeds
# its own time derivative back into the target and converges slower than the flow's: at 12 000 steps the one-step
# law's variance was 36 % low, at 60 000 9 % (lss_jax.decoder.meanflow)
KINDS["meanflow"] = DecoderConfig(kind="meanflow", hidden=(64, 64, 64), iterations=60_000, batch_size=256)


def _fit(kind, x, c, seed=0):
    n_val = len(x) // 10
    config = KINDS[kind]
    net, _, _ = fit_feature_model(jax.random.key(seed), (x[n_val:], c[n_val:]), (x[:n_val], c[:n_val]),
                                  config=config, progress=False)
    if config.distill_steps:  # as fit_decoder does after training
        net, _ = distill_field(jax.random.key(seed + 1), net, c[n_val:], c[:n_val], n_steps=config.distill_steps,
                               iterations=config.distill_iterations, progress=False)
    return net


def _samples(kind, net, c, seed):
    cond = jnp.asarray(np.repeat(c[None], N_GEN, axis=0))
    steps, solver = KINDS[kind].sampler
    return np.asarray(sample_features(jax.random.key(seed), KINDS[kind].kind, net, cond, flow_steps=steps,
                                      solver=solver), np.float64)


GAUSS_A = np.array([[2.0, -1.0], [0.5, 1.5], [-1.0, 0.0]])
GAUSS_B = np.array([0.3, -0.2, 0.1])
GAUSS_CHOL = np.array([[0.5, 0.0, 0.0], [0.2, 0.3, 0.0], [-0.1, 0.15, 0.25]])
GAUSS_SIGMA = GAUSS_CHOL @ GAUSS_CHOL.T


def _check_gaussian(allow, s, ci):
    """Samples ``s`` at condition ``ci`` against N(A ci + b, Sigma), within ``allow`` plus 4 standard errors."""
    sd = np.sqrt(np.diag(GAUSS_SIGMA))
    n = len(s)
    mean_err = np.abs(s.mean(0) - (GAUSS_A @ ci + GAUSS_B)) / sd  # in units of the true standard deviation
    assert np.all(mean_err <= allow["mean"] + 4 / np.sqrt(n)), ("mean", ci, mean_err)  # SE of a mean: sd / sqrt(n)
    cov = np.cov(s.T)
    variance_err = np.abs(np.diag(cov) / sd**2 - 1)
    assert np.all(variance_err <= allow["variance"] + 4 * np.sqrt(2 / n)), ("variance", ci, variance_err)  # SE sqrt(2/n)
    rho, rho_hat = GAUSS_SIGMA / np.outer(sd, sd), cov / np.sqrt(np.outer(np.diag(cov), np.diag(cov)))
    off = ~np.eye(3, dtype=bool)
    correlation_err = np.abs(rho_hat - rho)[off]
    # SE of a sample correlation: (1 - rho^2) / sqrt(n)
    assert np.all(correlation_err <= allow["correlation"] + 4 * (1 - rho[off] ** 2) / np.sqrt(n)), ("correlation", ci,
                                                                                                   correlation_err)


@pytest.mark.parametrize("kind", PARAMS)
def test_conditional_gaussian_means_and_covariances(kind):
    rng = np.random.default_rng(0)
    c = rng.uniform(size=(N_TRAIN, 2)).astype(np.float32)
    x = (c @ GAUSS_A.T + GAUSS_B + rng.normal(size=(N_TRAIN, 3)) @ GAUSS_CHOL.T).astype(np.float32)
    net = _fit(kind, x, c)
    for i, ci in enumerate(CONDITIONS):
        _check_gaussian(ALLOWANCE[kind], _samples(kind, net, ci, seed=10 + i), ci)


MIXTURE_CONDITIONS = np.array([[0.05, 0.5], [0.5, 0.1], [0.95, 0.9]], np.float32)
MIXTURE_CENTRES, MIXTURE_WIDTH = (np.array([2.0, 0.5]), np.array([-2.0, -0.5])), 0.3


def _mixture_weight(c):
    return 0.1 + 0.8 * c[..., 0]  # probability of the right-hand mode


def _mixture_draws(rng, weight, n, centres=MIXTURE_CENTRES, width=MIXTURE_WIDTH):
    right = rng.uniform(size=n) < weight
    return np.where(right[:, None], centres[0], centres[1]) + width * rng.normal(size=(n, 2))


@functools.lru_cache(maxsize=None)
def _mixture_samples(kind):
    """Samples at MIXTURE_CONDITIONS of a decoder trained on a two-mode mixture (cached: two tests use it)."""
    rng = np.random.default_rng(1)
    c = rng.uniform(size=(N_TRAIN, 2)).astype(np.float32)
    x = _mixture_draws(rng, _mixture_weight(c), N_TRAIN).astype(np.float32)
    net = _fit(kind, x, c)
    return [_samples(kind, net, ci, seed=20 + i) for i, ci in enumerate(MIXTURE_CONDITIONS)]


def _check_mixture_weight(allow, s, ci):
    w, w_hat = float(_mixture_weight(ci)), np.mean(s[:, 0] > 0)
    # binomial SE sqrt(w (1 - w) / n)
    assert abs(w_hat - w) <= allow["weight"] + 4 * np.sqrt(w * (1 - w) / len(s)), ("weight", ci, w_hat, w)


def _check_mixture_modes(allow, s, ci):
    for side, centre in ((s[:, 0] > 0, MIXTURE_CENTRES[0]), (s[:, 0] <= 0, MIXTURE_CENTRES[1])):
        mode = s[side]
        assert len(mode) > 1, ("centre", ci, "no draws in this mode")
        se_mean, se_sd = MIXTURE_WIDTH / np.sqrt(len(mode)), MIXTURE_WIDTH / np.sqrt(2 * len(mode))
        assert np.all(np.abs(mode.mean(0) - centre) <= allow["centre"] + 4 * se_mean), ("centre", ci, mode.mean(0))
        assert np.all(np.abs(mode.std(0) - MIXTURE_WIDTH) <= allow["width"] + 4 * se_sd), ("width", ci, mode.std(0))


@pytest.mark.parametrize("kind", PARAMS)
def test_conditional_mixture_keeps_both_modes_with_their_weights(kind):
    for ci, s in zip(MIXTURE_CONDITIONS, _mixture_samples(kind)):
        _check_mixture_weight(ALLOWANCE[kind], s, ci)


@pytest.mark.parametrize("kind", PARAMS)
def test_conditional_mixture_modes_have_their_centres_and_widths(kind):
    for ci, s in zip(MIXTURE_CONDITIONS, _mixture_samples(kind)):
        _check_mixture_modes(ALLOWANCE[kind], s, ci)


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
    kappa = KAPPA
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
    for i, ci in enumerate([0.02, 0.25, 0.5, 0.98]):  # 0.02 and 0.98: the mean is within 8 degrees of +-180
        frames = decode(jax.random.key(30 + i), decoder, np.full((N_GEN, 1), ci, np.float32))
        gen = md.Trajectory(frames, top)
        _check_torsion(ALLOWANCE[kind], md.compute_dihedrals(gen, [[0, 1, 2, 3]])[:, 0], ci, KAPPA)
        lengths = md.compute_distances(gen, [[0, 1], [1, 2], [2, 3]])
        allow = ALLOWANCE[kind]  # bond lengths 0.15 +- 0.003 nm: mean and spread
        assert np.all(np.abs(lengths.mean(0) - 0.15) <= allow["bond"] + 4 * 0.003 / np.sqrt(N_GEN)), (kind, ci,
                                                                                                     lengths.mean(0))
        assert np.all(np.abs(lengths.std(0) - 0.003) <= allow["bond_sd"] + 4 * 0.003 / np.sqrt(2 * N_GEN)), (
            kind, ci, lengths.std(0))


def _check_torsion(allow, t, ci, kappa):
    """Torsions ``t`` at condition ``ci`` against a von Mises law of mean 2 pi ci - pi and concentration ``kappa``."""
    r_true = float(i1(kappa) / i0(kappa))  # mean resultant length of a von Mises law
    mu_true = 2 * np.pi * ci - np.pi
    err = abs(np.angle(np.exp(1j * (_circular_mean(t) - mu_true))))
    # circular SE of the mean direction ~ sqrt((1 - R2) / n) / R with R2 = E cos(2 delta)
    se = np.sqrt((1 - r_true**2) / len(t)) / r_true
    assert err <= np.radians(allow["torsion_deg"]) + 4 * se, ("circular mean", ci, np.degrees(err))
    near_180 = abs(abs(mu_true) - np.pi) < np.radians(10)
    allowance = allow["resultant_at_180"] if near_180 else allow["resultant"]
    se_r = np.sqrt(0.5 * (1 - r_true**2) / len(t))
    assert abs(_resultant(t) - r_true) <= allowance + 4 * se_r, ("resultant", ci, _resultant(t), r_true)


KAPPA = 8.0


def test_allowances_reject_the_failures_they_guard():
    """Negative and positive controls of the checks above, on exact samples (no decoder): the true law passes the
    generative allowances, and each failure a check exists for fails it, at the same sample sizes."""
    rng = np.random.default_rng(7)
    flow, wgan, distill = ALLOWANCE["flow"], ALLOWANCE["wgan"], ALLOWANCE["distill"]
    c_any = rng.uniform(size=(N_GEN, 2))
    for ci in CONDITIONS:
        exact = GAUSS_A @ ci + GAUSS_B + rng.normal(size=(N_GEN, 3)) @ GAUSS_CHOL.T
        _check_gaussian(flow, exact, ci)
        ignores_condition = c_any @ GAUSS_A.T + GAUSS_B + rng.normal(size=(N_GEN, 3)) @ GAUSS_CHOL.T
        for allow in (flow, wgan):
            with pytest.raises(AssertionError):
                _check_gaussian(allow, ignores_condition, ci)
        with pytest.raises(AssertionError, match="variance"):  # 20 % too much variance in every coordinate
            _check_gaussian(flow, GAUSS_A @ ci + GAUSS_B + np.sqrt(1.2) * rng.normal(size=(N_GEN, 3)) @ GAUSS_CHOL.T,
                            ci)
    for ci in MIXTURE_CONDITIONS:
        w = float(_mixture_weight(ci))
        exact = _mixture_draws(rng, w, N_GEN)
        _check_mixture_weight(flow, exact, ci)
        _check_mixture_modes(flow, exact, ci)
        minor_halved = w / 2 if w < 0.5 else 1 - (1 - w) / 2
        for bad in ([0.5] if w != 0.5 else []) + [minor_halved]:  # the condition ignored; the minor mode at half weight
            with pytest.raises(AssertionError, match="weight"):
                _check_mixture_weight(flow, _mixture_draws(rng, bad, N_GEN), ci)
        dropped = _mixture_draws(rng, float(w > 0.5), N_GEN)  # the minor mode dropped
        with pytest.raises(AssertionError, match="weight"):
            _check_mixture_weight(flow, dropped, ci)
        with pytest.raises(AssertionError, match="weight"):
            _check_mixture_weight(distill, dropped, ci)
        with pytest.raises(AssertionError, match="no draws in this mode"):
            _check_mixture_modes(wgan, dropped, ci)
        for allow in (flow, wgan, distill):
            with pytest.raises(AssertionError, match="centre"):  # modes averaged into one broad one at the middle
                _check_mixture_modes(allow, _mixture_draws(rng, w, N_GEN, centres=(np.zeros(2), np.zeros(2)), width=1.0),
                                     ci)
    for ci in (0.02, 0.5):
        mu = 2 * np.pi * ci - np.pi
        _check_torsion(flow, mu + rng.vonmises(0.0, KAPPA, N_GEN), ci, KAPPA)
        # too broad; too narrow, in the middle of the circle (next to +-180 degrees the flow's allowance admits
        # up to kappa ~ 20, the narrowing it shows there)
        for kappa in (KAPPA / 2, KAPPA * 2) if ci == 0.5 else (KAPPA / 2,):
            with pytest.raises(AssertionError, match="resultant"):
                _check_torsion(flow, mu + rng.vonmises(0.0, kappa, N_GEN), ci, KAPPA)
        for allow in (flow, wgan):  # a torsion cut at +-180 degrees and reflected (mean on the wrong side)
            with pytest.raises(AssertionError):
                _check_torsion(allow, mu + np.pi / 4 + rng.vonmises(0.0, KAPPA, N_GEN), ci, KAPPA)
