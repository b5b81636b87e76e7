"""Structural states of the flow decoder (lss_jax.decoder.states): torsion modes, their combinations, the
calibrated classifier, and the known-answer case they exist for: a rare conformation keeps its weight.

References: scipy's optimizer for the intercepts' maximum-likelihood condition; the binomial standard error
of a weight estimated from the generated frames; mdtraj for the decoded torsions.
"""

import jax
import jax.numpy as jnp
import mdtraj as md
import numpy as np
import pytest
import scipy.optimize
import scipy.special
from flax import nnx
from test_decoder_fidelity import _chain_topology as _chain  # the four-atom chain of the periodic known-answer case

from lss_jax.decoder import DecoderConfig, decode, fit_decoder, nerf
from lss_jax.decoder.states import (
    StateClassifier,
    StateFlow,
    assign_states,
    calibrate_intercepts,
    distance_states,
    find_states,
    torsion_modes,
)


def _wrap(theta):
    return np.angle(np.exp(1j * np.asarray(theta)))


def test_torsion_modes_split_at_the_barrier_also_across_180_degrees():
    rng = np.random.default_rng(0)
    # one mode centred on +-180 degrees (it wraps), one at 0 with 3 % of the frames
    theta = _wrap(np.concatenate([np.pi + rng.normal(0, 0.3, 9700), rng.normal(0.0, 0.3, 300)]))
    cuts = torsion_modes(theta)
    assert len(cuts) == 2
    near_zero = np.abs(theta) < np.pi / 2 - 0.5
    near_pi = np.abs(theta) > np.pi / 2 + 0.5
    labels = np.searchsorted(cuts, theta, side="right") % 2
    assert len(set(labels[near_zero])) == 1 and len(set(labels[near_pi])) == 1
    assert labels[near_zero][0] != labels[near_pi][0]
    # a flat (uniform) torsion and a single von Mises mode have no barrier
    assert len(torsion_modes(rng.uniform(-np.pi, np.pi, 20000))) == 0
    assert len(torsion_modes(rng.vonmises(1.0, 2.0, 20000))) == 0
    # a real barrier with fewer frames behind it than min_frames is no state
    assert len(torsion_modes(_wrap(np.concatenate([rng.normal(-1.5, 0.2, 5000), rng.normal(1.5, 0.2, 4)])))) == 0


@pytest.mark.parametrize("tail", [0.05, 0.2])
def test_tail_cuts_sit_where_the_mode_falls_below_its_share_of_the_peak(tail):
    # a big normal mode (sd 0.3 rad) at -1.2 and a small one at 1.5: the big mode's tails are cut where its density,
    # smoothed as torsion_modes smooths it (1.5 bins of 5 degrees), falls to `tail` of its peak: at
    # +-sd_eff sqrt(-2 ln tail) from its centre, within one bin; the small mode's tails hold too few frames to cut
    rng = np.random.default_rng(3)
    sd, centre, bin_width = 0.3, -1.2, np.radians(5.0)
    theta = _wrap(np.concatenate([rng.normal(centre, sd, 40_000), rng.normal(1.5, 0.2, 60)]))
    barriers = torsion_modes(theta)
    cuts = torsion_modes(theta, tail=tail)
    assert len(barriers) == 2 and len(cuts) == 4 and all(np.min(np.abs(cuts - b)) < 1e-9 for b in barriers)
    sd_eff = np.hypot(sd, 1.5 * bin_width)
    expected = centre + np.array([-1, 1]) * sd_eff * np.sqrt(-2 * np.log(tail))
    tail_cuts = np.sort([c for c in cuts if np.min(np.abs(c - barriers)) > 1e-9])
    assert np.all(np.abs(tail_cuts - expected) <= bin_width), (np.degrees(tail_cuts), np.degrees(expected))
    # the tails become states of their own: find_states keeps them, and without `tail` it does not
    with_tails, without = find_states(theta[:, None], tail=tail), find_states(theta[:, None])
    assert (with_tails.n_states, without.n_states) == (4, 2)
    labels = assign_states(with_tails, theta[:, None])
    lower, core = theta < tail_cuts[0] - bin_width, np.abs(theta - centre) < 0.5 * sd
    upper = (theta > tail_cuts[1] + bin_width) & (theta < min(b for b in barriers if b > centre) - bin_width)
    regions = [labels[r] for r in (lower, core, upper)]
    assert all(len(r) >= 5 and len(set(r)) == 1 for r in regions), [np.unique(r) for r in regions]
    assert len({r[0] for r in regions}) == 3


def test_states_are_the_populated_combinations_and_the_rest_join_their_nearest():
    rng = np.random.default_rng(1)
    n = 20000
    a = rng.uniform(size=n) < 0.04                  # torsion 0: modes at -1.5 / +1.5 (4 %)
    b = rng.uniform(size=n) < 0.03                  # torsion 1: modes at -2.0 / +1.0 (3 %)
    flat = rng.uniform(-np.pi, np.pi, n)            # torsion 2: no modes
    torsions = np.stack([np.where(a, 1.5, -1.5) + rng.normal(0, 0.2, n),
                         np.where(b, 1.0, -2.0) + rng.normal(0, 0.2, n), flat], 1)
    states = find_states(torsions)
    assert states.columns.tolist() == [0, 1] and states.n_states == 4
    expected = sorted([np.sum(~a & ~b), np.sum(a & ~b), np.sum(~a & b), np.sum(a & b)], reverse=True)
    assert states.counts.tolist() == expected
    # two common modes (30 / 70 %) behind a barrier are one: the flow keeps their weights itself
    common = np.where(rng.uniform(size=n) < 0.3, 1.5, -1.5) + rng.normal(0, 0.2, n)
    assert len(torsion_modes(common)) == 0 and len(torsion_modes(common, rare=0.5)) == 2
    # keep three: the least populated combination (a and b) joins a kept one that differs in one torsion
    three = find_states(torsions, max_states=3)
    labels = assign_states(three, torsions)
    assert three.n_states == 3 and np.bincount(labels).sum() == n
    own = _modes_of(three, torsions[a & b])
    assert not any((own == combo).all(1).any() for combo in three.combinations)  # its own combination was dropped
    assert np.all((three.combinations[labels[a & b]] != own).sum(1) == 1)


def _modes_of(states, torsions):
    return np.stack([np.searchsorted(cut, torsions[:, c], side="right") % len(cut)
                     for c, cut in zip(states.columns, states.cuts)], 1)


def test_a_rare_state_is_anchored_at_the_nearest_of_its_own_points():
    # NumPy reference: per row, the state's anchor at the smallest float32 distance (checked to fail without the
    # state mask or with the wrong index);
    # duplicated anchors make ties, and state 0 has no anchors, so its rows keep their condition
    rng = np.random.default_rng(3)
    points = rng.random((60, 3)).astype(np.float32)
    labels = rng.integers(1, 4, 60)
    points[30:40], labels[30:40] = points[20:30], labels[20:30]  # exact ties
    clf = StateClassifier(3, 4, hidden=(4,), rngs=nnx.Rngs(0))
    clf.set_anchors(points, labels, rare=[1, 2, 3])
    anchors, owner = np.asarray(clf.anchors[...]), np.asarray(clf.anchor_states[...])
    c = np.concatenate([rng.random((500, 3)), points[25:35]]).astype(np.float32)
    k = rng.integers(0, 4, len(c))
    got = np.asarray(clf.anchor(jnp.asarray(c), jnp.asarray(k)))
    d2 = ((c[:, None, :] - anchors[None]) ** 2).sum(-1)
    expected = c.copy()
    for i in range(len(c)):
        mine = np.flatnonzero(owner == k[i])
        if len(mine):
            expected[i] = anchors[mine[np.argmin(d2[i, mine])]]
    np.testing.assert_array_equal(got, expected)
    assert (k == 0).any() and np.array_equal(got[k == 0], c[k == 0])


def test_calibrated_intercepts_are_scipys_maximum_likelihood_intercepts():
    rng = np.random.default_rng(2)
    logits = rng.normal(size=(3000, 4)) * 2.0
    labels = rng.choice(4, 3000, p=[0.6, 0.3, 0.095, 0.005])
    offset = calibrate_intercepts(logits, labels, 4)

    def nll(b):
        return -np.mean(scipy.special.log_softmax(logits + b, axis=1)[np.arange(len(labels)), labels])

    ref = scipy.optimize.minimize(nll, np.zeros(4), method="BFGS", options={"gtol": 1e-12}).x
    assert np.allclose(offset - offset.mean(), ref - ref.mean(), atol=1e-4)
    p = scipy.special.softmax(logits + offset, axis=1).mean(0)
    assert np.allclose(p, np.bincount(labels, minlength=4) / len(labels), atol=1e-8)


def _rare_weight(c):
    return 0.004 + 0.02 * np.asarray(c)


def _rare_mode_decoder(states):
    """A four-atom chain whose torsion has a rare mode (0.4-2.4 % of frames, more at larger c) behind a barrier."""
    rng = np.random.default_rng(3)
    n = 20000
    c = rng.uniform(size=(n, 1)).astype(np.float32)
    rare = rng.uniform(size=n) < _rare_weight(c[:, 0])
    theta = np.where(rare, 1.4, -1.6) + rng.vonmises(0.0, 25.0, n)
    bonds = 0.15 + 0.003 * rng.normal(size=(n, 3))
    angles = 1.9 + 0.03 * rng.normal(size=(n, 2))
    z = jnp.array([[0, -1, -1, -1], [1, 0, -1, -1], [2, 1, 0, -1], [3, 2, 1, 0]])
    xyz = np.array(jax.vmap(lambda b, a, t: nerf(b, a, t, z))(jnp.asarray(bonds), jnp.asarray(angles),
                                                                jnp.asarray(theta[:, None])), np.float32)
    config = DecoderConfig(hidden=(64, 64, 64), iterations=3000, batch_size=256, states=states)
    decoder, _ = fit_decoder(jax.random.key(4), xyz, c, topology=_chain(), config=config, progress=False)
    return decoder


def _check_rare_weight(decoder):
    """The rare mode's weight at c = 0.1 and 0.9 (0.6 % and 2.2 %) within 20 % of itself plus 4 binomial SE.

    100 000 draws per condition: at c = 0.9 the band is 0.0157-0.0283, and a flow without states (which returns
    about 0.6 of the rare mode's weight, 0.013; docs/decoder.md) is 6 SE below it."""
    n_gen = 100_000
    for i, ci in enumerate([0.1, 0.9]):
        frames = decode(jax.random.key(40 + i), decoder, np.full((n_gen, 1), ci, np.float32))
        t = md.compute_dihedrals(md.Trajectory(frames, _chain()), [[0, 1, 2, 3]])[:, 0]
        w, w_hat = float(_rare_weight(ci)), float(np.mean(np.abs(_wrap(t - 1.4)) < 1.0))
        assert abs(w_hat - w) <= 0.2 * w + 4 * np.sqrt(w * (1 - w) / n_gen), ("weight", ci, w_hat, w)
        # and every frame is in one of the two modes (the flow within a state stays in it)
        assert np.mean(np.abs(_wrap(t - 1.4)) < 1.0) + np.mean(np.abs(_wrap(t + 1.6)) < 1.0) > 0.995


def test_a_rare_mode_keeps_its_conditional_weight():
    decoder = _rare_mode_decoder(states=DecoderConfig().states)
    assert isinstance(decoder.network, StateFlow) and decoder.network.n_states == 2
    _check_rare_weight(decoder)


def test_without_states_the_rare_mode_check_fails():
    """Negative control: the same flow without structural states loses part of the rare mode, and the check sees it."""
    decoder = _rare_mode_decoder(states=0)
    assert not isinstance(decoder.network, StateFlow)
    with pytest.raises(AssertionError, match="weight"):
        _check_rare_weight(decoder)


def test_states_can_be_switched_off():
    rng = np.random.default_rng(5)
    theta = np.where(rng.uniform(size=2000) < 0.03, 1.4, -1.6) + rng.vonmises(0.0, 25.0, 2000)
    z = jnp.array([[0, -1, -1, -1], [1, 0, -1, -1], [2, 1, 0, -1], [3, 2, 1, 0]])
    xyz = np.array(jax.vmap(lambda t: nerf(jnp.full(3, 0.15), jnp.full(2, 1.9), t, z))(jnp.asarray(theta[:, None])),
                   np.float32)
    c = rng.uniform(size=(2000, 1)).astype(np.float32)
    on, _ = fit_decoder(jax.random.key(0), xyz, c, topology=_chain(), config=DecoderConfig(hidden=(8,), iterations=5),
                        progress=False)
    off, _ = fit_decoder(jax.random.key(0), xyz, c, topology=_chain(),
                         config=DecoderConfig(hidden=(8,), iterations=5, states=0), progress=False)
    assert isinstance(on.network, StateFlow) and not isinstance(off.network, StateFlow)
    assert on.noise_dim == off.noise_dim + 1
    with pytest.raises(ValueError, match="states must be an integer >= 0"):
        DecoderConfig(states=-1)


def _hairpin_with_a_swinging_tail(rng, n_closed=60, n_open=40, n_beads=12):
    """Chain frames whose first four beads close a hairpin (beads 0-3 at 0.38 nm) in ``n_closed`` frames and open it
    (1.0 nm) in ``n_open``; in the closed frames the rest of the chain, a straight tail from bead 3, swings through
    up to 1.6 rad, so that it moves the large distances far more than the hairpin does."""
    frames = []
    for closed, swing in [(True, 1.6)] * n_closed + [(False, 0.05)] * n_open:
        x = np.zeros((n_beads, 3))
        x[1], x[2] = [0.38, 0.0, 0.0], [0.38, 0.38, 0.0]
        x[3] = [0.0, 0.38, 0.0] if closed else [-0.3, 0.9, 0.0]
        theta, phi = rng.uniform(0, swing), rng.uniform(0, 2 * np.pi)
        direction = np.array([np.sin(theta) * np.cos(phi), np.sin(theta) * np.sin(phi), np.cos(theta)])
        x[4:] = x[3] + 0.38 * np.arange(1, n_beads - 3)[:, None] * direction
        frames.append(x + rng.normal(0.0, 0.01, x.shape))
    return np.asarray(frames)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_contact_states_split_on_which_contacts_form_where_distance_states_split_the_loose_tail(seed):
    """Two states of a chain whose hairpin is closed or open while a long tail swings freely: clustered on soft
    contacts, the states are the hairpin's (every frame); clustered on distances (the negative control) the tail's
    swing, the larger distance variance, splits the closed frames instead (at least 15 of 60 on the other side in
    every seed, measured 18-29)."""
    xyz = _hairpin_with_a_swinging_tail(np.random.default_rng(seed))
    contacts = distance_states(xyz, max_states=2, features="contacts")
    assert np.all(contacts[:60] == 0) and np.all(contacts[60:] == 1)  # the closed hairpin (more contacts) first
    distances = distance_states(xyz, max_states=2)
    assert np.all(distances[60:] == distances[60])  # the open frames are one cluster
    assert np.sum(distances[:60] == distances[60]) >= 15  # but the closed ones are split by the tail


def test_state_features_are_checked():
    assert DecoderConfig(kind="chain", state_features="contacts").state_features == "contacts"
    assert DecoderConfig(state_tail=0.05).state_tail == 0.05
    for bad in (-0.1, 1.0, True, "0.05"):
        with pytest.raises(ValueError, match="state_tail must be a number in"):
            DecoderConfig(state_tail=bad)
    with pytest.raises(ValueError, match="'distances' or 'contacts'"):
        DecoderConfig(kind="chain", state_features="torsions")
    with pytest.raises(ValueError, match="applies to the chain decoder"):
        DecoderConfig(kind="flow", state_features="contacts")
    with pytest.raises(ValueError, match="'distances' or 'contacts'"):
        distance_states(np.zeros((20, 5, 3)), features="contact")
