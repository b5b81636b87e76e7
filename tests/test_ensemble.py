"""MDN ensembles: one vmapped run equals separate trainings; epistemic uncertainty against quadrature."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from scipy.stats import norm

from lss_jax.config import PropagatorConfig
from lss_jax.engine.train import fit
from lss_jax.propagator import MixtureParams
from lss_jax.propagator.ensemble import (
    MDNEnsemble,
    _ensemble_loss,
    bootstrap_weights,
    data_density,
    epistemic_uncertainty,
    fit_mdn_ensemble,
    member,
)


def _ar1_unit(n=4000, seed=0):
    rng = np.random.default_rng(seed)
    x = np.zeros(n)
    for t in range(1, n):
        x[t] = 0.8 * x[t - 1] + 0.2 * rng.normal()
    return ((x - x.min()) / (x.max() - x.min()))[:, None].astype(np.float32)


def test_vmapped_ensemble_training_equals_training_each_member_alone():
    u = _ar1_unit()
    x, y = u[:-1], u[1:]
    weights = bootstrap_weights(jax.random.key(1), [len(x)], 3, n_blocks=20)
    ens = MDNEnsemble(3, 1, 3, (16,), rngs=nnx.Rngs(0))
    kw = dict(batch_size=256, max_epochs=3, patience=3, progress=False)
    val = (x[:500], y[:500], np.ones((500, 3), np.float32))
    trained, _ = fit(jax.random.key(2), ens, _ensemble_loss, (x, y, weights), val, **kw)
    for k in range(3):
        alone = MDNEnsemble(1, 1, 3, (16,), rngs=nnx.Rngs(0))  # same shapes, then member k's initial weights
        g, p = nnx.split(alone.members)
        init_k = jax.tree_util.tree_map(lambda a: a[k : k + 1], nnx.split(ens.members)[1])
        alone.members = nnx.merge(g, init_k)
        solo, _ = fit(jax.random.key(2), alone, _ensemble_loss, (x, y, weights[:, k : k + 1]), (*val[:2], val[2][:, :1]),
                      **kw)
        chex.assert_trees_all_close(nnx.to_pure_dict(nnx.state(member(trained, k))),
                                    nnx.to_pure_dict(nnx.state(member(solo, 0))), rtol=2e-4, atol=2e-5)


def test_epistemic_uncertainty_matches_quadrature_of_the_members_densities():
    ens = MDNEnsemble(3, 1, 2, (8,), rngs=nnx.Rngs(3))
    xs = jnp.array([[0.2], [0.8]])
    mix = ens(xs)
    grid = np.linspace(-1.0, 2.0, 60001)
    for i in range(2):
        dens = []
        for k in range(3):
            w = np.asarray(jax.nn.softmax(mix.logits[k, i]))
            mu, sd = np.asarray(mix.means[k, i, :, 0]), np.asarray(mix.scales[k, i, :, 0])
            dens.append(sum(wc * norm.pdf(grid, m, s) for wc, m, s in zip(w, mu, sd)))
        dens = np.array(dens)
        mean = dens.mean(0)
        ok = mean > 0
        exact = np.mean([np.trapezoid(np.where(ok, d * np.log(np.where(d > 0, d, 1) / np.where(ok, mean, 1)), 0), grid)
                         for d in dens])
        n = 20000
        est = epistemic_uncertainty(jax.random.key(i), ens, xs[i : i + 1], n_samples=n)[0]
        # Monte Carlo standard error: the log-ratio's spread is below log K, so SE <= log(3)/sqrt(3 n)
        assert abs(est - exact) < 4 * np.log(3) / np.sqrt(3 * n) + 1e-4, (est, exact)


def test_identical_members_have_zero_uncertainty_and_sparse_regions_have_more():
    ens = MDNEnsemble(2, 1, 2, (8,), rngs=nnx.Rngs(0))
    g, p = nnx.split(ens.members)
    ens.members = nnx.merge(g, jax.tree_util.tree_map(lambda a: jnp.stack([a[0], a[0]]), p))
    assert np.all(epistemic_uncertainty(jax.random.key(0), ens, jnp.linspace(0, 1, 7)[:, None]) < 1e-5)
    # data crowded at the low end of the box: the ensemble disagrees more where it saw little data
    u = (_ar1_unit(6000, seed=1) ** 3).astype(np.float32)  # cubing crowds the data at the low end
    config = PropagatorConfig(n_components=4, hidden=(32, 32), batch_size=256, epochs=15)
    trained, _ = fit_mdn_ensemble(jax.random.key(0), [u], 1, config=config, n_members=5, progress=False)
    dense = float(np.median(u))
    unc = epistemic_uncertainty(jax.random.key(1), trained, jnp.array([[dense], [0.97]]))
    rho = data_density(u, np.array([[dense], [0.97]]))
    assert rho[0] > 20 * rho[1]
    assert unc[1] > 3 * unc[0], unc


def test_bootstrap_blocks_stay_inside_trajectories():
    w = bootstrap_weights(jax.random.key(0), [30, 20], 200, n_blocks=10)
    assert w.shape == (50, 200)
    # blocks of 5 pairs: weights are constant within a block and change only at block edges
    for start in range(0, 50, 5):
        assert np.all(w[start : start + 5] == w[start])
    np.testing.assert_allclose(w.sum(0), 50)  # 10 blocks of 5 drawn with replacement
    np.testing.assert_allclose(w.mean(), 1.0, atol=0.02)
    with pytest.raises(ValueError):
        bootstrap_weights(jax.random.key(0), [0], 2)


def test_member_is_a_plain_mdn_usable_by_rollout():
    from lss_jax import mdn_apply_fn, rollout

    ens = MDNEnsemble(2, 1, 2, (8,), rngs=nnx.Rngs(0))
    g, p = nnx.split(member(ens, 1))
    traj = rollout(jax.random.key(0), mdn_apply_fn(g), p, jnp.full((3, 1), 0.5), n_steps=5)
    assert traj.shape == (3, 5, 1)
    assert isinstance(ens(jnp.zeros((1, 1))), MixtureParams)


def test_lss_with_ensemble_round_trips_and_reports_spread(tmp_path, capsys):
    from lss_jax.cli import main
    from lss_jax.config import DecoderConfig, EncoderConfig
    from lss_jax.datasets import load_alanine_dipeptide
    from lss_jax.model.facade import LSS

    train = load_alanine_dipeptide("train", stride=10)
    model = LSS(lag=2, encoder=EncoderConfig(latent_dim=2, epochs=2),
                propagator=PropagatorConfig(epochs=3, ensemble_size=3), decoder=DecoderConfig(iterations=20),
                seed=3).fit(train, progress=False)
    psi = model.encode(train[:50])
    unc = model.uncertainty(jax.random.key(0), psi)
    assert unc.shape == (50,) and np.all((unc >= 0) & (unc <= np.log(3) + 1e-6))
    assert model.data_density(psi).shape == (50,)
    path = model.save(tmp_path / "model")
    loaded = LSS.load(path)
    np.testing.assert_array_equal(loaded.uncertainty(jax.random.key(0), psi), unc)
    members = loaded.ensemble_members()
    assert len(members) == 3
    a = loaded.generate(jax.random.key(0), 2, 5, latent_only=True, propagator=members[1])
    b = model.generate(jax.random.key(0), 2, 5, latent_only=True, propagator=model.ensemble_members()[1])
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, model.generate(jax.random.key(0), 2, 5, latent_only=True))
    md_file = tmp_path / "md.dcd"
    load_alanine_dipeptide("independent", stride=10)[:1000].save_dcd(str(md_file))
    top = str(tmp_path / "top.pdb")
    load_alanine_dipeptide("train")[0].save_pdb(top)
    assert main(["generate", "--model", str(path), "--n-traj", "10", "--n-steps", "50", "--out",
                 str(tmp_path / "lss.xtc"), "--no-progress"]) == 0
    assert main(["report", "--model", str(path), "--md", str(md_file), "--top", top, "--lss", str(tmp_path / "lss.xtc"),
                 "--out", str(tmp_path / "report")]) == 0
    out = capsys.readouterr().out
    assert "ensemble (3 propagators" in out and "population" in out
    import json

    metrics = json.loads((tmp_path / "report" / "metrics.json").read_text())
    assert len(metrics["ensemble"]["per_member"]["t1_ps"]) == 3 and metrics["ensemble"]["t1_ps"]["std"] > 0
    assert (tmp_path / "report" / "uncertainty.png").stat().st_size > 10_000
    with pytest.raises(ValueError, match="ensemble_size"):
        LSS(lag=2, propagator={"ensemble_size": 1})
