"""WGAN-GP and flow-matching losses against analytic values (the decoders' fidelity: test_decoder_fidelity.py)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lss_jax import gradient_penalty, wgan_critic_loss, wgan_generator_loss
from lss_jax.config import DECODERS, DISTILLABLE, FLOW_SOLVERS
from lss_jax.decoder import KINDS, SOLVERS, flow_matching_loss, integrate_flow

W = jnp.array([0.3, -1.2, 2.0])
V = jnp.array([0.7, -0.5])


def linear_critic(x, c):
    return x @ W + c @ V + 0.25


@pytest.mark.parametrize("penalize_condition", [False, True])
def test_linear_critic_penalty_and_losses_are_analytic(key, penalize_condition):
    k1, k2, k3 = jax.random.split(key, 3)
    x_real = jax.random.normal(k1, (64, 3))
    x_fake = jax.random.normal(k2, (64, 3)) + 1.0
    cond = jax.random.normal(k3, (64, 2))
    # grad_x D = w everywhere (or (w, v) jointly), so the penalty is (||w|| - 1)^2 at every interpolate
    norm = float(jnp.sqrt(jnp.sum(W**2) + (jnp.sum(V**2) if penalize_condition else 0.0)))
    penalty = (norm - 1.0) ** 2
    per_sample = gradient_penalty(linear_critic, x_real, cond, penalize_condition=penalize_condition)
    np.testing.assert_allclose(np.asarray(per_sample), penalty, rtol=1e-5)
    loss, info = wgan_critic_loss(
        key, linear_critic, x_real, x_fake, cond, gp_weight=10.0, penalize_condition=penalize_condition
    )
    wasserstein = float(jnp.mean(x_real @ W) - jnp.mean(x_fake @ W))  # c and the bias cancel
    np.testing.assert_allclose(float(info.wasserstein), wasserstein, rtol=1e-5)
    np.testing.assert_allclose(float(info.penalty), penalty, rtol=1e-5)
    np.testing.assert_allclose(float(loss), -wasserstein + 10.0 * penalty, rtol=1e-5)
    gen = wgan_generator_loss(linear_critic, x_fake, cond)
    np.testing.assert_allclose(float(gen), -float(jnp.mean(linear_critic(x_fake, cond))), rtol=1e-6)


def test_penalty_is_evaluated_at_interpolates_with_their_condition(key):
    # Critic D(x, c) = (x . c)^2 / 2 has grad_x = (x . c) c; its norm depends on both the interpolate
    # and its own condition, so a wrong pairing or wrong interpolate would change the value.
    critic = lambda x, c: 0.5 * jnp.sum(x * c, axis=-1) ** 2  # noqa: E731
    k1, k2, k3 = jax.random.split(jax.random.key(3), 3)
    x_real, x_fake, cond = (jax.random.normal(k, (16, 2)) for k in (k1, k2, k3))
    _, info = wgan_critic_loss(key, critic, x_real, x_fake, cond)
    e = jax.random.uniform(key, (16, 1))
    x_hat = np.asarray(e * x_real + (1 - e) * x_fake)
    c = np.asarray(cond)
    norms = np.abs(np.sum(x_hat * c, axis=1)) * np.linalg.norm(c, axis=1)
    np.testing.assert_allclose(float(info.penalty), np.mean((norms - 1) ** 2), rtol=1e-4)


def test_shape_mismatch_raises(key):
    with pytest.raises(ValueError, match="batch"):
        wgan_critic_loss(key, linear_critic, jnp.ones((4, 3)), jnp.ones((5, 3)), jnp.ones((4, 2)))


def test_flow_matching_loss_is_the_regression_to_the_line_velocity(key):
    # a field that ignores x and t, v = w: the loss is E|w - (x1 - x0)|^2 / D with x0 ~ N(0, I) drawn from the key
    x1 = jax.random.normal(jax.random.key(1), (256, 3)) + 2.0
    cond = jnp.zeros((256, 1))
    w = jnp.array([0.5, -1.0, 2.0])
    loss = flow_matching_loss(key, lambda x, t, c: jnp.broadcast_to(w, x.shape), x1, cond)
    _, k_0 = jax.random.split(key)
    x0 = jax.random.normal(k_0, x1.shape)
    np.testing.assert_allclose(float(loss), float(np.mean((np.asarray(w) - np.asarray(x1 - x0)) ** 2)), rtol=1e-5)


def test_heun_integration_is_second_order():
    # dx/dt = t x, x(1) = x(0) exp(1/2); Heun's global error falls as h^2
    errors = [float(jnp.abs(integrate_flow(lambda x, t, c: t[:, None] * x, jnp.ones((1, 1)), jnp.zeros((1, 1)),
                                           n_steps=n)[0, 0] - np.exp(0.5))) for n in (10, 20, 40)]
    assert errors[0] / errors[1] > 3.5 and errors[1] / errors[2] > 3.5, errors


def test_rk4_integration_is_fourth_order():
    # the same ODE in float64: the classical Runge-Kutta's global error falls as h^4 (16x per halving; 4x would be
    # a second-order slip, e.g. a stage at the wrong time), and at 2 steps it beats Heun's 4 on the same 8 evaluations
    with jax.enable_x64():
        def solve(n, solver):
            x1 = integrate_flow(lambda x, t, c: t[:, None] * x, jnp.ones((1, 1), jnp.float64),
                                jnp.zeros((1, 1), jnp.float64), n_steps=n, solver=solver)
            return float(jnp.abs(x1[0, 0] - np.exp(0.5)))
        errors = [solve(n, "rk4") for n in (4, 8, 16)]
        assert errors[0] / errors[1] > 12 and errors[1] / errors[2] > 12, errors
        assert solve(2, "rk4") < solve(4, "heun") / 5


def test_registry_matches_the_config_names():
    # config sits below the decoder and keeps its own tuples of names: they must name the registered kinds
    assert set(KINDS) == set(DECODERS)
    assert {name for name, kind in KINDS.items() if kind.distillable} == set(DISTILLABLE)
    assert set(FLOW_SOLVERS) == set(SOLVERS)  # the solvers the config accepts are the ones integrate_flow has
    assert all(name == kind.name for name, kind in KINDS.items())


def _gaussian_mean_flow(mu, sigma):
    """The exact average velocity of the straight-line flow from N(0, 1) to N(mu, sigma^2): the marginal flow maps
    ``x_t = a(t) z + t mu``, ``a(t) = sqrt((1 - t)^2 + t^2 sigma^2)``, so ``u(x, t, s) = (x_s - x) / (s - t)`` with
    ``x_s = a(s) / a(t) (x - t mu) + s mu``; and the marginal velocity ``a'(t) / a(t) (x - t mu) + mu``."""
    a = lambda t: jnp.sqrt((1 - t) ** 2 + t**2 * sigma**2)  # noqa: E731

    def average(x, t, s, c):
        t, s = t[:, None], s[:, None]
        x_s = a(s) / a(t) * (x - t * mu) + s * mu
        same = jnp.abs(s - t) < 1e-6  # s = t: the instantaneous velocity
        da = (t * sigma**2 - (1 - t)) / a(t)
        return jnp.where(same, da / a(t) * (x - t * mu) + mu, (x_s - x) / jnp.where(same, 1.0, s - t))

    return average, lambda x, t: (t * sigma**2 - (1 - t)) / a(t) ** 2 * (x - t * mu) + mu



def test_mean_flow_training_has_its_fixed_point_at_the_exact_average_velocity():
    """mean_flow_loss on N(mu, sigma^2) data, differentiated (its target's gradient stopped, as in training) along
    one-parameter families of fields through the exact average velocity: the gradient vanishes at the exact field
    within its noise and points back to it from either side (the field scaled by 1 +- 5 %; the field of an interval
    shrunk towards the instantaneous velocity). With the identity's sign flipped (``v - (s - t) du/dt``) the exact
    field would not be a fixed point. Noise: the spread of the gradient over 16 independent batches."""
    from lss_jax.decoder.meanflow import mean_flow_loss

    mu, sigma, n, batches = 1.0, 0.3, 50_000, 16
    exact, _ = _gaussian_mean_flow(mu, sigma)
    x1 = mu + sigma * jax.random.normal(jax.random.key(0), (n, 1))
    cond = jnp.zeros((n, 1))
    families = {
        "scale": lambda p: lambda x, t, s, c: (1.0 + p) * exact(x, t, s, c),  # exact at p = 0
        "interval": lambda p: lambda x, t, s, c: exact(x, t, s + p * (s - t), c),  # exact at p = 0; p = -1: s = t
    }
    for name, family in families.items():
        grad = jax.jit(jax.grad(lambda p, k: mean_flow_loss(k, family(p), x1, cond, interval_share=1.0)))
        for p, sign in ((0.0, 0), (0.05, 1), (-0.05, -1)):
            g = np.array([float(grad(p, jax.random.key(b))) for b in range(batches)])
            mean, se = g.mean(), g.std(ddof=1) / np.sqrt(batches)
            if sign == 0:
                assert abs(mean) < 4 * se, (name, p, mean, se)
            else:
                assert sign * mean > 4 * se, (name, p, mean, se)
