"""Mixture density, sampling and the scan rollout."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats
from flax import nnx

from lss_jax import MDN, MixtureParams, gaussian_mixture_log_prob, mdn_apply_fn, mdn_nll, mixture_sample, rollout


def _random_mixture(rng, batch, c, m):
    return (
        rng.normal(size=(*batch, c)),
        rng.normal(size=(*batch, c, m)),
        rng.uniform(0.2, 2.0, size=(*batch, c, m)),
    )


@pytest.mark.parametrize("c,m", [(1, 1), (3, 1), (8, 2), (24, 3)])
def test_log_prob_matches_scipy(c, m):
    rng = np.random.default_rng(c * 10 + m)
    logits, means, scales = _random_mixture(rng, (5,), c, m)
    y = rng.normal(size=(5, m))
    weights = scipy.special.softmax(logits, axis=-1)
    expected = np.log(
        [
            sum(
                weights[b, k] * scipy.stats.multivariate_normal(means[b, k], np.diag(scales[b, k] ** 2)).pdf(y[b])
                for k in range(c)
            )
            for b in range(5)
        ]
    )
    with jax.enable_x64(True):
        got = gaussian_mixture_log_prob(*(jnp.asarray(a) for a in (y, logits, means, scales)))
        nll = mdn_nll(MixtureParams(*(jnp.asarray(a) for a in (logits, means, scales))), jnp.asarray(y))
    np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-10)
    np.testing.assert_allclose(np.asarray(nll), -expected, rtol=1e-10)


def test_log_prob_is_stable_far_from_all_components():
    lp = gaussian_mixture_log_prob(jnp.array([50.0]), jnp.zeros(2), jnp.zeros((2, 1)), jnp.full((2, 1), 0.01))
    # log N(50 | 0, 0.01^2) = -0.5 (50/0.01)^2 - log(0.01) - 0.5 log(2 pi), finite in float32
    expected = -0.5 * (50 / 0.01) ** 2 - np.log(0.01) - 0.5 * np.log(2 * np.pi)
    assert np.isfinite(float(lp))
    np.testing.assert_allclose(float(lp), expected, rtol=1e-6)


def test_sampler_matches_mixture_cdf(key):
    # Kolmogorov-Smirnov against the exact mixture CDF; n fixed, seed fixed, 1% critical value.
    logits = jnp.log(jnp.array([0.2, 0.5, 0.3]))
    means = jnp.array([[-2.0], [0.0], [3.0]])
    scales = jnp.array([[0.5], [1.0], [0.3]])
    n = 20_000
    mix = MixtureParams(*(jnp.broadcast_to(a, (n, *a.shape)) for a in (logits, means, scales)))
    samples = np.asarray(mixture_sample(key, mix))[:, 0]
    w = np.array([0.2, 0.5, 0.3])
    cdf = lambda x: sum(w[k] * scipy.stats.norm.cdf(x, means[k, 0], scales[k, 0]) for k in range(3))  # noqa: E731
    stat = scipy.stats.kstest(samples, cdf).statistic
    assert stat < 1.63 / np.sqrt(n)


def test_sampler_picks_each_rows_components_with_their_weights_in_rollout_keying(key):
    """Per-trajectory keys (as the rollout draws them), two weight vectors in one batch, m = 2: component counts
    against the weights (chi-square, 3 degrees of freedom, 0.1 % critical value 16.27) and the chosen component's
    mean and scale per dimension."""
    weights = np.array([[0.1, 0.2, 0.3, 0.4], [0.4, 0.3, 0.2, 0.1]])
    means = jnp.array([[0.0, 10.0], [10.0, 0.0], [-10.0, 0.0], [0.0, -10.0]])
    scales = jnp.array([[0.5, 2.0], [1.0, 1.0], [2.0, 0.5], [0.3, 0.3]])
    n = 40_000
    row = np.arange(n) % 2
    mix = MixtureParams(jnp.log(jnp.asarray(weights[row], jnp.float32)), jnp.broadcast_to(means, (n, 4, 2)),
                        jnp.broadcast_to(scales, (n, 4, 2)))
    keys = jax.vmap(lambda t: jax.random.fold_in(jax.random.fold_in(key, t), 7))(jnp.arange(n))
    y = np.asarray(jax.vmap(mixture_sample)(keys, mix))
    component = np.argmin(((y[:, None, :] - np.asarray(means)[None]) ** 2).sum(-1), axis=1)
    for r in (0, 1):
        counts = np.bincount(component[row == r], minlength=4)
        expected = weights[r] * (row == r).sum()
        assert np.sum((counts - expected) ** 2 / expected) < 16.27, (r, counts, expected)
    for k in range(4):
        z = (y[component == k] - np.asarray(means[k])) / np.asarray(scales[k])
        sel = len(z)
        np.testing.assert_allclose(z.mean(0), 0.0, atol=4 / np.sqrt(sel))
        np.testing.assert_allclose(z.std(0), 1.0, atol=4 * np.sqrt(0.5 / sel))


def test_mdn_outputs_are_valid():
    model = MDN(3, 24, (100, 100), rngs=nnx.Rngs(0), scale_floor=1e-3)
    out = model(jax.random.uniform(jax.random.key(1), (7, 3)))
    assert out.logits.shape == (7, 24) and out.means.shape == (7, 24, 3) and out.scales.shape == (7, 24, 3)
    assert bool(jnp.all((out.means > 0) & (out.means < 1))) and bool(jnp.all(out.scales >= 1e-3))


def _linear_gaussian(params, x):
    """A one-component 'MDN' with an exact AR(1) transition: mean 0.5 + a (x - 0.5), scale s."""
    a, s = params
    return MixtureParams(jnp.zeros((*x.shape[:-1], 1)), (0.5 + a * (x - 0.5))[..., None, :], jnp.full((*x.shape[:-1], 1, x.shape[-1]), s))


def test_rollout_reproduces_exact_ar1_statistics(key):
    a, s = 0.8, 0.02
    n_traj, n_steps = 256, 2000
    x0 = jnp.full((n_traj, 1), 0.5)
    traj = np.asarray(rollout(key, _linear_gaussian, (jnp.float32(a), jnp.float32(s)), x0, n_steps=n_steps, boundary="none"))
    u = traj[:, 100:, 0] - 0.5  # drop the relaxation from the fixed start
    var_exact = s**2 / (1 - a**2)
    # independent trajectories: standard error from their spread
    per_traj_var = u.var(axis=1)
    assert abs(per_traj_var.mean() - var_exact) < 5 * per_traj_var.std() / np.sqrt(n_traj)
    acf = np.sum(u[:, 1:] * u[:, :-1], axis=1) / np.sum(u * u, axis=1)
    assert abs(acf.mean() - a) < 5 * acf.std() / np.sqrt(n_traj)


def test_rollout_does_not_recompile(key, compile_counter):
    graphdef, params = nnx.split(MDN(2, 4, (16,), rngs=nnx.Rngs(0)))
    x0 = jnp.full((8, 2), 0.5)
    rollout(key, mdn_apply_fn(graphdef), params, x0, n_steps=10, save_every=2)  # warm up
    params2 = jax.tree_util.tree_map(lambda p: p * 1.01, params)
    x1, key2 = x0 + 0.1, jax.random.key(5)
    with compile_counter.watch() as counter:
        rollout(key2, mdn_apply_fn(graphdef), params2, x1, n_steps=10, save_every=2, start_step=7)
        rollout(key, mdn_apply_fn(graphdef), params, x0, n_steps=10, save_every=2)
    assert counter.count == 0
    with compile_counter.watch() as counter:  # the counter does see a genuinely new shape
        rollout(key, mdn_apply_fn(graphdef), params, x0, n_steps=12, save_every=2)
    assert counter.count >= 1


def test_rollout_chunks_batches_and_save_every_are_consistent(key):
    graphdef, params = nnx.split(MDN(2, 4, (16,), rngs=nnx.Rngs(0)))
    fn = mdn_apply_fn(graphdef)
    x0 = jax.random.uniform(jax.random.key(3), (5, 2))
    full = rollout(key, fn, params, x0, n_steps=12)
    # two chunks, carrying the last frame and the global step index
    first = rollout(key, fn, params, x0, n_steps=5)
    second = rollout(key, fn, params, first[:, -1], n_steps=7, start_step=5)
    np.testing.assert_array_equal(np.asarray(full), np.concatenate([first, second], axis=1))
    # trajectory b does not depend on the rest of the batch
    sub = rollout(key, fn, params, x0[2:4], n_steps=12, trajectory_ids=jnp.array([2, 3]))
    np.testing.assert_array_equal(np.asarray(full[2:4]), np.asarray(sub))
    # save_every keeps every k-th frame
    thinned = rollout(key, fn, params, x0, n_steps=12, save_every=3)
    np.testing.assert_array_equal(np.asarray(full[:, 2::3]), np.asarray(thinned))
    assert bool(jnp.all((full >= 0) & (full <= 1)))


def test_rollout_rejects_bad_arguments(key):
    graphdef, params = nnx.split(MDN(1, 2, (4,), rngs=nnx.Rngs(0)))
    with pytest.raises(ValueError, match="multiple of save_every"):
        rollout(key, mdn_apply_fn(graphdef), params, jnp.zeros((2, 1)), n_steps=10, save_every=3)
    with pytest.raises(ValueError, match="n_trajectories, latent_dim"):
        rollout(key, mdn_apply_fn(graphdef), params, jnp.zeros(2), n_steps=10)


def test_rollout_with_progress_equals_one_call(key):
    from lss_jax.generation.simulate import rollout_with_progress

    graphdef, params = nnx.split(MDN(2, 4, (16,), rngs=nnx.Rngs(0)))
    fn = mdn_apply_fn(graphdef)
    x0 = jax.random.uniform(jax.random.key(3), (5, 2))
    one = np.asarray(rollout(key, fn, params, x0, n_steps=30, save_every=3))
    for n_chunks in (1, 4, 7, 50):
        chunked = rollout_with_progress(key, fn, params, x0, n_steps=30, save_every=3, n_chunks=n_chunks, progress=False)
        np.testing.assert_array_equal(chunked, one)
