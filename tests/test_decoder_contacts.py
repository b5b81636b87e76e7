"""Contact-map states (decoder.state_features = "contact_map", lss_jax.decoder.contacts).

Known answer for the contact model: three bits whose law given c is known, b0 ~ Bernoulli(0.1 + 0.8 c), b1 equal to
b0 with probability 0.9, b2 ~ Bernoulli(0.3) on its own. The sampled frequencies must match at three conditions within
4 binomial standard errors at the number of draws plus 0.03 (the fit's allowance). Negative control: the same model
with its masks cutting every bit off the others (a factorized Bernoulli model, what a per-contact classifier would be)
fails the correlation of b0 and b1.

The chain with contact-map states: every decoded frame keeps the contact map drawn for it (the projection), while the
field alone, told the same bits, does not (negative control). Distilled into one Euler step, it draws the teacher's
map for the same noise and lands near the teacher's frame, where the teacher's own field in one step does not.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lss_jax.decoder import ContactFlow, DecoderConfig, contact_bits, features_to_xyz, fit_decoder
from lss_jax.decoder import contacts as contacts_module
from lss_jax.decoder.contacts import ContactModel, fit_contact_model

N_TRAIN, N_GEN = 20_000, 4000


def _known_bits(c, rng):
    b0 = rng.uniform(size=len(c)) < 0.1 + 0.8 * c[:, 0]
    b1 = np.where(rng.uniform(size=len(c)) < 0.9, b0, ~b0)
    b2 = rng.uniform(size=len(c)) < 0.3
    return np.stack([b0, b1, b2], 1).astype(np.float32)


def _fit_known(seed: int = 0):
    rng = np.random.default_rng(seed)
    c = rng.uniform(size=(N_TRAIN, 1)).astype(np.float32)
    b = _known_bits(c, rng)
    n_val = N_TRAIN // 10
    model, _ = fit_contact_model(jax.random.key(seed), (c[n_val:], b[n_val:]), (c[:n_val], b[:n_val]), hidden=32,
                                 max_epochs=15, progress=False)
    return model


def _frequencies(model, ci: float, key: int):
    u = jax.random.uniform(jax.random.key(key), (N_GEN, 3))
    b = np.asarray(model.sample(u, jnp.full((N_GEN, 1), ci)))
    return b[:, 0].mean(), np.mean(b[:, 1] == b[:, 0]), b[:, 2].mean()


def _allowed(p: float) -> float:
    return 0.03 + 4 * np.sqrt(p * (1 - p) / N_GEN)


def test_contact_model_learns_a_correlated_law_that_moves_with_the_condition():
    model = _fit_known()
    for i, ci in enumerate((0.1, 0.5, 0.9)):
        p0, same, p2 = _frequencies(model, ci, 10 + i)
        assert abs(p0 - (0.1 + 0.8 * ci)) <= _allowed(0.1 + 0.8 * ci), (ci, p0)
        assert abs(same - 0.9) <= _allowed(0.9), (ci, same)
        assert abs(p2 - 0.3) <= _allowed(0.3), (ci, p2)


def test_a_factorized_contact_model_misses_the_correlation(monkeypatch):
    """Negative control of the test above: bits that cannot see each other are independent given c."""

    class Factorized(ContactModel):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.mask1[...] = jnp.zeros_like(self.mask1[...])

    monkeypatch.setattr(contacts_module, "ContactModel", Factorized)
    model = _fit_known()
    _, same, _ = _frequencies(model, 0.5, 11)
    assert abs(same - 0.9) > _allowed(0.9), same  # independent halves agree half of the time


@pytest.fixture(scope="module")
def contact_decoder():
    from lss_jax.systems import trp_cage

    data = trp_cage.load_trp_cage("train", stride=10)
    u = np.linspace(0, 1, data.n_frames, dtype=np.float32)[:, None]  # a condition that follows the run
    config = DecoderConfig(kind="chain", state_features="contact_map", hidden=(16, 16), iterations=400, redraws=0)
    decoder, _ = fit_decoder(jax.random.key(0), data.xyz, u, topology=data.topology, config=config, progress=False)
    return decoder, u


def test_every_decoded_chain_keeps_the_contact_map_drawn_for_it(contact_decoder):
    decoder, u = contact_decoder
    network = decoder.network
    assert isinstance(network, ContactFlow) and network.n_states >= 10
    scale = float(decoder.coordinates.std[0])
    pairs, cutoffs = np.asarray(network.pairs[...]), np.asarray(network.cutoffs[...])
    assert np.all(pairs[:, 1] - pairs[:, 0] >= 4) and np.allclose(cutoffs * scale, 0.8)
    c = jnp.asarray(u[:: max(1, len(u) // 500)])
    z = jax.random.normal(jax.random.key(1), (len(c), network.noise_dim))
    _, cond = network.field_condition(z, c)
    drawn = np.asarray(cond[:, 1:])
    n = network.field.n_atoms
    xyz = np.asarray(network.sample(z, c, n_steps=4)).reshape(-1, n, 3)
    kept = contact_bits(xyz, pairs, cutoffs) == drawn
    # a map the chain cannot satisfy with its bonds (this small model draws a few) may keep a pair or two off it
    assert kept.mean() >= 0.999 and kept.all(1).mean() >= 0.98, (kept.mean(), kept.all(1).mean())
    assert 0.05 < drawn.mean() < 0.95  # the maps are not all formed or all broken
    # negative control: the field told the same bits, without the projection onto them, breaks many
    plain = network.field.sample(z[:, :network.dim], cond, n_steps=4)
    kept_plain = contact_bits(np.asarray(plain).reshape(-1, n, 3), pairs, cutoffs) == drawn
    assert kept_plain.mean() < 0.95 and kept_plain.all(1).mean() < 0.5, (kept_plain.mean(), kept_plain.all(1).mean())
    # the contact constraints do not cost bonds: frames with a bond more than 10 % outside the training range (the
    # issue's validity criterion) are no more common than in the field's own repaired chains, + 1 %
    def broken(x):
        bonds = np.linalg.norm(np.diff(np.asarray(x).reshape(-1, n, 3), axis=1), axis=-1)
        lo, hi = np.asarray(network.field.bond_min[...]), np.asarray(network.field.bond_max[...])
        return np.mean(np.any((bonds < 0.9 * lo) | (bonds > 1.1 * hi), axis=1))

    assert broken(xyz) <= broken(plain) + 0.01, (broken(xyz), broken(plain))


def test_contact_map_refuses_template_starts():
    with pytest.raises(ValueError, match="contact_map"):
        DecoderConfig(kind="chain", state_features="contact_map", template_time=0.5)
    assert DecoderConfig(kind="chain", state_features="contact_map", distill_steps=1).sampler == (1, "euler")
    with pytest.raises(ValueError, match="chain decoder"):
        DecoderConfig(kind="flow", state_features="contact_map")


def test_native_reference_makes_the_map_of_q_and_the_decoded_q_is_the_drawn_one():
    """decoder.contact_reference: the map's bits are the native contacts Q counts (1.2 sigma), so Q of every decoded
    frame is the share of its drawn bits that are formed."""
    from lss_jax.systems import trp_cage

    data = trp_cage.load_trp_cage("train", stride=20)
    u = np.linspace(0, 1, data.n_frames, dtype=np.float32)[:, None]
    config = DecoderConfig(kind="chain", state_features="contact_map", hidden=(16, 16), iterations=300, redraws=0,
                           contact_reference=str(trp_cage.trp_cage_files()["pdb"]))
    decoder, _ = fit_decoder(jax.random.key(2), data.xyz, u, topology=data.topology, config=config, progress=False)
    network = decoder.network
    native = trp_cage.native_contacts()
    scale = float(decoder.coordinates.std[0])
    assert np.array_equal(np.asarray(network.pairs[...]), native.pairs)
    assert np.allclose(np.asarray(network.cutoffs[...]) * scale, 1.2 * native.distances, rtol=1e-5)
    c = jnp.asarray(u[::5])
    z = jax.random.normal(jax.random.key(3), (len(c), network.noise_dim))
    _, cond = network.field_condition(z, c)
    drawn = np.asarray(cond[:, 1:])
    xyz = np.asarray(features_to_xyz(decoder.coordinates, network.sample(z, c, n_steps=4)))  # nm
    q = trp_cage.fraction_native_contacts(xyz)
    assert np.mean(np.abs(q - drawn.mean(1)) < 1e-6) >= 0.98, np.abs(q - drawn.mean(1)).max()
    assert q.min() < 0.5 < q.max()  # the drawn maps follow the condition through folded and unfolded frames


def test_distilled_contact_map_decoder_draws_the_teachers_map_and_lands_near_its_frame():
    """decoder.distill_steps with contact-map states: the student is the field given the same drawn bits (the contact
    model and the projection are the teacher's), so for the same noise it draws the teacher's map and keeps it, and its
    one Euler step lands near the teacher's 10-step frame. Negative control: the teacher's own field in one Euler
    step, not distilled, lands much further off."""
    from lss_jax.decoder import distill_decoder
    from lss_jax.systems import trp_cage

    data = trp_cage.load_trp_cage("train", stride=20)
    u = np.linspace(0, 1, data.n_frames, dtype=np.float32)[:, None]
    config = DecoderConfig(kind="chain", state_features="contact_map", hidden=(16, 16), iterations=300, redraws=0,
                           contact_reference=str(trp_cage.trp_cage_files()["pdb"]))
    teacher, _ = fit_decoder(jax.random.key(2), data.xyz, u, topology=data.topology, config=config, progress=False)
    student = distill_decoder(jax.random.key(4), teacher, u[140:], u[:140], n_steps=1, draws=20, iterations=400,
                              batch_size=128, progress=False)
    assert isinstance(student.network, ContactFlow) and (student.flow_steps, student.flow_solver) == (1, "euler")
    c = jnp.asarray(u[::7])
    z = jax.random.normal(jax.random.key(3), (len(c), teacher.network.noise_dim))
    bits = [np.asarray(net.field_condition(z, c)[1]) for net in (teacher.network, student.network)]
    assert np.array_equal(*bits)
    features = {name: net.sample(z, c, n_steps=k, solver=solver)
                for name, net, k, solver in [("teacher", teacher.network, 10, "heun"),
                                             ("student", student.network, 1, "euler"),
                                             ("one step", teacher.network, 1, "euler")]}
    kept = contact_bits(np.asarray(features["student"]).reshape(len(c), -1, 3), teacher.network.pairs[...],
                        teacher.network.cutoffs[...]) == bits[0][:, c.shape[1]:]
    assert kept.mean() >= 0.999, kept.mean()
    frames = {name: np.asarray(features_to_xyz(teacher.coordinates, f)) for name, f in features.items()}

    def off(name):  # nm, the mean Cα displacement from the teacher's frame
        return float(np.mean(np.linalg.norm(frames[name] - frames["teacher"], axis=-1)))

    assert off("student") < 0.5 * off("one step"), (off("student"), off("one step"))


def test_contact_reference_is_refused_where_it_cannot_apply(tmp_path):
    from lss_jax.decoder.contacts import native_contact_pairs
    from lss_jax.systems import trp_cage, villin

    with pytest.raises(ValueError, match="state_features = 'contact_map'"):
        DecoderConfig(kind="chain", contact_reference="native.pdb")
    with pytest.raises(ValueError, match="structure file"):
        native_contact_pairs(str(tmp_path / "missing.pdb"))
    with pytest.raises(ValueError, match="20 residues, the decoded atoms are 35 atoms"):
        native_contact_pairs(trp_cage.trp_cage_files()["pdb"], villin.SYSTEM.native_structure().topology)
