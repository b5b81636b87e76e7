"""The chain decoder (decoder = "chain", lss_jax.decoder.chain): a known answer on a conditional Gaussian chain, and
on Trp-cage that it is addressed (same key, same bits, whatever the batch), saves, loads and exports.

Known answer: a chain of 4 beads whose bond vectors are independent ``N(m(c), s(c)^2 I)``, centred: the bead
coordinates are Gaussian with a mean that moves with ``c`` (``m``) and a covariance that scales with ``c`` (``s``)
and has the random walk's correlations. Tolerances as in ``test_decoder_fidelity.py``: 4 standard errors at the
number of generated samples plus a stated allowance (0.1 sd for means, 10 % for standard deviations, 0.12 for
correlations). The network is not equivariant (frames are superposed on a reference), so there is no
equivariance test.
"""


import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import exported_decode

from lss_jax.decoder import (
    ContactFlow,
    DecoderConfig,
    StateFlow,
    TemplateStart,
    decode,
    decode_rows,
    fit_decoder,
    fit_feature_model,
    sample_features,
)

N_TRAIN, N_GEN, N_BEADS = 20_000, 4000, 4
CONDITIONS = np.array([[0.1, 0.2], [0.5, 0.5], [0.9, 0.9], [0.2, 0.8]], np.float32)


def _law(c):
    """Mean bond vector [.., 3] and bond sd [..] of the known chain at conditions c [.., 2]."""
    c = np.asarray(c, np.float64)
    mean_bond = np.stack([0.6 + 0.4 * c[..., 0], 0.8 * c[..., 1] - 0.4, 0.2 * np.ones_like(c[..., 0])], -1)
    return mean_bond, 0.15 + 0.25 * c[..., 1]


def _chain(c, noise):
    """Centred bead coordinates [n, 3 N_BEADS] from bond noise [n, N_BEADS - 1, 3]."""
    mean_bond, sd = _law(c)
    bonds = mean_bond[:, None, :] + sd[:, None, None] * noise
    beads = np.concatenate([np.zeros((len(c), 1, 3)), np.cumsum(bonds, axis=1)], axis=1)
    return (beads - beads.mean(1, keepdims=True)).reshape(len(c), -1)


def _exact_moments(ci):
    mean = _chain(ci[None], np.zeros((1, N_BEADS - 1, 3)))[0]
    _, sd = _law(ci)
    # beads = centring @ cumsum @ bonds, per Cartesian axis
    walk = np.vstack([np.zeros(N_BEADS - 1), np.tril(np.ones((N_BEADS - 1, N_BEADS - 1)))])
    lin = (np.eye(N_BEADS) - 1.0 / N_BEADS) @ walk
    cov_axis = sd**2 * lin @ lin.T  # [N_BEADS, N_BEADS], the same for x, y, z, none between axes
    cov = np.kron(cov_axis, np.eye(3))
    return mean, cov


@functools.lru_cache(maxsize=None)
def _gaussian_chain_flow():
    """``(c, x, field)``: the known conditional Gaussian chain's frames and a chain field trained on them (cached: two
    tests sample it)."""
    rng = np.random.default_rng(0)
    c = rng.uniform(size=(N_TRAIN, 2)).astype(np.float32)
    x = _chain(c, rng.normal(size=(N_TRAIN, N_BEADS - 1, 3))).astype(np.float32)
    n_val = N_TRAIN // 10
    # temperature 1: the trained flow's own law (the default 0.7 narrows it on purpose)
    config = DecoderConfig(kind="chain", hidden=(32, 32), iterations=3000, batch_size=256, temperature=1.0)
    net, _, _ = fit_feature_model(jax.random.key(0), (x[n_val:], c[n_val:]), (x[:n_val], c[:n_val]),
                                  config=config, progress=False)
    return c, x, net


def _check_chain_moments(s, ci):
    """Samples ``s [N_GEN, 3 N_BEADS]`` at condition ``ci`` against the exact law: means within 0.1 sd, sds within
    10 %, correlations within 0.12, each + 4 SE."""
    mean, cov = _exact_moments(ci)
    sd = np.sqrt(np.diag(cov))
    mean_err = np.abs(s.mean(0) - mean) / sd
    assert np.all(mean_err <= 0.1 + 4 / np.sqrt(N_GEN)), (ci, mean_err.max())
    sd_ratio = s.std(0) / sd
    # SE of a sample sd is sd / sqrt(2 n); allowance 10 %
    assert np.all(np.abs(sd_ratio - 1) <= 0.1 + 4 / np.sqrt(2 * N_GEN)), (ci, sd_ratio)
    corr_err = np.abs(np.cov(s.T) / np.outer(sd, sd) - cov / np.outer(sd, sd))
    assert np.all(corr_err <= 0.12 + 4 * np.sqrt(2 / N_GEN)), (ci, corr_err.max())


def test_conditional_gaussian_chain_means_and_covariances():
    _, _, net = _gaussian_chain_flow()
    for i, ci in enumerate(CONDITIONS):
        s = np.asarray(sample_features(jax.random.key(10 + i), "chain", net, jnp.asarray(np.repeat(ci[None], N_GEN, 0)),
                                       flow_steps=20), np.float64)
        _check_chain_moments(s, ci)


def test_a_template_started_path_keeps_the_conditional_law():
    """``decoder.template_time``: paths started at t0 = 0.5 from training frames near the condition, noised by the
    prior, keep the known conditional law (the allowances above, at the trained flow's temperature 1). At one
    condition the start is built from the k frames nearest to it, as retrieval's law is (whose mean is then off by
    sd / sqrt(k)); k = 400 here keeps that within the allowance (0.05 sd). Negative control: the same start from
    frames that are not the condition's (their latent points shuffled) misses the means, so the test sees which
    frames the start was built from."""
    c, x, net = _gaussian_chain_flow()
    start = TemplateStart(net, c, x, np.zeros(N_TRAIN, np.int32), k=400, t0=0.5)
    shuffled = np.random.default_rng(1).permutation(c)
    wrong = TemplateStart(net, shuffled, x, np.zeros(N_TRAIN, np.int32), k=400, t0=0.5)
    missed = []
    for i, ci in enumerate(CONDITIONS):
        cond = jnp.asarray(np.repeat(ci[None], N_GEN, 0))
        _check_chain_moments(np.asarray(sample_features(jax.random.key(10 + i), "chain", start, cond, flow_steps=20),
                                        np.float64), ci)
        mean, cov = _exact_moments(ci)
        sd = np.sqrt(np.diag(cov))
        bad = np.asarray(sample_features(jax.random.key(10 + i), "chain", wrong, cond, flow_steps=20), np.float64)
        missed.append(np.max(np.abs(bad.mean(0) - mean) / sd) > 0.1 + 4 / np.sqrt(N_GEN))
    # away from the centre: the law is linear in c, so the shuffled frames' average is the law at c = (0.5, 0.5)
    assert all(m for m, ci in zip(missed, CONDITIONS) if not np.allclose(ci, 0.5)), missed


def test_guided_velocity_is_the_unconditional_one_plus_guidance_times_the_difference():
    """Classifier-free guidance: with the condition dropped the field gives another velocity (its learned "no
    condition" vector), and sampled (``drop=None``) it gives ``v_u + w (v_c - v_u)``, for leading dimensions and a
    self-conditioned field's estimate too; a field trained without condition dropout refuses a guidance."""
    from flax import nnx

    from lss_jax.decoder.chain import ChainField

    rng = np.random.default_rng(0)
    x, x1 = (jnp.asarray(rng.normal(size=(2, 3, 15)), jnp.float32) for _ in range(2))
    t, c = jnp.asarray(rng.uniform(size=(2, 3)), jnp.float32), jnp.asarray(rng.normal(size=(2, 3, 2)), jnp.float32)
    for self_condition in (False, True):
        field = ChainField(5, 2, width=16, depth=1, heads=2, self_condition=self_condition, condition_dropout=0.1,
                           guidance=2.5, rngs=nnx.Rngs(0))
        field.head.kernel[...] = jnp.asarray(rng.normal(size=field.head.kernel[...].shape), jnp.float32)
        v_c = field(x, t, c, x1, drop=jnp.zeros((2, 3), bool))
        v_u = field(x, t, c, x1, drop=jnp.ones((2, 3), bool))
        assert float(jnp.abs(v_c - v_u).max()) > 1e-2  # the dropped condition changes the velocity
        np.testing.assert_allclose(field(x, t, c, x1), v_u + 2.5 * (v_c - v_u), rtol=1e-5, atol=1e-5)
        field.guidance = 1.0
        np.testing.assert_allclose(field(x, t, c, x1), v_c, rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="needs a field trained with condition dropout"):
        ChainField(5, 2, width=16, depth=1, heads=2, guidance=2.0, rngs=nnx.Rngs(0))


def test_condition_dropout_learns_the_unconditional_law_and_keeps_the_conditional_one():
    """A chain field trained with condition dropout on the known Gaussian chain, from the Gaussian chain prior (which
    does not depend on the condition): at guidance 1 it keeps the conditional law (the allowances above), and at
    guidance 0 (its unconditional velocity) it samples the law of all frames, whatever the condition it is given:
    the moments of 200 000 frames of the known chain with c uniform, within the same allowances. Negative control:
    the conditional samples at a condition away from the centre miss those marginal means."""
    rng = np.random.default_rng(0)
    c = rng.uniform(size=(N_TRAIN, 2)).astype(np.float32)
    x = _chain(c, rng.normal(size=(N_TRAIN, N_BEADS - 1, 3))).astype(np.float32)
    n_val = N_TRAIN // 10
    config = DecoderConfig(kind="chain", hidden=(32, 32), iterations=3000, batch_size=256, temperature=1.0,
                           prior="chain", condition_dropout=0.2)
    net, _, _ = fit_feature_model(jax.random.key(0), (x[n_val:], c[n_val:]), (x[:n_val], c[:n_val]),
                                  config=config, progress=False)
    big = rng.uniform(size=(200_000, 2))
    marginal = _chain(big, rng.normal(size=(len(big), N_BEADS - 1, 3)))
    m_mean, m_sd = marginal.mean(0), marginal.std(0)
    bound_mean, bound_sd = 0.1 + 4 / np.sqrt(N_GEN), 0.1 + 4 / np.sqrt(2 * N_GEN)
    for i, ci in enumerate(CONDITIONS[[0, 2]]):
        cond = jnp.asarray(np.repeat(ci[None], N_GEN, 0))
        net.guidance = 1.0
        s = np.asarray(sample_features(jax.random.key(30 + i), "chain", net, cond, flow_steps=20), np.float64)
        _check_chain_moments(s, ci)
        assert np.max(np.abs(s.mean(0) - m_mean) / m_sd) > bound_mean  # negative control: not the marginal law
        net.guidance = 0.0
        u = np.asarray(sample_features(jax.random.key(30 + i), "chain", net, cond, flow_steps=20), np.float64)
        assert np.all(np.abs(u.mean(0) - m_mean) / m_sd <= bound_mean), (ci, np.abs(u.mean(0) - m_mean) / m_sd)
        assert np.all(np.abs(u.std(0) / m_sd - 1) <= bound_sd), (ci, u.std(0) / m_sd)


def _two_state_chain(c, rng):
    """Frames [n, 5, 3] (nm) of a 5-bead chain that is straight or folded back at bead 2 (bead 4 then 0.45 nm from
    bead 0, against 1.52 straight), folded with probability ``0.05 + 0.9 c`` (the known mode weight), with 0.02 nm
    of Gaussian noise per coordinate."""
    straight = np.array([[0.0, 0, 0], [0.38, 0, 0], [0.76, 0, 0], [1.14, 0, 0], [1.52, 0, 0]])
    folded = np.array([[0.0, 0, 0], [0.38, 0, 0], [0.76, 0, 0], [0.76, 0.38, 0], [0.38, 0.30, 0]])
    is_folded = rng.uniform(size=len(c)) < 0.05 + 0.9 * c[:, 0]
    x = np.where(is_folded[:, None, None], folded, straight) + rng.normal(0, 0.02, (len(c), 5, 3))
    return x.astype(np.float32)


def test_chain_states_carry_mode_weights_that_move_with_the_condition():
    """The chain decoder's distance states: two conformations whose weight is a known function of the condition;
    the decoded share of the folded one must follow it (4 binomial SE at N_GEN draws + 0.03)."""
    rng = np.random.default_rng(1)
    c = rng.uniform(size=(N_TRAIN, 1)).astype(np.float32)
    x = _two_state_chain(c, rng)
    config = DecoderConfig(kind="chain", hidden=(32, 32), iterations=3000, batch_size=256, states=4, redraws=0)
    decoder, _ = fit_decoder(jax.random.key(0), x, c, config=config, val_fraction=0.1, progress=False)
    assert isinstance(decoder.network, StateFlow) and decoder.network.n_states >= 2
    for i, ci in enumerate((0.05, 0.5, 0.95)):
        frames = decode(jax.random.key(20 + i), decoder, np.full((N_GEN, 1), ci, np.float32))
        end_to_end = np.linalg.norm(frames[:, 4] - frames[:, 0], axis=-1)
        assert np.mean((end_to_end > 0.8) & (end_to_end < 1.2)) < 0.02  # nothing between the two conformations
        share, p = np.mean(end_to_end < 1.0), 0.05 + 0.9 * ci
        assert abs(share - p) <= 0.03 + 4 * np.sqrt(p * (1 - p) / N_GEN), (ci, share, p)


@pytest.mark.parametrize("self_condition, prior, template_time, state_features, guidance", [
    (False, "chain", 0.0, "distances", 1.0), (True, "chain", 0.0, "distances", 1.0),
    (False, "gaussian", 0.0, "distances", 1.0), (False, "gaussian", 0.5, "distances", 1.0),
    (False, "gaussian", 0.0, "contacts", 1.0), (False, "gaussian", 0.0, "contact_map", 1.0),
    (False, "gaussian", 0.0, "contact_map", 2.0)])
def test_chain_decoder_on_trp_cage_is_addressed_and_saves_loads_exports(tmp_path, self_condition, prior, template_time,
                                                                        state_features, guidance):
    from lss_jax import fit_lss
    from lss_jax.model.io import load_model
    from lss_jax.systems import trp_cage

    data = trp_cage.load_trp_cage("train", stride=20)
    config = trp_cage.lss_config(lag=2, encoder={"epochs": 2}, propagator={"epochs": 2}, seed=3,
                                 decoder={"kind": "chain", "iterations": 30, "hidden": (16, 16), "redraws": 2,
                                          "self_condition": self_condition, "prior": prior,
                                          "template_time": template_time, "state_features": state_features,
                                          **({"condition_dropout": 0.1, "guidance": guidance} if guidance != 1 else {})})
    model = fit_lss(jax.random.key(3), data, config, progress=False)
    field = model.decoder.network.field
    assert model.decoder.kind == "chain" and field.self_condition is self_condition and field.prior == prior
    assert field.guidance == guidance
    network = model.decoder.network
    if template_time:  # the stored frames are the training frames, each with its distance state
        assert isinstance(network, TemplateStart) and network.t0 == template_time
        assert network.neighbours.features[...].shape == (data.n_frames, 3 * data.n_atoms)
        assert network.labels[...].shape == (data.n_frames,) and int(network.labels[...].max()) < network.n_states
        assert model.info["decoder"]["template_time"] == 0.5 and model.info["decoder"]["template_frames"] == data.n_frames
        network = network.network
    # distance (or contact) states; a contact map's bits
    assert isinstance(network, ContactFlow if state_features == "contact_map" else StateFlow) and network.n_states >= 2
    assert model.info["decoder"]["states"] == network.n_states
    assert model.info["decoder"]["state_features"] == state_features
    u = np.random.default_rng(0).uniform(size=(50, 3)).astype(np.float32)
    first = model.decode_unit(jax.random.key(5), u, chunk=64)
    np.testing.assert_array_equal(first, model.decode_unit(jax.random.key(5), u, chunk=64))  # same key, same bits
    assert not np.array_equal(first, model.decode_unit(jax.random.key(6), u, chunk=64))
    # a row's frame does not depend on the rows decoded with it
    rows = np.arange(50, dtype=np.int32)
    whole, _ = decode_rows(jax.random.key(5), model.decoder, u, rows, np.zeros_like(rows), block=64)
    part, _ = decode_rows(jax.random.key(5), model.decoder, u[7:9], rows[7:9], np.zeros(2, np.int32), block=64)
    np.testing.assert_array_equal(whole[7:9], part)

    loaded = load_model(model.save(tmp_path / "m"))
    assert loaded.decoder.kind == "chain"
    chex.assert_trees_all_equal(jax.tree_util.tree_leaves(loaded), jax.tree_util.tree_leaves(model))
    np.testing.assert_array_equal(loaded.decode_unit(jax.random.key(5), u, chunk=64), first)

    xyz = exported_decode(model, np.resize(u, (64, 3)), tmp_path / "sim.jaxexport")
    first_draws = model.replace(decoder=model.decoder.replace(redraws=0))  # the exported decode is one draw
    expected = first_draws.decode_unit(jax.random.key(5), np.resize(u, (64, 3))[:, None], trajectory_ids=np.arange(64),
                                       chunk=64)
    np.testing.assert_allclose(np.asarray(xyz), expected[:, 0], atol=1e-5)


def test_gaussian_prior_has_each_states_conditional_mean_and_covariance():
    """``prior="gaussian"``: frames of state k are ``mu_k + a_k c + M_k e`` (e standard normal); the prior sample of
    state k at condition c has mean ``mu_k + a_k c`` and covariance ``M_k M_k^T`` (4 SE of the draws plus the fit's
    own error at its 3000 frames a state); a chain prior is the Gaussian chain whatever the state."""
    from flax import nnx

    from lss_jax.decoder.chain import ChainField, chain_prior

    rng = np.random.default_rng(3)
    n_states, d, n_frames = 2, 3 * N_BEADS, 6000
    labels = rng.integers(0, n_states, n_frames)
    mu, a = rng.normal(size=(n_states, d)), rng.normal(size=(n_states, d))
    mix = rng.normal(size=(n_states, d, d)) * 0.3
    c_lat = rng.uniform(size=(n_frames, 1))
    x = mu[labels] + a[labels] * c_lat + np.einsum("nij,nj->ni", mix[labels], rng.normal(size=(n_frames, d)))
    cond = np.concatenate([c_lat, np.eye(n_states)[labels]], 1).astype(np.float32)
    field = ChainField(N_BEADS, 1 + n_states, width=8, depth=1, heads=2, prior="gaussian", n_states=n_states,
                       rngs=nnx.Rngs(0))
    field.fit_prior(x.astype(np.float32), cond)
    n = 20_000
    for k in range(n_states):
        c = np.zeros((n, 1 + n_states), np.float32)
        c[:, 0], c[:, 1 + k] = 0.3, 1
        s = np.asarray(field.prior_sample(jax.random.normal(jax.random.key(k), (n, d)), jnp.asarray(c)), np.float64)
        cov = mix[k] @ mix[k].T
        sd, n_fit = np.sqrt(np.diag(cov)), np.sum(labels == k)
        # the fitted mean at c = 0.3 (a regression on uniform c) has at most ~2x the error of a plain mean
        assert np.all(np.abs(s.mean(0) - (mu[k] + 0.3 * a[k])) <= 4 * sd * np.sqrt(1 / n + 4 / n_fit)), k
        assert np.all(np.abs(s.std(0) / sd - 1) <= 4 * np.sqrt(1 / (2 * n) + 1 / (2 * n_fit))), k
        corr = cov / np.outer(sd, sd)
        assert np.all(np.abs(np.corrcoef(s.T) - corr) <= 4 * np.sqrt(1 / n + 1 / n_fit) + 1e-3), k
    chain = ChainField(N_BEADS, 1 + n_states, width=8, depth=1, heads=2, rngs=nnx.Rngs(0))
    z = jax.random.normal(jax.random.key(9), (4, d))
    np.testing.assert_array_equal(chain.prior_sample(z, jnp.asarray(cond[:4])), chain_prior(z))


def _repair_reference(xyz, bond_min, bond_max, pairs, min_distance, iterations, contacts=None):
    """repair_chain's sweeps in float64 NumPy, one constraint at a time: each violated bond, pair floor and contact
    moves its two atoms half-way along their axis (np.add.at), all from the same configuration, then x += dx / 2."""
    x = np.asarray(xyz, np.float64).copy()
    constraints = [(k, k + 1, np.full(len(x), lo), np.full(len(x), hi))
                   for k, (lo, hi) in enumerate(zip(bond_min, bond_max))]
    constraints += [(i, j, np.full(len(x), m), np.full(len(x), np.inf)) for (i, j), m in zip(pairs, min_distance)]
    if contacts is not None:
        c_pairs, upper, lower, bits = contacts
        for k, (i, j) in enumerate(c_pairs):
            formed = bits[:, k] > 0.5
            constraints.append((i, j, np.where(formed, 0.0, lower[k]), np.where(formed, upper[k], np.inf)))
        iterations *= 4
    for _ in range(iterations):
        dx = np.zeros_like(x)
        for i, j, lo, hi in constraints:
            u = x[:, i] - x[:, j]
            d = np.linalg.norm(u, axis=-1)
            move = (0.5 * (d - np.clip(d, lo, hi)) / np.maximum(d, 1e-9))[:, None] * u
            np.add.at(dx, (slice(None), i), -move)
            np.add.at(dx, (slice(None), j), move)
        x = x + 0.5 * dx
    return x


@pytest.mark.parametrize("with_contacts", [False, True])
def test_repair_is_the_per_constraint_projection(with_contacts):
    """repair_chain (pairs as matmuls with the chain's incidence matrix) equals the per-constraint float64 NumPy
    projection on random chains of 12 beads with violated bonds, pair floors and contact bits; the float32 sweeps
    stay within 2e-4 nm of it (the frames' scale ~1 nm). Negative control: the reference with the pair floors
    dropped is > 100x further away."""
    from lss_jax.decoder.chain import _far_pairs, repair_chain

    rng = np.random.default_rng(0)
    n, b = 12, 64
    x = np.cumsum(rng.normal(0.0, 0.25, (b, n, 3)), 1)
    bond_min, bond_max = rng.uniform(0.33, 0.37, n - 1), rng.uniform(0.39, 0.42, n - 1)
    pairs = _far_pairs(n)
    floor = rng.uniform(0.35, 0.45, len(pairs))
    contacts = None
    if with_contacts:
        c_pairs = np.array([[0, 5], [2, 9], [3, 11], [1, 4], [6, 10]])
        upper, lower = np.full(5, 0.6), np.full(5, 0.9)
        contacts = (c_pairs, upper, lower, rng.uniform(size=(b, 5)) > 0.5)
    want = _repair_reference(x, bond_min, bond_max, pairs, floor, 10, contacts)
    got = repair_chain(jnp.asarray(x, jnp.float32), jnp.asarray(bond_min, jnp.float32),
                       jnp.asarray(bond_max, jnp.float32), jnp.asarray(pairs), jnp.asarray(floor, jnp.float32),
                       iterations=10, contacts=None if contacts is None else tuple(jnp.asarray(a) for a in contacts))
    error = np.abs(np.asarray(got, np.float64) - want).max()
    assert error < 2e-4
    control = _repair_reference(x, bond_min, bond_max, pairs[:0], floor[:0], 10, contacts)
    assert np.abs(control - want).max() > 100 * 2e-4
    assert np.abs(want - x).max() > 0.05  # the chains needed repairing
