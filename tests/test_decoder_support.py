"""The decoder's support constraint (lss_jax.decoder.support) and its redraws (decode_rows): the constraint against a
brute-force NumPy reference, the redrawn frames against the exact truncated distribution (SciPy), the first draws
untouched, and the false alarms on an independent MD run."""

import jax
import jax.numpy as jnp
import mdtraj as md
import numpy as np
import pytest
import scipy.stats
from flax import nnx

from lss_jax.decoder import (
    CartesianMap,
    Decoder,
    SupportConstraint,
    decode_fn,
    decode_rows,
    fit_support,
    support_ratio,
)


def _ca_chain(n: int) -> md.Topology:
    top = md.Topology()
    chain = top.add_chain()
    for _ in range(n):
        top.add_atom("CA", md.element.carbon, top.add_residue("ALA", chain))
    return top


class _NoiseIsTheFrame(nnx.Module):
    """A 'generator' whose output features are its noise: decoded frames are ``mean + std * z`` exactly."""

    def __init__(self, dim: int):
        self.noise_dim = dim

    def __call__(self, z, c):
        return z


def _line_decoder(sigma: float, support: SupportConstraint | None, redraws: int) -> Decoder:
    # four Cα on the x axis 0.38 nm apart; only atom 3's x coordinate is random, N(1.14, sigma^2)
    mean = np.zeros((4, 3), np.float32)
    mean[:, 0] = 0.38 * np.arange(4)
    std = np.zeros((4, 3), np.float32)
    std[3, 0] = sigma
    cmap = CartesianMap(jnp.asarray(mean), jnp.asarray(mean.reshape(-1)), jnp.asarray(std.reshape(-1)))
    return Decoder("wgan", _NoiseIsTheFrame(12), cmap, support=support, redraws=redraws)


def test_support_is_the_margin_times_the_smallest_training_distance_of_pairs_three_bonds_apart():
    rng = np.random.default_rng(0)
    n = 7
    xyz = (0.38 * np.arange(n)[None, :, None] * np.array([1.0, 0.0, 0.0]) + rng.normal(0, 0.05, (50, n, 3))).astype(np.float32)
    support = fit_support(xyz, _ca_chain(n), margin=0.9)
    pairs = [(i, j) for i in range(n) for j in range(i + 3, n)]  # a chain: bond-graph distance |i - j|
    assert np.asarray(support.pairs).tolist() == [list(p) for p in pairs]
    expected = [0.9 * np.linalg.norm(xyz[:, i] - xyz[:, j], axis=-1).min() for i, j in pairs]
    np.testing.assert_allclose(np.asarray(support.min_distance), expected, rtol=1e-6)
    frames = rng.normal(0, 0.6, (100, n, 3)).astype(np.float32)  # > 64 rows, not a multiple: the padded blocks
    reference = np.array([min(np.linalg.norm(f[i] - f[j]) / e for (i, j), e in zip(pairs, expected)) for f in frames])
    np.testing.assert_allclose(np.asarray(support_ratio(support, jnp.asarray(frames))), reference, rtol=1e-5)
    with pytest.raises(ValueError, match="margin"):
        fit_support(xyz, _ca_chain(n), margin=1.5)


def test_redrawn_frames_follow_the_decoder_distribution_truncated_to_the_support():
    """With enough redraws the kept frames are the decoder's distribution restricted to the support: here
    x_3 ~ N(1.14, 0.1^2) truncated to x_3 >= 1.10 (acceptance 0.66), checked against scipy's truncnorm."""
    sigma, bound, n = 0.1, 1.10, 4000
    support = SupportConstraint(jnp.array([[0, 3]], jnp.int32), jnp.array([bound], jnp.float32))
    decoder = _line_decoder(sigma, support, redraws=60)
    rows = np.arange(n, dtype=np.int32)
    xyz, draws = decode_rows(jax.random.key(0), decoder, np.zeros((n, 1), np.float32), rows, np.zeros_like(rows))
    assert np.all(draws <= 60)  # P(61 misses) = 0.34^61: never
    x3 = xyz[:, 3, 0].astype(np.float64)
    assert x3.min() >= bound * (1 - 1e-6)
    a = (bound - 1.14) / sigma
    assert scipy.stats.kstest(x3, scipy.stats.truncnorm(a, np.inf, loc=1.14, scale=sigma).cdf).pvalue > 0.01
    # the fraction redrawn at least once is P(x_3 < bound) = Phi(a); binomial standard error over n frames
    p = scipy.stats.norm.cdf(a)
    assert abs(np.mean(draws > 0) - p) < 4 * np.sqrt(p * (1 - p) / n)


def test_first_draws_are_untouched_and_a_frame_decodes_the_same_with_any_other_rows():
    support = SupportConstraint(jnp.array([[0, 3]], jnp.int32), jnp.array([1.25], jnp.float32))  # most frames miss
    constrained, free = _line_decoder(0.1, support, redraws=3), _line_decoder(0.1, None, redraws=3)
    n = 300
    u = np.zeros((n, 1), np.float32)
    rows_b = np.arange(n, dtype=np.int32) % 7
    rows_t = np.arange(n, dtype=np.int32)
    xyz, draws = decode_rows(jax.random.key(4), constrained, u, rows_b, rows_t)
    plain, plain_draws = decode_rows(jax.random.key(4), free, u, rows_b, rows_t)
    assert np.all(plain_draws == 0)
    first = draws == 0
    assert 0 < first.sum() < n and np.any(draws == 4)  # some accepted at once, some never inside
    np.testing.assert_array_equal(xyz[first], plain[first])
    # a frame never inside keeps its best draw: recompute every draw of those rows explicitly
    fn, params = decode_fn(constrained)
    never = np.flatnonzero(draws == 4)
    ratios, frames = [], []
    for a in range(4):
        out, r = fn(params, constrained.coordinates, support, jax.random.key(4), jnp.asarray(u[never]),
                    jnp.asarray(rows_b[never]), jnp.asarray(rows_t[never]), jnp.full(len(never), a, jnp.int32))
        frames.append(np.asarray(out))
        ratios.append(np.asarray(r))
    best = np.argmax(np.stack(ratios), axis=0)
    np.testing.assert_allclose(xyz[never], np.stack(frames)[best, np.arange(len(never))], rtol=1e-6)
    # the same rows among others, in another order: the same bits
    subset = np.array([5, 17, 250, 3, 101])
    xyz_sub, draws_sub = decode_rows(jax.random.key(4), constrained, u[subset], rows_b[subset], rows_t[subset])
    np.testing.assert_array_equal(xyz_sub, xyz[subset])
    np.testing.assert_array_equal(draws_sub, draws[subset])


def test_independent_md_is_inside_the_support_learned_from_the_training_run():
    """The constraint's false alarms: the shipped independent alanine dipeptide run (heavy atoms) against the
    support of the training run at the default margin. A new frame falls below a pair's training minimum with
    probability ~1/n_train per pair; 0.9x that minimum should practically never happen."""
    from lss_jax.datasets import load_alanine_dipeptide

    train, independent = load_alanine_dipeptide("train", stride=5), load_alanine_dipeptide("independent", stride=5)
    heavy = train.topology.select("not element H")
    train, independent = train.atom_slice(heavy), independent.atom_slice(heavy)
    support = fit_support(train.xyz, train.topology)
    ratio = np.asarray(support_ratio(support, jnp.asarray(independent.xyz)))
    assert support.pairs.shape[0] > 0
    assert np.mean(ratio < 1.0) <= 1e-3


class _StateLogits(nnx.Module):
    """A 'classifier' with fixed state weights ``p`` at every condition."""

    def __init__(self, p):
        self.n_states, self.logits = len(p), jnp.log(jnp.asarray(p, jnp.float32))

    def __call__(self, c):
        return jnp.broadcast_to(self.logits, (*c.shape[:-1], self.n_states))

    def anchor(self, c, k):  # no rare state's anchors: every state's flow is given psi itself
        return c


class _StateShifts(nnx.Module):
    """A 'flow field' whose frame is its prior sample with the state written into atom 2's y (feature 7) and atom 3's
    x shifted by the state's ``shift`` (in standard deviations)."""

    def __init__(self, shifts):
        self.noise_dim, self.shifts = 12, jnp.asarray(shifts, jnp.float32)

    def sample(self, z, cond, *, n_steps, solver="heun"):
        onehot = cond[:, -len(self.shifts):]
        return z.at[:, 7].set(jnp.argmax(onehot, -1).astype(z.dtype)).at[:, 9].add(onehot @ self.shifts)


class _StatesInsideTheNoise(nnx.Module):
    """The same mixture as one opaque generator (a ``wgan``-kind network): what decode_rows did for every decoder
    before redraws kept the state; the negative control."""

    def __init__(self, flow):
        self.flow, self.noise_dim = flow, flow.noise_dim

    def __call__(self, z, c):
        return self.flow.sample(z, c, n_steps=1)


def test_redraws_keep_a_frames_state_so_the_support_never_changes_the_states_weights():
    """A two-state mixture, pi = (0.8, 0.2): state 0 puts atom 3 at x ~ N(1.54, 0.1^2) (inside the support x >= 1.10),
    state 1 at N(1.05, 0.1^2) (inside with probability 0.31). Redrawing within the state (the first 30 of 60
    redraws; all 31 draws miss with probability 0.69^31 = 1e-5) keeps state 1's share at 0.2 and its frames the
    truncated normal; re-picking the state with the flow noise (the opaque generator, the negative control) gives
    0.2 x 0.31 / (0.8 + 0.2 x 0.31) = 0.072. Tolerance: 4 binomial standard errors."""
    from lss_jax.decoder import StateFlow

    sigma, bound, n, p1 = 0.1, 1.10, 4000, 0.2
    mean = np.zeros((4, 3), np.float32)
    mean[:, 0] = 0.38 * np.arange(4)
    std = np.zeros((4, 3), np.float32)
    std[3, 0], std[2, 1] = sigma, 1.0
    cmap = CartesianMap(jnp.asarray(mean), jnp.asarray(mean.reshape(-1)), jnp.asarray(std.reshape(-1)))
    support = SupportConstraint(jnp.array([[0, 3]], jnp.int32), jnp.array([bound], jnp.float32))
    flow = StateFlow(_StateShifts([4.0, -0.9]), _StateLogits([1 - p1, p1]))
    rows = np.arange(n, dtype=np.int32)
    u = np.zeros((n, 1), np.float32)
    tolerance = 4 * np.sqrt(p1 * (1 - p1) / n)
    accept = scipy.stats.norm.sf((bound - 1.05) / sigma)
    repicked = p1 * accept / (1 - p1 + p1 * accept)
    assert p1 - repicked > 2 * tolerance  # the control is far outside the band
    for network, kind, share in ((flow, "flow", p1), (_StatesInsideTheNoise(flow), "wgan", repicked)):
        decoder = Decoder(kind, network, cmap, support=support, redraws=60)
        xyz, draws = decode_rows(jax.random.key(0), decoder, u, rows, np.zeros_like(rows))
        assert np.all(draws <= 60) and xyz[:, 3, 0].min() >= bound * (1 - 1e-6)
        state = np.rint(xyz[:, 2, 1]).astype(int)
        assert set(np.unique(state)) == {0, 1}
        assert abs(np.mean(state == 1) - share) < 4 * np.sqrt(share * (1 - share) / n), (kind, np.mean(state == 1))
        if kind == "flow":  # within the kept state, the truncated normal; the first draws are the mixture's own
            x3 = xyz[state == 1, 3, 0].astype(np.float64)
            a = (bound - 1.05) / sigma
            assert scipy.stats.kstest(x3, scipy.stats.truncnorm(a, np.inf, loc=1.05, scale=sigma).cdf).pvalue > 0.01
            first, _ = decode_rows(jax.random.key(0), Decoder(kind, network, cmap, support=None), u, rows,
                                   np.zeros_like(rows))
            np.testing.assert_array_equal(xyz[draws == 0], first[draws == 0])


class _AnchorMeans(nnx.Module):
    """A 'flow field' putting atom 3 at x ~ N(mean(c, state), 0.1^2): the state's frames near some latent points are
    ones its flow does not reproduce inside the support."""

    def __init__(self):
        self.noise_dim = 12

    def sample(self, z, cond, *, n_steps, solver="heun"):
        c, state1 = cond[:, 0], cond[:, -1] > 0.5
        mean = jnp.where(state1, jnp.where(c < 0.2, 1.0, 1.54), jnp.where(c < 0.5, 0.9, 1.0))
        return z.at[:, 9].add((mean - 1.14) / 0.1)


def test_anchors_the_flow_does_not_reproduce_inside_the_support_are_dropped():
    """Support x3 >= 1.10. State 1's anchors at c = 0.1 (its flow there: N(1.0, 0.1^2), inside with probability
    0.16), 0.5 and 0.9 (N(1.54, ...), inside always); state 0's at 0.3 (N(0.9, ...): 0.02) and 0.7 (N(1.0, ...):
    0.16). The check keeps what its flow reproduces at least half of the time (state 1: 0.5 and 0.9) and, for a
    state with none, the best (state 0: 0.7); a latent point near 0.1 is then given state 1's 0.5. The shares are
    the normal tails within 4 binomial standard errors of 64 draws."""
    from lss_jax.decoder import StateClassifier, StateFlow

    mean = np.zeros((4, 3), np.float32)
    mean[:, 0] = 0.38 * np.arange(4)
    std = np.zeros((4, 3), np.float32)
    std[3, 0] = 0.1
    cmap = CartesianMap(jnp.asarray(mean), jnp.asarray(mean.reshape(-1)), jnp.asarray(std.reshape(-1)))
    support = SupportConstraint(jnp.array([[0, 3]], jnp.int32), jnp.array([1.10], jnp.float32))
    classifier = StateClassifier(1, 2, hidden=(4,), rngs=nnx.Rngs(0))
    classifier.set_anchors(np.array([[0.1], [0.3], [0.5], [0.7], [0.9]]), np.array([1, 0, 1, 0, 1]), rare=[0, 1])
    flow = StateFlow(_AnchorMeans(), classifier)
    share = flow.anchor_support(jax.random.key(0), cmap, support, n_steps=1)
    expected = scipy.stats.norm.sf((1.10 - np.array([1.0, 0.9, 1.54, 1.0, 1.54])) / 0.1)
    assert np.all(np.abs(share - expected) <= 4 * np.sqrt(np.maximum(expected * (1 - expected), 1 / 64) / 64)), share
    before = np.asarray(classifier.anchor(jnp.array([[0.0]]), jnp.array([1])))
    assert flow.prune_anchors(jax.random.key(0), cmap, support, n_steps=1) == 2
    np.testing.assert_allclose(np.asarray(classifier.anchors[...])[:, 0], [0.5, 0.7, 0.9])
    np.testing.assert_array_equal(np.asarray(classifier.anchor_states[...]), [1, 0, 1])
    after = np.asarray(classifier.anchor(jnp.array([[0.0], [0.0]]), jnp.array([1, 0])))
    assert before[0, 0] == pytest.approx(0.1) and after[:, 0] == pytest.approx([0.5, 0.7])
